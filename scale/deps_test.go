package scale_test

import (
	"testing"

	"github.com/slipwayhq/slipway/internal/deptest"
)

// The contract package must link no scheduler backend (runc's spec types,
// client-go): a platform with a custom scheduler links only its own.
func TestDependencies(t *testing.T) {
	deptest.Check(t, "github.com/slipwayhq/slipway/scale", deptest.Backends...)
}
