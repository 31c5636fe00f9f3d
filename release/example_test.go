package release_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/releasetest"
	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

// routerFunc adapts a function to release.Traffic; a real platform passes
// its router (the paas facade adapts proxy.Router).
type routerFunc func(r release.Route)

func (f routerFunc) SetRoute(ctx context.Context, r release.Route) error { f(r); return nil }

func ExampleManager() {
	ctx := context.Background()
	sched := scaletest.NewFake(scaletest.FakeConfig{})
	defer sched.Close()
	m, err := release.NewManager(release.ManagerConfig{
		Store:       releasetest.NewMemStore(), // release/bolt or release/postgres in production
		Scheduler:   sched,
		Traffic:     routerFunc(func(r release.Route) { fmt.Printf("traffic -> v%d (%d backends)\n", r.Release, len(r.Backends)) }),
		WatchWindow: -1, // no post-switch watch in this example
	})
	if err != nil {
		panic(err)
	}
	if err := m.CreateApp(ctx, "shop"); err != nil {
		panic(err)
	}
	procs := map[string]string{"web": "web", "release": "exit 0"}
	r, err := m.Deploy(ctx, "shop", release.Build{Image: scale.Image{Ref: "shop:1"}, Processes: procs}, release.DeployOptions{Output: os.Stdout})
	if err != nil {
		panic(err)
	}
	fmt.Println(r, r.Status)

	// A release phase that fails leaves v1 serving.
	procs["release"] = "exit 1"
	_, err = m.Deploy(ctx, "shop", release.Build{Image: scale.Image{Ref: "shop:2"}, Processes: procs}, release.DeployOptions{})
	fmt.Println(errors.Is(err, release.ErrReleasePhaseFailed))

	// Rolling back to the failed v2 is refused; to v1 makes v3.
	_, err = m.Rollback(ctx, "shop", 2, release.DeployOptions{})
	fmt.Println(errors.Is(err, release.ErrRollbackToFailed))
	r, err = m.Rollback(ctx, "shop", 1, release.DeployOptions{SkipReleasePhase: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(r, r.Description)
	_ = sched.StopApp(ctx, "shop")
	// Output:
	// out 0
	// err 0
	// traffic -> v1 (1 backends)
	// shop v1 deployed
	// true
	// true
	// traffic -> v3 (1 backends)
	// shop v3 Rollback to v1
}

func ExampleConfig() {
	cfg, err := release.NewConfig(map[string]string{"DATABASE_URL": "postgres://app:hunter2@db/app", "PORT": "5000"})
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg)
	fmt.Printf("%#v\n", cfg)
	v, _ := cfg.Get("PORT")
	fmt.Println(v)

	_, err = cfg.With(map[string]string{"1BAD": "x"}, nil)
	fmt.Println(err)
	// Output:
	// Config{DATABASE_URL=[redacted], PORT=[redacted]}
	// release.Config{DATABASE_URL=[redacted], PORT=[redacted]}
	// 5000
	// release: invalid config var "1BAD": name starts with a digit
}
