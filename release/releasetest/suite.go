package releasetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/scale"
)

// Harness says how Run gets stores.
type Harness struct {
	// New returns an empty store; Run closes it. Required.
	New func(t *testing.T) release.Store
	// Reopen, if not nil, closes s and opens the same data again; Run then
	// checks that everything survives.
	Reopen func(t *testing.T, s release.Store) release.Store
	// Concurrency is the number of concurrent writers in the concurrency
	// tests; 0 means 8.
	Concurrency int
}

// Run runs the conformance suite against the stores h makes.
func Run(t *testing.T, h Harness) {
	if h.Concurrency == 0 {
		h.Concurrency = 8
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness, s release.Store)
	}{
		{"Apps", testApps},
		{"CreateRelease", testCreateRelease},
		{"ConfigBytes", testConfigBytes},
		{"Releases", testReleases},
		{"Change", testChange},
		{"CommitAtomic", testCommitAtomic},
		{"Journal", testJournal},
		{"Lease", testLease},
		{"LeaseExpiry", testLeaseExpiry},
		{"ConcurrentVersions", testConcurrentVersions},
		{"ConcurrentLeases", testConcurrentLeases},
		{"DeleteApp", testDeleteApp},
		{"Reopen", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := h.New(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, h, s)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustApp(t *testing.T, s release.Store, name string) {
	t.Helper()
	if err := s.CreateApp(ctxT(t), release.App{Name: name}); err != nil {
		t.Fatalf("CreateApp(%q): %v", name, err)
	}
}

func sampleRelease(t *testing.T) release.Release {
	t.Helper()
	cfg, err := release.NewConfig(map[string]string{"DATABASE_URL": "postgres://u:secret@h/db", "EMPTY": ""})
	if err != nil {
		t.Fatal(err)
	}
	return release.Release{
		Image:       scale.Image{Ref: "registry.local/app:abc", Digest: "sha256:" + strings.Repeat("ab", 32)},
		Processes:   map[string]string{"web": "bin/web --port $PORT", "worker": "bin/worker", "release": "bin/migrate"},
		Config:      cfg,
		Attachments: []release.Attachment{{Name: "DATABASE", Provider: "postgres", Resource: "db-1", Vars: []string{"DATABASE_URL"}}},
		Cause:       release.CauseBuild,
		Description: "Deploy abc",
		Status:      release.StatusReleasing,
	}
}

func create(t *testing.T, s release.Store, app string, r release.Release) release.Release {
	t.Helper()
	got, err := s.Commit(ctxT(t), app, release.Lease{}, release.Change{Create: &r})
	if err != nil {
		t.Fatalf("Commit(Create) on %s: %v", app, err)
	}
	return got
}

func sameRelease(t *testing.T, what string, got, want release.Release) {
	t.Helper()
	if got.App != want.App || got.Version != want.Version || got.Image != want.Image ||
		got.Cause != want.Cause || got.Description != want.Description || got.RollbackOf != want.RollbackOf ||
		got.Status != want.Status || got.FailureReason != want.FailureReason {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
	if fmt.Sprint(got.Processes) != fmt.Sprint(want.Processes) {
		t.Errorf("%s: processes %v, want %v", what, got.Processes, want.Processes)
	}
	if !got.Config.Equal(want.Config) {
		t.Errorf("%s: config %v differs from %v (values not shown)", what, got.Config, want.Config)
	}
	if fmt.Sprint(got.Attachments) != fmt.Sprint(want.Attachments) {
		t.Errorf("%s: attachments %v, want %v", what, got.Attachments, want.Attachments)
	}
	if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
		t.Errorf("%s: zero CreatedAt or UpdatedAt", what)
	}
}

func testApps(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	for _, n := range []string{"zeta", "alpha", "mid-1"} {
		mustApp(t, s, n)
	}
	if err := s.CreateApp(ctx, release.App{Name: "alpha"}); !errors.Is(err, release.ErrAppExists) {
		t.Errorf("duplicate CreateApp = %v, want ErrAppExists", err)
	}
	for _, bad := range []string{"", "Alpha", "1app", "a_b", strings.Repeat("a", 64)} {
		if err := s.CreateApp(ctx, release.App{Name: bad}); !errors.Is(err, release.ErrInvalid) {
			t.Errorf("CreateApp(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	apps, err := s.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
		if a.CreatedAt.IsZero() {
			t.Errorf("app %s has zero CreatedAt", a.Name)
		}
	}
	if got := strings.Join(names, ","); got != "alpha,mid-1,zeta" {
		t.Errorf("Apps = %s, want alpha,mid-1,zeta", got)
	}
	_, err = s.App(ctx, "nope")
	var nf *release.NotFoundError
	if !errors.Is(err, release.ErrAppNotFound) || !errors.As(err, &nf) || nf.App != "nope" {
		t.Errorf("App(nope) = %v, want *NotFoundError wrapping ErrAppNotFound", err)
	}
	a, err := s.App(ctx, "alpha")
	if err != nil || a.Name != "alpha" || a.Current != 0 || a.Latest != 0 {
		t.Errorf("App(alpha) = %+v, %v", a, err)
	}
}

func testCreateRelease(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	want := sampleRelease(t)
	r1 := create(t, s, "app", want)
	want.App, want.Version = "app", 1
	sameRelease(t, "created v1", r1, want)
	got, err := s.Release(ctx, "app", 1)
	if err != nil {
		t.Fatal(err)
	}
	sameRelease(t, "stored v1", got, want)

	r2 := create(t, s, "app", release.Release{Cause: release.CauseConfig})
	if r2.Version != 2 || r2.Status != release.StatusPending {
		t.Errorf("second release: version %d status %q, want 2 pending", r2.Version, r2.Status)
	}
	a, _ := s.App(ctx, "app")
	if a.Latest != 2 || a.Current != 0 {
		t.Errorf("app after two creates: latest %d current %d, want 2 0", a.Latest, a.Current)
	}
	if _, err := s.Release(ctx, "app", 3); !errors.Is(err, release.ErrReleaseNotFound) {
		t.Errorf("Release(v3) = %v, want ErrReleaseNotFound", err)
	}
	if _, err := s.Release(ctx, "app", 0); !errors.Is(err, release.ErrReleaseNotFound) {
		t.Errorf("Release(v0) = %v, want ErrReleaseNotFound", err)
	}
	if _, err := s.Release(ctx, "ghost", 1); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("Release(ghost) = %v, want ErrAppNotFound", err)
	}
	if _, err := s.Commit(ctx, "ghost", release.Lease{}, release.Change{Create: &release.Release{}}); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("Commit(ghost) = %v, want ErrAppNotFound", err)
	}
	// Mutating what was returned must not change what is stored.
	got.Processes["web"] = "changed"
	again, _ := s.Release(ctx, "app", 1)
	if again.Processes["web"] == "changed" {
		t.Error("the store shares its Processes map with callers")
	}
}

func testConfigBytes(t *testing.T, h Harness, s release.Store) {
	mustApp(t, s, "app")
	vars := map[string]string{
		"INVALID_UTF8": "\xff\xfe\x80 bytes",
		"NEWLINES":     "a\nb\r\nc",
		"BIG":          strings.Repeat("x", release.MaxValueBytes),
		"_under":       "ü ✓",
		"EQUALS":       "a=b=c",
	}
	cfg, err := release.NewConfig(vars)
	if err != nil {
		t.Fatal(err)
	}
	r := create(t, s, "app", release.Release{Config: cfg})
	got, err := s.Release(ctxT(t), "app", r.Version)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		if g, ok := got.Config.Get(k); !ok || g != v {
			t.Errorf("config var %s did not survive the store byte for byte", k)
		}
	}
	// A config that fails validation is refused and stores nothing.
	bad := release.Release{}
	bad.Config, _ = release.NewConfig(map[string]string{"NUL": "a\x00b"})
	if _, err := s.Commit(ctxT(t), "app", release.Lease{}, release.Change{Create: &bad}); !errors.Is(err, release.ErrInvalidConfig) {
		t.Errorf("Commit with a NUL value = %v, want ErrInvalidConfig", err)
	}
	if a, _ := s.App(ctxT(t), "app"); a.Latest != 1 {
		t.Errorf("latest = %d after a refused commit, want 1", a.Latest)
	}
}

func testReleases(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	mustApp(t, s, "other")
	for i := 1; i <= 5; i++ {
		create(t, s, "app", release.Release{Description: fmt.Sprint("r", i)})
	}
	create(t, s, "other", release.Release{})
	all, err := s.Releases(ctx, "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 {
		t.Fatalf("Releases = %d, want 5", len(all))
	}
	for i, r := range all {
		if r.Version != 5-i || r.App != "app" || r.Description != fmt.Sprint("r", 5-i) {
			t.Errorf("Releases[%d] = %s %q, want v%d newest first", i, r, r.Description, 5-i)
		}
	}
	two, err := s.Releases(ctx, "app", 2)
	if err != nil || len(two) != 2 || two[0].Version != 5 || two[1].Version != 4 {
		t.Errorf("Releases(limit 2) = %v, %v", two, err)
	}
	if _, err := s.Releases(ctx, "ghost", 0); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("Releases(ghost) = %v, want ErrAppNotFound", err)
	}
	none, err := s.Releases(ctx, "other", 0)
	if err != nil || len(none) != 1 {
		t.Errorf("Releases(other) = %v, %v; want one", none, err)
	}
}

