// Package redis is an addons.Provisioner that gives each app a namespace
// on a shared Redis server (6.2 or later; 7 recommended): an ACL user that
// may only touch keys and Pub/Sub channels under its own prefix.
//
// # What a resource is
//
// A resource with id rd-<hex> has the key prefix "rd-<hex>:" and two ACL
// users, rd-<hex>_a and rd-<hex>_b, of which one is on at a time (both
// during a rotation). The user's rules are
//
//	reset on ><password> ~rd-<hex>:* &rd-<hex>:* +@all -@admin -@dangerous
//	-scan -randomkey -dbsize -pubsub -function -script|flush -script|kill
//
// plus the plan's extra denials: every command works on the app's own keys
// and channels; commands that reach beyond them (KEYS, FLUSHALL, CONFIG,
// ACL, MONITOR, CLIENT KILL, DEBUG, SCAN over the whole keyspace, listing
// channels, loading functions, flushing or killing scripts) are refused.
// The prefix is built from the id alone, so it never holds glob
// characters, whatever the app is called.
//
// # Config vars
//
// The resource reports URL (redis://user:password@host:port/db) and
// KEY_PREFIX, which the REDIS attachment turns into REDIS_URL and
// REDIS_KEY_PREFIX. The app must prefix every key and channel with
// REDIS_KEY_PREFIX; commands on other keys fail with NOPERM. Client
// libraries' key-prefix options (go-redis hooks, ioredis keyPrefix,
// redis-py's key templates, Sidekiq's namespace) do this for you.
//
// # Idempotency and metadata
//
// The provisioner keeps its metadata on the same server under
// Config.MetaPrefix (default "slipway:addons:redis:"), out of reach of app
// users: the request id maps to a resource id with SET NX, so concurrent or
// repeated requests get one resource, and a short lock serializes changes
// to one resource. Passwords (256 random bits) are stored there, so that
// Resource can report the config again; protect the admin user.
//
// Deprovision deletes the users, disconnects their clients and deletes
// the app's keys.
package redis

import (
	"context"
	"crypto/rand"
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

	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/internal/seal"
)

// Service is the service name the provisioner reports.
const Service = "redis"

// Plan is one kind of namespace. Redis has no per-user memory or
// connection limits, so plans differ in what commands they allow.
type Plan struct {
	Name        string
	Description string
	// Deny lists extra ACL command rules to subtract, each a command
	// ("eval"), a subcommand ("client|list") or a category ("@scripting"),
	// without the leading '-'.
	Deny []string
}

// DefaultPlans returns the plans offered when Config.Plans is nil.
func DefaultPlans() []Plan {
	return []Plan{
		{Name: "shared", Description: "a key prefix on a shared server, all data commands"},
		{Name: "shared-noscript", Description: "as shared, without Lua scripting", Deny: []string{"@scripting"}},
	}
}

// Config configures a Provisioner.
type Config struct {
	// Admin is a client whose user may run ACL SETUSER, ACL DELUSER and
	// CLIENT KILL and use keys under MetaPrefix. Required. The provisioner
	// does not close it.
	Admin *goredis.Client
	// Host and Port are what apps connect to. If empty (zero), the admin
	// client's address is used.
	Host string
	Port int
	// TLS makes URLs use the rediss scheme.
	TLS bool
	// Plans are the plans offered, the first being the default. If nil,
	// DefaultPlans() are.
	Plans []Plan
	// MetaPrefix prefixes the provisioner's own keys. If empty,
	// "slipway:addons:redis:" is used.
	MetaPrefix string
	// SaveACL makes the provisioner run ACL SAVE after every change, for a
	// server that keeps its users in an ACL file (aclfile). Without an ACL
	// file, users live only in memory: call Reconcile after the server
	// restarts.
	SaveACL bool
	// EncryptionKey, if set, must hold 32 bytes: the passwords kept in the
	// metadata are then sealed with AES-256-GCM, bound to their resource,
	// so an RDB or AOF file does not reveal them. Passwords stored before a
	// key was set are still read.
	EncryptionKey addons.Secret
	// Logger receives one line per change, never a credential. If nil,
	// nothing is logged.
	Logger *slog.Logger
}

// Provisioner is the Redis addons.Provisioner. It is safe for concurrent
// use, also by several processes sharing one server.
type Provisioner struct {
	cfg   Config
	plans map[string]Plan
	db    int
	log   *slog.Logger
}

