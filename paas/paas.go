package paas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/scale"
)

// Errors callers branch on. Errors of the parts (release.ErrAppNotFound,
// build.ErrNoBuildStrategy, ...) come through wrapped, unchanged in identity.
var (
	ErrNoBuilder      = errors.New("paas: no builder configured")
	ErrUnknownService = errors.New("paas: unknown add-on service")
	ErrNoAddon        = errors.New("paas: no such add-on attachment")
	ErrNotDeployed    = errors.New("paas: app has no deployed release")
	ErrInvalidConfig  = errors.New("paas: invalid platform config")
)

// Config wires a Platform. Store and Scheduler are required; every other
// zero value has a documented default.
type Config struct {
	// Store keeps apps, releases and the deploy journal. Required.
	Store release.Store
	// Scheduler runs instances. Required.
	Scheduler scale.Scheduler
	// Builder builds source into images. If nil, Deploy returns
	// ErrNoBuilder; DeployImage still works.
	Builder build.Builder
	// Router routes apps' hosts to their web instances. If nil, instances
	// run unrouted (the release manager still health-gates them).
	Router Router
	// Addons are the add-on provisioners by service name ("postgres",
	// "redis"). If nil, the platform offers no add-ons.
	Addons map[string]addons.Provisioner
	// Domains keeps apps' custom domains. If nil, they are kept in memory
	// and lost on restart.
	Domains DomainStore
	// BaseDomain, if not empty, gives every app the host <app>.<BaseDomain>
	// besides its custom domains, as Dokku's global domain does.
	BaseDomain string
	// Logs, if not nil, is where Logs reads from: wire the scheduler's log
	// sink, RouterLogHook and the release output to it, so one stream holds
	// the app's, the router's and the platform's lines. If nil, Logs reads
	// the scheduler's logs only.
	Logs *observe.LogBuffer
	// Release tunes the release manager. Its Store, Scheduler and Traffic
	// are set by the Platform; Logger and Events default to the Platform's.
	Release release.ManagerConfig
	// SyncInterval is how often the router's backends are brought in step
	// with the scheduler's healthy instances. Zero means one second;
	// negative turns syncing off.
	SyncInterval time.Duration
	// Logger receives the platform's diagnostics. Nil means silent.
	Logger *slog.Logger
	// Events receives platform events. Nil means none.
	Events observe.EventSink
}

// Validate reports a configuration a Platform cannot run with.
func (c Config) Validate() error {
	if c.Store == nil {
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	}
	if c.Scheduler == nil {
		return fmt.Errorf("%w: Scheduler is required", ErrInvalidConfig)
	}
	for name, p := range c.Addons {
		if p == nil {
			return fmt.Errorf("%w: add-on service %q has no provisioner", ErrInvalidConfig, name)
		}
	}
	return nil
}

