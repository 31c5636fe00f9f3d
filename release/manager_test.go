package release_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/releasetest"
	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

// fakeTraffic is a router that records every route it is given.
type fakeTraffic struct {
	mu      sync.Mutex
	routes  map[string]release.Route
	history []release.Route
}

func newTraffic() *fakeTraffic { return &fakeTraffic{routes: map[string]release.Route{}} }

func (f *fakeTraffic) SetRoute(ctx context.Context, r release.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[r.App] = r
	f.history = append(f.history, r)
	return nil
}

func (f *fakeTraffic) route(app string) release.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes[app]
}

// programs adds to scaletest.FakeProgram:
//
//	crash-later D   bind, then exit 1 after D
//	clock           a singleton that counts how many run at once
type programs struct {
	clocks, maxClocks atomic.Int32
}

func (p *programs) program(cmd string) scaletest.Program {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 2 && f[0] == "crash-later":
		d, _ := time.ParseDuration(f[1])
		return func(pr *scaletest.Proc) int {
			pr.Bind()
			select {
			case <-time.After(d):
				return 1
			case <-pr.Terminated():
				return 0
			case <-pr.Context().Done():
				return -1
			}
		}
	case strings.TrimSpace(cmd) == "clock":
		return func(pr *scaletest.Proc) int {
			n := p.clocks.Add(1)
			for {
				m := p.maxClocks.Load()
				if n <= m || p.maxClocks.CompareAndSwap(m, n) {
					break
				}
			}
			defer p.clocks.Add(-1)
			select {
			case <-pr.Terminated():
				return 0
			case <-pr.Context().Done():
				return -1
			}
		}
	}
	return scaletest.FakeProgram(cmd)
}

type env struct {
	t       *testing.T
	ctx     context.Context
	store   *releasetest.MemStore
	sched   *scaletest.Fake
	traffic *fakeTraffic
	progs   *programs
	m       *release.Manager
	events  *eventLog
}

type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (e *eventLog) add(s string) { e.mu.Lock(); e.ev = append(e.ev, s); e.mu.Unlock() }

func newEnv(t *testing.T, edit func(*release.ManagerConfig)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, store: releasetest.NewMemStore(), traffic: newTraffic(), progs: &programs{}, events: &eventLog{}}
	e.sched = scaletest.NewFake(scaletest.FakeConfig{Program: e.progs.program, Listen: true})
	t.Cleanup(func() {
		_ = e.sched.StopApp(context.Background(), "app")
		e.sched.Close()
	})
	cfg := release.ManagerConfig{
		Store: e.store, Scheduler: e.sched, Traffic: e.traffic, Owner: "test",
		Health:      release.HealthCheck{Interval: 20 * time.Millisecond, Attempts: 100, Path: "/health"},
		WatchWindow: 300 * time.Millisecond, UnhealthyPolls: 2,
		Events: observe.EventSinkFunc(func(ev observe.Event) { e.events.add(fmt.Sprintf("%s v%d", ev.Kind, ev.Release)) }),
	}
	if edit != nil {
		edit(&cfg)
	}
	m, err := release.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	if err := m.CreateApp(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) build(procs map[string]string) release.Build {
	return release.Build{Image: scale.Image{Ref: "img", Digest: fmt.Sprintf("sha256:%064d", len(procs))}, Processes: procs}
}

func (e *env) deploy(procs map[string]string, out io.Writer) (release.Release, error) {
	return e.m.Deploy(e.ctx, "app", e.build(procs), release.DeployOptions{Output: out})
}

func (e *env) mustDeploy(procs map[string]string) release.Release {
	e.t.Helper()
	r, err := e.deploy(procs, nil)
	if err != nil {
		e.t.Fatalf("deploy: %v", err)
	}
	return r
}

// running returns the ids of the app's instances that run, by release
// (one-offs aside).
func (e *env) running() map[int][]string {
	e.t.Helper()
	insts, err := e.sched.Instances(e.ctx, scale.Query{App: "app"})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int][]string{}
	for _, in := range insts {
		if in.ProcessType == release.ReleaseProcessType || in.State == scale.StateStopped {
			continue
		}
		out[in.Release] = append(out[in.Release], in.ID)
	}
	return out
}

