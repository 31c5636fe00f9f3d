package scaletest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/scale"
)

// Programs are the commands the suite runs, written for the harness's image
// so that the suite stays portable across schedulers. Each prints exactly
// what its comment says, one line per print, to stdout unless said
// otherwise.
type Programs struct {
	// Web listens for HTTP on $PORT and prints "listening on <PORT>"; on
	// SIGTERM it prints "term" and exits 0.
	Web string
	// Wait prints "ready" and waits; on SIGTERM it prints "term" and exits
	// 0.
	Wait string
	// IgnoreTerm prints "ready" (once SIGTERM is ignored) and runs until
	// killed.
	IgnoreTerm string
	// Exit prints "out <code>" to stdout and "err <code>" to stderr, then
	// exits with code.
	Exit func(code int) string
	// Print prints "line 1" to "line <n>" and exits 0.
	Print func(n int) string
	// Env prints "<name>=<value of $name>" and exits 0.
	Env func(name string) string
	// Sleep sleeps for d and exits 0.
	Sleep func(d time.Duration) string
	// Alloc allocates and touches mb MiB of memory, prints "ready" and
	// waits as Wait does. Optional: nil skips the OOM test.
	Alloc func(mb int) string
}

// Harness is what the suite needs of a scheduler implementation.
type Harness struct {
	// New returns a scheduler with its own empty state. Recover has not
	// been called on it. The suite stops the apps it uses and closes it.
	New func(t *testing.T) scale.Scheduler
	// Reopen returns a scheduler on the state of s, which the suite has
	// closed, as a restarted control plane would open it. Nil skips the
	// recovery test.
	Reopen func(t *testing.T, s scale.Scheduler) scale.Scheduler
	// Image runs Programs.
	Image scale.Image
	// NoCommandImage is an image with neither entrypoint nor cmd. Zero
	// skips the test that an empty command is refused with ErrNoCommand.
	NoCommandImage scale.Image
	Programs       Programs
	// Wait bounds how long the suite waits for instances to reach a
	// state. Zero means 30 s.
	Wait time.Duration
}

// Run runs the conformance suite against the harness's scheduler. The
// contract it checks, beyond scale.Scheduler's doc comments:
//
//   - Instance ids are unique and stay the same across crash restarts and
//     re-applies; web instances have distinct non-empty addresses and PORT.
//   - Scaling up fills the lowest free indexes; scaling down stops the
//     highest first; the rest keep their ids.
//   - Stopped instances (after StopRelease, StopApp, scale-down, a one-off's
//     exit) disappear from Instances.
//   - A crashed instance is restarted with a backoff: it shows
//     StateCrashed with LastExit, and does not restart in a hot loop.
//   - SIGTERM is sent first; a process ignoring it is killed after the
//     process type's grace period.
//   - Logs keep the order in which a process wrote its lines.
func Run(t *testing.T, h Harness) {
	if h.Wait == 0 {
		h.Wait = 30 * time.Second
	}
	s := &suite{h: h}
	t.Run("Validation", s.validation)
	t.Run("FormationUpDown", s.formationUpDown)
	t.Run("IdempotentApply", s.idempotent)
	t.Run("ReleasesSideBySide", s.sideBySide)
	t.Run("OneOffs", s.oneOffs)
	t.Run("OneOffTimeout", s.oneOffTimeout)
	t.Run("DetachedOneOff", s.detached)
	t.Run("CrashRestartBackoff", s.crashRestart)
	t.Run("GracefulStop", s.gracefulStop)
	t.Run("KillAfterGrace", s.killAfterGrace)
	t.Run("LogOrder", s.logOrder)
	t.Run("ConcurrentApps", s.concurrentApps)
	t.Run("OOM", s.oom)
	t.Run("Recover", s.recover)
	t.Run("Closed", s.closed)
}

type suite struct{ h Harness }

