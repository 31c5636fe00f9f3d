//go:build integration

package buildkit_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildkit"
	"github.com/slipwayhq/slipway/build/buildtest"
	"github.com/slipwayhq/slipway/internal/testenv"
)

const apps = "../../examples/apps"

func config(t *testing.T) buildkit.Config {
	t.Helper()
	return buildkit.Config{
		Addr:   testenv.Get(t, testenv.BuildKitVar),
		Output: filepath.Join(t.TempDir(), "images"),
		Stacks: build.LocalStacks(testenv.Get(t, testenv.StacksVar)),
	}
}

func newBuilder(t *testing.T, cfg buildkit.Config) *buildkit.Builder {
	t.Helper()
	b, err := buildkit.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// scope returns a cache scope no earlier run used, for cold builds.
func scope(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e12)
}

func TestConformance(t *testing.T) {
	buildtest.Run(t, buildtest.Config{
		New:  func(t *testing.T) build.Builder { return newBuilder(t, config(t)) },
		Apps: apps,
	})
}

// copyApp copies a sample app into a temporary directory to edit it.
func copyApp(t *testing.T, app string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join(apps, app)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func replaceIn(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

type recorder struct {
	mu    sync.Mutex
	lines []build.ProgressLine
}

func (r *recorder) add(l build.ProgressLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
}

// cached reports whether step was announced as a cache hit, and how many
// log lines it printed.
func (r *recorder) step(name string) (seen, cached bool, logs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if l.Step != name {
			continue
		}
		seen = true
		switch {
		case l.Cached:
			cached = true
		case !strings.HasPrefix(l.Message, "DONE ") && !strings.HasPrefix(l.Message, "ERROR"):
			logs++
		}
	}
	return seen, cached, logs
}

// imageFiles lists the files of an image in an OCI layout, with their modes.
func imageFiles(t *testing.T, layout, dgst string) map[string]int64 {
	t.Helper()
	blob := func(d string) []byte {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(blob(dgst), &m); err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, l := range m.Layers {
		f, err := os.Open(filepath.Join(layout, "blobs", "sha256", l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(l.MediaType, "gzip") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(h.Name, "./")] = h.Mode
		}
		f.Close()
	}
	return files
}

func readIndex(t *testing.T, layout string) ocispec.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	return idx
}

// TestGoApp builds the Go sample without a Dockerfile (a real dependency from
// the module proxy), checks the image, then rebuilds after a one-line change:
// the dependency download must come from the cache.
func TestGoApp(t *testing.T) {
	cfg := config(t)
	b := newBuilder(t, cfg)
	dir := copyApp(t, "go-web")
	// The conformance suite's scope: the Go build cache is shared, but a
	// go.mod no earlier run saw makes the dependency step really run.
	sc := "go-web"
	replaceIn(t, filepath.Join(dir, "go.mod"), "go 1.22", "go 1.22\n\n// "+scope("go"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	cold := &recorder{}
	res, err := b.Build(ctx, build.Request{App: "go-web", Source: build.Source{Dir: dir}, CacheScope: sc, Progress: cold.add, Image: "slipway/go-web:v1"})
	if err != nil {
		t.Fatal(err)
	}
	buildtest.CheckResult(t, res, []build.Process{{Type: "web", Command: "go-web"}})
	if res.Config.Config.User != "1000:1000" {
		t.Errorf("User = %q, want the stack's non-root user", res.Config.Config.User)
	}
	if want := []string{"/bin/sh", "-c", "go-web"}; fmt.Sprint(res.Config.Config.Cmd) != fmt.Sprint(want) {
		t.Errorf("Cmd = %q, want %q", res.Config.Config.Cmd, want)
	}
	files := imageFiles(t, cfg.Output, res.Digest)
	if mode, ok := files["app/bin/go-web"]; !ok || mode&0o111 == 0 {
		t.Errorf("app/bin/go-web missing or not executable in the image (mode %o)", mode)
	}
	if _, ok := files["bin/busybox"]; !ok {
		t.Error("the run image's files are missing")
	}
	if seen, cached, _ := cold.step("go mod download"); !seen || cached {
		t.Errorf("cold build: go mod download seen=%v cached=%v, want run", seen, cached)
	}
	t.Logf("cold: %v, %d/%d steps cached", res.Duration, res.Cached, res.Steps)

	replaceIn(t, filepath.Join(dir, "main.go"), `"hello from go-web"`, `"hello again from go-web"`)
	warm := &recorder{}
	res2, err := b.Build(ctx, build.Request{App: "go-web", Source: build.Source{Dir: dir}, CacheScope: sc, Progress: warm.add, Image: "slipway/go-web:v2"})
	if err != nil {
		t.Fatal(err)
	}
	if seen, cached, _ := warm.step("go mod download"); !seen || !cached {
		t.Errorf("warm build: go mod download seen=%v cached=%v: dependencies were downloaded again", seen, cached)
	}
	if seen, cached, _ := warm.step("go build"); !seen || cached {
		t.Errorf("warm build: go build seen=%v cached=%v, want it to run on the changed source", seen, cached)
	}
	if res2.Digest == res.Digest {
		t.Error("the changed source gave the same image")
	}
	if res2.Cached == 0 {
		t.Errorf("warm build reports no cached steps (%d/%d)", res2.Cached, res2.Steps)
	}
	t.Logf("warm: %v, %d/%d steps cached", res2.Duration, res2.Cached, res2.Steps)

	idx := readIndex(t, cfg.Output)
	names := map[string]string{}
	for _, d := range idx.Manifests {
		names[d.Annotations[ocispec.AnnotationRefName]] = d.Digest.String()
	}
	if names["slipway/go-web:v1"] != res.Digest || names["slipway/go-web:v2"] != res2.Digest {
		t.Errorf("index.json names %v, want v1=%s v2=%s", names, res.Digest, res2.Digest)
	}
}

// TestNodeApp builds the Node sample (a real npm dependency) and checks that a
// rebuild after a source change reuses the npm ci step.
func TestNodeApp(t *testing.T) {
	cfg := config(t)
	b := newBuilder(t, cfg)
	dir := copyApp(t, "node-web")
	sc := "node-web"
	replaceIn(t, filepath.Join(dir, "package.json"), `"private": true,`, `"private": true, "description2": "`+scope("node")+`",`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := b.Build(ctx, build.Request{App: "node-web", Source: build.Source{Dir: dir}, CacheScope: sc})
	if err != nil {
		t.Fatal(err)
	}
	buildtest.CheckResult(t, res, []build.Process{{Type: "web", Command: "node server.js"}})
	files := imageFiles(t, cfg.Output, res.Digest)
	for _, f := range []string{"app/node_modules/ms/package.json", "app/server.js", "usr/bin/node"} {
		if _, ok := files[f]; !ok {
			t.Errorf("%s missing from the image", f)
		}
	}
	replaceIn(t, filepath.Join(dir, "server.js"), "hello from node-web", "hello again from node-web")
	warm := &recorder{}
	if _, err := b.Build(ctx, build.Request{App: "node-web", Source: build.Source{Dir: dir}, CacheScope: sc, Progress: warm.add}); err != nil {
		t.Fatal(err)
	}
	if seen, cached, _ := warm.step("npm ci"); !seen || !cached {
		t.Errorf("warm build: npm ci seen=%v cached=%v: dependencies were installed again", seen, cached)
	}
}

// TestDockerfileApp builds the Dockerfile sample with a build arg and checks
// that web comes from CMD.
func TestDockerfileApp(t *testing.T) {
	cfg := config(t)
	b := newBuilder(t, cfg)
	res, err := b.Build(context.Background(), build.Request{
		App:    "dockerfile-web",
		Source: build.Source{Dir: filepath.Join(apps, "dockerfile-web")},
		Args:   []build.Arg{{Name: "GREETING", Value: "bonjour"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	buildtest.CheckResult(t, res, []build.Process{{Type: "web", Command: "busybox httpd -f -p 8080 -h /www"}})
	if res.Config.Config.User != "1000:1000" {
		t.Errorf("User = %q", res.Config.Config.User)
	}
	if _, ok := imageFiles(t, cfg.Output, res.Digest)["www/index.html"]; !ok {
		t.Error("www/index.html missing")
	}
}

// TestCancelStopsBuild cancels a build mid-step and checks that the step's
// process is gone (buildkitd runs on this machine in tests).
func TestCancelStopsBuild(t *testing.T) {
	b := newBuilder(t, config(t))
	dir := t.TempDir()
	marker := fmt.Sprintf("%d", 4000+time.Now().UnixNano()%5000)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM slipway/static-run\nRUN echo started && sleep "+marker+"\nCMD [\"true\"]\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	_, err := b.Build(ctx, build.Request{App: "cancel", Source: build.Source{Dir: dir}, Progress: func(l build.ProgressLine) {
		if strings.Contains(l.Message, "started") {
			once.Do(func() { time.AfterFunc(500*time.Millisecond, cancel) })
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if !processRunning("sleep " + marker) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled step's process is still running")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func processRunning(cmdline string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), cmdline) {
			return true
		}
	}
	return false
}

// TestConcurrentIndex runs builds at once into one layout from two builders
// and checks that index.json holds every image.
func TestConcurrentIndex(t *testing.T) {
	cfg := config(t)
	b1, b2 := newBuilder(t, cfg), newBuilder(t, cfg)
	const n = 6
	var wg sync.WaitGroup
	digests := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "index.html"), []byte(fmt.Sprintf("page %d", i)), 0o644)
			b := b1
			if i%2 == 1 {
				b = b2
			}
			res, err := b.Build(context.Background(), build.Request{App: "pages", Source: build.Source{Dir: dir}, Image: fmt.Sprintf("slipway/pages:%d", i)})
			errs[i] = err
			if err == nil {
				digests[i] = res.Digest
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	idx := readIndex(t, cfg.Output)
	names := map[string]string{}
	for _, d := range idx.Manifests {
		names[d.Annotations[ocispec.AnnotationRefName]] = d.Digest.String()
	}
	for i := 0; i < n; i++ {
		if got := names[fmt.Sprintf("slipway/pages:%d", i)]; got != digests[i] {
			t.Errorf("index.json has %q for image %d, want %s", got, i, digests[i])
		}
	}
}

// TestPush pushes an image to the local registry and reads its manifest back.
func TestPush(t *testing.T) {
	reg := testenv.Get(t, testenv.RegistryVar)
	cfg := config(t)
	cfg.Push, cfg.PlainHTTP = true, true
	b := newBuilder(t, cfg)
	tag := fmt.Sprintf("t%d", time.Now().UnixNano())
	res, err := b.Build(context.Background(), build.Request{
		App:    "static-web",
		Source: build.Source{Dir: filepath.Join(apps, "static-web")},
		Image:  reg + "/slipway-test/static-web:" + tag,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed {
		t.Error("Pushed is false")
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg+"/v2/slipway-test/static-web/manifests/"+tag, nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != res.Digest {
		t.Errorf("registry: %s digest %q, want 200 %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), res.Digest)
	}
}

// TestRegistryStack builds on stack images given as registry references: the
// static sample's image is pushed, then used as the build and run image of
// another static app.
func TestRegistryStack(t *testing.T) {
	reg := testenv.Get(t, testenv.RegistryVar)
	cfg := config(t)
	cfg.Push, cfg.PlainHTTP = true, true
	ctx := context.Background()
	ref := fmt.Sprintf("%s/slipway-test/stack:t%d", reg, time.Now().UnixNano())
	if _, err := newBuilder(t, cfg).Build(ctx, build.Request{App: "stack", Source: build.Source{Dir: filepath.Join(apps, "static-web")}, Image: ref}); err != nil {
		t.Fatal(err)
	}
	cfg2 := config(t)
	cfg2.Stacks = build.Stacks{"static": {Build: build.Image{Ref: ref}, Run: build.Image{Ref: ref}, User: "1000:1000"}}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("on a registry stack"), 0o644)
	res, err := newBuilder(t, cfg2).Build(ctx, build.Request{App: "onstack", Source: build.Source{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	files := imageFiles(t, cfg2.Output, res.Digest)
	for _, f := range []string{"bin/busybox", "app/index.html", "app/public/index.html"} {
		if _, ok := files[f]; !ok {
			t.Errorf("%s missing from the image built on the registry stack", f)
		}
	}
}
