package addons_test

import (
	"testing"

	"github.com/slipwayhq/slipway/internal/deptest"
)

// TestDeps proves that the contract package imports no backend, nor an HTTP
// stack: adapters live in subpackages so that a platform that uses only
// some of them links only those.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/slipwayhq/slipway/addons", append(deptest.Backends, "net/http")...)
}