func (s *suite) open(t *testing.T, apps ...string) scale.Scheduler {
	t.Helper()
	sch := s.h.New(t)
	t.Cleanup(func() {
		cleanup(t, sch, apps...)
		if err := sch.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sch
}

func cleanup(t *testing.T, sch scale.Scheduler, apps ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, app := range apps {
		if err := sch.StopApp(ctx, app); err != nil && !errors.Is(err, scale.ErrClosed) {
			t.Errorf("StopApp(%s): %v", app, err)
		}
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) formation(app string, release int, procs ...scale.Process) scale.Formation {
	return scale.Formation{App: app, Release: release, Image: s.h.Image, Env: map[string]string{"GREETING": "hello"}, Processes: procs}
}

func (s *suite) web(n int) scale.Process {
	return scale.Process{Type: "web", Command: s.h.Programs.Web, Count: n, Port: true, Grace: 10 * time.Second}
}

func (s *suite) worker(n int) scale.Process {
	return scale.Process{Type: "worker", Command: s.h.Programs.Wait, Count: n, Grace: 10 * time.Second}
}

func mustApply(t *testing.T, sch scale.Scheduler, f scale.Formation) {
	t.Helper()
	if err := sch.Apply(ctxFor(t, time.Minute), f); err != nil {
		t.Fatalf("Apply(%s v%d): %v", f.App, f.Release, err)
	}
}

// waitFor polls Instances(q) until ok holds, and returns that list.
func (s *suite) waitFor(t *testing.T, sch scale.Scheduler, q scale.Query, what string, ok func([]scale.Instance) bool) []scale.Instance {
	t.Helper()
	deadline := time.Now().Add(s.h.Wait)
	var is []scale.Instance
	for {
		var err error
		is, err = sch.Instances(ctxFor(t, 10*time.Second), q)
		if err != nil {
			t.Fatalf("Instances: %v", err)
		}
		if ok(is) {
			return is
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s; instances:\n%s", s.h.Wait, what, dump(is))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dump(is []scale.Instance) string {
	var b strings.Builder
	for _, i := range is {
		fmt.Fprintf(&b, "  %s %s v%d %s.%d state=%s healthy=%v addr=%q restarts=%d", i.ID, i.App, i.Release, i.ProcessType, i.Index, i.State, i.Healthy, i.Addr, i.Restarts)
		if i.LastExit != nil {
			fmt.Fprintf(&b, " last-exit=%q", i.LastExit.Reason)
		}
		b.WriteByte('\n')
	}
	if len(is) == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}

// allUp reports whether the instances are n, all up and healthy.
func allUp(n int) func([]scale.Instance) bool {
	return func(is []scale.Instance) bool {
		if len(is) != n {
			return false
		}
		for _, i := range is {
			if i.State != scale.StateUp || !i.Healthy {
				return false
			}
		}
		return true
	}
}

func count(n int) func([]scale.Instance) bool {
	return func(is []scale.Instance) bool { return len(is) == n }
}

// logText returns the app's log lines that match q, one per line.
func logText(t *testing.T, sch scale.Scheduler, q scale.LogQuery) string {
	t.Helper()
	var b strings.Builder
	err := sch.Logs(ctxFor(t, 10*time.Second), q, func(l observe.LogLine) error {
		b.WriteString(l.Text)
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return b.String()
}

// waitLog waits until the app's logs for q hold the line want.
func (s *suite) waitLog(t *testing.T, sch scale.Scheduler, q scale.LogQuery, want string) {
	t.Helper()
	deadline := time.Now().Add(s.h.Wait)
	for {
		got := logText(t, sch, q)
		for _, l := range strings.Split(got, "\n") {
			if l == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs of %+v never held %q; they hold:\n%s", q, want, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *suite) validation(t *testing.T) {
	sch := s.open(t, "val")
	ctx := ctxFor(t, time.Minute)
	good := s.formation("val", 1, s.web(1))
	bad := map[string]func(f *scale.Formation){
		"bad app name":    func(f *scale.Formation) { f.App = "Bad_App" },
		"zero release":    func(f *scale.Formation) { f.Release = 0 },
		"no image":        func(f *scale.Formation) { f.Image = scale.Image{} },
		"negative count":  func(f *scale.Formation) { f.Processes[0].Count = -1 },
		"absurd count":    func(f *scale.Formation) { f.Processes[0].Count = 1 << 20 },
		"bad type":        func(f *scale.Formation) { f.Processes[0].Type = "Web!" },
		"duplicate type":  func(f *scale.Formation) { f.Processes = append(f.Processes, f.Processes[0]) },
		"negative memory": func(f *scale.Formation) { f.Processes[0].Resources.MemoryBytes = -1 },
		"negative grace":  func(f *scale.Formation) { f.Processes[0].Grace = -time.Second },
	}
	for name, mutate := range bad {
		f := good
		f.Processes = append([]scale.Process(nil), good.Processes...)
		mutate(&f)
		err := sch.Apply(ctx, f)
		var fe *scale.FormationError
		if !errors.Is(err, scale.ErrInvalidFormation) || !errors.As(err, &fe) {
			t.Errorf("%s: Apply returned %v, want a *FormationError wrapping ErrInvalidFormation", name, err)
		}
	}
	if is, _ := sch.Instances(ctx, scale.Query{App: "val"}); len(is) != 0 {
		t.Errorf("refused formations started instances:\n%s", dump(is))
	}
	if _, err := sch.Run(ctx, scale.OneOff{App: "Bad_App", Release: 1, Image: s.h.Image, Command: s.h.Programs.Exit(0)}); !errors.Is(err, scale.ErrInvalidFormation) {
		t.Errorf("Run with a bad app name returned %v, want ErrInvalidFormation", err)
	}
	if err := sch.Logs(ctx, scale.LogQuery{}, func(observe.LogLine) error { return nil }); err == nil {
		t.Errorf("Logs without an app returned no error")
	}
	if err := sch.StopRelease(ctx, "val", 42); err != nil {
		t.Errorf("StopRelease of a release with no instances: %v", err)
	}

	if s.h.NoCommandImage == (scale.Image{}) {
		t.Log("Harness.NoCommandImage is not set: not checking ErrNoCommand")
		return
	}
	f := scale.Formation{App: "val", Release: 1, Image: s.h.NoCommandImage, Processes: []scale.Process{{Type: "worker", Count: 1}}}
	if err := sch.Apply(ctx, f); !errors.Is(err, scale.ErrNoCommand) {
		t.Errorf("Apply with no command anywhere returned %v, want ErrNoCommand", err)
	}
	if _, err := sch.Run(ctx, scale.OneOff{App: "val", Release: 1, Image: s.h.NoCommandImage}); !errors.Is(err, scale.ErrNoCommand) {
		t.Errorf("Run with no command anywhere returned %v, want ErrNoCommand", err)
	}
}

func ids(is []scale.Instance) map[int]string {
	out := make(map[int]string)
	for _, i := range is {
		out[i.Index] = i.ID
	}
	return out
}

func (s *suite) formationUpDown(t *testing.T) {
	const app = "updown"
	sch := s.open(t, app)
	q := scale.Query{App: app}
	mustApply(t, sch, s.formation(app, 1, s.web(2), s.worker(1)))
	is := s.waitFor(t, sch, q, "2 web and 1 worker up", allUp(3))
	seen := map[string]bool{}
	for _, i := range is {
		if seen[i.ID] || i.ID == "" {
			t.Fatalf("ids are not unique and non-empty:\n%s", dump(is))
		}
		seen[i.ID] = true
		if i.Release != 1 || i.StartedAt.IsZero() {
			t.Errorf("instance %s: release %d, started %v", i.ID, i.Release, i.StartedAt)
		}
		if (i.ProcessType == "web") != (i.Addr != "") || seen[i.Addr] {
			t.Errorf("instance %s (%s) has address %q", i.ID, i.ProcessType, i.Addr)
		}
		if i.Addr != "" {
			seen[i.Addr] = true
			_, port, _ := strings.Cut(i.Addr, ":")
			s.waitLog(t, sch, scale.LogQuery{App: app, Instance: i.ID}, "listening on "+port)
		}
	}
	if got := [3]string{is[0].ProcessType, is[1].ProcessType, is[2].ProcessType}; got != [3]string{"web", "web", "worker"} || is[0].Index != 1 || is[1].Index != 2 {
		t.Fatalf("instances not sorted by type and index:\n%s", dump(is))
	}
	before := ids(is[:2])

	webQ := scale.Query{App: app, ProcessType: "web"}
	mustApply(t, sch, s.formation(app, 1, s.web(4), s.worker(1)))
	is = s.waitFor(t, sch, webQ, "4 web up", allUp(4))
	if after := ids(is); after[1] != before[1] || after[2] != before[2] || after[3] == "" || after[4] == "" {
		t.Fatalf("scaling up replaced instances or skipped indexes: before %v, after:\n%s", before, dump(is))
	}
	mustApply(t, sch, s.formation(app, 1, s.web(1), s.worker(1)))
	is = s.waitFor(t, sch, webQ, "1 web", allUp(1))
	if is[0].ID != before[1] {
		t.Fatalf("scaling down did not keep web.1 (%s):\n%s", before[1], dump(is))
	}
	// A process type the formation no longer names is stopped.
	mustApply(t, sch, s.formation(app, 1, s.web(1)))
	s.waitFor(t, sch, scale.Query{App: app, ProcessType: "worker"}, "no worker", count(0))
	mustApply(t, sch, s.formation(app, 1, s.web(0)))
	s.waitFor(t, sch, q, "no instance", count(0))
}

func (s *suite) idempotent(t *testing.T) {
	const app = "idem"
	sch := s.open(t, app)
	q := scale.Query{App: app}
	f := s.formation(app, 1, s.web(2), s.worker(1))
	mustApply(t, sch, f)
	first := s.waitFor(t, sch, q, "3 up", allUp(3))
	mustApply(t, sch, f)
	mustApply(t, sch, f)
	time.Sleep(200 * time.Millisecond)
	second := s.waitFor(t, sch, q, "3 up", allUp(3))
	for k := range first {
		a, b := first[k], second[k]
		if a.ID != b.ID || a.Restarts != b.Restarts || !a.StartedAt.Equal(b.StartedAt) {
			t.Fatalf("re-applying changed instances:\nbefore:\n%s\nafter:\n%s", dump(first), dump(second))
		}
	}
}

func (s *suite) sideBySide(t *testing.T) {
	const app = "sbs"
	sch := s.open(t, app)
	q := scale.Query{App: app}
	mustApply(t, sch, s.formation(app, 1, s.web(1)))
	v1 := s.waitFor(t, sch, q, "v1 up", allUp(1))
	mustApply(t, sch, s.formation(app, 2, s.web(2)))
	both := s.waitFor(t, sch, q, "v1 and v2 up", allUp(3))
	if both[0].ID != v1[0].ID || both[1].Release != 2 || both[2].Release != 2 {
		t.Fatalf("v2 disturbed v1 or is missing:\n%s", dump(both))
	}
	if v2 := s.waitFor(t, sch, scale.Query{App: app, Release: 2}, "v2 listed alone", count(2)); v2[0].Release != 2 {
		t.Fatalf("query by release:\n%s", dump(v2))
	}
	if err := sch.StopRelease(ctxFor(t, time.Minute), app, 1); err != nil {
		t.Fatalf("StopRelease: %v", err)
	}
	is, err := sch.Instances(ctxFor(t, 10*time.Second), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(is) != 2 || is[0].Release != 2 || is[1].Release != 2 {
		t.Fatalf("after StopRelease(1) returned, instances are:\n%s", dump(is))
	}
	if err := sch.StopApp(ctxFor(t, time.Minute), app); err != nil {
		t.Fatalf("StopApp: %v", err)
	}
	if is, _ := sch.Instances(ctxFor(t, 10*time.Second), q); len(is) != 0 {
		t.Fatalf("after StopApp returned, instances are:\n%s", dump(is))
	}
}

func (s *suite) oneOffs(t *testing.T) {
	const app = "oneoff"
	sch := s.open(t, app)
	if !sch.Capabilities().OneOffs {
		t.Skip("the scheduler does not run attached one-offs")
	}
	ctx := ctxFor(t, 2*time.Minute)
	for _, code := range []int{0, 3} {
		var out, errOut syncBuffer
		res, err := sch.Run(ctx, scale.OneOff{App: app, Release: 1, Image: s.h.Image, Command: s.h.Programs.Exit(code), Type: "release", Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatalf("Run exit %d: %v", code, err)
		}
		if res.ID == "" || res.Exit.Code != code || res.Exit.OOMKilled || res.Exit.Signal != "" {
			t.Errorf("Run exit %d: result %+v", code, res)
		}
		if got, want := out.String(), fmt.Sprintf("out %d\n", code); got != want {
			t.Errorf("Run exit %d: stdout %q, want %q", code, got, want)
		}
		if got, want := errOut.String(), fmt.Sprintf("err %d\n", code); got != want {
			t.Errorf("Run exit %d: stderr %q, want %q", code, got, want)
		}
		s.waitLog(t, sch, scale.LogQuery{App: app, Instance: res.ID}, fmt.Sprintf("err %d", code))
		if got := logText(t, sch, scale.LogQuery{App: app, ProcessType: "release"}); !strings.Contains(got, fmt.Sprintf("out %d\n", code)) {
			t.Errorf("one-off output is not in the app's logs by type: %q", got)
		}
	}
	var out syncBuffer
	_, err := sch.Run(ctx, scale.OneOff{App: app, Release: 1, Image: s.h.Image, Env: map[string]string{"GREETING": "hi there"}, Command: s.h.Programs.Env("GREETING"), Stdout: &out})
	if err != nil {
		t.Fatalf("Run env: %v", err)
	}
	if got := out.String(); got != "GREETING=hi there\n" {
		t.Errorf("one-off env: got %q", got)
	}
	if is, _ := sch.Instances(ctx, scale.Query{App: app}); len(is) != 0 {
		t.Errorf("finished one-offs are still listed:\n%s", dump(is))
	}
}

func (s *suite) oneOffTimeout(t *testing.T) {
	const app = "timeout"
	sch := s.open(t, app)
	if !sch.Capabilities().OneOffs {
		t.Skip("the scheduler does not run attached one-offs")
	}
	start := time.Now()
	_, err := sch.Run(ctxFor(t, time.Minute), scale.OneOff{App: app, Release: 1, Image: s.h.Image, Command: s.h.Programs.Sleep(time.Minute), Timeout: 300 * time.Millisecond})
	if !errors.Is(err, scale.ErrTimeout) {
		t.Fatalf("Run past its timeout returned %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("Run with a 300ms timeout took %s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = sch.Run(ctx, scale.OneOff{App: app, Release: 1, Image: s.h.Image, Command: s.h.Programs.Sleep(time.Minute)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run past its ctx returned %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("Run with a 300ms ctx took %s", d)
	}
	s.waitFor(t, sch, scale.Query{App: app}, "timed-out one-offs gone", count(0))
}

func (s *suite) detached(t *testing.T) {
	const app = "detached"
	sch := s.open(t, app)
	if !sch.Capabilities().DetachedOneOffs {
		t.Skip("the scheduler does not run detached one-offs")
	}
	res, err := sch.Run(ctxFor(t, time.Minute), scale.OneOff{App: app, Release: 1, Image: s.h.Image, Command: s.h.Programs.Wait, Detached: true, TTL: 2 * time.Second})
	if err != nil {
		t.Fatalf("Run detached: %v", err)
	}
	if res.ID == "" || res.Exit != (scale.ExitStatus{}) {
		t.Fatalf("Run detached: result %+v", res)
	}
	is := s.waitFor(t, sch, scale.Query{App: app}, "the detached one-off listed", count(1))
	if is[0].ID != res.ID || is[0].ProcessType != "run" {
		t.Fatalf("detached one-off listed as:\n%s", dump(is))
	}
	s.waitLog(t, sch, scale.LogQuery{App: app, Instance: res.ID}, "ready")
	s.waitFor(t, sch, scale.Query{App: app}, "the detached one-off stopped at its TTL", count(0))
	s.waitLog(t, sch, scale.LogQuery{App: app, Instance: res.ID}, "term")
}

func (s *suite) crashRestart(t *testing.T) {
	const app = "crash"
	sch := s.open(t, app)
	q := scale.Query{App: app}
	mustApply(t, sch, s.formation(app, 1, scale.Process{Type: "worker", Command: s.h.Programs.Exit(3), Count: 1}))
	var sawCrashed bool
	is := s.waitFor(t, sch, q, "restarted twice", func(is []scale.Instance) bool {
		if len(is) == 1 && is[0].State == scale.StateCrashed && is[0].LastExit != nil {
			sawCrashed = true
		}
		return len(is) == 1 && is[0].Restarts >= 2
	})
	id := is[0].ID
	if !sawCrashed {
		t.Errorf("never saw the instance in state crashed with a last exit")
	}
	if e := is[0].LastExit; e == nil || e.Code != 3 || e.OOMKilled || e.Reason == "" {
		t.Errorf("last exit: %+v, want code 3", e)
	}
	time.Sleep(2 * time.Second)
	is, err := sch.Instances(ctxFor(t, 10*time.Second), q)
	if err != nil || len(is) != 1 {
		t.Fatalf("Instances: %v\n%s", err, dump(is))
	}
	if is[0].ID != id {
		t.Errorf("restarts changed the id from %s to %s", id, is[0].ID)
	}
	if is[0].Restarts > 12 {
		t.Errorf("%d restarts within about 2 s: no backoff", is[0].Restarts)
	}
	s.waitLog(t, sch, scale.LogQuery{App: app, Instance: id}, "out 3")
	// A crash-looping instance stops at once: it has no process to wait
	// for, or one that ends on SIGTERM.
	if err := sch.StopRelease(ctxFor(t, time.Minute), app, 1); err != nil {
		t.Fatalf("StopRelease: %v", err)
	}
}

func (s *suite) gracefulStop(t *testing.T) {
	const app = "graceful"
	sch := s.open(t, app)
	p := s.worker(1)
	p.Grace = 20 * time.Second
	mustApply(t, sch, s.formation(app, 1, p))
	is := s.waitFor(t, sch, scale.Query{App: app}, "worker up", allUp(1))
	lq := scale.LogQuery{App: app, Instance: is[0].ID}
	s.waitLog(t, sch, lq, "ready")
	start := time.Now()
	if err := sch.StopRelease(ctxFor(t, time.Minute), app, 1); err != nil {
		t.Fatalf("StopRelease: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stopping a process that exits on SIGTERM took %s", d)
	}
	s.waitLog(t, sch, lq, "term")
}

func (s *suite) killAfterGrace(t *testing.T) {
	const app = "stubborn"
	sch := s.open(t, app)
	grace := 1500 * time.Millisecond
	mustApply(t, sch, s.formation(app, 1, scale.Process{Type: "worker", Command: s.h.Programs.IgnoreTerm, Count: 1, Grace: grace}))
	is := s.waitFor(t, sch, scale.Query{App: app}, "worker up", allUp(1))
	s.waitLog(t, sch, scale.LogQuery{App: app, Instance: is[0].ID}, "ready")
	var sawStopping bool
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- sch.StopRelease(ctxFor(t, time.Minute), app, 1) }()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("StopRelease: %v", err)
			}
			waiting = false
		case <-time.After(50 * time.Millisecond):
			is, _ := sch.Instances(ctxFor(t, 10*time.Second), scale.Query{App: app})
			if len(is) == 1 && is[0].State == scale.StateStopping {
				sawStopping = true
			}
		}
	}
	d := time.Since(start)
	if d < grace-100*time.Millisecond {
		t.Errorf("a process ignoring SIGTERM stopped after %s, before its grace period of %s", d, grace)
	}
	if d > grace+15*time.Second {
		t.Errorf("a process ignoring SIGTERM stopped after %s, long after its grace period of %s", d, grace)
	}
	if !sawStopping {
		t.Errorf("never saw the instance in state stopping")
	}
}

func (s *suite) logOrder(t *testing.T) {
	const app = "logs"
	sch := s.open(t, app)
	if !sch.Capabilities().OneOffs {
		t.Skip("the scheduler does not run attached one-offs")
	}
	ctx := ctxFor(t, time.Minute)
	// A follower started before the output sees it all, in order.
	followed := make(chan []string, 1)
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	started := make(chan struct{})
	go func() {
		var got []string
		close(started)
		_ = sch.Logs(fctx, scale.LogQuery{App: app, ProcessType: "printer", Follow: true}, func(l observe.LogLine) error {
			if l.Source != observe.SourceApp {
				return nil
			}
			got = append(got, l.Text)
			if l.Text == "line 300" {
				fcancel()
			}
			return nil
		})
		followed <- got
	}()
	<-started
	time.Sleep(100 * time.Millisecond)
	var out syncBuffer
	res, err := sch.Run(ctx, scale.OneOff{App: app, Release: 1, Image: s.h.Image, Command: s.h.Programs.Print(300), Type: "printer", Stdout: &out})
	if err != nil || res.Exit.Code != 0 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	want := make([]string, 300)
	for i := range want {
		want[i] = fmt.Sprintf("line %d", i+1)
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stdout out of order or incomplete: %d lines", len(got))
	}
	s.waitLog(t, sch, scale.LogQuery{App: app, Instance: res.ID}, "line 300")
	var lines []observe.LogLine
	err = sch.Logs(ctx, scale.LogQuery{App: app, Instance: res.ID}, func(l observe.LogLine) error {
		if l.Source == observe.SourceApp { // schedulers may add their own notices
			lines = append(lines, l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Text)
		if l.App != app || l.Instance != res.ID || l.ProcessType != "printer" || l.Source != observe.SourceApp || l.Stream != "stdout" || l.Time.IsZero() {
			t.Fatalf("log line not labelled: %+v", l)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("logs out of order or incomplete: %d lines, first %q", len(got), got[:min(3, len(got))])
	}
	var tail []string
	_ = sch.Logs(ctx, scale.LogQuery{App: app, Instance: res.ID, Tail: 5}, func(l observe.LogLine) error {
		if l.Source == observe.SourceApp {
			tail = append(tail, l.Text)
		}
		return nil
	})
	if len(tail) < 2 || strings.Join(tail[len(tail)-2:], ",") != "line 299,line 300" {
		t.Errorf("tail = %q, want it to end with line 299, line 300", tail)
	}
	select {
	case got := <-followed:
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("follower got %d lines out of order or incomplete", len(got))
		}
	case <-time.After(s.h.Wait):
		t.Errorf("follower never saw line 300")
	}
}

func (s *suite) concurrentApps(t *testing.T) {
	apps := []string{"conc-a", "conc-b", "conc-c"}
	sch := s.open(t, apps...)
	var wg sync.WaitGroup
	errs := make(chan error, len(apps)*2)
	for _, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sch.Apply(ctxFor(t, time.Minute), s.formation(app, 1, s.web(2))); err != nil {
				errs <- err
			}
			if err := sch.Apply(ctxFor(t, time.Minute), s.formation(app, 2, s.worker(1))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Apply: %v", err)
	}
	for _, app := range apps {
		s.waitFor(t, sch, scale.Query{App: app}, app+" up", allUp(3))
	}
	all := s.waitFor(t, sch, scale.Query{}, "all listed", count(9))
	addrs := map[string]bool{}
	for _, i := range all {
		if i.Addr != "" {
			if addrs[i.Addr] {
				t.Fatalf("address %s given twice:\n%s", i.Addr, dump(all))
			}
			addrs[i.Addr] = true
		}
	}
	var swg sync.WaitGroup
	for _, app := range apps {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := sch.StopApp(ctxFor(t, time.Minute), app); err != nil {
				t.Errorf("StopApp(%s): %v", app, err)
			}
		}()
	}
	swg.Wait()
	s.waitFor(t, sch, scale.Query{}, "nothing left", count(0))
}

func (s *suite) oom(t *testing.T) {
	const app = "oom"
	sch := s.open(t, app)
	if s.h.Programs.Alloc == nil || !sch.Capabilities().MemoryLimits || !sch.Capabilities().OneOffs {
		t.Skip("no Alloc program, or the scheduler has no memory limits or one-offs")
	}
	res, err := sch.Run(ctxFor(t, time.Minute), scale.OneOff{
		App: app, Release: 1, Image: s.h.Image, Command: s.h.Programs.Alloc(256),
		Resources: scale.Resources{MemoryBytes: 64 << 20}, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !res.Exit.OOMKilled || res.Exit.Reason == "" {
		t.Errorf("allocating 256 MiB under a 64 MiB limit ended with %+v, want an OOM kill", res.Exit)
	}
}

func (s *suite) recover(t *testing.T) {
	if s.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil")
	}
	const app = "recover"
	sch := s.h.New(t)
	mustApply(t, sch, s.formation(app, 1, s.web(2), s.worker(1)))
	before := s.waitFor(t, sch, scale.Query{App: app}, "up", allUp(3))
	if err := sch.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sch.Apply(ctxFor(t, time.Minute), s.formation(app, 1, s.web(1))); !errors.Is(err, scale.ErrClosed) {
		t.Errorf("Apply after Close returned %v, want ErrClosed", err)
	}
	sch = s.h.Reopen(t, sch)
	t.Cleanup(func() {
		cleanup(t, sch, app)
		if err := sch.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	rep, err := sch.Recover(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	got := map[string]bool{}
	for _, id := range rep.Reattached {
		got[id] = true
	}
	for _, i := range before {
		if !got[i.ID] {
			t.Errorf("Recover did not re-attach %s; report %+v", i.ID, rep)
		}
	}
	after := s.waitFor(t, sch, scale.Query{App: app}, "up after recovery", allUp(3))
	for k := range before {
		if before[k].ID != after[k].ID || before[k].Addr != after[k].Addr {
			t.Fatalf("recovery changed instances:\nbefore:\n%s\nafter:\n%s", dump(before), dump(after))
		}
	}
	// The recovered instances are managed: scale down, and stop.
	mustApply(t, sch, s.formation(app, 1, s.web(1), s.worker(1)))
	is := s.waitFor(t, sch, scale.Query{App: app, ProcessType: "web"}, "1 web", count(1))
	if is[0].ID != before[0].ID {
		t.Errorf("scale-down after recovery kept %s, want %s", is[0].ID, before[0].ID)
	}
	if err := sch.StopApp(ctxFor(t, time.Minute), app); err != nil {
		t.Fatalf("StopApp: %v", err)
	}
	s.waitFor(t, sch, scale.Query{App: app}, "nothing left", count(0))
}

func (s *suite) closed(t *testing.T) {
	sch := s.h.New(t)
	if err := sch.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := ctxFor(t, time.Minute)
	if err := sch.Apply(ctx, s.formation("closed", 1, s.web(1))); !errors.Is(err, scale.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if _, err := sch.Run(ctx, scale.OneOff{App: "closed", Release: 1, Image: s.h.Image, Command: s.h.Programs.Exit(0)}); !errors.Is(err, scale.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := sch.Instances(ctx, scale.Query{}); !errors.Is(err, scale.ErrClosed) {
		t.Errorf("Instances after Close: %v, want ErrClosed", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
