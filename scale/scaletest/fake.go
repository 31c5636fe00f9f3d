package scaletest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/scale"
)

// Program simulates the process that a command starts in a Fake. It runs
// until it returns its exit code. It should return soon after p.Terminated
// is closed (SIGTERM) unless it means to ignore SIGTERM, and must return
// promptly once p.Context is done (SIGKILL); what it returns then is
// ignored.
type Program func(p *Proc) int

// Proc is what a Program sees of its simulated process.
type Proc struct {
	ID          string
	App         string
	Release     int
	ProcessType string
	// Env holds the formation's or one-off's Env plus PORT for a web
	// instance.
	Env       map[string]string
	Resources scale.Resources
	// Stdout and Stderr go to the app's logs line by line (and to an
	// attached one-off's writers).
	Stdout, Stderr io.Writer

	ctx  context.Context
	term <-chan struct{}
	bind func()
	oom  atomic.Bool
}

// Context is done when the process is killed (SIGKILL).
func (p *Proc) Context() context.Context { return p.ctx }

// Terminated is closed when the process is asked to stop (SIGTERM).
func (p *Proc) Terminated() <-chan struct{} { return p.term }

// Bind says that a web process listens on its port: the instance turns up
// and healthy. It does nothing for other processes, which are up as soon as
// they start.
func (p *Proc) Bind() { p.bind() }

// OOMKill marks the process as killed for exceeding its memory limit and
// returns the value the Program should return.
func (p *Proc) OOMKill() int { p.oom.Store(true); return -1 }

// FakeConfig configures a Fake. The zero value is ready to use.
type FakeConfig struct {
	// Program returns the simulated process that command starts. Nil
	// means FakeProgram. A nil result means the command is not found: the
	// process prints so to stderr and exits with 127, as a shell does.
	Program func(command string) Program
	// DefaultCommand returns the command an image runs when a process or
	// one-off has none (its entrypoint and cmd), or "" when it has none,
	// in which case Apply and Run return scale.ErrNoCommand. Nil means no
	// image has one.
	DefaultCommand func(img scale.Image) string
	// Backoff returns how long a crashed instance waits before its restart
	// number restarts+1. Nil means FakeBackoff.
	Backoff func(restarts int) time.Duration
	// Capabilities is what the Fake claims. Nil means everything but
	// MultipleMachines.
	Capabilities *scale.Capabilities
	// Listen makes each web instance really listen on a loopback port
	// (from Bind on) and answer every HTTP request with 200 and its
	// instance id, so that a router can be tested against a Fake. When
	// false, web instances get addresses nobody listens on.
	Listen bool
	// LinesPerApp bounds the log lines kept per app; zero means
	// observe.DefaultLinesPerApp.
	LinesPerApp int
	// Logs, if not nil, receives every log line too.
	Logs observe.LogSink
	// Events, if not nil, receives instance events.
	Events observe.EventSink
}

// FakeBackoff is the Fake's default restart backoff: the first restart at
// once, then 100 ms doubling up to 2 s.
func FakeBackoff(restarts int) time.Duration {
	if restarts <= 0 {
		return 0
	}
	d := 100 * time.Millisecond
	for i := 1; i < restarts && d < 2*time.Second; i++ {
		d *= 2
	}
	return min(d, 2*time.Second)
}

// Fake is an in-memory scale.Scheduler. Its processes are Programs run in
// goroutines, chosen by command, so that tests can script what instances and
// one-offs do. It passes the conformance suite (see FakePrograms).
//
// Like a real scheduler's processes, a Fake's instances outlive Close;
// Reopen gives a new Fake that recovers them, as a control plane restarted
// on the same state would. StopApp stops them.
type Fake struct {
	cfg    FakeConfig
	w      *fakeWorld
	closed atomic.Bool
}

var _ scale.Scheduler = (*Fake)(nil)

