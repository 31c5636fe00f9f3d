package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/internal/seal"
)

// Service is the service name the provisioner reports.
const Service = "postgresql"

// Plan is one size of database.
type Plan struct {
	Name        string
	Description string
	// ConnectionLimit is each login role's CONNECTION LIMIT. Zero means no
	// limit.
	ConnectionLimit int
	// StatementTimeout is the login roles' statement_timeout. Zero means
	// the server's default.
	StatementTimeout time.Duration
}

// DefaultPlans returns the plans offered when Config.Plans is nil.
func DefaultPlans() []Plan {
	return []Plan{
		{Name: "hobby", Description: "20 connections, 30 s statement timeout", ConnectionLimit: 20, StatementTimeout: 30 * time.Second},
		{Name: "standard", Description: "100 connections, 5 min statement timeout", ConnectionLimit: 100, StatementTimeout: 5 * time.Minute},
	}
}

// Config configures a Provisioner.
type Config struct {
	// Admin is a pool connected to the admin database as a superuser (or a
	// role with CREATEROLE, CREATEDB and pg_signal_backend). Required. The
	// provisioner does not close it.
	Admin *pgxpool.Pool
	// Host and Port are what apps connect to. If empty (zero), the admin
	// pool's host (port) is used.
	Host string
	Port uint16
	// SSLMode, if set, is added to every URL as sslmode=SSLMode.
	SSLMode string
	// Plans are the plans offered, the first being the default. If nil,
	// DefaultPlans() are.
	Plans []Plan
	// Schema holds the provisioner's metadata table in the admin database.
	// If empty, "slipway_addons" is used.
	Schema string
	// Template is the template database. If empty, "template0" is used, to
	// which nobody can connect, so concurrent creations never collide.
	Template string
	// EncryptionKey, if set, must hold 32 bytes: the passwords kept in the
	// metadata table are then sealed with AES-256-GCM, bound to their
	// resource, so a dump of the admin database does not reveal them.
	// Passwords stored before a key was set are still read.
	EncryptionKey addons.Secret
	// Logger receives one line per change, never a credential. If nil,
	// nothing is logged.
	Logger *slog.Logger
}

// Provisioner is the PostgreSQL addons.Provisioner. It is safe for
// concurrent use, also by several processes sharing one server.
type Provisioner struct {
	cfg   Config
	plans map[string]Plan
	table string
	log   *slog.Logger
	// stepHook, when set (tests only, see export_test.go), runs before each
	// convergence step with the admin session's backend pid.
	stepHook func(ctx context.Context, step string, pid uint32) error
}

var (
	_ addons.Provisioner = (*Provisioner)(nil)
	_ addons.PlanChanger = (*Provisioner)(nil)
	_ addons.Rotator     = (*Provisioner)(nil)
)

