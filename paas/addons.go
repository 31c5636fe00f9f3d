package paas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/release"
)

// AddonOptions choose what CreateAddon makes.
type AddonOptions struct {
	Plan string // one of the service's plans; empty means its default
	// As names the attachment (DATABASE gives DATABASE_URL); empty lets
	// the service choose, as addons.AttachmentName does.
	As     string
	Output io.Writer // the deploy's output, if the app is running
}

// Addon is one add-on attached to an app.
type Addon struct {
	Name     string   // the attachment name, e.g. DATABASE
	Service  string   // the service, as in Config.Addons
	Resource string   // the provisioner's resource id
	Vars     []string // the config var names it sets
}

// CreateAddon provisions a resource of service for the app and attaches it:
// its config vars (DATABASE_URL for the first PostgreSQL database) go into a
// new release, deployed without the release phase, as on Heroku.
//
// Provisioning is idempotent by a request id derived from the app (its
// name and creation time, so an app destroyed and created again, or one of
// the same name on another platform sharing the backend, never gets the old
// resource), the attachment name and the app's latest release, so a retry
// after a failure returns the same resource instead of making a second one.
func (p *Platform) CreateAddon(ctx context.Context, app, service string, o AddonOptions) (Addon, error) {
	prov, ok := p.cfg.Addons[service]
	if !ok {
		return Addon{}, fmt.Errorf("%w: %q (offered: %s)", ErrUnknownService, service, strings.Join(p.services(), ", "))
	}
	a, err := p.cfg.Store.App(ctx, app)
	if err != nil {
		return Addon{}, err
	}
	latest, err := p.latest(ctx, a)
	if err != nil {
		return Addon{}, err
	}
	existing := make([]string, len(latest.Attachments))
	for i, at := range latest.Attachments {
		existing[i] = at.Name
	}
	name := o.As
	if name == "" {
		name = addons.AttachmentName(prov.Capabilities(), existing)
	} else if err := addons.ValidateAttachmentName(name); err != nil {
		return Addon{}, err
	}
	if slices.Contains(existing, name) {
		return Addon{}, fmt.Errorf("paas: %s already has an add-on attached as %s: %w", app, name, addons.ErrConflict)
	}
	res, err := prov.Provision(ctx, addons.Request{
		RequestID: fmt.Sprintf("%s-%x-%s-v%d", app, a.CreatedAt.UnixNano(), strings.ToLower(name), a.Latest),
		App:       app,
		Plan:      o.Plan,
	})
	if err != nil {
		return Addon{}, fmt.Errorf("paas: provision %s for %s: %w", service, app, err)
	}
	change, err := addons.AttachChange(addons.Attachment{App: app, Name: name, ResourceID: res.ID}, res.Config, latest.Config.Keys())
	if err != nil {
		return Addon{}, errors.Join(err, p.undoProvision(ctx, prov, res.ID))
	}
	set := make(map[string]string, len(change.Set))
	vars := make([]string, 0, len(change.Set))
	for k, v := range change.Set {
		set[k] = v.Reveal()
		vars = append(vars, k)
	}
	slices.Sort(vars)
	at := release.Attachment{Name: name, Provider: service, Resource: res.ID, Vars: vars}
	if _, err := p.mgr.SetConfig(ctx, app, release.ConfigChange{
		Set: set, Attach: []release.Attachment{at},
		Description: fmt.Sprintf("Attach %s (%s)", name, service),
	}, release.DeployOptions{Output: o.Output, SkipReleasePhase: true}); err != nil {
		// The release holds the attachment only if it was stored; a
		// failed deploy stores it (failed) and the resource stays for a
		// retry, so undo only when nothing was stored.
		if errors.As(err, new(*release.ConfigError)) {
			return Addon{}, errors.Join(err, p.undoProvision(ctx, prov, res.ID))
		}
		return Addon{}, err
	}
	return Addon{Name: name, Service: service, Resource: res.ID, Vars: vars}, nil
}

func (p *Platform) undoProvision(ctx context.Context, prov addons.Provisioner, id string) error {
	if err := prov.Deprovision(ctx, id); err != nil && !errors.Is(err, addons.ErrNotFound) {
		return fmt.Errorf("paas: undo provisioning of %s: %w", id, err)
	}
	return nil
}

func (p *Platform) services() []string {
	s := make([]string, 0, len(p.cfg.Addons))
	for name := range p.cfg.Addons {
		s = append(s, name)
	}
	slices.Sort(s)
	return s
}

func (p *Platform) latest(ctx context.Context, a release.App) (release.Release, error) {
	if a.Latest == 0 {
		return release.Release{App: a.Name}, nil
	}
	return p.cfg.Store.Release(ctx, a.Name, a.Latest)
}

// Addons lists the app's attached add-ons.
func (p *Platform) Addons(ctx context.Context, app string) ([]Addon, error) {
	a, err := p.cfg.Store.App(ctx, app)
	if err != nil {
		return nil, err
	}
	latest, err := p.latest(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make([]Addon, len(latest.Attachments))
	for i, at := range latest.Attachments {
		out[i] = Addon{Name: at.Name, Service: at.Provider, Resource: at.Resource, Vars: slices.Clone(at.Vars)}
	}
	return out, nil
}

// DestroyAddon detaches the named attachment (its config vars leave in a new
// release) and then deprovisions the resource, whose credentials stop
// working.
func (p *Platform) DestroyAddon(ctx context.Context, app, name string, out io.Writer) error {
	as, err := p.Addons(ctx, app)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(as, func(a Addon) bool { return a.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %s has no add-on %s", ErrNoAddon, app, name)
	}
	ad := as[i]
	if _, err := p.mgr.SetConfig(ctx, app, release.ConfigChange{
		Detach: []string{name}, Description: fmt.Sprintf("Detach %s (%s)", name, ad.Service),
	}, release.DeployOptions{Output: out, SkipReleasePhase: true}); err != nil {
		return err
	}
	prov, ok := p.cfg.Addons[ad.Service]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownService, ad.Service)
	}
	if err := prov.Deprovision(ctx, ad.Resource); err != nil && !errors.Is(err, addons.ErrNotFound) {
		return fmt.Errorf("paas: deprovision %s: %w", name, err)
	}
	return nil
}
