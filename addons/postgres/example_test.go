package postgres_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/postgres"
)

// A platform creates the provisioner once, over a superuser pool, and
// provisions a database per app; the attachment makes it DATABASE_URL.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("SLIPWAY_POSTGRES_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	p, err := postgres.New(ctx, postgres.Config{
		Admin: pool,
		Plans: append(postgres.DefaultPlans(), postgres.Plan{Name: "reporting", ConnectionLimit: 5}),
	})
	if err != nil {
		panic(err)
	}
	// The request id is stored with the app before the call, so a retry
	// after a crash gets the same database.
	res, err := p.Provision(ctx, addons.Request{RequestID: "shop-database-1", App: "shop", Plan: "hobby"})
	if err != nil {
		panic(err)
	}
	name := addons.AttachmentName(p.Capabilities(), nil)
	ch, err := addons.AttachChange(addons.Attachment{App: "shop", Name: name, ResourceID: res.ID}, res.Config, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(ch) // secrets stay redacted
}
