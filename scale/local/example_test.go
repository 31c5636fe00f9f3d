package local_test

import (
	"context"
	"log"
	"time"

	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/local"
)

// A control plane opens the scheduler on its state directory, recovers the
// instances an earlier run left, and applies a formation.
func ExampleNew() {
	s, err := local.New(local.Config{
		StateDir: "/var/lib/minipaas/scale",
		Images:   "/var/lib/minipaas/images", // the OCI layout the builder writes
		Backoff:  local.Backoff{Initial: time.Second, Max: 20 * time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // instances keep running; the next control plane recovers them
	ctx := context.Background()
	if _, err := s.Recover(ctx); err != nil {
		log.Fatal(err)
	}
	err = s.Apply(ctx, scale.Formation{
		App: "shop", Release: 7, Image: scale.Image{Ref: "shop:v7"},
		Env: map[string]string{"DATABASE_URL": "postgres://..."},
		Processes: []scale.Process{
			{Type: "web", Command: "bundle exec puma -p $PORT", Count: 2, Port: true,
				Resources: scale.Resources{MemoryBytes: 512 << 20, CPUs: 1}},
			{Type: "worker", Command: "bundle exec sidekiq", Count: 1},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}