func (e *env) app() release.App {
	a, err := e.store.App(e.ctx, "app")
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) rel(v int) release.Release {
	r, err := e.store.Release(e.ctx, "app", v)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// serves checks that exactly release v runs and takes the traffic.
func (e *env) serves(v int) {
	e.t.Helper()
	run := e.running()
	if len(run) != 1 || len(run[v]) == 0 {
		e.t.Errorf("running releases = %v, want only v%d", run, v)
	}
	if r := e.traffic.route("app"); r.Release != v || len(r.Backends) == 0 {
		e.t.Errorf("route = %+v, want v%d", r, v)
	}
	if a := e.app(); a.Current != v {
		e.t.Errorf("current = v%d, want v%d", a.Current, v)
	}
	if r := e.rel(v); r.Status != release.StatusDeployed {
		e.t.Errorf("v%d is %s, want deployed", v, r.Status)
	}
}

var web = map[string]string{"web": "web", "worker": "wait", "release": "exit 0"}

func TestDeployAndReplace(t *testing.T) {
	e := newEnv(t, nil)
	var out bytes.Buffer
	r1, err := e.deploy(web, &out)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != 1 || r1.Status != release.StatusDeployed || r1.Cause != release.CauseBuild {
		t.Errorf("v1 = %+v", r1)
	}
	if !strings.Contains(out.String(), "out 0") {
		t.Errorf("release phase output %q not streamed", out.String())
	}
	e.serves(1)
	r2 := e.mustDeploy(map[string]string{"web": "web", "worker": "wait"})
	if r2.Version != 2 {
		t.Fatalf("v%d", r2.Version)
	}
	e.serves(2)
	if s := e.rel(1).Status; s != release.StatusSuperseded {
		t.Errorf("v1 is %s, want superseded", s)
	}
	for _, rt := range e.traffic.history {
		if len(rt.Backends) == 0 {
			t.Errorf("traffic went to no backend: %+v", rt)
		}
	}
	e.events.mu.Lock()
	evs := strings.Join(e.events.ev, ",")
	e.events.mu.Unlock()
	for _, want := range []string{"release.created v2", "deploy.started v2", "release.phase v1", "deploy.succeeded v2"} {
		if !strings.Contains(evs, want) {
			t.Errorf("events %s lack %s", evs, want)
		}
	}
	if d, _, _ := e.store.Deploy(e.ctx, "app"); d.Step != release.StepDone || d.Outcome != release.OutcomeDeployed {
		t.Errorf("journal = %+v", d)
	}
}

func TestReleasePhaseFailureLeavesCurrentUntouched(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDeploy(web)
	before := e.running()[1]
	var out bytes.Buffer
	_, err := e.deploy(map[string]string{"web": "web", "release": "exit 3"}, &out)
	var de *release.DeployError
	if !errors.Is(err, release.ErrReleasePhaseFailed) || !errors.As(err, &de) || de.Version != 2 {
		t.Fatalf("deploy = %v, want ErrReleasePhaseFailed for v2", err)
	}
	r2 := e.rel(2)
	if r2.Status != release.StatusFailed || !strings.Contains(r2.FailureReason, "code 3") || !strings.Contains(r2.FailureReason, "err 3") {
		t.Errorf("v2 = %s %q", r2.Status, r2.FailureReason)
	}
	e.serves(1)
	if after := e.running()[1]; fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("v1 instances changed: %v -> %v", before, after)
	}
	if _, err := e.m.Rollback(e.ctx, "app", 2, release.DeployOptions{}); !errors.Is(err, release.ErrRollbackToFailed) {
		t.Errorf("rollback to the failed v2 = %v, want ErrRollbackToFailed", err)
	}
	if a := e.app(); a.Latest != 2 {
		t.Errorf("a refused rollback made a release: latest %d", a.Latest)
	}
}

func TestReleasePhaseOutputIsBounded(t *testing.T) {
	e := newEnv(t, nil)
	var n countWriter
	// ~1.1 MB of output.
	_, err := e.deploy(map[string]string{"web": "web", "release": "print 100000"}, &n)
	if err != nil {
		t.Fatal(err)
	}
	if n.n.Load() < 1<<20 {
		t.Errorf("only %d bytes streamed", n.n.Load())
	}
	e2 := newEnv(t, func(c *release.ManagerConfig) { c.OutputTail = 1000 })
	_, err = e2.deploy(map[string]string{"web": "web", "release": "exit 9"}, nil)
	if !errors.Is(err, release.ErrReleasePhaseFailed) {
		t.Fatal(err)
	}
	if r := e2.rel(1).FailureReason; len(r) > 1200 {
		t.Errorf("failure reason is %d bytes", len(r))
	}
}

