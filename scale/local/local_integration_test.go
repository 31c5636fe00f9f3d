//go:build integration

package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/internal/oci"
	"github.com/slipwayhq/slipway/internal/testenv"
	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/local"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

// testImages holds the images the tests run, built once per test binary:
// "test" (busybox plus /prog, the behaviours of testdata/prog) and "nocmd"
// (busybox alone, no entrypoint or cmd).
type testImages struct {
	layout string
	cache  string
	rootfs string // the unpacked files of "test", for raw runc runs
	err    error
}

var (
	imagesOnce sync.Once
	images     testImages
)

func buildImages(tb testing.TB) testImages {
	tb.Helper()
	imagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "slipway-local-images-")
		if err != nil {
			images.err = err
			return
		}
		images = testImages{layout: filepath.Join(dir, "layout"), cache: filepath.Join(dir, "cache"), rootfs: filepath.Join(dir, "rootfs")}
		images.err = func() error {
			busybox, err := exec.LookPath("busybox")
			if err != nil {
				return fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
			}
			for _, d := range []string{"bin", "etc", "tmp"} {
				if err := os.MkdirAll(filepath.Join(images.rootfs, d), 0o755); err != nil {
					return err
				}
			}
			b, err := os.ReadFile(busybox)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(images.rootfs, "bin/busybox"), b, 0o755); err != nil {
				return err
			}
			for _, l := range []string{"sh", "echo", "sleep", "cat", "ls", "nc"} {
				if err := os.Symlink("busybox", filepath.Join(images.rootfs, "bin", l)); err != nil {
					return err
				}
			}
			os.WriteFile(filepath.Join(images.rootfs, "etc/passwd"), []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644)
			base := filepath.Join(dir, "base")
			if err := exec.Command("cp", "-a", images.rootfs, base).Run(); err != nil {
				return err
			}
			build := exec.Command("go", "build", "-o", filepath.Join(images.rootfs, "prog"), "./testdata/prog")
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				return fmt.Errorf("building testdata/prog: %v: %s", err, out)
			}
			if _, err := oci.Write(images.layout, oci.WriteImage{Name: "test", Config: ocispec.ImageConfig{Cmd: []string{"/prog", "wait"}, Env: []string{"FROM_IMAGE=yes"}}, Layers: []oci.Layer{{Dir: images.rootfs, Gzip: true}}}); err != nil {
				return err
			}
			_, err = oci.Write(images.layout, oci.WriteImage{Name: "nocmd", Layers: []oci.Layer{{Dir: base}}})
			return err
		}()
	})
	if images.err != nil {
		tb.Fatalf("building test images: %v", images.err)
	}
	return images
}

var testPrograms = scaletest.Programs{
	Web:        "/prog web",
	Wait:       "/prog wait",
	IgnoreTerm: "/prog ignore-term",
	Exit:       func(code int) string { return fmt.Sprintf("/prog exit %d", code) },
	Print:      func(n int) string { return fmt.Sprintf("/prog print %d", n) },
	Env:        func(name string) string { return "/prog env " + name },
	Sleep:      func(d time.Duration) string { return "/prog sleep " + d.String() },
	Alloc:      func(mb int) string { return fmt.Sprintf("/prog alloc %d", mb) },
}

func config(tb testing.TB) local.Config {
	testenv.Root(tb)
	runc := testenv.Get(tb, testenv.RuncVar)
	imgs := buildImages(tb)
	parent := fmt.Sprintf("slipway-test-%d", os.Getpid())
	tb.Cleanup(func() {
		// Remove the test's cgroups that are empty, deepest first; those of
		// schedulers still in use stay.
		tops, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
		for _, top := range tops {
			var dirs []string
			filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				os.Remove(dirs[i])
			}
		}
	})
	return local.Config{
		StateDir:     tb.TempDir(),
		Images:       imgs.layout,
		CacheDir:     imgs.cache,
		Runc:         runc,
		CgroupParent: parent,
	}
}

