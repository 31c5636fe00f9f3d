package release

import (
	"errors"
	"fmt"
	"time"
)

// Errors callers branch on. Everything this package and its stores return
// wraps one of them (or a context error) with %w.
var (
	ErrInvalidConfig      = errors.New("release: invalid config")
	ErrAppNotFound        = errors.New("release: app not found")
	ErrAppExists          = errors.New("release: app already exists")
	ErrReleaseNotFound    = errors.New("release: release not found")
	ErrRollbackToFailed   = errors.New("release: cannot roll back to a failed release")
	ErrNotRunnable        = errors.New("release: release has no image")
	ErrDeployInProgress   = errors.New("release: a deploy of this app is in progress")
	ErrLeaseLost          = errors.New("release: deploy lease lost to another owner")
	ErrReleasePhaseFailed = errors.New("release: release phase failed")
	ErrUnhealthy          = errors.New("release: new instances did not become healthy")
	ErrRolledBack         = errors.New("release: deploy rolled back")
	ErrInvalid            = errors.New("release: invalid argument")
	ErrClosed             = errors.New("release: store closed")
)

// NotFoundError says which app or release is missing. It wraps
// ErrAppNotFound or ErrReleaseNotFound.
type NotFoundError struct {
	App     string
	Version int  // the missing release's version when Release is set
	Release bool // a release is missing, not the app
}

// AppNotFound returns a *NotFoundError for a missing app.
func AppNotFound(app string) error { return &NotFoundError{App: app} }

// ReleaseNotFound returns a *NotFoundError for a missing release.
func ReleaseNotFound(app string, version int) error {
	return &NotFoundError{App: app, Version: version, Release: true}
}

func (e *NotFoundError) Error() string {
	if !e.Release {
		return fmt.Sprintf("release: app %q not found", e.App)
	}
	return fmt.Sprintf("release: %s v%d not found", e.App, e.Version)
}

// Unwrap returns the sentinel.
func (e *NotFoundError) Unwrap() error {
	if !e.Release {
		return ErrAppNotFound
	}
	return ErrReleaseNotFound
}

// LeaseError says who holds an app's deploy lease. It wraps
// ErrDeployInProgress.
type LeaseError struct {
	App     string
	Owner   string
	Expires time.Time
}

func (e *LeaseError) Error() string {
	if e.Expires.IsZero() {
		return fmt.Sprintf("release: a deploy of %s is in progress (by this control plane, %s)", e.App, e.Owner)
	}
	return fmt.Sprintf("release: a deploy of %s is in progress (lease held by %s until %s)", e.App, e.Owner, e.Expires.UTC().Format(time.RFC3339))
}

// Unwrap returns ErrDeployInProgress.
func (e *LeaseError) Unwrap() error { return ErrDeployInProgress }

// DeployError says why a deploy did not take over. It wraps the cause
// sentinel (ErrReleasePhaseFailed, ErrUnhealthy, ErrRolledBack, ...).
type DeployError struct {
	App     string
	Version int
	Reason  string // also stored as the release's FailureReason
	Err     error
}

func (e *DeployError) Error() string {
	return fmt.Sprintf("release: deploy of %s v%d failed: %s", e.App, e.Version, e.Reason)
}

// Unwrap returns the cause.
func (e *DeployError) Unwrap() error { return e.Err }
