package addons_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps proves that the contract package imports no backend: adapters
// live in subpackages so that a platform that uses only some of them links
// only those.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/slipwayhq/slipway/addons").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/jackc/", "github.com/redis/", "net/http"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("addons imports %s", dep)
			}
		}
	}
}