var (
	_ addons.Provisioner = (*Provisioner)(nil)
	_ addons.PlanChanger = (*Provisioner)(nil)
	_ addons.Rotator     = (*Provisioner)(nil)
)

// New checks cfg and returns a provisioner. It does no I/O.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Admin == nil {
		return nil, errors.New("redis: Config.Admin is required")
	}
	if cfg.Plans == nil {
		cfg.Plans = DefaultPlans()
	}
	if len(cfg.Plans) == 0 {
		return nil, errors.New("redis: Config.Plans is empty")
	}
	plans := make(map[string]Plan, len(cfg.Plans))
	for _, p := range cfg.Plans {
		if p.Name == "" || strings.ContainsAny(p.Name, " \t\r\n") {
			return nil, fmt.Errorf("redis: invalid plan name %q", p.Name)
		}
		if _, dup := plans[p.Name]; dup {
			return nil, fmt.Errorf("redis: plan %q appears twice", p.Name)
		}
		for _, d := range p.Deny {
			if d == "" || strings.ContainsAny(d, " \t\r\n~&%<>#+-") {
				return nil, fmt.Errorf("redis: plan %q: invalid deny rule %q", p.Name, d)
			}
		}
		plans[p.Name] = p
	}
	if k := cfg.EncryptionKey; !k.IsZero() && len(k.Reveal()) != 32 {
		return nil, errors.New("redis: Config.EncryptionKey must be 32 bytes")
	}
	if cfg.MetaPrefix == "" {
		cfg.MetaPrefix = "slipway:addons:redis:"
	}
	opt := cfg.Admin.Options()
	host, port, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		return nil, fmt.Errorf("redis: admin address %q: %w", opt.Addr, err)
	}
	if cfg.Host == "" {
		cfg.Host = host
	}
	if cfg.Port == 0 {
		cfg.Port, _ = strconv.Atoi(port)
	}
	p := &Provisioner{cfg: cfg, plans: plans, db: opt.DB, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Capabilities implements addons.Provisioner.
func (p *Provisioner) Capabilities() addons.Capabilities {
	c := addons.Capabilities{Service: Service, DefaultAttachment: "REDIS", PlanChange: true, Rotation: true}
	for _, pl := range p.cfg.Plans {
		c.Plans = append(c.Plans, addons.Plan{Name: pl.Name, Description: pl.Description})
	}
	return c
}

// Resource states, as in the metadata hash.
const (
	stateProvisioning   = "provisioning"
	stateReady          = "ready"
	stateDeprovisioning = "deprovisioning"
	stateGone           = "deprovisioned"
)

// resource is the metadata hash of one resource.
type resource struct {
	id, app, plan, requestID string
	state                    string
	current                  int // 0: _a, 1: _b
	password, oldPassword    string
	pending                  bool
	createdAt                time.Time
}

func (r *resource) user(i int) string {
	if i == 0 {
		return r.id + "_a"
	}
	return r.id + "_b"
}

func (r *resource) prefix() string { return r.id + ":" }

func (p *Provisioner) resKey(id string) string  { return p.cfg.MetaPrefix + "res:" + id }
func (p *Provisioner) reqKey(rid string) string { return p.cfg.MetaPrefix + "req:" + rid }

func (p *Provisioner) load(ctx context.Context, id string) (*resource, error) {
	if !validID(id) {
		return nil, addons.ErrNotFound
	}
	m, err := p.cfg.Admin.HGetAll(ctx, p.resKey(id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 || m["app"] == "" {
		return nil, addons.ErrNotFound
	}
	r := &resource{id: id, app: m["app"], plan: m["plan"], requestID: m["request_id"], state: m["state"],
		password: m["password"], oldPassword: m["old_password"], pending: m["pending"] == "1"}
	r.current, _ = strconv.Atoi(m["current"])
	key := p.cfg.EncryptionKey.Reveal()
	if r.password, err = seal.Open(key, id, r.password); err != nil {
		return nil, err
	}
	if r.oldPassword, err = seal.Open(key, id, r.oldPassword); err != nil {
		return nil, err
	}
	if ns, err := strconv.ParseInt(m["created_at"], 10, 64); err == nil {
		r.createdAt = time.Unix(0, ns).UTC()
	}
	return r, nil
}

func (p *Provisioner) loadReady(ctx context.Context, id string) (*resource, error) {
	r, err := p.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.state != stateReady {
		return nil, addons.ErrNotFound
	}
	return r, nil
}

func (p *Provisioner) view(r *resource) addons.Resource {
	scheme := "redis"
	if p.cfg.TLS {
		scheme = "rediss"
	}
	u := url.URL{
		Scheme: scheme,
		User:   url.UserPassword(r.user(r.current), r.password),
		Host:   net.JoinHostPort(p.cfg.Host, strconv.Itoa(p.cfg.Port)),
		Path:   "/" + strconv.Itoa(p.db),
	}
	return addons.Resource{
		ID: r.id, Service: Service, App: r.app, Plan: r.plan, CreatedAt: r.createdAt,
		Config: addons.Config{
			"URL":        addons.NewSecret(u.String()),
			"KEY_PREFIX": addons.NewSecret(r.prefix()),
		},
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
	id := "rd-" + randomHex(8)
	old, err := p.cfg.Admin.SetArgs(ctx, p.reqKey(req.RequestID), id, goredis.SetArgs{Mode: "NX", Get: true}).Result()
	switch {
	case err == nil:
		id = old // the request was seen before
	case errors.Is(err, goredis.Nil):
		// This call claimed the request id.
	default:
		return addons.Resource{}, p.fail(ctx, "provision", req.App, "", err)
	}
	// First writer wins every field: a retry after a crash between the
	// two writes completes the hash with its own values.
	key := p.resKey(id)
	stored, err := seal.Seal(p.cfg.EncryptionKey.Reveal(), id, randomPassword())
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, id, err)
	}
	_, err = p.cfg.Admin.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
		for _, f := range [][2]string{
			{"app", req.App}, {"plan", plan}, {"request_id", req.RequestID}, {"state", stateProvisioning},
			{"current", "0"}, {"password", stored}, {"pending", "0"},
			{"created_at", strconv.FormatInt(time.Now().UnixNano(), 10)},
		} {
			pipe.HSetNX(ctx, key, f[0], f[1])
		}
		return nil
	})
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, id, err)
	}
	var out addons.Resource
	err = p.locked(ctx, id, func() error {
		r, err := p.load(ctx, id)
		if err != nil {
			return err
		}
		if r.app != req.App || r.plan != plan || r.state == stateDeprovisioning || r.state == stateGone {
			return fmt.Errorf("%w: request id already used for another app or plan, or for a deprovisioned resource", addons.ErrConflict)
		}
		if r.state == stateProvisioning {
			if err := p.applyUsers(ctx, r); err != nil {
				return err
			}
			if err := p.cfg.Admin.HSet(ctx, key, "state", stateReady).Err(); err != nil {
				return err
			}
			p.log.Info("addon provisioned", "service", Service, "id", id, "app", r.app, "plan", r.plan)
		}
		out = p.view(r)
		return nil
	})
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "provision", req.App, id, err)
	}
	return out, nil
}

