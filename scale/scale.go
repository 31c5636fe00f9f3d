package scale

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/internal/names"
	"github.com/slipwayhq/slipway/observe"
)

// Scheduler runs the instances of apps' releases.
//
// All methods are safe for concurrent use. Calls for different apps proceed
// independently; calls for the same app and release are serialized by the
// scheduler. Every method that blocks honours ctx: when ctx ends, the method
// returns ctx.Err() (wrapped) and leaves the scheduler consistent.
type Scheduler interface {
	// Apply makes the instances of f.App's release f.Release match f: for
	// each process type it starts or stops instances until Count run, and
	// stops instances of that release whose process type f no longer names.
	// Instances of other releases of the app are not touched, so two
	// releases can run side by side during a deploy.
	//
	// Apply returns once the change is under way, not when instances are up:
	// watch Instances for StateUp and Healthy. Applying the same formation
	// twice changes nothing. Scaling down stops the highest-numbered
	// instances first, gracefully (see StopRelease).
	//
	// Errors: ErrInvalidFormation (wrapped in a *FormationError) when
	// f.Validate fails; ErrUnsupported when f asks for something that
	// Capabilities says is missing; ErrClosed after Close.
	Apply(ctx context.Context, f Formation) error

	// StopRelease stops every instance of the app's release: SIGTERM, then
	// SIGKILL once the grace period of the process type has passed. It
	// returns when they have all stopped. Stopping a release with no
	// instances is not an error.
	StopRelease(ctx context.Context, app string, release int) error

	// StopApp stops every instance and one-off of the app, of every release,
	// and forgets the app. It returns when they have all stopped.
	StopApp(ctx context.Context, app string) error

	// Run starts a one-off process (a release phase, a console, a migration).
	//
	// When o.Detached is false, Run waits for the process to exit, copies its
	// output to o.Stdout and o.Stderr as it comes, and returns its exit
	// status: a non-zero exit is not an error, it is OneOffResult.Exit.Code.
	// A one-off still running at o.Timeout is killed and Run returns
	// ErrTimeout. When ctx ends, the one-off is killed.
	//
	// When o.Detached is true, Run returns once the process has started; its
	// output goes to the app's logs, and it is killed at o.TTL.
	Run(ctx context.Context, o OneOff) (OneOffResult, error)

	// Instances lists the instances (and running one-offs) that match q,
	// sorted by app, release, process type and index.
	Instances(ctx context.Context, q Query) ([]Instance, error)

	// Logs writes the app's recent log lines that match q to fn, oldest
	// first, and when q.Follow is set goes on writing new lines until ctx
	// ends. It stops early and returns fn's error when fn fails.
	Logs(ctx context.Context, q LogQuery, fn func(observe.LogLine) error) error

	// Capabilities says what this scheduler supports.
	Capabilities() Capabilities

	// Recover is called once after the control plane restarts, before any
	// other method: the scheduler finds the instances it started before,
	// manages them again, and removes what is left of instances that died
	// meanwhile. It reports what it found.
	Recover(ctx context.Context) (RecoverReport, error)

	// Close stops watching instances and releases the scheduler's own
	// resources. It does not stop instances: a scheduler opened again on
	// the same state recovers them.
	Close() error
}

// Errors callers branch on. Implementations wrap them with %w.
var (
	ErrInvalidFormation = errors.New("scale: invalid formation")
	ErrNotFound         = errors.New("scale: not found")
	ErrUnsupported      = errors.New("scale: not supported by this scheduler")
	ErrTimeout          = errors.New("scale: timed out")
	ErrNoCommand        = errors.New("scale: no command to run")
	ErrClosed           = errors.New("scale: scheduler closed")
)

// Limits a formation must stay within. Schedulers may set lower ones.
const (
	MaxInstancesPerType = 100
	DefaultGrace        = 30 * time.Second
)

// Image names the OCI image an instance runs. Digest is the manifest digest
// ("sha256:..."); Ref is a reference a scheduler can resolve it by (a
// registry reference or a name in the scheduler's image store). Schedulers
// that can use either prefer Digest.
type Image struct {
	Ref    string
	Digest string
}

