package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/scale"
)

// meta is what an instance's directory records about it (instance.json).
type meta struct {
	ID        string
	App       string
	Release   int
	Type      string
	Index     int
	Addr      string
	Port      int
	OneOff    bool
	Detached  bool
	Deadline  time.Time // a detached one-off's TTL
	Grace     time.Duration
	Memory    int64
	Lower     string // the image's unpacked root
	NetSlot   int    // the /30 of an instance in its own network namespace; 0 with the host's
	Restarts  int
	StartedAt time.Time
}

// supervisorRecord is sup.json: the supervising shell of the current run.
type supervisorRecord struct {
	Pid   int
	Start uint64 // start time in clock ticks, to tell a reused pid apart
}

// supervisor is the running supervisor of an instance.
type supervisor struct {
	supervisorRecord
	cmd *exec.Cmd // set when this process started it
}

// The script of the supervising shell: run runc in the foreground, then
// record its exit status.
// It first waits for its stdin to close, once it has been moved to the
// supervisors cgroup.
const supervisorScript = `read _; exec </dev/null; r=$1; shift; "$@"; c=$?; echo $c > "$r.tmp" && mv "$r.tmp" "$r"`

type instance struct {
	s     *Scheduler
	dir   string
	tails []*tailer

	stopReq  chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// One-offs.
	out, errOut io.Writer

	// Guarded by s.mu.
	meta     meta
	state    scale.State
	healthy  bool
	lastExit *scale.ExitStatus
	stopping bool
	grace    time.Duration // of the stop under way
	killSent bool
}

func (in *instance) path(name string) string { return filepath.Join(in.dir, name) }

func (in *instance) info() scale.Instance {
	m := in.meta
	i := scale.Instance{
		ID: m.ID, App: m.App, Release: m.Release, ProcessType: m.Type, Index: m.Index,
		State: in.state, Healthy: in.healthy, Addr: m.Addr, Restarts: m.Restarts, StartedAt: m.StartedAt,
	}
	if in.lastExit != nil {
		e := *in.lastExit
		i.LastExit = &e
	}
	return i
}

func (in *instance) saveMeta() error {
	in.s.mu.Lock()
	b, _ := json.Marshal(in.meta)
	in.s.mu.Unlock()
	return writeAtomic(in.path("instance.json"), b)
}

func writeAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return stateErr("writing", p, err)
	}
	return stateErr("writing", p, os.Rename(tmp, p))
}

// setState changes the state and tells the app's logs.
func (in *instance) setState(st scale.State, healthy bool) {
	s := in.s
	s.mu.Lock()
	old := in.state
	in.state, in.healthy = st, healthy
	m := in.meta
	s.mu.Unlock()
	if old != st {
		s.notice(m, fmt.Sprintf("State changed from %s to %s", old, st))
	}
}

// newTailers makes the instance's stdout and stderr tailers.
func (in *instance) newTailers() {
	s := in.s
	m := in.meta
	for _, stream := range []string{"stdout", "stderr"} {
		w := in.out
		if stream == "stderr" {
			w = in.errOut
		}
		in.tails = append(in.tails, newTailer(in.path(stream), s.cfg.MaxLogFileBytes, func(text string, replay bool) {
			l := observe.LogLine{
				Time: time.Now(), App: m.App, Source: observe.SourceApp, ProcessType: m.Type,
				Instance: m.ID, Stream: stream, Text: text,
			}
			s.logs.WriteLog(l)
			if replay {
				return
			}
			if s.cfg.Logs != nil {
				s.cfg.Logs.WriteLog(l)
			}
			if w != nil {
				_, _ = io.WriteString(w, text+"\n")
			}
		}))
	}
}