// rules returns the ACL rules of an enabled user of r.
func (p *Provisioner) rules(r *resource, password string) []string {
	pre := r.prefix()
	rules := []string{"reset", "on", ">" + password, "~" + pre + "*", "&" + pre + "*",
		"+@all", "-@admin", "-@dangerous", "-scan", "-randomkey", "-dbsize", "-pubsub",
		"-function", "-script|flush", "-script|kill"}
	for _, d := range p.plans[r.plan].Deny {
		rules = append(rules, "-"+d)
	}
	return rules
}

// applyUsers makes the ACL users match r: the current user on with the
// current password, the other on with the old password during a rotation,
// otherwise reset (off, no password, no permissions).
func (p *Provisioner) applyUsers(ctx context.Context, r *resource) error {
	if err := p.cfg.Admin.ACLSetUser(ctx, r.user(r.current), p.rules(r, r.password)...).Err(); err != nil {
		return err
	}
	other := []string{"reset"}
	if r.pending && r.oldPassword != "" {
		other = p.rules(r, r.oldPassword)
	}
	if err := p.cfg.Admin.ACLSetUser(ctx, r.user(1-r.current), other...).Err(); err != nil {
		return err
	}
	return p.saveACL(ctx)
}

func (p *Provisioner) saveACL(ctx context.Context) error {
	if !p.cfg.SaveACL {
		return nil
	}
	return p.cfg.Admin.Do(ctx, "ACL", "SAVE").Err()
}