type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

func TestReleasePhaseTimeout(t *testing.T) {
	e := newEnv(t, func(c *release.ManagerConfig) { c.ReleaseTimeout = 200 * time.Millisecond })
	e.mustDeploy(map[string]string{"web": "web"})
	start := time.Now()
	_, err := e.deploy(map[string]string{"web": "web", "release": "ignore-term"}, nil)
	if !errors.Is(err, release.ErrReleasePhaseFailed) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("deploy = %v, want a release phase timeout", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("timeout took %v", time.Since(start))
	}
	e.serves(1)
}

func TestUnhealthyNeverTakesOver(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDeploy(web)
	_, err := e.deploy(map[string]string{"web": "exit 1"}, nil)
	if !errors.Is(err, release.ErrUnhealthy) {
		t.Fatalf("deploy = %v, want ErrUnhealthy", err)
	}
	e.serves(1)
	if s := e.rel(2).Status; s != release.StatusFailed {
		t.Errorf("v2 is %s", s)
	}
}

type statusTransport struct{ code int }

func (s statusTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: s.code, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

func TestHTTPHealthCheck(t *testing.T) {
	e := newEnv(t, func(c *release.ManagerConfig) {
		c.Health.Client = &http.Client{Transport: statusTransport{503}}
		c.Health.Attempts = 5
	})
	_, err := e.deploy(map[string]string{"web": "web"}, nil)
	if !errors.Is(err, release.ErrUnhealthy) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("deploy = %v, want ErrUnhealthy naming 503", err)
	}
	if len(e.running()) != 0 {
		t.Errorf("instances left: %v", e.running())
	}
}

func TestAutomaticRollback(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDeploy(web)
	_, err := e.deploy(map[string]string{"web": "crash-later 150ms"}, nil)
	if !errors.Is(err, release.ErrRolledBack) {
		t.Fatalf("deploy = %v, want ErrRolledBack", err)
	}
	r2, r3 := e.rel(2), e.rel(3)
	if r2.Status != release.StatusFailed || !strings.Contains(r2.FailureReason, "rolled back") {
		t.Errorf("v2 = %s %q", r2.Status, r2.FailureReason)
	}
	if r3.Cause != release.CauseRollback || r3.RollbackOf != 1 || !strings.Contains(r3.Description, "Automatic rollback to v1") {
		t.Errorf("v3 = %+v", r3)
	}
	e.serves(3)
}

func TestRollback(t *testing.T) {
	e := newEnv(t, nil)
	cfg := release.ConfigChange{Set: map[string]string{"GREETING": "hello"}}
	if _, err := e.m.SetConfig(e.ctx, "app", cfg, release.DeployOptions{}); err != nil {
		t.Fatal(err) // no build yet: a release with nothing to run
	}
	e.mustDeploy(web)                                     // v2
	e.mustDeploy(map[string]string{"web": "web --other"}) // v3
	r, err := e.m.Rollback(e.ctx, "app", 2, release.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 4 || r.RollbackOf != 2 || r.Processes["web"] != "web" || r.Cause != release.CauseRollback {
		t.Errorf("rollback release = %+v", r)
	}
	if v, _ := r.Config.Get("GREETING"); v != "hello" {
		t.Error("rollback lost the config")
	}
	e.serves(4)
	if _, err := e.m.Rollback(e.ctx, "app", 99, release.DeployOptions{}); !errors.Is(err, release.ErrReleaseNotFound) {
		t.Errorf("rollback to v99 = %v", err)
	}
	if _, err := e.m.Rollback(e.ctx, "app", 1, release.DeployOptions{}); !errors.Is(err, release.ErrNotRunnable) {
		t.Errorf("rollback to v1 (no image) = %v", err)
	}
	if _, err := e.m.Rollback(e.ctx, "ghost", 1, release.DeployOptions{}); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("rollback of an unknown app = %v", err)
	}
}

