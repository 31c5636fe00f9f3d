// Package buildtest is the conformance suite for build.Builder
// implementations, and Fake, an engine-less reference Builder that passes
// the part of the suite that does not run build steps.
//
// An implementation's test calls Run with a factory for its builder and
// the sample apps (examples/apps in this repository):
//
//	buildtest.Run(t, buildtest.Config{
//		New:  func(t *testing.T) build.Builder { return newBuilder(t) },
//		Apps: "../../examples/apps",
//	})
package buildtest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/build"
)

// Config configures a conformance run.
type Config struct {
	// New returns a fresh builder for one subtest. Required.
	New func(t *testing.T) build.Builder

	// Apps is the directory of the sample apps (go-web, node-web,
	// dockerfile-web, python-web, static-web). Required.
	Apps string

	// Strategies limits the sample apps built to these strategies. If nil,
	// all five are built.
	Strategies []build.Strategy

	// DockerfileBase is an image name the builder resolves in a Dockerfile
	// FROM line without a registry. If empty, "slipway/static-run".
	DockerfileBase string

	// NoExecution skips the subtests that need build steps to really run
	// (failing steps, cancellation mid-step). For fakes.
	NoExecution bool

	// Timeout bounds each build. If zero, 10 minutes.
	Timeout time.Duration
}

func (c Config) base() string {
	if c.DockerfileBase != "" {
		return c.DockerfileBase
	}
	return "slipway/static-run"
}

