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
//     By default the deploy returns once the window ends; with
//     ManagerConfig.WatchInBackground it returns once the release serves,
//     and the watch goes on in the Manager's goroutine until the window
//     ends, the app changes again (the release then counts as deployed)
//     or Manager.Close (the watch is then left to Recover).
//
// Process types other than web are replaced in the same deploy: the new
// instances start beside the old ones, and the old ones stop after the
// traffic switch. A process type marked Singleton in the app's formation
// (ProcessScale) is the exception: its old instances stop (and are waited
// for) before the new formation starts, so it never runs twice; an aborted
// deploy starts them again. The release process type is never part of a
// formation.
//
// A rollback to vN makes a new release that copies vN's image, process
// types, config and attachments (Heroku's rule); a rollback to a failed
// release is refused with ErrRollbackToFailed. A manual rollback runs the
// release phase unless ManagerConfig.SkipReleasePhaseOnRollback is set; an
// automatic rollback never does (it restores service; the copied release's
// phase ran when it was first deployed) and is not watched.
//
// Config vars follow POSIX names ([A-Za-z_][A-Za-z0-9_]*, at most
// MaxKeyBytes); values may hold any byte but NUL, up to MaxValueBytes each
// and MaxConfigBytes per release. A Config never prints its values. Stores
// encrypt them with AES-256-GCM when given a Keyring; see Keyring for key
// rotation.
//
// One deploy per app runs at a time: the Manager holds a lease in the
// Store (owner, token, expiry), renewed while it deploys; another deploy
// gets ErrDeployInProgress, and the lease of a control plane that died
// expires after ManagerConfig.LeaseTTL and is taken over, its token
// fencing off any late write of the dead holder. A background watch holds
// the lease too: other control planes wait for it, while the app's next
// change through the same Manager ends it first.
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
