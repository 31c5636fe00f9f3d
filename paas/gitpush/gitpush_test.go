package gitpush_test

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipwayhq/slipway/paas/gitpush"

	"github.com/slipwayhq/slipway/internal/testenv"
)

const token = "s3cret-token"

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	root   string
	deploy func(ctx context.Context, p *gitpush.Push) error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "git is not installed (scripts/services.sh installs it)")
	}
	f := &fixture{t: t, root: t.TempDir()}
	s := &gitpush.Server{
		Root: f.root,
		Authorize: func(r *http.Request) error {
			if _, pw, _ := r.BasicAuth(); pw != token {
				return gitpush.ErrUnauthorized
			}
			return nil
		},
		AppExists: func(_ context.Context, app string) error {
			if app == "ghost" {
				return fmt.Errorf("no such app: %w", gitpush.ErrUnknownApp)
			}
			return nil
		},
		Deploy: func(ctx context.Context, p *gitpush.Push) error { return f.deploy(ctx, p) },
	}
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) url(app, tok string) string {
	return strings.Replace(f.srv.URL, "http://", "http://git:"+tok+"@", 1) + "/git/" + app + ".git"
}

// git runs git in dir and returns its combined output.
func git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := git(t, dir, args...)
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return out
}

// workTree makes a repository with one commit holding files.
func workTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	mustGit(t, dir, "init", "--quiet", "--initial-branch=main")
	commit(t, dir, files)
	return dir
}

func commit(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustGit(t, dir, "add", "-A")
	mustGit(t, dir, "commit", "--quiet", "-m", "change")
}

func readTar(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = string(b)
		}
	}
}

func TestPushDeploysAndStreamsOutput(t *testing.T) {
	f := newFixture(t)
	var got map[string]string
	var pushes atomic.Int32
	f.deploy = func(ctx context.Context, p *gitpush.Push) error {
		pushes.Add(1)
		a, err := p.Archive(ctx)
		if err != nil {
			return err
		}
		got = readTar(t, a)
		if err := a.Close(); err != nil {
			return err
		}
		fmt.Fprintf(p.Output, "-----> Building %s at %s\n", p.App, p.New[:7])
		fmt.Fprintln(p.Output, "-----> Released v1")
		return nil
	}
	wt := workTree(t, map[string]string{"Procfile": "web: ./server\n", "main.go": "package main\n"})
	out := mustGit(t, wt, "push", f.url("counter", token), "main")
	if !strings.Contains(out, "remote: -----> Building counter at") || !strings.Contains(out, "remote: -----> Released v1") {
		t.Errorf("push output lacks the deploy's lines:\n%s", out)
	}
	if got["Procfile"] != "web: ./server\n" || got["main.go"] != "package main\n" {
		t.Errorf("archive = %v", got)
	}

	// Pushing the same commit again deploys nothing.
	out = mustGit(t, wt, "push", f.url("counter", token), "main")
	if !strings.Contains(out, "Everything up-to-date") || pushes.Load() != 1 {
		t.Errorf("second push of the same commit: deploys = %d, output:\n%s", pushes.Load(), out)
	}

	// A new commit deploys again, and the repository can be cloned back.
	commit(t, wt, map[string]string{"main.go": "package main // v2\n"})
	mustGit(t, wt, "push", f.url("counter", token), "main")
	if pushes.Load() != 2 || got["main.go"] != "package main // v2\n" {
		t.Errorf("after the second commit: deploys = %d, main.go = %q", pushes.Load(), got["main.go"])
	}
	clone := t.TempDir()
	mustGit(t, clone, "clone", "--quiet", f.url("counter", token), "c")
	if b, err := os.ReadFile(filepath.Join(clone, "c", "main.go")); err != nil || string(b) != "package main // v2\n" {
		t.Errorf("clone: %q, %v", b, err)
	}
}

