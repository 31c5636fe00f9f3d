package paas_test

import (
	"testing"

	"github.com/slipwayhq/slipway/internal/deptest"
)

// The facade wires interfaces; it must link no backend.
func TestDependencies(t *testing.T) {
	deptest.Check(t, "github.com/slipwayhq/slipway/paas", deptest.Backends...)
}
