package httpaddon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// Auth is how the client authenticates to the provider. Set Bearer, or
// Username and Password; the zero value sends no Authorization header.
type Auth struct {
	Bearer   addons.Secret
	Username string
	Password addons.Secret
}

func (a Auth) apply(r *http.Request) {
	switch {
	case !a.Bearer.IsZero():
		r.Header.Set("Authorization", "Bearer "+a.Bearer.Reveal())
	case a.Username != "":
		r.SetBasicAuth(a.Username, a.Password.Reveal())
	}
}

// Config configures a Provisioner.
type Config struct {
	// BaseURL is the provider's base URL, e.g. https://queue.example/slipway.
	// Required.
	BaseURL string
	// Auth authenticates every request.
	Auth Auth
	// Service, DefaultAttachment and Plans describe the provider's service
	// (see addons.Capabilities). Service and Plans are required; an empty
	// DefaultAttachment means the upper-cased service name.
	Service           string
	DefaultAttachment string
	Plans             []addons.Plan
	// PlanChange and Rotation declare that the provider implements the
	// optional endpoints. Without them, ChangePlan, Rotate and Retire
	// return addons.ErrUnsupported without calling the provider.
	PlanChange bool
	Rotation   bool
	// Client sends the requests. If nil, a new http.Client with default
	// settings is used (never http.DefaultClient).
	Client *http.Client
	// AttemptTimeout bounds each attempt. Zero means 10 s.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the attempts of one call, transient failures
	// included. Zero means 4.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff with full jitter, or follows Retry-After up to
	// MaxBackoff. Zero means 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is the wait between polls of an asynchronous provision
	// (202) without Retry-After. Zero means 1 s.
	PollInterval time.Duration
	// MaxResponseBytes bounds a response body. Zero means 1 MiB.
	MaxResponseBytes int64
	// Logger receives one line per change and per retried attempt, never a
	// credential. If nil, nothing is logged.
	Logger *slog.Logger
}

// Provisioner is the HTTP addons.Provisioner. It is safe for concurrent
// use.
type Provisioner struct {
	cfg  Config
	base *url.URL
	caps addons.Capabilities
	log  *slog.Logger
}

var (
	_ addons.Provisioner = (*Provisioner)(nil)
	_ addons.PlanChanger = (*Provisioner)(nil)
	_ addons.Rotator     = (*Provisioner)(nil)
)

// New checks cfg and returns a provisioner. It does no I/O.
func New(cfg Config) (*Provisioner, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("httpaddon: Config.BaseURL must be an absolute http(s) URL")
	}
	if base.User != nil {
		return nil, errors.New("httpaddon: put credentials in Config.Auth, not in BaseURL")
	}
	if cfg.Service == "" || len(cfg.Plans) == 0 {
		return nil, errors.New("httpaddon: Config.Service and Config.Plans are required")
	}
	caps := addons.Capabilities{Service: cfg.Service, DefaultAttachment: cfg.DefaultAttachment, Plans: cfg.Plans, PlanChange: cfg.PlanChange, Rotation: cfg.Rotation}
	if caps.DefaultAttachment == "" {
		caps.DefaultAttachment = addons.AttachmentName(addons.Capabilities{Service: cfg.Service}, nil)
	}
	if err := addons.ValidateAttachmentName(caps.DefaultAttachment); err != nil {
		return nil, fmt.Errorf("httpaddon: Config.DefaultAttachment: %w", err)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	p := &Provisioner{cfg: cfg, base: base, caps: caps, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Capabilities implements addons.Provisioner.
func (p *Provisioner) Capabilities() addons.Capabilities { return p.caps }

// wireResource is a resource on the wire.
type wireResource struct {
	ID        string        `json:"id"`
	App       string        `json:"app,omitempty"`
	Plan      string        `json:"plan,omitempty"`
	Config    addons.Config `json:"config"`
	CreatedAt time.Time     `json:"created_at,omitzero"`
}

type wireError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message,omitempty"`
	} `json:"error"`
}

type provisionBody struct {
	RequestID string `json:"request_id"`
	App       string `json:"app"`
	Plan      string `json:"plan"`
}

