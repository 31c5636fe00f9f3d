// Package paas is the facade that wires Slipway's parts into the app-level
// operations of a Heroku-like platform: create an app, deploy it from source,
// set its config, scale it, roll it back, run one-offs, read its logs, give it
// add-ons and domains.
//
// A Platform holds no backend of its own. Every part is an interface taken
// from the package that owns it (build.Builder, release.Store,
// scale.Scheduler, addons.Provisioner) or, for the router, this package's
// small Router interface, which NewProxyRouter adapts a *proxy.Router to. So a
// platform team swaps any part (a Kubernetes scheduler, a PostgreSQL store, a
// custom add-on) without touching the rest. This package imports no backend:
// not BuildKit, not pgx, not runc, not client-go (deps_test.go proves it).
//
// The path of a deploy through a Platform:
//
//	Deploy(app, source)
//	  → Builder.Build                  image + process types
//	  → release.Manager.Deploy         new release; release phase; new
//	                                   instances beside the old; health gate
//	  → Router (via release.Traffic)   atomic switch; old instances drain
//	  → Scheduler.StopRelease          old release stops
//
// Between deploys the Platform keeps the router's backends in step with the
// scheduler: an instance that restarts on a new address, or a scale-up, is
// picked up within Config.SyncInterval.
//
// examples/minipaas shows a complete single-machine wiring.
package paas
