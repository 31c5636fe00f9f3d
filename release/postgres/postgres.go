// Package postgres is a release.Store in PostgreSQL, for control planes
// that run on several machines or want their state in a managed database.
//
// Open applies the embedded schema migrations under an advisory lock, so
// several processes may open the same database at once. Each app is one row
// holding its version counter, deploy journal and deploy lease; every
// Commit locks that row (SELECT ... FOR UPDATE), so versions are assigned
// one at a time per app, with no gap and no duplicate, across any number of
// processes, and the primary key (app, version) backs that up.
//
// Lease expiry is judged by the database's clock, not the callers'.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slipwayhq/slipway/release"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure Open. The zero value is valid.
type Options struct {
	// Schema holds the tables; Open creates it. Empty means
	// "slipway_release". Several stores can share a database in different
	// schemas.
	Schema string
	// Keyring, if not nil, encrypts config values at rest.
	Keyring *release.Keyring
	// MaxConns bounds the pool; zero means pgxpool's default.
	MaxConns int32
}

// Store is a release.Store in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	keys *release.Keyring
}

var _ release.Store = (*Store)(nil)

// Open connects to the database at url (a libpq URL or DSN), creates the
// schema and applies pending migrations.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	if o.Schema == "" {
		o.Schema = "slipway_release"
	}
	if !validIdent(o.Schema) {
		return nil, fmt.Errorf("%w: schema %q must be lower-case letters, digits and '_'", release.ErrInvalid, o.Schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("release/postgres: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("release/postgres: %w", err)
	}
	if err := migrate(ctx, pool, o.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, keys: o.Keyring}, nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// migrate applies the embedded migrations not yet recorded, each in its
// own transaction, holding a session advisory lock so that processes
// opening the store at once take turns.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("release/postgres: %w", err)
	}
	defer conn.Release()
	lockKey := "slipway/release/" + schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return fmt.Errorf("release/postgres: migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("release/postgres: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("release/postgres: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("release/postgres: migration %s has no number", name)
		}
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", v).Scan(&done); err != nil {
			return fmt.Errorf("release/postgres: %w", err)
		}
		if done {
			continue
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("release/postgres: migration %s: %w", name, err)
		}
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

const appCols = "name, current, latest, formation, created_at, deploy, lease_owner, lease_token, lease_expires, token_seq"

type appRow struct {
	release.App
	deploy  []byte
	lease   release.Lease
	expires *time.Time
	seq     int64
}

func scanApp(row pgx.Row) (*appRow, error) {
	var a appRow
	var form []byte
	if err := row.Scan(&a.Name, &a.Current, &a.Latest, &form, &a.CreatedAt, &a.deploy, &a.lease.Owner, &a.lease.Token, &a.expires, &a.seq); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(form, &a.Formation); err != nil {
		return nil, fmt.Errorf("release/postgres: app %s formation: %w", a.Name, err)
	}
	if len(a.Formation) == 0 {
		a.Formation = nil
	}
	a.lease.App = a.Name
	if a.expires != nil {
		a.lease.Expires = *a.expires
	}
	return &a, nil
}

func (s *Store) getApp(ctx context.Context, q pgx.Tx, name string, lock bool) (*appRow, error) {
	sql := "SELECT " + appCols + " FROM apps WHERE name = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	var row pgx.Row
	if q != nil {
		row = q.QueryRow(ctx, sql, name)
	} else {
		row = s.pool.QueryRow(ctx, sql, name)
	}
	a, err := scanApp(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, release.AppNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("release/postgres: app %s: %w", name, err)
	}
	return a, nil
}

// CreateApp implements release.Store.
func (s *Store) CreateApp(ctx context.Context, a release.App) error {
	if err := release.ValidateAppName(a.Name); err != nil {
		return err
	}
	created := a.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	form, err := json.Marshal(formationOrEmpty(a.Formation))
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, "INSERT INTO apps (name, formation, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
		a.Name, form, created.UTC().Truncate(time.Microsecond))
	if err != nil {
		return fmt.Errorf("release/postgres: create app %s: %w", a.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q", release.ErrAppExists, a.Name)
	}
	return nil
}

func formationOrEmpty(f []release.ProcessScale) []release.ProcessScale {
	if f == nil {
		return []release.ProcessScale{}
	}
	return f
}

// App implements release.Store.
func (s *Store) App(ctx context.Context, name string) (release.App, error) {
	a, err := s.getApp(ctx, nil, name, false)
	if err != nil {
		return release.App{}, err
	}
	return a.App, nil
}

// Apps implements release.Store.
func (s *Store) Apps(ctx context.Context) ([]release.App, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+appCols+" FROM apps ORDER BY name COLLATE \"C\"")
	if err != nil {
		return nil, fmt.Errorf("release/postgres: %w", err)
	}
	defer rows.Close()
	var out []release.App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a.App)
	}
	return out, rows.Err()
}

