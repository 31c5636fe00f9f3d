package gitpush

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors Authorize and AppExists return to choose the HTTP status.
var (
	// ErrUnauthorized makes the Server answer 401 with a Basic challenge, so
	// git asks its credential helper.
	ErrUnauthorized = errors.New("gitpush: unauthorized")
	// ErrUnknownApp makes the Server answer 404.
	ErrUnknownApp = errors.New("gitpush: unknown app")
)

// Push is one update of the deploy branch, handed to Deploy.
type Push struct {
	App string
	Ref string // the full ref name, e.g. "refs/heads/main"
	Old string // the commit the branch pointed at; zeros on the first push
	New string // the pushed commit

	// Output reaches the pusher line by line, prefixed "remote: " by git.
	Output io.Writer

	git string
	dir string
	env []string
}

// Archive returns the pushed tree as an uncompressed tar stream, as
// `git archive` makes it. The caller must close it; Close reports git's
// failure, if any.
func (p *Push) Archive(ctx context.Context) (io.ReadCloser, error) {
	cmd := exec.CommandContext(ctx, p.git, "archive", "--format=tar", p.New)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("gitpush: git archive: %w", err)
	}
	return &archive{ReadCloser: out, cmd: cmd, stderr: &stderr}, nil
}

type archive struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (a *archive) Close() error {
	a.ReadCloser.Close()
	if err := a.cmd.Wait(); err != nil {
		return fmt.Errorf("gitpush: git archive: %w: %s", err, strings.TrimSpace(a.stderr.String()))
	}
	return nil
}

// Server serves Git's smart HTTP protocol for app repositories and deploys
// what is pushed to the deploy branch. Its zero value is not usable: Root
// and Deploy are required.
//
// URLs are PREFIX/APP.git/info/refs, PREFIX/APP.git/git-receive-pack and
// PREFIX/APP.git/git-upload-pack, where PREFIX is Prefix. Fetching and
// cloning are served too, so users can get their deployed code back.
type Server struct {
	// Root holds one bare repository per app, Root/APP.git. Required.
	Root string
	// Prefix is the URL path before the app's repository; "" means "/git".
	Prefix string
	// Git is the git binary; "" means "git" from PATH.
	Git string
	// Branches are the branches whose pushes deploy; nil means main and
	// master. Pushes to other branches are refused.
	Branches []string
	// MaxPushBytes bounds a push's request body; 0 means 1 GiB.
	MaxPushBytes int64
	// Authorize checks every request; return ErrUnauthorized to ask for
	// credentials. Nil allows everything (only for tests).
	Authorize func(r *http.Request) error
	// AppExists says whether a repository for app may be served; return
	// ErrUnknownApp (wrapped or not) for a 404. Nil allows every valid name.
	AppExists func(ctx context.Context, app string) error
	// Deploy builds and releases a push. The push is accepted when it
	// returns nil and refused, with the error's text shown to the pusher,
	// when it fails. Required.
	Deploy func(ctx context.Context, p *Push) error
	// Logger receives one line per push; nil is silent.
	Logger *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per-app repository creation
}

var appPath = regexp.MustCompile(`^/([a-z][a-z0-9-]{0,62})\.git/(info/refs|git-receive-pack|git-upload-pack)$`)

const hookScript = `#!/bin/sh
# Installed by Slipway's gitpush: hands the ref updates to the server that
# runs this push and relays its output. Rewritten on every push.
d="$SLIPWAY_GITPUSH_DIR"
if [ -z "$d" ] || [ ! -p "$d/in" ]; then
	echo "this repository only accepts pushes through its server" >&2
	exit 1
fi
# Open the output first: the server may finish, and close its end, before
# this script would otherwise get to it.
exec 3<"$d/out"
{
	printf 'env GIT_OBJECT_DIRECTORY=%s\n' "$GIT_OBJECT_DIRECTORY"
	printf 'env GIT_ALTERNATE_OBJECT_DIRECTORIES=%s\n' "$GIT_ALTERNATE_OBJECT_DIRECTORIES"
	printf 'env GIT_QUARANTINE_PATH=%s\n' "$GIT_QUARANTINE_PATH"
	while read -r old new ref; do printf 'ref %s %s %s\n' "$old" "$new" "$ref"; done
	echo .
} >"$d/in"
cat <&3
exit "$(cat "$d/status" 2>/dev/null || echo 1)"
`

