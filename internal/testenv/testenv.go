// Package testenv finds the real services that Slipway's integration tests
// run against: BuildKit, runc, PostgreSQL, Redis and an OCI registry.
//
// scripts/services.sh starts them and writes their addresses to an env file
// that scripts/test.sh sources. When a variable is missing, a test skips
// with a message naming it, except under CI=true, where a missing service
// fails the test: CI must never pass by skipping.
package testenv

import (
	"os"
	"testing"
)

// Variables the services script exports.
const (
	BuildKitVar  = "SLIPWAY_BUILDKIT_ADDR" // buildkitd address, e.g. unix:///.../buildkitd.sock
	BuildctlVar  = "SLIPWAY_BUILDCTL"      // path of the buildctl binary of the same version
	RuncVar      = "SLIPWAY_RUNC"          // path of the runc binary
	PostgresVar  = "SLIPWAY_POSTGRES_URL"  // a superuser connection URL
	RedisVar     = "SLIPWAY_REDIS_URL"     // redis://user:password@127.0.0.1:port with an admin user
	RegistryVar  = "SLIPWAY_REGISTRY"      // host:port of a plain-HTTP OCI registry on loopback
	StacksVar    = "SLIPWAY_STACKS"        // directory of stack OCI layouts made by scripts/stacks.sh
	NginxVar     = "SLIPWAY_NGINX"         // path of the nginx binary, for router benchmarks
	WrkVar       = "SLIPWAY_WRK"           // path of the wrk load generator
	PebbleVar    = "SLIPWAY_PEBBLE"        // path of Let's Encrypt's Pebble ACME test server
	BuildkitdVar = "SLIPWAY_BUILDKITD"     // path of the buildkitd binary, for programs that supervise their own
)

// CI reports whether the tests run under CI, where missing services fail.
func CI() bool { return os.Getenv("CI") == "true" }

// Get returns the value of the variable name, or ends the test: a skip that
// names the variable locally, a failure under CI=true.
func Get(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := name + " is not set: run scripts/services.sh and source the env file it prints (scripts/test.sh does both)"
	if CI() {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// Missing ends the test for want of something the machine lacks (a tool, a
// privilege, an address): a skip with msg locally, a failure under
// CI=true, where the set-up scripts provide everything.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if CI() {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// Root ends the test unless it runs as root, which runc and buildkitd need.
func Root(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if CI() {
		tb.Fatal("this test needs root (runc, overlayfs, cgroups)")
	}
	tb.Skip("this test needs root (runc, overlayfs, cgroups); run it as root")
}
