//go:build integration

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
	"github.com/slipwayhq/slipway/addons/postgres"
	"github.com/slipwayhq/slipway/internal/testenv"
)

func adminPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := testenv.Get(t, testenv.PostgresVar)
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var testKey = addons.NewSecret("0123456789abcdef0123456789abcdef")

func newProvisioner(t testing.TB, log *slog.Logger) (*postgres.Provisioner, *pgxpool.Pool) {
	t.Helper()
	pool := adminPool(t)
	p, err := postgres.New(context.Background(), postgres.Config{Admin: pool, Logger: log, EncryptionKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return p, pool
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connectAs connects with the credentials in creds to database db (empty:
// the URL's own database).
func connectAs(ctx context.Context, creds addons.Config, db string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(creds["URL"].Reveal())
	if err != nil {
		return nil, err
	}
	if db != "" {
		cc.Database = db
	}
	cc.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cc)
}

func dbOf(t testing.TB, r addons.Resource) string {
	cc, err := pgx.ParseConfig(r.Config["URL"].Reveal())
	if err != nil {
		t.Fatal(err)
	}
	return cc.Database
}

func userOf(t testing.TB, r addons.Resource) string {
	cc, err := pgx.ParseConfig(r.Config["URL"].Reveal())
	if err != nil {
		t.Fatal(err)
	}
	return cc.User
}

// use writes and reads a row in target's database with creds.
func use(ctx context.Context, creds addons.Config, target addons.Resource) error {
	cc, err := pgx.ParseConfig(target.Config["URL"].Reveal())
	if err != nil {
		return err
	}
	c, err := connectAs(ctx, creds, cc.Database)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS conformance (id serial PRIMARY KEY, v text)"); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "INSERT INTO conformance (v) VALUES ($1)", "x"); err != nil {
		return err
	}
	var n int
	return c.QueryRow(ctx, "SELECT count(*) FROM conformance").Scan(&n)
}

func TestConformance(t *testing.T) {
	var admin string
	addontest.Run(t, addontest.Suite{
		New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
			p, pool := newProvisioner(t, log)
			admin = pool.Config().ConnConfig.Database
			return p
		},
		Use: use,
		Isolated: func(ctx context.Context, a, b addons.Resource) error {
			for _, db := range []string{admin, "postgres", "template1", "template0"} {
				if c, err := connectAs(ctx, a.Config, db); err == nil {
					c.Close(ctx)
					return fmt.Errorf("app %q's credentials connect to database %q", a.App, db)
				}
			}
			// Inside its own database, a cannot become b's owner role.
			c, err := connectAs(ctx, a.Config, "")
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			owner := strings.TrimSuffix(strings.TrimSuffix(userOfR(b), "_a"), "_b") + "_owner"
			if _, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{owner}.Sanitize()); err == nil {
				return fmt.Errorf("app %q can SET ROLE to app %q's owner", a.App, b.App)
			}
			return nil
		},
		Concurrency: 8,
		Timeout:     5 * time.Minute,
	})
}

func userOfR(r addons.Resource) string {
	cc, err := pgx.ParseConfig(r.Config["URL"].Reveal())
	if err != nil {
		return ""
	}
	return cc.User
}

