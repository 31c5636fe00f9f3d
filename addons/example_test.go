package addons_test

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
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

// Rotate replaces credentials without downtime: publish makes the release
// with the new config, and the old credentials are retired after the grace
// period.
func ExampleRotate() {
	ctx := context.Background()
	m := &addontest.Memory{}
	res, _ := m.Provision(ctx, addons.Request{RequestID: "shop-db-1", App: "shop"})
	a := addons.Attachment{App: "shop", Name: "MEMORY", ResourceID: res.ID}
	fresh, err := addons.Rotate(ctx, m, res.ID, 10*time.Millisecond, func(ctx context.Context, r addons.Resource) error {
		ch := addons.UpdateChange(addons.CauseRotate, a, res.Config, r.Config)
		fmt.Println(ch.Cause, ch.Set.Keys(), "skips release phase:", ch.Cause.SkipsReleasePhase())
		return nil // a release manager would make and roll out the release here
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("old works:", m.Use(ctx, res.Config, res.ID) == nil, "new works:", m.Use(ctx, fresh.Config, res.ID) == nil)
	// Output:
	// addon.rotate [MEMORY_URL] skips release phase: true
	// old works: false new works: true
}