func TestRollbackSkipsReleasePhaseWhenAsked(t *testing.T) {
	e := newEnv(t, func(c *release.ManagerConfig) { c.SkipReleasePhaseOnRollback = true })
	e.mustDeploy(map[string]string{"web": "web", "release": "exit 0"})
	e.mustDeploy(map[string]string{"web": "web"})
	var out bytes.Buffer
	if _, err := e.m.Rollback(e.ctx, "app", 1, release.DeployOptions{Output: &out}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("release phase ran on rollback: %q", out.String())
	}
}

func TestSetConfig(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDeploy(map[string]string{"web": "web", "release": "env SECRET"})
	var out bytes.Buffer
	r, err := e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: map[string]string{"SECRET": "s3"}}, release.DeployOptions{Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || r.Cause != release.CauseConfig || r.Description != "Set SECRET config vars" {
		t.Errorf("config release = %+v", r)
	}
	if !strings.Contains(out.String(), "SECRET=s3") {
		t.Errorf("release phase did not see the new config: %q", out.String())
	}
	e.serves(2)
	for _, bad := range []map[string]string{{"A=B": "x"}, {"1A": "x"}, {"A\x00": "x"}, {"BIG": strings.Repeat("x", release.MaxValueBytes+1)}, {"NUL": "a\x00"}} {
		_, err := e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: bad}, release.DeployOptions{})
		if !errors.Is(err, release.ErrInvalidConfig) {
			t.Errorf("SetConfig(bad) = %v, want ErrInvalidConfig", err)
		}
		if err != nil && strings.Contains(err.Error(), "xxxx") {
			t.Error("error holds the value")
		}
	}
	if a := e.app(); a.Latest != 2 {
		t.Errorf("refused config changes made releases: latest %d", a.Latest)
	}
	// Add-ons: attach brings vars, detach removes them.
	att := release.Attachment{Name: "DATABASE", Provider: "postgres", Vars: []string{"DATABASE_URL"}}
	r, err = e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: map[string]string{"DATABASE_URL": "postgres://x"}, Attach: []release.Attachment{att}}, release.DeployOptions{})
	if err != nil || r.Cause != release.CauseAddon || len(r.Attachments) != 1 {
		t.Fatalf("attach: %+v %v", r, err)
	}
	r, err = e.m.SetConfig(e.ctx, "app", release.ConfigChange{Detach: []string{"DATABASE"}}, release.DeployOptions{})
	if err != nil || len(r.Attachments) != 0 {
		t.Fatalf("detach: %+v %v", r, err)
	}
	if _, ok := r.Config.Get("DATABASE_URL"); ok {
		t.Error("detach kept the add-on's var")
	}
	if v, _ := r.Config.Get("SECRET"); v != "s3" {
		t.Error("detach lost other vars")
	}
	if _, err := e.m.SetConfig(e.ctx, "ghost", release.ConfigChange{}, release.DeployOptions{}); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("SetConfig(ghost) = %v", err)
	}
}