func testChange(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	create(t, s, "app", release.Release{Status: release.StatusReleasing})
	one := 1
	form := []release.ProcessScale{{Type: "web", Count: 3, Resources: scale.Resources{MemoryBytes: 512 << 20, CPUs: 0.5}, Grace: 5 * time.Second}, {Type: "clock", Count: 1, Singleton: true}}
	r, err := s.Commit(ctx, "app", release.Lease{}, release.Change{
		Statuses:  []release.StatusChange{{Version: 1, Status: release.StatusDeployed}},
		Current:   &one,
		Formation: &form,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 0 {
		t.Errorf("Commit without Create returned %s", r)
	}
	a, _ := s.App(ctx, "app")
	if a.Current != 1 || fmt.Sprint(a.Formation) != fmt.Sprint(form) {
		t.Errorf("app = %+v, want current 1 and formation %v", a, form)
	}
	// Create, move the previous one and point current at the new one, at once.
	zero := 0
	r2, err := s.Commit(ctx, "app", release.Lease{}, release.Change{
		Create: &release.Release{Status: release.StatusReleasing},
		Statuses: []release.StatusChange{
			{Version: 1, Status: release.StatusSuperseded},
			{Version: 0, Status: release.StatusFailed, Reason: "release phase exited with code 1"},
		},
		Current: &zero,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Version != 2 || r2.Status != release.StatusFailed || r2.FailureReason == "" {
		t.Errorf("created = %+v, want v2 failed with a reason", r2)
	}
	v1, _ := s.Release(ctx, "app", 1)
	v2, _ := s.Release(ctx, "app", 2)
	a, _ = s.App(ctx, "app")
	if v1.Status != release.StatusSuperseded || v2.Status != release.StatusFailed || v2.FailureReason != r2.FailureReason || a.Current != 2 {
		t.Errorf("after commit: v1 %s, v2 %s %q, current %d", v1.Status, v2.Status, v2.FailureReason, a.Current)
	}
	// An empty reason keeps the old one.
	if _, err := s.Commit(ctx, "app", release.Lease{}, release.Change{Statuses: []release.StatusChange{{Version: 2, Status: release.StatusFailed}}}); err != nil {
		t.Fatal(err)
	}
	if v2, _ = s.Release(ctx, "app", 2); v2.FailureReason != r2.FailureReason {
		t.Errorf("reason = %q after a change without one, want it kept", v2.FailureReason)
	}
	for name, c := range map[string]release.Change{
		"unknown status":  {Statuses: []release.StatusChange{{Version: 1, Status: "bogus"}}},
		"version 0":       {Statuses: []release.StatusChange{{Version: 0, Status: release.StatusFailed}}},
		"negative count":  {Formation: &[]release.ProcessScale{{Type: "web", Count: -1}}},
		"bad type":        {Formation: &[]release.ProcessScale{{Type: "Web"}}},
		"deploy of v0":    {Deploy: &release.Deploy{}},
		"bad proc type":   {Create: &release.Release{Processes: map[string]string{"we b": "x"}}},
		"nul text":        {Create: &release.Release{Description: "a\x00b"}},
		"invalid utf8":    {Create: &release.Release{Processes: map[string]string{"web": "\xff"}}},
		"current 0 alone": {Current: &zero},
	} {
		if _, err := s.Commit(ctx, "app", release.Lease{}, c); !errors.Is(err, release.ErrInvalid) {
			t.Errorf("Commit(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

func testCommitAtomic(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	create(t, s, "app", release.Release{})
	one := 1
	_, err := s.Commit(ctx, "app", release.Lease{}, release.Change{
		Create:   &release.Release{},
		Statuses: []release.StatusChange{{Version: 1, Status: release.StatusDeployed}, {Version: 9, Status: release.StatusFailed}},
		Current:  &one,
		Deploy:   &release.Deploy{Step: release.StepStart},
	})
	if !errors.Is(err, release.ErrReleaseNotFound) {
		t.Fatalf("Commit touching v9 = %v, want ErrReleaseNotFound", err)
	}
	a, _ := s.App(ctx, "app")
	v1, _ := s.Release(ctx, "app", 1)
	_, ok, _ := s.Deploy(ctx, "app")
	if a.Latest != 1 || a.Current != 0 || v1.Status != release.StatusPending || ok {
		t.Errorf("a failed Commit left changes: latest %d current %d v1 %s journal %v", a.Latest, a.Current, v1.Status, ok)
	}
	// The next create still gets version 2: no version was burnt.
	if r := create(t, s, "app", release.Release{}); r.Version != 2 {
		t.Errorf("next version = %d, want 2", r.Version)
	}
}

func testJournal(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	if _, ok, err := s.Deploy(ctx, "app"); ok || err != nil {
		t.Errorf("Deploy on a new app = %v, %v; want none", ok, err)
	}
	if _, _, err := s.Deploy(ctx, "ghost"); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("Deploy(ghost) = %v, want ErrAppNotFound", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	r, err := s.Commit(ctx, "app", release.Lease{}, release.Change{
		Create: &release.Release{Status: release.StatusReleasing},
		Deploy: &release.Deploy{Previous: 0, Step: release.StepReleasePhase, Started: now, Updated: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := s.Deploy(ctx, "app")
	if err != nil || !ok || d.App != "app" || d.Release != r.Version || d.Step != release.StepReleasePhase || !d.Started.Equal(now) {
		t.Fatalf("journal = %+v %v %v, want release %d at release-phase started %v", d, ok, err, r.Version, now)
	}
	want := release.Deploy{App: "app", Release: 1, Previous: 0, Step: release.StepDone, Outcome: release.OutcomeRolledBack,
		Reason: "web.1 crashed", FailedAt: release.StepWatch, AutoRollback: true, SkipReleasePhase: true, WatchUntil: now.Add(time.Minute), Started: now, Updated: now.Add(time.Second)}
	if _, err := s.Commit(ctx, "app", release.Lease{}, release.Change{Deploy: &want}); err != nil {
		t.Fatal(err)
	}
	d, _, _ = s.Deploy(ctx, "app")
	if d.App != want.App || d.Release != want.Release || d.Step != want.Step || d.Outcome != want.Outcome || d.Reason != want.Reason || d.FailedAt != want.FailedAt ||
		d.AutoRollback != want.AutoRollback || d.SkipReleasePhase != want.SkipReleasePhase || !d.WatchUntil.Equal(want.WatchUntil) ||
		!d.Started.Equal(want.Started) || !d.Updated.Equal(want.Updated) || !d.Finished() {
		t.Errorf("journal = %+v, want %+v", d, want)
	}
	if _, err := s.Commit(ctx, "app", release.Lease{}, release.Change{Deploy: &release.Deploy{Release: 7}}); !errors.Is(err, release.ErrReleaseNotFound) {
		t.Errorf("journal for a missing release = %v, want ErrReleaseNotFound", err)
	}
}

func testLease(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	create(t, s, "app", release.Release{})
	if _, err := s.AcquireLease(ctx, "ghost", "a", time.Minute); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("AcquireLease(ghost) = %v, want ErrAppNotFound", err)
	}
	la, err := s.AcquireLease(ctx, "app", "cp-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if la.App != "app" || la.Owner != "cp-a" || la.Token == 0 || time.Until(la.Expires) < 30*time.Second {
		t.Errorf("lease = %+v", la)
	}
	_, err = s.AcquireLease(ctx, "app", "cp-b", time.Minute)
	var le *release.LeaseError
	if !errors.Is(err, release.ErrDeployInProgress) || !errors.As(err, &le) || le.Owner != "cp-a" {
		t.Fatalf("AcquireLease by another owner = %v, want *LeaseError held by cp-a", err)
	}
	// Fenced commits.
	if _, err := s.Commit(ctx, "app", la, release.Change{Statuses: []release.StatusChange{{Version: 1, Status: release.StatusReleasing}}}); err != nil {
		t.Errorf("Commit with the lease: %v", err)
	}
	// The same owner takes the lease again (a restarted control plane):
	// a new token, and the old one is fenced off.
	la2, err := s.AcquireLease(ctx, "app", "cp-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if la2.Token == la.Token {
		t.Errorf("re-acquisition kept token %d", la.Token)
	}
	if _, err := s.Commit(ctx, "app", la, release.Change{Statuses: []release.StatusChange{{Version: 1, Status: release.StatusFailed}}}); !errors.Is(err, release.ErrLeaseLost) {
		t.Errorf("Commit with a stale token = %v, want ErrLeaseLost", err)
	}
	if r, _ := s.Release(ctx, "app", 1); r.Status != release.StatusReleasing {
		t.Errorf("a fenced-off commit changed the status to %s", r.Status)
	}
	if _, err := s.RenewLease(ctx, la, time.Minute); !errors.Is(err, release.ErrLeaseLost) {
		t.Errorf("RenewLease with a stale token = %v, want ErrLeaseLost", err)
	}
	renewed, err := s.RenewLease(ctx, la2, 2*time.Minute)
	if err != nil || renewed.Token != la2.Token || !renewed.Expires.After(la2.Expires) {
		t.Errorf("RenewLease = %+v, %v; want the same token, later expiry", renewed, err)
	}
	if err := s.ReleaseLease(ctx, la); !errors.Is(err, release.ErrLeaseLost) {
		t.Errorf("ReleaseLease with a stale token = %v, want ErrLeaseLost", err)
	}
	if err := s.ReleaseLease(ctx, la2); err != nil {
		t.Fatal(err)
	}
	lb, err := s.AcquireLease(ctx, "app", "cp-b", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease after release: %v", err)
	}
	if lb.Token == la.Token || lb.Token == la2.Token {
		t.Errorf("token %d reused", lb.Token)
	}
	if _, err := s.Commit(ctx, "app", la2, release.Change{}); !errors.Is(err, release.ErrLeaseLost) {
		t.Errorf("Commit with a released lease = %v, want ErrLeaseLost", err)
	}
	if _, err := s.AcquireLease(ctx, "app", "", time.Minute); !errors.Is(err, release.ErrInvalid) {
		t.Errorf("AcquireLease without owner = %v, want ErrInvalid", err)
	}
}

func testLeaseExpiry(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	la, err := s.AcquireLease(ctx, "app", "dead", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "app", "alive", time.Minute); !errors.Is(err, release.ErrDeployInProgress) {
		t.Fatalf("AcquireLease before expiry = %v, want ErrDeployInProgress", err)
	}
	// An expired lease nobody took over can still be renewed.
	time.Sleep(400 * time.Millisecond)
	la, err = s.RenewLease(ctx, la, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("RenewLease of an expired, untaken lease: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	lb, err := s.AcquireLease(ctx, "app", "alive", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease after expiry: %v", err)
	}
	if _, err := s.Commit(ctx, "app", la, release.Change{}); !errors.Is(err, release.ErrLeaseLost) {
		t.Errorf("Commit by the expired holder = %v, want ErrLeaseLost", err)
	}
	if _, err := s.RenewLease(ctx, la, time.Minute); !errors.Is(err, release.ErrLeaseLost) {
		t.Errorf("RenewLease by the expired holder = %v, want ErrLeaseLost", err)
	}
	if _, err := s.Commit(ctx, "app", lb, release.Change{}); err != nil {
		t.Errorf("Commit by the new holder: %v", err)
	}
}

func testConcurrentVersions(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	const perWriter = 20
	apps := []string{"one", "two", "three"}
	for _, a := range apps {
		mustApp(t, s, a)
	}
	var wg sync.WaitGroup
	errs := make(chan error, h.Concurrency*perWriter*len(apps))
	got := make(chan release.Release, h.Concurrency*perWriter*len(apps))
	for w := 0; w < h.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				for _, a := range apps {
					r, err := s.Commit(ctx, a, release.Lease{}, release.Change{
						Create: &release.Release{Description: fmt.Sprintf("w%d-%d", w, i)},
						Deploy: &release.Deploy{Step: release.StepStart},
					})
					if err != nil {
						errs <- err
						return
					}
					got <- r
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(got)
	for err := range errs {
		t.Fatalf("concurrent Commit: %v", err)
	}
	seen := map[string]map[int]string{}
	for r := range got {
		if seen[r.App] == nil {
			seen[r.App] = map[int]string{}
		}
		if prev, dup := seen[r.App][r.Version]; dup {
			t.Errorf("%s v%d given to %s and %s", r.App, r.Version, prev, r.Description)
		}
		seen[r.App][r.Version] = r.Description
	}
	n := h.Concurrency * perWriter
	for _, a := range apps {
		all, err := s.Releases(ctx, a, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n || len(seen[a]) != n {
			t.Errorf("%s: %d stored, %d returned, want %d", a, len(all), len(seen[a]), n)
		}
		for i, r := range all {
			if r.Version != n-i || seen[a][r.Version] != r.Description {
				t.Errorf("%s: stored %s %q does not match what Commit returned", a, r, r.Description)
				break
			}
		}
		if ap, _ := s.App(ctx, a); ap.Latest != n {
			t.Errorf("%s: latest %d, want %d", a, ap.Latest, n)
		}
	}
}

func testConcurrentLeases(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	var mu sync.Mutex
	holders := 0
	var wg sync.WaitGroup
	for w := 0; w < h.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AcquireLease(ctx, "app", fmt.Sprint("owner-", w), time.Minute)
			if err == nil {
				mu.Lock()
				holders++
				mu.Unlock()
			} else if !errors.Is(err, release.ErrDeployInProgress) {
				t.Errorf("AcquireLease: %v", err)
			}
		}()
	}
	wg.Wait()
	if holders != 1 {
		t.Errorf("%d owners got the lease at once, want 1", holders)
	}
}

func testDeleteApp(t *testing.T, h Harness, s release.Store) {
	ctx := ctxT(t)
	mustApp(t, s, "app")
	create(t, s, "app", release.Release{Description: "old"})
	if _, err := s.AcquireLease(ctx, "app", "x", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp(ctx, "app"); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("second DeleteApp = %v, want ErrAppNotFound", err)
	}
	if _, err := s.App(ctx, "app"); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("App after delete = %v", err)
	}
	mustApp(t, s, "app")
	if r := create(t, s, "app", release.Release{}); r.Version != 1 || r.Description != "" {
		t.Errorf("recreated app's first release = %s %q, want a fresh v1", r, r.Description)
	}
	if _, ok, _ := s.Deploy(ctx, "app"); ok {
		t.Error("recreated app inherited a journal")
	}
	if _, err := s.AcquireLease(ctx, "app", "y", time.Minute); err != nil {
		t.Errorf("recreated app inherited a lease: %v", err)
	}
}

func testReopen(t *testing.T, h Harness, s release.Store) {
	if h.Reopen == nil {
		t.Skip("the store keeps nothing across a reopen (Harness.Reopen is nil)")
	}
	ctx := ctxT(t)
	mustApp(t, s, "app")
	want := sampleRelease(t)
	r := create(t, s, "app", want)
	one := 1
	form := []release.ProcessScale{{Type: "web", Count: 2}}
	if _, err := s.Commit(ctx, "app", release.Lease{}, release.Change{
		Current: &one, Formation: &form,
		Statuses: []release.StatusChange{{Version: 1, Status: release.StatusDeployed}},
		Deploy:   &release.Deploy{Release: 1, Step: release.StepWatch},
	}); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, "app", "cp", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	got, err := s.Release(ctx, "app", 1)
	if err != nil {
		t.Fatal(err)
	}
	want.App, want.Version, want.Status = "app", 1, release.StatusDeployed
	sameRelease(t, "v1 after reopen", got, want)
	if !got.CreatedAt.Equal(r.CreatedAt) {
		t.Errorf("CreatedAt %v, want %v", got.CreatedAt, r.CreatedAt)
	}
	a, _ := s.App(ctx, "app")
	if a.Current != 1 || a.Latest != 1 || fmt.Sprint(a.Formation) != fmt.Sprint(form) {
		t.Errorf("app after reopen = %+v", a)
	}
	if d, ok, _ := s.Deploy(ctx, "app"); !ok || d.Step != release.StepWatch || d.Release != 1 {
		t.Errorf("journal after reopen = %+v %v", d, ok)
	}
	if _, err := s.AcquireLease(ctx, "app", "other", time.Minute); !errors.Is(err, release.ErrDeployInProgress) {
		t.Errorf("lease after reopen: AcquireLease by another = %v, want ErrDeployInProgress", err)
	}
	if _, err := s.Commit(ctx, "app", l, release.Change{}); err != nil {
		t.Errorf("the lease's holder cannot commit after reopen: %v", err)
	}
}
