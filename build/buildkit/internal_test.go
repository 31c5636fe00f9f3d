package buildkit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/build"
)

func TestTrackerLinesAndTail(t *testing.T) {
	var got []build.ProgressLine
	var text strings.Builder
	tr := newTracker(build.Request{Progress: func(l build.ProgressLine) { got = append(got, l) }, ProgressWriter: &text})
	d1, d2 := digest.FromString("a"), digest.FromString("b")
	t0 := time.Now()
	t1 := t0.Add(1500 * time.Millisecond)
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: d1, Name: "go build", Started: &t0}, {Digest: d2, Name: "copy go.mod", Cached: true}}})
	// Log data arrives in chunks that split lines.
	tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: d1, Stream: 1, Data: []byte("first li")}}})
	var many strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&many, "line %d\n", i)
	}
	tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: d1, Stream: 1, Data: []byte("ne\n" + many.String() + "unterminated")}}})
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: d1, Name: "go build", Started: &t0, Completed: &t1, Error: "exit code: 2"}}})

	if got[0].Step != "copy go.mod" || !got[0].Cached || got[0].Message != "CACHED" {
		t.Errorf("first line = %+v, want the cache hit", got[0])
	}
	if got[1].Message != "first line" || got[1].Step != "go build" {
		t.Errorf("split line = %+v", got[1])
	}
	last := got[len(got)-1]
	if last.Message != "ERROR: exit code: 2" {
		t.Errorf("last line = %+v", last)
	}
	if got[len(got)-2].Message != "unterminated" {
		t.Errorf("unterminated data not flushed at completion: %+v", got[len(got)-2])
	}
	v := tr.failed()
	if v == nil || v.name != "go build" {
		t.Fatalf("failed vertex = %+v", v)
	}
	if log := v.stepLog(); len(log) != build.StepLogLines || log[len(log)-1] != "unterminated" {
		t.Fatalf("step log = %q", log)
	}
	if steps, cached := tr.counts(); steps != 2 || cached != 1 {
		t.Errorf("counts = %d/%d, want 2 steps, 1 cached", steps, cached)
	}
	if !strings.Contains(text.String(), "[go build] line 29\n") {
		t.Errorf("writer output lacks rendered lines:\n%s", text.String())
	}
}

// A step's stderr reaches the StepError even when its stdout, a separate
// stream, arrives after it and would push it out of a plain tail.
func TestStepLogKeepsStderr(t *testing.T) {
	tr := newTracker(build.Request{})
	d := digest.FromString("run")
	t0 := time.Now()
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: d, Name: "RUN make", Started: &t0}}})
	tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: d, Stream: 1, Data: []byte("compiling\n")}}})
	tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: d, Stream: 2, Data: []byte("error: broken\n")}}})
	var many strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&many, "out %d\n", i)
	}
	tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: d, Stream: 1, Data: []byte(many.String())}}})
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: d, Name: "RUN make", Started: &t0, Completed: &t0, Error: "exit code: 3"}}})
	log := tr.failed().stepLog()
	if len(log) != build.StepLogLines {
		t.Fatalf("step log has %d lines, want %d: %q", len(log), build.StepLogLines, log)
	}
	if log[0] != "error: broken" || log[len(log)-1] != "out 39" {
		t.Errorf("step log = %q, want the stderr line first (it came first) and stdout's last line last", log)
	}
	if slices.Contains(log, "compiling") || slices.Contains(log, "out 20") {
		t.Errorf("step log keeps old stdout lines: %q", log)
	}
}

func TestTrackerIgnoresCancellation(t *testing.T) {
	tr := newTracker(build.Request{})
	now := time.Now()
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{{Digest: digest.FromString("x"), Name: "RUN sleep", Started: &now, Completed: &now, Error: "context canceled"}}})
	if tr.failed() != nil {
		t.Error("a cancelled step counts as failed")
	}
}

func TestCommandOf(t *testing.T) {
	tests := []struct {
		cfg  ocispec.ImageConfig
		want string
	}{
		{ocispec.ImageConfig{Cmd: []string{"/bin/sh", "-c", "exec web --port $PORT"}}, "exec web --port $PORT"},
		{ocispec.ImageConfig{Cmd: []string{"busybox", "httpd", "-f"}}, "busybox httpd -f"},
		{ocispec.ImageConfig{Entrypoint: []string{"/app/server"}, Cmd: []string{"--greeting", "hello world", "it's"}}, `/app/server --greeting 'hello world' 'it'\''s'`},
		{ocispec.ImageConfig{}, ""},
	}
	for _, tt := range tests {
		if got := commandOf(tt.cfg); got != tt.want {
			t.Errorf("commandOf(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestIndexConcurrentUpdates(t *testing.T) {
	dir := t.TempDir()
	if _, err := openLayout(dir); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(fmt.Sprint(i)), Size: int64(i)}
			if err := addToIndex(dir, desc, fmt.Sprintf("app:%d", i%10)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json corrupt: %v", err)
	}
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		name := d.Annotations[ocispec.AnnotationRefName]
		if seen[name] {
			t.Errorf("two entries named %s", name)
		}
		seen[name] = true
	}
	if len(seen) != 10 || idx.SchemaVersion != 2 {
		t.Errorf("index has %d names (want 10), schema %d", len(seen), idx.SchemaVersion)
	}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
		t.Error("oci-layout missing:", err)
	}
}

func TestReadLayoutImage(t *testing.T) {
	dir := t.TempDir()
	blob := func(v any) ocispec.Descriptor {
		b, _ := json.Marshal(v)
		d := digest.FromBytes(b)
		os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
		os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644)
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	cfg := blob(ocispec.Image{Config: ocispec.ImageConfig{User: "1000"}})
	m := blob(ocispec.Manifest{Config: cfg})
	m.MediaType = ocispec.MediaTypeImageManifest
	m.Annotations = map[string]string{ocispec.AnnotationRefName: "go"}
	other := m
	other.Annotations = map[string]string{ocispec.AnnotationRefName: "node"}
	b, _ := json.Marshal(ocispec.Index{Manifests: []ocispec.Descriptor{m, other}})
	os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)

	li, err := readLayoutImage(build.Image{Layout: dir, Name: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if li.manifest != m.Digest || !strings.Contains(string(li.config), `"User":"1000"`) {
		t.Errorf("got %s %s", li.manifest, li.config)
	}
	if _, err := readLayoutImage(build.Image{Layout: dir}); err == nil {
		t.Error("an ambiguous layout was accepted without a name")
	}
	if _, err := readLayoutImage(build.Image{Layout: dir, Name: "python"}); err == nil {
		t.Error("a missing name was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Error("empty config accepted")
	}
	bad := Config{Addr: "unix:///x", Output: "/tmp/x", Stacks: build.Stacks{"go": {Build: build.Image{Ref: "a", Layout: "b"}}}}
	if err := bad.Validate(); err == nil {
		t.Error("stack image with both Ref and Layout accepted")
	}
	if err := (Config{Addr: "unix:///x", Output: "/tmp/x", Stacks: build.LocalStacks("/s")}).Validate(); err != nil {
		t.Error(err)
	}
}
