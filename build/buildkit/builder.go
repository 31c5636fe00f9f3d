package buildkit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/slipwayhq/slipway/build"
)

// Config configures a Builder.
type Config struct {
	// Addr is the buildkitd address, e.g. unix:///run/buildkit/buildkitd.sock
	// or tcp://127.0.0.1:1234. Required.
	Addr string

	// Output is the directory of the OCI image layout that built images
	// are stored in (created if missing). Required. Concurrent builds, also
	// from other processes using this package, update its index.json
	// safely; each image's index entry is annotated with
	// org.opencontainers.image.ref.name set to the request's image name.
	Output string

	// Stacks are the build and run images of detected languages; see
	// build.LocalStacks. A build whose plan needs a missing stack fails.
	Stacks build.Stacks

	// DockerfileImages are images offered to Dockerfile builds by name:
	// `FROM <name>` resolves to the image without a registry. If nil, each
	// stack's images are offered as "slipway/<stack>-build" and
	// "slipway/<stack>-run".
	DockerfileImages map[string]build.Image

	// Push, if true, also pushes every image to the registry its name
	// points at. PlainHTTP allows registries without TLS (loopback
	// development registries).
	Push      bool
	PlainHTTP bool

	// Source limits sources (size, temporary directory).
	Source build.SourceOptions

	// PackageIndex configures where dependencies are downloaded from.
	PackageIndex PackageIndex

	// Logger receives the builder's own logs. If nil, nothing is logged.
	Logger *slog.Logger
}

// PackageIndex configures where build steps download dependencies from.
// Empty fields leave the tools' defaults.
type PackageIndex struct {
	GoProxy     string // GOPROXY, e.g. "https://proxy.golang.org,direct"
	GoSumDB     string // GOSUMDB, e.g. "off" for proxies without a checksum database
	NPMRegistry string // npm_config_registry
	PythonIndex string // PIP_INDEX_URL
	// PythonFindLinks is a directory (inside the source, relative to it)
	// or URL of wheels; with PythonNoIndex pip uses only it.
	PythonFindLinks string
	PythonNoIndex   bool
}

// Validate reports misconfiguration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("buildkit: Config.Addr is required")
	}
	if c.Output == "" {
		return errors.New("buildkit: Config.Output is required")
	}
	for name, s := range c.Stacks {
		if err := s.Build.Validate(); err != nil {
			return fmt.Errorf("buildkit: stack %q build: %w", name, err)
		}
		if err := s.Run.Validate(); err != nil {
			return fmt.Errorf("buildkit: stack %q run: %w", name, err)
		}
	}
	for name, img := range c.DockerfileImages {
		if err := img.Validate(); err != nil {
			return fmt.Errorf("buildkit: Dockerfile image %q: %w", name, err)
		}
	}
	return nil
}

// Builder builds images with BuildKit. It is safe for concurrent use.
type Builder struct {
	cfg    Config
	c      *client.Client
	output content.Store
	log    *slog.Logger
	outAbs string

	mu     sync.Mutex // guards stores
	stores map[string]content.Store
}

var _ build.Builder = (*Builder)(nil)

