// Package addontest is the conformance suite for addons.Provisioner
// implementations, and an in-memory reference implementation (Memory) that
// passes it.
//
// An adapter author calls Run from an ordinary test, giving a constructor
// and one hook, Use, that proves a set of credentials can (or cannot) use a
// resource:
//
//	func TestConformance(t *testing.T) {
//		addontest.Run(t, addontest.Suite{
//			New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
//				return myadapter.New(myadapter.Config{Logger: log, ...})
//			},
//			Use: func(ctx context.Context, creds addons.Config, target addons.Resource) error {
//				// connect with creds to target's database/namespace, write and read
//			},
//		})
//	}
//
// The suite checks: provisioning works and its config var names are valid
// POSIX environment names; Provision is idempotent under sequential retries
// and under concurrency, and distinct requests get distinct resources; a
// request id reused for another app or plan is a conflict; unknown plans
// and invalid requests are refused with the right errors; app names with
// quotes, spaces, unicode and SQL keywords are handled safely; one tenant's
// credentials cannot use another tenant's resource (the Use hook, plus an
// optional adapter-specific Isolated hook); deprovisioning removes access
// and is idempotent; plan changes and credential rotation behave as
// documented when supported; and no credential ever appears in an error,
// in a String or fmt rendering, or in anything the provisioner logs.
package addontest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// Suite configures Run.
type Suite struct {
	// New returns the provisioner under test, logging to log (the suite
	// captures it to look for secrets). It is called once per Run.
	// Required.
	New func(t testing.TB, log *slog.Logger) addons.Provisioner

	// Use proves that the credentials creds can use the resource target:
	// it connects with creds to what target names (its database, its key
	// prefix, ...) and writes and reads something. It returns nil when that
	// worked and an error when access was refused. The suite calls it with
	// a resource's own config (must succeed) and with another resource's
	// config (must fail), and after deprovisioning (must fail). Required.
	Use func(ctx context.Context, creds addons.Config, target addons.Resource) error

	// Isolated, if set, runs adapter-specific isolation checks between two
	// live resources of different apps (for example that a's credentials
	// are refused by the server's admin database). It returns nil when a
	// is isolated from b.
	Isolated func(ctx context.Context, a, b addons.Resource) error

	// Concurrency is how many goroutines the concurrency checks run. Zero
	// means 8.
	Concurrency int

	// Timeout bounds the whole run. Zero means 2 minutes.
	Timeout time.Duration

	// HostileNames replaces the app names the hostile-name check uses.
	// Nil means the default list (quotes, spaces, unicode, SQL keywords).
	HostileNames []string
}

// DefaultHostileNames are app names that pass addons.ValidateApp but break
// naive string building: SQL, shell, URL and key-pattern syntax.
var DefaultHostileNames = []string{
	`it's "quoted"`,
	`x"; DROP ROLE postgres; --`,
	`'); DROP DATABASE postgres; --`,
	"with  spaces  and more",
	"ünïcødé-äpp-日本",
	"select",
	"user",
	"public",
	"a*b?c[d]:e",
	"100%_like\\backslash",
	"p@ss:w/rd#frag?q=1",
}

// Run runs the conformance suite against s.New's provisioner.
func Run(t *testing.T, s Suite) {
	t.Helper()
	if s.New == nil || s.Use == nil {
		t.Fatal("addontest: Suite.New and Suite.Use are required")
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 8
	}
	if s.Timeout <= 0 {
		s.Timeout = 2 * time.Minute
	}
	if s.HostileNames == nil {
		s.HostileNames = DefaultHostileNames
	}
	logs := &captureHandler{}
	p := s.New(t, slog.New(logs))
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	r := &runner{s: s, p: p, logs: logs, tag: randomHex(4)}
	t.Cleanup(func() { r.cleanup(t) })

	t.Run("Capabilities", r.capabilities)
	t.Run("ProvisionAndUse", func(t *testing.T) { r.provisionAndUse(ctx, t) })
	t.Run("IdempotentRetries", func(t *testing.T) { r.retries(ctx, t) })
	t.Run("IdempotentConcurrent", func(t *testing.T) { r.concurrent(ctx, t) })
	t.Run("RequestConflicts", func(t *testing.T) { r.conflicts(ctx, t) })
	t.Run("RefusedRequests", func(t *testing.T) { r.refused(ctx, t) })
	t.Run("HostileNames", func(t *testing.T) { r.hostile(ctx, t) })
	t.Run("Isolation", func(t *testing.T) { r.isolation(ctx, t) })
	t.Run("Deprovision", func(t *testing.T) { r.deprovision(ctx, t) })
	t.Run("PlanChange", func(t *testing.T) { r.planChange(ctx, t) })
	t.Run("Rotation", func(t *testing.T) { r.rotation(ctx, t) })
	t.Run("NoSecretsLeak", func(t *testing.T) { r.noLeaks(t) })
}

