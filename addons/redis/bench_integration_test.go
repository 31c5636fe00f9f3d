//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/internal/latency"
)

// BenchmarkLatency measures Provision and Deprovision, interleaved with a
// reference that does the least a naive provisioner does (one ACL SETUSER;
// one ACL DELUSER), and reports medians, 95th percentiles and the ratio to
// the reference. Run it with -benchtime=50x (scripts/bench-addons.sh
// does).
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	p, admin := newProvisioner(b, nil)
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
		user := fmt.Sprintf("bench-ref-%d-%d", run, i)
		if err := admin.ACLSetUser(ctx, user, "reset", "on", ">reference-password", "~"+user+":*", "+@all", "-@admin", "-@dangerous").Err(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := admin.ACLDelUser(ctx, user).Err(); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		prov, deprov = append(prov, t1.Sub(t0)), append(deprov, t2.Sub(t1))
		refProv, refDeprov = append(refProv, t3.Sub(t2)), append(refDeprov, t4.Sub(t3))
	}
	latency.Report(b, "redis", "one ACL SETUSER / DELUSER", prov, deprov, refProv, refDeprov)
}