func TestOneDeployAtATime(t *testing.T) {
	e := newEnv(t, nil)
	done := make(chan error)
	go func() {
		_, err := e.deploy(map[string]string{"web": "web", "release": "sleep 500ms"}, nil)
		done <- err
	}()
	// Wait until the first deploy is in its release phase.
	for {
		if d, ok, _ := e.store.Deploy(e.ctx, "app"); ok && d.Step == release.StepReleasePhase {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := e.deploy(web, nil); !errors.Is(err, release.ErrDeployInProgress) {
		t.Errorf("second deploy = %v, want ErrDeployInProgress", err)
	}
	other, _ := release.NewManager(release.ManagerConfig{Store: e.store, Scheduler: e.sched, Owner: "other"})
	if _, err := other.Deploy(e.ctx, "app", e.build(web), release.DeployOptions{}); !errors.Is(err, release.ErrDeployInProgress) {
		t.Errorf("deploy from another control plane = %v, want ErrDeployInProgress", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDeadOwnersLeaseIsTakenOver(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.store.AcquireLease(e.ctx, "app", "dead", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := e.deploy(web, nil); !errors.Is(err, release.ErrDeployInProgress) {
		t.Fatalf("deploy under a live lease = %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	e.mustDeploy(web)
	e.serves(1)
}

func TestSingletonNeverDoubled(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.m.Scale(e.ctx, "app", release.ProcessScale{Type: "clock", Count: 1, Singleton: true}); err != nil {
		t.Fatal(err)
	}
	procs := map[string]string{"web": "web", "clock": "clock"}
	e.mustDeploy(procs)
	e.mustDeploy(map[string]string{"web": "web", "clock": "clock "})
	e.mustDeploy(procs)
	if n := e.progs.maxClocks.Load(); n != 1 {
		t.Errorf("%d clocks ran at once, want 1", n)
	}
	e.serves(3)
	if n := e.progs.clocks.Load(); n != 1 {
		t.Errorf("%d clocks run, want 1", n)
	}
}

func TestScale(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDeploy(web)
	if err := e.m.Scale(e.ctx, "app", release.ProcessScale{Type: "web", Count: 3}, release.ProcessScale{Type: "worker", Count: 2}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(e.running()[1]) != 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(e.running()[1]); n != 5 {
		t.Errorf("%d instances, want 5", n)
	}
	if rt := e.traffic.route("app"); len(rt.Backends) != 3 {
		t.Errorf("route after scaling up = %+v, want 3 backends", rt)
	}
	if err := e.m.Scale(e.ctx, "app", release.ProcessScale{Type: "web", Count: 1}); err != nil {
		t.Fatal(err)
	}
	if rt := e.traffic.route("app"); len(rt.Backends) != 1 {
		t.Errorf("route after scaling down = %+v, want 1 backend", rt)
	}
	if err := e.m.Scale(e.ctx, "app", release.ProcessScale{Type: "web", Count: 3}); err != nil {
		t.Fatal(err)
	}
	r := e.mustDeploy(web)
	if rt := e.traffic.route("app"); len(rt.Backends) != 3 || rt.Release != r.Version {
		t.Errorf("route after scaled deploy = %+v, want 3 backends of v%d", rt, r.Version)
	}
}

// Cancelling a deploy at each journaled step (a crash that kills only the
// goroutine) and recovering with a new Manager leaves one release serving.
func TestRecoverAfterInterruptionAtEveryStep(t *testing.T) {
	for stop := 1; stop <= 6; stop++ {
		t.Run(fmt.Sprint("step", stop), func(t *testing.T) {
			e := newEnv(t, nil)
			e.mustDeploy(web)
			ctx, cancel := context.WithCancel(e.ctx)
			n := 0
			var at release.Step
			m, _ := release.NewManager(release.ManagerConfig{
				Store: e.store, Scheduler: e.sched, Traffic: e.traffic, Owner: "test",
				Health:      release.HealthCheck{Interval: 20 * time.Millisecond},
				WatchWindow: 200 * time.Millisecond,
				OnStep: func(d release.Deploy) {
					if n++; n == stop {
						at = d.Step
						cancel()
					}
				},
			})
			_, err := m.Deploy(ctx, "app", e.build(map[string]string{"web": "web", "worker": "wait", "release": "exit 0"}), release.DeployOptions{})
			t.Logf("interrupted at %s: %v", at, err)
			rep, err := e.m.Recover(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			d, _, _ := e.store.Deploy(e.ctx, "app")
			if !d.Finished() {
				t.Fatalf("journal unfinished after Recover: %+v (report %+v)", d, rep)
			}
			cur := e.app().Current
			e.serves(cur)
			if at == release.StepReleasePhase && cur != 1 {
				t.Errorf("interrupted in the release phase, yet v%d serves", cur)
			}
		})
	}
}

func TestReleasePhaseLogs(t *testing.T) {
	var mu sync.Mutex
	var lines []observe.LogLine
	e := newEnv(t, func(c *release.ManagerConfig) {
		c.Logs = observe.LogSinkFunc(func(l observe.LogLine) { mu.Lock(); lines = append(lines, l); mu.Unlock() })
	})
	e.mustDeploy(map[string]string{"web": "web", "release": "print 3"})
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, l := range lines {
		if l.Source != observe.SourceRelease || l.App != "app" {
			t.Errorf("line %+v", l)
		}
		got = append(got, l.Text)
	}
	if strings.Join(got, "|") != "line 1|line 2|line 3" {
		t.Errorf("release phase log lines = %q", got)
	}
}

func TestScaleRefusesBadInput(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []release.ProcessScale{
		{Type: "web", Count: -1}, {Type: "web", Count: scale.MaxInstancesPerType + 1},
		{Type: "clock", Count: 2, Singleton: true}, {Type: "release", Count: 1}, {Type: "Web", Count: 1},
	} {
		if err := e.m.Scale(e.ctx, "app", p); !errors.Is(err, release.ErrInvalid) {
			t.Errorf("Scale(%+v) = %v, want ErrInvalid", p, err)
		}
	}
	if err := e.m.Scale(e.ctx, "ghost", release.ProcessScale{Type: "web", Count: 1}); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("Scale(ghost) = %v", err)
	}
	if _, err := e.m.Deploy(e.ctx, "ghost", e.build(web), release.DeployOptions{}); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("Deploy(ghost) = %v", err)
	}
}

func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	const secret = "hunter2-very-secret"
	var logs bytes.Buffer
	var mu sync.Mutex
	var evs []string
	e := newEnv(t, func(c *release.ManagerConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Events = observe.EventSinkFunc(func(ev observe.Event) { mu.Lock(); evs = append(evs, fmt.Sprintf("%+v", ev)); mu.Unlock() })
	})
	e.mustDeploy(web)
	var errs []string
	_, err := e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: map[string]string{"TOKEN": secret}}, release.DeployOptions{})
	errs = append(errs, fmt.Sprint(err))
	_, err = e.m.SetConfig(e.ctx, "app", release.ConfigChange{Set: map[string]string{"TOKEN=" + secret: "x"}}, release.DeployOptions{})
	errs = append(errs, fmt.Sprint(err))
	_, err = e.deploy(map[string]string{"web": "exit 1", "release": "exit 2"}, nil)
	errs = append(errs, fmt.Sprint(err))
	rels, _ := e.store.Releases(e.ctx, "app", 0)
	mu.Lock()
	all := logs.String() + strings.Join(errs, "\n") + strings.Join(evs, "\n") + fmt.Sprintf("%v %+v %#v", rels, rels, rels)
	mu.Unlock()
	if strings.Contains(all, secret) {
		t.Errorf("the secret leaked:\n%s", all)
	}
	if !strings.Contains(logs.String(), "deploy step") {
		t.Error("the logger saw nothing; the test proves nothing")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ctx := context.Background()
		sched := scaletest.NewFake(scaletest.FakeConfig{})
		defer sched.Close()
		m, err := release.NewManager(release.ManagerConfig{Store: releasetest.NewMemStore(), Scheduler: sched, Traffic: newTraffic(),
			Health: release.HealthCheck{Interval: 5 * time.Millisecond}, WatchWindow: 50 * time.Millisecond, LeaseTTL: 30 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CreateApp(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := m.Deploy(ctx, "app", release.Build{Image: scale.Image{Ref: "x"}, Processes: map[string]string{"web": "web", "release": "exit 0"}}, release.DeployOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := m.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if err := sched.StopApp(ctx, "app"); err != nil {
			t.Fatal(err)
		}
	}()
	checkGoroutines(t, before)
}

// refusingTraffic fails every SetRoute to a release above ok.
type refusingTraffic struct {
	*fakeTraffic
	ok int
}

func (r refusingTraffic) SetRoute(ctx context.Context, rt release.Route) error {
	if rt.Release > r.ok {
		return errors.New("proxy: backend failed its health check")
	}
	return r.fakeTraffic.SetRoute(ctx, rt)
}

func TestRouterRefusalAborts(t *testing.T) {
	tr := newTraffic()
	e := newEnv(t, func(c *release.ManagerConfig) { c.Traffic = refusingTraffic{tr, 1} })
	e.traffic = tr
	e.mustDeploy(web)
	_, err := e.deploy(map[string]string{"web": "web"}, nil)
	if !errors.Is(err, release.ErrUnhealthy) || !strings.Contains(err.Error(), "switching traffic") {
		t.Fatalf("deploy = %v, want a failed switch", err)
	}
	e.serves(1)
}

// checkGoroutines fails t when more goroutines run than before, once those
// that are ending have had 5 s to end.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