// Formation is the desired set of processes of one release of an app.
type Formation struct {
	App     string
	Release int
	Image   Image
	// Env holds the release's config vars. Values are secrets: schedulers
	// never log them or put them in errors.
	Env       map[string]string
	Processes []Process
}

// Process is how to run one process type of a release, and how many.
type Process struct {
	Type string // a DNS label: "web", "worker", ...
	// Command is the Procfile command, run as Heroku does: through /bin/sh -c
	// when the image has a shell, split on white space and exec'd when it has
	// not. Empty means the image's entrypoint and cmd.
	Command string
	Count   int
	// Port is true for a process type that serves HTTP (web): the
	// scheduler gives each instance a port to listen on in PORT, checks
	// that it is bound for Healthy, and reports it in Instance.Addr.
	Port      bool
	Resources Resources
	// Grace is how long a stopping instance gets between SIGTERM and
	// SIGKILL. Zero means DefaultGrace.
	Grace time.Duration
}

// Resources limits what one instance may use. Zero values mean no limit.
type Resources struct {
	MemoryBytes int64   // hard memory limit; exceeding it is an OOM kill
	CPUs        float64 // CPU time limit in cores (0.5 = half a core)
}

// Validate reports what is wrong with f as a *FormationError wrapping
// ErrInvalidFormation, or nil.
func (f Formation) Validate() error {
	bad := func(format string, args ...any) error {
		return &FormationError{App: f.App, Release: f.Release, Reason: fmt.Sprintf(format, args...)}
	}
	if err := names.App(f.App); err != nil {
		return bad("%v", err)
	}
	if f.Release < 1 {
		return bad("release version %d is not positive", f.Release)
	}
	if f.Image.Digest == "" && f.Image.Ref == "" {
		return bad("no image")
	}
	seen := make(map[string]bool, len(f.Processes))
	for _, p := range f.Processes {
		if err := names.Label("process type", p.Type); err != nil {
			return bad("%v", err)
		}
		if seen[p.Type] {
			return bad("process type %q appears twice", p.Type)
		}
		seen[p.Type] = true
		if p.Count < 0 || p.Count > MaxInstancesPerType {
			return bad("process type %q: count %d is outside 0..%d", p.Type, p.Count, MaxInstancesPerType)
		}
		if p.Resources.MemoryBytes < 0 || p.Resources.CPUs < 0 || p.Grace < 0 {
			return bad("process type %q: negative resource limit or grace period", p.Type)
		}
	}
	for k, v := range f.Env {
		// The values are secrets: name the variable, never its value.
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return bad("config var %q: an empty name, a name with '=' or NUL, or a value with NUL cannot reach a process", k)
		}
	}
	return nil
}

// FormationError says why a formation was refused. It never holds config
// var values.
type FormationError struct {
	App     string
	Release int
	Reason  string
}

func (e *FormationError) Error() string {
	return fmt.Sprintf("scale: invalid formation for %s v%d: %s", e.App, e.Release, e.Reason)
}

// Unwrap returns ErrInvalidFormation.
func (e *FormationError) Unwrap() error { return ErrInvalidFormation }

// OneOff is a process run once: a release phase, a migration, a console.
type OneOff struct {
	App     string
	Release int
	Image   Image
	Env     map[string]string // secrets, as Formation.Env
	Command string            // run as Process.Command is; required
	// Type labels the one-off in instance lists and logs ("release",
	// "run"). Empty means "run".
	Type      string
	Resources Resources
	// Timeout kills an attached one-off still running after it; zero means
	// no limit beyond ctx.
	Timeout time.Duration
	// Stdout and Stderr receive an attached one-off's output as it comes;
	// nil discards it (it still reaches the app's logs).
	Stdout, Stderr io.Writer
	Detached       bool
	// TTL kills a detached one-off still running after it; zero means
	// DefaultDetachedTTL.
	TTL time.Duration
}