type runner struct {
	s    Suite
	p    addons.Provisioner
	logs *captureHandler
	tag  string

	mu       sync.Mutex
	n        int
	ids      []string
	secrets  map[string]bool
	rendered []string // errors and fmt renderings to check for secrets
}

func (r *runner) app(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return fmt.Sprintf("%s-%s-%d", name, r.tag, r.n)
}

func (r *runner) reqID() string { return "req-" + randomHex(12) }

// note records what must later be checked for secrets.
func (r *runner) note(res addons.Resource, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets == nil {
		r.secrets = map[string]bool{}
	}
	if err != nil {
		r.rendered = append(r.rendered, err.Error(), fmt.Sprintf("%+v", err))
	}
	if res.ID == "" {
		return
	}
	r.rendered = append(r.rendered, res.String(), fmt.Sprintf("%v %+v %#v %s", res, res, res, res.Config))
	for _, k := range res.Config.Keys() {
		v := res.Config[k].Reveal()
		for _, s := range secretParts(v) {
			r.secrets[s] = true
		}
	}
}

// secretParts returns the parts of a config value that are credentials: the
// password of a URL, or the whole value when it is not a URL with one.
// Short values (ports, prefixes under 8 bytes) are too likely to appear by
// chance and are skipped.
func secretParts(v string) []string {
	var out []string
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && len(pw) >= 8 {
			out = append(out, pw, url.QueryEscape(pw))
		}
		return out
	}
	return out
}

func (r *runner) provision(ctx context.Context, t *testing.T, req addons.Request) (addons.Resource, error) {
	t.Helper()
	res, err := r.p.Provision(ctx, req)
	r.note(res, err)
	if err == nil {
		r.mu.Lock()
		r.ids = append(r.ids, res.ID)
		r.mu.Unlock()
	}
	return res, err
}

func (r *runner) mustProvision(ctx context.Context, t *testing.T, app string) addons.Resource {
	t.Helper()
	res, err := r.provision(ctx, t, addons.Request{RequestID: r.reqID(), App: app})
	if err != nil {
		t.Fatalf("Provision(%q): %v", app, err)
	}
	return res
}

func (r *runner) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.mu.Lock()
	ids := append([]string(nil), r.ids...)
	r.mu.Unlock()
	for _, id := range ids {
		if err := r.p.Deprovision(ctx, id); err != nil {
			t.Errorf("cleanup: Deprovision(%s): %v", id, err)
		}
	}
}

func (r *runner) capabilities(t *testing.T) {
	c := r.p.Capabilities()
	if c.Service == "" {
		t.Error("Capabilities().Service is empty")
	}
	if len(c.Plans) == 0 {
		t.Error("Capabilities().Plans is empty")
	}
	for _, p := range c.Plans {
		if p.Name == "" || strings.ContainsAny(p.Name, " \t\n") {
			t.Errorf("plan name %q is empty or has white space", p.Name)
		}
	}
	if err := addons.ValidateAttachmentName(c.DefaultAttachment); err != nil {
		t.Errorf("DefaultAttachment: %v", err)
	}
	_, isPC := r.p.(addons.PlanChanger)
	_, isRot := r.p.(addons.Rotator)
	if c.PlanChange && !isPC {
		t.Error("Capabilities().PlanChange is set but the provisioner is not an addons.PlanChanger")
	}
	if c.Rotation && !isRot {
		t.Error("Capabilities().Rotation is set but the provisioner is not an addons.Rotator")
	}
	// A provisioner whose type implements an optional interface but whose
	// Capabilities leave it unset must refuse it with ErrUnsupported; the
	// suite checks that in PlanChange and Rotation.
}

