// Package bolt is a release.Store in one local file, on bbolt: the
// embedded store for a single-machine control plane, with no server to run.
//
// Why bbolt and not SQLite: bbolt is pure Go (no cgo, so Slipway still
// cross-compiles into one static binary), it is a single file with ACID
// transactions that fsync on commit (a Commit that returned survives a
// power cut or a SIGKILL), and it is already a dependency of the ecosystem
// (etcd). Its one writer at a time is no limit here: releases are written
// a few times per deploy.
//
// The file is locked while open: a second process opening it waits up to
// Options.Timeout, then fails. Use release/postgres to run several control
// planes on one store.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/scale"
)

// Options configure Open. The zero value is valid.
type Options struct {
	// Keyring, if not nil, encrypts config values at rest. Without it,
	// values are stored in clear, and sealed values cannot be read.
	Keyring *release.Keyring
	// Timeout bounds the wait for another process's lock on the file; zero
	// means one second.
	Timeout time.Duration
	// Mode is the file's permission when created; zero means 0600.
	Mode os.FileMode
}

// Store is a release.Store in a bbolt file.
type Store struct {
	db   *bbolt.DB
	keys *release.Keyring
}

var _ release.Store = (*Store)(nil)

var (
	bucketApps     = []byte("apps")
	bucketReleases = []byte("releases") // one sub-bucket per app, keyed by big-endian version
)

