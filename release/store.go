package release

import (
	"context"
	"time"
)

// Store keeps apps, releases, the deploy journal and the deploy leases.
//
// All methods are safe for concurrent use, also from several processes
// when the implementation says so (release/postgres). Every write is
// atomic and durable when it returns: a Commit is all or nothing.
//
// Versions are assigned by the Store: per app 1, 2, 3, ... with no gap and
// no duplicate, whatever the number of concurrent writers.
//
// Implementations prove they behave by passing releasetest.Run.
type Store interface {
	// CreateApp stores a new app. ErrAppExists when it exists; ErrInvalid
	// when the name is not a valid app name.
	CreateApp(ctx context.Context, a App) error
	// App returns an app. ErrAppNotFound (in a *NotFoundError).
	App(ctx context.Context, name string) (App, error)
	// Apps lists every app, sorted by name.
	Apps(ctx context.Context) ([]App, error)
	// DeleteApp removes an app with its releases, journal and lease.
	// ErrAppNotFound.
	DeleteApp(ctx context.Context, name string) error

	// Release returns one release. ErrAppNotFound or ErrReleaseNotFound
	// (in a *NotFoundError).
	Release(ctx context.Context, app string, version int) (Release, error)
	// Releases returns the app's releases, newest first, at most limit of
	// them (all when limit <= 0). ErrAppNotFound.
	Releases(ctx context.Context, app string, limit int) ([]Release, error)

	// Commit applies c to app atomically. When l is not the zero Lease, it
	// first checks that l is still the app's lease (same owner and token;
	// an expired lease nobody took over still counts) and returns
	// ErrLeaseLost otherwise. It returns the release c.Create made (the
	// zero Release when c.Create is nil). ErrAppNotFound, ErrReleaseNotFound
	// for a status change of a missing release, ErrInvalid.
	Commit(ctx context.Context, app string, l Lease, c Change) (Release, error)

	// Deploy returns the app's deploy journal: the last deploy, finished or
	// not. ok is false when the app never had one. ErrAppNotFound.
	Deploy(ctx context.Context, app string) (d Deploy, ok bool, err error)

	// AcquireLease takes the app's deploy lease for owner until ttl from
	// now. It succeeds when nobody holds it, when it has expired, or when
	// owner already holds it (a restarted control plane that kept its
	// owner id takes its lease back at once); every success returns a new
	// Token, which fences off the previous holder. Otherwise it returns a
	// *LeaseError wrapping ErrDeployInProgress. ErrAppNotFound.
	AcquireLease(ctx context.Context, app, owner string, ttl time.Duration) (Lease, error)
	// RenewLease extends l to ttl from now. ErrLeaseLost when l's token is
	// no longer the app's.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// ReleaseLease gives l up. ErrLeaseLost when l's token is no longer the
	// app's (there is then nothing to give up).
	ReleaseLease(ctx context.Context, l Lease) error

	// Close releases the store's resources.
	Close() error
}

// Lease is the right to deploy one app. Owner names the control plane;
// Token changes at every acquisition and fences off earlier holders.
type Lease struct {
	App     string
	Owner   string
	Token   int64
	Expires time.Time
}

// IsZero reports whether l is the zero Lease (no fencing).
func (l Lease) IsZero() bool { return l.Token == 0 && l.Owner == "" }

// Change is what one Commit writes. Zero fields change nothing.
type Change struct {
	// Create stores a new release with the app's next version; its App,
	// Version, CreatedAt and UpdatedAt are set by the Store, an empty Status
	// is StatusPending.
	Create *Release
	// Statuses move existing releases (a created one included, by its
	// version, when known).
	Statuses []StatusChange
	// Current, when not nil, becomes the app's current version.
	Current *int
	// Formation, when not nil, replaces the app's formation.
	Formation *[]ProcessScale
	// Deploy, when not nil, replaces the app's deploy journal. A Deploy
	// with Release 0 refers to the release Create makes.
	Deploy *Deploy
}

// StatusChange moves one release to a status.
type StatusChange struct {
	Version int // 0: the release Change.Create makes
	Status  Status
	Reason  string // FailureReason; kept as it was when empty
}

// Step is where a deploy is. The Manager writes each step to the journal
// before it acts on it.
type Step string

// Deploy steps, in order. A failing deploy goes to StepAbort (before the
// traffic switch) or StepRollback (after it).
const (
	StepReleasePhase Step = "release-phase" // run the release process type
	StepStart        Step = "start"         // start the new formation and wait until it is healthy
	StepSwitch       Step = "switch"        // switch traffic to the new instances
	StepRetire       Step = "retire"        // drain and stop the old release's instances
	StepWatch        Step = "watch"         // watch the new instances for a while
	StepAbort        Step = "abort"         // undo a deploy that never took traffic
	StepRollback     Step = "rollback"      // make and deploy a copy of the previous release
	StepDone         Step = "done"          // finished; Outcome says how
)

// Outcome is how a finished deploy ended.
type Outcome string

// Deploy outcomes.
const (
	OutcomeDeployed   Outcome = "deployed"
	OutcomeFailed     Outcome = "failed"      // never took over; the previous release serves
	OutcomeRolledBack Outcome = "rolled-back" // took over, then was replaced by a rollback
)

// Deploy is the journal of one app's deploy.
type Deploy struct {
	App      string
	Release  int // the version being deployed
	Previous int // the version serving when the deploy started; 0 if none
	Step     Step
	Outcome  Outcome // set once Step is StepDone
	Reason   string  // why it failed or was rolled back; never holds config values
	// FailedAt is the step whose failure sent the deploy to StepAbort or
	// StepRollback; empty while all goes well.
	FailedAt Step
	// AutoRollback marks the deploy of a release made by an automatic
	// rollback: it is not watched (a rollback never rolls back).
	AutoRollback bool
	// SkipReleasePhase is set when the release phase was not asked for.
	SkipReleasePhase bool
	// WatchUntil ends StepWatch.
	WatchUntil time.Time
	Started    time.Time
	Updated    time.Time
}

// Finished reports whether d needs no more work.
func (d Deploy) Finished() bool { return d.Step == StepDone }