// TestOwnershipPlansAndRotation checks what the suite cannot see: the plan's
// limits reach the roles, objects belong to the owner role, and survive a
// rotation.
func TestOwnershipPlansAndRotation(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	p, pool := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "plans-" + fmt.Sprint(time.Now().UnixNano()), App: "plans", Plan: "hobby"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Deprovision(context.Background(), res.ID) })
	c, err := connectAs(ctx, res.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	var user, timeout string
	if err := c.QueryRow(ctx, "SELECT current_user, current_setting('statement_timeout')").Scan(&user, &timeout); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(user, "_owner") || timeout != "30s" {
		t.Errorf("session runs as %q with statement_timeout %q; want the owner role and 30s", user, timeout)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var owner string
	if err := c.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'kept'").Scan(&owner); err != nil || owner != user {
		t.Errorf("table owner %q (%v), want %q", owner, err, user)
	}
	c.Close(ctx)
	limits := func() []int {
		rows, err := pool.Query(ctx, "SELECT rolconnlimit FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname", []string{strings.TrimSuffix(user, "_owner") + "_a", strings.TrimSuffix(user, "_owner") + "_b"})
		if err != nil {
			t.Fatal(err)
		}
		l, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := limits(); len(l) != 2 || l[0] != 20 || l[1] != 20 {
		t.Errorf("connection limits %v, want [20 20]", l)
	}
	if _, err := p.ChangePlan(ctx, res.ID, "standard"); err != nil {
		t.Fatal(err)
	}
	if l := limits(); len(l) != 2 || l[0] != 100 || l[1] != 100 {
		t.Errorf("connection limits after ChangePlan %v, want [100 100]", l)
	}
	// An open session of the old credentials is ended by Retire.
	old, err := connectAs(ctx, res.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	fresh, err := p.Rotate(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err = connectAs(ctx, fresh.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var v int
	if err := c.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("new credentials cannot read the table made with the old ones: %v", err)
	}
	if _, err := c.Exec(ctx, "DROP TABLE kept"); err != nil {
		t.Fatalf("new credentials cannot drop the table made with the old ones: %v", err)
	}
	if err := p.Retire(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if err := old.Ping(ctx); err == nil {
		t.Error("a session of the retired credentials survived Retire")
	}
}

// TestConcurrentApps provisions for 100 apps at once.
func TestConcurrentApps(t *testing.T) {
	const n = 100
	ctx := ctxT(t, 5*time.Minute)
	p, pool := newProvisioner(t, nil)
	run := fmt.Sprint(time.Now().UnixNano())
	res := make([]addons.Resource, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = p.Provision(ctx, addons.Request{RequestID: fmt.Sprintf("many-%s-%d", run, i), App: fmt.Sprintf("many-%d", i)})
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent provisions in %v", n, time.Since(start))
	ids, dbs := map[string]bool{}, map[string]bool{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("provision %d: %v", i, errs[i])
		}
		if ids[res[i].ID] || dbs[dbOf(t, res[i])] {
			t.Fatalf("duplicate resource %s", res[i].ID)
		}
		ids[res[i].ID], dbs[dbOf(t, res[i])] = true, true
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = use(ctx, res[i].Config, res[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("use %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Deprovision(ctx, res[i].ID)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("deprovision %d: %v", i, err)
		}
	}
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", keys(dbs)).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d databases left after deprovisioning (%v)", left, err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestInterruptedProvision fails provisioning before every step in three
// ways (an error, a cancelled context, the admin session killed by
// pg_terminate_backend), then retries: the retry converges on one working
// resource, and deprovisioning leaves nothing behind.
func TestInterruptedProvision(t *testing.T) {
	ctx := ctxT(t, 5*time.Minute)
	p, pool := newProvisioner(t, nil)
	run := fmt.Sprint(time.Now().UnixNano())
	modes := []string{"error", "cancel", "terminate"}
	for _, step := range postgres.Steps {
		for _, mode := range modes {
			t.Run(step+"/"+mode, func(t *testing.T) {
				app := fmt.Sprintf("crash %s %s '%s\"", step, mode, run[len(run)-6:])
				req := addons.Request{RequestID: fmt.Sprintf("crash-%s-%s-%s", step, mode, run), App: app}
				actx, cancel := context.WithCancel(ctx)
				defer cancel()
				fired := false
				postgres.SetStepHook(p, func(_ context.Context, s string, pid uint32) error {
					if s != step || fired {
						return nil
					}
					fired = true
					switch mode {
					case "error":
						return errors.New("simulated crash")
					case "cancel":
						cancel()
						return nil
					default:
						_, err := pool.Exec(ctx, "SELECT pg_terminate_backend($1)", int(pid))
						return err
					}
				})
				_, err := p.Provision(actx, req)
				postgres.SetStepHook(p, nil)
				if !fired {
					t.Fatal("hook did not fire")
				}
				if err == nil && mode != "terminate" {
					t.Fatal("interrupted Provision succeeded")
				}
				if err != nil && !addons.IsRetryable(err) {
					t.Errorf("error after interruption is not retryable: %v", err)
				}
				res, err := p.Provision(ctx, req)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				again, err := p.Provision(ctx, req)
				if err != nil || again.ID != res.ID {
					t.Fatalf("second retry: %v %v", again.ID, err)
				}
				if err := use(ctx, res.Config, res); err != nil {
					t.Fatalf("use after retry: %v", err)
				}
				prefix := strings.TrimSuffix(dbOf(t, res), res.ID[len("pg-"):])
				var nDB, nRoles int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", prefix).Scan(&nDB); err != nil {
					t.Fatal(err)
				}
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)", prefix).Scan(&nRoles); err != nil {
					t.Fatal(err)
				}
				if nDB != 1 || nRoles != 3 {
					t.Errorf("after retry: %d databases and %d roles for the app, want 1 and 3", nDB, nRoles)
				}
				if err := p.Deprovision(ctx, res.ID); err != nil {
					t.Fatal(err)
				}
				_ = pool.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", prefix).Scan(&nDB)
				_ = pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)", prefix).Scan(&nRoles)
				if nDB != 0 || nRoles != 0 {
					t.Errorf("after deprovision: %d databases and %d roles left", nDB, nRoles)
				}
			})
		}
	}
}

// TestDeprovisionHalfMade removes a resource whose provisioning stopped
// midway and was never retried.
func TestDeprovisionHalfMade(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	p, pool := newProvisioner(t, nil)
	postgres.SetStepHook(p, func(_ context.Context, s string, _ uint32) error {
		if s == "revoke" {
			return errors.New("simulated crash")
		}
		return nil
	})
	_, err := p.Provision(ctx, addons.Request{RequestID: "half-" + fmt.Sprint(time.Now().UnixNano()), App: "half"})
	var ae *addons.Error
	if !errors.As(err, &ae) || ae.ID == "" {
		t.Fatalf("want an *addons.Error naming the resource, got %v", err)
	}
	if _, err := p.Resource(ctx, ae.ID); !errors.Is(err, addons.ErrNotFound) {
		t.Errorf("a half-made resource is reported: %v", err)
	}
	if err := p.Deprovision(ctx, ae.ID); err != nil {
		t.Fatal(err)
	}
	prefix := "half_" + ae.ID[len("pg-"):]
	var n int
	_ = pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)) + (SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1))", prefix).Scan(&n)
	if n != 0 {
		t.Errorf("%d objects left", n)
	}
}

