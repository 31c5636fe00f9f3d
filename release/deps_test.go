package release_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The core package must not depend on a backend or on the router.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/slipwayhq/slipway/release").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/jackc/", "go.etcd.io/bbolt", "github.com/moby/buildkit", "github.com/slipwayhq/slipway/proxy", "k8s.io/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("release imports %s", dep)
			}
		}
	}
}