// New checks cfg, creates the metadata table if needed, and revokes
// CONNECT from PUBLIC on the admin database, "postgres" and "template1".
func New(ctx context.Context, cfg Config) (*Provisioner, error) {
	if cfg.Admin == nil {
		return nil, errors.New("postgres: Config.Admin is required")
	}
	if cfg.Plans == nil {
		cfg.Plans = DefaultPlans()
	}
	if len(cfg.Plans) == 0 {
		return nil, errors.New("postgres: Config.Plans is empty")
	}
	plans := make(map[string]Plan, len(cfg.Plans))
	for _, p := range cfg.Plans {
		if p.Name == "" || strings.ContainsAny(p.Name, " \t\r\n") || p.ConnectionLimit < 0 || p.StatementTimeout < 0 {
			return nil, fmt.Errorf("postgres: invalid plan %q", p.Name)
		}
		if _, dup := plans[p.Name]; dup {
			return nil, fmt.Errorf("postgres: plan %q appears twice", p.Name)
		}
		plans[p.Name] = p
	}
	if k := cfg.EncryptionKey; !k.IsZero() && len(k.Reveal()) != 32 {
		return nil, errors.New("postgres: Config.EncryptionKey must be 32 bytes")
	}
	if cfg.Schema == "" {
		cfg.Schema = "slipway_addons"
	}
	if cfg.Template == "" {
		cfg.Template = "template0"
	}
	cc := cfg.Admin.Config().ConnConfig
	if cfg.Host == "" {
		cfg.Host = cc.Host
	}
	if cfg.Port == 0 {
		cfg.Port = cc.Port
	}
	p := &Provisioner{cfg: cfg, plans: plans, table: pgx.Identifier{cfg.Schema, "postgres_resources"}.Sanitize(), log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if err := p.setup(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Provisioner) setup(ctx context.Context) error {
	schema := pgx.Identifier{p.cfg.Schema}.Sanitize()
	err := pgx.BeginFunc(ctx, p.cfg.Admin, func(tx pgx.Tx) error {
		// Serialize concurrent set-ups: CREATE ... IF NOT EXISTS races.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('slipway_addons/postgres/setup', 0))"); err != nil {
			return err
		}
		stmts := []string{
			"CREATE SCHEMA IF NOT EXISTS " + schema,
			"REVOKE ALL ON SCHEMA " + schema + " FROM PUBLIC",
			`CREATE TABLE IF NOT EXISTS ` + p.table + ` (
				id text PRIMARY KEY,
				request_id text NOT NULL UNIQUE,
				app text NOT NULL,
				plan text NOT NULL,
				database text NOT NULL,
				owner_role text NOT NULL,
				login_a text NOT NULL,
				login_b text NOT NULL,
				current_login int NOT NULL DEFAULT 0,
				password text,
				old_password text,
				rotation_pending bool NOT NULL DEFAULT false,
				state text NOT NULL,
				created_at timestamptz NOT NULL DEFAULT now()
			)`,
			"REVOKE ALL ON " + p.table + " FROM PUBLIC",
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		var dbs []string
		rows, err := tx.Query(ctx, "SELECT datname FROM pg_database WHERE datname = ANY($1)", []string{"postgres", "template1", p.cfg.Admin.Config().ConnConfig.Database})
		if err != nil {
			return err
		}
		dbs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, db := range dbs {
			if _, err := tx.Exec(ctx, "REVOKE CONNECT ON DATABASE "+pgx.Identifier{db}.Sanitize()+" FROM PUBLIC"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return p.fail(ctx, "setup", "", "", err)
	}
	return nil
}

// Capabilities implements addons.Provisioner.
func (p *Provisioner) Capabilities() addons.Capabilities {
	c := addons.Capabilities{Service: Service, DefaultAttachment: "DATABASE", PlanChange: true, Rotation: true}
	for _, pl := range p.cfg.Plans {
		c.Plans = append(c.Plans, addons.Plan{Name: pl.Name, Description: pl.Description})
	}
	return c
}

// resource is one row of the metadata table.
type resource struct {
	id, requestID, app, plan        string
	database, owner, loginA, loginB string
	current                         int // 0: loginA, 1: loginB
	password, oldPassword           string
	pending                         bool
	state                           string
	createdAt                       time.Time
}

// Resource states.
const (
	stateProvisioning   = "provisioning"
	stateReady          = "ready"
	stateDeprovisioning = "deprovisioning"
	stateGone           = "deprovisioned"
)

func (r *resource) login(i int) string {
	if i == 0 {
		return r.loginA
	}
	return r.loginB
}

const columns = `id, request_id, app, plan, database, owner_role, login_a, login_b, current_login,
	coalesce(password, ''), coalesce(old_password, ''), rotation_pending, state, created_at`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (p *Provisioner) load(ctx context.Context, q querier, where string, arg string) (*resource, error) {
	var r resource
	err := q.QueryRow(ctx, "SELECT "+columns+" FROM "+p.table+" WHERE "+where+" = $1", arg).Scan(
		&r.id, &r.requestID, &r.app, &r.plan, &r.database, &r.owner, &r.loginA, &r.loginB, &r.current,
		&r.password, &r.oldPassword, &r.pending, &r.state, &r.createdAt)
	if err != nil {
		return nil, err
	}
	key := p.cfg.EncryptionKey.Reveal()
	if r.password, err = seal.Open(key, r.id, r.password); err != nil {
		return nil, err
	}
	if r.oldPassword, err = seal.Open(key, r.id, r.oldPassword); err != nil {
		return nil, err
	}
	return &r, nil
}

// sealed returns password as stored for resource id.
func (p *Provisioner) sealed(id, password string) (string, error) {
	return seal.Seal(p.cfg.EncryptionKey.Reveal(), id, password)
}

// view turns a row into the resource the contract reports.
func (p *Provisioner) view(r *resource) addons.Resource {
	u := url.URL{
		Scheme:  "postgres",
		User:    url.UserPassword(r.login(r.current), r.password),
		Host:    net.JoinHostPort(p.cfg.Host, strconv.Itoa(int(p.cfg.Port))),
		Path:    "/" + r.database,
		RawPath: "/" + url.PathEscape(r.database),
	}
	if p.cfg.SSLMode != "" {
		u.RawQuery = url.Values{"sslmode": {p.cfg.SSLMode}}.Encode()
	}
	return addons.Resource{
		ID: r.id, Service: Service, App: r.app, Plan: r.plan, CreatedAt: r.createdAt.UTC(),
		Config: addons.Config{"URL": addons.NewSecret(u.String())},
	}
}

// Provision implements addons.Provisioner.
func (p *Provisioner) Provision(ctx context.Context, req addons.Request) (addons.Resource, error) {
	if err := req.Validate(); err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, "", err)
	}
	plan, err := p.Capabilities().ResolvePlan(req.Plan)
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, "", err)
	}
	hexID := randomHex(8)
	base := cut(req.App, 30) + "_" + hexID
	fresh := resource{
		id: "pg-" + hexID, requestID: req.RequestID, app: req.App, plan: plan,
		database: base, owner: base + "_owner", loginA: base + "_a", loginB: base + "_b",
		password: randomPassword(),
	}
	stored, err := p.sealed(fresh.id, fresh.password)
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, "", err)
	}
	_, err = p.cfg.Admin.Exec(ctx, `INSERT INTO `+p.table+` (id, request_id, app, plan, database, owner_role, login_a, login_b, password, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (request_id) DO NOTHING`,
		fresh.id, fresh.requestID, fresh.app, fresh.plan, fresh.database, fresh.owner, fresh.loginA, fresh.loginB, stored, stateProvisioning)
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, "", err)
	}
	r, err := p.load(ctx, p.cfg.Admin, "request_id", req.RequestID)
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, "", err)
	}
	if r.app != req.App || r.plan != plan || r.state == stateDeprovisioning || r.state == stateGone {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, r.id,
			fmt.Errorf("%w: request id already used for another app or plan, or for a deprovisioned resource", addons.ErrConflict))
	}
	if r.state == stateReady {
		return p.view(r), nil
	}
	var out addons.Resource
	err = p.locked(ctx, r.id, func(conn *pgxpool.Conn) error {
		r, err := p.load(ctx, conn, "id", r.id)
		if err != nil {
			return err
		}
		switch r.state {
		case stateReady:
			out = p.view(r)
			return nil
		case stateProvisioning:
		default:
			return fmt.Errorf("%w: resource was deprovisioned meanwhile", addons.ErrConflict)
		}
		if err := p.converge(ctx, conn, r); err != nil {
			return err
		}
		if err := p.step(ctx, conn, "ready"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "UPDATE "+p.table+" SET state = $2 WHERE id = $1 AND state = $3", r.id, stateReady, stateProvisioning); err != nil {
			return err
		}
		out = p.view(r)
		return nil
	})
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, r.id, err)
	}
	p.log.Info("addon provisioned", "service", Service, "id", out.ID, "app", out.App, "plan", out.Plan, "database", r.database)
	return out, nil
}

