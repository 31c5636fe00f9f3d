package release_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/releasetest"
	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

// background is newEnv with background watches of an hour: a deploy that
// waited for its watch would outlast the test's context.
func background(t *testing.T, edit func(*release.ManagerConfig)) *env {
	e := newEnv(t, func(c *release.ManagerConfig) {
		c.WatchInBackground, c.WatchWindow = true, time.Hour
		if edit != nil {
			edit(c)
		}
	})
	t.Cleanup(func() { e.m.Close() })
	return e
}

func (e *env) journal() release.Deploy {
	e.t.Helper()
	d, ok, err := e.store.Deploy(e.ctx, "app")
	if err != nil || !ok {
		e.t.Fatalf("journal: %v %v", ok, err)
	}
	return d
}

func (e *env) hasEvents(want ...string) {
	e.t.Helper()
	e.events.mu.Lock()
	evs := slices.Clone(e.events.ev)
	e.events.mu.Unlock()
	for _, w := range want {
		if !slices.Contains(evs, w) {
			e.t.Errorf("events %v lack %q", evs, w)
		}
	}
}

// journals records every journal write.
type journals struct {
	mu sync.Mutex
	ds []release.Deploy
}

func (j *journals) add(d release.Deploy) { j.mu.Lock(); j.ds = append(j.ds, d); j.mu.Unlock() }

func (j *journals) has(v int, step release.Step, o release.Outcome) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.ContainsFunc(j.ds, func(d release.Deploy) bool { return d.Release == v && d.Step == step && d.Outcome == o })
}