func (r *runner) checkResource(t *testing.T, res addons.Resource, app, plan string) {
	t.Helper()
	c := r.p.Capabilities()
	if res.ID == "" {
		t.Error("resource has no ID")
	}
	if res.App != app {
		t.Errorf("resource App = %q, want %q", res.App, app)
	}
	if plan == "" {
		plan = c.Plans[0].Name
	}
	if res.Plan != plan {
		t.Errorf("resource Plan = %q, want %q", res.Plan, plan)
	}
	if len(res.Config) == 0 {
		t.Error("resource has no config vars")
	}
	for _, k := range res.Config.Keys() {
		if err := addons.ValidateConfigKey(k); err != nil {
			t.Errorf("config key: %v", err)
		}
		if err := addons.ValidateEnvName(addons.VarName(c.DefaultAttachment, k)); err != nil {
			t.Errorf("config var: %v", err)
		}
		if res.Config[k].IsZero() {
			t.Errorf("config var %s is empty", k)
		}
	}
}

func (r *runner) provisionAndUse(ctx context.Context, t *testing.T) {
	app := r.app("basic")
	res := r.mustProvision(ctx, t, app)
	r.checkResource(t, res, app, "")
	if err := r.s.Use(ctx, res.Config, res); err != nil {
		t.Fatalf("Use with the resource's own credentials: %v", err)
	}
	got, err := r.p.Resource(ctx, res.ID)
	r.note(got, err)
	if err != nil {
		t.Fatalf("Resource(%s): %v", res.ID, err)
	}
	if got.ID != res.ID || !got.Config.Equal(res.Config) || got.App != app {
		t.Errorf("Resource(%s) = %v, want %v", res.ID, got, res)
	}
	for _, plan := range r.p.Capabilities().Plans {
		app := r.app("plan")
		res, err := r.provision(ctx, t, addons.Request{RequestID: r.reqID(), App: app, Plan: plan.Name})
		if err != nil {
			t.Fatalf("Provision on plan %q: %v", plan.Name, err)
		}
		r.checkResource(t, res, app, plan.Name)
		if err := r.s.Use(ctx, res.Config, res); err != nil {
			t.Errorf("Use on plan %q: %v", plan.Name, err)
		}
	}
}

func (r *runner) retries(ctx context.Context, t *testing.T) {
	req := addons.Request{RequestID: r.reqID(), App: r.app("retry")}
	first, err := r.provision(ctx, t, req)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again, err := r.provision(ctx, t, req)
		if err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
		if again.ID != first.ID || !again.Config.Equal(first.Config) {
			t.Fatalf("retry %d returned %v, first call %v", i, again, first)
		}
	}
	// An explicit default plan is the same request as an empty one.
	req.Plan = r.p.Capabilities().Plans[0].Name
	again, err := r.provision(ctx, t, req)
	if err != nil || again.ID != first.ID {
		t.Fatalf("retry naming the default plan: %v, %v", again, err)
	}
	if err := r.s.Use(ctx, first.Config, first); err != nil {
		t.Fatalf("Use after retries: %v", err)
	}
	// A retry after a cancelled attempt converges on one resource.
	req2 := addons.Request{RequestID: r.reqID(), App: r.app("cancelled")}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.provision(cctx, t, req2); err == nil {
		t.Log("Provision with a cancelled context succeeded; allowed")
	}
	a, err := r.provision(ctx, t, req2)
	if err != nil {
		t.Fatalf("retry after cancel: %v", err)
	}
	b, err := r.provision(ctx, t, req2)
	if err != nil || b.ID != a.ID {
		t.Fatalf("second retry after cancel: %v %v", b, err)
	}
}

func (r *runner) concurrent(ctx context.Context, t *testing.T) {
	n := r.s.Concurrency
	// Same request from n goroutines: one resource.
	req := addons.Request{RequestID: r.reqID(), App: r.app("same")}
	results := make([]addons.Resource, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.provision(ctx, t, req)
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("concurrent Provision %d: %v", i, errs[i])
		}
		if results[i].ID != results[0].ID || !results[i].Config.Equal(results[0].Config) {
			t.Fatalf("concurrent Provision of one request made two resources: %s and %s", results[0].ID, results[i].ID)
		}
	}
	if err := r.s.Use(ctx, results[0].Config, results[0]); err != nil {
		t.Fatalf("Use: %v", err)
	}
	// n distinct requests: n distinct, working resources.
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.provision(ctx, t, addons.Request{RequestID: r.reqID(), App: r.app("many")})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("concurrent Provision %d: %v", i, errs[i])
		}
		if seen[results[i].ID] {
			t.Fatalf("two requests got the same resource %s", results[i].ID)
		}
		seen[results[i].ID] = true
		if err := r.s.Use(ctx, results[i].Config, results[i]); err != nil {
			t.Errorf("Use %s: %v", results[i].ID, err)
		}
	}
}