// converge makes the roles and the database of r exist as they should,
// each step tolerating that it was done before.
func (p *Provisioner) converge(ctx context.Context, conn *pgxpool.Conn, r *resource) error {
	plan := p.plans[r.plan]
	owner := ident(r.owner)
	const attrs = " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
	if err := p.step(ctx, conn, "roles"); err != nil {
		return err
	}
	if err := execIgnore(ctx, conn, "CREATE ROLE "+owner+" NOLOGIN"+attrs, "42710"); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		if err := execIgnore(ctx, conn, "CREATE ROLE "+ident(r.login(i))+" NOLOGIN"+attrs, "42710"); err != nil {
			return err
		}
	}
	if err := p.step(ctx, conn, "grants"); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		login := ident(r.login(i))
		if err := execAll(ctx, conn,
			"GRANT "+owner+" TO "+login,
			"ALTER ROLE "+login+" SET role TO "+owner,
		); err != nil {
			return err
		}
	}
	if err := p.step(ctx, conn, "settings"); err != nil {
		return err
	}
	if err := p.applyPlan(ctx, conn, r, plan); err != nil {
		return err
	}
	if err := p.applyLogins(ctx, conn, r); err != nil {
		return err
	}
	if err := p.step(ctx, conn, "database"); err != nil {
		return err
	}
	db := ident(r.database)
	if err := execIgnore(ctx, conn, "CREATE DATABASE "+db+" OWNER "+owner+" TEMPLATE "+ident(p.cfg.Template), "42P04"); err != nil {
		return err
	}
	if err := p.step(ctx, conn, "revoke"); err != nil {
		return err
	}
	if err := execAll(ctx, conn,
		"REVOKE ALL ON DATABASE "+db+" FROM PUBLIC",
		"GRANT CONNECT, TEMPORARY ON DATABASE "+db+" TO "+owner,
	); err != nil {
		return err
	}
	if err := p.step(ctx, conn, "schema"); err != nil {
		return err
	}
	return p.lockSchema(ctx, r)
}

