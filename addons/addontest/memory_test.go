package addontest_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
)

func TestMemoryConformance(t *testing.T) {
	var m *addontest.Memory
	addontest.Run(t, addontest.Suite{
		New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
			m = &addontest.Memory{Logger: log}
			return m
		},
		Use: func(ctx context.Context, creds addons.Config, target addons.Resource) error {
			return m.Use(ctx, creds, target.ID)
		},
		Concurrency: 16,
	})
}
