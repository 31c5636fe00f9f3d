package buildtest_test

import (
	"testing"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildtest"
)

func TestFake(t *testing.T) {
	buildtest.Run(t, buildtest.Config{
		New:         func(*testing.T) build.Builder { return &buildtest.Fake{} },
		Apps:        "../../examples/apps",
		NoExecution: true,
	})
}