// fakeWorld is what outlives a Fake: the running instances.
type fakeWorld struct {
	logs *observe.LogBuffer

	mu       sync.Mutex
	insts    map[string]*fakeInst
	appLocks map[string]*sync.Mutex
	oneOffs  map[string]int // per app, for one-off indexes
	nextPort int
}

type fakeInst struct {
	f       *Fake // the Fake that started it; its config applies
	prog    Program
	env     map[string]string
	grace   time.Duration
	res     scale.Resources
	web     bool
	oneOff  bool
	out     io.Writer // an attached one-off's Stdout, or nil
	errOut  io.Writer
	stopReq chan struct{} // closed when a stop is asked for
	done    chan struct{} // closed when the instance has stopped for good

	// Guarded by fakeWorld.mu.
	info     scale.Instance
	stopping bool
	health   *bool // a test's override of Healthy
	kill     context.CancelFunc
	killed   bool // the scheduler killed the current run
	listener net.Listener
}

// NewFake returns a Fake with no instances.
func NewFake(cfg FakeConfig) *Fake {
	return &Fake{cfg: cfg, w: &fakeWorld{
		logs:     observe.NewLogBuffer(observe.LogBufferConfig{LinesPerApp: cfg.LinesPerApp}),
		insts:    make(map[string]*fakeInst),
		appLocks: make(map[string]*sync.Mutex),
		oneOffs:  make(map[string]int),
		nextPort: 20000,
	}}
}

// Reopen closes f and returns a Fake with the same config that shares f's
// instances and logs, as a control plane restarted on the same state.
func (f *Fake) Reopen() *Fake {
	f.closed.Store(true)
	return &Fake{cfg: f.cfg, w: f.w}
}

// SetHealthy overrides the health check of the instance id: it reports
// healthy as given from now on. It returns scale.ErrNotFound for an unknown
// instance.
func (f *Fake) SetHealthy(id string, healthy bool) error {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	in := f.w.insts[id]
	if in == nil {
		return fmt.Errorf("instance %s: %w", id, scale.ErrNotFound)
	}
	in.health = &healthy
	return nil
}

func (f *Fake) caps() scale.Capabilities {
	if f.cfg.Capabilities != nil {
		return *f.cfg.Capabilities
	}
	return scale.Capabilities{OneOffs: true, DetachedOneOffs: true, MemoryLimits: true, CPULimits: true, Recover: true}
}

// Capabilities implements scale.Scheduler.
func (f *Fake) Capabilities() scale.Capabilities { return f.caps() }

func (f *Fake) checkResources(r scale.Resources) error {
	c := f.caps()
	if r.MemoryBytes > 0 && !c.MemoryLimits {
		return fmt.Errorf("memory limits: %w", scale.ErrUnsupported)
	}
	if r.CPUs > 0 && !c.CPULimits {
		return fmt.Errorf("CPU limits: %w", scale.ErrUnsupported)
	}
	return nil
}

func (f *Fake) program(img scale.Image, command, what string) (Program, error) {
	if strings.TrimSpace(command) == "" && f.cfg.DefaultCommand != nil {
		command = f.cfg.DefaultCommand(img)
	}
	if strings.TrimSpace(command) == "" {
		return nil, fmt.Errorf("%s: %w", what, scale.ErrNoCommand)
	}
	lookup := f.cfg.Program
	if lookup == nil {
		lookup = FakeProgram
	}
	if p := lookup(command); p != nil {
		return p, nil
	}
	name := strings.Fields(command)[0]
	return func(p *Proc) int {
		fmt.Fprintf(p.Stderr, "sh: %s: not found\n", name)
		return 127
	}, nil
}

func (w *fakeWorld) appLock(app string) *sync.Mutex {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.appLocks[app]
	if l == nil {
		l = new(sync.Mutex)
		w.appLocks[app] = l
	}
	return l
}

func suffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Apply implements scale.Scheduler.
func (f *Fake) Apply(ctx context.Context, fm scale.Formation) error {
	if f.closed.Load() {
		return scale.ErrClosed
	}
	if err := fm.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scale: apply %s v%d: %w", fm.App, fm.Release, err)
	}
	progs := make(map[string]Program, len(fm.Processes))
	for _, p := range fm.Processes {
		if err := f.checkResources(p.Resources); err != nil {
			return fmt.Errorf("scale: apply %s v%d %s: %w", fm.App, fm.Release, p.Type, err)
		}
		if p.Count == 0 {
			continue
		}
		prog, err := f.program(fm.Image, p.Command, "process type "+p.Type)
		if err != nil {
			return fmt.Errorf("scale: apply %s v%d: %w", fm.App, fm.Release, err)
		}
		progs[p.Type] = prog
	}
	lock := f.w.appLock(fm.App)
	lock.Lock()
	defer lock.Unlock()

	w := f.w
	w.mu.Lock()
	defer w.mu.Unlock()
	byType := make(map[string][]*fakeInst)
	for _, in := range w.insts {
		if in.info.App == fm.App && in.info.Release == fm.Release && !in.oneOff && !in.stopping {
			byType[in.info.ProcessType] = append(byType[in.info.ProcessType], in)
		}
	}
	wanted := make(map[string]bool)
	for _, p := range fm.Processes {
		wanted[p.Type] = true
		running := byType[p.Type]
		sort.Slice(running, func(i, j int) bool { return running[i].info.Index < running[j].info.Index })
		for len(running) > p.Count {
			w.stopLocked(running[len(running)-1])
			running = running[:len(running)-1]
		}
		used := make(map[int]bool)
		for _, in := range running {
			used[in.info.Index] = true
		}
		for idx := 1; len(running) < p.Count; idx++ {
			if used[idx] {
				continue
			}
			env := copyEnv(fm.Env)
			in := &fakeInst{
				f: f, prog: progs[p.Type], env: env, grace: p.Grace, res: p.Resources, web: p.Port,
				stopReq: make(chan struct{}), done: make(chan struct{}),
				info: scale.Instance{
					ID:  fmt.Sprintf("%s-v%d-%s-%d-%s", fm.App, fm.Release, p.Type, idx, suffix()),
					App: fm.App, Release: fm.Release, ProcessType: p.Type, Index: idx,
					State: scale.StateStarting,
				},
			}
			if p.Port {
				w.nextPort++
				in.info.Addr = "127.0.0.1:" + strconv.Itoa(w.nextPort)
				env["PORT"] = strconv.Itoa(w.nextPort)
			}
			w.insts[in.info.ID] = in
			running = append(running, in)
			go in.supervise(w)
		}
	}
	for typ, running := range byType {
		if !wanted[typ] {
			for _, in := range running {
				w.stopLocked(in)
			}
		}
	}
	return nil
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	return out
}

// stopLocked asks in to stop: SIGTERM now, SIGKILL after its grace period.
// It does not wait.
func (w *fakeWorld) stopLocked(in *fakeInst) {
	if in.stopping {
		return
	}
	in.stopping = true
	in.info.State = scale.StateStopping
	close(in.stopReq)
	grace := in.grace
	if grace == 0 {
		grace = scale.DefaultGrace
	}
	go func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-in.done:
		case <-t.C:
			w.killRun(in)
		}
	}()
}

// killRun sends SIGKILL to the current run of in.
func (w *fakeWorld) killRun(in *fakeInst) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if in.kill != nil {
		in.killed = true
		in.kill()
	}
}

func (f *Fake) event(kind observe.EventKind, info scale.Instance, msg string) {
	if f.cfg.Events != nil {
		f.cfg.Events.Event(observe.Event{Time: time.Now(), App: info.App, Kind: kind, Release: info.Release, Instance: info.ID, Message: msg})
	}
}

