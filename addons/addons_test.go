package addons_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

const pw = "s3cr3t-Pa55"

func TestSecretNeverPrints(t *testing.T) {
	s := addons.NewSecret(pw)
	cfg := addons.Config{"URL": addons.NewSecret("postgres://u:" + pw + "@h/db")}
	res := addons.Resource{ID: "r1", Service: "postgresql", Config: cfg}
	ch, err := addons.AttachChange(addons.Attachment{App: "a", Name: "DATABASE"}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range []any{s, &s, cfg, res, &res, ch, []addons.Secret{s}, map[string]any{"x": s}, struct{ S addons.Secret }{s}} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T"} {
			out = append(out, fmt.Sprintf(f, v))
		}
		j, _ := json.Marshal(v)
		out = append(out, string(j))
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "secret", s, "cfg", cfg, "res", res, "change", ch)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s, "cfg", cfg, "res", res)
	out = append(out, buf.String())
	for _, o := range out {
		if strings.Contains(o, pw) {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if s.Reveal() != pw {
		t.Fatal("Reveal lost the value")
	}
	var back addons.Config
	if err := json.Unmarshal([]byte(`{"URL":"x://y"}`), &back); err != nil || back["URL"].Reveal() != "x://y" {
		t.Fatalf("unmarshal: %v %v", err, back)
	}
}

func TestRequestValidate(t *testing.T) {
	ok := []addons.Request{
		{RequestID: "r", App: "a"},
		{RequestID: "550e8400-e29b-41d4-a716-446655440000", App: `it's "quoted"; DROP TABLE x; --`},
		{RequestID: "r", App: "ünïcødé app"},
		{RequestID: "r", App: "select"},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := map[string]struct {
		r    addons.Request
		want error
	}{
		"no id":     {addons.Request{App: "a"}, addons.ErrInvalidRequest},
		"space id":  {addons.Request{RequestID: "a b", App: "a"}, addons.ErrInvalidRequest},
		"long id":   {addons.Request{RequestID: strings.Repeat("x", 201), App: "a"}, addons.ErrInvalidRequest},
		"no app":    {addons.Request{RequestID: "r"}, addons.ErrInvalidName},
		"nul":       {addons.Request{RequestID: "r", App: "a\x00b"}, addons.ErrInvalidName},
		"newline":   {addons.Request{RequestID: "r", App: "a\nb"}, addons.ErrInvalidName},
		"bad utf8":  {addons.Request{RequestID: "r", App: "a\xffb"}, addons.ErrInvalidName},
		"long name": {addons.Request{RequestID: "r", App: strings.Repeat("é", 51)}, addons.ErrInvalidName},
	}
	for name, c := range bad {
		if err := c.r.Validate(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestEnvNames(t *testing.T) {
	for _, n := range []string{"DATABASE_URL", "A", "_X", "REDIS_KEY_PREFIX", "X9"} {
		if err := addons.ValidateEnvName(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"", "9X", "database_url", "A-B", "A B", "É", strings.Repeat("A", 129)} {
		if err := addons.ValidateEnvName(n); !errors.Is(err, addons.ErrInvalidName) {
			t.Errorf("%q: got %v", n, err)
		}
	}
	for _, n := range []string{"_A", "A_", ""} {
		if err := addons.ValidateAttachmentName(n); err == nil {
			t.Errorf("attachment %q accepted", n)
		}
	}
	for _, k := range []string{"_URL", "", "url"} {
		if err := addons.ValidateConfigKey(k); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

func TestAttachmentName(t *testing.T) {
	pg := addons.Capabilities{Service: "postgresql", DefaultAttachment: "DATABASE"}
	rd := addons.Capabilities{Service: "redis", DefaultAttachment: "REDIS"}
	cases := []struct {
		c        addons.Capabilities
		existing []string
		want     string
	}{
		{pg, nil, "DATABASE"},
		{pg, []string{"REDIS"}, "DATABASE"},
		{pg, []string{"DATABASE"}, "POSTGRESQL_AMBER"},
		{pg, []string{"DATABASE", "POSTGRESQL_AMBER"}, "POSTGRESQL_BLUE"},
		{rd, []string{"DATABASE"}, "REDIS"},
		{rd, []string{"REDIS"}, "REDIS_AMBER"},
		{addons.Capabilities{Service: "my-queue.io"}, nil, "MY_QUEUE_IO"},
		{addons.Capabilities{Service: "3scale"}, nil, "ADDON_3SCALE"},
	}
	for _, c := range cases {
		got := addons.AttachmentName(c.c, c.existing)
		if got != c.want {
			t.Errorf("%s %v: got %s, want %s", c.c.Service, c.existing, got, c.want)
		}
		if err := addons.ValidateAttachmentName(got); err != nil {
			t.Error(err)
		}
	}
	// Exhaust the colors: names stay unique and valid.
	var existing []string
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		n := addons.AttachmentName(pg, existing)
		if seen[n] {
			t.Fatalf("duplicate %s", n)
		}
		seen[n] = true
		existing = append(existing, n)
	}
}

func TestChanges(t *testing.T) {
	a := addons.Attachment{App: "shop", Name: "DATABASE", ResourceID: "pg-1"}
	cfg := addons.Config{"URL": addons.NewSecret("postgres://a")}
	ch, err := addons.AttachChange(a, cfg, []string{"PORT"})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Cause.SkipsReleasePhase() || ch.Set["DATABASE_URL"].Reveal() != "postgres://a" {
		t.Fatalf("attach: %v", ch)
	}
	env := ch.Apply(map[string]string{"PORT": "5000"})
	if env["DATABASE_URL"] != "postgres://a" || env["PORT"] != "5000" {
		t.Fatalf("apply: %v", env)
	}
	if _, err := addons.AttachChange(a, cfg, []string{"DATABASE_URL"}); !errors.Is(err, addons.ErrConflict) {
		t.Fatalf("overwrite: %v", err)
	}
	if _, err := addons.AttachChange(addons.Attachment{Name: "bad"}, cfg, nil); !errors.Is(err, addons.ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := addons.AttachChange(a, addons.Config{"url": addons.NewSecret("x")}, nil); !errors.Is(err, addons.ErrInvalidName) {
		t.Fatalf("bad key: %v", err)
	}
	rot := addons.UpdateChange(addons.CauseRotate, a, cfg, addons.Config{"URL": addons.NewSecret("postgres://b"), "EXTRA": addons.NewSecret("1")})
	if len(rot.Set) != 2 || len(rot.Unset) != 0 || !rot.Cause.SkipsReleasePhase() {
		t.Fatalf("rotate: %v", rot)
	}
	same := addons.UpdateChange(addons.CausePlanChange, a, cfg, cfg.Clone())
	if !same.Empty() {
		t.Fatalf("unchanged config gave %v", same)
	}
	gone := addons.UpdateChange(addons.CauseRotate, a, addons.Config{"URL": cfg["URL"], "OLD": cfg["URL"]}, cfg)
	if len(gone.Unset) != 1 || gone.Unset[0] != "DATABASE_OLD" {
		t.Fatalf("unset: %v", gone)
	}
	det := addons.DetachChange(a, cfg)
	env = det.Apply(env)
	if _, ok := env["DATABASE_URL"]; ok || env["PORT"] != "5000" {
		t.Fatalf("detach: %v", env)
	}
	if addons.Cause("deploy").SkipsReleasePhase() {
		t.Fatal("a deploy must run the release phase")
	}
}

type fakeRotator struct {
	rotated, retired int
}

func (f *fakeRotator) Rotate(ctx context.Context, id string) (addons.Resource, error) {
	f.rotated++
	return addons.Resource{ID: id, Config: addons.Config{"URL": addons.NewSecret("new")}}, nil
}

func (f *fakeRotator) Retire(ctx context.Context, id string) error { f.retired++; return nil }

func TestRotate(t *testing.T) {
	ctx := context.Background()
	f := &fakeRotator{}
	failed := errors.New("deploy failed")
	if _, err := addons.Rotate(ctx, f, "x", 0, func(context.Context, addons.Resource) error { return failed }); !errors.Is(err, failed) || f.retired != 0 {
		t.Fatalf("publish failure: %v, retired %d", err, f.retired)
	}
	var published addons.Resource
	if _, err := addons.Rotate(ctx, f, "x", time.Millisecond, func(_ context.Context, r addons.Resource) error { published = r; return nil }); err != nil || f.retired != 1 {
		t.Fatalf("rotate: %v, retired %d", err, f.retired)
	}
	if published.Config["URL"].Reveal() != "new" {
		t.Fatal("not published")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := addons.Rotate(cctx, f, "x", time.Hour, func(context.Context, addons.Resource) error { return nil }); !errors.Is(err, context.Canceled) || f.retired != 1 {
		t.Fatalf("cancelled grace: %v, retired %d", err, f.retired)
	}
}

func TestErrorAndRetryable(t *testing.T) {
	err := error(&addons.Error{Op: "provision", Service: "postgresql", App: "a", Err: addons.ErrUnavailable})
	if !errors.Is(err, addons.ErrUnavailable) || !addons.IsRetryable(err) {
		t.Fatal(err)
	}
	if addons.IsRetryable(&addons.Error{Err: addons.ErrUnknownPlan}) {
		t.Fatal("unknown plan is not retryable")
	}
	c := addons.Capabilities{Service: "x", Plans: []addons.Plan{{Name: "small"}, {Name: "big"}}}
	if p, err := c.ResolvePlan(""); p != "small" || err != nil {
		t.Fatal(p, err)
	}
	if _, err := c.ResolvePlan("huge"); !errors.Is(err, addons.ErrUnknownPlan) {
		t.Fatal(err)
	}
}