// Provision implements addons.Provisioner.
func (p *Provisioner) Provision(ctx context.Context, r addons.Request) (addons.Resource, error) {
	if err := r.Validate(); err != nil {
		return addons.Resource{}, p.fail("provision", r.App, "", err)
	}
	plan, err := p.caps.ResolvePlan(r.Plan)
	if err != nil {
		return addons.Resource{}, p.fail("provision", r.App, "", err)
	}
	body, _ := json.Marshal(provisionBody{RequestID: r.RequestID, App: r.App, Plan: plan})
	for {
		var w wireResource
		status, retryAfter, err := p.call(ctx, http.MethodPost, "/resources", r.RequestID, body, &w)
		if err != nil {
			return addons.Resource{}, p.fail("provision", r.App, "", err)
		}
		if status != http.StatusAccepted {
			res, err := p.resource(w, r.App, plan)
			if err != nil {
				return addons.Resource{}, p.fail("provision", r.App, w.ID, err)
			}
			if res.App != r.App || res.Plan != plan {
				return addons.Resource{}, p.fail("provision", r.App, res.ID, fmt.Errorf("%w: provider answered a resource of another app or plan", addons.ErrConflict))
			}
			p.log.Info("addon provisioned", "service", p.caps.Service, "id", res.ID, "app", res.App, "plan", res.Plan)
			return res, nil
		}
		// 202: provisioning continues at the provider; ask again.
		wait := p.cfg.PollInterval
		if retryAfter > 0 {
			wait = min(retryAfter, p.cfg.MaxBackoff)
		}
		if err := sleep(ctx, wait); err != nil {
			return addons.Resource{}, p.fail("provision", r.App, "", err)
		}
	}
}

// resource checks and converts a provider's answer.
func (p *Provisioner) resource(w wireResource, app, plan string) (addons.Resource, error) {
	if w.ID == "" || len(w.ID) > addons.MaxRequestID || strings.ContainsFunc(w.ID, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return addons.Resource{}, fmt.Errorf("%w: provider answered an invalid resource id", errProtocol)
	}
	if len(w.Config) == 0 {
		return addons.Resource{}, fmt.Errorf("%w: provider answered no config", errProtocol)
	}
	if err := w.Config.Validate(); err != nil {
		return addons.Resource{}, fmt.Errorf("%w: provider answered an invalid config key", errProtocol)
	}
	if w.App == "" {
		w.App = app
	}
	if w.Plan == "" {
		w.Plan = plan
	}
	return addons.Resource{ID: w.ID, Service: p.caps.Service, App: w.App, Plan: w.Plan, Config: w.Config, CreatedAt: w.CreatedAt}, nil
}

// path returns the escaped path of resource id's endpoint.
func (p *Provisioner) path(id string, suffix string) string {
	return "/resources/" + url.PathEscape(id) + suffix
}

// badID reports ids that cannot name a resource in a path.
func badID(id string) bool { return id == "" || id == "." || id == ".." }

// Resource implements addons.Provisioner.
func (p *Provisioner) Resource(ctx context.Context, id string) (addons.Resource, error) {
	if badID(id) {
		return addons.Resource{}, p.fail("resource", "", id, addons.ErrNotFound)
	}
	var w wireResource
	if _, _, err := p.call(ctx, http.MethodGet, p.path(id, ""), "", nil, &w); err != nil {
		return addons.Resource{}, p.fail("resource", "", id, err)
	}
	res, err := p.resource(w, "", "")
	if err != nil {
		return addons.Resource{}, p.fail("resource", "", id, err)
	}
	return res, nil
}

// Deprovision implements addons.Provisioner.
func (p *Provisioner) Deprovision(ctx context.Context, id string) error {
	if badID(id) {
		return p.fail("deprovision", "", id, addons.ErrNotFound)
	}
	status, _, err := p.call(ctx, http.MethodDelete, p.path(id, ""), "", nil, nil)
	if err != nil && status != http.StatusGone {
		return p.fail("deprovision", "", id, err)
	}
	p.log.Info("addon deprovisioned", "service", p.caps.Service, "id", id)
	return nil
}

// ChangePlan implements addons.PlanChanger.
func (p *Provisioner) ChangePlan(ctx context.Context, id, plan string) (addons.Resource, error) {
	if !p.caps.PlanChange {
		return addons.Resource{}, p.fail("change plan", "", id, addons.ErrUnsupported)
	}
	if !p.caps.HasPlan(plan) {
		return addons.Resource{}, p.fail("change plan", "", id, fmt.Errorf("%w: %q", addons.ErrUnknownPlan, plan))
	}
	body, _ := json.Marshal(struct {
		Plan string `json:"plan"`
	}{plan})
	return p.update(ctx, "change plan", http.MethodPut, p.path(id, "/plan"), id, body)
}

// Rotate implements addons.Rotator.
func (p *Provisioner) Rotate(ctx context.Context, id string) (addons.Resource, error) {
	if !p.caps.Rotation {
		return addons.Resource{}, p.fail("rotate", "", id, addons.ErrUnsupported)
	}
	return p.update(ctx, "rotate", http.MethodPost, p.path(id, "/rotate"), id, []byte("{}"))
}

// Retire implements addons.Rotator.
func (p *Provisioner) Retire(ctx context.Context, id string) error {
	if !p.caps.Rotation {
		return p.fail("retire", "", id, addons.ErrUnsupported)
	}
	if _, _, err := p.call(ctx, http.MethodPost, p.path(id, "/retire"), "", []byte("{}"), nil); err != nil {
		return p.fail("retire", "", id, err)
	}
	p.log.Info("addon old credentials retired", "service", p.caps.Service, "id", id)
	return nil
}

