package addontest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// ErrAccessDenied is returned by Memory.Use when the credentials do not
// grant access to the resource.
var ErrAccessDenied = errors.New("addontest: access denied")

// Memory is an in-memory reference Provisioner: each resource is a
// credentials check, reached through a URL mem://<id>:<password>@memory/<id>.
// It implements the whole contract, including PlanChanger and Rotator, and
// passes Run. Use it to test code that drives provisioners, and as a model
// when writing an adapter.
type Memory struct {
	// Plans are the plans offered. If nil, "small" and "large" are.
	Plans []addons.Plan
	// Logger receives one line per change. If nil, nothing is logged.
	Logger *slog.Logger

	mu    sync.Mutex
	byReq map[string]string // request id -> resource id
	res   map[string]*memResource
}

type memResource struct {
	req      addons.Request
	res      addons.Resource
	password string
	old      string // the password a pending rotation replaced
	pending  bool
	gone     bool
}

var (
	_ addons.Provisioner = (*Memory)(nil)
	_ addons.PlanChanger = (*Memory)(nil)
	_ addons.Rotator     = (*Memory)(nil)
)

// Service is the service name Memory reports.
const Service = "memory"

// Capabilities implements addons.Provisioner.
func (m *Memory) Capabilities() addons.Capabilities {
	plans := m.Plans
	if plans == nil {
		plans = []addons.Plan{{Name: "small", Description: "the default"}, {Name: "large"}}
	}
	return addons.Capabilities{Service: Service, DefaultAttachment: "MEMORY", Plans: plans, PlanChange: true, Rotation: true}
}

func (m *Memory) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Memory) fail(op, app, id string, err error) error {
	return &addons.Error{Op: op, Service: Service, App: app, ID: id, Err: err}
}

// Provision implements addons.Provisioner.
func (m *Memory) Provision(ctx context.Context, r addons.Request) (addons.Resource, error) {
	if err := ctx.Err(); err != nil {
		return addons.Resource{}, m.fail("provision", r.App, "", err)
	}
	if err := r.Validate(); err != nil {
		return addons.Resource{}, m.fail("provision", r.App, "", err)
	}
	plan, err := m.Capabilities().ResolvePlan(r.Plan)
	if err != nil {
		return addons.Resource{}, m.fail("provision", r.App, "", err)
	}
	r.Plan = plan
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byReq == nil {
		m.byReq, m.res = map[string]string{}, map[string]*memResource{}
	}
	if id, ok := m.byReq[r.RequestID]; ok {
		mr := m.res[id]
		if mr.gone || mr.req.App != r.App || mr.req.Plan != r.Plan {
			return addons.Resource{}, m.fail("provision", r.App, id, fmt.Errorf("%w: request id already used for another request or a deprovisioned resource", addons.ErrConflict))
		}
		return m.view(mr), nil
	}
	id := "mem-" + randomHex(8)
	mr := &memResource{req: r, password: randomHex(16)}
	mr.res = addons.Resource{ID: id, Service: Service, App: r.App, Plan: plan, CreatedAt: time.Now().UTC()}
	m.byReq[r.RequestID] = id
	m.res[id] = mr
	m.log().Info("addon provisioned", "service", Service, "id", id, "app", r.App, "plan", plan)
	return m.view(mr), nil
}

// view returns the resource with its current config; m.mu is held.
func (m *Memory) view(mr *memResource) addons.Resource {
	res := mr.res
	u := url.URL{Scheme: "mem", User: url.UserPassword(res.ID, mr.password), Host: "memory", Path: "/" + res.ID}
	res.Config = addons.Config{"URL": addons.NewSecret(u.String())}
	return res
}

func (m *Memory) lookup(op, id string) (*memResource, error) {
	mr, ok := m.res[id]
	if !ok || mr.gone {
		return nil, m.fail(op, "", id, addons.ErrNotFound)
	}
	return mr, nil
}

// Resource implements addons.Provisioner.
func (m *Memory) Resource(ctx context.Context, id string) (addons.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, err := m.lookup("resource", id)
	if err != nil {
		return addons.Resource{}, err
	}
	return m.view(mr), nil
}

// Deprovision implements addons.Provisioner.
func (m *Memory) Deprovision(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return m.fail("deprovision", "", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.res[id]
	if !ok {
		return m.fail("deprovision", "", id, addons.ErrNotFound)
	}
	if !mr.gone {
		mr.gone, mr.password, mr.old = true, "", ""
		m.log().Info("addon deprovisioned", "service", Service, "id", id, "app", mr.res.App)
	}
	return nil
}

// ChangePlan implements addons.PlanChanger.
func (m *Memory) ChangePlan(ctx context.Context, id, plan string) (addons.Resource, error) {
	if _, err := m.Capabilities().ResolvePlan(plan); err != nil || plan == "" {
		if err == nil {
			err = fmt.Errorf("%w: empty plan", addons.ErrUnknownPlan)
		}
		return addons.Resource{}, m.fail("change plan", "", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, err := m.lookup("change plan", id)
	if err != nil {
		return addons.Resource{}, err
	}
	mr.res.Plan = plan
	return m.view(mr), nil
}

// Rotate implements addons.Rotator.
func (m *Memory) Rotate(ctx context.Context, id string) (addons.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, err := m.lookup("rotate", id)
	if err != nil {
		return addons.Resource{}, err
	}
	if !mr.pending {
		mr.old, mr.password, mr.pending = mr.password, randomHex(16), true
		m.log().Info("addon credentials rotated", "service", Service, "id", id)
	}
	return m.view(mr), nil
}

// Retire implements addons.Rotator.
func (m *Memory) Retire(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, err := m.lookup("retire", id)
	if err != nil {
		return err
	}
	mr.old, mr.pending = "", false
	return nil
}

// Use checks that the credentials in cfg grant access to the resource
// target, as connecting to a real service would. It returns
// ErrAccessDenied when they do not.
func (m *Memory) Use(ctx context.Context, cfg addons.Config, target string) error {
	u, err := url.Parse(cfg["URL"].Reveal())
	if err != nil || u.Scheme != "mem" || u.User == nil {
		return fmt.Errorf("%w: not a memory URL", ErrAccessDenied)
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.res[target]
	if !ok || mr.gone || user != target || pass == "" || (pass != mr.password && pass != mr.old) {
		return fmt.Errorf("%w to %s", ErrAccessDenied, target)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
