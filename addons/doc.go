// Package addons is the contract for backing services attached to apps:
// databases, caches, queues, anything an app reaches through config vars.
//
// "Create a datastore and link it to the app" is the second thing every
// platform user does. A Provisioner creates a Resource for an app and a
// plan and reports its Config: suffix-keyed config vars such as URL. An
// Attachment names the resource on the app, and the attachment name
// prefixes the keys, so the primary PostgreSQL database becomes
// DATABASE_URL (as with Heroku's add-ons and Dokku's postgres:link) and
// further databases POSTGRESQL_AMBER_URL and so on (AttachmentName).
//
// # Idempotency
//
// Provision takes a caller-supplied request id and is idempotent by it: a
// control plane stores its desired state ("app X has a postgresql add-on,
// request id R") before calling, and after a crash it calls again with R and
// gets the same resource, never a second one. Deprovision is idempotent too.
//
// # Config changes and releases
//
// AttachChange, DetachChange and UpdateChange compute the change that an
// add-on operation makes to an app's config vars. They do no I/O: the
// release manager applies the ConfigChange and makes a new release. As on
// Heroku, an add-on change restarts the app with the new config but does
// not run the release phase; ConfigChange.Cause says so
// (Cause.SkipsReleasePhase).
//
// # Secrets
//
// Credentials travel as Secret values, which print, log and marshal as
// [redacted]; only Secret.Reveal gives the plain text. Config, Resource and
// ConfigChange print keys and names only. Errors never hold a credential.
//
// # Growing the contract
//
// Optional interfaces add abilities without changing Provisioner:
// PlanChanger (change plan in place) and Rotator (replace credentials with
// a grace period, see Rotate). Capabilities declares them.
//
// # Backends
//
// addons/postgres gives each app a role and a database on a PostgreSQL
// server; addons/redis gives each app an ACL user confined to its key prefix
// on a Redis server; addons/httpaddon speaks a small JSON protocol to a
// third party's provider, so services can be offered without Go code.
// addons/addontest is the conformance suite every Provisioner should pass,
// with an in-memory reference implementation. This package imports none of
// the backends.
package addons
