package release_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/testenv"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/bolt"
	"github.com/slipwayhq/slipway/release/postgres"
	"github.com/slipwayhq/slipway/scale"
)

// The crash harness: a control plane (this test binary, re-executed) is
// killed with SIGKILL at every journaled step of a deploy (right after the
// journal write, before the step acts) and after every change it makes to
// the scheduler or the router (acted, not yet journaled). A new Manager on
// the same store and world then runs Recover, and the test checks the
// invariants: the
// journal is finished, exactly one release runs and takes the traffic, it
// is the app's current release, no release phase ran twice, and no version
// was lost.
//
// The scheduler and router are fileWorld: a fake whose state is a JSON
// file, so that it outlives the killed process, as real instances outlive a
// control plane.

const (
	crashChildEnv = "SLIPWAY_RELEASE_CRASH_CHILD" // scenario name, or "recover"
	crashStoreEnv = "SLIPWAY_RELEASE_CRASH_STORE" // "bolt:<path>" or "pg:<schema>"
	crashWorldEnv = "SLIPWAY_RELEASE_CRASH_WORLD" // the world file
	crashStepEnv  = "SLIPWAY_RELEASE_CRASH_STEP"  // SIGKILL after this journal write (1-based)
	crashOpEnv    = "SLIPWAY_RELEASE_CRASH_OP"    // SIGKILL after this world change (1-based)
	crashTTLEnv   = "SLIPWAY_RELEASE_CRASH_TTL"   // the child's lease TTL
)

type worldState struct {
	Instances []scale.Instance
	Routes    map[string]release.Route
	Runs      map[string]int // release phases started, by "app/vN"
	Reads     map[string]int // Instances reads that saw an instance, by id (for "flaky")
	Commands  map[string]string
	NextPort  int
}

// fileWorld is a Scheduler and a Traffic whose state lives in a file.
type fileWorld struct {
	path   string
	mu     sync.Mutex
	ops    int
	killAt int // SIGKILL after this many changes; 0: never
}

func (w *fileWorld) load() worldState {
	var s worldState
	b, err := os.ReadFile(w.path)
	if err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			panic(err)
		}
	}
	if s.Routes == nil {
		s.Routes = map[string]release.Route{}
	}
	if s.Runs == nil {
		s.Runs = map[string]int{}
	}
	if s.Reads == nil {
		s.Reads = map[string]int{}
	}
	if s.Commands == nil {
		s.Commands = map[string]string{}
	}
	if s.NextPort == 0 {
		s.NextPort = 30000
	}
	return s
}

