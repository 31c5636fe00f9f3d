package release_test

import (
	"testing"

	"github.com/slipwayhq/slipway/internal/deptest"
)

// The core package must not depend on a backend or on the router.
func TestDependencies(t *testing.T) {
	deptest.Check(t, "github.com/slipwayhq/slipway/release", append(deptest.Backends, "github.com/slipwayhq/slipway/proxy")...)
}
