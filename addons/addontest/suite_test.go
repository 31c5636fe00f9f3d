package addontest_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
)

// TestSuiteCatchesBrokenProvisioners runs the suite, in a child process,
// against provisioners broken on purpose, and checks that it fails for the
// right reason: a suite that passes everything proves nothing.
func TestSuiteCatchesBrokenProvisioners(t *testing.T) {
	if mode := os.Getenv("ADDONTEST_BROKEN"); mode != "" {
		runBroken(t, mode) // the child process
		return
	}
	cases := map[string]string{
		"leak":      "a credential appears",
		"duplicate": "first call",
		"shared":    "can use app",
		"sticky":    "still work after Deprovision",
		"badvar":    "config key",
	}
	for mode, want := range cases {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesBrokenProvisioners$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "ADDONTEST_BROKEN="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a %s provisioner:\n%s", mode, out)
			}
			if !strings.Contains(string(out), want) {
				t.Fatalf("the suite failed without reporting %q:\n%s", want, out)
			}
		})
	}
}

// broken wraps Memory and breaks one promise of the contract.
type broken struct {
	*addontest.Memory
	mode string
	log  *slog.Logger
}

func (b *broken) Provision(ctx context.Context, r addons.Request) (addons.Resource, error) {
	if b.mode == "duplicate" && r.RequestID != "" {
		r.RequestID += fmt.Sprintf("-%d", counter.Add(1))
	}
	res, err := b.Memory.Provision(ctx, r)
	if err == nil && b.mode == "leak" {
		b.log.Info("provisioned", "url", res.Config["URL"].Reveal())
	}
	if err == nil && b.mode == "badvar" {
		res.Config["url-lower"] = res.Config["URL"]
	}
	return res, err
}

func (b *broken) Deprovision(ctx context.Context, id string) error {
	if b.mode == "sticky" {
		if _, err := b.Memory.Resource(ctx, id); err != nil {
			return err
		}
		return nil
	}
	return b.Memory.Deprovision(ctx, id)
}

var counter atomic.Int64

// runBroken runs the suite against a provisioner broken as mode says; it
// is expected to fail.
func runBroken(t *testing.T, mode string) {
	m := &addontest.Memory{}
	addontest.Run(t, addontest.Suite{
		New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
			m.Logger = log
			return &broken{Memory: m, mode: mode, log: log}
		},
		Use: func(ctx context.Context, creds addons.Config, target addons.Resource) error {
			if mode == "shared" {
				// Credentials that open every tenant's resource.
				u, err := url.Parse(creds["URL"].Reveal())
				if err != nil {
					return err
				}
				return m.Use(ctx, creds, u.User.Username())
			}
			return m.Use(ctx, creds, target.ID)
		},
		Concurrency: 1,
	})
}
