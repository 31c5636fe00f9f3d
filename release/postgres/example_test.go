package postgres_test

import (
	"context"
	"os"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/postgres"
	"github.com/slipwayhq/slipway/scale"
)

func ExampleOpen() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Options{Schema: "slipway_release"})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	// Several control planes may share the store: each Manager takes a
	// per-app lease in it.
	var sched scale.Scheduler // scale/local, scale/kubernetes, ...
	m, err := release.NewManager(release.ManagerConfig{Store: s, Scheduler: sched})
	if err != nil {
		panic(err)
	}
	_ = m
}