// Platform is a PaaS control plane built from Slipway's parts. Create it
// with New, call Recover once, and Close it when done. Its methods are safe
// for concurrent use; deploys of one app are serialized (a second one gets
// release.ErrDeployInProgress).
type Platform struct {
	cfg     Config
	mgr     *release.Manager
	traffic *traffic
	domains DomainStore
	log     *slog.Logger

	building sync.Map // app name → *sync.Mutex held while its source builds

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a Platform wired from cfg. It starts the router sync loop,
// which Close stops.
func New(cfg Config) (*Platform, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Platform{cfg: cfg, domains: cfg.Domains, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.domains == nil {
		p.domains = NewMemDomains()
	}
	mc := cfg.Release
	mc.Store, mc.Scheduler = cfg.Store, cfg.Scheduler
	if cfg.Router != nil {
		p.traffic = &traffic{router: cfg.Router, sched: cfg.Scheduler, routed: map[string]*routeState{}, log: p.log}
		mc.Traffic = p.traffic
	}
	if mc.Logger == nil {
		mc.Logger = cfg.Logger
	}
	if mc.Events == nil {
		mc.Events = cfg.Events
	}
	mgr, err := release.NewManager(mc)
	if err != nil {
		return nil, err
	}
	p.mgr = mgr
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	if p.traffic != nil && cfg.SyncInterval >= 0 {
		every := cfg.SyncInterval
		if every == 0 {
			every = time.Second
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.traffic.loop(ctx, every)
		}()
	}
	return p, nil
}

// Close stops the Platform's own goroutines, the release manager's
// background watches included (see release.Manager.Close). It stops
// neither instances nor the parts it was given: their owner closes them.
func (p *Platform) Close() error {
	p.stop()
	p.wg.Wait()
	return p.mgr.Close()
}

// Manager returns the release manager the Platform drives, for what the
// facade does not cover.
func (p *Platform) Manager() *release.Manager { return p.mgr }

// Recover brings the platform back after its control plane restarted: the
// scheduler re-attaches to its instances, unfinished deploys are finished
// or undone, and every app's hosts and current web instances are routed
// again. Call it once, after New and before serving requests.
func (p *Platform) Recover(ctx context.Context) (release.RecoverReport, error) {
	if _, err := p.cfg.Scheduler.Recover(ctx); err != nil {
		return release.RecoverReport{}, fmt.Errorf("paas: scheduler recover: %w", err)
	}
	rep, err := p.mgr.Recover(ctx)
	if err != nil {
		return rep, fmt.Errorf("paas: release recover: %w", err)
	}
	apps, err := p.cfg.Store.Apps(ctx)
	if err != nil {
		return rep, err
	}
	for _, a := range apps {
		if a.Current == 0 {
			if err := p.routeHosts(ctx, a.Name); err != nil {
				return rep, err
			}
			continue
		}
		// Apply is idempotent: instances the scheduler re-attached to
		// stay; those missing (stopped by StopAll, lost with the machine)
		// start again.
		cur, err := p.cfg.Store.Release(ctx, a.Name, a.Current)
		if err != nil {
			return rep, err
		}
		if err := p.cfg.Scheduler.Apply(ctx, a.FormationFor(cur)); err != nil {
			return rep, fmt.Errorf("paas: restore %s: %w", cur, err)
		}
		if err := p.routeHosts(ctx, a.Name); err != nil {
			return rep, err
		}
		if p.traffic != nil {
			p.traffic.adopt(ctx, a.Name, a.Current)
		}
	}
	return rep, nil
}

// StopAll stops every instance of every app, keeping the apps, their
// releases and formations: the next Recover starts them again. It is how a
// single-machine platform shuts down without leaving processes behind.
func (p *Platform) StopAll(ctx context.Context) error {
	apps, err := p.cfg.Store.Apps(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range apps {
		// A watch would take the stop for a crash and roll back.
		if err := p.mgr.EndWatch(ctx, a.Name); err != nil {
			return err
		}
		if p.traffic != nil {
			p.traffic.forget(a.Name)
		}
		if err := p.cfg.Scheduler.StopApp(ctx, a.Name); err != nil {
			errs = append(errs, fmt.Errorf("paas: stop %s: %w", a.Name, err))
		}
	}
	return errors.Join(errs...)
}

// CreateApp creates an app with no release, and routes its hosts.
func (p *Platform) CreateApp(ctx context.Context, name string) error {
	if err := p.mgr.CreateApp(ctx, name); err != nil {
		return err
	}
	return p.routeHosts(ctx, name)
}

// Apps lists the apps.
func (p *Platform) Apps(ctx context.Context) ([]release.App, error) { return p.cfg.Store.Apps(ctx) }

// App returns one app.
func (p *Platform) App(ctx context.Context, name string) (release.App, error) {
	return p.cfg.Store.App(ctx, name)
}

// DestroyApp stops every instance of the app, removes its routes,
// deprovisions its add-ons and deletes it with its releases. It is the one
// operation that loses data, as `apps:destroy` does.
func (p *Platform) DestroyApp(ctx context.Context, name string) error {
	a, err := p.cfg.Store.App(ctx, name)
	if err != nil {
		return err
	}
	if err := p.mgr.EndWatch(ctx, name); err != nil {
		return err
	}
	if p.cfg.Router != nil {
		p.traffic.forget(name)
		if err := p.cfg.Router.RemoveApp(ctx, name); err != nil {
			return fmt.Errorf("paas: unroute %s: %w", name, err)
		}
	}
	if err := p.cfg.Scheduler.StopApp(ctx, name); err != nil {
		return fmt.Errorf("paas: stop %s: %w", name, err)
	}
	if a.Latest > 0 {
		latest, err := p.cfg.Store.Release(ctx, name, a.Latest)
		if err != nil {
			return err
		}
		for _, at := range latest.Attachments {
			if prov, ok := p.cfg.Addons[at.Provider]; ok {
				if err := prov.Deprovision(ctx, at.Resource); err != nil && !errors.Is(err, addons.ErrNotFound) {
					return fmt.Errorf("paas: deprovision %s of %s: %w", at.Name, name, err)
				}
			}
		}
	}
	if err := p.domains.SetDomains(ctx, name, nil); err != nil {
		return err
	}
	if p.cfg.Logs != nil {
		p.cfg.Logs.Forget(name)
	}
	p.building.Delete(name)
	return p.cfg.Store.DeleteApp(ctx, name)
}

// DeployOptions apply to one deploy.
type DeployOptions struct {
	// Output receives the build's progress and the release phase's output
	// as they come, line by line. Nil discards them.
	Output io.Writer
	// Description names the release ("Deploy 3f2a1c"); empty means one
	// made from the image digest.
	Description string
	// BuildArgs are passed to the build.
	BuildArgs []build.Arg
	// SkipReleasePhase deploys without running the release phase.
	SkipReleasePhase bool
}

// Deploy builds src and deploys the image as a new release. It returns the
// release once it serves; a build failure, a failed release phase or
// unhealthy instances leave the current release serving and return an
// error saying which.
func (p *Platform) Deploy(ctx context.Context, app string, src build.Source, o DeployOptions) (release.Release, error) {
	if p.cfg.Builder == nil {
		return release.Release{}, ErrNoBuilder
	}
	if _, err := p.cfg.Store.App(ctx, app); err != nil {
		return release.Release{}, err
	}
	// The release manager serializes deploys, but only once the image is
	// built: refuse a second deploy of the app now, not after its build.
	l, _ := p.building.LoadOrStore(app, new(sync.Mutex))
	if !l.(*sync.Mutex).TryLock() {
		return release.Release{}, fmt.Errorf("paas: %w: %s is being built and deployed", release.ErrDeployInProgress, app)
	}
	defer l.(*sync.Mutex).Unlock()
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "-----> Building %s\n", app)
	res, err := p.cfg.Builder.Build(ctx, build.Request{App: app, Source: src, Args: o.BuildArgs, ProgressWriter: out})
	if err != nil {
		return release.Release{}, fmt.Errorf("paas: build %s: %w", app, err)
	}
	fmt.Fprintf(out, "-----> Built %s (%s strategy, %d of %d steps cached, %s)\n", shortDigest(res.Digest), res.Strategy, res.Cached, res.Steps, res.Duration.Round(time.Millisecond))
	procs := make(map[string]string, len(res.Processes))
	for _, pr := range res.Processes {
		procs[pr.Type] = pr.Command
	}
	return p.DeployImage(ctx, app, release.Build{
		Image:       scale.Image{Ref: res.Image, Digest: res.Digest},
		Processes:   procs,
		Description: o.Description,
	}, o)
}

// DeployImage deploys an already built image as a new release.
func (p *Platform) DeployImage(ctx context.Context, app string, b release.Build, o DeployOptions) (release.Release, error) {
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	if _, ok := b.Processes[release.ReleaseProcessType]; ok && !o.SkipReleasePhase {
		fmt.Fprintf(out, "-----> Running release phase: %s\n", b.Processes[release.ReleaseProcessType])
	}
	r, err := p.mgr.Deploy(ctx, app, b, release.DeployOptions{Output: out, SkipReleasePhase: o.SkipReleasePhase})
	if err != nil {
		return r, err
	}
	fmt.Fprintf(out, "-----> Released v%d\n", r.Version)
	return r, nil
}

func shortDigest(d string) string {
	const prefix = len("sha256:")
	if len(d) >= prefix+12 {
		return d[prefix : prefix+12]
	}
	return d
}

// Config returns the app's config vars: those of its latest release. The
// values are secrets; handle them as such.
func (p *Platform) Config(ctx context.Context, app string) (map[string]string, error) {
	a, err := p.cfg.Store.App(ctx, app)
	if err != nil {
		return nil, err
	}
	if a.Latest == 0 {
		return map[string]string{}, nil
	}
	r, err := p.cfg.Store.Release(ctx, app, a.Latest)
	if err != nil {
		return nil, err
	}
	return r.Config.Map(), nil
}

// SetConfig sets and unsets config vars in one new release, and deploys it
// when the app has an image, with the release phase as on Heroku.
func (p *Platform) SetConfig(ctx context.Context, app string, set map[string]string, unset []string, out io.Writer) (release.Release, error) {
	return p.mgr.SetConfig(ctx, app, release.ConfigChange{Set: set, Unset: unset}, release.DeployOptions{Output: out})
}

// Scale sets how many instances of each process type run, and applies it to
// the current release.
func (p *Platform) Scale(ctx context.Context, app string, counts map[string]int) error {
	a, err := p.cfg.Store.App(ctx, app)
	if err != nil {
		return err
	}
	procs := make([]release.ProcessScale, 0, len(counts))
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		ps := a.Scale(t)
		ps.Count = counts[t]
		procs = append(procs, ps)
	}
	// The manager routes new web instances once healthy and takes those
	// that go out of the route first.
	return p.mgr.Scale(ctx, app, procs...)
}

// Releases lists the app's releases, newest first, at most limit (0: all).
func (p *Platform) Releases(ctx context.Context, app string, limit int) ([]release.Release, error) {
	return p.cfg.Store.Releases(ctx, app, limit)
}

// Rollback makes a new release copying version's image and config, and
// deploys it.
func (p *Platform) Rollback(ctx context.Context, app string, version int, out io.Writer) (release.Release, error) {
	return p.mgr.Rollback(ctx, app, version, release.DeployOptions{Output: out})
}

// Instances lists the app's instances, of every release.
func (p *Platform) Instances(ctx context.Context, app string) ([]scale.Instance, error) {
	if _, err := p.cfg.Store.App(ctx, app); err != nil {
		return nil, err
	}
	return p.cfg.Scheduler.Instances(ctx, scale.Query{App: app})
}

// RunOptions configure a one-off.
type RunOptions struct {
	Stdout, Stderr io.Writer
	Timeout        time.Duration // zero: no limit beyond ctx
	Detached       bool
}

// Run runs command once with the app's current release: its image and
// config, as `heroku run` does. For an attached one-off the result holds
// the exit status.
func (p *Platform) Run(ctx context.Context, app, command string, o RunOptions) (scale.OneOffResult, error) {
	r, err := p.current(ctx, app)
	if err != nil {
		return scale.OneOffResult{}, err
	}
	return p.cfg.Scheduler.Run(ctx, scale.OneOff{
		App: app, Release: r.Version, Image: r.Image, Env: r.Config.Map(), Command: command, Type: "run",
		Stdout: o.Stdout, Stderr: o.Stderr, Timeout: o.Timeout, Detached: o.Detached,
	})
}

func (p *Platform) current(ctx context.Context, app string) (release.Release, error) {
	a, err := p.cfg.Store.App(ctx, app)
	if err != nil {
		return release.Release{}, err
	}
	if a.Current == 0 {
		return release.Release{}, fmt.Errorf("%w: %s", ErrNotDeployed, app)
	}
	return p.cfg.Store.Release(ctx, app, a.Current)
}

// LogOptions select log lines.
type LogOptions struct {
	ProcessType string // only this process type's app lines
	Source      string // only lines of this source (observe.SourceApp, ...)
	Tail        int    // at most this many recent lines; 0: all kept
	Follow      bool   // go on with new lines until ctx ends
}

// Logs writes the app's recent log lines to fn, oldest first, and with
// o.Follow goes on until ctx ends or fn fails.
func (p *Platform) Logs(ctx context.Context, app string, o LogOptions, fn func(observe.LogLine) error) error {
	if _, err := p.cfg.Store.App(ctx, app); err != nil {
		return err
	}
	if p.cfg.Logs == nil {
		return p.cfg.Scheduler.Logs(ctx, scale.LogQuery{App: app, ProcessType: o.ProcessType, Tail: o.Tail, Follow: o.Follow},
			func(l observe.LogLine) error {
				if o.Source != "" && l.Source != o.Source {
					return nil
				}
				return fn(l)
			})
	}
	match := func(l observe.LogLine) bool {
		return (o.Source == "" || l.Source == o.Source) && (o.ProcessType == "" || l.ProcessType == o.ProcessType)
	}
	if !o.Follow {
		for _, l := range p.cfg.Logs.Tail(app, o.Tail, match) {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	}
	return p.cfg.Logs.Follow(ctx, app, o.Tail, match, fn)
}