// DeleteApp implements release.Store.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM apps WHERE name = $1", name)
	if err != nil {
		return fmt.Errorf("release/postgres: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return release.AppNotFound(name)
	}
	return nil
}

const releaseCols = "version, image_ref, image_digest, processes, config, attachments, cause, description, rollback_of, status, failure_reason, created_at, updated_at"

func (s *Store) scanRelease(app string, row pgx.Row) (release.Release, error) {
	r := release.Release{App: app}
	var procs, atts, cfg []byte
	var cause, status string
	if err := row.Scan(&r.Version, &r.Image.Ref, &r.Image.Digest, &procs, &cfg, &atts, &cause, &r.Description, &r.RollbackOf, &status, &r.FailureReason, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return r, err
	}
	r.Cause, r.Status = release.Cause(cause), release.Status(status)
	if err := json.Unmarshal(procs, &r.Processes); err != nil {
		return r, fmt.Errorf("release/postgres: %s: %w", r, err)
	}
	if len(r.Processes) == 0 {
		r.Processes = nil
	}
	if err := json.Unmarshal(atts, &r.Attachments); err != nil {
		return r, fmt.Errorf("release/postgres: %s: %w", r, err)
	}
	if len(r.Attachments) == 0 {
		r.Attachments = nil
	}
	c, err := release.DecodeConfig(s.keys, cfg, release.ConfigAAD(app, r.Version))
	if err != nil {
		return r, fmt.Errorf("release/postgres: %s: %w", r, err)
	}
	r.Config = c
	return r, nil
}

// Release implements release.Store.
func (s *Store) Release(ctx context.Context, app string, version int) (release.Release, error) {
	r, err := s.scanRelease(app, s.pool.QueryRow(ctx, "SELECT "+releaseCols+" FROM releases WHERE app = $1 AND version = $2", app, version))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.App(ctx, app); err != nil {
			return release.Release{}, err
		}
		return release.Release{}, release.ReleaseNotFound(app, version)
	}
	return r, err
}

