//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/slipwayhq/slipway/addons/internal/latency"
)

// BenchmarkLatency measures Provision and Deprovision, interleaved with a
// reference that does the least a naive provisioner does (CREATE ROLE and
// CREATE DATABASE; DROP DATABASE and DROP ROLE, over the same pool), and
// reports medians, 95th percentiles and the ratio to the reference. Run
// it with -benchtime=50x (scripts/bench-addons.sh does).
func BenchmarkLatency(b *testing.B) {
	p, pool := newProvisioner(b, nil)
	name := func(run int64, i int) string { return fmt.Sprintf(`"bench_ref_%d_%d"`, run, i) }
	latency.Run(b, "postgres", p, latency.Reference{
		Name: "raw CREATE ROLE+DATABASE",
		Provision: func(ctx context.Context, run int64, i int) error {
			n := name(run, i)
			if _, err := pool.Exec(ctx, "CREATE ROLE "+n+" LOGIN PASSWORD 'reference-password'"); err != nil {
				return err
			}
			_, err := pool.Exec(ctx, "CREATE DATABASE "+n+" OWNER "+n+" TEMPLATE template0")
			return err
		},
		Deprovision: func(ctx context.Context, run int64, i int) error {
			n := name(run, i)
			if _, err := pool.Exec(ctx, "DROP DATABASE "+n+" WITH (FORCE)"); err != nil {
				return err
			}
			_, err := pool.Exec(ctx, "DROP ROLE "+n)
			return err
		},
	})
}
