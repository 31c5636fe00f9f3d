package addontest_test

import (
	"context"
	"fmt"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
)

// Memory stands in for a real provisioner in tests of code that attaches
// add-ons.
func ExampleMemory() {
	ctx := context.Background()
	m := &addontest.Memory{}
	res, err := m.Provision(ctx, addons.Request{RequestID: "shop-db-1", App: "shop"})
	if err != nil {
		panic(err)
	}
	again, _ := m.Provision(ctx, addons.Request{RequestID: "shop-db-1", App: "shop"})
	fmt.Println(res.ID == again.ID, res.Plan, res.Config.Keys())
	fmt.Println(m.Use(ctx, res.Config, res.ID) == nil)
	_ = m.Deprovision(ctx, res.ID)
	fmt.Println(m.Use(ctx, res.Config, res.ID) == nil)
	// Output:
	// true small [URL]
	// true
	// false
}