func TestBackgroundWatchReturnsOnceServing(t *testing.T) {
	e := background(t, nil)
	r := e.mustDeploy(web)
	// Deploy returned while its watch of an hour runs: the journal is at
	// the watch, the release already serves.
	if d := e.journal(); d.Step != release.StepWatch || d.Release != r.Version {
		t.Fatalf("journal after Deploy = %+v, want v%d at %s", d, r.Version, release.StepWatch)
	}
	if r.Status != release.StatusDeployed || e.app().Current != r.Version {
		t.Errorf("returned %s %s, current v%d", r, r.Status, e.app().Current)
	}
	e.serves(r.Version)

	// The watch holds the lease: another control plane waits.
	other, err := release.NewManager(release.ManagerConfig{Store: e.store, Scheduler: e.sched, Owner: "other"})
	if err != nil {
		t.Fatal(err)
	}
	var le *release.LeaseError
	if _, err := other.Deploy(e.ctx, "app", e.build(web), release.DeployOptions{}); !errors.As(err, &le) || le.Owner != "test" {
		t.Fatalf("other control plane's deploy = %v, want a *LeaseError naming test", err)
	}
	if err := other.Scale(e.ctx, "app", release.ProcessScale{Type: "web", Count: 2}); !errors.Is(err, release.ErrDeployInProgress) {
		t.Fatalf("other control plane's scale = %v, want ErrDeployInProgress", err)
	}
	// Recover of this Manager leaves its own watch alone.
	rep, err := e.m.Recover(e.ctx)
	if err != nil || len(rep.Apps) != 1 || !errors.Is(rep.Apps[0].Err, release.ErrDeployInProgress) {
		t.Fatalf("Recover during the watch = %+v, %v; want the app left busy", rep, err)
	}

	// Close leaves the watch to Recover and gives the lease back.
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	if d := e.journal(); d.Step != release.StepWatch {
		t.Fatalf("journal after Close = %+v, want it left at %s", d, release.StepWatch)
	}
	// A restarted control plane resumes the watch, here after its end.
	later, err := release.NewManager(release.ManagerConfig{Store: e.store, Scheduler: e.sched, Traffic: e.traffic, Owner: "other",
		Health: release.HealthCheck{Interval: 20 * time.Millisecond, Path: "/health"},
		Now:    func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = later.Recover(e.ctx)
	if err != nil || len(rep.Apps) != 1 || rep.Apps[0].Step != release.StepWatch || rep.Apps[0].Final.Outcome != release.OutcomeDeployed {
		t.Fatalf("Recover after Close = %+v, %v", rep, err)
	}
	e.serves(r.Version)

	// A deploy that reaches its watch after Close returns as well, the
	// watch left in the journal with no goroutine to run it.
	r2 := e.mustDeploy(map[string]string{"web": "web --v2"})
	if d := e.journal(); d.Step != release.StepWatch || d.Release != r2.Version {
		t.Fatalf("journal of a deploy after Close = %+v", d)
	}
	if err := later.Scale(e.ctx, "app", release.ProcessScale{Type: "web", Count: 1}); err != nil {
		t.Errorf("lease not given back after Close: %v", err)
	}
}

func TestBackgroundWatchRollsBack(t *testing.T) {
	e := background(t, nil)
	e.mustDeploy(web)
	// Crashes well after the switch (a slow machine must not fail it
	// before), within the hour of the watch.
	r, err := e.deploy(map[string]string{"web": "crash-later 1s"}, nil)
	if err != nil || r.Version != 2 {
		t.Fatalf("deploy = %s, %v; want v2 serving", r, err)
	}
	if err := e.m.Wait(e.ctx); err != nil {
		t.Fatal(err)
	}
	r2, r3 := e.rel(2), e.rel(3)
	if r2.Status != release.StatusFailed || !strings.Contains(r2.FailureReason, "rolled back") {
		t.Errorf("v2 = %s %q", r2.Status, r2.FailureReason)
	}
	if r3.Cause != release.CauseRollback || r3.RollbackOf != 1 {
		t.Errorf("v3 = %+v", r3)
	}
	if d := e.journal(); d.Release != 3 || !d.Finished() || d.Outcome != release.OutcomeDeployed {
		t.Errorf("journal = %+v", d)
	}
	e.serves(3)
	e.hasEvents("deploy.failed v2", "deploy.rollback v3", "deploy.succeeded v3")
}

func TestBackgroundWatchEndsAtNextChange(t *testing.T) {
	var j journals
	e := background(t, func(c *release.ManagerConfig) { c.OnStep = j.add })
	r1 := e.mustDeploy(web)
	r2, err := e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: map[string]string{"A": "1"}}, release.DeployOptions{})
	if err != nil {
		t.Fatalf("SetConfig during the watch: %v", err)
	}
	if !j.has(r1.Version, release.StepDone, release.OutcomeDeployed) {
		t.Errorf("v%d's watch was not journaled as deployed: %+v", r1.Version, j.ds)
	}
	if s := e.rel(r1.Version).Status; s != release.StatusSuperseded {
		t.Errorf("v%d is %s, want superseded", r1.Version, s)
	}
	if d := e.journal(); d.Release != r2.Version || d.Step != release.StepWatch {
		t.Errorf("journal = %+v, want v%d watched", d, r2.Version)
	}
	e.serves(r2.Version)

	// Scale and Rollback end the watch too.
	if err := e.m.Scale(e.ctx, "app", release.ProcessScale{Type: "web", Count: 2}); err != nil {
		t.Fatalf("Scale during the watch: %v", err)
	}
	if d := e.journal(); d.Release != r2.Version || d.Outcome != release.OutcomeDeployed {
		t.Errorf("journal after Scale = %+v", d)
	}
	r3, err := e.m.Rollback(e.ctx, "app", r1.Version, release.DeployOptions{})
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if _, err := e.m.Rollback(e.ctx, "app", r2.Version, release.DeployOptions{}); err != nil {
		t.Fatalf("Rollback during the watch: %v", err)
	}
	if !j.has(r3.Version, release.StepDone, release.OutcomeDeployed) {
		t.Errorf("v%d's watch was not journaled as deployed", r3.Version)
	}
	// EndWatch ends it for whoever acts on the instances without the
	// Manager.
	if err := e.m.EndWatch(e.ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if d := e.journal(); !d.Finished() || d.Outcome != release.OutcomeDeployed {
		t.Errorf("journal after EndWatch = %+v", d)
	}
	if len(e.running()[e.app().Current]) != 2 {
		t.Errorf("running %v, want two web instances of v%d", e.running(), e.app().Current)
	}
	e.hasEvents("deploy.succeeded v1", "deploy.succeeded v2")
}

// A background watch and a change that ends it race well: only one of
// two concurrent changes runs, the other gets ErrDeployInProgress.
func TestBackgroundWatchConcurrentChanges(t *testing.T) {
	e := background(t, nil)
	e.mustDeploy(web)
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: map[string]string{"N": string(rune('a' + i))}}, release.DeployOptions{})
			errs <- err
		}()
	}
	var ok, busy int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, release.ErrDeployInProgress):
			busy++
		default:
			t.Errorf("SetConfig: %v", err)
		}
	}
	if ok == 0 || ok+busy != 2 {
		t.Errorf("%d succeeded, %d busy", ok, busy)
	}
	e.serves(e.app().Current)
}

func TestBackgroundWatchNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ctx := context.Background()
		sched := scaletest.NewFake(scaletest.FakeConfig{})
		defer sched.Close()
		m, err := release.NewManager(release.ManagerConfig{Store: releasetest.NewMemStore(), Scheduler: sched, Traffic: newTraffic(),
			Health: release.HealthCheck{Interval: 5 * time.Millisecond}, WatchWindow: time.Hour, WatchInBackground: true, LeaseTTL: 30 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CreateApp(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := m.Deploy(ctx, "app", release.Build{Image: scale.Image{Ref: "x"}, Processes: map[string]string{"web": "web"}}, release.DeployOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sched.StopApp(ctx, "app"); err != nil {
			t.Fatal(err)
		}
	}()
	checkGoroutines(t, before)
}
