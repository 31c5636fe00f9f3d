package addons

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Attachment binds a resource to an app under a name: the resource's config
// keys become the app's config vars <Name>_<KEY>.
type Attachment struct {
	App        string
	Name       string // DATABASE, REDIS, POSTGRESQL_AMBER; see AttachmentName
	ResourceID string
}

// Cause says why a release's config changed. Release managers make a new
// release from every ConfigChange and record its Cause.
type Cause string

// Causes of add-on config changes.
//
// None of them runs the release phase: as on Heroku, attaching, detaching,
// rotating or changing the plan of an add-on makes a new release with the
// new config vars and restarts the formation, but does not run the
// `release` process type, which belongs to code deploys. (A migration that
// must run against a new database is started by the user as a one-off.)
// Use SkipsReleasePhase rather than listing causes.
const (
	CauseAttach     Cause = "addon.attach"
	CauseDetach     Cause = "addon.detach"
	CauseRotate     Cause = "addon.rotate"
	CausePlanChange Cause = "addon.plan"
)

// SkipsReleasePhase reports whether a release made for this cause skips the
// release phase: true for every add-on cause above.
func (c Cause) SkipsReleasePhase() bool {
	switch c {
	case CauseAttach, CauseDetach, CauseRotate, CausePlanChange:
		return true
	}
	return false
}

// ConfigChange is the change an add-on operation makes to an app's config
// vars. It is computed by the pure functions AttachChange, DetachChange and
// UpdateChange; the release manager applies it to the current config and
// makes a new release, skipping the release phase (Cause).
type ConfigChange struct {
	Cause      Cause
	App        string
	Attachment string
	ResourceID string
	// Set holds full var names (DATABASE_URL) and their values.
	Set Config
	// Unset lists full var names to remove, sorted.
	Unset []string
}

// String describes the change without values.
func (c ConfigChange) String() string {
	return fmt.Sprintf("%s %s on app %q (resource %s): set %v unset %v", c.Cause, c.Attachment, c.App, c.ResourceID, c.Set.Keys(), c.Unset)
}

// Format prints String for every verb.
func (c ConfigChange) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// Empty reports whether the change sets and unsets nothing.
func (c ConfigChange) Empty() bool { return len(c.Set) == 0 && len(c.Unset) == 0 }

// Apply returns a copy of env with the change applied. env is not
// modified. This is where values leave their Secret wrapping: the result is
// a release's environment.
func (c ConfigChange) Apply(env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+len(c.Set))
	for k, v := range env {
		out[k] = v
	}
	for _, k := range c.Unset {
		delete(out, k)
	}
	for k, v := range c.Set {
		out[k] = v.Reveal()
	}
	return out
}

// AttachChange returns the config change that attaches a resource whose
// config is cfg as a. existing lists the app's current config var names: a
// var the attachment would set that already exists is refused with
// ErrConflict (as Heroku refuses to overwrite DATABASE_URL), so a user's own
// DATABASE_URL is never silently replaced; detach first or choose another
// name.
func AttachChange(a Attachment, cfg Config, existing []string) (ConfigChange, error) {
	if err := ValidateAttachmentName(a.Name); err != nil {
		return ConfigChange{}, err
	}
	if err := cfg.Validate(); err != nil {
		return ConfigChange{}, err
	}
	have := make(map[string]bool, len(existing))
	for _, n := range existing {
		have[n] = true
	}
	ch := ConfigChange{Cause: CauseAttach, App: a.App, Attachment: a.Name, ResourceID: a.ResourceID, Set: make(Config, len(cfg))}
	for _, k := range cfg.Keys() {
		name := VarName(a.Name, k)
		if have[name] {
			return ConfigChange{}, fmt.Errorf("%w: config var %s already exists on app %q", ErrConflict, name, a.App)
		}
		ch.Set[name] = cfg[k]
	}
	return ch, nil
}

// DetachChange returns the config change that detaches a resource whose
// config is cfg from a: every var the attachment set is unset.
func DetachChange(a Attachment, cfg Config) ConfigChange {
	ch := ConfigChange{Cause: CauseDetach, App: a.App, Attachment: a.Name, ResourceID: a.ResourceID}
	for _, k := range cfg.Keys() {
		ch.Unset = append(ch.Unset, VarName(a.Name, k))
	}
	return ch
}

// UpdateChange returns the config change that moves attachment a from the
// resource config old to cur, after a rotation (CauseRotate) or a plan
// change (CausePlanChange): changed and new keys are set, keys that
// disappeared are unset, unchanged ones are left out. The change may be
// Empty.
func UpdateChange(cause Cause, a Attachment, old, cur Config) ConfigChange {
	ch := ConfigChange{Cause: cause, App: a.App, Attachment: a.Name, ResourceID: a.ResourceID, Set: Config{}}
	for _, k := range cur.Keys() {
		if v, ok := old[k]; !ok || !v.Equal(cur[k]) {
			ch.Set[VarName(a.Name, k)] = cur[k]
		}
	}
	for _, k := range old.Keys() {
		if _, ok := cur[k]; !ok {
			ch.Unset = append(ch.Unset, VarName(a.Name, k))
		}
	}
	sort.Strings(ch.Unset)
	return ch
}

// Rotate replaces the credentials of resource id without downtime: it
// calls r.Rotate, hands the resource with its new config to publish (which
// makes and rolls out the new release, see UpdateChange with CauseRotate),
// waits grace so that instances still using the old credentials finish,
// and calls r.Retire.
//
// If publish fails, the old credentials are left working and Rotate returns
// the error; calling Rotate again retries with the same new credentials. If
// ctx ends during the grace period, Retire is not called; call Rotate again
// (or Retire) later.
func Rotate(ctx context.Context, r Rotator, id string, grace time.Duration, publish func(context.Context, Resource) error) (Resource, error) {
	res, err := r.Rotate(ctx, id)
	if err != nil {
		return Resource{}, err
	}
	if err := publish(ctx, res); err != nil {
		return res, fmt.Errorf("addons: rotate %s: publish new config: %w", id, err)
	}
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("addons: rotate %s: old credentials not retired: %w", id, ctx.Err())
		case <-t.C:
		}
	}
	if err := r.Retire(ctx, id); err != nil {
		return res, err
	}
	return res, nil
}