// ReconcileReport says what Reconcile did.
type ReconcileReport struct {
	Restored      []string // ids of ready resources whose users were set again
	Deprovisioned []string // ids whose interrupted deprovisioning was finished
}

// Reconcile makes the server's ACL users match the metadata: it sets the
// users of every ready resource again (a server restarted without an ACL
// file has lost them) and finishes deprovisionings that were interrupted.
// Resources still being provisioned are left to the retried Provision.
// It is safe to run at any time, also concurrently with other calls.
func (p *Provisioner) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	var cursor uint64
	for {
		keys, next, err := p.cfg.Admin.Scan(ctx, cursor, p.cfg.MetaPrefix+"res:*", 500).Result()
		if err != nil {
			return rep, p.fail(ctx, "reconcile", "", "", err)
		}
		for _, k := range keys {
			id := strings.TrimPrefix(k, p.cfg.MetaPrefix+"res:")
			r, err := p.load(ctx, id)
			if err != nil {
				continue
			}
			switch r.state {
			case stateReady:
				err := p.locked(ctx, id, func() error {
					r, err := p.loadReady(ctx, id)
					if err != nil {
						return nil // changed meanwhile
					}
					return p.applyUsers(ctx, r)
				})
				if err != nil {
					return rep, p.fail(ctx, "reconcile", r.app, id, err)
				}
				rep.Restored = append(rep.Restored, id)
			case stateDeprovisioning:
				if err := p.Deprovision(ctx, id); err != nil {
					return rep, err
				}
				rep.Deprovisioned = append(rep.Deprovisioned, id)
			}
		}
		if next == 0 {
			return rep, nil
		}
		cursor = next
	}
}

// Resource implements addons.Provisioner.
func (p *Provisioner) Resource(ctx context.Context, id string) (addons.Resource, error) {
	r, err := p.loadReady(ctx, id)
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "resource", "", id, err)
	}
	return p.view(r), nil
}

// Deprovision implements addons.Provisioner: it deletes the users,
// disconnects their clients and deletes every key under the prefix.
func (p *Provisioner) Deprovision(ctx context.Context, id string) error {
	var app string
	err := p.locked(ctx, id, func() error {
		r, err := p.load(ctx, id)
		if err != nil {
			return err
		}
		app = r.app
		if r.state == stateGone {
			return nil
		}
		a := p.cfg.Admin
		if err := a.HSet(ctx, p.resKey(id), "state", stateDeprovisioning).Err(); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			if err := a.ACLDelUser(ctx, r.user(i)).Err(); err != nil {
				return err
			}
		}
		for i := 0; i < 2; i++ {
			if err := killUser(ctx, a, r.user(i)); err != nil {
				return err
			}
		}
		if err := p.saveACL(ctx); err != nil {
			return err
		}
		if err := p.deleteKeys(ctx, r.prefix()); err != nil {
			return err
		}
		return a.HSet(ctx, p.resKey(id), "state", stateGone, "password", "", "old_password", "", "pending", "0").Err()
	})
	if err != nil {
		return p.fail(ctx, "deprovision", app, id, err)
	}
	p.log.Info("addon deprovisioned", "service", Service, "id", id, "app", app)
	return nil
}

// killUser disconnects the clients of user; a user without clients (or
// already deleted) is not an error.
func killUser(ctx context.Context, a *goredis.Client, user string) error {
	err := a.ClientKillByFilter(ctx, "USER", user).Err()
	if err != nil && strings.Contains(err.Error(), "No such user") {
		return nil
	}
	return err
}

