//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/slipwayhq/slipway/addons/internal/latency"
)

// BenchmarkLatency measures Provision and Deprovision, interleaved with a
// reference that does the least a naive provisioner does (one ACL SETUSER;
// one ACL DELUSER), and reports medians, 95th percentiles and the ratio to
// the reference. Run it with -benchtime=50x (scripts/bench-addons.sh
// does).
func BenchmarkLatency(b *testing.B) {
	p, admin := newProvisioner(b, nil)
	user := func(run int64, i int) string { return fmt.Sprintf("bench-ref-%d-%d", run, i) }
	latency.Run(b, "redis", p, latency.Reference{
		Name: "one ACL SETUSER / DELUSER",
		Provision: func(ctx context.Context, run int64, i int) error {
			u := user(run, i)
			return admin.ACLSetUser(ctx, u, "reset", "on", ">reference-password", "~"+u+":*", "+@all", "-@admin", "-@dangerous").Err()
		},
		Deprovision: func(ctx context.Context, run int64, i int) error {
			return admin.ACLDelUser(ctx, user(run, i)).Err()
		},
	})
}