// New connects to buildkitd and prepares the output layout.
func New(ctx context.Context, cfg Config) (*Builder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(cfg.Output)
	if err != nil {
		return nil, err
	}
	store, err := openLayout(out)
	if err != nil {
		return nil, fmt.Errorf("buildkit: output layout: %w", err)
	}
	c, err := client.New(ctx, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("buildkit: connecting to %s: %w", cfg.Addr, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DockerfileImages == nil {
		cfg.DockerfileImages = map[string]build.Image{}
		for name, s := range cfg.Stacks {
			cfg.DockerfileImages["slipway/"+name+"-build"] = s.Build
			cfg.DockerfileImages["slipway/"+name+"-run"] = s.Run
		}
	}
	return &Builder{cfg: cfg, c: c, output: store, log: log, outAbs: out, stores: map[string]content.Store{}}, nil
}

// Close closes the connection to buildkitd. Builds in flight fail.
func (b *Builder) Close() error { return b.c.Close() }

// Build implements build.Builder.
func (b *Builder) Build(ctx context.Context, req build.Request) (*build.Result, error) {
	return b.BuildWithStatus(ctx, req, nil)
}

// BuildWithStatus is Build that also sends BuildKit's raw status to ch, for
// renderers such as progressui. ch is closed when the build ends; it may be
// nil.
func (b *Builder) BuildWithStatus(ctx context.Context, req build.Request, ch chan *client.SolveStatus) (res *build.Result, err error) {
	closed := false
	defer func() {
		if ch != nil && !closed {
			close(ch)
		}
	}()
	start := time.Now()
	src, plan, err := build.Prepare(ctx, req, b.cfg.Source)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	b.log.InfoContext(ctx, "building", "app", req.App, "strategy", plan.Strategy, "image", req.ImageName())

	// The frontend reads the Dockerfile from an unfiltered view, so that
	// a .dockerignore listing it still builds (as with docker build).
	dockerfileFS, err := fsutil.NewFS(src.Dir)
	if err != nil {
		return nil, err
	}
	local := dockerfileFS
	if len(src.Excludes) > 0 {
		if local, err = fsutil.NewFilterFS(dockerfileFS, &fsutil.FilterOpt{ExcludePatterns: src.Excludes}); err != nil {
			return nil, err
		}
	}

	j := &job{b: b, req: req, plan: plan, stores: map[string]content.Store{}}
	if err := j.prepare(); err != nil {
		return nil, err
	}

	image := req.ImageName()
	exports := []client.ExportEntry{{
		Type:        client.ExporterOCI,
		Attrs:       map[string]string{"name": image, "tar": "false"},
		OutputStore: b.output,
	}}
	if b.cfg.Push {
		attrs := map[string]string{"name": image, "push": "true"}
		if b.cfg.PlainHTTP {
			attrs["registry.insecure"] = "true"
		}
		exports = append(exports, client.ExportEntry{Type: client.ExporterImage, Attrs: attrs})
	}
	opt := client.SolveOpt{
		Exports:     exports,
		LocalMounts: map[string]fsutil.FS{"context": local, "dockerfile": dockerfileFS},
		OCIStores:   j.stores,
		SharedKey:   "slipway-" + req.Scope(),
	}

	tr := newTracker(req)
	tr.message("building %s with strategy %s", image, plan.Strategy)
	statusCh := make(chan *client.SolveStatus)
	tracked := make(chan struct{})
	go func() {
		defer close(tracked)
		for s := range statusCh {
			tr.update(s)
			if ch != nil {
				ch <- s
			}
		}
	}()
	// Build closes statusCh when it returns; ctx cancels the solve in
	// buildkitd (the session and the gRPC call end with it).
	resp, solveErr := b.c.Build(ctx, opt, "slipway", j.run, statusCh)
	<-tracked
	if ch != nil {
		close(ch)
		closed = true
	}
	if solveErr != nil {
		return nil, j.classify(ctx, tr, solveErr)
	}

	descB64 := resp.ExporterResponse[exptypes.ExporterImageDescriptorKey]
	descJSON, err := base64.StdEncoding.DecodeString(descB64)
	if err != nil || descB64 == "" {
		return nil, fmt.Errorf("buildkit: no image descriptor in the exporter response")
	}
	var desc ocispec.Descriptor
	if err := json.Unmarshal(descJSON, &desc); err != nil {
		return nil, fmt.Errorf("buildkit: image descriptor: %w", err)
	}
	if err := addToIndex(b.outAbs, desc, image); err != nil {
		return nil, fmt.Errorf("buildkit: updating index.json: %w", err)
	}
	steps, cached := tr.counts()
	res = &build.Result{
		Image:     image,
		Digest:    desc.Digest.String(),
		Config:    j.config,
		Processes: j.processes,
		Strategy:  plan.Strategy,
		Duration:  time.Since(start),
		Steps:     steps,
		Cached:    cached,
		Pushed:    b.cfg.Push,
	}
	tr.message("built %s %s in %.1fs (%d/%d steps cached)", image, res.Digest, res.Duration.Seconds(), cached, steps)
	return res, nil
}

// classify turns a solve error into the package's typed errors.
func (j *job) classify(ctx context.Context, tr *tracker, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("build of %s cancelled: %w", j.req.App, ctx.Err())
	}
	var pe *build.ProcfileError
	if errors.As(err, &pe) {
		return pe
	}
	if v := tr.failed(); v != nil {
		return &build.StepError{Step: v.name, Log: v.stepLog(), Err: err}
	}
	return fmt.Errorf("buildkit: %w", err)
}

// store returns a content store over an OCI layout directory, one per
// directory for the builder's lifetime.
func (b *Builder) store(dir string) (content.Store, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.stores[dir]; ok {
		return s, nil
	}
	s, err := openStackStore(dir)
	if err != nil {
		return nil, err
	}
	b.stores[dir] = s
	return s, nil
}

// job is one build in flight.
type job struct {
	b    *Builder
	req  build.Request
	plan *build.Plan

	stores   map[string]content.Store // OCI stores by store ID
	images   map[string]stackImage    // resolved layout images by store ID
	frontend map[string]string        // Dockerfile frontend attributes

	// set by run
	config    ocispec.Image
	processes []build.Process
}

// stackImage is a resolved stack image.
type stackImage struct {
	img      build.Image
	storeID  string
	manifest string // digest, for layouts
	config   []byte // for layouts
}

func (j *job) prepare() error {
	j.images = map[string]stackImage{}
	add := func(img build.Image) (stackImage, error) {
		if img.Layout == "" {
			return stackImage{img: img}, nil
		}
		li, err := readLayoutImage(img)
		if err != nil {
			return stackImage{}, err
		}
		id := "slipway-" + li.manifest.Encoded()[:16]
		st, err := j.b.store(img.Layout)
		if err != nil {
			return stackImage{}, err
		}
		j.stores[id] = st
		si := stackImage{img: img, storeID: id, manifest: li.manifest.String(), config: li.config}
		j.images[id] = si
		return si, nil
	}
	if j.plan.Strategy == build.StrategyDockerfile {
		j.frontend = map[string]string{"filename": "Dockerfile"}
		for _, a := range j.req.Args {
			j.frontend["build-arg:"+a.Name] = a.Value
		}
		for name, img := range j.b.cfg.DockerfileImages {
			si, err := add(img)
			if err != nil {
				return err
			}
			if si.storeID != "" {
				j.frontend["context:"+name] = "oci-layout://" + si.storeID + "@" + si.manifest
			} else {
				j.frontend["context:"+name] = "docker-image://" + img.Ref
			}
		}
		return nil
	}
	stack, ok := j.b.cfg.Stacks[j.plan.Stack]
	if !ok {
		return fmt.Errorf("buildkit: no stack %q configured for a %s build", j.plan.Stack, j.plan.Strategy)
	}
	if _, err := add(stack.Build); err != nil {
		return err
	}
	if _, err := add(stack.Run); err != nil {
		return err
	}
	return nil
}

// run is the gateway build function: it solves the Dockerfile frontend or
// the generated LLB, and sets the final image config.
func (j *job) run(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
	var (
		ref    gateway.Reference
		config []byte
	)
	if j.plan.Strategy == build.StrategyDockerfile {
		res, err := c.Solve(ctx, gateway.SolveRequest{Frontend: "dockerfile.v0", FrontendOpt: maps.Clone(j.frontend)})
		if err != nil {
			return nil, err
		}
		ref, config, err = singleRef(res)
		if err != nil {
			return nil, err
		}
	} else {
		def, cfg, err := j.llb(ctx, c)
		if err != nil {
			return nil, err
		}
		res, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		if ref, err = res.SingleRef(); err != nil {
			return nil, err
		}
		config = cfg
	}
	config, err := j.finishConfig(config)
	if err != nil {
		return nil, err
	}
	out := gateway.NewResult()
	out.SetRef(ref)
	out.AddMeta(exptypes.ExporterImageConfigKey, config)
	return out, nil
}

// singleRef returns the one image of a frontend result and its config.
func singleRef(res *gateway.Result) (gateway.Reference, []byte, error) {
	if res.Ref != nil {
		return res.Ref, res.Metadata[exptypes.ExporterImageConfigKey], nil
	}
	if len(res.Refs) != 1 {
		return nil, nil, fmt.Errorf("buildkit: the Dockerfile produced %d images, want 1", len(res.Refs))
	}
	for id, r := range res.Refs {
		return r, res.Metadata[exptypes.ExporterImageConfigKey+"/"+id], nil
	}
	panic("unreachable")
}

// finishConfig adds the process types to the image config (keeping every
// field it does not know) and records the config and process types.
func (j *job) finishConfig(config []byte) ([]byte, error) {
	var raw map[string]any
	if len(config) == 0 {
		config = []byte("{}")
	}
	if err := json.Unmarshal(config, &raw); err != nil {
		return nil, fmt.Errorf("buildkit: image config: %w", err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(config, &img); err != nil {
		return nil, fmt.Errorf("buildkit: image config: %w", err)
	}
	procs := j.plan.Processes
	if len(procs) == 0 {
		if cmd := commandOf(img.Config); cmd != "" {
			procs = []build.Process{{Type: "web", Command: cmd}}
		}
	}
	if len(procs) == 0 {
		return nil, &build.ProcfileError{Err: errors.New("no Procfile, and the image has no CMD or ENTRYPOINT to run as web")}
	}
	label := build.ProcessTypesJSON(procs)
	cfg, _ := raw["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
		raw["config"] = cfg
	}
	labels, _ := cfg["Labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
		cfg["Labels"] = labels
	}
	labels[build.ProcessTypesLabel] = label
	out, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	if img.Config.Labels == nil {
		img.Config.Labels = map[string]string{}
	}
	img.Config.Labels[build.ProcessTypesLabel] = label
	j.config = img
	j.processes = procs
	return out, nil
}

// commandOf renders an image's ENTRYPOINT and CMD as one shell command.
func commandOf(c ocispec.ImageConfig) string {
	args := append(append([]string(nil), c.Entrypoint...), c.Cmd...)
	if len(args) == 3 && (args[0] == "/bin/sh" || args[0] == "sh") && args[1] == "-c" {
		return args[2]
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