func (p *Provisioner) deleteKeys(ctx context.Context, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := p.cfg.Admin.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := p.cfg.Admin.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// ChangePlan implements addons.PlanChanger: the users get the new plan's
// rules; their credentials do not change.
func (p *Provisioner) ChangePlan(ctx context.Context, id, plan string) (addons.Resource, error) {
	if _, ok := p.plans[plan]; !ok {
		return addons.Resource{}, p.fail(ctx, "change plan", "", id, fmt.Errorf("%w: %q is not a %s plan", addons.ErrUnknownPlan, plan, Service))
	}
	var out addons.Resource
	err := p.locked(ctx, id, func() error {
		r, err := p.loadReady(ctx, id)
		if err != nil {
			return err
		}
		r.plan = plan
		if err := p.applyUsers(ctx, r); err != nil {
			return err
		}
		if err := p.cfg.Admin.HSet(ctx, p.resKey(id), "plan", plan).Err(); err != nil {
			return err
		}
		out = p.view(r)
		return nil
	})
	if err != nil {
		return addons.Resource{}, p.fail(ctx, "change plan", "", id, err)
	}
	p.log.Info("addon plan changed", "service", Service, "id", id, "plan", plan)
	return out, nil
}

// Rotate implements addons.Rotator: the idle user gets a new password.
func (p *Provisioner) Rotate(ctx context.Context, id string) (addons.Resource, error) {
	var out addons.Resource
	err := p.locked(ctx, id, func() error {
		r, err := p.loadReady(ctx, id)
		if err != nil {
			return err
		}
		if !r.pending {
			r.oldPassword, r.password, r.current, r.pending = r.password, randomPassword(), 1-r.current, true
			key := p.cfg.EncryptionKey.Reveal()
			pw, err := seal.Seal(key, id, r.password)
			if err != nil {
				return err
			}
			old, err := seal.Seal(key, id, r.oldPassword)
			if err != nil {
				return err
			}
			if err := p.cfg.Admin.HSet(ctx, p.resKey(id), "old_password", old, "password", pw,
				"current", strconv.Itoa(r.current), "pending", "1").Err(); err != nil {
				return err
			}
		}
		if err := p.applyUsers(ctx, r); err != nil {
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

// Retire implements addons.Rotator: the old user is reset and its clients
// disconnected.
func (p *Provisioner) Retire(ctx context.Context, id string) error {
	err := p.locked(ctx, id, func() error {
		r, err := p.loadReady(ctx, id)
		if err != nil {
			return err
		}
		if !r.pending {
			return nil
		}
		r.pending, r.oldPassword = false, ""
		if err := p.applyUsers(ctx, r); err != nil {
			return err
		}
		if err := killUser(ctx, p.cfg.Admin, r.user(1-r.current)); err != nil {
			return err
		}
		return p.cfg.Admin.HSet(ctx, p.resKey(id), "old_password", "", "pending", "0").Err()
	})
	if err != nil {
		return p.fail(ctx, "retire", "", id, err)
	}
	p.log.Info("addon old credentials retired", "service", Service, "id", id)
	return nil
}

// unlockScript deletes the lock only if this holder still owns it.
var unlockScript = goredis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0`)

// lockTTL bounds how long a crashed holder blocks a resource.
const lockTTL = 30 * time.Second

// locked runs fn holding the resource's lock.
func (p *Provisioner) locked(ctx context.Context, id string, fn func() error) error {
	key := p.cfg.MetaPrefix + "lock:" + id
	token := randomHex(8)
	wait := 2 * time.Millisecond
	for {
		ok, err := p.cfg.Admin.SetNX(ctx, key, token, lockTTL).Result()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(uctx, p.cfg.Admin, []string{key}, token).Err()
	}()
	return fn()
}

// validID reports whether id can be one of this provisioner's ids, so
// that arbitrary strings never reach key names.
func validID(id string) bool {
	if !strings.HasPrefix(id, "rd-") || len(id) != 3+16 {
		return false
	}
	_, err := hex.DecodeString(id[3:])
	return err == nil
}

// fail turns err into an *addons.Error without credentials: a Redis error
// reply is reduced to its code (ERR, NOPERM, ...), since some replies quote
// the command's arguments; network failures become ErrUnavailable.
func (p *Provisioner) fail(ctx context.Context, op, app, id string, err error) error {
	e := &addons.Error{Op: op, Service: Service, App: app, ID: id}
	var rerr goredis.Error
	switch {
	case addons.IsContractError(err):
		e.Err = err
	case errors.Is(err, seal.ErrOpen), errors.Is(err, seal.ErrKey):
		e.Err = err
	case ctx.Err() != nil:
		e.Err = ctx.Err()
	case errors.As(err, &rerr):
		code, _, _ := strings.Cut(rerr.Error(), " ")
		switch code {
		case "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY":
			e.Err = fmt.Errorf("%w: redis error %s", addons.ErrUnavailable, code)
		default:
			e.Err = fmt.Errorf("redis error %s", code)
		}
	default:
		e.Err = fmt.Errorf("%w: %v", addons.ErrUnavailable, err)
	}
	return e
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func randomPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
