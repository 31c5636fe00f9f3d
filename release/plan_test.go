package release

import (
	"testing"
	"time"
)

func TestNextStep(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok, bad := StepResult{OK: true}, StepResult{Reason: "boom"}
	base := Deploy{App: "a", Release: 5, Previous: 4}
	cases := []struct {
		step     Step
		auto     bool
		r        StepResult
		watch    time.Duration
		want     Step
		outcome  Outcome
		current  int
		statuses int
		rollback bool
	}{
		{StepReleasePhase, false, ok, time.Minute, StepStart, "", 0, 0, false},
		{StepReleasePhase, false, bad, time.Minute, StepAbort, "", 0, 0, false},
		{StepStart, false, ok, time.Minute, StepSwitch, "", 0, 0, false},
		{StepStart, false, bad, time.Minute, StepAbort, "", 0, 0, false},
		{StepSwitch, false, ok, time.Minute, StepRetire, "", 0, 0, false},
		{StepSwitch, false, bad, time.Minute, StepAbort, "", 0, 0, false},
		{StepRetire, false, ok, time.Minute, StepWatch, "", 5, 2, false},
		{StepRetire, false, ok, 0, StepDone, OutcomeDeployed, 5, 2, false},
		{StepRetire, true, ok, time.Minute, StepDone, OutcomeDeployed, 5, 1, false},
		{StepWatch, false, ok, time.Minute, StepDone, OutcomeDeployed, 0, 0, false},
		{StepWatch, false, bad, time.Minute, StepRollback, "", 0, 1, false},
		{StepAbort, false, ok, time.Minute, StepDone, OutcomeFailed, 0, 1, false},
		{StepRollback, false, ok, time.Minute, StepDone, OutcomeRolledBack, 0, 0, true},
	}
	for _, c := range cases {
		d := base
		d.Step, d.AutoRollback = c.step, c.auto
		p := NextStep(d, c.r, now, c.watch)
		if p.Deploy.Step != c.want || p.Deploy.Outcome != c.outcome || len(p.Statuses) != c.statuses || p.Rollback != c.rollback {
			t.Errorf("%s auto=%v %+v: got %+v", c.step, c.auto, c.r, p)
		}
		if (p.Current == nil) != (c.current == 0) || (p.Current != nil && *p.Current != c.current) {
			t.Errorf("%s: current %v, want %d", c.step, p.Current, c.current)
		}
		if !p.Deploy.Updated.Equal(now) {
			t.Errorf("%s: Updated not set", c.step)
		}
		if c.want == StepWatch && !p.Deploy.WatchUntil.Equal(now.Add(c.watch)) {
			t.Errorf("WatchUntil = %v", p.Deploy.WatchUntil)
		}
	}
	// A failed watch with nothing to roll back to keeps the release.
	d := base
	d.Step, d.Previous = StepWatch, 0
	if p := NextStep(d, bad, now, time.Minute); p.Deploy.Step != StepDone || p.Deploy.Outcome != OutcomeDeployed {
		t.Errorf("watch failure without previous: %+v", p)
	}
}

// Every path through NextStep ends in StepDone within a few steps, and a
// deploy never passes StepSwitch after a failure.
func TestNextStepTerminates(t *testing.T) {
	now := time.Now()
	var walk func(d Deploy, depth int)
	walk = func(d Deploy, depth int) {
		if d.Step == StepDone {
			return
		}
		if depth > 8 {
			t.Fatalf("no end after %d steps: %+v", depth, d)
		}
		for _, r := range []StepResult{{OK: true}, {Reason: "x"}} {
			p := NextStep(d, r, now, time.Minute)
			if p.Rollback {
				continue
			}
			if d.Step == StepAbort && p.Deploy.Outcome != OutcomeFailed {
				t.Errorf("abort ended %q", p.Deploy.Outcome)
			}
			walk(p.Deploy, depth+1)
		}
	}
	walk(Deploy{Release: 2, Previous: 1, Step: StepReleasePhase}, 0)
	walk(Deploy{Release: 2, Previous: 1, Step: StepStart, AutoRollback: true}, 0)
}

func TestRecoverStep(t *testing.T) {
	now := time.Now()
	for _, s := range []Step{StepStart, StepSwitch, StepRetire, StepWatch, StepAbort, StepRollback, StepDone} {
		if got := RecoverStep(Deploy{Step: s}, now); got.Step != s {
			t.Errorf("RecoverStep(%s) = %s, want it resumed", s, got.Step)
		}
	}
	got := RecoverStep(Deploy{Step: StepReleasePhase}, now)
	if got.Step != StepAbort || got.Reason != InterruptedReleasePhase {
		t.Errorf("RecoverStep(release-phase) = %+v, want abort without running it again", got)
	}
}
