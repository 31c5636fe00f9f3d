package postgres

import "context"

// SetStepHook makes p call hook before each convergence step ("roles",
// "grants", "settings", "database", "revoke", "schema", "ready") with the
// admin session's backend pid, so that tests can fail, cancel or kill the
// session between steps.
func SetStepHook(p *Provisioner, hook func(ctx context.Context, step string, pid uint32) error) {
	p.stepHook = hook
}

// Steps are the convergence steps, in order.
var Steps = []string{"roles", "grants", "settings", "database", "revoke", "schema", "ready"}

// Cut exposes cut.
var Cut = cut

// URLFor exposes the URL building of view.
func URLFor(host string, port uint16, user, password, database string) string {
	p := &Provisioner{cfg: Config{Host: host, Port: port}}
	r := &resource{loginA: user, password: password, database: database}
	return p.view(r).Config["URL"].Reveal()
}

// ScramVerifier exposes scramVerifier.
var ScramVerifier = scramVerifier
