package release

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/scale"
)

// Scheduler is what the Manager needs of a scheduler; scale.Scheduler
// satisfies it. The Manager relies on Apply and StopRelease being
// idempotent, and on Apply leaving other releases' instances alone.
type Scheduler interface {
	Apply(ctx context.Context, f scale.Formation) error
	StopRelease(ctx context.Context, app string, release int) error
	Run(ctx context.Context, o scale.OneOff) (scale.OneOffResult, error)
	Instances(ctx context.Context, q scale.Query) ([]scale.Instance, error)
}

var _ Scheduler = scale.Scheduler(nil)

// Traffic is what the Manager needs of the router.
type Traffic interface {
	// SetRoute atomically replaces the app's web backends with r.Backends
	// (all instances of release r.Release; none means the app has no web
	// process). New requests go only to the new backends at once; SetRoute
	// returns once the requests in flight to backends it removed have
	// finished, or ctx ends. Setting the same route twice is a no-op.
	SetRoute(ctx context.Context, r Route) error
}

// Route is the set of web backends of one app.
type Route struct {
	App      string
	Release  int
	Backends []Backend // sorted by ID
}

// Backend is one web instance in a Route.
type Backend struct {
	ID   string // the scheduler's instance id
	Addr string // host:port
}

// HealthCheck says when a new instance counts as healthy. The zero value
// waits for the scheduler's own check only, polling every 250 ms for up to
// 30 s.
type HealthCheck struct {
	// Path, if not empty, is fetched with GET on every new web instance
	// once the scheduler says it is healthy; a 2xx or 3xx answer passes.
	Path string
	// Interval between polls; zero means 250 ms (Dokku waits 10 s).
	Interval time.Duration
	// Attempts is how many polls may fail before the deploy gives up; zero
	// means 120 (30 s at the default interval).
	Attempts int
	// Timeout of one HTTP check; zero means 2 s.
	Timeout time.Duration
	// Client makes the HTTP checks; nil means a client of the Manager's own
	// that does not follow redirects.
	Client *http.Client
}

// Defaults of ManagerConfig's zero values.
const (
	DefaultLeaseTTL       = 30 * time.Second
	DefaultReleaseTimeout = time.Hour
	DefaultWatchWindow    = 30 * time.Second
	DefaultOutputTail     = 4 << 10
)

// ManagerConfig configures a Manager. Store and Scheduler are required.
type ManagerConfig struct {
	Store     Store
	Scheduler Scheduler
	// Traffic switches the router; nil means there is no router to switch
	// (web instances are still health-gated).
	Traffic Traffic
	// Owner names this control plane in deploy leases. It must differ
	// between control planes running at once; a control plane that keeps
	// its Owner across restarts takes its leases back at once in Recover
	// instead of waiting for them to expire. Empty means a random id.
	Owner string
	// LeaseTTL is how long a deploy lease lasts without renewal (it is
	// renewed every third of it while deploying); zero means 30 s.
	LeaseTTL time.Duration
	// ReleaseTimeout bounds the release phase; zero means 1 h.
	ReleaseTimeout time.Duration
	Health         HealthCheck
	// RetireWait is how long old instances keep running after traffic left
	// them and their requests drained, before they are stopped (Dokku's
	// WAIT_TO_RETIRE); zero means no extra wait.
	RetireWait time.Duration
	// WatchWindow is how long new instances are watched after the switch;
	// if they turn unhealthy meanwhile the Manager rolls back by itself.
	// Zero means 30 s; negative turns the watch off. The deploy (and its
	// lease) lasts until the window ends; unless WatchInBackground is set,
	// so does the call that deploys.
	WatchWindow time.Duration
	// WatchInBackground makes Deploy, SetConfig and Rollback return once
	// the new release serves (traffic switched, old instances retired),
	// with the release and a nil error, as Heroku and Dokku do. The watch
	// goes on in a goroutine of the Manager that keeps the app's lease
	// and journals every step as a foreground deploy does; an automatic
	// rollback it makes is only reported through the releases' statuses,
	// Logger and Events (EventDeployFailed for the watched release,
	// EventRollback, then the rollback's own EventDeploySucceeded or
	// EventDeployFailed).
	//
	// The app's next change through this Manager (Deploy, SetConfig,
	// Rollback, Scale) or EndWatch first ends the watch: its release counts
	// as deployed, since only the newest release is watched. Another
	// Manager sharing the Store gets ErrDeployInProgress until the watch
	// ends, as during any deploy. Wait waits for the watches to end by
	// themselves; Close ends them (see Close).
	WatchInBackground bool
	// UnhealthyPolls is how many polls in a row must find a new instance
	// unhealthy during the watch to roll back; zero means 3.
	UnhealthyPolls int
	// SkipReleasePhaseOnRollback turns the release phase off for
	// rollbacks; by default a rollback runs it, as any deploy does.
	SkipReleasePhaseOnRollback bool
	// OutputTail is how many trailing bytes of the release phase's output
	// are kept for the failure reason; zero means 4 KiB. The rest only
	// streams through to the caller's writer.
	OutputTail int
	Logger     *slog.Logger      // nil: silent
	Events     observe.EventSink // nil: none
	// Logs, if not nil, receives the release phase's output line by line
	// (Source observe.SourceRelease; lines longer than 4 KiB are split).
	Logs observe.LogSink
	// OnStep is called after every journal write, also from background
	// watches (so from several goroutines at once); nil: none.
	OnStep func(d Deploy)
	Now    func() time.Time // nil: time.Now
}

// Manager creates and deploys releases. It is safe for concurrent use;
// deploys of one app are serialized by a lease in the Store, so several
// Managers (control planes) can share a Store. With
// ManagerConfig.WatchInBackground it runs goroutines: Close it when done.
type Manager struct {
	cfg    ManagerConfig
	store  Store
	sched  Scheduler
	log    *slog.Logger
	client *http.Client

	// base is the parent of background watches' contexts; Close ends it.
	base     context.Context
	endBase  context.CancelCauseFunc
	watchers sync.WaitGroup

	mu      sync.Mutex
	busy    map[string]bool     // apps whose lease a call of this Manager holds
	watches map[string]*watcher // apps whose lease a background watch holds
	closed  bool
}