// supervise runs in's program until in is stopped, restarting it with
// backoff when it exits.
func (in *fakeInst) supervise(w *fakeWorld) {
	defer close(in.done)
	f := in.f
	for {
		st := in.runOnce(w)
		w.mu.Lock()
		in.info.LastExit = &st
		in.info.Healthy = false
		if in.listener != nil {
			in.listener.Close()
			in.listener = nil
		}
		if in.stopping || in.oneOff {
			in.info.State = scale.StateStopped
			delete(w.insts, in.info.ID)
			info := in.info
			w.mu.Unlock()
			f.event(observe.EventInstanceStopped, info, st.Reason)
			return
		}
		in.info.State = scale.StateCrashed
		info := in.info
		w.mu.Unlock()
		if st.OOMKilled {
			f.event(observe.EventInstanceOOM, info, st.Reason)
		}
		f.event(observe.EventInstanceCrashed, info, st.Reason)
		backoff := FakeBackoff
		if f.cfg.Backoff != nil {
			backoff = f.cfg.Backoff
		}
		t := time.NewTimer(backoff(info.Restarts))
		select {
		case <-in.stopReq:
			t.Stop()
			continue // runOnce sees stopping and returns at once
		case <-t.C:
		}
		w.mu.Lock()
		if !in.stopping {
			in.info.Restarts++
		}
		w.mu.Unlock()
	}
}

// runOnce runs the program once and returns how it ended.
func (in *fakeInst) runOnce(w *fakeWorld) scale.ExitStatus {
	ctx, kill := context.WithCancel(context.Background())
	defer kill()
	w.mu.Lock()
	if in.stopping {
		w.mu.Unlock()
		return scale.ExitStatus{Code: 0, Reason: "stopped", Time: time.Now()}
	}
	in.kill, in.killed = kill, false
	in.info.State = scale.StateStarting
	in.info.StartedAt = time.Now()
	if !in.web {
		in.info.State, in.info.Healthy = scale.StateUp, true
	}
	info := in.info
	w.mu.Unlock()
	in.f.event(observe.EventInstanceStarted, info, "")

	stdout := &lineWriter{emit: in.logger(w, info, "stdout"), also: in.out}
	stderr := &lineWriter{emit: in.logger(w, info, "stderr"), also: in.errOut}
	p := &Proc{
		ID: info.ID, App: info.App, Release: info.Release, ProcessType: info.ProcessType,
		Env: copyEnv(in.env), Resources: in.res, Stdout: stdout, Stderr: stderr,
		ctx: ctx, term: in.stopReq, bind: func() { in.bind(w) },
	}
	codeCh := make(chan int, 1)
	go func() { codeCh <- in.prog(p) }()
	var code int
	select {
	case code = <-codeCh:
	case <-ctx.Done():
		// Killed: the program should return promptly, but a real process
		// is gone at once whatever it does.
		select {
		case code = <-codeCh:
		case <-time.After(time.Second):
		}
	}
	stdout.flush()
	stderr.flush()
	w.mu.Lock()
	in.kill = nil
	killed := in.killed
	w.mu.Unlock()
	now := time.Now()
	switch {
	case p.oom.Load():
		return scale.ExitStatus{Code: -1, Signal: "SIGKILL", OOMKilled: true, Reason: "OOM killed", Time: now}
	case killed:
		return scale.ExitStatus{Code: -1, Signal: "SIGKILL", Reason: "killed by SIGKILL", Time: now}
	default:
		return scale.ExitStatus{Code: code, Reason: fmt.Sprintf("exited with code %d", code), Time: now}
	}
}

func (in *fakeInst) bind(w *fakeWorld) {
	if !in.web {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if in.info.State != scale.StateStarting {
		return
	}
	if in.f.cfg.Listen && in.listener == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return
		}
		in.listener = ln
		in.info.Addr = ln.Addr().String()
		id := in.info.ID
		go func() {
			_ = http.Serve(ln, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				fmt.Fprintln(rw, id)
			}))
		}()
	}
	in.info.State, in.info.Healthy = scale.StateUp, true
}

