package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipwayhq/slipway/internal/oci"
	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/scale"
)

// Scheduler runs instances as runc containers on this machine. Create it
// with New; call Recover before anything else when its StateDir may hold
// instances of an earlier control plane.
type Scheduler struct {
	cfg      Config
	log      *slog.Logger
	images   *imageCache
	cg       cgroups
	net      netns
	logs     *observe.LogBuffer
	runcRoot string
	instDir  string

	closed    atomic.Bool
	recovered atomic.Bool   // Recover has run
	recoverMu sync.Mutex    // serializes Recover
	stop      chan struct{} // closed by Close
	wg        sync.WaitGroup

	mu       sync.Mutex
	insts    map[string]*instance
	ports    map[int]bool
	slots    map[int]bool // network slots in use
	appLocks map[string]*sync.Mutex
	oneOffs  map[string]int
}

var _ scale.Scheduler = (*Scheduler)(nil)

// New returns a Scheduler on cfg.StateDir, creating it if needed. It does
// not touch instances found there until Recover.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.StateDir, "images")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		cfg:      cfg,
		log:      log,
		images:   &imageCache{layout: oci.Layout{Dir: cfg.Images}, dir: cfg.CacheDir},
		cg:       cgroups{root: cfg.CgroupRoot, parent: cfg.CgroupParent + "/" + stateHash(cfg.StateDir)},
		logs:     observe.NewLogBuffer(observe.LogBufferConfig{LinesPerApp: cfg.LinesPerApp}),
		runcRoot: filepath.Join(cfg.StateDir, "runc"),
		instDir:  filepath.Join(cfg.StateDir, "instances"),
		stop:     make(chan struct{}),
		insts:    make(map[string]*instance),
		ports:    make(map[int]bool),
		slots:    make(map[int]bool),
		net:      newNetns(cfg.IP, cfg.Subnet, cfg.StateDir),
		appLocks: make(map[string]*sync.Mutex),
		oneOffs:  make(map[string]int),
	}
	for _, d := range []string{cfg.StateDir, s.runcRoot, s.instDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, stateErr("creating", d, err)
		}
	}
	if _, err := os.Stat(cfg.Runc); err != nil {
		return nil, fmt.Errorf("local: runc: %w", err)
	}
	return s, nil
}

// Capabilities implements scale.Scheduler.
func (s *Scheduler) Capabilities() scale.Capabilities {
	return scale.Capabilities{OneOffs: true, DetachedOneOffs: true, MemoryLimits: true, CPULimits: true, Recover: true}
}