// lockSchema gives the public schema of r's database to the owner role and
// revokes it from PUBLIC, over a session to that database.
func (p *Provisioner) lockSchema(ctx context.Context, r *resource) error {
	cc := p.cfg.Admin.Config().ConnConfig.Copy()
	cc.Database = r.database
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	owner := ident(r.owner)
	return execAll(ctx, c,
		"ALTER SCHEMA public OWNER TO "+owner,
		"REVOKE ALL ON SCHEMA public FROM PUBLIC",
		"GRANT ALL ON SCHEMA public TO "+owner,
	)
}

// applyPlan sets the plan's limits on both login roles.
func (p *Provisioner) applyPlan(ctx context.Context, conn *pgxpool.Conn, r *resource, plan Plan) error {
	limit := plan.ConnectionLimit
	if limit == 0 {
		limit = -1
	}
	for i := 0; i < 2; i++ {
		login := ident(r.login(i))
		timeout := "ALTER ROLE " + login + " RESET statement_timeout"
		if plan.StatementTimeout > 0 {
			timeout = "ALTER ROLE " + login + " SET statement_timeout TO " + strconv.FormatInt(plan.StatementTimeout.Milliseconds(), 10)
		}
		if err := execAll(ctx, conn, "ALTER ROLE "+login+" CONNECTION LIMIT "+strconv.Itoa(limit), timeout); err != nil {
			return err
		}
	}
	return nil
}

// applyLogins gives the current login role its password and LOGIN, and the
// other one the old password during a rotation, or NOLOGIN and no password.
func (p *Provisioner) applyLogins(ctx context.Context, conn *pgxpool.Conn, r *resource) error {
	set := func(login, password string) error {
		if password == "" {
			return execAll(ctx, conn, "ALTER ROLE "+ident(login)+" NOLOGIN PASSWORD NULL")
		}
		v, err := scramVerifier(password)
		if err != nil {
			return err
		}
		return execAll(ctx, conn, "ALTER ROLE "+ident(login)+" LOGIN PASSWORD '"+v+"'")
	}
	if err := set(r.login(r.current), r.password); err != nil {
		return err
	}
	old := ""
	if r.pending {
		old = r.oldPassword
	}
	return set(r.login(1-r.current), old)
}

// Resource implements addons.Provisioner.
func (p *Provisioner) Resource(ctx context.Context, id string) (addons.Resource, error) {
	r, err := p.load(ctx, p.cfg.Admin, "id", id)
	if err == nil && r.state != stateReady {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "resource", "", id, err)
	}
	return p.view(r), nil
}

// Deprovision implements addons.Provisioner.
func (p *Provisioner) Deprovision(ctx context.Context, id string) error {
	var app string
	err := p.locked(ctx, id, func(conn *pgxpool.Conn) error {
		r, err := p.load(ctx, conn, "id", id)
		if err != nil {
			return err
		}
		app = r.app
		if r.state == stateGone {
			return nil
		}
		if _, err := conn.Exec(ctx, "UPDATE "+p.table+" SET state = $2 WHERE id = $1", id, stateDeprovisioning); err != nil {
			return err
		}
		logins := []string{r.loginA, r.loginB}
		for _, l := range logins {
			if err := execIgnore(ctx, conn, "ALTER ROLE "+ident(l)+" NOLOGIN PASSWORD NULL", "42704"); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1) OR datname = $2",
			append(logins, r.owner), r.database); err != nil {
			return err
		}
		if err := execAll(ctx, conn,
			"DROP DATABASE IF EXISTS "+ident(r.database)+" WITH (FORCE)",
			"DROP ROLE IF EXISTS "+ident(r.loginA)+", "+ident(r.loginB)+", "+ident(r.owner),
		); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "UPDATE "+p.table+" SET state = $2, password = NULL, old_password = NULL, rotation_pending = false WHERE id = $1", id, stateGone)
		return err
	})
	if err != nil {
		return p.fail(ctx, "deprovision", app, id, err)
	}
	p.log.Info("addon deprovisioned", "service", Service, "id", id, "app", app)
	return nil
}

