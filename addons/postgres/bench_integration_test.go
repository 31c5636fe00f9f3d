//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/internal/latency"
)

// BenchmarkLatency measures Provision and Deprovision, interleaved with a
// reference that does the least a naive provisioner does (CREATE ROLE and
// CREATE DATABASE; DROP DATABASE and DROP ROLE, over the same pool), and
// reports medians, 95th percentiles and the ratio to the reference. Run
// it with -benchtime=50x (scripts/bench-addons.sh does).
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	p, pool := newProvisioner(b, nil)
	run := time.Now().UnixNano()
	var prov, deprov, refProv, refDeprov []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		res, err := p.Provision(ctx, addons.Request{RequestID: fmt.Sprintf("bench-%d-%d", run, i), App: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := p.Deprovision(ctx, res.ID); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		name := fmt.Sprintf(`"bench_ref_%d_%d"`, run, i)
		if _, err := pool.Exec(ctx, "CREATE ROLE "+name+" LOGIN PASSWORD 'reference-password'"); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "CREATE DATABASE "+name+" OWNER "+name+" TEMPLATE template0"); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := pool.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "DROP ROLE "+name); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		prov, deprov = append(prov, t1.Sub(t0)), append(deprov, t2.Sub(t1))
		refProv, refDeprov = append(refProv, t3.Sub(t2)), append(refDeprov, t4.Sub(t3))
	}
	latency.Report(b, "postgres", "raw CREATE ROLE+DATABASE", prov, deprov, refProv, refDeprov)
}