func (in *fakeInst) logger(w *fakeWorld, info scale.Instance, stream string) func(string) {
	return func(text string) {
		l := observe.LogLine{
			Time: time.Now(), App: info.App, Source: observe.SourceApp,
			ProcessType: info.ProcessType, Instance: info.ID, Stream: stream, Text: text,
		}
		w.logs.WriteLog(l)
		if s := in.f.cfg.Logs; s != nil {
			s.WriteLog(l)
		}
	}
}

// lineWriter splits what is written into lines.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
	also io.Writer
}

func (lw *lineWriter) Write(b []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.also != nil {
		_, _ = lw.also.Write(b)
	}
	lw.buf = append(lw.buf, b...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			break
		}
		lw.emit(string(lw.buf[:i]))
		lw.buf = lw.buf[i+1:]
	}
	return len(b), nil
}

func (lw *lineWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf) > 0 {
		lw.emit(string(lw.buf))
		lw.buf = nil
	}
}

// StopRelease implements scale.Scheduler.
func (f *Fake) StopRelease(ctx context.Context, app string, release int) error {
	if f.closed.Load() {
		return scale.ErrClosed
	}
	return f.stopMatching(ctx, app, func(in *fakeInst) bool { return !in.oneOff && in.info.Release == release })
}

// StopApp implements scale.Scheduler.
func (f *Fake) StopApp(ctx context.Context, app string) error {
	if f.closed.Load() {
		return scale.ErrClosed
	}
	if err := f.stopMatching(ctx, app, func(*fakeInst) bool { return true }); err != nil {
		return err
	}
	f.w.logs.Forget(app)
	return nil
}

func (f *Fake) stopMatching(ctx context.Context, app string, match func(*fakeInst) bool) error {
	lock := f.w.appLock(app)
	lock.Lock()
	w := f.w
	var waits []*fakeInst
	w.mu.Lock()
	for _, in := range w.insts {
		if in.info.App == app && match(in) {
			w.stopLocked(in)
			waits = append(waits, in)
		}
	}
	w.mu.Unlock()
	lock.Unlock()
	for _, in := range waits {
		select {
		case <-in.done:
		case <-ctx.Done():
			return fmt.Errorf("scale: stopping %s: %w", app, ctx.Err())
		}
	}
	return nil
}

// Run implements scale.Scheduler.
func (f *Fake) Run(ctx context.Context, o scale.OneOff) (scale.OneOffResult, error) {
	if f.closed.Load() {
		return scale.OneOffResult{}, scale.ErrClosed
	}
	if err := o.Validate(); err != nil {
		return scale.OneOffResult{}, err
	}
	c := f.caps()
	if (o.Detached && !c.DetachedOneOffs) || (!o.Detached && !c.OneOffs) {
		return scale.OneOffResult{}, fmt.Errorf("scale: one-off for %s: %w", o.App, scale.ErrUnsupported)
	}
	if err := f.checkResources(o.Resources); err != nil {
		return scale.OneOffResult{}, fmt.Errorf("scale: one-off for %s: %w", o.App, err)
	}
	prog, err := f.program(o.Image, o.Command, "one-off")
	if err != nil {
		return scale.OneOffResult{}, fmt.Errorf("scale: one-off for %s: %w", o.App, err)
	}
	typ := o.Type
	if typ == "" {
		typ = "run"
	}
	w := f.w
	in := &fakeInst{
		f: f, prog: prog, env: copyEnv(o.Env), res: o.Resources, oneOff: true,
		stopReq: make(chan struct{}), done: make(chan struct{}),
	}
	if !o.Detached {
		in.out, in.errOut = o.Stdout, o.Stderr
	}
	w.mu.Lock()
	w.oneOffs[o.App]++
	idx := w.oneOffs[o.App]
	in.info = scale.Instance{
		ID:  fmt.Sprintf("%s-v%d-%s-%d-%s", o.App, o.Release, typ, idx, suffix()),
		App: o.App, Release: o.Release, ProcessType: typ, Index: idx, State: scale.StateStarting,
	}
	w.insts[in.info.ID] = in
	w.mu.Unlock()
	go in.supervise(w)
	res := scale.OneOffResult{ID: in.info.ID}

	if o.Detached {
		ttl := o.TTL
		if ttl == 0 {
			ttl = scale.DefaultDetachedTTL
		}
		go func() {
			t := time.NewTimer(ttl)
			defer t.Stop()
			select {
			case <-in.done:
			case <-t.C:
				w.mu.Lock()
				w.stopLocked(in)
				w.mu.Unlock()
			}
		}()
		return res, nil
	}
	var timeout <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	kill := func() {
		w.mu.Lock()
		in.stopping = true
		in.info.State = scale.StateStopping
		w.mu.Unlock()
		w.killRun(in)
		<-in.done
	}
	select {
	case <-in.done:
	case <-timeout:
		kill()
		return res, fmt.Errorf("scale: one-off %s after %s: %w", res.ID, o.Timeout, scale.ErrTimeout)
	case <-ctx.Done():
		kill()
		return res, fmt.Errorf("scale: one-off %s: %w", res.ID, ctx.Err())
	}
	w.mu.Lock()
	res.Exit = *in.info.LastExit
	w.mu.Unlock()
	return res, nil
}