// requestStop starts stopping the instance: SIGTERM now, SIGKILL after
// grace (at once when grace is negative).
func (in *instance) requestStop(grace time.Duration) {
	s := in.s
	s.mu.Lock()
	if in.stopping {
		s.mu.Unlock()
		return
	}
	in.stopping = true
	in.grace = grace
	prev := in.state
	in.state = scale.StateStopping
	m := in.meta
	s.mu.Unlock()
	s.notice(m, fmt.Sprintf("State changed from %s to %s", prev, scale.StateStopping))
	in.stopOnce.Do(func() { close(in.stopReq) })
	s.wg.Add(1)
	go in.killer(grace)
}

// killer signals the container until the instance is done: SIGTERM to all
// its processes, SIGKILL once grace has passed.
func (in *instance) killer(grace time.Duration) {
	s := in.s
	defer s.wg.Done()
	s.mu.Lock()
	m := in.meta
	s.mu.Unlock()
	id := m.ID
	start := time.Now()
	termed := grace < 0
	if termed {
		in.s.mu.Lock()
		in.killSent = true
		in.s.mu.Unlock()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if !termed {
			termed = s.runc("kill", "--all", id, "TERM") == nil
			if termed {
				s.notice(m, "Stopping all processes with SIGTERM")
			}
		}
		if time.Since(start) >= grace {
			s.mu.Lock()
			first := !in.killSent
			in.killSent = true
			s.mu.Unlock()
			if s.runc("kill", "--all", id, "KILL") == nil && first && grace >= 0 {
				s.notice(m, "Stopping all processes with SIGKILL")
			}
		}
		select {
		case <-in.done:
			return
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// prepareRootfs mounts a fresh overlay of the image's root at the bundle's
// rootfs.
func (in *instance) prepareRootfs() error {
	rootfs := in.path("bundle/rootfs")
	unmount(rootfs)
	for _, d := range []string{"upper", "work"} {
		if err := os.RemoveAll(in.path(d)); err != nil {
			return stateErr("resetting", in.path(d), err)
		}
	}
	for _, d := range []string{"upper", "work", "bundle/rootfs"} {
		if err := os.MkdirAll(in.path(d), 0o755); err != nil {
			return stateErr("creating", in.path(d), err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", in.meta.Lower, in.path("upper"), in.path("work"))
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("local: mounting the root of %s: %w", in.meta.ID, err)
	}
	return nil
}

func unmount(p string) {
	for i := 0; i < 10; i++ {
		if err := unix.Unmount(p, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				_ = unix.Unmount(p, unix.MNT_DETACH)
			}
			return
		}
	}
}

// start starts a run of the instance: a fresh root, the cgroup, and the
// supervising shell running `runc run`.
func (in *instance) start() (*supervisor, error) {
	s := in.s
	if err := in.prepareRootfs(); err != nil {
		return nil, err
	}
	if in.meta.NetSlot != 0 {
		if err := s.net.create(in.meta.ID, in.meta.NetSlot); err != nil {
			return nil, fmt.Errorf("local: network of %s: %w", in.meta.ID, err)
		}
	}
	if err := s.cg.prepare(in.meta.ID, in.meta.Memory); err != nil {
		return nil, fmt.Errorf("local: cgroup of %s: %w", in.meta.ID, err)
	}
	_ = os.Remove(in.path("exit"))
	var files [2]*os.File
	for i, name := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(in.path(name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, stateErr("opening", in.path(name), err)
		}
		defer f.Close()
		files[i] = f
	}
	cmd := exec.Command(s.cfg.Shell, "-c", supervisorScript, "slipway-supervisor", in.path("exit"),
		s.cfg.Runc, "--root", s.runcRoot, "run", "--bundle", in.path("bundle"), in.meta.ID)
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = in.dir
	gate, release, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("local: starting %s: %w", in.meta.ID, err)
	}
	defer release.Close()
	cmd.Stdin = gate
	s.mu.Lock()
	in.killSent = false
	in.meta.StartedAt = time.Now()
	s.mu.Unlock()
	err = cmd.Start()
	gate.Close()
	if err != nil {
		return nil, fmt.Errorf("local: starting %s: %w", in.meta.ID, err)
	}
	if err := s.cg.adopt(cmd.Process.Pid); err != nil {
		s.log.Warn("local: moving a supervisor out of the control plane's cgroup", "instance", in.meta.ID, "err", err)
	}
	release.Close() // the supervisor goes on
	sup := &supervisor{supervisorRecord: supervisorRecord{Pid: cmd.Process.Pid, Start: procStart(cmd.Process.Pid)}, cmd: cmd}
	b, _ := json.Marshal(sup.supervisorRecord)
	if err := writeAtomic(in.path("sup.json"), b); err != nil {
		// Without the record a restarted control plane cannot find it.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	if err := in.saveMeta(); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return sup, nil
}

// procStart returns the start time of pid (field 22 of /proc/pid/stat), or
// 0 when it is gone.
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// watch waits for the run to end, checking health meanwhile. It returns
// false when the scheduler is closed first.
func (in *instance) watch(sup *supervisor, web bool) (scale.ExitStatus, bool) {
	s := in.s
	runDone := make(chan struct{})
	var hwg sync.WaitGroup
	if web {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			in.checkHealth(runDone)
		}()
	} else {
		in.setStateIfNotStopping(scale.StateUp, true)
	}
	defer func() {
		close(runDone)
		hwg.Wait()
	}()
	if !waitPid(sup.Pid, sup.Start, s.stop) {
		return scale.ExitStatus{}, false
	}
	if sup.cmd != nil {
		_ = sup.cmd.Wait()
	}
	for _, t := range in.tails {
		t.poll(true)
	}
	return in.exitStatus(), true
}

func (in *instance) setStateIfNotStopping(st scale.State, healthy bool) {
	s := in.s
	s.mu.Lock()
	if in.stopping {
		s.mu.Unlock()
		return
	}
	old := in.state
	in.state, in.healthy = st, healthy
	m := in.meta
	s.mu.Unlock()
	if old != st {
		s.notice(m, fmt.Sprintf("State changed from %s to %s", old, st))
	}
}

// waitPid waits until the process pid (started at start) has exited, or
// stop is closed (false).
func waitPid(pid int, start uint64, stop <-chan struct{}) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true // already gone
	}
	defer unix.Close(fd)
	if procStart(pid) != start {
		return true // the pid was reused: ours is gone
	}
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return true
		}
		select {
		case <-stop:
			return false
		default:
		}
	}
}