// watcher is a background watch of one app's deploy.
type watcher struct {
	end  context.CancelCauseFunc // ends the watch step; the cause says why
	done chan struct{}           // closed once the lease is given back
}

// errMovedOn ends a background watch because the app changes again: the
// watched release counts as deployed.
var errMovedOn = errors.New("release: the app changed again before the watch ended")

// errManagerClosed ends background watches at Close.
var errManagerClosed = errors.New("release: manager closed")

// NewManager checks cfg and returns a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Store == nil || cfg.Scheduler == nil {
		return nil, fmt.Errorf("%w: ManagerConfig needs a Store and a Scheduler", ErrInvalid)
	}
	if cfg.Owner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = "cp-" + hex.EncodeToString(b[:])
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.ReleaseTimeout <= 0 {
		cfg.ReleaseTimeout = DefaultReleaseTimeout
	}
	if cfg.WatchWindow == 0 {
		cfg.WatchWindow = DefaultWatchWindow
	}
	if cfg.UnhealthyPolls <= 0 {
		cfg.UnhealthyPolls = 3
	}
	if cfg.OutputTail <= 0 {
		cfg.OutputTail = DefaultOutputTail
	}
	h := &cfg.Health
	if h.Interval <= 0 {
		h.Interval = 250 * time.Millisecond
	}
	if h.Attempts <= 0 {
		h.Attempts = 120
	}
	if h.Timeout <= 0 {
		h.Timeout = 2 * time.Second
	}
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		return nil, fmt.Errorf("%w: health check path %q must start with /", ErrInvalid, h.Path)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, store: cfg.Store, sched: cfg.Scheduler, log: cfg.Logger, client: h.Client,
		busy: map[string]bool{}, watches: map[string]*watcher{}}
	m.base, m.endBase = context.WithCancelCause(context.Background())
	if m.log == nil {
		m.log = slog.New(discardHandler{})
	}
	if m.client == nil {
		m.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return m, nil
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

// Owner returns the id this Manager takes leases with.
func (m *Manager) Owner() string { return m.cfg.Owner }

// CreateApp creates an app with no release.
func (m *Manager) CreateApp(ctx context.Context, name string) error {
	return m.store.CreateApp(ctx, App{Name: name})
}

// Build is what a build produced.
type Build struct {
	Image scale.Image
	// Processes maps process types to commands (the Procfile); a
	// "release" entry is the release phase.
	Processes   map[string]string
	Description string // "Deploy 3f2a1c"; empty means "Deploy <digest>"
}

// DeployOptions apply to one deploy.
type DeployOptions struct {
	// Output receives the release phase's stdout and stderr as they come;
	// nil discards them. It must not block for long.
	Output io.Writer
	// SkipReleasePhase deploys without running the release phase.
	SkipReleasePhase bool
}

// ConfigChange changes config vars and add-on attachments. The app's
// config is always its latest release's, whatever that release's status:
// a config change sticks even when the release it made failed to deploy,
// as on Heroku; a rollback brings the copied release's config back. Set is applied
// before Unset. Attachments replace those of the same name; Detach removes
// attachments by name, with the config vars they provided.
type ConfigChange struct {
	Set         map[string]string
	Unset       []string
	Attach      []Attachment
	Detach      []string
	Description string // empty: "Set A, B config vars" and the like
}

// Deploy makes a release of b with the app's latest config and deploys it.
// It returns the release once it serves and its watch ended, or a
// *DeployError when it never took over or was rolled back (the release is
// then failed, and the previous one serves). With
// ManagerConfig.WatchInBackground it returns as soon as the release
// serves, and a later rollback is only reported as events.
// ErrAppNotFound; ErrDeployInProgress while another deploy of the app runs
// (here or in another control plane; a background watch of this Manager
// is ended instead, see WatchInBackground).
//
// When ctx ends mid-deploy, Deploy returns ctx's error and the journal
// keeps the deploy where it was: the app's next change, or Recover,
// finishes it (resuming it, or aborting it if it was in the release phase).
func (m *Manager) Deploy(ctx context.Context, app string, b Build, o DeployOptions) (Release, error) {
	if b.Image.Digest == "" && b.Image.Ref == "" {
		return Release{}, fmt.Errorf("%w: build has no image", ErrInvalid)
	}
	return m.change(ctx, app, o, func(cur, latest Release) (Release, error) {
		desc := b.Description
		if desc == "" {
			desc = "Deploy " + shortDigest(b.Image)
		}
		return Release{Image: b.Image, Processes: b.Processes, Config: latest.Config, Attachments: latest.Attachments,
			Cause: CauseBuild, Description: desc}, nil
	})
}

// SetConfig makes a release with the change applied to the app's latest
// config, on the current release's image, and deploys it. The new config
// and the release are stored in one Commit: there is no moment where half
// of it applies. Errors as Deploy, plus *ConfigError before anything is
// stored.
func (m *Manager) SetConfig(ctx context.Context, app string, c ConfigChange, o DeployOptions) (Release, error) {
	return m.change(ctx, app, o, func(cur, latest Release) (Release, error) {
		cfg := latest.Config
		atts := append([]Attachment(nil), latest.Attachments...)
		var unset []string
		unset = append(unset, c.Unset...)
		for _, name := range c.Detach {
			for i := 0; i < len(atts); i++ {
				if atts[i].Name == name {
					unset = append(unset, atts[i].Vars...)
					atts = append(atts[:i], atts[i+1:]...)
					i--
				}
			}
		}
		for _, a := range c.Attach {
			for i := 0; i < len(atts); i++ {
				if atts[i].Name == a.Name {
					atts = append(atts[:i], atts[i+1:]...)
					i--
				}
			}
			atts = append(atts, a)
		}
		cfg, err := cfg.With(c.Set, unset)
		if err != nil {
			return Release{}, err
		}
		cause, desc := CauseConfig, c.Description
		if len(c.Attach)+len(c.Detach) > 0 {
			cause = CauseAddon
		}
		if desc == "" {
			desc = describeConfig(c)
		}
		return Release{Image: cur.Image, Processes: cur.Processes, Config: cfg, Attachments: atts, Cause: cause, Description: desc}, nil
	})
}

// Rollback makes a release that copies version's image, process types,
// config and attachments, and deploys it (Heroku's rule: a rollback is a
// new release). ErrRollbackToFailed for a failed release, ErrNotRunnable
// for one without an image, ErrReleaseNotFound.
func (m *Manager) Rollback(ctx context.Context, app string, version int, o DeployOptions) (Release, error) {
	if m.cfg.SkipReleasePhaseOnRollback {
		o.SkipReleasePhase = true
	}
	return m.change(ctx, app, o, func(cur, latest Release) (Release, error) {
		target, err := m.store.Release(ctx, app, version)
		if err != nil {
			return Release{}, err
		}
		return rollbackOf(target)
	})
}

func rollbackOf(target Release) (Release, error) {
	if target.Status == StatusFailed {
		return Release{}, fmt.Errorf("%w: %s (%s)", ErrRollbackToFailed, target, target.FailureReason)
	}
	if !target.Runnable() {
		return Release{}, fmt.Errorf("%w: %s", ErrNotRunnable, target)
	}
	return Release{Image: target.Image, Processes: target.Processes, Config: target.Config, Attachments: target.Attachments,
		Cause: CauseRollback, RollbackOf: target.Version, Description: fmt.Sprintf("Rollback to v%d", target.Version)}, nil
}

// Scale sets the scale of process types and applies it to the current
// release. Types not named keep their scale.
func (m *Manager) Scale(ctx context.Context, app string, procs ...ProcessScale) error {
	for _, p := range procs {
		if p.Count < 0 || p.Count > scale.MaxInstancesPerType {
			return fmt.Errorf("%w: %s count %d is outside 0..%d", ErrInvalid, p.Type, p.Count, scale.MaxInstancesPerType)
		}
		if p.Singleton && p.Count > 1 {
			return fmt.Errorf("%w: singleton %s cannot run %d instances", ErrInvalid, p.Type, p.Count)
		}
		if p.Type == ReleaseProcessType {
			return fmt.Errorf("%w: the release process type is not scaled", ErrInvalid)
		}
	}
	return m.withLease(ctx, app, func(ctx context.Context, l Lease) error {
		a, err := m.store.App(ctx, app)
		if err != nil {
			return err
		}
		form := append([]ProcessScale(nil), a.Formation...)
		for _, p := range procs {
			replaced := false
			for i := range form {
				if form[i].Type == p.Type {
					form[i], replaced = p, true
				}
			}
			if !replaced {
				form = append(form, p)
			}
		}
		if _, err := m.store.Commit(ctx, app, l, Change{Formation: &form}); err != nil {
			return err
		}
		if a.Current == 0 {
			return nil
		}
		cur, err := m.store.Release(ctx, app, a.Current)
		if err != nil || !cur.Runnable() {
			return err
		}
		oldWeb := a.Scale("web").Count
		a.Formation = form
		newWeb := a.Scale("web").Count
		routed := m.cfg.Traffic != nil && hasProcess(cur, "web")
		if routed && newWeb < oldWeb {
			// Take the instances that go out of the route (and let their
			// requests drain) before they are stopped.
			if _, err := m.routeWhere(ctx, a, cur, func(in scale.Instance) bool { return in.Index <= newWeb }); err != nil {
				return err
			}
		}
		if err := m.sched.Apply(ctx, a.FormationFor(cur)); err != nil {
			return err
		}
		if routed && newWeb > oldWeb {
			// New instances join the route once healthy.
			if res, err := m.waitHealthy(ctx, a, cur); err != nil {
				return err
			} else if !res.OK {
				m.log.Warn("scaled instances are not all healthy", "app", app, "reason", res.Reason)
			}
			if _, err := m.routeWhere(ctx, a, cur, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func hasProcess(r Release, t string) bool {
	_, ok := r.Processes[t]
	return ok
}

// withLease runs fn holding the app's deploy lease, renewed meanwhile.
// Before fn, it ends a background watch of the app (see
// ManagerConfig.WatchInBackground) and finishes a deploy the journal shows
// unfinished (one whose control plane died).
func (m *Manager) withLease(ctx context.Context, app string, fn func(ctx context.Context, l Lease) error) error {
	return m.leased(ctx, app, false, func(ctx context.Context, l Lease) (*Deploy, error) { return nil, fn(ctx, l) })
}

// leased is withLease for deploys: when fn returns a journal at StepWatch,
// the lease goes to a background watch of it instead of being given back.
// recovering is Recover's call: it leaves background watches alone and
// resumes an unfinished watch in the foreground.
func (m *Manager) leased(ctx context.Context, app string, recovering bool, fn func(ctx context.Context, l Lease) (*Deploy, error)) error {
	if err := m.claim(ctx, app, !recovering); err != nil {
		return err
	}
	handedOff := false
	defer func() {
		if !handedOff {
			m.mu.Lock()
			delete(m.busy, app)
			m.mu.Unlock()
		}
	}()
	l, err := m.store.AcquireLease(ctx, app, m.cfg.Owner, m.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stopRenew := m.renewing(ctx, l, cancel)
	defer func() {
		stopRenew()
		cancel(nil)
		if handedOff {
			return
		}
		m.giveBack(context.WithoutCancel(ctx), l)
	}()
	if d, ok, err := m.store.Deploy(ctx, app); err != nil {
		return err
	} else if ok && !d.Finished() {
		m.log.Info("finishing an interrupted deploy", "app", app, "release", d.Release, "step", d.Step)
		// A change made with background watches does not wait for the
		// watch of an older release either: it counts as deployed.
		moveOn := m.cfg.WatchInBackground && !recovering
		d, err := m.drive(ctx, l, RecoverStep(d, m.cfg.Now()), nil, moveOn)
		if err == nil && d.Step == StepWatch {
			_, err = m.advance(ctx, l, d, StepResult{OK: true})
		}
		if err != nil {
			return leaseCause(ctx, err)
		}
	}
	watch, err := fn(ctx, l)
	if err != nil || watch == nil {
		return leaseCause(ctx, err)
	}
	handedOff = m.watchInBackground(l, *watch)
	return nil
}

// claim marks app busy in this Manager. A background watch of the app ends
// first when moveOn is set; otherwise it makes the app busy.
func (m *Manager) claim(ctx context.Context, app string, moveOn bool) error {
	for {
		m.mu.Lock()
		w := m.watches[app]
		if w == nil {
			if m.busy[app] {
				m.mu.Unlock()
				return &LeaseError{App: app, Owner: m.cfg.Owner}
			}
			m.busy[app] = true
			m.mu.Unlock()
			return nil
		}
		m.mu.Unlock()
		if !moveOn {
			return &LeaseError{App: app, Owner: m.cfg.Owner}
		}
		if err := m.endWatch(ctx, w); err != nil {
			return err
		}
	}
}

func (m *Manager) endWatch(ctx context.Context, w *watcher) error {
	w.end(errMovedOn)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EndWatch ends the app's background watch, if this Manager runs one,
// as the app's next change would: the watched release counts as deployed.
// It returns once the journal says so and the lease is given back; when
// the watch had found the release unhealthy, once the automatic rollback
// is done. Call it before acting on the app's instances without the
// Manager (stopping them all, deleting the app), which the watch would
// take for a crash.
func (m *Manager) EndWatch(ctx context.Context, app string) error {
	m.mu.Lock()
	w := m.watches[app]
	m.mu.Unlock()
	if w == nil {
		return nil
	}
	return m.endWatch(ctx, w)
}

// Wait returns once no background watch runs, each having ended by
// itself (its window over, or its rollback done), or when ctx ends.
func (m *Manager) Wait(ctx context.Context) error {
	for {
		var w *watcher
		m.mu.Lock()
		for _, x := range m.watches {
			w = x
			break
		}
		m.mu.Unlock()
		if w == nil {
			return nil
		}
		select {
		case <-w.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close ends the background watches and waits for their goroutines; a
// deploy that reaches its watch afterwards returns with the watch left to
// Recover, as described below. It is safe to call more than once.
//
// Close leaves an unfinished watch in the journal at StepWatch (and gives
// the lease back), as a crash would, rather than counting the release
// deployed: the watch is there to catch a release that fails after it took
// over, and counting it deployed at every restart would let one escape the
// rollback. Recover, after a restart, resumes the watch until its
// WatchUntil, exactly as after a crash; a watch caught mid-rollback is
// resumed there too, every step being journaled before it acts.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.endBase(errManagerClosed)
	m.watchers.Wait()
	return nil
}

// watchInBackground hands lease l, which holds d at StepWatch, to a new
// background watch. It reports false, with the watch left to Recover, once
// the Manager is closed.
func (m *Manager) watchInBackground(l Lease, d Deploy) bool {
	ctx, cancel := context.WithCancelCause(m.base)
	wctx, endWatch := context.WithCancelCause(ctx)
	w := &watcher{end: endWatch, done: make(chan struct{})}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		endWatch(nil)
		cancel(nil)
		m.log.Info("manager closed: the watch is left to Recover", "app", d.App, "release", d.Release)
		return false
	}
	// The lease moves from the caller to the watch in one step: no call
	// of this Manager can take it in between.
	delete(m.busy, d.App)
	m.watches[d.App] = w
	m.watchers.Add(1)
	m.mu.Unlock()
	stopRenew := m.renewing(ctx, l, cancel)
	go func() {
		defer m.watchers.Done()
		defer close(w.done)
		defer func() {
			m.mu.Lock()
			delete(m.watches, d.App)
			m.mu.Unlock()
		}()
		defer func() {
			stopRenew()
			endWatch(nil)
			cancel(nil)
			m.giveBack(context.Background(), l)
		}()
		m.finishWatch(ctx, wctx, l, d)
	}()
	return true
}

// finishWatch acts on d's watch step under wctx, then drives the deploy to
// its end under ctx. When wctx ends because the app moved on, the watch
// counts as passed; when ctx ends (Close, lease lost), the journal keeps
// the deploy where it is.
func (m *Manager) finishWatch(ctx, wctx context.Context, l Lease, d Deploy) {
	res, err := m.act(wctx, d, nil)
	if err != nil {
		if ctx.Err() != nil || !errors.Is(context.Cause(wctx), errMovedOn) {
			m.log.Warn("background watch stopped; the journal keeps it for Recover", "app", d.App, "release", d.Release,
				"err", leaseCause(ctx, err))
			return
		}
		m.log.Info("watch ended early: the app changes again", "app", d.App, "release", d.Release)
		res = StepResult{OK: true}
	}
	d, err = m.advance(ctx, l, d, res)
	if err == nil {
		d, err = m.drive(ctx, l, d, nil, false)
	}
	if err != nil {
		m.log.Warn("background deploy stopped; the journal keeps it for Recover", "app", d.App, "release", d.Release,
			"step", d.Step, "err", leaseCause(ctx, err))
	}
}

// giveBack releases l, bounded in time whatever ctx.
func (m *Manager) giveBack(ctx context.Context, l Lease) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.store.ReleaseLease(ctx, l); err != nil {
		m.log.Warn("release lease", "app", l.App, "err", err)
	}
}

// renewing renews l until the returned func is called (which waits for it)
// or ctx ends; when l is lost it cancels ctx with ErrLeaseLost.
func (m *Manager) renewing(ctx context.Context, l Lease, cancel context.CancelCauseFunc) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		m.renew(ctx, l, done, cancel)
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func leaseCause(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), ErrLeaseLost) {
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return err
}

func (m *Manager) renew(ctx context.Context, l Lease, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	t := time.NewTicker(m.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			nl, err := m.store.RenewLease(ctx, l, m.cfg.LeaseTTL)
			if errors.Is(err, ErrLeaseLost) {
				m.log.Error("deploy lease lost; stopping", "app", l.App)
				cancel(err)
				return
			}
			if err != nil {
				m.log.Warn("renew lease", "app", l.App, "err", err)
				continue
			}
			l = nl
		}
	}
}

// change makes a release with mk (given the current and the latest
// releases, zero when there is none) and deploys it, holding the lease.
func (m *Manager) change(ctx context.Context, app string, o DeployOptions, mk func(cur, latest Release) (Release, error)) (Release, error) {
	var out Release
	err := m.leased(ctx, app, false, func(ctx context.Context, l Lease) (*Deploy, error) {
		a, err := m.store.App(ctx, app)
		if err != nil {
			return nil, err
		}
		var cur, latest Release
		if a.Current > 0 {
			if cur, err = m.store.Release(ctx, app, a.Current); err != nil {
				return nil, err
			}
		}
		if a.Latest > 0 {
			if latest, err = m.store.Release(ctx, app, a.Latest); err != nil {
				return nil, err
			}
		}
		r, err := mk(cur, latest)
		if err != nil {
			return nil, err
		}
		if err := r.Config.Validate(); err != nil {
			return nil, err
		}
		now := m.cfg.Now().UTC()
		if !r.Runnable() {
			// Nothing to run (no build yet): the release takes over at once.
			r.Status = StatusDeployed
			c := Change{Create: &r, Current: new(int), Deploy: &Deploy{Previous: a.Current, Step: StepDone, Outcome: OutcomeDeployed, Started: now, Updated: now}}
			if a.Current > 0 {
				c.Statuses = []StatusChange{{Version: a.Current, Status: StatusSuperseded}}
			}
			out, err = m.store.Commit(ctx, app, l, c)
			m.event(app, observe.EventReleaseCreated, out.Version, out.Description)
			return nil, err
		}
		r.Status = StatusReleasing
		d := Deploy{Previous: a.Current, Step: StepStart, SkipReleasePhase: o.SkipReleasePhase, Started: now, Updated: now}
		if r.HasReleasePhase() && !o.SkipReleasePhase {
			d.Step = StepReleasePhase
		}
		created, err := m.store.Commit(ctx, app, l, Change{Create: &r, Deploy: &d})
		if err != nil {
			return nil, err
		}
		d.App, d.Release = app, created.Version
		m.step(d)
		m.event(app, observe.EventReleaseCreated, created.Version, created.Description)
		m.event(app, observe.EventDeployStarted, created.Version, "")
		final, err := m.drive(ctx, l, d, o.Output, m.cfg.WatchInBackground)
		if err != nil {
			return nil, err
		}
		out, err = m.store.Release(ctx, app, created.Version)
		if err != nil {
			return nil, err
		}
		switch {
		case final.Step == StepWatch: // the release serves; watched in the background
			return &final, nil
		case final.Release != created.Version: // rolled back automatically
			return nil, &DeployError{App: app, Version: created.Version, Reason: out.FailureReason, Err: ErrRolledBack}
		case final.Outcome == OutcomeFailed:
			sentinel := ErrUnhealthy
			if final.FailedAt == StepReleasePhase {
				sentinel = ErrReleasePhaseFailed
			}
			return nil, &DeployError{App: app, Version: created.Version, Reason: final.Reason, Err: sentinel}
		}
		return nil, nil
	})
	return out, err
}

func (m *Manager) step(d Deploy) {
	m.log.Debug("deploy step", "app", d.App, "release", d.Release, "step", d.Step)
	if m.cfg.OnStep != nil {
		m.cfg.OnStep(d)
	}
}

func (m *Manager) event(app string, kind observe.EventKind, version int, msg string) {
	if m.cfg.Events != nil {
		m.cfg.Events.Event(observe.Event{Time: m.cfg.Now(), App: app, Kind: kind, Release: version, Message: msg})
	}
}

// drive runs deploy d from its journaled step to the end: act, decide
// (NextStep), journal, and again; with stopAtWatch, only until the journal
// says StepWatch. It returns the last journal, or an error when it could
// not go on (ctx ended, store or scheduler trouble): the journal then
// shows where to resume.
func (m *Manager) drive(ctx context.Context, l Lease, d Deploy, out io.Writer, stopAtWatch bool) (Deploy, error) {
	for !d.Finished() && !(stopAtWatch && d.Step == StepWatch) {
		res, err := m.act(ctx, d, out)
		if err != nil {
			return d, err
		}
		if d, err = m.advance(ctx, l, d, res); err != nil {
			return d, err
		}
	}
	return d, nil
}

// advance journals where deploy d goes once its step came out as res, and
// returns the new journal (d itself, on error).
func (m *Manager) advance(ctx context.Context, l Lease, d Deploy, res StepResult) (Deploy, error) {
	p := NextStep(d, res, m.cfg.Now().UTC(), m.cfg.WatchWindow)
	c := Change{Deploy: &p.Deploy, Statuses: p.Statuses, Current: p.Current}
	if p.Rollback {
		prev, err := m.store.Release(ctx, d.App, d.Previous)
		if err != nil {
			return d, err
		}
		r, err := rollbackOf(prev)
		if err != nil {
			// Nothing to roll back to: keep the release, failed watch noted.
			p.Deploy.Outcome, p.Rollback = OutcomeDeployed, false
			c.Statuses = []StatusChange{{Version: d.Release, Status: StatusDeployed}}
		} else {
			r.Description = fmt.Sprintf("Automatic rollback to v%d: v%d %s", prev.Version, d.Release, d.Reason)
			r.Status = StatusReleasing
			// An automatic rollback restores service: it skips the
			// release phase (which ran when the copied release was
			// first deployed) and is not watched.
			nd := Deploy{Previous: d.Release, Step: StepStart, AutoRollback: true, Reason: d.Reason, SkipReleasePhase: true,
				Started: p.Deploy.Updated, Updated: p.Deploy.Updated}
			created, err := m.store.Commit(ctx, d.App, l, Change{Create: &r, Deploy: &nd})
			if err != nil {
				return d, err
			}
			nd.App, nd.Release = d.App, created.Version
			// The rolled back release failed; say so, as nobody may be
			// waiting for its deploy (a background watch).
			m.log.Warn("rolling back automatically", "app", d.App, "release", d.Release, "rollback", created.Version, "reason", d.Reason)
			m.event(d.App, observe.EventDeployFailed, d.Release, "rolled back: "+d.Reason)
			m.event(d.App, observe.EventRollback, created.Version, r.Description)
			m.step(nd)
			return nd, nil
		}
	}
	if _, err := m.store.Commit(ctx, d.App, l, c); err != nil {
		return d, err
	}
	d = p.Deploy
	m.step(d)
	if d.Finished() {
		switch d.Outcome {
		case OutcomeDeployed:
			m.event(d.App, observe.EventDeploySucceeded, d.Release, "")
		case OutcomeFailed:
			m.event(d.App, observe.EventDeployFailed, d.Release, d.Reason)
		}
	}
	return d, nil
}

// act does what step d.Step says. A StepResult that is not OK is a failure
// the deploy handles (abort, rollback); an error means it could not tell
// (ctx ended, the store or the scheduler failed) and the step is to be
// acted on again later.
func (m *Manager) act(ctx context.Context, d Deploy, out io.Writer) (StepResult, error) {
	a, err := m.store.App(ctx, d.App)
	if err != nil {
		return StepResult{}, err
	}
	r, err := m.store.Release(ctx, d.App, d.Release)
	if err != nil {
		return StepResult{}, err
	}
	var prev Release
	if d.Previous > 0 {
		if prev, err = m.store.Release(ctx, d.App, d.Previous); err != nil {
			return StepResult{}, err
		}
	}
	switch d.Step {
	case StepReleasePhase:
		m.event(d.App, observe.EventReleasePhase, d.Release, "started")
		return m.releasePhase(ctx, r, out)
	case StepStart:
		if prev.Runnable() {
			// Singletons of the old release stop before the new ones start.
			if single := singletons(a, prev); len(single) > 0 {
				f := a.formationFor(prev, func(p ProcessScale) bool { return !p.Singleton })
				if err := m.sched.Apply(ctx, f); err != nil {
					return m.schedFailure(ctx, "stop old singletons", err)
				}
				if res, err := m.waitStopped(ctx, a, prev, single); err != nil || !res.OK {
					return res, err
				}
			}
		}
		if err := m.sched.Apply(ctx, a.FormationFor(r)); err != nil {
			return m.schedFailure(ctx, "start", err)
		}
		return m.waitHealthy(ctx, a, r)
	case StepSwitch:
		res, err := m.waitHealthy(ctx, a, r)
		if err != nil || !res.OK {
			return res, err
		}
		res, err = m.route(ctx, a, r)
		if err != nil && ctx.Err() == nil {
			// The router refused the new backends (its own health check,
			// say): the deploy never takes over.
			return StepResult{Reason: "switching traffic: " + err.Error()}, nil
		}
		return res, err
	case StepRetire:
		if d.Previous > 0 && d.Previous != d.Release {
			if m.cfg.RetireWait > 0 {
				if err := sleep(ctx, m.cfg.RetireWait); err != nil {
					return StepResult{}, err
				}
			}
			if err := m.sched.StopRelease(ctx, d.App, d.Previous); err != nil {
				return StepResult{}, err
			}
		}
		return StepResult{OK: true}, nil
	case StepWatch:
		return m.watch(ctx, a, r, d.WatchUntil)
	case StepAbort:
		// Traffic back to the old web instances (never stopped; a no-op
		// unless the switch happened), then the new instances go, and only
		// then the old formation is made whole again (its singletons were
		// stopped), so that no singleton runs twice.
		if m.cfg.Traffic != nil && d.FailedAt != StepReleasePhase && d.FailedAt != StepStart {
			if d.Previous > 0 && prev.Runnable() && hasWeb(a, prev) {
				if res, err := m.route(ctx, a, prev); err != nil {
					return StepResult{}, err
				} else if !res.OK {
					m.log.Warn("no healthy instance of the previous release to route to", "app", d.App, "release", d.Previous)
				}
			} else if err := m.cfg.Traffic.SetRoute(ctx, Route{App: d.App, Release: d.Previous}); err != nil {
				return StepResult{}, err
			}
		}
		if err := m.sched.StopRelease(ctx, d.App, d.Release); err != nil {
			return StepResult{}, err
		}
		if d.Previous > 0 && prev.Runnable() {
			if err := m.sched.Apply(ctx, a.FormationFor(prev)); err != nil {
				return StepResult{}, err
			}
		}
		return StepResult{OK: true}, nil
	case StepRollback:
		return StepResult{OK: true}, nil
	}
	return StepResult{}, fmt.Errorf("%w: unknown deploy step %q", ErrInvalid, d.Step)
}

func (m *Manager) schedFailure(ctx context.Context, what string, err error) (StepResult, error) {
	if ctx.Err() != nil {
		return StepResult{}, err
	}
	if errors.Is(err, scale.ErrInvalidFormation) || errors.Is(err, scale.ErrUnsupported) {
		return StepResult{Reason: fmt.Sprintf("%s: %v", what, err)}, nil
	}
	return StepResult{}, err
}

func singletons(a App, r Release) []string {
	var out []string
	for t := range r.Processes {
		if s := a.Scale(t); s.Singleton && s.Count > 0 && t != ReleaseProcessType {
			out = append(out, t)
		}
	}
	return out
}

// waitStopped waits until no instance of r's process types in types runs
// any more: Apply returns before a scale-down has finished.
func (m *Manager) waitStopped(ctx context.Context, a App, r Release, types []string) (StepResult, error) {
	grace := time.Duration(0)
	for _, t := range types {
		g := a.Scale(t).Grace
		if g == 0 {
			g = scale.DefaultGrace
		}
		grace = max(grace, g)
	}
	deadline := m.cfg.Now().Add(grace + 10*time.Second)
	for {
		insts, err := m.sched.Instances(ctx, scale.Query{App: a.Name, Release: r.Version})
		if err != nil {
			return StepResult{}, err
		}
		running := ""
		for _, in := range insts {
			if slices.Contains(types, in.ProcessType) && in.State != scale.StateStopped {
				running = fmt.Sprintf("%s.%d", in.ProcessType, in.Index)
			}
		}
		if running == "" {
			return StepResult{OK: true}, nil
		}
		if m.cfg.Now().After(deadline) {
			return StepResult{Reason: fmt.Sprintf("singleton %s of %s did not stop", running, r)}, nil
		}
		if err := sleep(ctx, m.cfg.Health.Interval); err != nil {
			return StepResult{}, err
		}
	}
}

func hasWeb(a App, r Release) bool {
	_, ok := r.Processes["web"]
	return ok && a.Scale("web").Count > 0
}

// route points the app's traffic at r's web instances.
func (m *Manager) route(ctx context.Context, a App, r Release) (StepResult, error) {
	return m.routeWhere(ctx, a, r, nil)
}

// WebRoute returns the route of an app's release over insts: its web
// instances that are up, healthy and have an address, sorted by ID. It is
// the one rule for which instances take traffic, for the Manager's switches
// and for whoever keeps a router in step between deploys.
func WebRoute(app string, version int, insts []scale.Instance) Route {
	rt := Route{App: app, Release: version}
	for _, in := range insts {
		if in.App == app && in.Release == version && in.ProcessType == "web" &&
			in.State == scale.StateUp && in.Healthy && in.Addr != "" {
			rt.Backends = append(rt.Backends, Backend{ID: in.ID, Addr: in.Addr})
		}
	}
	slices.SortFunc(rt.Backends, func(a, b Backend) int { return strings.Compare(a.ID, b.ID) })
	return rt
}

// routeWhere points the app's traffic at r's healthy web instances that
// keep says to keep (all when keep is nil).
func (m *Manager) routeWhere(ctx context.Context, a App, r Release, keep func(scale.Instance) bool) (StepResult, error) {
	if m.cfg.Traffic == nil {
		return StepResult{OK: true}, nil
	}
	rt := Route{App: a.Name, Release: r.Version}
	if hasWeb(a, r) {
		insts, err := m.sched.Instances(ctx, scale.Query{App: a.Name, Release: r.Version, ProcessType: "web"})
		if err != nil {
			return StepResult{}, err
		}
		if keep != nil {
			insts = slices.DeleteFunc(insts, func(in scale.Instance) bool { return !keep(in) })
		}
		rt = WebRoute(a.Name, r.Version, insts)
		if len(rt.Backends) == 0 {
			return StepResult{Reason: "no healthy web instance to switch traffic to"}, nil
		}
	}
	if err := m.cfg.Traffic.SetRoute(ctx, rt); err != nil {
		return StepResult{}, err
	}
	return StepResult{OK: true}, nil
}

// check looks at r's instances once: "" when every process type runs its
// count of up, healthy instances (web ones passing the HTTP check), else
// what is wrong. fatal is set when waiting longer will not help.
func (m *Manager) check(ctx context.Context, a App, r Release, http bool) (problem string, fatal bool, err error) {
	insts, err := m.sched.Instances(ctx, scale.Query{App: a.Name, Release: r.Version})
	if err != nil {
		return "", false, err
	}
	f := a.FormationFor(r)
	for _, p := range f.Processes {
		healthy := 0
		for _, in := range insts {
			if in.ProcessType != p.Type {
				continue
			}
			name := fmt.Sprintf("%s.%d", in.ProcessType, in.Index)
			if in.Index > p.Count && (in.State == scale.StateStopping || in.State == scale.StateStopped) {
				continue // being scaled down
			}
			switch {
			case in.State == scale.StateCrashed || in.State == scale.StateStopped:
				reason := string(in.State)
				if in.LastExit != nil && in.LastExit.Reason != "" {
					reason += ": " + in.LastExit.Reason
				}
				return name + " " + reason, true, nil
			case in.Restarts > 0:
				// New instances that crashed once are not trusted, even if
				// they are back up.
				reason := fmt.Sprintf("crashed and restarted %d times", in.Restarts)
				if in.LastExit != nil && in.LastExit.Reason != "" {
					reason += " (last: " + in.LastExit.Reason + ")"
				}
				return name + " " + reason, true, nil
			case in.State != scale.StateUp || !in.Healthy:
				return name + " is not healthy yet", false, nil
			}
			if http && p.Port && m.cfg.Health.Path != "" {
				if msg := m.httpCheck(ctx, in.Addr); msg != "" {
					return name + ": " + msg, false, nil
				}
			}
			healthy++
		}
		if healthy < p.Count {
			return fmt.Sprintf("%d of %d %s instances are up", healthy, p.Count, p.Type), false, nil
		}
	}
	return "", false, nil
}

func (m *Manager) httpCheck(ctx context.Context, addr string) string {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Health.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+m.cfg.Health.Path, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return "health check: " + err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Sprintf("health check %s answered %d", m.cfg.Health.Path, resp.StatusCode)
	}
	return ""
}

func (m *Manager) waitHealthy(ctx context.Context, a App, r Release) (StepResult, error) {
	var last string
	for i := 0; i < m.cfg.Health.Attempts; i++ {
		if i > 0 {
			if err := sleep(ctx, m.cfg.Health.Interval); err != nil {
				return StepResult{}, err
			}
		}
		problem, fatal, err := m.check(ctx, a, r, true)
		if err != nil {
			if ctx.Err() != nil {
				return StepResult{}, err
			}
			last = err.Error()
			continue
		}
		if problem == "" {
			return StepResult{OK: true}, nil
		}
		last = problem
		if fatal {
			break
		}
	}
	return StepResult{Reason: fmt.Sprintf("%s did not become healthy: %s", r, last)}, nil
}

func (m *Manager) watch(ctx context.Context, a App, r Release, until time.Time) (StepResult, error) {
	bad := 0
	for {
		problem, _, err := m.check(ctx, a, r, true)
		if err != nil && ctx.Err() != nil {
			return StepResult{}, err
		}
		if err == nil && problem != "" {
			bad++
			if bad >= m.cfg.UnhealthyPolls {
				return StepResult{Reason: fmt.Sprintf("unhealthy after the switch: %s", problem)}, nil
			}
		} else if err == nil {
			bad = 0
		}
		left := until.Sub(m.cfg.Now())
		if left <= 0 {
			return StepResult{OK: true}, nil
		}
		if err := sleep(ctx, min(left, m.cfg.Health.Interval)); err != nil {
			return StepResult{}, err
		}
	}
}

func (m *Manager) releasePhase(ctx context.Context, r Release, out io.Writer) (StepResult, error) {
	tail := &tailWriter{max: m.cfg.OutputTail, next: out}
	if m.cfg.Logs != nil {
		tail.lines = &lineSink{sink: m.cfg.Logs, app: r.App, now: m.cfg.Now}
		defer tail.lines.flush()
	}
	res, err := m.sched.Run(ctx, scale.OneOff{
		App: r.App, Release: r.Version, Image: r.Image, Env: r.Config.Map(), Type: ReleaseProcessType,
		Command: r.Processes[ReleaseProcessType], Timeout: m.cfg.ReleaseTimeout, Stdout: tail, Stderr: tail,
	})
	defer func() {
		what := "succeeded"
		if err != nil || res.Exit.Code != 0 || res.Exit.Signal != "" {
			what = "failed"
		}
		m.event(r.App, observe.EventReleasePhase, r.Version, what)
	}()
	switch {
	case err != nil && ctx.Err() != nil:
		return StepResult{}, err
	case errors.Is(err, scale.ErrTimeout):
		return StepResult{Reason: fmt.Sprintf("release phase timed out after %s%s", m.cfg.ReleaseTimeout, tail.suffix())}, nil
	case err != nil:
		return StepResult{Reason: fmt.Sprintf("release phase could not run: %v%s", err, tail.suffix())}, nil
	case res.Exit.Code != 0 || res.Exit.Signal != "":
		why := res.Exit.Reason
		if why == "" {
			why = fmt.Sprintf("exited with code %d", res.Exit.Code)
		}
		return StepResult{Reason: "release phase " + why + tail.suffix()}, nil
	}
	return StepResult{OK: true}, nil
}

// tailWriter passes output through to next and keeps its last max bytes.
// Writes to next that fail are dropped: a slow or broken client must not
// fail the release phase.
type tailWriter struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	n     int64
	next  io.Writer
	lines *lineSink
}

// lineSink cuts output into log lines of at most maxLogLine bytes.
type lineSink struct {
	sink observe.LogSink
	app  string
	now  func() time.Time
	part []byte
}

const maxLogLine = 4 << 10

func (l *lineSink) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(l.part)
			if len(p) < room {
				l.part = append(l.part, p...)
				return
			}
			l.part = append(l.part, p[:room]...)
			p = p[room:]
			l.flush()
			continue
		}
		l.part = append(l.part, p[:i]...)
		p = p[i+1:]
		l.flush()
	}
}

func (l *lineSink) flush() {
	for len(l.part) > 0 {
		n := min(len(l.part), maxLogLine)
		l.sink.WriteLog(observe.LogLine{Time: l.now(), App: l.app, Source: observe.SourceRelease, ProcessType: ReleaseProcessType,
			Text: strings.TrimSuffix(string(l.part[:n]), "\r")})
		l.part = l.part[n:]
	}
	l.part = l.part[:0]
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += int64(len(p))
	if len(p) >= w.max {
		w.buf = append(w.buf[:0], p[len(p)-w.max:]...)
	} else {
		if over := len(w.buf) + len(p) - w.max; over > 0 {
			w.buf = append(w.buf[:0], w.buf[over:]...)
		}
		w.buf = append(w.buf, p...)
	}
	if w.next != nil {
		_, _ = w.next.Write(p)
	}
	if w.lines != nil {
		w.lines.write(p)
	}
	return len(p), nil
}

func (w *tailWriter) suffix() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := strings.TrimSpace(strings.ReplaceAll(strings.ToValidUTF8(string(w.buf), "?"), "\x00", "?"))
	if t == "" {
		return ""
	}
	if w.n > int64(len(w.buf)) {
		t = "..." + t
	}
	return "; output: " + t
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func shortDigest(img scale.Image) string {
	s := img.Digest
	if s == "" {
		s = img.Ref
	}
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func describeConfig(c ConfigChange) string {
	var parts []string
	if len(c.Set) > 0 {
		parts = append(parts, "Set "+strings.Join(sortedKeys(c.Set), ", ")+" config vars")
	}
	if len(c.Unset) > 0 {
		parts = append(parts, "Unset "+strings.Join(c.Unset, ", ")+" config vars")
	}
	for _, a := range c.Attach {
		parts = append(parts, "Attach "+a.Name)
	}
	for _, n := range c.Detach {
		parts = append(parts, "Detach "+n)
	}
	if len(parts) == 0 {
		return "Config change"
	}
	return strings.Join(parts, "; ")
}

// RecoverReport says what Recover did, per app with an unfinished deploy.
type RecoverReport struct {
	Apps []RecoveredApp
}

// RecoveredApp is what Recover did for one app.
type RecoveredApp struct {
	App     string
	Release int    // the release whose deploy was unfinished
	Step    Step   // where it was
	Final   Deploy // the journal afterwards
	Err     error  // why it is still unfinished (another owner holds the lease, ...)
}

// Recover finishes every deploy the journal shows unfinished, after the
// control plane restarted (call it once, after the scheduler's Recover),
// and gives back the leases this Owner still holds.
// A deploy that was in its release phase is aborted (the phase is never
// run twice unasked); any later step is resumed: before the traffic switch
// it goes on or aborts as health says, after it it retires the old
// release and watches. Apps whose lease a live control plane holds are
// left to it (their RecoveredApp.Err wraps ErrDeployInProgress).
func (m *Manager) Recover(ctx context.Context) (RecoverReport, error) {
	var rep RecoverReport
	apps, err := m.store.Apps(ctx)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, a := range apps {
		d, ok, err := m.store.Deploy(ctx, a.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok || d.Finished() {
			// Give back a lease this control plane held when it died
			// between the last journal write and the lease's release.
			err := m.leased(ctx, a.Name, true, func(ctx context.Context, l Lease) (*Deploy, error) { return nil, nil })
			if err != nil && !errors.Is(err, ErrDeployInProgress) {
				errs = append(errs, fmt.Errorf("recover %s: %w", a.Name, err))
			}
			continue
		}
		ra := RecoveredApp{App: a.Name, Release: d.Release, Step: d.Step}
		ra.Err = m.leased(ctx, a.Name, true, func(ctx context.Context, l Lease) (*Deploy, error) { return nil, nil })
		if fd, _, err := m.store.Deploy(ctx, a.Name); err == nil {
			ra.Final = fd
		}
		if ra.Err != nil && !errors.Is(ra.Err, ErrDeployInProgress) {
			errs = append(errs, fmt.Errorf("recover %s: %w", a.Name, ra.Err))
		}
		rep.Apps = append(rep.Apps, ra)
	}
	return rep, errors.Join(errs...)
}