// ChangePlan implements addons.PlanChanger: it changes the login roles'
// limits in place; sessions already open keep the old statement_timeout
// until they reconnect.
func (p *Provisioner) ChangePlan(ctx context.Context, id, plan string) (addons.Resource, error) {
	pl, ok := p.plans[plan]
	if !ok {
		return addons.Resource{}, p.fail(ctx, "change plan", "", id, fmt.Errorf("%w: %q is not a %s plan", addons.ErrUnknownPlan, plan, Service))
	}
	var out addons.Resource
	err := p.locked(ctx, id, func(conn *pgxpool.Conn) error {
		r, err := p.loadReady(ctx, conn, id)
		if err != nil {
			return err
		}
		if err := p.applyPlan(ctx, conn, r, pl); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "UPDATE "+p.table+" SET plan = $2 WHERE id = $1", id, plan); err != nil {
			return err
		}
		r.plan = plan
		out = p.view(r)
		return nil
	})
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "change plan", "", id, err)
	}
	p.log.Info("addon plan changed", "service", Service, "id", id, "plan", plan)
	return out, nil
}

// Rotate implements addons.Rotator.
func (p *Provisioner) Rotate(ctx context.Context, id string) (addons.Resource, error) {
	var out addons.Resource
	err := p.locked(ctx, id, func(conn *pgxpool.Conn) error {
		r, err := p.loadReady(ctx, conn, id)
		if err != nil {
			return err
		}
		if !r.pending {
			r.oldPassword, r.password, r.current, r.pending = r.password, randomPassword(), 1-r.current, true
			pw, err := p.sealed(id, r.password)
			if err != nil {
				return err
			}
			old, err := p.sealed(id, r.oldPassword)
			if err != nil {
				return err
			}
			if _, err := conn.Exec(ctx, "UPDATE "+p.table+" SET password = $2, old_password = $3, current_login = $4, rotation_pending = true WHERE id = $1",
				id, pw, old, r.current); err != nil {
				return err
			}
		}
		// Converge the roles to the row: a retry after a crash here
		// completes the rotation it recorded.
		if err := p.applyLogins(ctx, conn, r); err != nil {
			return err
		}
		out = p.view(r)
		return nil
	})
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "rotate", "", id, err)
	}
	p.log.Info("addon credentials rotated", "service", Service, "id", id)
	return out, nil
}

// Retire implements addons.Rotator: the login role of the old credentials
// becomes NOLOGIN without a password, and its sessions are terminated.
func (p *Provisioner) Retire(ctx context.Context, id string) error {
	err := p.locked(ctx, id, func(conn *pgxpool.Conn) error {
		r, err := p.loadReady(ctx, conn, id)
		if err != nil {
			return err
		}
		if !r.pending {
			return nil
		}
		r.pending, r.oldPassword = false, ""
		if err := p.applyLogins(ctx, conn, r); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", r.login(1-r.current)); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "UPDATE "+p.table+" SET old_password = NULL, rotation_pending = false WHERE id = $1", id)
		return err
	})
	if err != nil {
		return p.fail(ctx, "retire", "", id, err)
	}
	p.log.Info("addon old credentials retired", "service", Service, "id", id)
	return nil
}

// ReconcileReport says what Reconcile did.
type ReconcileReport struct {
	Deprovisioned []string // ids whose interrupted deprovisioning was finished
	Pending       []string // ids still being provisioned, left to the retried Provision
}