// exitStatus reads how the run ended.
func (in *instance) exitStatus() scale.ExitStatus {
	s := in.s
	now := time.Now()
	b, err := os.ReadFile(in.path("exit"))
	if err != nil {
		return scale.ExitStatus{Code: -1, Reason: "the supervisor ended without an exit status", Time: now}
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return scale.ExitStatus{Code: -1, Reason: "unreadable exit status", Time: now}
	}
	s.mu.Lock()
	killed := in.killSent
	s.mu.Unlock()
	if code > 128 && code <= 128+64 {
		sig := unix.Signal(code - 128)
		st := scale.ExitStatus{Code: -1, Signal: unix.SignalName(sig), Time: now}
		st.Reason = "killed by " + st.Signal
		if sig == unix.SIGKILL && !killed && in.meta.Memory > 0 && s.cg.hitLimit(in.meta.ID) {
			st.OOMKilled = true
			st.Reason = fmt.Sprintf("OOM killed: memory limit of %d bytes exceeded", in.meta.Memory)
		}
		return st
	}
	return scale.ExitStatus{Code: code, Reason: fmt.Sprintf("exited with code %d", code), Time: now}
}

// checkHealth dials a web instance's port: quickly until it first answers,
// then every HealthInterval, until done is closed.
func (in *instance) checkHealth(done <-chan struct{}) {
	s := in.s
	addr := in.meta.Addr
	start := time.Now()
	up := false
	wait := time.Millisecond // before the first answer: 1 ms, growing by half up to 5 ms
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		ok := err == nil
		if ok {
			c.Close()
		}
		switch {
		case ok && !up:
			up = true
			in.setStateIfNotStopping(scale.StateUp, true)
		case up:
			s.mu.Lock()
			if !in.stopping {
				in.healthy = ok
			}
			s.mu.Unlock()
		}
		d := s.cfg.HealthInterval
		if !up {
			wait = min(wait*3/2, 5*time.Millisecond)
			d = wait
			if time.Since(start) > 10*time.Second {
				d = min(s.cfg.HealthInterval, 500*time.Millisecond)
			}
		}
		select {
		case <-done:
			return
		case <-time.After(d):
		}
	}
}

