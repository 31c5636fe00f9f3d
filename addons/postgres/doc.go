// Package postgres is an addons.Provisioner that gives each app its own
// database and roles on a PostgreSQL server (15 or later), reached through
// DATABASE_URL, as Heroku Postgres and Dokku's postgres plugin do.
//
// # What a resource is
//
// For a resource with id pg-<hex> of app A, the provisioner creates, with
// names "<A, cut to 30 bytes>_<hex>[_suffix]" (always quoted, so any app
// name is safe):
//
//   - an owner role (NOLOGIN) that owns the database and, through a
//     per-role default of `role`, every object the app creates;
//   - two login roles, _a and _b, members of the owner role, NOSUPERUSER
//     NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS, with the plan's
//     CONNECTION LIMIT and statement_timeout. One of them holds the current
//     password; the other is NOLOGIN except during a rotation;
//   - a database owned by the owner role, created from template0, with
//     CONNECT and TEMPORARY revoked from PUBLIC (so no other app's role can
//     connect to it) and its public schema owned by the owner role with
//     every privilege revoked from PUBLIC.
//
// New also revokes CONNECT from PUBLIC on the admin database, "postgres"
// and "template1", so that app roles cannot connect anywhere but their own
// database. Give the provisioner a server (or at least a cluster) of its
// own: other non-superuser roles on it lose CONNECT on those databases.
//
// # Credentials
//
// The server must authenticate TCP connections with passwords
// (scram-sha-256 in pg_hba.conf): with trust, database CONNECT privileges
// still keep apps apart, but rotated-out and deprovisioned passwords would
// mean nothing.
//
// Passwords are 256-bit random strings. They are sent to the server only as
// SCRAM-SHA-256 verifiers computed here, so the plain text never appears in
// a statement, pg_stat_activity or the server log, and statements are never
// logged by this package. The current password is kept in the
// provisioner's metadata table (schema slipway_addons in the admin
// database, revoked from PUBLIC) so that Resource can report the config
// vars again; protect the admin database accordingly.
//
// Rotation (addons.Rotator) uses the two login roles: Rotate gives the idle
// one a new password and LOGIN and reports it as the current URL, while the
// old one keeps working; Retire makes the old role NOLOGIN, removes its
// password and terminates its sessions. Both roles act as the owner role,
// so objects created before and after a rotation belong to the same owner.
//
// # Idempotency and crashes
//
// Provision first records the request in the metadata table (request id
// unique), then converges the resource step by step under a per-resource
// advisory lock, each step tolerating that it was already done, and marks
// it ready last. A crash, a cancelled context or a killed admin session at
// any step leaves a half-made resource that the same request, retried,
// completes; Deprovision removes a half-made resource as well as a whole
// one.
//
// # Plans
//
// A Plan sets the login roles' CONNECTION LIMIT and statement_timeout. The
// limit is per login role, so during a rotation's grace period the app may
// hold up to twice as many connections.
// DefaultPlans returns the built-in ones; pass Config.Plans to offer others
// (any name, limits of your choosing), and ChangePlan moves a resource
// between them in place.
package postgres
