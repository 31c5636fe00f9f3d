//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipwayhq/slipway/internal/testenv"
)

// The end-to-end run of issue 7: minipaas as a separate process, driven by
// its CLI and by real git pushes, against real BuildKit, runc, PostgreSQL
// and the router; wrk measures failed requests across a config change.
func TestMinipaasEndToEnd(t *testing.T) {
	testenv.Root(t)
	e := &e2e{t: t,
		bk:     testenv.Get(t, testenv.BuildKitVar),
		stacks: testenv.Get(t, testenv.StacksVar),
		pg:     testenv.Get(t, testenv.PostgresVar),
		runc:   testenv.Get(t, testenv.RuncVar),
		wrk:    testenv.Get(t, testenv.WrkVar),
		home:   t.TempDir(),
	}
	e.bin = filepath.Join(t.TempDir(), "minipaas")
	if out, err := exec.Command("go", "build", "-o", e.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e.api, e.router = freeAddr(t), freeAddr(t)
	e.start()
	t.Cleanup(e.down)

	e.mustCLI("apps:create", "counter")
	e.mustCLI("addons:create", "postgres", "-a", "counter")
	src := e.source("counter")

	// Bad input first: nothing of it may touch the app.
	if out, err := e.push(src, "ghost"); err == nil || !strings.Contains(out, `app "ghost" does not exist`) {
		t.Errorf("push to an unknown app: %v\n%s", err, out)
	}
	if out, err := e.pushURL(src, strings.Replace(e.remote("counter"), e.token(), "wrong-token", 1)); err == nil || !strings.Contains(out, "Authentication failed") {
		t.Errorf("push with a wrong token: %v\n%s", err, out)
	}
	e.mustCLI("apps:create", "nothing")
	empty := e.gitRepo(map[string]string{"README": "no code here\n"})
	if out, err := e.push(empty, "nothing"); err == nil || !strings.Contains(out, "Push rejected") || !strings.Contains(out, "no build strategy") {
		t.Errorf("push of a repo with nothing to build: %v\n%s", err, out)
	}

	// The first deploy: build, release phase (migrate), web.
	out, err := e.push(src, "counter")
	if err != nil {
		t.Fatalf("first push: %v\n%s", err, out)
	}
	for _, want := range []string{"remote: -----> Building counter", "remote: -----> Running release phase: migrate", "remote: migrate: schema is up to date", "remote: -----> Released v2"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	e.expectPage("counter v1", 1)
	e.expectPage("counter v1", 2)
	e.expectReleaseRuns(1)

	// A one-line change: new code serves, the count persists.
	e.commit(src, "cmd/counter/main.go", `const version = "1"`, `const version = "2"`)
	if out, err := e.push(src, "counter"); err != nil {
		t.Fatalf("second push: %v\n%s", err, out)
	}
	e.expectPage("counter v2", 3)
	e.expectReleaseRuns(2)

	// config:set under load: a new release, no failed request.
	load := e.startLoad(12 * time.Second)
	time.Sleep(2 * time.Second)
	e.mustCLI("config:set", "GREETING=hello", "-a", "counter")
	if res := load.wait(); res.requests == 0 || res.failed() > 0 {
		t.Errorf("config:set under load: %+v", res)
	} else {
		t.Logf("config:set under load: %d requests, 0 failed", res.requests)
	}
	if v := strings.TrimSpace(e.mustCLI("config:get", "GREETING", "-a", "counter")); v != "hello" {
		t.Errorf("config:get GREETING = %q", v)
	}
	e.expectReleaseRuns(3)

	// Scale web to three instances behind the router.
	e.mustCLI("ps:scale", "web=3", "-a", "counter")
	e.waitFor("three web instances up", func() bool { return len(e.webUp()) == 3 })
	e.waitFor("requests spread over the three", func() bool {
		for i := 0; i < 30; i++ {
			e.get("/")
		}
		return len(distinct(dynoRE, e.mustCLI("logs", "-n", "90", "-a", "counter"))) == 3
	})

	// Kill one instance: the scheduler restarts it.
	victim := e.webUp()[0]
	if out, err := exec.Command(e.runc, "--root", filepath.Join(e.home, "scheduler", "runc"), "kill", victim.id, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("runc kill: %v\n%s", err, out)
	}
	e.waitFor("the killed instance restarted", func() bool {
		for _, in := range e.webUp() {
			if in.id == victim.id && in.restarts > victim.restarts {
				return true
			}
		}
		return false
	})

	// Roll back to v2 (the first code): the old code serves.
	e.mustCLI("rollback", "v2", "-a", "counter")
	e.expectPage("counter v1", -1)

	// Logs hold the router's lines with request ids and the app's lines.
	logs := e.mustCLI("logs", "-n", "500", "-a", "counter")
	if !regexp.MustCompile(`router: at=info .*request_id=\S+ dyno=counter-v\d+-web-\d`).MatchString(logs) {
		t.Errorf("logs lack router lines with request ids:\n%s", tail(logs, 20))
	}
	if !strings.Contains(logs, "app[counter-v") || !strings.Contains(logs, "counter v1 listening") {
		t.Errorf("logs lack the app's lines:\n%s", tail(logs, 20))
	}

	// A failing release phase is rejected; the current release keeps serving.
	e.commit(src, "Procfile", "release: migrate", "release: exit 3")
	if out, err := e.push(src, "counter"); err == nil || !strings.Contains(out, "Push rejected") || !strings.Contains(out, "release phase") {
		t.Errorf("push with a failing release phase: %v\n%s", err, out)
	}
	e.expectPage("counter v1", -1)
	e.commit(src, "Procfile", "release: exit 3", "release: migrate")

	// SIGKILL minipaas in the middle of a deploy, restart it: the app
	// serves one consistent release.
	e.commit(src, "cmd/counter/main.go", `const version = "2"`, `const version = "3"`)
	pushDone := make(chan string, 1)
	go func() { out, _ := e.push(src, "counter"); pushDone <- out }()
	e.waitFor("the new release to be deploying", func() bool {
		return strings.Contains(e.mustCLI("releases", "-a", "counter"), " releasing ")
	})
	e.server.Process.Signal(syscall.SIGKILL)
	e.server.Wait()
	<-pushDone
	e.start()
	var version string
	e.waitFor("one consistent release serving", func() bool {
		code, body := e.get("/version")
		if code != 200 {
			return false
		}
		version = strings.TrimSpace(body)
		cur := e.currentRelease()
		for _, in := range e.ps() {
			if in.typ == "web" && in.release != cur {
				return false // two formations still up
			}
		}
		return cur > 0
	})
	t.Logf("after SIGKILL and restart: version %s serves", version)
	e.expectPage("counter v"+version, -1)
}

type e2e struct {
	t                               *testing.T
	bk, stacks, pg, runc, wrk, home string
	bin, api, router                string
	server                          *exec.Cmd
}

func (e *e2e) start() {
	e.t.Helper()
	logf, err := os.OpenFile(filepath.Join(e.home, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	e.server = exec.Command(e.bin, "server", "--state", e.home, "--api", e.api, "--router", e.router,
		"--buildkit-addr", e.bk, "--stacks", e.stacks, "--postgres", e.pg, "--runc", e.runc, "--watch", "3s")
	e.server.Stdout, e.server.Stderr = logf, logf
	if err := e.server.Start(); err != nil {
		e.t.Fatal(err)
	}
	logf.Close()
	e.waitFor("minipaas to start", func() bool {
		_, err := e.cli("apps")
		return err == nil
	})
}

func (e *e2e) down() {
	if e.server == nil || e.server.ProcessState != nil {
		return
	}
	e.cli("down")
	done := make(chan struct{})
	go func() { e.server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		e.server.Process.Kill()
		<-done
	}
	left, _ := os.ReadDir(filepath.Join(e.home, "scheduler", "runc"))
	if len(left) > 0 {
		e.t.Errorf("containers left after down: %v", left)
	}
}

func (e *e2e) cli(args ...string) (string, error) {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(), "MINIPAAS_HOME="+e.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *e2e) mustCLI(args ...string) string {
	e.t.Helper()
	out, err := e.cli(args...)
	if err != nil {
		e.t.Fatalf("minipaas %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *e2e) token() string {
	b, _ := os.ReadFile(filepath.Join(e.home, "token"))
	return strings.TrimSpace(string(b))
}

func (e *e2e) remote(app string) string {
	return strings.TrimSpace(e.mustCLI("git:remote", "-a", app))
}

// gitRepo makes a repository with files in one commit.
func (e *e2e) gitRepo(files map[string]string) string {
	dir := e.t.TempDir()
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	e.git(dir, "init", "-q", "-b", "main")
	e.git(dir, "add", "-A")
	e.git(dir, "commit", "-q", "-m", "init")
	return dir
}

// source copies examples/apps/NAME into a new repository.
func (e *e2e) source(name string) string {
	files := map[string]string{}
	root := filepath.Join("..", "apps", name)
	filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			b, _ := os.ReadFile(path)
			rel, _ := filepath.Rel(root, path)
			files[rel] = string(b)
		}
		return err
	})
	return e.gitRepo(files)
}

func (e *e2e) git(dir string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@localhost",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@localhost")
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (e *e2e) commit(dir, file, old, new string) {
	e.t.Helper()
	path := filepath.Join(dir, file)
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), old) {
		e.t.Fatalf("%s does not hold %q", file, old)
	}
	os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
	e.git(dir, "commit", "-q", "-am", "change "+file)
}

func (e *e2e) push(dir, app string) (string, error) {
	return e.pushURL(dir, strings.Replace(e.remote("counter"), "/counter.git", "/"+app+".git", 1))
}

func (e *e2e) pushURL(dir, url string) (string, error) {
	cmd := exec.Command("git", "push", url, "main")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// get asks the router for the counter app.
func (e *e2e) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+e.router+path, nil)
	req.Host = "counter.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// expectPage checks the page shows version and, unless n < 0, count n.
func (e *e2e) expectPage(version string, n int) {
	e.t.Helper()
	code, body := e.get("/")
	if code != 200 || !strings.Contains(body, version) || (n >= 0 && !strings.Contains(body, fmt.Sprintf("viewed %d times", n))) {
		e.t.Errorf("GET / = %d %q, want %s (count %d)", code, body, version, n)
	}
}

func (e *e2e) releaseRuns() int {
	url := strings.TrimSpace(e.mustCLI("config:get", "DATABASE_URL", "-a", "counter"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		e.t.Fatalf("connect to the app's database: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM release_runs").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *e2e) expectReleaseRuns(n int) {
	e.t.Helper()
	if got := e.releaseRuns(); got != n {
		e.t.Errorf("the release phase ran %d times, want %d", got, n)
	}
}

type psLine struct {
	typ, state, id    string
	release, restarts int
}

var psRE = regexp.MustCompile(`^(\S+)\.(\d+)\s+v(\d+)\s+(\S+)\s+\S*\s*restarts=(\d+)\s+(\S+)`)

func (e *e2e) ps() []psLine {
	var out []psLine
	for _, l := range strings.Split(e.mustCLI("ps", "-a", "counter"), "\n") {
		m := psRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		rel, _ := strconv.Atoi(m[3])
		rs, _ := strconv.Atoi(m[5])
		out = append(out, psLine{typ: m[1], release: rel, state: m[4], restarts: rs, id: m[6]})
	}
	return out
}

func (e *e2e) webUp() []psLine {
	cur := e.currentRelease()
	var up []psLine
	for _, in := range e.ps() {
		if in.typ == "web" && in.state == "up" && in.release == cur {
			up = append(up, in)
		}
	}
	return up
}

func (e *e2e) currentRelease() int {
	for _, l := range strings.Split(e.mustCLI("releases", "-a", "counter"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] == "deployed" {
			n, _ := strconv.Atoi(strings.TrimPrefix(f[0], "v"))
			return n
		}
	}
	return 0
}

func (e *e2e) waitFor(what string, ok func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(e.home, "server.log"))
			e.t.Fatalf("timed out waiting for %s; server log:\n%s", what, tail(string(b), 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type loadResult struct {
	requests, non2xx, socketErrors int
	raw                            string
}

func (r loadResult) failed() int { return r.non2xx + r.socketErrors }

type load struct {
	cmd *exec.Cmd
	out *strings.Builder
}

// startLoad runs wrk against the counter through the router, bounded.
func (e *e2e) startLoad(d time.Duration) *load {
	var out strings.Builder
	cmd := exec.Command(e.wrk, "-t", "2", "-c", "8", "-d", d.String(), "-H", "Host: counter.localhost", "http://"+e.router+"/version")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return &load{cmd: cmd, out: &out}
}

func (l *load) wait() loadResult {
	l.cmd.Wait()
	return parseWrk(l.out.String())
}

func parseWrk(s string) loadResult {
	r := loadResult{raw: s}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 2 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.Atoi(f[0])
		case strings.HasPrefix(sc.Text(), "  Non-2xx or 3xx responses:"):
			r.non2xx, _ = strconv.Atoi(f[len(f)-1])
		case strings.HasPrefix(sc.Text(), "  Socket errors:"):
			for _, m := range regexp.MustCompile(`\d+`).FindAllString(sc.Text(), -1) {
				n, _ := strconv.Atoi(m)
				r.socketErrors += n
			}
		}
	}
	return r
}

var dynoRE = regexp.MustCompile(`dyno=(\S+)`)

func distinct(re *regexp.Regexp, s string) map[string]bool {
	m := map[string]bool{}
	for _, x := range re.FindAllString(s, -1) {
		m[x] = true
	}
	return m
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
