package paas_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildtest"
	"github.com/slipwayhq/slipway/paas"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/releasetest"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

// A platform wired from in-memory parts deploys an app with a release phase.
// A real one swaps in build/buildkit, release/bolt or release/postgres,
// scale/local and proxy (see examples/minipaas); the calls stay the same.
func Example() {
	ctx := context.Background()
	sched := scaletest.NewFake(scaletest.FakeConfig{})
	defer sched.Close()
	p, err := paas.New(paas.Config{
		Store:     releasetest.NewMemStore(),
		Scheduler: sched,
		Builder:   &buildtest.Fake{},
		Release:   release.ManagerConfig{WatchWindow: -1},
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	src, _ := os.MkdirTemp("", "app")
	defer os.RemoveAll(src)
	os.WriteFile(filepath.Join(src, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	os.WriteFile(filepath.Join(src, "Procfile"), []byte("release: print 1\nweb: web\n"), 0o644)

	if err := p.CreateApp(ctx, "hello"); err != nil {
		panic(err)
	}
	r, err := p.Deploy(ctx, "hello", build.Source{Dir: src}, paas.DeployOptions{Description: "Deploy 1f3e2a"})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.App, r.Version, r.Status)
	if _, err := p.SetConfig(ctx, "hello", map[string]string{"GREETING": "hi"}, nil, nil); err != nil {
		panic(err)
	}
	rs, _ := p.Releases(ctx, "hello", 0)
	for _, r := range rs {
		fmt.Printf("v%d %s %s: %s\n", r.Version, r.Status, r.Cause, r.Description)
	}
	// Output:
	// hello 1 deployed
	// v2 deployed config: Set GREETING config vars
	// v1 superseded build: Deploy 1f3e2a
}
