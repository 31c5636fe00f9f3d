package release

import (
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/scale"
)

// Status is where a release is in its deploy. It is the only part of a
// release that changes after it is created.
type Status string

// Release statuses.
const (
	StatusPending    Status = "pending"    // created, its deploy has not started
	StatusReleasing  Status = "releasing"  // being deployed
	StatusDeployed   Status = "deployed"   // the app's current release
	StatusFailed     Status = "failed"     // its deploy failed or was rolled back; FailureReason says why
	StatusSuperseded Status = "superseded" // was deployed, then another release was
)

// Valid reports whether s is one of the Status constants.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusReleasing, StatusDeployed, StatusFailed, StatusSuperseded:
		return true
	}
	return false
}

// Cause says why a release was made.
type Cause string

// Release causes.
const (
	CauseBuild    Cause = "build"    // a new image
	CauseConfig   Cause = "config"   // config vars set or unset
	CauseAddon    Cause = "addon"    // an add-on attached or detached
	CauseRollback Cause = "rollback" // a copy of an earlier release
	CauseScale    Cause = "scale"    // reserved for platforms that version formation changes
)

// ReleaseProcessType is the process type run once, as a one-off, before a
// release's instances start (Heroku's release phase).
const ReleaseProcessType = "release"

// Release is one immutable version of an app.
type Release struct {
	App     string
	Version int // 1, 2, ... per app, assigned by the Store
	// Image is what the release runs; a release made before the app's first
	// build has none, and runs nothing.
	Image scale.Image
	// Processes maps each process type ("web", "worker", "release") to its
	// command, as in a Procfile. An empty command runs the image's default.
	Processes map[string]string
	// Config is the snapshot of the app's config vars, add-on vars included.
	Config      Config
	Attachments []Attachment
	Cause       Cause
	Description string // a human line: "Deploy 3f2a1c", "Set FOO config vars"
	// RollbackOf is the version this release copies when Cause is
	// CauseRollback; 0 otherwise.
	RollbackOf    int
	Status        Status
	FailureReason string // why it failed; never holds config values
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// String names the release: "myapp v3".
func (r Release) String() string { return fmt.Sprintf("%s v%d", r.App, r.Version) }

// HasReleasePhase reports whether r has a release process type.
func (r Release) HasReleasePhase() bool {
	_, ok := r.Processes[ReleaseProcessType]
	return ok
}

// Runnable reports whether r has an image to run.
func (r Release) Runnable() bool { return r.Image.Digest != "" || r.Image.Ref != "" }

// Attachment records an add-on attached to the app when the release was
// made, and which config vars it provides. The values themselves are in
// Release.Config.
type Attachment struct {
	Name     string   // the attachment name, e.g. "DATABASE"
	Provider string   // the add-on service, e.g. "postgres"
	Resource string   // the provider's id of the resource
	Vars     []string // config var names the add-on sets
}

// ProcessScale is how many instances of a process type an app runs, and
// how. It belongs to the app, not to a release: it carries over from one
// release to the next, as Heroku's formation does.
type ProcessScale struct {
	Type      string
	Count     int
	Resources scale.Resources
	Grace     time.Duration
	// Singleton marks a process type that must never run twice at once (a
	// scheduler, a queue consumer that is not idempotent): during a deploy
	// its old instances stop before the new ones start, instead of after.
	Singleton bool
}

// App is an app known to the Store.
type App struct {
	Name string
	// Current is the version of the release that is serving, 0 before the
	// first deploy.
	Current int
	// Latest is the highest version created, 0 when there is none.
	Latest int
	// Formation overrides the default scale of process types: a type not
	// listed runs one instance when it is "web" and none otherwise.
	Formation []ProcessScale
	CreatedAt time.Time
}

// Scale returns the scale of process type t in a's formation.
func (a App) Scale(t string) ProcessScale {
	for _, p := range a.Formation {
		if p.Type == t {
			return p
		}
	}
	p := ProcessScale{Type: t}
	if t == "web" {
		p.Count = 1
	}
	return p
}

// Formation returns the scheduler formation that runs r with a's scale. The
// release process type is never part of it.
func (a App) formationFor(r Release, only func(ProcessScale) bool) scale.Formation {
	f := scale.Formation{App: r.App, Release: r.Version, Image: r.Image, Env: r.Config.Map()}
	for _, t := range sortedKeys(r.Processes) {
		if t == ReleaseProcessType {
			continue
		}
		ps := a.Scale(t)
		if only != nil && !only(ps) {
			ps.Count = 0
		}
		f.Processes = append(f.Processes, scale.Process{
			Type: t, Command: r.Processes[t], Count: ps.Count, Port: t == "web",
			Resources: ps.Resources, Grace: ps.Grace,
		})
	}
	return f
}

// FormationFor returns the formation that runs r at a's scale.
func (a App) FormationFor(r Release) scale.Formation { return a.formationFor(r, nil) }
