package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildkitd runs and supervises a buildkitd for the builder when no address
// was given: started before the first build, restarted with a backoff when
// it dies, stopped with the server. It is killed with the server too, even
// by SIGKILL (parent-death signal), so it never outlives minipaas.
type buildkitd struct {
	bin  string
	root string
	log  *slog.Logger
}

func (b *buildkitd) addr() string { return "unix://" + filepath.Join(b.root, "buildkitd.sock") }

// run starts buildkitd and returns once it accepts connections; a
// goroutine keeps it running until ctx ends, then stops it and closes done.
func (b *buildkitd) run(ctx context.Context) (done <-chan struct{}, err error) {
	if err := os.MkdirAll(b.root, 0o700); err != nil {
		return nil, err
	}
	b.reapStale()
	ready := make(chan error, 1)
	d := make(chan struct{})
	go func() {
		defer close(d)
		backoff := time.Second
		first := true
		for {
			started := time.Now()
			err := b.once(ctx, func() {
				if first {
					ready <- nil
					first = false
				}
			})
			if ctx.Err() != nil {
				return
			}
			if first {
				ready <- fmt.Errorf("buildkitd did not start: %w (see %s)", err, filepath.Join(b.root, "buildkitd.log"))
				return
			}
			if time.Since(started) > time.Minute {
				backoff = time.Second
			}
			b.log.Warn("buildkitd exited; restarting", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
	select {
	case err := <-ready:
		return d, err
	case <-ctx.Done():
		return d, ctx.Err()
	}
}

// once runs buildkitd until it exits or ctx ends, calling up once it
// listens.
func (b *buildkitd) once(ctx context.Context, up func()) error {
	// The parent-death signal is tied to the thread that started the
	// child: keep this goroutine on it for the child's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	logf, err := os.OpenFile(filepath.Join(b.root, "buildkitd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	sock := filepath.Join(b.root, "buildkitd.sock")
	os.Remove(sock)
	cmd := exec.Command(b.bin, "--root", filepath.Join(b.root, "root"), "--addr", "unix://"+sock,
		"--oci-worker=true", "--oci-worker-snapshotter=overlayfs", "--oci-worker-net=host", "--containerd-worker=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(b.root, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	listening := false
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("buildkitd: %v", err)
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			os.Remove(filepath.Join(b.root, "pid"))
			return ctx.Err()
		case <-tick.C:
			if listening {
				continue
			}
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				listening = true
				up()
			}
		}
	}
}

// reapStale stops a buildkitd left by a minipaas that could not stop it.
func (b *buildkitd) reapStale() {
	raw, err := os.ReadFile(filepath.Join(b.root, "pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), b.root) {
		return
	}
	b.log.Info("stopping a buildkitd left from an earlier run", "pid", pid)
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
