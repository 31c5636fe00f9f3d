package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/internal/names"
)

// ProcessTypesLabel is the image label that carries the app's process types
// as a JSON object from type to command, e.g. {"web":"bin/server"}.
const ProcessTypesLabel = "io.slipway.process-types"

// Builder builds an app's source into an OCI image.
//
// Build blocks until the image is stored (and pushed, when the builder is
// configured to push) or the build failed. It is safe for concurrent use;
// concurrent builds of the same app share caches but never corrupt the
// output. When ctx is cancelled the build is cancelled in the engine, nothing
// is left running, and the error wraps ctx.Err().
//
// Errors callers branch on: ErrInvalidRequest, ErrNoBuildStrategy,
// ErrUnsafeSource, ErrSourceTooLarge, *ProcfileError (wrapping
// ErrInvalidProcfile) and *StepError (wrapping ErrStepFailed).
type Builder interface {
	Build(ctx context.Context, req Request) (*Result, error)
}

// Request is one build.
type Request struct {
	// App is the app's name; it must satisfy the app-name rules (a DNS label
	// starting with a letter).
	App string

	// Source is the app's source: exactly one of Dir or Tar.
	Source Source

	// Args are build arguments: Dockerfile ARGs for Dockerfile builds, and
	// environment variables of the build steps for detected languages.
	Args []Arg

	// CacheScope names the cache (per-app cache mounts) this build reads and
	// writes. If empty, App is used, so rebuilds of an app share a cache.
	CacheScope string

	// Image is the reference the image is stored (and pushed) as, e.g.
	// "registry.example:5000/web:v12". If empty, "slipway/<app>:latest".
	Image string

	// Progress, if not nil, is called for every line of progress as the
	// build runs, from one goroutine at a time.
	Progress func(ProgressLine)

	// ProgressWriter, if not nil, receives the same lines as text, one
	// "[step] message\n" line each.
	ProgressWriter io.Writer
}

// Source is where a build's source comes from.
type Source struct {
	// Dir is a directory on the builder's machine. It is read, never written.
	Dir string
	// Tar is an (optionally gzip-compressed) tar stream of the source.
	Tar io.Reader
}

// Arg is one build argument.
type Arg struct {
	Name  string
	Value string
}

// ProgressLine is one line of build progress.
type ProgressLine struct {
	// Step names the step the line belongs to (a BuildKit vertex name),
	// empty for the builder's own messages.
	Step string
	// Message is the line, without its newline.
	Message string
	// Cached is true for a line announcing that Step was a cache hit.
	Cached bool
	// Time is when the engine reported the line.
	Time time.Time
}

// String renders the line as ProgressWriter receives it.
func (l ProgressLine) String() string {
	if l.Step == "" {
		return l.Message
	}
	return "[" + l.Step + "] " + l.Message
}

// Result is a built image.
type Result struct {
	// Image is the reference the image was stored as.
	Image string
	// Digest is the digest of the image manifest ("sha256:...").
	Digest string
	// Config is the image's configuration.
	Config ocispec.Image
	// Processes are the app's process types: from the Procfile, else the
	// language's defaults, else (for Dockerfile apps) `web` from the image's
	// command. Sorted by type.
	Processes []Process
	// Strategy is how the image was built.
	Strategy Strategy
	// Duration is how long the build took.
	Duration time.Duration
	// Steps is how many build steps there were, and Cached how many of
	// them were taken from the cache.
	Steps, Cached int
	// Pushed is true when the image was also pushed to a registry.
	Pushed bool
}

// Process is one process type of an app.
type Process struct {
	Type    string
	Command string
}

// Validate checks the request without touching the source.
func (r *Request) Validate() error {
	if err := names.App(r.App); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if (r.Source.Dir == "") == (r.Source.Tar == nil) {
		return fmt.Errorf("%w: exactly one of Source.Dir and Source.Tar must be set", ErrInvalidRequest)
	}
	seen := map[string]bool{}
	for _, a := range r.Args {
		if a.Name == "" {
			return fmt.Errorf("%w: build arg with empty name", ErrInvalidRequest)
		}
		for _, c := range a.Name {
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return fmt.Errorf("%w: build arg %q: only letters, digits and '_' are allowed", ErrInvalidRequest, a.Name)
			}
		}
		if seen[a.Name] {
			return fmt.Errorf("%w: build arg %q given twice", ErrInvalidRequest, a.Name)
		}
		seen[a.Name] = true
	}
	if r.CacheScope != "" {
		if err := names.Label("cache scope", r.CacheScope); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
	}
	return nil
}

// Scope returns the cache scope of the request: CacheScope, else App.
func (r *Request) Scope() string {
	if r.CacheScope != "" {
		return r.CacheScope
	}
	return r.App
}

// ImageName returns the image reference of the request: Image, else
// "slipway/<app>:latest".
func (r *Request) ImageName() string {
	if r.Image != "" {
		return r.Image
	}
	return "slipway/" + r.App + ":latest"
}

// ProcessTypesJSON encodes process types as the value of ProcessTypesLabel.
func ProcessTypesJSON(ps []Process) string {
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Type] = p.Command
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}

// ProcessesFromLabel decodes the value of ProcessTypesLabel, sorted by type.
func ProcessesFromLabel(v string) ([]Process, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("label %s: %w", ProcessTypesLabel, err)
	}
	return sortedProcesses(m), nil
}

func sortedProcesses(m map[string]string) []Process {
	ps := make([]Process, 0, len(m))
	for t, c := range m {
		ps = append(ps, Process{Type: t, Command: c})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Type < ps[j].Type })
	return ps
}
