// Package release holds Slipway's release model and the Manager that deploys
// releases with zero downtime.
//
// A Release is an immutable, numbered snapshot of what an app runs: an image,
// its process types, its config vars and its add-on attachments. Every
// change (a build, a config change, an add-on change, a rollback) makes a
// new release with the next version; only a release's Status moves, as its
// deploy progresses.
//
// The Manager deploys a release in three phases:
//
//  1. Release phase: when the release has a "release" process type, it runs
//     once as a one-off with the new image and config. A non-zero exit, a
//     crash or a timeout marks the release failed and leaves the current
//     release serving, untouched.
//  2. Web phase: the new formation starts beside the old one; once every new
//     instance is healthy (the scheduler's check, then an optional HTTP
//     check), traffic switches atomically, the old instances drain and stop.
//  3. Watch: when new instances turn unhealthy within a window after the
//     switch, the Manager rolls back by itself to the previous release.
//
// Every step is written to the deploy journal in the Store before it is
// acted on; Manager.Recover brings every app back to a consistent state
// after the control plane died in the middle of a deploy. The choice of
// the next step is a pure function of the journal (see NextStep and
// RecoverStep); the Manager only acts on it.
//
// Stores: releasetest holds the conformance suite and the in-memory
// reference Store; release/bolt is an embedded, fsync'd single-file store;
// release/postgres stores in PostgreSQL for several control planes.
//
// This package never imports a backend: it talks to the scheduler through
// the Scheduler interface (a subset of scale.Scheduler) and to the router
// through Traffic.
package release