func (s *Server) prefix() string {
	if s.Prefix == "" {
		return "/git"
	}
	return strings.TrimSuffix(s.Prefix, "/")
}

func (s *Server) git() string {
	if s.Git == "" {
		return "git"
	}
	return s.Git
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, s.prefix())
	m := appPath.FindStringSubmatch(rest)
	if !ok || m == nil {
		http.Error(w, "not a git repository path", http.StatusNotFound)
		return
	}
	app, verb := m[1], m[2]
	if s.Authorize != nil {
		if err := s.Authorize(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="slipway"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	if s.AppExists != nil {
		if err := s.AppExists(r.Context(), app); err != nil {
			if errors.Is(err, ErrUnknownApp) {
				http.Error(w, fmt.Sprintf("app %q does not exist", app), http.StatusNotFound)
				return
			}
			s.log().Error("gitpush: app lookup", "app", app, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
	}
	dir, err := s.repo(app)
	if err != nil {
		s.log().Error("gitpush: repository", "app", app, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	switch verb {
	case "info/refs":
		service := r.URL.Query().Get("service")
		if r.Method != http.MethodGet || (service != "git-receive-pack" && service != "git-upload-pack") {
			http.Error(w, "only the smart HTTP protocol is served", http.StatusForbidden)
			return
		}
		s.advertise(w, r, dir, service)
	default:
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if verb == "git-upload-pack" {
			s.rpc(w, r, dir, "upload-pack", nil)
			return
		}
		s.receive(w, r, app, dir)
	}
}

// repo returns the app's bare repository, creating it and (re)writing its
// hook.
func (s *Server) repo(app string) (string, error) {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*sync.Mutex{}
	}
	l := s.locks[app]
	if l == nil {
		l = new(sync.Mutex)
		s.locks[app] = l
	}
	s.mu.Unlock()
	l.Lock()
	defer l.Unlock()

	dir := filepath.Join(s.Root, app+".git")
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, os.ErrNotExist) {
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if out, err := exec.Command(s.git(), "init", "--quiet", "--bare", "--initial-branch=main", tmp).CombinedOutput(); err != nil {
			return "", fmt.Errorf("git init: %w: %s", err, out)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	hook := filepath.Join(dir, "hooks", "pre-receive")
	if b, err := os.ReadFile(hook); err != nil || string(b) != hookScript {
		if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(hook+".tmp", []byte(hookScript), 0o755); err != nil {
			return "", err
		}
		if err := os.Rename(hook+".tmp", hook); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func (s *Server) advertise(w http.ResponseWriter, r *http.Request, dir, service string) {
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	w.Header().Set("Cache-Control", "no-cache")
	cmd := exec.CommandContext(r.Context(), s.git(), strings.TrimPrefix(service, "git-"), "--stateless-rpc", "--advertise-refs", dir)
	cmd.Env = append(os.Environ(), protocolEnv(r)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		s.log().Error("gitpush: advertise refs", "dir", dir, "err", err)
		return
	}
	if r.Header.Get("Git-Protocol") == "" {
		// Protocol v0 starts with a service announcement; v2 does not.
		line := "# service=" + service + "\n"
		fmt.Fprintf(w, "%04x%s0000", len(line)+4, line)
	}
	w.Write(out.Bytes())
}

func protocolEnv(r *http.Request) []string {
	if p := r.Header.Get("Git-Protocol"); p != "" && !strings.ContainsAny(p, "\x00\n") {
		return []string{"GIT_PROTOCOL=" + p}
	}
	return nil
}

func (s *Server) maxPush() int64 {
	if s.MaxPushBytes <= 0 {
		return 1 << 30
	}
	return s.MaxPushBytes
}

// rpc runs git's stateless RPC for one request: the body in, the response
// out, flushed as it comes so hook output reaches the pusher live.
func (s *Server) rpc(w http.ResponseWriter, r *http.Request, dir, verb string, env []string) error {
	body := io.Reader(http.MaxBytesReader(w, r.Body, s.maxPush()))
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return err
		}
		body = zr
	}
	w.Header().Set("Content-Type", "application/x-git-"+verb+"-result")
	w.Header().Set("Cache-Control", "no-cache")
	cmd := exec.CommandContext(r.Context(), s.git(), verb, "--stateless-rpc", dir)
	cmd.Env = append(append(os.Environ(), protocolEnv(r)...), env...)
	cmd.Stdin = body
	cmd.Stdout = flushWriter{w}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		s.log().Error("gitpush: git "+verb, "dir", dir, "err", err, "stderr", strings.TrimSpace(stderr.String()))
	}
	return err
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}

// receive runs one push: receive-pack with the hook's pipes, and the deploy
// the hook asks for.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, app, dir string) {
	pd, err := os.MkdirTemp("", "slipway-push-")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer os.RemoveAll(pd)
	in, out, err := pipes(pd)
	if err != nil {
		s.log().Error("gitpush: pipes", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer out.Close() // the hook's `cat` ends here
		status := s.hook(ctx, app, dir, in, out)
		os.WriteFile(filepath.Join(pd, "status"), []byte(fmt.Sprint(status)), 0o600)
	}()
	s.rpc(w, r, dir, "receive-pack", []string{"SLIPWAY_GITPUSH_DIR=" + pd})
	// receive-pack has exited: if its hook never ran (nothing to update,
	// or the pack was refused), closing the pipe ends the wait for it.
	cancel()
	in.Close()
	wg.Wait()
}

// pipes makes the two named pipes of a push and opens them read-write, which
// never blocks and keeps them open whichever side comes first.
func pipes(dir string) (in, out *os.File, err error) {
	for _, name := range []string{"in", "out"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			return nil, nil, err
		}
	}
	in, err = os.OpenFile(filepath.Join(dir, "in"), os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	out, err = os.OpenFile(filepath.Join(dir, "out"), os.O_RDWR, 0)
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	return in, out, nil
}

const zeroID = "0000000000000000000000000000000000000000"

// hook serves the pre-receive hook of one push and returns its exit status.
func (s *Server) hook(ctx context.Context, app, dir string, in io.Reader, out io.Writer) int {
	var env []string
	var refs [][3]string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		if line == "." {
			break
		}
		if v, ok := strings.CutPrefix(line, "env "); ok {
			if strings.HasPrefix(v, "GIT_") && !strings.HasSuffix(v, "=") {
				env = append(env, v)
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "ref "); ok {
			f := strings.Fields(v)
			if len(f) == 3 {
				refs = append(refs, [3]string{f[0], f[1], f[2]})
			}
		}
	}
	if ctx.Err() != nil || sc.Err() != nil {
		return 1
	}
	var deploy *[3]string
	for i, ref := range refs {
		branch, ok := strings.CutPrefix(ref[2], "refs/heads/")
		if !ok || !s.deploys(branch) {
			fmt.Fprintf(out, "Refusing %s: only pushes to %s deploy.\n", ref[2], strings.Join(s.branches(), " or "))
			return 1
		}
		if ref[1] == zeroID {
			fmt.Fprintf(out, "Refusing to delete %s: it holds the deployed code.\n", ref[2])
			return 1
		}
		if deploy != nil {
			fmt.Fprintf(out, "Refusing to deploy two branches in one push.\n")
			return 1
		}
		deploy = &refs[i]
	}
	if deploy == nil {
		return 0
	}
	p := &Push{App: app, Ref: deploy[2], Old: deploy[0], New: deploy[1], Output: out,
		git: s.git(), dir: dir, env: env}
	start := time.Now()
	s.log().Info("gitpush: deploying", "app", app, "ref", p.Ref, "commit", p.New)
	if err := s.Deploy(ctx, p); err != nil {
		fmt.Fprintf(out, "\n !     Push rejected: %v\n", err)
		s.log().Info("gitpush: deploy failed", "app", app, "commit", p.New, "err", err, "took", time.Since(start))
		return 1
	}
	s.log().Info("gitpush: deployed", "app", app, "commit", p.New, "took", time.Since(start))
	return 0
}

func (s *Server) branches() []string {
	if s.Branches == nil {
		return []string{"main", "master"}
	}
	return s.Branches
}

func (s *Server) deploys(branch string) bool {
	for _, b := range s.branches() {
		if b == branch {
			return true
		}
	}
	return false
}