func (w *fileWorld) save(s worldState) {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	tmp := w.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		panic(err)
	}
	w.ops++
	if w.killAt > 0 && w.ops == w.killAt {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func (w *fileWorld) Apply(ctx context.Context, f scale.Formation) error {
	if err := f.Validate(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	want := map[string]scale.Process{}
	for _, p := range f.Processes {
		want[p.Type] = p
	}
	var keep []scale.Instance
	have := map[string]int{}
	for _, in := range s.Instances {
		if in.App == f.App && in.Release == f.Release {
			p, ok := want[in.ProcessType]
			if !ok || in.Index > p.Count {
				continue
			}
			have[in.ProcessType]++
		}
		keep = append(keep, in)
	}
	for _, p := range f.Processes {
		for i := have[p.Type] + 1; i <= p.Count; i++ {
			in := scale.Instance{
				ID:  fmt.Sprintf("%s-v%d-%s-%d", f.App, f.Release, p.Type, i),
				App: f.App, Release: f.Release, ProcessType: p.Type, Index: i,
				State: scale.StateUp, Healthy: true, StartedAt: time.Now(),
			}
			s.Commands[in.ID] = p.Command
			if p.Command == "bad" {
				in.State, in.Healthy = scale.StateCrashed, false
				in.LastExit = &scale.ExitStatus{Code: 1, Reason: "exited with code 1"}
			}
			if p.Port {
				s.NextPort++
				in.Addr = fmt.Sprintf("127.0.0.1:%d", s.NextPort)
			}
			keep = append(keep, in)
		}
	}
	s.Instances = keep
	w.save(s)
	return nil
}

func (w *fileWorld) StopRelease(ctx context.Context, app string, rel int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	var keep []scale.Instance
	for _, in := range s.Instances {
		if in.App != app || in.Release != rel {
			keep = append(keep, in)
		}
	}
	if len(keep) == len(s.Instances) {
		return nil // nothing to stop: not a change
	}
	s.Instances = keep
	w.save(s)
	return nil
}

func (w *fileWorld) Run(ctx context.Context, o scale.OneOff) (scale.OneOffResult, error) {
	w.mu.Lock()
	s := w.load()
	s.Runs[fmt.Sprintf("%s/v%d", o.App, o.Release)]++
	w.save(s) // counted before it runs: a kill now is a kill mid-phase
	w.mu.Unlock()
	res := scale.OneOffResult{ID: fmt.Sprintf("%s-v%d-release", o.App, o.Release)}
	f := strings.Fields(o.Command)
	if len(f) == 2 && f[0] == "exit" {
		n, _ := strconv.Atoi(f[1])
		fmt.Fprintf(o.Stdout, "release phase exits %d\n", n)
		res.Exit = scale.ExitStatus{Code: n, Reason: fmt.Sprintf("exited with code %d", n)}
		return res, nil
	}
	return res, fmt.Errorf("unknown command %q", o.Command)
}

func (w *fileWorld) Instances(ctx context.Context, q scale.Query) ([]scale.Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	var out []scale.Instance
	changed := false
	for i, in := range s.Instances {
		if (q.App != "" && in.App != q.App) || (q.Release != 0 && in.Release != q.Release) || (q.ProcessType != "" && in.ProcessType != q.ProcessType) {
			continue
		}
		// "flaky" instances crash on their fourth look: after the health
		// gate and the switch, during the watch.
		if s.Commands[in.ID] == "flaky" && in.State == scale.StateUp {
			s.Reads[in.ID]++
			changed = true
			if s.Reads[in.ID] >= 4 {
				in.State, in.Healthy, in.Restarts = scale.StateCrashed, false, 1
				s.Instances[i] = in
			}
		}
		out = append(out, in)
	}
	if changed {
		// Not counted as a change a kill is aimed at.
		b, _ := json.Marshal(s)
		_ = os.WriteFile(w.path+".tmp", b, 0o600)
		_ = os.Rename(w.path+".tmp", w.path)
	}
	return out, nil
}

func (w *fileWorld) SetRoute(ctx context.Context, r release.Route) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.load()
	s.Routes[r.App] = r
	w.save(s)
	return nil
}

// crashScenarios are the deploys the harness interrupts. Each starts from
// v1 serving (web, worker and a release phase).
var crashScenarios = map[string]map[string]string{
	"ok":             {"web": "web", "worker": "worker", "release": "exit 0"},
	"release-fails":  {"web": "web", "worker": "worker", "release": "exit 1"},
	"unhealthy":      {"web": "bad", "worker": "worker"},
	"rolls-back":     {"web": "flaky", "worker": "worker", "release": "exit 0"},
	"no-release-cmd": {"web": "web", "worker": "worker2"},
}

// bgScenarios run a crashScenario with background watches: the deploy
// returns at the watch, which goes on in the Manager's goroutine (kills
// after that hit the goroutine); with close, the Manager is closed at
// once, leaving the watch in the journal for Recover.
var bgScenarios = map[string]struct {
	base  string
	close bool
}{
	"ok-bg":               {"ok", false},
	"rolls-back-bg":       {"rolls-back", false},
	"rolls-back-bg-close": {"rolls-back", true},
}

// baseScenario is the crashScenario sc runs.
func baseScenario(sc string) string {
	if b, ok := bgScenarios[sc]; ok {
		return b.base
	}
	return sc
}

// deployScenario makes the interrupted deploy of scenario sc with m, and
// waits for its background watch, if any.
func deployScenario(m *release.Manager, sc string) error {
	ctx := context.Background()
	_, err := m.Deploy(ctx, "app", build(crashScenarios[baseScenario(sc)], 2), release.DeployOptions{})
	if b, ok := bgScenarios[sc]; ok && !b.close {
		if werr := m.Wait(ctx); werr != nil {
			return werr
		}
	}
	m.Close()
	return err
}

// scenarioConfig sets up the Manager of scenario sc.
func scenarioConfig(sc string) func(*release.ManagerConfig) {
	_, bg := bgScenarios[sc]
	return func(c *release.ManagerConfig) { c.WatchInBackground = bg }
}

var v1Procs = map[string]string{"web": "web", "worker": "worker", "release": "exit 0"}

type crashStore struct {
	open func(t testing.TB) release.Store
}

func crashManager(t testing.TB, st release.Store, w *fileWorld, onStep func(release.Deploy), edit ...func(*release.ManagerConfig)) *release.Manager {
	return crashManagerAs(t, "control-plane", 5*time.Second, st, w, onStep, edit...)
}

func crashManagerAs(t testing.TB, owner string, ttl time.Duration, st release.Store, w *fileWorld, onStep func(release.Deploy), edit ...func(*release.ManagerConfig)) *release.Manager {
	cfg := release.ManagerConfig{
		Store: st, Scheduler: w, Traffic: w, Owner: owner, LeaseTTL: ttl,
		Health:      release.HealthCheck{Interval: 2 * time.Millisecond, Attempts: 10},
		WatchWindow: 60 * time.Millisecond, UnhealthyPolls: 1, OnStep: onStep,
	}
	for _, e := range edit {
		e(&cfg)
	}
	m, err := release.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func build(procs map[string]string, n int) release.Build {
	return release.Build{Image: scale.Image{Ref: fmt.Sprintf("img:%d", n)}, Processes: procs}
}

// TestCrashChild is the control plane process the harness kills. It does
// nothing unless run by the harness.
func TestCrashChild(t *testing.T) {
	scenario := os.Getenv(crashChildEnv)
	if scenario == "" {
		t.Skip("run by TestCrashRecovery* as a subprocess")
	}
	ctx := context.Background()
	st := openCrashStore(t, os.Getenv(crashStoreEnv))
	defer st.Close()
	w := &fileWorld{path: os.Getenv(crashWorldEnv)}
	w.killAt, _ = strconv.Atoi(os.Getenv(crashOpEnv))
	stepKill, _ := strconv.Atoi(os.Getenv(crashStepEnv))
	steps := 0
	ttl := 5 * time.Second
	if v, err := time.ParseDuration(os.Getenv(crashTTLEnv)); err == nil {
		ttl = v
	}
	m := crashManagerAs(t, "control-plane", ttl, st, w, func(d release.Deploy) {
		steps++
		if steps == stepKill {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}, scenarioConfig(scenario))
	if scenario == "recover" {
		if _, err := m.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	fmt.Printf("deploy: %v\n", deployScenario(m, scenario))
}

func openCrashStore(t testing.TB, spec string) release.Store {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "bolt":
		s, err := bolt.Open(arg, bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	case "pg":
		s, err := postgres.Open(context.Background(), os.Getenv(testenv.PostgresVar), postgres.Options{Schema: arg, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("bad store spec %q", spec)
	return nil
}

// runCrashHarness runs every scenario, killed at every step and after
// every change, against stores made by newStore (which returns the spec
// the child opens, and a fresh store for it).
func runCrashHarness(t *testing.T, newStore func(t *testing.T) string) {
	scenarios := make([]string, 0, len(crashScenarios)+len(bgScenarios))
	for s := range crashScenarios {
		scenarios = append(scenarios, s)
	}
	for s := range bgScenarios {
		scenarios = append(scenarios, s)
	}
	sort.Strings(scenarios)
	for _, sc := range scenarios {
		t.Run(sc, func(t *testing.T) {
			// A dry run counts the journal writes and the world changes.
			spec := newStore(t)
			world := setupCrash(t, spec)
			steps, ops := countRun(t, spec, world, sc)
			t.Logf("%s: %d journal writes, %d world changes", sc, steps, ops)
			if bgScenarios[sc].close {
				recoverInProcess(t, spec, world) // the restart after Close
			}
			checkInvariants(t, spec, world, sc, "uninterrupted")
			cases := 0
			for _, kill := range []struct {
				env string
				n   int
			}{{crashStepEnv, steps}, {crashOpEnv, ops}} {
				for k := 1; k <= kill.n; k++ {
					spec := newStore(t)
					world := setupCrash(t, spec)
					name := fmt.Sprintf("%s=%d", strings.TrimPrefix(kill.env, "SLIPWAY_RELEASE_CRASH_"), k)
					killed := runChild(t, spec, world, sc, kill.env+"="+strconv.Itoa(k))
					if !killed {
						t.Errorf("%s: the child was not killed", name)
					}
					recoverInProcess(t, spec, world)
					checkInvariants(t, spec, world, sc, name)
					cases++
				}
			}
			t.Logf("%s: %d crash points checked", sc, cases)
		})
	}
}

func setupCrash(t *testing.T, spec string) string {
	t.Helper()
	world := filepath.Join(t.TempDir(), "world.json")
	st := openCrashStore(t, spec)
	defer st.Close()
	w := &fileWorld{path: world}
	m := crashManager(t, st, w, nil)
	ctx := context.Background()
	if err := m.CreateApp(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := m.Scale(ctx, "app", release.ProcessScale{Type: "worker", Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deploy(ctx, "app", build(v1Procs, 1), release.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	return world
}

// recoverInProcess is the restarted control plane: a new Manager on the
// store and world the killed one left.
func recoverInProcess(t *testing.T, spec, world string) {
	t.Helper()
	st := openCrashStore(t, spec)
	defer st.Close()
	m := crashManager(t, st, &fileWorld{path: world}, nil)
	if _, err := m.Recover(context.Background()); err != nil {
		t.Fatalf("Recover: %v", err)
	}
}

func countRun(t *testing.T, spec, world, sc string) (steps, ops int) {
	t.Helper()
	st := openCrashStore(t, spec)
	defer st.Close()
	w := &fileWorld{path: world}
	m := crashManager(t, st, w, func(release.Deploy) { steps++ }, scenarioConfig(sc))
	err := deployScenario(m, sc)
	t.Logf("%s uninterrupted: %v", sc, err)
	return steps, w.ops
}

// runChild runs the control plane process and reports whether SIGKILL
// ended it.
func runChild(t *testing.T, spec, world, scenario string, extra ...string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+scenario, crashStoreEnv+"="+spec, crashWorldEnv+"="+world)
	cmd.Env = append(cmd.Env, extra...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("child %s %v: %v\n%s", scenario, extra, err, out)
	}
	return false
}

func checkInvariants(t *testing.T, spec, world, sc, name string) {
	t.Helper()
	ctx := context.Background()
	st := openCrashStore(t, spec)
	defer st.Close()
	s := (&fileWorld{path: world}).load()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s/%s: "+format, append([]any{sc, name}, args...)...)
	}
	sc = baseScenario(sc)
	d, ok, err := st.Deploy(ctx, "app")
	if err != nil || !ok || !d.Finished() {
		fail("journal not finished: %+v %v %v", d, ok, err)
	}
	a, err := st.App(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	rels, err := st.Releases(ctx, "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != a.Latest || a.Latest < 2 {
		fail("%d releases, latest v%d", len(rels), a.Latest)
	}
	deployed := 0
	for i, r := range rels {
		if r.Version != a.Latest-i {
			fail("versions not contiguous: %v", r)
		}
		switch r.Status {
		case release.StatusDeployed:
			deployed++
			if r.Version != a.Current {
				fail("v%d deployed but current is v%d", r.Version, a.Current)
			}
		case release.StatusSuperseded, release.StatusFailed:
		default:
			fail("v%d left %s", r.Version, r.Status)
		}
	}
	if deployed != 1 {
		fail("%d releases deployed, want 1", deployed)
	}
	for k, n := range s.Runs {
		if n > 1 {
			fail("release phase of %s ran %d times", k, n)
		}
	}
	// Exactly the current release runs, whole, and takes the traffic.
	var web []release.Backend
	counts := map[string]int{}
	for _, in := range s.Instances {
		if in.Release != a.Current {
			fail("instance %s of v%d runs while v%d is current", in.ID, in.Release, a.Current)
			continue
		}
		counts[in.ProcessType]++
		if in.ProcessType == "web" {
			web = append(web, release.Backend{ID: in.ID, Addr: in.Addr})
		}
	}
	if counts["web"] != 1 || counts["worker"] != 1 {
		fail("current v%d runs %v, want one web and one worker", a.Current, counts)
	}
	rt := s.Routes["app"]
	sort.Slice(web, func(i, j int) bool { return web[i].ID < web[j].ID })
	if rt.Release != a.Current || fmt.Sprint(rt.Backends) != fmt.Sprint(web) || len(web) == 0 {
		fail("route %+v, want v%d at %v", rt, a.Current, web)
	}
	// What the scenario must come to.
	cur, _ := st.Release(ctx, "app", a.Current)
	v2, _ := st.Release(ctx, "app", 2)
	switch {
	case v2.Status == release.StatusFailed && v2.FailureReason == release.InterruptedReleasePhase:
		// Killed inside the release phase: never resumed, v1 serves.
		if a.Current != 1 {
			fail("interrupted release phase, yet v%d serves", a.Current)
		}
	case sc == "ok" || sc == "no-release-cmd":
		if a.Current != 2 {
			fail("current v%d, want v2 (v2 %s %q)", a.Current, v2.Status, v2.FailureReason)
		}
	case sc == "release-fails" || sc == "unhealthy":
		if a.Current != 1 || v2.Status != release.StatusFailed {
			fail("current v%d, v2 %s; want v1 serving, v2 failed", a.Current, v2.Status)
		}
	case sc == "rolls-back":
		// An automatic rollback to v1, or, when the kill came before the
		// switch and recovery found v2 crashed, v2 aborted with v1 serving.
		rolledBack := cur.Cause == release.CauseRollback && cur.RollbackOf == 1
		if !(rolledBack || a.Current == 1) || v2.Status != release.StatusFailed {
			fail("current %s (%s of v%d), v2 %s; want v2 failed and v1 or a rollback to it serving", cur, cur.Cause, cur.RollbackOf, v2.Status)
		}
	}
	// The lease is free for the next deploy.
	if l, err := st.AcquireLease(ctx, "app", "someone-else", time.Second); err != nil {
		fail("lease not given back: %v", err)
	} else {
		_ = st.ReleaseLease(ctx, l)
	}
}

func TestCrashRecoveryBolt(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a few hundred processes")
	}
	runCrashHarness(t, func(t *testing.T) string {
		return "bolt:" + filepath.Join(t.TempDir(), "releases.db")
	})
}

// A control plane killed mid-deploy holds the app's lease; another control
// plane (a different owner) recovers the deploy once the lease expired,
// not before.
func TestCrashRecoveryByAnotherOwner(t *testing.T) {
	spec := "bolt:" + filepath.Join(t.TempDir(), "releases.db")
	world := setupCrash(t, spec)
	if !runChild(t, spec, world, "ok", crashStepEnv+"=3", crashTTLEnv+"=700ms") {
		t.Fatal("the child was not killed")
	}
	ctx := context.Background()
	st := openCrashStore(t, spec)
	m := crashManagerAs(t, "standby", time.Second, st, &fileWorld{path: world}, nil)
	rep, err := m.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Apps) != 1 || !errors.Is(rep.Apps[0].Err, release.ErrDeployInProgress) {
		t.Fatalf("Recover under the dead owner's live lease = %+v, want the app left busy", rep)
	}
	if d, _, _ := st.Deploy(ctx, "app"); d.Finished() {
		t.Fatal("the deploy was finished under another owner's lease")
	}
	time.Sleep(800 * time.Millisecond)
	rep, err = m.Recover(ctx)
	if err != nil || len(rep.Apps) != 1 || rep.Apps[0].Err != nil || !rep.Apps[0].Final.Finished() {
		t.Fatalf("Recover after expiry = %+v, %v", rep, err)
	}
	st.Close()
	checkInvariants(t, spec, world, "ok", "other-owner")
}