// lifecycle runs the instance until it stops for good or the scheduler is
// closed. sup is the supervisor of a run already going (after Recover).
func (in *instance) lifecycle(sup *supervisor) {
	s := in.s
	defer s.wg.Done()
	quit := make(chan struct{})
	var twg sync.WaitGroup
	twg.Add(1)
	go func() {
		defer twg.Done()
		follow(quit, in.tails...)
	}()
	closed := false
	defer func() {
		close(quit)
		twg.Wait()
		for _, t := range in.tails {
			t.close()
		}
		if !closed {
			in.remove()
		}
		close(in.done)
	}()
	streak := 0
	for {
		var st scale.ExitStatus
		if sup == nil {
			if in.isStopping() {
				return
			}
			in.setStateIfNotStopping(scale.StateStarting, false)
			var err error
			if sup, err = in.start(); err != nil {
				s.log.Error("local: starting instance", "instance", in.meta.ID, "err", err)
				st = scale.ExitStatus{Code: -1, Reason: "could not start: " + err.Error(), Time: time.Now()}
			}
		}
		ranFor := time.Duration(0)
		if sup != nil {
			s.event(observe.EventInstanceStarted, in.meta, "")
			var ok bool
			st, ok = in.watch(sup, in.meta.Port != 0)
			if !ok {
				closed = true
				return
			}
			ranFor = time.Since(in.meta.StartedAt)
			sup = nil
		}
		s.mu.Lock()
		in.lastExit = &st
		stopping := in.stopping
		m := in.meta
		s.mu.Unlock()
		s.notice(m, "Process exited: "+st.Reason)
		if st.OOMKilled {
			s.event(observe.EventInstanceOOM, m, st.Reason)
		}
		if stopping || m.OneOff {
			in.setState(scale.StateStopped, false)
			s.event(observe.EventInstanceStopped, m, st.Reason)
			return
		}
		in.setStateIfNotStopping(scale.StateCrashed, false)
		s.event(observe.EventInstanceCrashed, m, st.Reason)
		if ranFor >= s.cfg.Backoff.Max {
			streak = 0
		}
		streak++
		t := time.NewTimer(s.cfg.Backoff.Delay(streak))
		select {
		case <-in.stopReq:
			t.Stop()
			return
		case <-s.stop:
			t.Stop()
			closed = true
			return
		case <-t.C:
		}
		s.mu.Lock()
		in.meta.Restarts++
		s.mu.Unlock()
	}
}

func (in *instance) isStopping() bool {
	in.s.mu.Lock()
	defer in.s.mu.Unlock()
	return in.stopping
}

// remove deletes what is left of the instance: its container, mount,
// cgroups and directory, and forgets it.
func (in *instance) remove() {
	s := in.s
	id := in.meta.ID
	s.reap(context.Background(), id, in.dir, in.meta.NetSlot)
	s.mu.Lock()
	if s.insts[id] == in {
		delete(s.insts, id)
	}
	if in.meta.Port != 0 && in.meta.NetSlot == 0 {
		delete(s.ports, in.meta.Port)
	}
	delete(s.slots, in.meta.NetSlot)
	s.mu.Unlock()
}