// Releases implements release.Store.
func (s *Store) Releases(ctx context.Context, app string, limit int) ([]release.Release, error) {
	if _, err := s.App(ctx, app); err != nil {
		return nil, err
	}
	sql := "SELECT " + releaseCols + " FROM releases WHERE app = $1 ORDER BY version DESC"
	args := []any{app}
	if limit > 0 {
		sql += " LIMIT $2"
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("release/postgres: %w", err)
	}
	defer rows.Close()
	var out []release.Release
	for rows.Next() {
		r, err := s.scanRelease(app, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Commit implements release.Store.
func (s *Store) Commit(ctx context.Context, app string, l release.Lease, c release.Change) (release.Release, error) {
	if err := c.Validate(); err != nil {
		return release.Release{}, err
	}
	var created release.Release
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, err := s.getApp(ctx, tx, app, true)
		if err != nil {
			return err
		}
		if !l.IsZero() && (a.lease.Token != l.Token || a.lease.Owner != l.Owner || l.App != app) {
			return fmt.Errorf("%w: %s", release.ErrLeaseLost, app)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		newVersion := 0
		if r := c.Create; r != nil {
			a.Latest++
			newVersion = a.Latest
			status := r.Status
			if status == "" {
				status = release.StatusPending
			}
			procs, err := json.Marshal(r.Processes)
			if err != nil {
				return err
			}
			atts, err := json.Marshal(r.Attachments)
			if err != nil {
				return err
			}
			if r.Processes == nil {
				procs = []byte("{}")
			}
			if r.Attachments == nil {
				atts = []byte("[]")
			}
			cfg := release.EncodeConfig(s.keys, r.Config, release.ConfigAAD(app, newVersion))
			if _, err := tx.Exec(ctx, `INSERT INTO releases (app, version, image_ref, image_digest, processes, config, attachments,
				cause, description, rollback_of, status, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$12)`,
				app, newVersion, r.Image.Ref, r.Image.Digest, procs, cfg, atts, string(r.Cause), r.Description, r.RollbackOf, string(status), now); err != nil {
				return fmt.Errorf("release/postgres: create %s v%d: %w", app, newVersion, err)
			}
		}
		resolve := func(v int) int {
			if v == 0 {
				return newVersion
			}
			return v
		}
		for _, sc := range c.Statuses {
			v := resolve(sc.Version)
			tag, err := tx.Exec(ctx, `UPDATE releases SET status = $3, updated_at = $5,
				failure_reason = CASE WHEN $4 = '' THEN failure_reason ELSE $4 END WHERE app = $1 AND version = $2`,
				app, v, string(sc.Status), sc.Reason, now)
			if err != nil {
				return fmt.Errorf("release/postgres: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return release.ReleaseNotFound(app, v)
			}
		}
		if c.Current != nil {
			v := resolve(*c.Current)
			if v > a.Latest {
				return release.ReleaseNotFound(app, v)
			}
			a.Current = v
		}
		form, err := json.Marshal(formationOrEmpty(a.Formation))
		if err != nil {
			return err
		}
		if c.Formation != nil {
			if form, err = json.Marshal(formationOrEmpty(*c.Formation)); err != nil {
				return err
			}
		}
		deploy := a.deploy
		if c.Deploy != nil {
			d := *c.Deploy
			d.App = app
			d.Release = resolve(d.Release)
			if d.Release > a.Latest {
				return release.ReleaseNotFound(app, d.Release)
			}
			if deploy, err = json.Marshal(d); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE apps SET current = $2, latest = $3, formation = $4, deploy = $5 WHERE name = $1",
			app, a.Current, a.Latest, form, deploy); err != nil {
			return fmt.Errorf("release/postgres: %w", err)
		}
		if newVersion > 0 {
			created, err = s.scanRelease(app, tx.QueryRow(ctx, "SELECT "+releaseCols+" FROM releases WHERE app = $1 AND version = $2", app, newVersion))
			return err
		}
		return nil
	})
	if err != nil {
		return release.Release{}, err
	}
	return created, nil
}

// Deploy implements release.Store.
func (s *Store) Deploy(ctx context.Context, app string) (release.Deploy, bool, error) {
	a, err := s.getApp(ctx, nil, app, false)
	if err != nil || a.deploy == nil {
		return release.Deploy{}, false, err
	}
	var d release.Deploy
	if err := json.Unmarshal(a.deploy, &d); err != nil {
		return d, false, fmt.Errorf("release/postgres: %s journal: %w", app, err)
	}
	return d, true, nil
}

// AcquireLease implements release.Store.
func (s *Store) AcquireLease(ctx context.Context, app, owner string, ttl time.Duration) (release.Lease, error) {
	if owner == "" || ttl <= 0 {
		return release.Lease{}, fmt.Errorf("%w: lease needs an owner and a positive ttl", release.ErrInvalid)
	}
	l := release.Lease{App: app, Owner: owner}
	err := s.pool.QueryRow(ctx, `UPDATE apps SET lease_owner = $2, token_seq = token_seq + 1, lease_token = token_seq + 1,
		lease_expires = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE name = $1 AND (lease_owner = '' OR lease_owner = $2 OR lease_expires <= clock_timestamp())
		RETURNING lease_token, lease_expires`, app, owner, ttl.Microseconds()).Scan(&l.Token, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		a, err := s.getApp(ctx, nil, app, false)
		if err != nil {
			return release.Lease{}, err
		}
		return release.Lease{}, &release.LeaseError{App: app, Owner: a.lease.Owner, Expires: a.lease.Expires}
	}
	if err != nil {
		return release.Lease{}, fmt.Errorf("release/postgres: lease %s: %w", app, err)
	}
	return l, nil
}

// RenewLease implements release.Store.
func (s *Store) RenewLease(ctx context.Context, l release.Lease, ttl time.Duration) (release.Lease, error) {
	err := s.pool.QueryRow(ctx, `UPDATE apps SET lease_expires = clock_timestamp() + $4 * interval '1 microsecond'
		WHERE name = $1 AND lease_owner = $2 AND lease_token = $3 AND $2 <> '' RETURNING lease_expires`,
		l.App, l.Owner, l.Token, ttl.Microseconds()).Scan(&l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.App(ctx, l.App); err != nil {
			return release.Lease{}, err
		}
		return release.Lease{}, fmt.Errorf("%w: %s", release.ErrLeaseLost, l.App)
	}
	if err != nil {
		return release.Lease{}, fmt.Errorf("release/postgres: lease %s: %w", l.App, err)
	}
	return l, nil
}

// ReleaseLease implements release.Store.
func (s *Store) ReleaseLease(ctx context.Context, l release.Lease) error {
	tag, err := s.pool.Exec(ctx, `UPDATE apps SET lease_owner = '', lease_token = 0, lease_expires = NULL
		WHERE name = $1 AND lease_owner = $2 AND lease_token = $3 AND $2 <> ''`, l.App, l.Owner, l.Token)
	if err != nil {
		return fmt.Errorf("release/postgres: lease %s: %w", l.App, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.App(ctx, l.App); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", release.ErrLeaseLost, l.App)
	}
	return nil
}

// Reencrypt rewrites every release's config sealed with the keyring's
// primary key (or in clear without a keyring), one transaction per app.
// It is the second step of a key rotation (see release.Keyring) and is
// safe to run again after an interruption.
func (s *Store) Reencrypt(ctx context.Context) (rewritten int, err error) {
	apps, err := s.Apps(ctx)
	if err != nil {
		return 0, err
	}
	for _, a := range apps {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "SELECT version, config FROM releases WHERE app = $1 FOR UPDATE", a.Name)
			if err != nil {
				return err
			}
			type upd struct {
				v   int
				cfg []byte
			}
			var todo []upd
			for rows.Next() {
				var u upd
				if err := rows.Scan(&u.v, &u.cfg); err != nil {
					rows.Close()
					return err
				}
				id, sealed := release.SealedKeyID(u.cfg)
				if (s.keys == nil && !sealed) || (s.keys != nil && sealed && id == s.keys.Primary()) {
					continue
				}
				aad := release.ConfigAAD(a.Name, u.v)
				c, err := release.DecodeConfig(s.keys, u.cfg, aad)
				if err != nil {
					rows.Close()
					return fmt.Errorf("%s v%d: %w", a.Name, u.v, err)
				}
				u.cfg = release.EncodeConfig(s.keys, c, aad)
				todo = append(todo, u)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, u := range todo {
				if _, err := tx.Exec(ctx, "UPDATE releases SET config = $3 WHERE app = $1 AND version = $2", a.Name, u.v, u.cfg); err != nil {
					return err
				}
			}
			rewritten += len(todo)
			return nil
		})
		if err != nil {
			return rewritten, fmt.Errorf("release/postgres: reencrypt: %w", err)
		}
	}
	return rewritten, nil
}