func (c Config) ctx(t *testing.T) context.Context {
	d := c.Timeout
	if d == 0 {
		d = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sample is what building one sample app must give.
type sample struct {
	app       string
	strategy  build.Strategy
	processes []build.Process
}

var samples = []sample{
	{"go-web", build.StrategyGo, []build.Process{{Type: "web", Command: "go-web"}}},
	{"node-web", build.StrategyNode, []build.Process{{Type: "web", Command: "node server.js"}}},
	{"dockerfile-web", build.StrategyDockerfile, []build.Process{{Type: "web", Command: "busybox httpd -f -p 8080 -h /www"}}},
	{"python-web", build.StrategyPython, []build.Process{{Type: "web", Command: "python app.py"}}},
	{"static-web", build.StrategyStatic, []build.Process{{Type: "web", Command: "exec busybox httpd -f -v -p ${PORT:-5000} -h /app/public"}}},
}

// Run runs the conformance suite.
func Run(t *testing.T, cfg Config) {
	if cfg.New == nil || cfg.Apps == "" {
		t.Fatal("buildtest: Config.New and Config.Apps are required")
	}
	t.Run("SampleApps", func(t *testing.T) { testSamples(t, cfg) })
	t.Run("TarSource", func(t *testing.T) { testTarSource(t, cfg) })
	t.Run("InvalidRequest", func(t *testing.T) { testInvalidRequest(t, cfg) })
	t.Run("NoBuildStrategy", func(t *testing.T) { testNoStrategy(t, cfg) })
	t.Run("UnsafeSource", func(t *testing.T) { testUnsafe(t, cfg) })
	t.Run("InvalidProcfile", func(t *testing.T) { testBadProcfile(t, cfg) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, cfg) })
	if !cfg.NoExecution {
		t.Run("FailingStep", func(t *testing.T) { testFailingStep(t, cfg) })
		t.Run("Cancel", func(t *testing.T) { testCancel(t, cfg) })
	}
}

func wanted(cfg Config, s build.Strategy) bool {
	if cfg.Strategies == nil {
		return true
	}
	for _, x := range cfg.Strategies {
		if x == s {
			return true
		}
	}
	return false
}

// CheckResult verifies what every successful build must give.
func CheckResult(t *testing.T, res *build.Result, want []build.Process) {
	t.Helper()
	if !strings.HasPrefix(res.Digest, "sha256:") || len(res.Digest) != 71 {
		t.Errorf("Digest = %q, want a sha256 manifest digest", res.Digest)
	}
	if res.Image == "" {
		t.Error("Image is empty")
	}
	if want != nil && !reflect.DeepEqual(res.Processes, want) {
		t.Errorf("Processes = %v, want %v", res.Processes, want)
	}
	label := res.Config.Config.Labels[build.ProcessTypesLabel]
	got, err := build.ProcessesFromLabel(label)
	if err != nil || !reflect.DeepEqual(got, res.Processes) {
		t.Errorf("label %s = %q (%v), want the process types %v", build.ProcessTypesLabel, label, err, res.Processes)
	}
	for _, kv := range res.Config.Config.Env {
		if strings.HasPrefix(kv, "PORT=") {
			t.Errorf("PORT is baked into the image: %s", kv)
		}
	}
	if res.Steps < res.Cached || res.Duration <= 0 {
		t.Errorf("Steps %d Cached %d Duration %v", res.Steps, res.Cached, res.Duration)
	}
	if res.Strategy == build.StrategyDockerfile {
		return
	}
	if res.Config.Config.WorkingDir != "/app" {
		t.Errorf("WorkingDir = %q, want /app", res.Config.Config.WorkingDir)
	}
	path := ""
	for _, kv := range res.Config.Config.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	if !strings.HasPrefix(path, "/app/bin:") && !strings.Contains(path, ":/app/bin:") {
		t.Errorf("PATH = %q, want /app/bin on it", path)
	}
}

func testSamples(t *testing.T, cfg Config) {
	for _, s := range samples {
		if !wanted(cfg, s.strategy) {
			continue
		}
		t.Run(s.app, func(t *testing.T) {
			b := cfg.New(t)
			var lines int
			res, err := b.Build(cfg.ctx(t), build.Request{
				App:      s.app,
				Source:   build.Source{Dir: filepath.Join(cfg.Apps, s.app)},
				Args:     []build.Arg{{Name: "GREETING", Value: "howdy"}},
				Progress: func(build.ProgressLine) { lines++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Strategy != s.strategy {
				t.Errorf("Strategy = %s, want %s", res.Strategy, s.strategy)
			}
			CheckResult(t, res, s.processes)
			if lines == 0 {
				t.Error("no progress lines")
			}
		})
	}
}

// tarDir tars dir (regular files, dirs and symlinks).
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

func testTarSource(t *testing.T, cfg Config) {
	if !wanted(cfg, build.StrategyStatic) {
		t.Skip("static sites not tested by this configuration")
	}
	b := cfg.New(t)
	res, err := b.Build(cfg.ctx(t), build.Request{
		App:    "static-tar",
		Source: build.Source{Tar: bytes.NewReader(tarDir(t, filepath.Join(cfg.Apps, "static-web")))},
		Image:  "slipway/static-tar:v1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image != "slipway/static-tar:v1" {
		t.Errorf("Image = %q", res.Image)
	}
	CheckResult(t, res, samples[4].processes)
}

func testInvalidRequest(t *testing.T, cfg Config) {
	b := cfg.New(t)
	for _, r := range []build.Request{
		{App: "Bad_Name", Source: build.Source{Dir: filepath.Join(cfg.Apps, "static-web")}},
		{App: "web"},
		{App: "web", Source: build.Source{Dir: filepath.Join(cfg.Apps, "static-web")}, Args: []build.Arg{{Name: "A B"}}},
	} {
		if _, err := b.Build(cfg.ctx(t), r); !errors.Is(err, build.ErrInvalidRequest) {
			t.Errorf("%+v: err = %v, want ErrInvalidRequest", r, err)
		}
	}
}

func testNoStrategy(t *testing.T, cfg Config) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README"), []byte("nothing to build"), 0o644)
	_, err := cfg.New(t).Build(cfg.ctx(t), build.Request{App: "empty", Source: build.Source{Dir: dir}})
	if !errors.Is(err, build.ErrNoBuildStrategy) {
		t.Fatalf("err = %v, want ErrNoBuildStrategy", err)
	}
}

func testUnsafe(t *testing.T, cfg Config) {
	b := cfg.New(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hi"), 0o644)
	os.Symlink("/etc/shadow", filepath.Join(dir, "shadow"))
	if _, err := b.Build(cfg.ctx(t), build.Request{App: "unsafe", Source: build.Source{Dir: dir}}); !errors.Is(err, build.ErrUnsafeSource) {
		t.Errorf("absolute symlink: err = %v, want ErrUnsafeSource", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../../etc/cron.d/x", Size: 1, Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	if _, err := b.Build(cfg.ctx(t), build.Request{App: "unsafe", Source: build.Source{Tar: &buf}}); !errors.Is(err, build.ErrUnsafeSource) {
		t.Errorf("tar traversal: err = %v, want ErrUnsafeSource", err)
	}
}

func testBadProcfile(t *testing.T, cfg Config) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hi"), 0o644)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ok\nweb: twice\n"), 0o644)
	_, err := cfg.New(t).Build(cfg.ctx(t), build.Request{App: "badproc", Source: build.Source{Dir: dir}})
	var pe *build.ProcfileError
	if !errors.As(err, &pe) || !errors.Is(err, build.ErrInvalidProcfile) || pe.Line != 2 {
		t.Fatalf("err = %v, want *ProcfileError at line 2", err)
	}
}

func testConcurrent(t *testing.T, cfg Config) {
	if !wanted(cfg, build.StrategyStatic) {
		t.Skip("static sites not tested by this configuration")
	}
	b := cfg.New(t)
	ctx := cfg.ctx(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "public"), 0o755)
			os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte(strings.Repeat("x", i+1)), 0o644)
			_, errs[i] = b.Build(ctx, build.Request{App: "concurrent", Source: build.Source{Dir: dir}, Image: "slipway/concurrent:" + string(rune('a'+i))})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}
}

