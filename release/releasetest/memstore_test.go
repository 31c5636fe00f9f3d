package releasetest_test

import (
	"testing"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/releasetest"
)

func TestMemStore(t *testing.T) {
	releasetest.Run(t, releasetest.Harness{
		New: func(t *testing.T) release.Store { return releasetest.NewMemStore() },
	})
}
