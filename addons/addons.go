package addons

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Provisioner creates and removes one kind of backing-service resource (a
// PostgreSQL database, a Redis namespace, a third party's service) for apps,
// and reports the config vars that give an app access to it.
//
// All methods are safe for concurrent use, also from several processes
// sharing one backend: idempotency is kept by the backend, not by memory.
// Every method honours ctx; a method that returns because ctx ended leaves
// the resource in a state that the same call, retried, completes.
//
// Errors are wrapped sentinels (ErrUnknownPlan, ErrInvalidName, ErrNotFound,
// ErrConflict, ErrUnavailable); branch with errors.Is. No error, log line or
// String method reveals a credential.
//
// Provisioners grow through optional interfaces probed by type assertion:
// PlanChanger and Rotator. Capabilities says which ones an implementation
// supports.
type Provisioner interface {
	// Provision creates the resource asked for by r, or returns the one
	// already created for r.RequestID.
	//
	// Provision is idempotent by r.RequestID: any number of calls with the
	// same request, sequential or concurrent, in one process or after a
	// crash, create at most one resource and all return it, with the same
	// ID and Config. Callers store the request id before calling, so that a
	// control plane restarted mid-call retries with the same id and never
	// makes a second resource. A request id already used for a different
	// app or plan, or for a resource since deprovisioned, is refused with
	// ErrConflict.
	//
	// Errors: ErrInvalidRequest (r.Validate), ErrInvalidName (an app name
	// the backend cannot represent), ErrUnknownPlan, ErrConflict,
	// ErrUnavailable (the backend cannot be reached; retry).
	Provision(ctx context.Context, r Request) (Resource, error)

	// Deprovision removes the resource and every credential it gave out:
	// once it returns, the config vars it reported stop working and open
	// sessions are ended. Deprovisioning a resource already deprovisioned
	// returns nil; an id never provisioned returns ErrNotFound.
	Deprovision(ctx context.Context, id string) error

	// Resource returns the resource with its current config vars (after a
	// rotation: the new credentials). It returns ErrNotFound for an unknown
	// or deprovisioned id.
	Resource(ctx context.Context, id string) (Resource, error)

	// Capabilities describes the service, its plans and what the
	// provisioner supports. It does no I/O.
	Capabilities() Capabilities
}

// PlanChanger is implemented by provisioners that can move a resource to
// another plan in place, keeping its data and (unless the returned Config
// differs) its credentials.
type PlanChanger interface {
	// ChangePlan moves the resource to plan. Changing to the current plan
	// returns the resource unchanged. Errors: ErrNotFound, ErrUnknownPlan,
	// ErrUnsupported (this pair of plans cannot be changed in place).
	ChangePlan(ctx context.Context, id, plan string) (Resource, error)
}

// Rotator is implemented by provisioners that can replace a resource's
// credentials without downtime, in two steps:
//
//  1. Rotate makes new credentials and returns the resource with them; the
//     old credentials keep working. The caller publishes the new config
//     (a new release, see RotateChange) and waits until nothing uses the
//     old one: a grace period.
//  2. Retire invalidates the old credentials and ends their sessions.
//
// Rotate is idempotent until Retire: calling it again returns the same new
// credentials, so a control plane that crashed between the two steps can
// retry. Retire with no rotation pending returns nil. Rotate (the function
// in this package) runs both steps with a grace period between them.
type Rotator interface {
	Rotate(ctx context.Context, id string) (Resource, error)
	Retire(ctx context.Context, id string) error
}

// Errors callers branch on. Implementations wrap them with %w, usually in a
// *Error.
var (
	ErrInvalidRequest = errors.New("addons: invalid request")
	ErrInvalidName    = errors.New("addons: invalid name")
	ErrUnknownPlan    = errors.New("addons: unknown plan")
	ErrNotFound       = errors.New("addons: resource not found")
	ErrConflict       = errors.New("addons: conflict")
	ErrUnsupported    = errors.New("addons: not supported by this provisioner")
	// ErrUnavailable means the backend could not be reached or failed in a
	// way that may pass: the same call may be retried.
	ErrUnavailable = errors.New("addons: service unavailable")
)

// Error is the error provisioners return. It names the operation and the
// resource or request, never a credential: Err (the cause) must not carry
// one either, which is why backend errors are reduced to their code before
// they are wrapped.
type Error struct {
	Op      string // "provision", "deprovision", "resource", "rotate", ...
	Service string // Capabilities().Service
	ID      string // the resource id, when known
	App     string // the app, when known
	Err     error  // a sentinel above, possibly wrapped with detail
	Reason  string // a short human reason without secrets; may be empty
}

func (e *Error) Error() string {
	s := "addons: " + e.Service + " " + e.Op
	if e.App != "" {
		s += fmt.Sprintf(" app %q", e.App)
	}
	if e.ID != "" {
		s += fmt.Sprintf(" resource %q", e.ID)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// IsContractError reports whether err already wraps one of the contract's
// sentinels that say what was wrong with the call (ErrInvalidRequest,
// ErrInvalidName, ErrUnknownPlan, ErrNotFound, ErrConflict, ErrUnsupported),
// so an adapter passes it on as it is instead of classifying a backend
// failure.
func IsContractError(err error) bool {
	for _, s := range []error{ErrInvalidRequest, ErrInvalidName, ErrUnknownPlan, ErrNotFound, ErrConflict, ErrUnsupported} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// IsRetryable reports whether err may pass if the same call is retried with
// the same request id: the backend was unavailable, or ctx ended first.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Request asks for a resource.
type Request struct {
	// RequestID makes Provision idempotent: the same id always yields the
	// same resource. Required; 1 to MaxRequestID bytes of printable ASCII.
	// A UUID or "<app>-<attachment>-<n>" stored before the call are typical.
	RequestID string
	// App is the app the resource is for. Required; see ValidateApp.
	App string
	// Plan names one of Capabilities().Plans. Empty means the first plan.
	Plan string
}

// Limits on request fields.
const (
	MaxRequestID = 200
	MaxAppName   = 100
)

// Validate reports what is wrong with r as an error wrapping
// ErrInvalidRequest or ErrInvalidName, or nil.
func (r Request) Validate() error {
	if r.RequestID == "" || len(r.RequestID) > MaxRequestID {
		return fmt.Errorf("%w: request id must be 1 to %d bytes", ErrInvalidRequest, MaxRequestID)
	}
	for i := 0; i < len(r.RequestID); i++ {
		if c := r.RequestID[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: request id has a byte outside printable ASCII at %d", ErrInvalidRequest, i)
		}
	}
	return ValidateApp(r.App)
}

// Resource is one provisioned resource.
type Resource struct {
	ID      string // assigned by the provisioner; stable; safe to log
	Service string // Capabilities().Service
	App     string
	Plan    string
	// Config holds the config vars, keyed by suffix (see Config).
	Config    Config
	CreatedAt time.Time
}

// String names the resource without its config values.
func (r Resource) String() string {
	return fmt.Sprintf("%s resource %s (app %q, plan %q, %s)", r.Service, r.ID, r.App, r.Plan, r.Config)
}

// Format prints String for every verb, so that %#v cannot reveal secrets.
func (r Resource) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(r.String())) }

// Plan is one size of a service.
type Plan struct {
	Name        string // "hobby", "standard-0"; a DNS label
	Description string
}

// Capabilities says what a provisioner offers.
type Capabilities struct {
	// Service names the kind of resource: "postgresql", "redis".
	Service string
	// DefaultAttachment is the attachment name of the first resource of this
	// service on an app: "DATABASE" (so DATABASE_URL) for PostgreSQL,
	// "REDIS" for Redis. See AttachmentName.
	DefaultAttachment string
	// Plans lists the plans; the first is the default.
	Plans []Plan
	// PlanChange and Rotation say whether the provisioner implements
	// PlanChanger and Rotator.
	PlanChange bool
	Rotation   bool
}

// HasPlan reports whether name is one of c.Plans.
func (c Capabilities) HasPlan(name string) bool {
	for _, p := range c.Plans {
		if p.Name == name {
			return true
		}
	}
	return false
}

// ResolvePlan returns name, or the default plan when name is empty, or an
// error wrapping ErrUnknownPlan.
func (c Capabilities) ResolvePlan(name string) (string, error) {
	if name == "" {
		if len(c.Plans) == 0 {
			return "", fmt.Errorf("%w: %s has no plans", ErrUnknownPlan, c.Service)
		}
		return c.Plans[0].Name, nil
	}
	if !c.HasPlan(name) {
		return "", fmt.Errorf("%w: %q is not a %s plan", ErrUnknownPlan, name, c.Service)
	}
	return name, nil
}
