package releasetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/release"
)

// MemStore is the in-memory reference release.Store. It passes Run and
// loses everything when the process ends. The zero value is not usable;
// call NewMemStore.
type MemStore struct {
	mu     sync.Mutex
	apps   map[string]*memApp
	closed bool
	// Now, if not nil, replaces time.Now (tests of lease expiry).
	now func() time.Time
}

type memApp struct {
	app      release.App
	releases []release.Release // index i holds version i+1
	deploy   *release.Deploy
	lease    release.Lease
	tokens   int64
}

var _ release.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{apps: map[string]*memApp{}, now: time.Now} }

func (s *MemStore) get(name string) (*memApp, error) {
	if s.closed {
		return nil, release.ErrClosed
	}
	a := s.apps[name]
	if a == nil {
		return nil, release.AppNotFound(name)
	}
	return a, nil
}

// CreateApp implements release.Store.
func (s *MemStore) CreateApp(ctx context.Context, a release.App) error {
	if err := release.ValidateAppName(a.Name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return release.ErrClosed
	}
	if s.apps[a.Name] != nil {
		return fmt.Errorf("%w: %q", release.ErrAppExists, a.Name)
	}
	a = a.Clone()
	a.Current, a.Latest = 0, 0
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now().UTC()
	}
	s.apps[a.Name] = &memApp{app: a}
	return nil
}

// App implements release.Store.
func (s *MemStore) App(ctx context.Context, name string) (release.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(name)
	if err != nil {
		return release.App{}, err
	}
	return a.app.Clone(), nil
}

// Apps implements release.Store.
func (s *MemStore) Apps(ctx context.Context) ([]release.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, release.ErrClosed
	}
	out := make([]release.App, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, a.app.Clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteApp implements release.Store.
func (s *MemStore) DeleteApp(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(name); err != nil {
		return err
	}
	delete(s.apps, name)
	return nil
}

// Release implements release.Store.
func (s *MemStore) Release(ctx context.Context, app string, version int) (release.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(app)
	if err != nil {
		return release.Release{}, err
	}
	if version < 1 || version > len(a.releases) {
		return release.Release{}, release.ReleaseNotFound(app, version)
	}
	return a.releases[version-1].Clone(), nil
}

// Releases implements release.Store.
func (s *MemStore) Releases(ctx context.Context, app string, limit int) ([]release.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(app)
	if err != nil {
		return nil, err
	}
	var out []release.Release
	for i := len(a.releases) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		out = append(out, a.releases[i].Clone())
	}
	return out, nil
}

// Commit implements release.Store.
func (s *MemStore) Commit(ctx context.Context, app string, l release.Lease, c release.Change) (release.Release, error) {
	if err := c.Validate(); err != nil {
		return release.Release{}, err
	}
	if err := ctx.Err(); err != nil {
		return release.Release{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(app)
	if err != nil {
		return release.Release{}, err
	}
	if !l.IsZero() && (a.lease.Token != l.Token || a.lease.Owner != l.Owner || l.App != app) {
		return release.Release{}, fmt.Errorf("%w: %s", release.ErrLeaseLost, app)
	}
	now := s.now().UTC()
	newApp := a.app.Clone()
	releases := a.releases // copy on write below
	var created release.Release
	if c.Create != nil {
		created = c.Create.Clone()
		created.App = app
		created.Version = len(a.releases) + 1
		created.CreatedAt, created.UpdatedAt = now, now
		if created.Status == "" {
			created.Status = release.StatusPending
		}
		releases = append(releases[:len(releases):len(releases)], created)
		newApp.Latest = created.Version
	}
	for _, sc := range c.Statuses {
		v := sc.Version
		if v == 0 {
			v = created.Version
		}
		if v < 1 || v > len(releases) {
			return release.Release{}, release.ReleaseNotFound(app, v)
		}
	}
	if c.Current != nil {
		v := *c.Current
		if v == 0 {
			v = created.Version
		}
		if v > len(releases) {
			return release.Release{}, release.ReleaseNotFound(app, v)
		}
		newApp.Current = v
	}
	if c.Formation != nil {
		newApp.Formation = append([]release.ProcessScale(nil), (*c.Formation)...)
	}
	var d *release.Deploy
	if c.Deploy != nil {
		dd := *c.Deploy
		dd.App = app
		if dd.Release == 0 {
			dd.Release = created.Version
		}
		if dd.Release > len(releases) {
			return release.Release{}, release.ReleaseNotFound(app, dd.Release)
		}
		d = &dd
	}
	// Nothing can fail from here on: apply.
	if len(c.Statuses) > 0 {
		releases = append([]release.Release(nil), releases...)
	}
	for _, sc := range c.Statuses {
		v := sc.Version
		if v == 0 {
			v = created.Version
		}
		r := releases[v-1]
		r.Status = sc.Status
		if sc.Reason != "" {
			r.FailureReason = sc.Reason
		}
		r.UpdatedAt = now
		releases[v-1] = r
		if v == created.Version {
			created = r
		}
	}
	a.releases = releases
	a.app = newApp
	if d != nil {
		a.deploy = d
	}
	return created.Clone(), nil
}

// Deploy implements release.Store.
func (s *MemStore) Deploy(ctx context.Context, app string) (release.Deploy, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(app)
	if err != nil || a.deploy == nil {
		return release.Deploy{}, false, err
	}
	return *a.deploy, true, nil
}

// AcquireLease implements release.Store.
func (s *MemStore) AcquireLease(ctx context.Context, app, owner string, ttl time.Duration) (release.Lease, error) {
	if owner == "" || ttl <= 0 {
		return release.Lease{}, fmt.Errorf("%w: lease needs an owner and a positive ttl", release.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(app)
	if err != nil {
		return release.Lease{}, err
	}
	now := s.now()
	if a.lease.Owner != "" && a.lease.Owner != owner && now.Before(a.lease.Expires) {
		return release.Lease{}, &release.LeaseError{App: app, Owner: a.lease.Owner, Expires: a.lease.Expires}
	}
	a.tokens++
	a.lease = release.Lease{App: app, Owner: owner, Token: a.tokens, Expires: now.Add(ttl).UTC()}
	return a.lease, nil
}

// RenewLease implements release.Store.
func (s *MemStore) RenewLease(ctx context.Context, l release.Lease, ttl time.Duration) (release.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(l.App)
	if err != nil {
		return release.Lease{}, err
	}
	if a.lease.Token != l.Token || a.lease.Owner != l.Owner || l.Owner == "" {
		return release.Lease{}, fmt.Errorf("%w: %s", release.ErrLeaseLost, l.App)
	}
	a.lease.Expires = s.now().Add(ttl).UTC()
	return a.lease, nil
}

// ReleaseLease implements release.Store.
func (s *MemStore) ReleaseLease(ctx context.Context, l release.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(l.App)
	if err != nil {
		return err
	}
	if a.lease.Token != l.Token || a.lease.Owner != l.Owner || l.Owner == "" {
		return fmt.Errorf("%w: %s", release.ErrLeaseLost, l.App)
	}
	a.lease = release.Lease{}
	return nil
}

// Close implements release.Store.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
