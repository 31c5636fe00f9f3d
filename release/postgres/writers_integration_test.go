//go:build integration

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/testenv"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/postgres"
	"github.com/slipwayhq/slipway/scale"
)

// nopScheduler is never called: the releases these tests make have no
// image, so there is nothing to run.
type nopScheduler struct{}

func (nopScheduler) Apply(context.Context, scale.Formation) error {
	return errors.New("unexpected Apply")
}
func (nopScheduler) StopRelease(context.Context, string, int) error {
	return errors.New("unexpected StopRelease")
}
func (nopScheduler) Run(context.Context, scale.OneOff) (scale.OneOffResult, error) {
	return scale.OneOffResult{}, errors.New("unexpected Run")
}
func (nopScheduler) Instances(context.Context, scale.Query) ([]scale.Instance, error) {
	return nil, errors.New("unexpected Instances")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestConcurrentManagers creates releases across many apps from several
// Managers, each with its own pool (as separate control planes), through
// Manager.SetConfig (lease, journal, Commit), and checks that none is lost
// and no version is given twice. SLIPWAY_BENCH_RELEASES and
// SLIPWAY_BENCH_APPS size it (scripts/bench-release.sh: 10000 and 1000).
// As a reference it times the same number of single-row INSERT
// transactions with no locking, and prints the ratio.
func TestConcurrentManagers(t *testing.T) {
	url := testenv.Get(t, testenv.PostgresVar)
	total := envInt("SLIPWAY_BENCH_RELEASES", 1000)
	nApps := envInt("SLIPWAY_BENCH_APPS", 100)
	const managers, workersPer = 4, 4
	schema := newSchema(t, url)
	ctx := context.Background()

	stores := make([]*postgres.Store, managers)
	mgrs := make([]*release.Manager, managers)
	for i := range stores {
		stores[i] = open(t, url, schema, nil)
		defer stores[i].Close()
		m, err := release.NewManager(release.ManagerConfig{Store: stores[i], Scheduler: nopScheduler{}, Owner: fmt.Sprint("cp-", i)})
		if err != nil {
			t.Fatal(err)
		}
		mgrs[i] = m
	}
	for a := 0; a < nApps; a++ {
		if err := mgrs[0].CreateApp(ctx, fmt.Sprintf("app-%d", a)); err != nil {
			t.Fatal(err)
		}
	}

	var next, retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, managers*workersPer)
	start := time.Now()
	for i, m := range mgrs {
		for w := 0; w < workersPer; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				for {
					op := next.Add(1)
					if op > int64(total) {
						return
					}
					app := fmt.Sprintf("app-%d", rng.IntN(nApps))
					for {
						_, err := m.SetConfig(ctx, app, release.ConfigChange{Set: map[string]string{"OP": strconv.FormatInt(op, 10)}}, release.DeployOptions{})
						if errors.Is(err, release.ErrDeployInProgress) {
							retries.Add(1)
							time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
							continue
						}
						if err != nil {
							errs <- fmt.Errorf("op %d on %s: %w", op, app, err)
							return
						}
						break
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every op is in exactly one release; versions run 1..n per app.
	seen := make(map[int64]string, total)
	count := 0
	for a := 0; a < nApps; a++ {
		app := fmt.Sprintf("app-%d", a)
		rels, err := stores[1].Releases(ctx, app, 0)
		if err != nil {
			t.Fatal(err)
		}
		ap, _ := stores[2].App(ctx, app)
		if ap.Latest != len(rels) || (len(rels) > 0 && ap.Current != ap.Latest) {
			t.Errorf("%s: latest v%d current v%d with %d releases", app, ap.Latest, ap.Current, len(rels))
		}
		for i, r := range rels {
			if r.Version != len(rels)-i {
				t.Fatalf("%s: versions not contiguous at %s", app, r)
			}
			v, _ := r.Config.Get("OP")
			op, _ := strconv.ParseInt(v, 10, 64)
			if prev, dup := seen[op]; dup {
				t.Errorf("op %d stored twice: %s and %s", op, prev, r)
			}
			seen[op] = r.String()
			count++
		}
	}
	if count != total || len(seen) != total {
		t.Fatalf("%d releases stored for %d ops (%d distinct)", count, total, len(seen))
	}

	// Reference: the same number of bare INSERT transactions, same
	// concurrency, no lock, no journal.
	pool := stores[0].Pool()
	if _, err := pool.Exec(ctx, "CREATE TABLE bench_ref (id bigint PRIMARY KEY, app text, payload bytea)"); err != nil {
		t.Fatal(err)
	}
	var refNext atomic.Int64
	refStart := time.Now()
	for i := 0; i < managers*workersPer; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := refNext.Add(1)
				if id > int64(total) {
					return
				}
				if _, err := stores[int(id)%managers].Pool().Exec(ctx, "INSERT INTO bench_ref VALUES ($1, $2, $3)", id, "app", []byte("OP")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	refElapsed := time.Since(refStart)
	rate := float64(total) / elapsed.Seconds()
	refRate := float64(total) / refElapsed.Seconds()
	t.Logf("%d releases across %d apps from %d managers x %d workers: %v, %.0f releases/s, %d lease retries, none lost, no duplicate version",
		total, nApps, managers, workersPer, elapsed.Round(time.Millisecond), rate, retries.Load())
	t.Logf("reference, %d bare INSERT transactions: %v, %.0f/s; Manager.SetConfig path is %.1fx slower",
		total, refElapsed.Round(time.Millisecond), refRate, refRate/rate)
}