// TestHostileNamesInCatalog checks that quoted names reach the catalog as
// they are, and that nothing else was touched.
func TestHostileNamesInCatalog(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	p, pool := newProvisioner(t, nil)
	app := `x"; DROP ROLE slipway; --`
	res, err := p.Provision(ctx, addons.Request{RequestID: "hostile-" + fmt.Sprint(time.Now().UnixNano()), App: app})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deprovision(context.Background(), res.ID)
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", dbOf(t, res)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("database %q not found (%v)", dbOf(t, res), err)
	}
	if !strings.HasPrefix(dbOf(t, res), app+"_") {
		t.Errorf("database name %q does not start with the app name", dbOf(t, res))
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = current_user").Scan(&n); err != nil || n != 1 {
		t.Fatal("the admin role is gone")
	}
}

func TestUnknownPlanAndID(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	p, _ := newProvisioner(t, nil)
	if _, err := p.Provision(ctx, addons.Request{RequestID: "unknown-plan", App: "a", Plan: "gigantic"}); !errors.Is(err, addons.ErrUnknownPlan) {
		t.Errorf("unknown plan: %v", err)
	}
	if err := p.Deprovision(ctx, "pg-0000000000000000"); !errors.Is(err, addons.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

// TestPasswordsSealedAtRest checks that the metadata table holds no
// password in plain when a key is set, and that a provisioner without the
// key cannot report the resource.
func TestPasswordsSealedAtRest(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	p, pool := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "sealed-" + fmt.Sprint(time.Now().UnixNano()), App: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deprovision(context.Background(), res.ID)
	cc, _ := pgx.ParseConfig(res.Config["URL"].Reveal())
	var stored string
	if err := pool.QueryRow(ctx, "SELECT password FROM slipway_addons.postgres_resources WHERE id = $1", res.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, cc.Password) || !strings.HasPrefix(stored, "sealed1:") {
		t.Fatalf("password stored in plain")
	}
	other, err := postgres.New(ctx, postgres.Config{Admin: pool, EncryptionKey: addons.NewSecret("another-key-another-key-another!")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Resource(ctx, res.ID); err == nil || addons.IsRetryable(err) {
		t.Fatalf("opened with the wrong key: %v", err)
	}
}

// TestReconcileFinishesDeprovisioning simulates a control plane that died
// after marking a resource for deprovisioning.
func TestReconcileFinishesDeprovisioning(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	p, pool := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "reconcile-" + fmt.Sprint(time.Now().UnixNano()), App: "reconcile"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE slipway_addons.postgres_resources SET state = 'deprovisioning' WHERE id = $1", res.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := p.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range rep.Deprovisioned {
		found = found || id == res.ID
	}
	if !found {
		t.Fatalf("Reconcile did not finish %s: %+v", res.ID, rep)
	}
	if err := use(ctx, res.Config, res); err == nil {
		t.Error("credentials work after Reconcile finished deprovisioning")
	}
	var n int
	_ = pool.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", dbOf(t, res)).Scan(&n)
	if n != 0 {
		t.Error("database left")
	}
}