// Instances implements scale.Scheduler.
func (f *Fake) Instances(ctx context.Context, q scale.Query) ([]scale.Instance, error) {
	if f.closed.Load() {
		return nil, scale.ErrClosed
	}
	w := f.w
	w.mu.Lock()
	var out []scale.Instance
	for _, in := range w.insts {
		i := in.info
		if (q.App != "" && i.App != q.App) || (q.Release != 0 && i.Release != q.Release) || (q.ProcessType != "" && i.ProcessType != q.ProcessType) {
			continue
		}
		if in.health != nil && i.State == scale.StateUp {
			i.Healthy = *in.health
		}
		if i.LastExit != nil {
			e := *i.LastExit
			i.LastExit = &e
		}
		out = append(out, i)
	}
	w.mu.Unlock()
	scale.SortInstances(out)
	return out, nil
}

// Logs implements scale.Scheduler.
func (f *Fake) Logs(ctx context.Context, q scale.LogQuery, fn func(observe.LogLine) error) error {
	if f.closed.Load() {
		return scale.ErrClosed
	}
	return ServeLogs(ctx, f.w.logs, q, fn)
}

// ServeLogs answers a Scheduler.Logs call from a LogBuffer, for schedulers
// that keep their logs in one.
func ServeLogs(ctx context.Context, b *observe.LogBuffer, q scale.LogQuery, fn func(observe.LogLine) error) error {
	if q.App == "" {
		return fmt.Errorf("scale: logs: no app given: %w", scale.ErrNotFound)
	}
	match := func(l observe.LogLine) bool {
		return (q.ProcessType == "" || l.ProcessType == q.ProcessType) && (q.Instance == "" || l.Instance == q.Instance)
	}
	if !q.Follow {
		for _, l := range b.Tail(q.App, q.Tail, match) {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	}
	return b.Follow(ctx, q.App, q.Tail, match, fn)
}

// Recover implements scale.Scheduler: it reports the instances a Fake
// shares with the Fake it was reopened from.
func (f *Fake) Recover(ctx context.Context) (scale.RecoverReport, error) {
	if f.closed.Load() {
		return scale.RecoverReport{}, scale.ErrClosed
	}
	var rep scale.RecoverReport
	f.w.mu.Lock()
	for id := range f.w.insts {
		rep.Reattached = append(rep.Reattached, id)
	}
	f.w.mu.Unlock()
	sort.Strings(rep.Reattached)
	return rep, nil
}

// Close implements scale.Scheduler. Instances keep running; see Reopen.
func (f *Fake) Close() error {
	f.closed.Store(true)
	return nil
}