// Validate reports what is wrong with o as a *FormationError wrapping
// ErrInvalidFormation, or nil: the same rules as Formation.Validate for its
// app, release, image, type (default "run") and resources, and no negative
// Timeout or TTL. An empty Command is left to the scheduler, which falls
// back to the image's entrypoint and cmd or returns ErrNoCommand.
func (o OneOff) Validate() error {
	typ := o.Type
	if typ == "" {
		typ = "run"
	}
	f := Formation{App: o.App, Release: o.Release, Image: o.Image, Env: o.Env,
		Processes: []Process{{Type: typ, Count: 1, Resources: o.Resources}}}
	if err := f.Validate(); err != nil {
		return err
	}
	if o.Timeout < 0 || o.TTL < 0 {
		return &FormationError{App: o.App, Release: o.Release, Reason: "negative timeout or TTL"}
	}
	return nil
}

// DefaultDetachedTTL bounds a detached one-off whose TTL is zero, as
// Heroku's 24 h cycling bounds a detached dyno.
const DefaultDetachedTTL = 24 * time.Hour

// OneOffResult is what a one-off came to.
type OneOffResult struct {
	ID string
	// Exit is the exit status of an attached one-off; zero for a detached
	// one, which is still running.
	Exit ExitStatus
}

// SortInstances sorts instances as Scheduler.Instances returns them: by
// app, release, process type, index and id.
func SortInstances(is []Instance) {
	slices.SortFunc(is, func(a, b Instance) int {
		return cmp.Or(
			cmp.Compare(a.App, b.App),
			cmp.Compare(a.Release, b.Release),
			cmp.Compare(a.ProcessType, b.ProcessType),
			cmp.Compare(a.Index, b.Index),
			cmp.Compare(a.ID, b.ID),
		)
	})
}

// Query selects instances. Zero fields match everything.
type Query struct {
	App         string
	Release     int
	ProcessType string
}

// LogQuery selects log lines. Zero fields match everything but App, which is
// required.
type LogQuery struct {
	App         string
	ProcessType string
	Instance    string
	Tail        int  // at most this many recent lines; 0 means all kept
	Follow      bool // go on with new lines until ctx ends
}

// State is where an instance is in its life.
type State string

// Instance states.
const (
	StateStarting State = "starting" // created, not yet up (web: port not yet bound)
	StateUp       State = "up"       // running (web: port bound)
	StateCrashed  State = "crashed"  // exited unexpectedly; waiting out its restart backoff
	StateStopping State = "stopping" // sent SIGTERM, inside its grace period
	StateStopped  State = "stopped"  // exited and will not be restarted
)

// Instance is one running (or recently running) process.
type Instance struct {
	ID          string // unique across the scheduler, stable across restarts of the instance
	App         string
	Release     int
	ProcessType string
	Index       int // 1-based, as in web.1
	State       State
	// Healthy is true when the scheduler's own check passes: for a web
	// instance its port accepts connections, for others the process runs.
	Healthy   bool
	Addr      string // host:port of a web instance; empty otherwise
	Restarts  int    // restarts after crashes since the instance was created
	StartedAt time.Time
	// LastExit is the last time the process exited, nil if it never has.
	LastExit *ExitStatus
}

// ExitStatus says how a process ended.
type ExitStatus struct {
	Code      int    // exit code; -1 when killed by a signal
	Signal    string // the signal that killed it ("SIGKILL"), empty if none
	OOMKilled bool   // killed for exceeding its memory limit
	Reason    string // a short human reason ("exited with code 1", "OOM killed")
	Time      time.Time
}

// Capabilities says what a scheduler supports; Apply and Run refuse with
// ErrUnsupported what is missing.
type Capabilities struct {
	OneOffs          bool // Run with Detached false
	DetachedOneOffs  bool // Run with Detached true
	MemoryLimits     bool
	CPULimits        bool
	Recover          bool // Recover re-attaches to instances after a restart
	MultipleMachines bool // instances may run on more than one machine
}

// RecoverReport says what Recover found.
type RecoverReport struct {
	Reattached []string // ids of instances managed again
	Reaped     []string // ids of instances whose leftovers were removed
}
