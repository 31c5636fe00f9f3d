package local

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second}
	var got []time.Duration
	for streak := 1; streak <= 7; streak++ {
		got = append(got, b.Delay(streak))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	if d := (Backoff{}).Delay(100); d != 5*time.Minute {
		t.Fatalf("default max %v", d)
	}
}

func TestCommand(t *testing.T) {
	withSh := t.TempDir()
	os.MkdirAll(filepath.Join(withSh, "bin"), 0o755)
	os.WriteFile(filepath.Join(withSh, "bin/busybox"), []byte{}, 0o755)
	os.Symlink("busybox", filepath.Join(withSh, "bin/sh"))
	without := t.TempDir()
	cases := []struct {
		root, cmd string
		ep, c     []string
		want      []string
	}{
		{withSh, "bundle exec puma -p $PORT", nil, nil, []string{"/bin/sh", "-c", "bundle exec puma -p $PORT"}},
		{without, "/app  serve\t--port 1", nil, nil, []string{"/app", "serve", "--port", "1"}},
		{withSh, "", []string{"/entry"}, []string{"arg"}, []string{"/entry", "arg"}},
		{withSh, "  ", nil, nil, nil},
	}
	for _, c := range cases {
		if got := command(c.root, c.ep, c.c, c.cmd); !slices.Equal(got, c.want) {
			t.Errorf("command(%q) = %q, want %q", c.cmd, got, c.want)
		}
	}
}

func TestMergeEnvAndUser(t *testing.T) {
	env := mergeEnv([]string{"A=image", "PATH=/x", "B=image"}, map[string]string{"B": "formation", "PORT": "5000"})
	want := []string{"A=image", "B=formation", "HOME=/", "PATH=/x", "PORT=5000"}
	if !slices.Equal(env, want) {
		t.Fatalf("env %q, want %q", env, want)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	for in, want := range map[string]string{"": "0:0", "app": "1000:1001", "app:staff": "1000:50", "7:8": "7:8", "ghost": "0:0"} {
		u := resolveUser(root, in)
		if got := fmt.Sprintf("%d:%d", u.UID, u.GID); got != want {
			t.Errorf("user %q = %s, want %s", in, got, want)
		}
	}
}

func TestRuntimeSpec(t *testing.T) {
	s := runtimeSpec(specInput{args: []string{"/app"}, cgroup: "/slipway/x/c", cpus: 1.5, readOnly: true, hostname: "x"})
	if s.Process.OOMScoreAdj != nil {
		t.Fatal("the spec asks for an oomScoreAdj")
	}
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Fatal("no new privileges or read-only root missing")
	}
	var ns []string
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, string(n.Type))
	}
	if strings.Join(ns, ",") != "pid,mount,ipc,uts" {
		t.Fatalf("namespaces %v", ns)
	}
	if q := *s.Linux.Resources.CPU.Quota; q != 150000 {
		t.Fatalf("cpu quota %d", q)
	}
	if len(s.Process.Rlimits) != 0 {
		t.Fatal("rlimits need CAP_SYS_RESOURCE to raise; the spec must not set them")
	}
}

func TestStateErrorNoSpace(t *testing.T) {
	err := fmt.Errorf("apply: %w", stateErr("writing", "/x", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}))
	var se *StateError
	if !errors.Is(err, ErrNoSpace) || !errors.As(err, &se) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%v does not report ErrNoSpace", err)
	}
	if errors.Is(stateErr("writing", "/x", syscall.EACCES), ErrNoSpace) {
		t.Fatal("EACCES reported as no space")
	}
}

func TestTailer(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stdout")
	var got []string
	emit := func(s string, replay bool) { got = append(got, fmt.Sprintf("%s/%v", s, replay)) }
	tl := newTailer(p, 20, emit)
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	defer f.Close()
	f.WriteString("one\ntw")
	tl.poll(false)
	f.WriteString("o\n")
	tl.poll(false)
	tl.close()
	// A new tailer (a restarted control plane) replays what was handed on.
	f.WriteString("three\n")
	got = append(got, "|")
	tl = newTailer(p, 20, emit)
	tl.poll(false)
	want := []string{"one/false", "two/false", "|", "one/true", "two/true", "three/false"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Past maxSize, a fully read file is truncated.
	f.WriteString("a long line past the limit\n")
	tl.poll(false)
	if fi, _ := os.Stat(p); fi.Size() != 0 {
		t.Fatalf("file not truncated: %d bytes", fi.Size())
	}
	f.WriteString("after\n")
	got = nil
	tl.poll(true)
	if !slices.Equal(got, []string{"after/false"}) {
		t.Fatalf("after truncation got %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
	if err := (Config{StateDir: "/s", Images: "/i"}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []PortRange{{0, 100}, {100, 65536}, {200, 100}, {-1, 5}} {
		if err := (Config{StateDir: "/s", Images: "/i", Ports: r}).Validate(); err == nil {
			t.Errorf("Ports %v accepted", r)
		}
	}
	if err := (Config{StateDir: "/s", Images: "/i", Ports: PortRange{7000, 7000}}).Validate(); err != nil {
		t.Errorf("a one-port range: %v", err)
	}
	if _, err := New(Config{StateDir: t.TempDir(), Images: t.TempDir(), Runc: "/nonexistent/runc"}); err == nil {
		t.Fatal("New accepted a missing runc")
	}
}

func TestAllocPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	s := &Scheduler{cfg: Config{Ports: PortRange{busy, busy}}, ports: map[int]bool{}}
	if p, err := s.allocPort(); err == nil {
		t.Fatalf("allocPort handed out port %d, which another program listens on", p)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s = &Scheduler{cfg: Config{Ports: PortRange{free, free}}, ports: map[int]bool{}}
	if p, err := s.allocPort(); err != nil || p != free {
		t.Fatalf("allocPort = %d, %v; want the free port %d", p, err, free)
	}
	if p, err := s.allocPort(); err == nil {
		t.Fatalf("allocPort handed out port %d twice", p)
	}
}