func (s *Scheduler) runc(args ...string) error {
	cmd := exec.Command(s.cfg.Runc, append([]string{"--root", s.runcRoot}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (s *Scheduler) notice(m meta, text string) {
	l := observe.LogLine{Time: time.Now(), App: m.App, Source: observe.SourcePlatform, ProcessType: m.Type, Instance: m.ID, Text: text}
	s.logs.WriteLog(l)
	if s.cfg.Logs != nil {
		s.cfg.Logs.WriteLog(l)
	}
}

func (s *Scheduler) event(kind observe.EventKind, m meta, msg string) {
	if s.cfg.Events != nil {
		s.cfg.Events.Event(observe.Event{Time: time.Now(), App: m.App, Kind: kind, Release: m.Release, Instance: m.ID, Message: msg})
	}
}

func (s *Scheduler) appLock(app string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.appLocks[app]
	if l == nil {
		l = new(sync.Mutex)
		s.appLocks[app] = l
	}
	return l
}

// allocPort returns a port of Config.Ports that no instance has and nothing
// listens on, trying them in order from a random one (so that schedulers
// sharing a machine rarely try the same port at once). Call with s.mu held.
func (s *Scheduler) allocPort() (int, error) {
	r := s.cfg.Ports
	n := r.Last - r.First + 1
	off := mathrand.IntN(n)
	for i := 0; i < n; i++ {
		p := r.First + (off+i)%n
		if s.ports[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken by someone else
		}
		ln.Close()
		s.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("local: no free port left in %d-%d", r.First, r.Last)
}

// stateHash names a state directory in cgroup and network namespace names.
func stateHash(dir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return hex.EncodeToString(sum[:4])
}

// allocSlot returns a free network slot, or 0 with HostNetwork. Call with
// s.mu held.
func (s *Scheduler) allocSlot() (int, error) {
	if s.cfg.Network != IsolatedNetwork {
		return 0, nil
	}
	for i := 1; i < s.net.slots(); i++ {
		if !s.slots[i] {
			s.slots[i] = true
			return i, nil
		}
	}
	return 0, fmt.Errorf("local: no free /30 left in %s", s.cfg.Subnet)
}

// isolatedPort is the PORT of web instances in their own network
// namespace, which need not differ.
const isolatedPort = 5000

func suffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// plan is one instance to create.
type plan struct {
	m    meta
	args []string
	env  map[string]string
	cpus float64
	img  *image
	out  io.Writer
	eout io.Writer
}

// create writes the instance's directory and starts its lifecycle.
func (s *Scheduler) create(p plan) (*instance, error) {
	in := &instance{
		s: s, dir: filepath.Join(s.instDir, p.m.ID), stopReq: make(chan struct{}), done: make(chan struct{}),
		out: p.out, errOut: p.eout, meta: p.m, state: scale.StateStarting,
	}
	env := make(map[string]string, len(p.env)+2)
	for k, v := range p.env {
		env[k] = v
	}
	env["DYNO"] = fmt.Sprintf("%s.%d", p.m.Type, p.m.Index)
	if p.m.Port != 0 {
		env["PORT"] = strconv.Itoa(p.m.Port)
	}
	cwd := p.img.config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	netnsPath := ""
	if p.m.NetSlot != 0 {
		netnsPath = s.net.path(p.m.ID)
	}
	spec := runtimeSpec(specInput{
		args: p.args, env: mergeEnv(p.img.config.Env, env), cwd: cwd,
		user: resolveUser(p.img.rootfs, p.img.config.User), hostname: hostname(p.m.ID),
		cgroup: s.cg.path(p.m.ID), cpus: p.cpus, pids: s.cfg.PidsLimit, readOnly: s.cfg.ReadOnlyRootfs,
		netns: netnsPath,
	})
	// Listed before its directory exists, so that a concurrent Recover
	// never takes the directory for a leftover.
	s.mu.Lock()
	s.insts[p.m.ID] = in
	s.mu.Unlock()
	err := os.MkdirAll(in.path("bundle"), 0o700)
	if err != nil {
		err = stateErr("creating", in.dir, err)
	}
	if err == nil {
		b, _ := json.Marshal(spec)
		err = writeAtomic(in.path("bundle/config.json"), b)
	}
	if err == nil {
		err = in.saveMeta()
	}
	if err != nil {
		_ = os.RemoveAll(in.dir)
		s.mu.Lock()
		delete(s.insts, p.m.ID)
		s.mu.Unlock()
		close(in.done) // for a StopApp that found it meanwhile
		return nil, err
	}
	in.newTailers()
	s.wg.Add(1)
	go in.lifecycle(nil)
	return in, nil
}

// Apply implements scale.Scheduler.
func (s *Scheduler) Apply(ctx context.Context, f scale.Formation) error {
	if s.closed.Load() {
		return scale.ErrClosed
	}
	if err := f.Validate(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("scale: apply %s v%d: %w", f.App, f.Release, err) }
	if err := s.ensureRecovered(ctx); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	lock := s.appLock(f.App)
	lock.Lock()
	defer lock.Unlock()

	var img *image
	args := make(map[string][]string)
	for _, p := range f.Processes {
		if p.Count == 0 {
			continue
		}
		if img == nil {
			var err error
			if img, err = s.images.get(ctx, f.Image); err != nil {
				return fail(err)
			}
		}
		a := command(img.rootfs, img.config.Entrypoint, img.config.Cmd, p.Command)
		if len(a) == 0 {
			return fail(fmt.Errorf("process type %s: %w", p.Type, scale.ErrNoCommand))
		}
		args[p.Type] = a
	}

	s.mu.Lock()
	byType := make(map[string][]*instance)
	for _, in := range s.insts {
		if in.meta.App == f.App && in.meta.Release == f.Release && !in.meta.OneOff && !in.stopping {
			byType[in.meta.Type] = append(byType[in.meta.Type], in)
		}
	}
	var plans []plan
	var stops []*instance
	wanted := make(map[string]bool)
	for _, p := range f.Processes {
		wanted[p.Type] = true
		running := byType[p.Type]
		sort.Slice(running, func(i, j int) bool { return running[i].meta.Index < running[j].meta.Index })
		for len(running) > p.Count {
			stops = append(stops, running[len(running)-1])
			running = running[:len(running)-1]
		}
		used := make(map[int]bool)
		for _, in := range running {
			used[in.meta.Index] = true
		}
		grace := p.Grace
		if grace == 0 {
			grace = scale.DefaultGrace
		}
		for idx, n := 1, len(running); n < p.Count; idx++ {
			if used[idx] {
				continue
			}
			n++
			m := meta{
				ID:  fmt.Sprintf("%s-v%d-%s-%d-%s", f.App, f.Release, p.Type, idx, suffix()),
				App: f.App, Release: f.Release, Type: p.Type, Index: idx,
				Grace: grace, Memory: p.Resources.MemoryBytes, Lower: img.rootfs,
			}
			slot, err := s.allocSlot()
			if err != nil {
				s.mu.Unlock()
				return fail(err)
			}
			m.NetSlot = slot
			if p.Port {
				if slot != 0 {
					_, addr := s.net.addrs(slot)
					m.Port, m.Addr = isolatedPort, net.JoinHostPort(addr.String(), strconv.Itoa(isolatedPort))
				} else {
					port, err := s.allocPort()
					if err != nil {
						s.mu.Unlock()
						return fail(err)
					}
					m.Port, m.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
				}
			}
			plans = append(plans, plan{m: m, args: args[p.Type], env: f.Env, cpus: p.Resources.CPUs, img: img})
		}
	}
	for typ, running := range byType {
		if !wanted[typ] {
			stops = append(stops, running...)
		}
	}
	s.mu.Unlock()

	for _, in := range stops {
		in.requestStop(in.meta.Grace)
	}
	for i, p := range plans {
		if _, err := s.create(p); err != nil {
			s.mu.Lock()
			for _, q := range plans[i:] {
				if q.m.NetSlot == 0 {
					delete(s.ports, q.m.Port)
				}
				delete(s.slots, q.m.NetSlot)
			}
			s.mu.Unlock()
			return fail(err)
		}
	}
	return nil
}

// StopRelease implements scale.Scheduler.
func (s *Scheduler) StopRelease(ctx context.Context, app string, release int) error {
	if s.closed.Load() {
		return scale.ErrClosed
	}
	return s.stopMatching(ctx, app, func(m meta) bool { return !m.OneOff && m.Release == release })
}

// StopApp implements scale.Scheduler.
func (s *Scheduler) StopApp(ctx context.Context, app string) error {
	if s.closed.Load() {
		return scale.ErrClosed
	}
	if err := s.stopMatching(ctx, app, func(meta) bool { return true }); err != nil {
		return err
	}
	s.logs.Forget(app)
	return nil
}

func (s *Scheduler) stopMatching(ctx context.Context, app string, match func(meta) bool) error {
	lock := s.appLock(app)
	lock.Lock()
	var waits []*instance
	s.mu.Lock()
	for _, in := range s.insts {
		if in.meta.App == app && match(in.meta) {
			waits = append(waits, in)
		}
	}
	s.mu.Unlock()
	for _, in := range waits {
		in.requestStop(in.meta.Grace)
	}
	lock.Unlock()
	for _, in := range waits {
		select {
		case <-in.done:
		case <-ctx.Done():
			return fmt.Errorf("scale: stopping %s: %w", app, ctx.Err())
		case <-s.stop:
			return scale.ErrClosed
		}
	}
	return nil
}

// Run implements scale.Scheduler.
func (s *Scheduler) Run(ctx context.Context, o scale.OneOff) (scale.OneOffResult, error) {
	if s.closed.Load() {
		return scale.OneOffResult{}, scale.ErrClosed
	}
	if err := o.Validate(); err != nil {
		return scale.OneOffResult{}, err
	}
	fail := func(err error) (scale.OneOffResult, error) {
		return scale.OneOffResult{}, fmt.Errorf("scale: one-off for %s v%d: %w", o.App, o.Release, err)
	}
	if err := s.ensureRecovered(ctx); err != nil {
		return fail(err)
	}
	img, err := s.images.get(ctx, o.Image)
	if err != nil {
		return fail(err)
	}
	args := command(img.rootfs, img.config.Entrypoint, img.config.Cmd, o.Command)
	if len(args) == 0 {
		return fail(scale.ErrNoCommand)
	}
	typ := o.Type
	if typ == "" {
		typ = "run"
	}
	s.mu.Lock()
	s.oneOffs[o.App]++
	idx := s.oneOffs[o.App]
	slot, err := s.allocSlot()
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	m := meta{
		ID:  fmt.Sprintf("%s-v%d-%s-%d-%s", o.App, o.Release, typ, idx, suffix()),
		App: o.App, Release: o.Release, Type: typ, Index: idx, OneOff: true, Detached: o.Detached,
		Grace: scale.DefaultGrace, Memory: o.Resources.MemoryBytes, Lower: img.rootfs, NetSlot: slot,
	}
	p := plan{m: m, args: args, env: o.Env, cpus: o.Resources.CPUs, img: img}
	if o.Detached {
		ttl := o.TTL
		if ttl == 0 {
			ttl = scale.DefaultDetachedTTL
		}
		p.m.Deadline = time.Now().Add(ttl)
	} else {
		p.out, p.eout = o.Stdout, o.Stderr
	}
	in, err := s.create(p)
	if err != nil {
		s.mu.Lock()
		delete(s.slots, slot)
		s.mu.Unlock()
		return fail(err)
	}
	res := scale.OneOffResult{ID: m.ID}
	if o.Detached {
		s.armTTL(in)
		return res, nil
	}
	var timeout <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	kill := func() {
		in.requestStop(-1)
		select {
		case <-in.done:
		case <-s.stop:
		}
	}
	select {
	case <-in.done:
	case <-timeout:
		kill()
		return res, fmt.Errorf("scale: one-off %s after %s: %w", res.ID, o.Timeout, scale.ErrTimeout)
	case <-ctx.Done():
		kill()
		return res, fmt.Errorf("scale: one-off %s: %w", res.ID, ctx.Err())
	case <-s.stop:
		return res, scale.ErrClosed
	}
	s.mu.Lock()
	if in.lastExit != nil {
		res.Exit = *in.lastExit
	}
	s.mu.Unlock()
	return res, nil
}

// armTTL stops a detached one-off at its deadline.
func (s *Scheduler) armTTL(in *instance) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(time.Until(in.meta.Deadline))
		defer t.Stop()
		select {
		case <-in.done:
		case <-s.stop:
		case <-t.C:
			in.requestStop(in.meta.Grace)
		}
	}()
}

// Instances implements scale.Scheduler.
func (s *Scheduler) Instances(ctx context.Context, q scale.Query) ([]scale.Instance, error) {
	if s.closed.Load() {
		return nil, scale.ErrClosed
	}
	s.mu.Lock()
	var out []scale.Instance
	for _, in := range s.insts {
		m := in.meta
		if (q.App != "" && m.App != q.App) || (q.Release != 0 && m.Release != q.Release) || (q.ProcessType != "" && m.Type != q.ProcessType) {
			continue
		}
		out = append(out, in.info())
	}
	s.mu.Unlock()
	scale.SortInstances(out)
	return out, nil
}

// Logs implements scale.Scheduler.
func (s *Scheduler) Logs(ctx context.Context, q scale.LogQuery, fn func(observe.LogLine) error) error {
	if s.closed.Load() {
		return scale.ErrClosed
	}
	if q.App == "" {
		return fmt.Errorf("scale: logs: no app given: %w", scale.ErrNotFound)
	}
	match := func(l observe.LogLine) bool {
		return (q.ProcessType == "" || l.ProcessType == q.ProcessType) && (q.Instance == "" || l.Instance == q.Instance)
	}
	if !q.Follow {
		for _, l := range s.logs.Tail(q.App, q.Tail, match) {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.logs.Follow(ctx, q.App, q.Tail, match, fn)
}

// Recover implements scale.Scheduler: it re-attaches to the instances whose
// supervisor still runs and reaps the others, and removes runc containers
// and cgroups that belong to no instance.
//
// Apply and Run call it first if nobody has, so that instances of an earlier
// control plane are never duplicated; calling it again does no harm.
func (s *Scheduler) Recover(ctx context.Context) (scale.RecoverReport, error) {
	var rep scale.RecoverReport
	if s.closed.Load() {
		return rep, scale.ErrClosed
	}
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	return s.recoverLocked(ctx)
}

func (s *Scheduler) recoverLocked(ctx context.Context) (scale.RecoverReport, error) {
	var rep scale.RecoverReport
	defer s.recovered.Store(true)
	ents, err := os.ReadDir(s.instDir)
	if err != nil {
		return rep, stateErr("reading", s.instDir, err)
	}
	known := make(map[string]bool)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		known[id] = true
		s.mu.Lock()
		_, managed := s.insts[id]
		s.mu.Unlock()
		if managed {
			continue
		}
		dir := filepath.Join(s.instDir, id)
		if s.reattach(id, dir) {
			rep.Reattached = append(rep.Reattached, id)
			continue
		}
		var m meta
		if b, err := os.ReadFile(filepath.Join(dir, "instance.json")); err == nil {
			_ = json.Unmarshal(b, &m)
		}
		s.reap(ctx, id, dir, m.NetSlot)
		rep.Reaped = append(rep.Reaped, id)
	}
	// Containers and cgroups with no instance directory.
	if out, err := exec.CommandContext(ctx, s.cfg.Runc, "--root", s.runcRoot, "list", "-q").Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			if !known[id] {
				_ = s.runc("delete", "--force", id)
				rep.Reaped = append(rep.Reaped, id)
				known[id] = true
			}
		}
	}
	for _, id := range s.cg.list() {
		if !known[id] {
			_ = s.cg.remove(id)
		}
	}
	for _, id := range s.net.list() {
		s.mu.Lock()
		_, managed := s.insts[id]
		s.mu.Unlock()
		if !managed {
			s.net.remove(id, 0)
		}
	}
	sort.Strings(rep.Reattached)
	sort.Strings(rep.Reaped)
	return rep, nil
}

func (s *Scheduler) ensureRecovered(ctx context.Context) error {
	if s.recovered.Load() {
		return nil
	}
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	if s.recovered.Load() {
		return nil
	}
	_, err := s.recoverLocked(ctx)
	return err
}

// reattach manages again the instance in dir if its supervisor still runs.
func (s *Scheduler) reattach(id, dir string) bool {
	var m meta
	var sup supervisorRecord
	b, err := os.ReadFile(filepath.Join(dir, "instance.json"))
	if err != nil || json.Unmarshal(b, &m) != nil || m.ID != id {
		return false
	}
	b, err = os.ReadFile(filepath.Join(dir, "sup.json"))
	if err != nil || json.Unmarshal(b, &sup) != nil || sup.Pid <= 0 || procStart(sup.Pid) != sup.Start {
		return false
	}
	in := &instance{s: s, dir: dir, stopReq: make(chan struct{}), done: make(chan struct{}), meta: m, state: scale.StateStarting}
	in.newTailers()
	s.mu.Lock()
	s.insts[id] = in
	if m.Port != 0 && m.NetSlot == 0 {
		s.ports[m.Port] = true
	}
	if m.NetSlot != 0 {
		s.slots[m.NetSlot] = true
	}
	if m.OneOff && m.Index > s.oneOffs[m.App] {
		s.oneOffs[m.App] = m.Index
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go in.lifecycle(&supervisor{supervisorRecord: sup})
	if m.Detached {
		s.armTTL(in)
	}
	return true
}

// reap removes what is left of an instance that no longer runs.
func (s *Scheduler) reap(ctx context.Context, id, dir string, slot int) {
	_ = s.runc("delete", "--force", id)
	unmount(filepath.Join(dir, "bundle", "rootfs"))
	if slot != 0 {
		s.net.remove(id, slot)
	}
	if err := s.cg.remove(id); err != nil {
		s.log.Warn("local: removing cgroups", "instance", id, "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		s.log.Warn("local: removing instance directory", "instance", id, "err", err)
	}
}

// Close implements scale.Scheduler: it stops watching instances, which keep
// running, and waits for its goroutines.
func (s *Scheduler) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	return nil
}
