//go:build integration

package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
	"github.com/slipwayhq/slipway/addons/redis"
	"github.com/slipwayhq/slipway/internal/testenv"
)

func adminClient(t testing.TB) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(testenv.Get(t, testenv.RedisVar))
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func newProvisioner(t testing.TB, log *slog.Logger) (*redis.Provisioner, *goredis.Client) {
	admin := adminClient(t)
	p, err := redis.New(redis.Config{Admin: admin, Logger: log, EncryptionKey: addons.NewSecret("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return p, admin
}

func clientFor(t testing.TB, creds addons.Config) *goredis.Client {
	opt, err := goredis.ParseURL(creds["URL"].Reveal())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.DialTimeout = 5 * time.Second
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func use(ctx context.Context, creds addons.Config, target addons.Resource) error {
	opt, err := goredis.ParseURL(creds["URL"].Reveal())
	if err != nil {
		return err
	}
	opt.MaxRetries = -1
	c := goredis.NewClient(opt)
	defer c.Close()
	key := target.Config["KEY_PREFIX"].Reveal() + "conformance"
	if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
		return err
	}
	return c.Get(ctx, key).Err()
}

func TestConformance(t *testing.T) {
	var mk func(addons.Config) *goredis.Client
	addontest.Run(t, addontest.Suite{
		New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
			p, _ := newProvisioner(t, log)
			mk = func(c addons.Config) *goredis.Client { return clientFor(t, c) }
			return p
		},
		Use: use,
		Isolated: func(ctx context.Context, a, b addons.Resource) error {
			c := mk(a.Config)
			bp := b.Config["KEY_PREFIX"].Reveal()
			if err := c.Ping(ctx).Err(); err != nil {
				return err
			}
			denied := map[string][]any{
				"KEYS":           {"keys", "*"},
				"SCAN":           {"scan", "0"},
				"FLUSHALL":       {"flushall"},
				"FLUSHDB":        {"flushdb"},
				"CONFIG GET":     {"config", "get", "requirepass"},
				"ACL LIST":       {"acl", "list"},
				"MONITOR":        {"monitor"},
				"CLIENT LIST":    {"client", "list"},
				"DEBUG":          {"debug", "sleep", "0"},
				"other's key":    {"get", bp + "conformance"},
				"other's write":  {"set", bp + "x", "1"},
				"meta keys":      {"hgetall", "slipway:addons:redis:res:" + b.ID},
				"unprefixed":     {"set", "global", "1"},
				"publish":        {"publish", bp + "chan", "hi"},
				"pubsub list":    {"pubsub", "channels"},
				"function flush": {"function", "flush"},
				"script flush":   {"script", "flush"},
				"randomkey":      {"randomkey"},
				"eval other":     {"eval", "return redis.call('get', KEYS[1])", "1", bp + "conformance"},
			}
			for name, cmd := range denied {
				if err := c.Do(ctx, cmd...).Err(); err == nil || errors.Is(err, goredis.Nil) {
					return fmt.Errorf("app %q may run %s", a.App, name)
				}
			}
			return nil
		},
		Timeout: 3 * time.Minute,
	})
}

func TestDeprovisionDeletesKeysAndClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, admin := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "keys-" + fmt.Sprint(time.Now().UnixNano()), App: "keys"})
	if err != nil {
		t.Fatal(err)
	}
	c := clientFor(t, res.Config)
	prefix := res.Config["KEY_PREFIX"].Reveal()
	for i := 0; i < 1200; i++ {
		if err := c.Set(ctx, fmt.Sprintf("%sk%d", prefix, i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Deprovision(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	keys, _, err := admin.Scan(ctx, 0, prefix+"*", 10000).Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("%d keys left (%v)", len(keys), err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("a client of the deprovisioned user still works")
	}
}

func TestRetireDisconnectsOldClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, _ := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "rot-" + fmt.Sprint(time.Now().UnixNano()), App: "rot"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deprovision(context.Background(), res.ID)
	old := clientFor(t, res.Config)
	if err := old.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	fresh, err := p.Rotate(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Ping(ctx).Err(); err != nil {
		t.Fatalf("old client broke during the grace period: %v", err)
	}
	if err := p.Retire(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if err := old.Ping(ctx).Err(); err == nil {
		t.Error("old client survived Retire")
	}
	if err := use(ctx, fresh.Config, fresh); err != nil {
		t.Fatal(err)
	}
}

func TestNoScriptPlan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, _ := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "ns-" + fmt.Sprint(time.Now().UnixNano()), App: "ns", Plan: "shared-noscript"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deprovision(context.Background(), res.ID)
	c := clientFor(t, res.Config)
	if err := c.Eval(ctx, "return 1", nil).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("EVAL on the noscript plan: %v", err)
	}
	if _, err := p.ChangePlan(ctx, res.ID, "shared"); err != nil {
		t.Fatal(err)
	}
	if err := c.Eval(ctx, "return 1", nil).Err(); err != nil {
		t.Errorf("EVAL after ChangePlan to shared: %v", err)
	}
}

// TestReconcileRestoresUsers simulates a server restart without an ACL
// file: the users are gone, the metadata is not.
func TestReconcileRestoresUsers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, admin := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "rec-" + fmt.Sprint(time.Now().UnixNano()), App: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deprovision(context.Background(), res.ID)
	for _, suffix := range []string{"_a", "_b"} {
		if err := admin.ACLDelUser(ctx, res.ID+suffix).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := use(ctx, res.Config, res); err == nil {
		t.Fatal("credentials work without their user")
	}
	rep, err := p.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range rep.Restored {
		found = found || id == res.ID
	}
	if !found {
		t.Errorf("Reconcile did not restore %s: %+v", res.ID, rep)
	}
	if err := use(ctx, res.Config, res); err != nil {
		t.Fatalf("credentials after Reconcile: %v", err)
	}
}

func TestPasswordsSealedAtRest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, admin := newProvisioner(t, nil)
	res, err := p.Provision(ctx, addons.Request{RequestID: "sealed-" + fmt.Sprint(time.Now().UnixNano()), App: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Deprovision(context.Background(), res.ID)
	opt, _ := goredis.ParseURL(res.Config["URL"].Reveal())
	stored, err := admin.HGet(ctx, "slipway:addons:redis:res:"+res.ID, "password").Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, opt.Password) || !strings.HasPrefix(stored, "sealed1:") {
		t.Fatal("password stored in plain")
	}
}
