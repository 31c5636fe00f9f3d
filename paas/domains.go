package paas

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// DomainStore keeps apps' custom domains. Implementations must be safe for
// concurrent use.
type DomainStore interface {
	// Domains returns the app's domains, sorted; none is not an error.
	Domains(ctx context.Context, app string) ([]string, error)
	// SetDomains replaces the app's domains; nil removes them all.
	SetDomains(ctx context.Context, app string, domains []string) error
	// Owner returns the app a domain belongs to, or "" when none.
	Owner(ctx context.Context, domain string) (string, error)
}

// MemDomains is a DomainStore in memory.
type MemDomains struct {
	mu   sync.Mutex
	apps map[string][]string
}

var _ DomainStore = (*MemDomains)(nil)

// NewMemDomains returns an empty MemDomains.
func NewMemDomains() *MemDomains { return &MemDomains{apps: map[string][]string{}} }

// Domains implements DomainStore.
func (m *MemDomains) Domains(_ context.Context, app string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.apps[app]), nil
}

// SetDomains implements DomainStore.
func (m *MemDomains) SetDomains(_ context.Context, app string, domains []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(domains) == 0 {
		delete(m.apps, app)
		return nil
	}
	m.apps[app] = slices.Sorted(slices.Values(domains))
	return nil
}

// Owner implements DomainStore.
func (m *MemDomains) Owner(_ context.Context, domain string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for app, ds := range m.apps {
		if slices.Contains(ds, domain) {
			return app, nil
		}
	}
	return "", nil
}

// ErrDomainTaken is returned when a domain already belongs to another app.
var ErrDomainTaken = fmt.Errorf("paas: domain belongs to another app")

// Domains returns the hosts routed to the app: its custom domains and, with
// a BaseDomain, <app>.<BaseDomain>.
func (p *Platform) Domains(ctx context.Context, app string) ([]string, error) {
	if _, err := p.cfg.Store.App(ctx, app); err != nil {
		return nil, err
	}
	return p.hosts(ctx, app)
}

func (p *Platform) hosts(ctx context.Context, app string) ([]string, error) {
	ds, err := p.domains.Domains(ctx, app)
	if err != nil {
		return nil, err
	}
	if p.cfg.BaseDomain != "" {
		ds = append(ds, app+"."+p.cfg.BaseDomain)
	}
	return ds, nil
}

func (p *Platform) routeHosts(ctx context.Context, app string) error {
	if p.cfg.Router == nil {
		return nil
	}
	hs, err := p.hosts(ctx, app)
	if err != nil {
		return err
	}
	return p.cfg.Router.SetHosts(app, hs)
}

// AddDomain routes domain to the app, as `domains:add` does. The router
// validates the name (exact host or *.wildcard).
func (p *Platform) AddDomain(ctx context.Context, app, domain string) error {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if _, err := p.cfg.Store.App(ctx, app); err != nil {
		return err
	}
	owner, err := p.domains.Owner(ctx, domain)
	if err != nil {
		return err
	}
	if owner == app {
		return nil
	}
	if owner != "" {
		return fmt.Errorf("%w: %s is routed to %s", ErrDomainTaken, domain, owner)
	}
	ds, err := p.domains.Domains(ctx, app)
	if err != nil {
		return err
	}
	next := append(ds, domain)
	if p.cfg.Router != nil {
		hs := slices.Clone(next)
		if p.cfg.BaseDomain != "" {
			hs = append(hs, app+"."+p.cfg.BaseDomain)
		}
		if err := p.cfg.Router.SetHosts(app, hs); err != nil {
			return err
		}
	}
	return p.domains.SetDomains(ctx, app, next)
}

// RemoveDomain stops routing domain to the app.
func (p *Platform) RemoveDomain(ctx context.Context, app, domain string) error {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	ds, err := p.domains.Domains(ctx, app)
	if err != nil {
		return err
	}
	next := slices.DeleteFunc(ds, func(d string) bool { return d == domain })
	if err := p.domains.SetDomains(ctx, app, next); err != nil {
		return err
	}
	return p.routeHosts(ctx, app)
}