func (p *Provisioner) update(ctx context.Context, op, method, path, id string, body []byte) (addons.Resource, error) {
	var w wireResource
	if _, _, err := p.call(ctx, method, path, "", body, &w); err != nil {
		return addons.Resource{}, p.fail(op, "", id, err)
	}
	res, err := p.resource(w, "", "")
	if err != nil {
		return addons.Resource{}, p.fail(op, "", id, err)
	}
	p.log.Info("addon "+op, "service", p.caps.Service, "id", id, "plan", res.Plan)
	return res, nil
}

// errProtocol marks answers that break the protocol.
var errProtocol = errors.New("protocol violation")

// StatusError is the cause of an error for a provider's non-success answer:
// the status, and the error code from the body if any. It never holds the
// provider's message.
type StatusError struct {
	Status int
	Code   string
	err    error // the contract sentinel the answer maps to, or nil
}

func (e *StatusError) Error() string {
	s := "provider answered " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + strconv.Quote(e.Code)
	}
	if e.err != nil {
		s = e.err.Error() + ": " + s
	}
	return s
}

// Unwrap returns the contract error the answer maps to.
func (e *StatusError) Unwrap() error { return e.err }

var codes = map[string]error{
	"invalid_request": addons.ErrInvalidRequest,
	"invalid_name":    addons.ErrInvalidName,
	"unknown_plan":    addons.ErrUnknownPlan,
	"not_found":       addons.ErrNotFound,
	"conflict":        addons.ErrConflict,
	"unsupported":     addons.ErrUnsupported,
}

func transientStatus(s int) bool {
	return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500
}

// call sends one request, retrying transient failures, and decodes a
// successful answer into out (when out is not nil). It returns the final
// status and the Retry-After of a 202.
func (p *Provisioner) call(ctx context.Context, method, path, idemKey string, body []byte, out any) (int, time.Duration, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := p.attempt(ctx, method, path, idemKey, body, out)
		if err == nil || ctx.Err() != nil {
			if ctx.Err() != nil && err != nil {
				return status, 0, ctx.Err()
			}
			return status, retryAfter, nil
		}
		lastErr = err
		if !errors.Is(err, addons.ErrUnavailable) || attempt >= p.cfg.MaxAttempts {
			return status, 0, lastErr
		}
		wait := p.backoff(attempt)
		if retryAfter > 0 {
			wait = min(retryAfter, p.cfg.MaxBackoff)
		}
		p.log.Warn("addon provider call failed; retrying", "service", p.caps.Service, "method", method, "path", path, "attempt", attempt, "status", status, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return status, 0, err
		}
	}
}

func (p *Provisioner) backoff(attempt int) time.Duration {
	d := p.cfg.MinBackoff << (attempt - 1)
	if d <= 0 || d > p.cfg.MaxBackoff {
		d = p.cfg.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func (p *Provisioner) attempt(ctx context.Context, method, path, idemKey string, body []byte, out any) (int, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	defer cancel()
	u := *p.base
	u.RawPath = p.base.EscapedPath() + path
	u.Path, _ = url.PathUnescape(u.RawPath)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u.String(), rd)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: bad request", errProtocol)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	p.cfg.Auth.apply(req)
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		// Transport errors name the URL, which holds no credential
		// (BaseURL may not carry userinfo).
		return 0, 0, fmt.Errorf("%w: %v", addons.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, 0, fmt.Errorf("%w: reading the answer: %v", addons.ErrUnavailable, err)
	}
	if int64(len(data)) > p.cfg.MaxResponseBytes {
		return resp.StatusCode, 0, fmt.Errorf("%w: answer larger than %d bytes", errProtocol, p.cfg.MaxResponseBytes)
	}
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"))
	s := resp.StatusCode
	switch {
	case s == http.StatusAccepted && method == http.MethodPost && idemKey != "":
		return s, retryAfter, nil
	case s >= 200 && s < 300:
		if out != nil && s != http.StatusNoContent {
			if err := json.Unmarshal(data, out); err != nil {
				return s, 0, fmt.Errorf("%w: answer is not the expected JSON", errProtocol)
			}
		}
		return s, 0, nil
	}
	se := &StatusError{Status: s}
	var we wireError
	if json.Unmarshal(data, &we) == nil && len(we.Error.Code) <= 64 {
		se.Code = we.Error.Code
	}
	se.err = codes[se.Code]
	switch {
	case se.err != nil:
	case s == http.StatusNotFound:
		se.err = addons.ErrNotFound
	case s == http.StatusConflict:
		se.err = addons.ErrConflict
	case s == http.StatusGone:
		se.err = addons.ErrNotFound
	case transientStatus(s):
		se.err = addons.ErrUnavailable
	}
	return s, retryAfter, se
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
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

func (p *Provisioner) fail(op, app, id string, err error) error {
	return &addons.Error{Op: op, Service: p.caps.Service, App: app, ID: id, Err: err}
}
