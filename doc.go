// Package slipway is an embeddable SDK for building your own Heroku-like platform.
//
// Slipway is not a platform you install; it is the set of parts a platform team
// wires into its own control plane. Each part lives in its own package, owns one
// interface at its seam, ships a reference backend, and exports a conformance
// suite so that other backends can prove they behave the same:
//
//   - build: source (directory or tar stream) to an OCI image on BuildKit, by
//     Dockerfile or by a detected language on configurable stack images, plus a
//     Heroku/Dokku-compatible Procfile parser (build/procfile).
//   - release: immutable numbered releases, config vars, the release phase, the
//     zero-downtime web phase, rollback, and durable stores.
//   - scale: the Scheduler contract that turns a formation into running
//     processes (scale/local runs them with runc on one machine), and the
//     queue-time autoscaler.
//   - addons: the Provisioner contract for backing services (addons/postgres
//     creates an isolated database per app and injects DATABASE_URL).
//   - proxy: the router in front of web processes: host routing, queue time,
//     health-gated switching, draining, TLS.
//   - observe: the optional hooks the other packages report to: request
//     metrics, log lines and events.
//   - paas: the facade that wires the parts above into app-level operations.
//
// The path of one deploy is build → release (release phase, then web phase) →
// scale (instances) → proxy (traffic switch). examples/minipaas is a complete
// single-machine PaaS built from these packages.
package slipway
