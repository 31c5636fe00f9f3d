package build_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDependencies proves that the core build package does not depend on
// BuildKit (or any other build engine): only build/buildkit may.
func TestCoreDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/slipwayhq/slipway/build").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/moby/buildkit", "github.com/containerd/", "google.golang.org/grpc"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("build imports %s", dep)
			}
		}
	}
}
