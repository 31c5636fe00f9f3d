package addons_test

import (
	"fmt"
	"sort"

	"github.com/slipwayhq/slipway/addons"
)

// The first PostgreSQL attachment of an app is DATABASE_URL; a second one
// gets a color, as on Heroku.
func ExampleAttachmentName() {
	pg := addons.Capabilities{Service: "postgresql", DefaultAttachment: "DATABASE"}
	first := addons.AttachmentName(pg, nil)
	second := addons.AttachmentName(pg, []string{first})
	fmt.Println(addons.VarName(first, "URL"))
	fmt.Println(addons.VarName(second, "URL"))
	// Output:
	// DATABASE_URL
	// POSTGRESQL_AMBER_URL
}

// AttachChange computes the config vars a new release gets; secrets print
// redacted until the release manager applies the change.
func ExampleAttachChange() {
	cfg := addons.Config{"URL": addons.NewSecret("postgres://u:pw@db.internal/shop")}
	ch, err := addons.AttachChange(addons.Attachment{App: "shop", Name: "DATABASE", ResourceID: "pg-1"}, cfg, []string{"PORT"})
	if err != nil {
		panic(err)
	}
	fmt.Println(ch)
	fmt.Println("skips release phase:", ch.Cause.SkipsReleasePhase())
	env := ch.Apply(map[string]string{"PORT": "5000"})
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println(keys)
	// Output:
	// addon.attach DATABASE on app "shop" (resource pg-1): set [DATABASE_URL] unset []
	// skips release phase: true
	// [DATABASE_URL PORT]
}