func TestFailedDeployRejectsPush(t *testing.T) {
	f := newFixture(t)
	fail := true
	f.deploy = func(ctx context.Context, p *gitpush.Push) error {
		fmt.Fprintln(p.Output, "-----> Running release phase")
		if fail {
			return errors.New("release phase exited with code 3")
		}
		return nil
	}
	wt := workTree(t, map[string]string{"a": "1"})
	fail = false
	mustGit(t, wt, "push", f.url("app", token), "main")
	deployed := strings.TrimSpace(mustGit(t, wt, "rev-parse", "HEAD"))

	fail = true
	commit(t, wt, map[string]string{"a": "2"})
	out, err := git(t, wt, "push", f.url("app", token), "main")
	if err == nil {
		t.Fatalf("push succeeded though the deploy failed:\n%s", out)
	}
	if !strings.Contains(out, "Push rejected: release phase exited with code 3") || !strings.Contains(out, "pre-receive hook declined") {
		t.Errorf("push output does not say why:\n%s", out)
	}
	bare := filepath.Join(f.root, "app.git")
	if head := strings.TrimSpace(mustGit(t, bare, "rev-parse", "main")); head != deployed {
		t.Errorf("main moved to %s after a failed deploy, want %s", head, deployed)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	f.deploy = func(context.Context, *gitpush.Push) error { return nil }
	wt := workTree(t, map[string]string{"a": "1"})

	if out, err := git(t, wt, "push", f.url("app", "wrong"), "main"); err == nil || !strings.Contains(out, "Authentication failed") {
		t.Errorf("wrong token: err = %v, output:\n%s", err, out)
	}
	if out, err := git(t, wt, "push", f.url("ghost", token), "main"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("unknown app: err = %v, output:\n%s", err, out)
	}
	mustGit(t, wt, "branch", "feature")
	if out, err := git(t, wt, "push", f.url("app", token), "feature"); err == nil || !strings.Contains(out, "only pushes to main or master deploy") {
		t.Errorf("other branch: err = %v, output:\n%s", err, out)
	}
	mustGit(t, wt, "push", f.url("app", token), "main")
	if out, err := git(t, wt, "push", f.url("app", token), ":main"); err == nil || !strings.Contains(out, "Refusing to delete") {
		t.Errorf("delete: err = %v, output:\n%s", err, out)
	}
	resp, err := http.Get(f.srv.URL + "/git/app.git/info/refs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dumb protocol without credentials: status %d", resp.StatusCode)
	}
	for _, path := range []string{"/git/../etc.git/info/refs", "/git/App.git/info/refs", "/git/a.git/objects/info/packs"} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestConcurrentPushesToOneApp(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	f.deploy = func(ctx context.Context, p *gitpush.Push) error {
		if !mu.TryLock() {
			return errors.New("another deploy of this app is in progress")
		}
		defer mu.Unlock()
		entered <- struct{}{}
		<-release
		return nil
	}
	a := workTree(t, map[string]string{"a": "1"})
	b := workTree(t, map[string]string{"b": "1"})
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); outs[0], errs[0] = git(t, a, "push", f.url("app", token), "main") }()
	<-entered
	outs[1], errs[1] = git(t, b, "push", "--force", f.url("app", token), "main")
	close(release)
	wg.Wait()
	if errs[0] != nil {
		t.Errorf("first push failed: %v\n%s", errs[0], outs[0])
	}
	if errs[1] == nil || !strings.Contains(outs[1], "another deploy of this app is in progress") {
		t.Errorf("second push: err = %v, output:\n%s", errs[1], outs[1])
	}
}

func TestPushSizeLimit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "git is not installed (scripts/services.sh installs it)")
	}
	s := &gitpush.Server{Root: t.TempDir(), MaxPushBytes: 64 << 10,
		Deploy: func(context.Context, *gitpush.Push) error { return nil }}
	srv := httptest.NewServer(s)
	defer srv.Close()
	big := make([]byte, 1<<20)
	rand.Read(big) // incompressible
	wt := workTree(t, map[string]string{"big": string(big)})
	if out, err := git(t, wt, "push", srv.URL+"/git/app.git", "main"); err == nil {
		t.Fatalf("a push over the limit succeeded:\n%s", out)
	}
	if _, err := git(t, filepath.Join(s.Root, "app.git"), "rev-parse", "--verify", "main"); err == nil {
		t.Error("the oversized push created the branch")
	}
}