// Reconcile finishes deprovisionings that a crash interrupted and lists
// provisionings still pending (which the caller retries with their request
// ids). Run it after the control plane restarts; it is safe at any time.
func (p *Provisioner) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	rows, err := p.cfg.Admin.Query(ctx, "SELECT id, state FROM "+p.table+" WHERE state IN ($1, $2) ORDER BY id", stateDeprovisioning, stateProvisioning)
	if err != nil {
		return rep, p.fail(ctx, "reconcile", "", "", err)
	}
	type idState struct{ id, state string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (idState, error) {
		var v idState
		return v, r.Scan(&v.id, &v.state)
	})
	if err != nil {
		return rep, p.fail(ctx, "reconcile", "", "", err)
	}
	for _, v := range list {
		if v.state == stateProvisioning {
			rep.Pending = append(rep.Pending, v.id)
			continue
		}
		if err := p.Deprovision(ctx, v.id); err != nil {
			return rep, err
		}
		rep.Deprovisioned = append(rep.Deprovisioned, v.id)
	}
	return rep, nil
}

func (p *Provisioner) loadReady(ctx context.Context, q querier, id string) (*resource, error) {
	r, err := p.load(ctx, q, "id", id)
	if err != nil {
		return nil, err
	}
	if r.state != stateReady {
		return nil, pgx.ErrNoRows
	}
	return r, nil
}

// locked runs fn on one admin session holding the resource's advisory
// lock. When fn fails the session is closed rather than returned to the
// pool, which also releases the lock whatever state the session is in.
func (p *Provisioner) locked(ctx context.Context, id string, fn func(*pgxpool.Conn) error) error {
	conn, err := p.cfg.Admin.Acquire(ctx)
	if err != nil {
		return err
	}
	key := "slipway_addons/postgres/" + id
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", key); err != nil {
		discard(conn)
		return err
	}
	if err := fn(conn); err != nil {
		discard(conn)
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key); err != nil {
		discard(conn)
		return err
	}
	conn.Release()
	return nil
}

func discard(conn *pgxpool.Conn) {
	c := conn.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

func (p *Provisioner) step(ctx context.Context, conn *pgxpool.Conn, name string) error {
	if p.stepHook == nil {
		return nil
	}
	return p.stepHook(ctx, name, conn.Conn().PgConn().PID())
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func execAll(ctx context.Context, c execer, stmts ...string) error {
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// execIgnore runs stmt and ignores the PostgreSQL error with code ignore
// (duplicate_object and the like), which makes a step idempotent.
func execIgnore(ctx context.Context, c execer, stmt, ignore string) error {
	_, err := c.Exec(ctx, stmt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == ignore {
		return nil
	}
	return err
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// fail turns err into an *addons.Error that carries no credential: a
// PostgreSQL error is reduced to its code and message (never its detail,
// which may quote values), connection failures and sessions killed by the
// server become addons.ErrUnavailable.
func (p *Provisioner) fail(ctx context.Context, op, app, id string, err error) error {
	e := &addons.Error{Op: op, Service: Service, App: app, ID: id}
	var pgErr *pgconn.PgError
	var ae *addons.Error
	switch {
	case errors.As(err, &ae):
		e.Err = ae.Err
	case errors.Is(err, seal.ErrOpen), errors.Is(err, seal.ErrKey):
		e.Err = err
	case errors.Is(err, pgx.ErrNoRows):
		e.Err = addons.ErrNotFound
	case ctx.Err() != nil:
		e.Err = ctx.Err()
	case errors.As(err, &pgErr):
		cause := fmt.Errorf("postgres error %s: %s", pgErr.Code, pgErr.Message)
		switch pgErr.Code[:2] {
		case "08", "53", "57", "40", "55":
			cause = fmt.Errorf("%w: postgres error %s: %s", addons.ErrUnavailable, pgErr.Code, pgErr.Message)
		}
		e.Err = cause
	case addons.IsContractError(err):
		e.Err = err
	default:
		// Connection-level failures (refused, reset, closed by a
		// terminated backend). pgconn's messages name host and user, never
		// the password.
		e.Err = fmt.Errorf("%w: %v", addons.ErrUnavailable, err)
	}
	return e
}

// cut shortens s to at most n bytes without splitting a rune.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// randomPassword returns 256 random bits in URL-safe base64, so that it
// needs no escaping in a URL.
func randomPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// scramVerifier computes the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677, as libpq's PQencryptPasswordConn does), so
// that the plain password is never sent to the server. The result contains
// only base64 characters, '$' and ':' and is safe inside a SQL literal.
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}