func dockerfileApp(t *testing.T, cfg Config, dockerfile string) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+cfg.base()+"\n"+dockerfile), 0o644)
	return dir
}

func testFailingStep(t *testing.T, cfg Config) {
	dir := dockerfileApp(t, cfg, "RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo line-$i; done; echo broken-marker >&2; exit 3\nCMD [\"true\"]\n")
	_, err := cfg.New(t).Build(cfg.ctx(t), build.Request{App: "failing", Source: build.Source{Dir: dir}})
	var se *build.StepError
	if !errors.As(err, &se) || !errors.Is(err, build.ErrStepFailed) {
		t.Fatalf("err = %v, want *StepError", err)
	}
	if !strings.Contains(se.Step, "RUN") {
		t.Errorf("Step = %q, want the failing RUN", se.Step)
	}
	if len(se.Log) == 0 || len(se.Log) > build.StepLogLines {
		t.Errorf("Log has %d lines, want 1..%d", len(se.Log), build.StepLogLines)
	}
	if !strings.Contains(strings.Join(se.Log, "\n"), "broken-marker") {
		t.Errorf("Log %q lacks the step's last output", se.Log)
	}
	if strings.Contains(strings.Join(se.Log, "\n"), "line-1\n") {
		t.Errorf("Log keeps more than the last lines: %q", se.Log)
	}
}

func testCancel(t *testing.T, cfg Config) {
	dir := dockerfileApp(t, cfg, "RUN echo sleeping-now && sleep 600\nCMD [\"true\"]\n")
	ctx, cancel := context.WithCancel(cfg.ctx(t))
	defer cancel()
	var once sync.Once
	start := time.Now()
	_, err := cfg.New(t).Build(ctx, build.Request{
		App:    "cancelled",
		Source: build.Source{Dir: dir},
		Progress: func(l build.ProgressLine) {
			if strings.Contains(l.Message, "sleeping-now") {
				once.Do(cancel)
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("cancelled build took %v to return", d)
	}
}
