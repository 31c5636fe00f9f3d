// Package deptest proves what a package does not depend on, as tailscale's
// dependency tests do: core packages (build, release, scale, addons, paas)
// must not link a backend, so a platform that uses only some backends links
// only those.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Backends are the import path prefixes of the backends core packages must
// not depend on.
var Backends = []string{
	"github.com/moby/buildkit",
	"github.com/containerd/",
	"github.com/jackc/",
	"go.etcd.io/bbolt",
	"github.com/redis/",
	"k8s.io/",
	"github.com/opencontainers/runtime-spec",
}

// Check fails t for every package pkg depends on (directly or not) whose
// import path starts with one of banned.
func Check(t *testing.T, pkg string, banned ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.HasPrefix(dep, b) {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
