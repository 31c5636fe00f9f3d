package build_test

import (
	"testing"

	"github.com/slipwayhq/slipway/internal/deptest"
)

// TestCoreDependencies proves that the core build package does not depend on
// BuildKit (or any other build engine): only build/buildkit may.
func TestCoreDependencies(t *testing.T) {
	deptest.Check(t, "github.com/slipwayhq/slipway/build", append(deptest.Backends, "google.golang.org/grpc")...)
}