func (r *runner) conflicts(ctx context.Context, t *testing.T) {
	req := addons.Request{RequestID: r.reqID(), App: r.app("conflict")}
	if _, err := r.provision(ctx, t, req); err != nil {
		t.Fatal(err)
	}
	other := req
	other.App = r.app("other")
	if _, err := r.provision(ctx, t, other); !errors.Is(err, addons.ErrConflict) {
		t.Errorf("request id reused for another app: got %v, want ErrConflict", err)
	}
	if plans := r.p.Capabilities().Plans; len(plans) > 1 {
		other := req
		other.Plan = plans[1].Name
		if _, err := r.provision(ctx, t, other); !errors.Is(err, addons.ErrConflict) {
			t.Errorf("request id reused for another plan: got %v, want ErrConflict", err)
		}
	}
}

func (r *runner) refused(ctx context.Context, t *testing.T) {
	cases := []struct {
		name string
		req  addons.Request
		want error
	}{
		{"unknown plan", addons.Request{RequestID: r.reqID(), App: r.app("plan"), Plan: "no-such-plan-" + r.tag}, addons.ErrUnknownPlan},
		{"no request id", addons.Request{App: r.app("noid")}, addons.ErrInvalidRequest},
		{"no app", addons.Request{RequestID: r.reqID()}, addons.ErrInvalidName},
		{"control character", addons.Request{RequestID: r.reqID(), App: "bad\napp"}, addons.ErrInvalidName},
		{"invalid utf-8", addons.Request{RequestID: r.reqID(), App: "bad\xff"}, addons.ErrInvalidName},
	}
	for _, c := range cases {
		_, err := r.provision(ctx, t, c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	for _, id := range []string{"no-such-resource-" + r.tag, "x'; DROP TABLE y; --"} {
		_, err := r.p.Resource(ctx, id)
		r.note(addons.Resource{}, err)
		if !errors.Is(err, addons.ErrNotFound) {
			t.Errorf("Resource(%q): got %v, want ErrNotFound", id, err)
		}
		err = r.p.Deprovision(ctx, id)
		r.note(addons.Resource{}, err)
		if !errors.Is(err, addons.ErrNotFound) {
			t.Errorf("Deprovision(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

func (r *runner) hostile(ctx context.Context, t *testing.T) {
	for _, name := range r.s.HostileNames {
		if addons.ValidateApp(name) != nil {
			t.Errorf("hostile name %q does not pass addons.ValidateApp; fix the suite configuration", name)
			continue
		}
		res, err := r.provision(ctx, t, addons.Request{RequestID: r.reqID(), App: name})
		if errors.Is(err, addons.ErrInvalidName) {
			t.Logf("app name %q refused: %v", name, err)
			continue
		}
		if err != nil {
			t.Errorf("app name %q: %v", name, err)
			continue
		}
		r.checkResource(t, res, name, "")
		if err := r.s.Use(ctx, res.Config, res); err != nil {
			t.Errorf("Use for app name %q: %v", name, err)
		}
		if err := r.p.Deprovision(ctx, res.ID); err != nil {
			t.Errorf("Deprovision for app name %q: %v", name, err)
		}
	}
}

func (r *runner) isolation(ctx context.Context, t *testing.T) {
	a := r.mustProvision(ctx, t, r.app("tenant-a"))
	b := r.mustProvision(ctx, t, r.app("tenant-b"))
	for _, res := range []addons.Resource{a, b} {
		if err := r.s.Use(ctx, res.Config, res); err != nil {
			t.Fatalf("Use %s with its own credentials (the hook's positive control): %v", res.ID, err)
		}
	}
	if err := r.s.Use(ctx, a.Config, b); err == nil {
		t.Errorf("app %q's credentials can use app %q's resource", a.App, b.App)
	}
	if err := r.s.Use(ctx, b.Config, a); err == nil {
		t.Errorf("app %q's credentials can use app %q's resource", b.App, a.App)
	}
	if r.s.Isolated != nil {
		if err := r.s.Isolated(ctx, a, b); err != nil {
			t.Errorf("Isolated(%s, %s): %v", a.ID, b.ID, err)
		}
		if err := r.s.Isolated(ctx, b, a); err != nil {
			t.Errorf("Isolated(%s, %s): %v", b.ID, a.ID, err)
		}
	}
}

func (r *runner) deprovision(ctx context.Context, t *testing.T) {
	req := addons.Request{RequestID: r.reqID(), App: r.app("gone")}
	res, err := r.provision(ctx, t, req)
	if err != nil {
		t.Fatal(err)
	}
	keep := r.mustProvision(ctx, t, r.app("kept"))
	if err := r.s.Use(ctx, res.Config, res); err != nil {
		t.Fatalf("Use before Deprovision: %v", err)
	}
	if err := r.p.Deprovision(ctx, res.ID); err != nil {
		t.Fatalf("Deprovision: %v", err)
	}
	if err := r.s.Use(ctx, res.Config, res); err == nil {
		t.Error("credentials still work after Deprovision")
	}
	if err := r.p.Deprovision(ctx, res.ID); err != nil {
		t.Errorf("second Deprovision: got %v, want nil", err)
	}
	if _, err := r.p.Resource(ctx, res.ID); !errors.Is(err, addons.ErrNotFound) {
		t.Errorf("Resource after Deprovision: got %v, want ErrNotFound", err)
	}
	if _, err := r.provision(ctx, t, req); !errors.Is(err, addons.ErrConflict) {
		t.Errorf("Provision reusing a deprovisioned resource's request id: got %v, want ErrConflict", err)
	}
	if err := r.s.Use(ctx, keep.Config, keep); err != nil {
		t.Errorf("deprovisioning one resource broke another: %v", err)
	}
	// Concurrent deprovisions of one resource all succeed.
	res2 := r.mustProvision(ctx, t, r.app("gone2"))
	var wg sync.WaitGroup
	errs := make([]error, r.s.Concurrency)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.p.Deprovision(ctx, res2.ID) }()
	}
	wg.Wait()
	for _, err := range errs {
		r.note(addons.Resource{}, err)
		if err != nil {
			t.Errorf("concurrent Deprovision: %v", err)
		}
	}
}

func (r *runner) planChange(ctx context.Context, t *testing.T) {
	pc, ok := r.p.(addons.PlanChanger)
	plans := r.p.Capabilities().Plans
	if !ok || !r.p.Capabilities().PlanChange || len(plans) < 2 {
		if ok && !r.p.Capabilities().PlanChange {
			if _, err := pc.ChangePlan(ctx, "no-such-resource-"+r.tag, plans[0].Name); !errors.Is(err, addons.ErrUnsupported) {
				t.Errorf("ChangePlan without the capability: got %v, want ErrUnsupported", err)
			}
		}
		t.Skip("plan changes not supported, or fewer than two plans")
	}
	res := r.mustProvision(ctx, t, r.app("replan"))
	got, err := pc.ChangePlan(ctx, res.ID, plans[1].Name)
	r.note(got, err)
	if err != nil {
		t.Fatalf("ChangePlan: %v", err)
	}
	if got.Plan != plans[1].Name || got.ID != res.ID {
		t.Errorf("ChangePlan returned %v", got)
	}
	if err := r.s.Use(ctx, got.Config, got); err != nil {
		t.Errorf("Use after ChangePlan: %v", err)
	}
	if again, err := pc.ChangePlan(ctx, res.ID, plans[1].Name); err != nil || again.Plan != plans[1].Name {
		t.Errorf("ChangePlan to the current plan: %v %v", again, err)
	}
	if _, err := pc.ChangePlan(ctx, res.ID, "no-such-plan-"+r.tag); !errors.Is(err, addons.ErrUnknownPlan) {
		t.Errorf("ChangePlan to an unknown plan: got %v", err)
	}
	if _, err := pc.ChangePlan(ctx, "no-such-resource-"+r.tag, plans[0].Name); !errors.Is(err, addons.ErrNotFound) {
		t.Errorf("ChangePlan of an unknown resource: got %v", err)
	}
}

func (r *runner) rotation(ctx context.Context, t *testing.T) {
	rot, ok := r.p.(addons.Rotator)
	if !ok || !r.p.Capabilities().Rotation {
		if ok {
			if _, err := rot.Rotate(ctx, "no-such-resource-"+r.tag); !errors.Is(err, addons.ErrUnsupported) {
				t.Errorf("Rotate without the capability: got %v, want ErrUnsupported", err)
			}
		}
		t.Skip("rotation not supported")
	}
	res := r.mustProvision(ctx, t, r.app("rotate"))
	fresh, err := rot.Rotate(ctx, res.ID)
	r.note(fresh, err)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if fresh.Config.Equal(res.Config) {
		t.Fatal("Rotate returned the old credentials")
	}
	if err := r.s.Use(ctx, fresh.Config, res); err != nil {
		t.Errorf("new credentials during the grace period: %v", err)
	}
	if err := r.s.Use(ctx, res.Config, res); err != nil {
		t.Errorf("old credentials during the grace period: %v", err)
	}
	again, err := rot.Rotate(ctx, res.ID)
	r.note(again, err)
	if err != nil || !again.Config.Equal(fresh.Config) {
		t.Errorf("Rotate before Retire is not idempotent: %v", err)
	}
	if cur, err := r.p.Resource(ctx, res.ID); err != nil || !cur.Config.Equal(fresh.Config) {
		t.Errorf("Resource after Rotate does not report the new credentials: %v", err)
	}
	if err := rot.Retire(ctx, res.ID); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if err := r.s.Use(ctx, res.Config, res); err == nil {
		t.Error("old credentials still work after Retire")
	}
	if err := r.s.Use(ctx, fresh.Config, res); err != nil {
		t.Errorf("new credentials after Retire: %v", err)
	}
	if err := rot.Retire(ctx, res.ID); err != nil {
		t.Errorf("Retire with nothing pending: %v", err)
	}
	// A second rotation works too.
	third, err := rot.Rotate(ctx, res.ID)
	r.note(third, err)
	if err != nil || third.Config.Equal(fresh.Config) {
		t.Fatalf("second Rotate: %v", err)
	}
	if err := rot.Retire(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Use(ctx, third.Config, res); err != nil {
		t.Errorf("credentials after a second rotation: %v", err)
	}
	if err := r.s.Use(ctx, fresh.Config, res); err == nil {
		t.Error("credentials of the first rotation still work after the second")
	}
	if _, err := rot.Rotate(ctx, "no-such-resource-"+r.tag); !errors.Is(err, addons.ErrNotFound) {
		t.Errorf("Rotate of an unknown resource: got %v", err)
	}
}

func (r *runner) noLeaks(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		t.Log("no URL passwords seen in config values; only whole values were checked")
	}
	texts := append([]string{r.logs.String()}, r.rendered...)
	for s := range r.secrets {
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				t.Errorf("a credential appears in an error, a rendering or a log line: %.200q", txt)
				break
			}
		}
	}
	if r.logs.Len() == 0 {
		t.Log("the provisioner logged nothing")
	}
}

// captureHandler is a slog.Handler that renders every record, at every
// level, into one buffer, including values that implement LogValuer.
type captureHandler struct {
	mu    sync.Mutex
	buf   strings.Builder
	attrs []slog.Attr
	group string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	write := func(a slog.Attr) {
		v := a.Value.Resolve()
		fmt.Fprintf(&b, " %s%s=%v", h.group, a.Key, v.Any())
	}
	for _, a := range h.attrs {
		write(a)
	}
	rec.Attrs(func(a slog.Attr) bool { write(a); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.WriteString(b.String() + "\n")
	return nil
}

func (h *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sharedCapture{root: h, attrs: attrs}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &sharedCapture{root: h, group: name + "."}
}

func (h *captureHandler) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}

func (h *captureHandler) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.Len()
}

// sharedCapture is a derived handler writing into its root's buffer.
type sharedCapture struct {
	root  *captureHandler
	attrs []slog.Attr
	group string
}

func (h *sharedCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *sharedCapture) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	for _, a := range h.attrs {
		rec.AddAttrs(slog.Attr{Key: h.group + a.Key, Value: a.Value})
	}
	return h.root.Handle(ctx, rec)
}

func (h *sharedCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sharedCapture{root: h.root, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...), group: h.group}
}

func (h *sharedCapture) WithGroup(name string) slog.Handler {
	return &sharedCapture{root: h.root, attrs: h.attrs, group: h.group + name + "."}
}
