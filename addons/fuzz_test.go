package addons_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/addons"
)

// FuzzAttachmentName checks that a chosen attachment name is always valid
// and never one already taken, whatever the service is called.
func FuzzAttachmentName(f *testing.F) {
	f.Add("postgresql", "DATABASE", "DATABASE,POSTGRESQL_AMBER")
	f.Add("my-queue.io", "", "")
	f.Add("3", "bad name", "ADDON_3")
	f.Fuzz(func(t *testing.T, service, def, existing string) {
		taken := strings.Split(existing, ",")
		if len(taken) > 50 {
			taken = taken[:50]
		}
		name := addons.AttachmentName(addons.Capabilities{Service: service, DefaultAttachment: def}, taken)
		if len(name) <= addons.MaxEnvName {
			if err := addons.ValidateAttachmentName(name); err != nil {
				t.Fatalf("AttachmentName(%q, %q) = %q: %v", service, def, name, err)
			}
		}
		for _, n := range taken {
			if n == name {
				t.Fatalf("AttachmentName chose taken name %q", name)
			}
		}
	})
}

// FuzzConfigJSON decodes provider-shaped JSON into a Config and checks that
// re-encoding never reveals a value.
func FuzzConfigJSON(f *testing.F) {
	f.Add(`{"URL":"postgres://u:hunter2hunter2@h/db"}`)
	f.Add(`{"A":1}`)
	f.Fuzz(func(t *testing.T, in string) {
		var c addons.Config
		if json.Unmarshal([]byte(in), &c) != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k := range c {
			want[k] = addons.Redacted
		}
		wantJSON, _ := json.Marshal(want)
		if string(out) != string(wantJSON) {
			t.Fatalf("Config marshals as %s, want %s", out, wantJSON)
		}
		_ = c.Validate()
	})
}