func open(tb testing.TB, cfg local.Config) *local.Scheduler {
	tb.Helper()
	s, err := local.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	runConformance(t, config(t))
}

// runConformance runs the scheduler conformance suite on schedulers opened
// with cfg (each in its own state directory; Reopen keeps it), then checks
// that nothing was left behind.
func runConformance(t *testing.T, cfg local.Config) {
	var mu sync.Mutex
	configs := map[scale.Scheduler]local.Config{}
	scaletest.Run(t, scaletest.Harness{
		New: func(t *testing.T) scale.Scheduler {
			c := cfg
			c.StateDir = t.TempDir()
			s := open(t, c)
			mu.Lock()
			configs[s] = c
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, old scale.Scheduler) scale.Scheduler {
			mu.Lock()
			c := configs[old]
			mu.Unlock()
			return open(t, c)
		},
		Image:          scale.Image{Ref: "test"},
		NoCommandImage: scale.Image{Ref: "nocmd"},
		Programs:       testPrograms,
	})
	checkNoLeftovers(t, cfg)
}

// checkNoLeftovers fails when processes, mounts, runc containers or cgroups
// of the test's schedulers remain.
func checkNoLeftovers(t *testing.T, cfg local.Config) {
	t.Helper()
	// Only this test's state dirs (t.TempDir names start with the test's).
	mine := filepath.Join(os.TempDir(), strings.SplitN(t.Name(), "/", 2)[0])
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, "/instances/") && strings.Contains(l, "overlay") && strings.Contains(l, mine) {
			t.Errorf("mount left: %s", l)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "slipway-supervisor") && strings.Contains(string(b), mine) {
			t.Errorf("process left: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cfg.CgroupParent, "*", "*", "cgroup.procs"))
	for _, l := range left {
		if filepath.Base(filepath.Dir(l)) == "supervisors" {
			if b, _ := os.ReadFile(l); len(b) != 0 {
				t.Errorf("supervisors left in %s: %s", l, b)
			}
			continue
		}
		t.Errorf("cgroup left: %s", filepath.Dir(l))
	}
}

func waitUp(t *testing.T, s scale.Scheduler, app string, n int) []scale.Instance {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		is, err := s.Instances(context.Background(), scale.Query{App: app})
		if err != nil {
			t.Fatal(err)
		}
		ok := len(is) == n
		for _, i := range is {
			ok = ok && i.State == scale.StateUp && i.Healthy
		}
		if ok {
			return is
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, i := range is {
				fmt.Fprintf(&b, "%s %s restarts=%d", i.ID, i.State, i.Restarts)
				if i.LastExit != nil {
					fmt.Fprintf(&b, " last exit: %s", i.LastExit.Reason)
				}
				b.WriteByte('\n')
			}
			s.Logs(context.Background(), scale.LogQuery{App: app, Tail: 30}, func(l observe.LogLine) error {
				fmt.Fprintf(&b, "%s[%s] %s\n", l.Source, l.Instance, l.Text)
				return nil
			})
			t.Fatalf("not %d up:\n%s", n, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebServesAndEnv(t *testing.T) {
	cfg := config(t)
	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "shop")
	err := s.Apply(ctx, scale.Formation{App: "shop", Release: 1, Image: scale.Image{Ref: "test"}, Env: map[string]string{"SECRET": "s3cr3t"},
		Processes: []scale.Process{{Type: "web", Command: "/prog web", Count: 2, Port: true}}})
	if err != nil {
		t.Fatal(err)
	}
	is := waitUp(t, s, "shop", 2)
	// The supervisor left the control plane's cgroup for its own.
	var sup struct{ Pid int }
	b, _ := os.ReadFile(filepath.Join(cfg.StateDir, "instances", is[0].ID, "sup.json"))
	json.Unmarshal(b, &sup)
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sup.Pid))
	if !strings.Contains(string(cg), "name=systemd:/"+cfg.CgroupParent+"/") || !strings.Contains(string(cg), "/supervisors\n") {
		t.Errorf("supervisor %d is in:\n%s", sup.Pid, cg)
	}
	for _, in := range is {
		resp, err := http.Get("http://" + in.Addr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != fmt.Sprintf("web.%d", in.Index) {
			t.Errorf("instance %s answered %q", in.ID, got)
		}
	}
	var out strings.Builder
	res, err := s.Run(ctx, scale.OneOff{App: "shop", Release: 1, Image: scale.Image{Ref: "test"}, Env: map[string]string{"SECRET": "s3cr3t"},
		Command: "echo $FROM_IMAGE $SECRET $DYNO; cat /etc/hostname 2>/dev/null; ls /proc/1/exe >/dev/null && echo pid1ok", Stdout: &out})
	if err != nil || res.Exit.Code != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.HasPrefix(out.String(), "yes s3cr3t run.") {
		t.Errorf("shell one-off printed %q", out.String())
	}
	// The image's own command runs when the process has none.
	err = s.Apply(ctx, scale.Formation{App: "shop", Release: 1, Image: scale.Image{Ref: "test"}, Processes: []scale.Process{
		{Type: "web", Command: "/prog web", Count: 2, Port: true}, {Type: "worker", Count: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	waitUp(t, s, "shop", 3)
}

func TestLimitsApplied(t *testing.T) {
	cfg := config(t)
	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "hog")
	err := s.Apply(ctx, scale.Formation{App: "hog", Release: 1, Image: scale.Image{Ref: "test"}, Processes: []scale.Process{
		{Type: "worker", Command: "/prog alloc 20", Count: 1, Resources: scale.Resources{MemoryBytes: 64 << 20, CPUs: 0.5}}}})
	if err != nil {
		t.Fatal(err)
	}
	is := waitUp(t, s, "hog", 1)
	id := is[0].ID
	deadline := time.Now().Add(30 * time.Second)
	for !hasLog(s, "hog", "ready 20") {
		if time.Now().After(deadline) {
			t.Fatal("allocating 20 MiB under a 64 MiB limit never finished")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mems, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", cfg.CgroupParent, "*", id, "memory.limit_in_bytes"))
	var mem []byte
	if len(mems) == 1 {
		mem, _ = os.ReadFile(mems[0])
	}
	if strings.TrimSpace(string(mem)) != fmt.Sprint(64<<20) {
		t.Errorf("memory limit %q", mem)
	}
	quotas, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/cpu", cfg.CgroupParent, "*", id, "c", "cpu.cfs_quota_us"))
	var quota []byte
	if len(quotas) == 1 {
		quota, _ = os.ReadFile(quotas[0])
	}
	if strings.TrimSpace(string(quota)) != "50000" {
		t.Errorf("cpu quota %q", quota)
	}
	is, _ = s.Instances(ctx, scale.Query{App: "hog"})
	if is[0].Restarts != 0 {
		t.Errorf("restarted within its limit: %+v", is[0])
	}
}

func hasLog(s scale.Scheduler, app, text string) bool {
	found := false
	s.Logs(context.Background(), scale.LogQuery{App: app}, func(l observe.LogLine) error {
		found = found || l.Text == text
		return nil
	})
	return found
}

func TestRecoverReapsDeadInstances(t *testing.T) {
	cfg := config(t)
	s := open(t, cfg)
	ctx := context.Background()
	err := s.Apply(ctx, scale.Formation{App: "reap", Release: 1, Image: scale.Image{Ref: "test"},
		Processes: []scale.Process{{Type: "worker", Command: "/prog wait", Count: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	is := waitUp(t, s, "reap", 2)
	s.Close()
	// worker.2's container dies while no control plane runs.
	kill := exec.Command(cfg.Runc, "--root", filepath.Join(cfg.StateDir, "runc"), "kill", is[1].ID, "KILL")
	if out, err := kill.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	s = open(t, cfg)
	defer s.Close()
	rep, err := s.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reattached) != 1 || rep.Reattached[0] != is[0].ID || len(rep.Reaped) != 1 || rep.Reaped[0] != is[1].ID {
		t.Fatalf("report %+v; want %s re-attached and %s reaped", rep, is[0].ID, is[1].ID)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "instances", is[1].ID)); !os.IsNotExist(err) {
		t.Errorf("the reaped instance's directory is still there: %v", err)
	}
	// Applying again brings worker.2 back.
	if err := s.Apply(ctx, scale.Formation{App: "reap", Release: 1, Image: scale.Image{Ref: "test"},
		Processes: []scale.Process{{Type: "worker", Command: "/prog wait", Count: 2}}}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, s, "reap", 2)
	if err := s.StopApp(ctx, "reap"); err != nil {
		t.Fatal(err)
	}
	checkNoLeftovers(t, cfg)
}

func TestWebThatNeverBindsStaysStarting(t *testing.T) {
	cfg := config(t)
	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "deaf")
	err := s.Apply(ctx, scale.Formation{App: "deaf", Release: 1, Image: scale.Image{Ref: "test"},
		Processes: []scale.Process{{Type: "web", Command: "/prog wait", Count: 1, Port: true, Grace: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		is, _ := s.Instances(ctx, scale.Query{App: "deaf"})
		if len(is) != 1 || is[0].State != scale.StateStarting || is[0].Healthy || is[0].Restarts != 0 {
			t.Fatalf("a web process that never binds its port: %+v", is)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !hasLog(s, "deaf", "ready") {
		t.Fatal("the process did not run")
	}
}

func TestFullStateDir(t *testing.T) {
	cfg := config(t)
	cfg.StateDir = t.TempDir()
	if err := syscall.Mount("tmpfs", cfg.StateDir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	defer syscall.Unmount(cfg.StateDir, syscall.MNT_DETACH)
	s := open(t, cfg)
	defer s.Close()
	// Fill the file system.
	f, _ := os.Create(filepath.Join(cfg.StateDir, "filler"))
	f.Write(make([]byte, 1<<20))
	f.Close()
	err := s.Apply(context.Background(), scale.Formation{App: "full", Release: 1, Image: scale.Image{Ref: "test"},
		Processes: []scale.Process{{Type: "worker", Command: "/prog wait", Count: 1}}})
	var se *local.StateError
	if !errors.Is(err, local.ErrNoSpace) || !errors.As(err, &se) {
		t.Fatalf("Apply on a full state dir returned %v, want a *StateError wrapping ErrNoSpace", err)
	}
	if is, _ := s.Instances(context.Background(), scale.Query{App: "full"}); len(is) != 0 {
		t.Fatalf("instances after a failed apply: %+v", is)
	}
}

// Logs written while no control plane runs are read by the next one, and
// a LogSink never gets a line twice.
func TestLogsSurviveControlPlaneRestart(t *testing.T) {
	cfg := config(t)
	var mu sync.Mutex
	sunk := map[string]int{}
	cfg.Logs = observe.LogSinkFunc(func(l observe.LogLine) {
		if l.Source == observe.SourceApp {
			mu.Lock()
			sunk[l.Text]++
			mu.Unlock()
		}
	})
	s := open(t, cfg)
	ctx := context.Background()
	err := s.Apply(ctx, scale.Formation{App: "ticker", Release: 1, Image: scale.Image{Ref: "test"},
		Processes: []scale.Process{{Type: "clock", Command: "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done", Count: 1, Grace: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	waitUp(t, s, "ticker", 1)
	for !hasLog(s, "ticker", "tick 5") {
		time.Sleep(20 * time.Millisecond)
	}
	s.Close()
	time.Sleep(time.Second) // ~20 ticks with no control plane
	s = open(t, cfg)
	defer s.Close()
	defer s.StopApp(ctx, "ticker")
	if _, err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var last int
	for {
		var ticks []int
		s.Logs(ctx, scale.LogQuery{App: "ticker"}, func(l observe.LogLine) error {
			var n int
			if _, err := fmt.Sscanf(l.Text, "tick %d", &n); err == nil && l.Source == observe.SourceApp {
				ticks = append(ticks, n)
			}
			return nil
		})
		for i, n := range ticks {
			if n != i+1 {
				t.Fatalf("ticks not continuous across the restart: %v", ticks)
			}
		}
		last = len(ticks)
		if last >= 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d ticks after the restart", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for text, n := range sunk {
		if n != 1 {
			t.Errorf("the sink got %q %d times", text, n)
		}
	}
	if len(sunk) < last-5 {
		t.Errorf("the sink got %d lines, the buffer %d", len(sunk), last)
	}
}

func TestReadOnlyRootAndMissingImage(t *testing.T) {
	cfg := config(t)
	cfg.ReadOnlyRootfs = true
	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "ro")
	var out strings.Builder
	res, err := s.Run(ctx, scale.OneOff{App: "ro", Release: 1, Image: scale.Image{Ref: "test"}, Stdout: &out,
		Command: "touch /x 2>/dev/null && echo rootfs writable; touch /tmp/x && echo tmp writable"})
	if err != nil || res.Exit.Code != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if out.String() != "tmp writable\n" {
		t.Errorf("read-only root: got %q", out.String())
	}
	err = s.Apply(ctx, scale.Formation{App: "ro", Release: 1, Image: scale.Image{Ref: "nope"},
		Processes: []scale.Process{{Type: "worker", Command: "/prog wait", Count: 1}}})
	if !errors.Is(err, scale.ErrNotFound) {
		t.Errorf("Apply of a missing image: %v, want ErrNotFound", err)
	}
}

// childEnv names the variable that makes the test binary a control plane
// for TestHardKilledControlPlane: it holds the JSON of the Config to use.
const childEnv = "SLIPWAY_LOCAL_TEST_CHILD"

func TestMain(m *testing.M) {
	if c := os.Getenv(childEnv); c != "" {
		os.Exit(runChild(c))
	}
	os.Exit(m.Run())
}

// runChild applies a formation, says "ready" once it is up and waits to be
// killed.
func runChild(c string) int {
	var cfg local.Config
	if err := json.Unmarshal([]byte(c), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := local.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	err = s.Apply(ctx, scale.Formation{App: "hard", Release: 1, Image: scale.Image{Ref: "test"}, Processes: []scale.Process{
		{Type: "web", Command: "/prog web", Count: 1, Port: true, Grace: time.Second},
		{Type: "worker", Command: "/prog wait", Count: 1, Grace: time.Second}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		is, _ := s.Instances(ctx, scale.Query{App: "hard"})
		if len(is) == 2 && is[0].Healthy && is[1].Healthy {
			fmt.Println("ready")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {}
}

// A control plane killed with SIGKILL leaves its instances running; the
// next one recovers and manages them.
func TestHardKilledControlPlane(t *testing.T) {
	cfg := config(t)
	c, _ := json.Marshal(cfg)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+string(c))
	child.Stderr = os.Stderr
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		b := make([]byte, 6)
		io.ReadFull(stdout, b)
		ready <- string(b)
	}()
	select {
	case r := <-ready:
		if r != "ready\n" {
			child.Process.Kill()
			t.Fatalf("child said %q", r)
		}
	case <-time.After(60 * time.Second):
		child.Process.Kill()
		t.Fatal("the child control plane never got its instances up")
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	rep, err := s.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reattached) != 2 || len(rep.Reaped) != 0 {
		t.Fatalf("report %+v, want 2 re-attached", rep)
	}
	is := waitUp(t, s, "hard", 2)
	resp, err := http.Get("http://" + is[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !hasLog(s, "hard", "listening on "+strings.Split(is[0].Addr, ":")[1]) {
		t.Error("the web instance's output before the kill is not in the logs")
	}
	if err := s.StopApp(ctx, "hard"); err != nil {
		t.Fatal(err)
	}
	checkNoLeftovers(t, cfg)
}

func TestIsolatedNetworkConformance(t *testing.T) {
	cfg := config(t)
	cfg.Network = local.IsolatedNetwork
	cfg.Subnet = netip.MustParsePrefix("10.213.128.0/20")
	runConformance(t, cfg)
	if ns, _ := filepath.Glob("/run/netns/slipway-*"); len(ns) != 0 {
		t.Errorf("network namespaces left: %v", ns)
	}
}

// In its own network namespace an instance cannot reach another's
// loopback port; the host reaches it by its address.
func TestIsolatedNetworkIsolates(t *testing.T) {
	cfg := config(t)
	cfg.Network = local.IsolatedNetwork
	cfg.Subnet = netip.MustParsePrefix("10.213.144.0/20")
	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "iso")
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	err = s.Apply(ctx, scale.Formation{App: "iso", Release: 1, Image: scale.Image{Ref: "test"},
		Processes: []scale.Process{{Type: "web", Command: "/prog web", Count: 1, Port: true, Grace: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	is := waitUp(t, s, "iso", 1)
	resp, err := http.Get("http://" + is[0].Addr)
	if err != nil {
		t.Fatalf("the host cannot reach the instance at %s: %v", is[0].Addr, err)
	}
	resp.Body.Close()
	// Instances reach each other only when the host forwards IPv4.
	forward, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	other := "unreachable\n"
	if strings.TrimSpace(string(forward)) == "1" {
		other = "reachable\n"
	}
	for target, want := range map[string]string{
		hostLn.Addr().String(): "unreachable\n", // the host's loopback
		is[0].Addr:             other,           // another instance, by address
	} {
		var out strings.Builder
		res, err := s.Run(ctx, scale.OneOff{App: "iso", Release: 1, Image: scale.Image{Ref: "test"}, Command: "/prog dial " + target, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("dialling %s from a one-off: %q (exit %d), want %q", target, out.String(), res.Exit.Code, want)
		}
	}
}

// A formation instance killed for its memory shows it in LastExit and in an
// instance.oom event, and is restarted.
func TestOOMInstanceEvents(t *testing.T) {
	cfg := config(t)
	var mu sync.Mutex
	var kinds []observe.EventKind
	cfg.Events = observe.EventSinkFunc(func(e observe.Event) {
		mu.Lock()
		kinds = append(kinds, e.Kind)
		mu.Unlock()
	})
	s := open(t, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "oomy")
	err := s.Apply(ctx, scale.Formation{App: "oomy", Release: 1, Image: scale.Image{Ref: "test"}, Processes: []scale.Process{
		{Type: "worker", Command: "/prog alloc 256", Count: 1, Resources: scale.Resources{MemoryBytes: 64 << 20}, Grace: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		is, _ := s.Instances(ctx, scale.Query{App: "oomy"})
		if len(is) == 1 && is[0].LastExit != nil && is[0].Restarts >= 1 {
			if !is[0].LastExit.OOMKilled || is[0].LastExit.Signal != "SIGKILL" {
				t.Fatalf("last exit %+v, want an OOM kill", *is[0].LastExit)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no OOM kill and restart: %+v", is)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := []observe.EventKind{observe.EventInstanceStarted, observe.EventInstanceOOM, observe.EventInstanceCrashed, observe.EventInstanceStarted}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got := slices.Clone(kinds)
		mu.Unlock()
		if len(got) >= len(want) {
			if !slices.Equal(got[:len(want)], want) {
				t.Fatalf("events %v, want them to begin with %v", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v, want them to begin with %v", got, want)
		}
	}
}
