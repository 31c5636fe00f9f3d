package release

import "time"

// StepResult is how the action of one deploy step came out.
type StepResult struct {
	OK     bool
	Reason string // why it failed; never holds config values
}

// Plan says what the Manager does after a step: the journal to write and
// the release statuses and current version to write with it, in one
// Store.Commit. It is computed by NextStep, a pure function.
type Plan struct {
	Deploy   Deploy
	Statuses []StatusChange
	Current  *int
	// Rollback is set when the deploy must be replaced by the deploy of a
	// new release copying Deploy.Previous (the Manager creates it in the
	// same Commit).
	Rollback bool
}

// NextStep decides where deploy d goes once the action of its step came
// out as r. watch is the post-switch watch window (0 or less: none). It
// does not look at anything but its arguments.
func NextStep(d Deploy, r StepResult, now time.Time, watch time.Duration) Plan {
	d.Updated = now
	fail := func(step Step) Plan {
		d.FailedAt, d.Step, d.Reason = d.Step, step, r.Reason
		return Plan{Deploy: d}
	}
	switch d.Step {
	case StepReleasePhase:
		if !r.OK {
			return fail(StepAbort)
		}
		d.Step = StepStart
	case StepStart:
		if !r.OK {
			return fail(StepAbort)
		}
		d.Step = StepSwitch
	case StepSwitch:
		if !r.OK {
			return fail(StepAbort)
		}
		d.Step = StepRetire
	case StepRetire:
		// Traffic is on the new release and the old one is stopped: the
		// new release is the app's current one from here on.
		cur := d.Release
		p := Plan{Current: &cur, Statuses: []StatusChange{{Version: d.Release, Status: StatusDeployed}}}
		if d.Previous > 0 && d.Previous != d.Release && !d.AutoRollback {
			p.Statuses = append(p.Statuses, StatusChange{Version: d.Previous, Status: StatusSuperseded})
		}
		if d.AutoRollback || watch <= 0 {
			d.Step, d.Outcome = StepDone, OutcomeDeployed
		} else {
			d.Step, d.WatchUntil = StepWatch, now.Add(watch)
		}
		p.Deploy = d
		return p
	case StepWatch:
		if !r.OK && d.Previous > 0 {
			d.FailedAt, d.Step, d.Reason = StepWatch, StepRollback, r.Reason
			return Plan{Deploy: d, Statuses: []StatusChange{{Version: d.Release, Status: StatusFailed, Reason: "rolled back: " + r.Reason}}}
		}
		// Healthy through the window, or nothing to roll back to.
		d.Step, d.Outcome = StepDone, OutcomeDeployed
		if !r.OK {
			d.Reason = r.Reason
		}
	case StepAbort:
		d.Step, d.Outcome = StepDone, OutcomeFailed
		return Plan{Deploy: d, Statuses: []StatusChange{{Version: d.Release, Status: StatusFailed, Reason: d.Reason}}}
	case StepRollback:
		d.Step, d.Outcome = StepDone, OutcomeRolledBack
		return Plan{Deploy: d, Rollback: true}
	}
	return Plan{Deploy: d}
}

// InterruptedReleasePhase is the failure reason of a release whose release
// phase was under way when the control plane died: it is not run again
// unless someone deploys again.
const InterruptedReleasePhase = "the control plane stopped during the release phase; it is not run twice: deploy again to retry"

// RecoverStep decides where to resume a deploy found unfinished in the
// journal after a restart. Every step's action is idempotent and is run
// again, except the release phase, which may have had effects (a
// migration): it goes to StepAbort. It is a pure function.
func RecoverStep(d Deploy, now time.Time) Deploy {
	if d.Step == StepReleasePhase {
		d.FailedAt, d.Step, d.Reason, d.Updated = StepReleasePhase, StepAbort, InterruptedReleasePhase, now
	}
	return d
}