// Open opens (creating if needed) the store in the file at path.
func Open(path string, o Options) (*Store, error) {
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	db, err := bbolt.Open(path, o.Mode, &bbolt.Options{Timeout: o.Timeout})
	if err != nil {
		return nil, fmt.Errorf("release/bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketApps, bucketReleases} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("release/bolt: init %s: %w", path, err)
	}
	return &Store{db: db, keys: o.Keyring}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

type appRecord struct {
	Name      string
	Current   int
	Latest    int
	Formation []release.ProcessScale `json:",omitempty"`
	CreatedAt time.Time
	Deploy    *release.Deploy `json:",omitempty"`
	Lease     release.Lease
	TokenSeq  int64
}

type releaseRecord struct {
	Version       int
	Image         scale.Image
	Processes     map[string]string `json:",omitempty"`
	Config        []byte            `json:",omitempty"` // release.EncodeConfig
	Attachments   []release.Attachment
	Cause         release.Cause
	Description   string
	RollbackOf    int `json:",omitempty"`
	Status        release.Status
	FailureReason string `json:",omitempty"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func vkey(v int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapErr(s.db.View(fn))
}

func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapErr(s.db.Update(fn))
}

func mapErr(err error) error {
	if errors.Is(err, bbolt.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", release.ErrClosed, err)
	}
	return err
}

func getApp(tx *bbolt.Tx, name string) (*appRecord, error) {
	b := tx.Bucket(bucketApps).Get([]byte(name))
	if b == nil {
		return nil, release.AppNotFound(name)
	}
	var a appRecord
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("release/bolt: app %q: %w", name, err)
	}
	return &a, nil
}

func putApp(tx *bbolt.Tx, a *appRecord) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketApps).Put([]byte(a.Name), b)
}

func (a *appRecord) app() release.App {
	return release.App{Name: a.Name, Current: a.Current, Latest: a.Latest, Formation: a.Formation, CreatedAt: a.CreatedAt}
}

func (s *Store) getRelease(tx *bbolt.Tx, app string, v int) (*releaseRecord, error) {
	rb := tx.Bucket(bucketReleases).Bucket([]byte(app))
	var b []byte
	if rb != nil && v > 0 {
		b = rb.Get(vkey(v))
	}
	if b == nil {
		return nil, release.ReleaseNotFound(app, v)
	}
	var r releaseRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("release/bolt: %s v%d: %w", app, v, err)
	}
	return &r, nil
}

func putRelease(tx *bbolt.Tx, app string, r *releaseRecord) error {
	rb, err := tx.Bucket(bucketReleases).CreateBucketIfNotExists([]byte(app))
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return rb.Put(vkey(r.Version), b)
}

func (s *Store) toRelease(app string, r *releaseRecord) (release.Release, error) {
	cfg, err := release.DecodeConfig(s.keys, r.Config, release.ConfigAAD(app, r.Version))
	if err != nil {
		return release.Release{}, fmt.Errorf("release/bolt: %s v%d: %w", app, r.Version, err)
	}
	return release.Release{
		App: app, Version: r.Version, Image: r.Image, Processes: r.Processes, Config: cfg,
		Attachments: r.Attachments, Cause: r.Cause, Description: r.Description, RollbackOf: r.RollbackOf,
		Status: r.Status, FailureReason: r.FailureReason, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}, nil
}

// CreateApp implements release.Store.
func (s *Store) CreateApp(ctx context.Context, a release.App) error {
	if err := release.ValidateAppName(a.Name); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketApps).Get([]byte(a.Name)) != nil {
			return fmt.Errorf("%w: %q", release.ErrAppExists, a.Name)
		}
		created := a.CreatedAt
		if created.IsZero() {
			created = time.Now().UTC()
		}
		// A leftover release bucket of a deleted app must not leak in.
		_ = tx.Bucket(bucketReleases).DeleteBucket([]byte(a.Name))
		return putApp(tx, &appRecord{Name: a.Name, Formation: a.Formation, CreatedAt: created})
	})
}

// App implements release.Store.
func (s *Store) App(ctx context.Context, name string) (release.App, error) {
	var out release.App
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		a, err := getApp(tx, name)
		if err == nil {
			out = a.app()
		}
		return err
	})
	return out, err
}

// Apps implements release.Store.
func (s *Store) Apps(ctx context.Context) ([]release.App, error) {
	var out []release.App
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketApps).ForEach(func(k, v []byte) error {
			var a appRecord
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("release/bolt: app %q: %w", k, err)
			}
			out = append(out, a.app())
			return nil
		})
	})
	return out, err
}

// DeleteApp implements release.Store.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getApp(tx, name); err != nil {
			return err
		}
		if err := tx.Bucket(bucketApps).Delete([]byte(name)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketReleases).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
			return err
		}
		return nil
	})
}

// Release implements release.Store.
func (s *Store) Release(ctx context.Context, app string, version int) (release.Release, error) {
	var out release.Release
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		r, err := s.getRelease(tx, app, version)
		if err != nil {
			return err
		}
		out, err = s.toRelease(app, r)
		return err
	})
	return out, err
}

// Releases implements release.Store.
func (s *Store) Releases(ctx context.Context, app string, limit int) ([]release.Release, error) {
	var out []release.Release
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		rb := tx.Bucket(bucketReleases).Bucket([]byte(app))
		if rb == nil {
			return nil
		}
		c := rb.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var rec releaseRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("release/bolt: %s: %w", app, err)
			}
			r, err := s.toRelease(app, &rec)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Commit implements release.Store.
func (s *Store) Commit(ctx context.Context, app string, l release.Lease, c release.Change) (release.Release, error) {
	if err := c.Validate(); err != nil {
		return release.Release{}, err
	}
	var created release.Release
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		a, err := getApp(tx, app)
		if err != nil {
			return err
		}
		if !l.IsZero() && (a.Lease.Token != l.Token || a.Lease.Owner != l.Owner || l.App != app) {
			return fmt.Errorf("%w: %s", release.ErrLeaseLost, app)
		}
		now := time.Now().UTC()
		var rec *releaseRecord
		if r := c.Create; r != nil {
			a.Latest++
			rec = &releaseRecord{
				Version: a.Latest, Image: r.Image, Processes: r.Processes, Attachments: r.Attachments,
				Config: release.EncodeConfig(s.keys, r.Config, release.ConfigAAD(app, a.Latest)),
				Cause:  r.Cause, Description: r.Description, RollbackOf: r.RollbackOf,
				Status: r.Status, CreatedAt: now, UpdatedAt: now,
			}
			if rec.Status == "" {
				rec.Status = release.StatusPending
			}
		}
		resolve := func(v int) int {
			if v == 0 && rec != nil {
				return rec.Version
			}
			return v
		}
		for _, sc := range c.Statuses {
			v := resolve(sc.Version)
			r := rec
			if rec == nil || v != rec.Version {
				if r, err = s.getRelease(tx, app, v); err != nil {
					return err
				}
			}
			r.Status = sc.Status
			if sc.Reason != "" {
				r.FailureReason = sc.Reason
			}
			r.UpdatedAt = now
			if r != rec {
				if err := putRelease(tx, app, r); err != nil {
					return err
				}
			}
		}
		if rec != nil {
			if err := putRelease(tx, app, rec); err != nil {
				return err
			}
		}
		if c.Current != nil {
			v := resolve(*c.Current)
			if v > a.Latest {
				return release.ReleaseNotFound(app, v)
			}
			a.Current = v
		}
		if c.Formation != nil {
			a.Formation = *c.Formation
		}
		if c.Deploy != nil {
			d := *c.Deploy
			d.App = app
			d.Release = resolve(d.Release)
			if d.Release > a.Latest {
				return release.ReleaseNotFound(app, d.Release)
			}
			a.Deploy = &d
		}
		if err := putApp(tx, a); err != nil {
			return err
		}
		if rec != nil {
			created, err = s.toRelease(app, rec)
		}
		return err
	})
	if err != nil {
		return release.Release{}, err
	}
	return created, nil
}

// Deploy implements release.Store.
func (s *Store) Deploy(ctx context.Context, app string) (release.Deploy, bool, error) {
	var d release.Deploy
	var ok bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		a, err := getApp(tx, app)
		if err == nil && a.Deploy != nil {
			d, ok = *a.Deploy, true
		}
		return err
	})
	return d, ok, err
}

// AcquireLease implements release.Store.
func (s *Store) AcquireLease(ctx context.Context, app, owner string, ttl time.Duration) (release.Lease, error) {
	if owner == "" || ttl <= 0 {
		return release.Lease{}, fmt.Errorf("%w: lease needs an owner and a positive ttl", release.ErrInvalid)
	}
	var out release.Lease
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		a, err := getApp(tx, app)
		if err != nil {
			return err
		}
		now := time.Now()
		if a.Lease.Owner != "" && a.Lease.Owner != owner && now.Before(a.Lease.Expires) {
			return &release.LeaseError{App: app, Owner: a.Lease.Owner, Expires: a.Lease.Expires}
		}
		a.TokenSeq++
		a.Lease = release.Lease{App: app, Owner: owner, Token: a.TokenSeq, Expires: now.Add(ttl).UTC()}
		out = a.Lease
		return putApp(tx, a)
	})
	return out, err
}

// RenewLease implements release.Store.
func (s *Store) RenewLease(ctx context.Context, l release.Lease, ttl time.Duration) (release.Lease, error) {
	var out release.Lease
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		a, err := getApp(tx, l.App)
		if err != nil {
			return err
		}
		if l.Owner == "" || a.Lease.Token != l.Token || a.Lease.Owner != l.Owner {
			return fmt.Errorf("%w: %s", release.ErrLeaseLost, l.App)
		}
		a.Lease.Expires = time.Now().Add(ttl).UTC()
		out = a.Lease
		return putApp(tx, a)
	})
	return out, err
}

// ReleaseLease implements release.Store.
func (s *Store) ReleaseLease(ctx context.Context, l release.Lease) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		a, err := getApp(tx, l.App)
		if err != nil {
			return err
		}
		if l.Owner == "" || a.Lease.Token != l.Token || a.Lease.Owner != l.Owner {
			return fmt.Errorf("%w: %s", release.ErrLeaseLost, l.App)
		}
		a.Lease = release.Lease{}
		return putApp(tx, a)
	})
}

// Reencrypt rewrites every release's config sealed with the keyring's
// primary key (or in clear when the store has no keyring), in batches of
// one transaction per app. It is the second step of a key rotation (see
// release.Keyring) and is safe to run again after an interruption.
func (s *Store) Reencrypt(ctx context.Context) (rewritten int, err error) {
	apps, err := s.Apps(ctx)
	if err != nil {
		return 0, err
	}
	for _, a := range apps {
		err := s.update(ctx, func(tx *bbolt.Tx) error {
			rb := tx.Bucket(bucketReleases).Bucket([]byte(a.Name))
			if rb == nil {
				return nil
			}
			type kv struct{ k, v []byte }
			var todo []kv
			err := rb.ForEach(func(k, v []byte) error {
				var rec releaseRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return err
				}
				id, sealed := release.SealedKeyID(rec.Config)
				if (s.keys == nil && !sealed) || (s.keys != nil && sealed && id == s.keys.Primary()) {
					return nil
				}
				aad := release.ConfigAAD(a.Name, rec.Version)
				cfg, err := release.DecodeConfig(s.keys, rec.Config, aad)
				if err != nil {
					return fmt.Errorf("%s v%d: %w", a.Name, rec.Version, err)
				}
				rec.Config = release.EncodeConfig(s.keys, cfg, aad)
				b, err := json.Marshal(&rec)
				if err != nil {
					return err
				}
				todo = append(todo, kv{bytes.Clone(k), b})
				return nil
			})
			if err != nil {
				return err
			}
			for _, e := range todo {
				if err := rb.Put(e.k, e.v); err != nil {
					return err
				}
			}
			rewritten += len(todo)
			return nil
		})
		if err != nil {
			return rewritten, fmt.Errorf("release/bolt: reencrypt: %w", err)
		}
	}
	return rewritten, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.db.Path() }
