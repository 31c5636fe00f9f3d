package release_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/bolt"
	"github.com/slipwayhq/slipway/release/releasetest"
	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

// BenchmarkDeployOverhead measures what the Manager adds to a deploy (the
// journal writes, the lease, the health polling) over the bare sequence of
// scheduler and router calls a deploy needs, on the in-memory Fake
// scheduler, and reports the ratio. The release phase and the watch are
// off; the health poll interval is 1 ms.
func BenchmarkDeployOverhead(b *testing.B) {
	procs := map[string]string{"web": "web", "worker": "wait"}
	form := []release.ProcessScale{{Type: "web", Count: 2}, {Type: "worker", Count: 1}}
	ctx := context.Background()

	run := func(b *testing.B, st release.Store) (perDeploy, perRef time.Duration) {
		sched := scaletest.NewFake(scaletest.FakeConfig{})
		defer sched.Close()
		traffic := newTraffic()
		m, err := release.NewManager(release.ManagerConfig{
			Store: st, Scheduler: sched, Traffic: traffic, Owner: "bench",
			Health: release.HealthCheck{Interval: time.Millisecond}, WatchWindow: -1,
		})
		if err != nil {
			b.Fatal(err)
		}
		app := "bench"
		if err := m.CreateApp(ctx, app); err != nil {
			b.Fatal(err)
		}
		if err := m.Scale(ctx, app, form...); err != nil {
			b.Fatal(err)
		}
		// Reference: the calls alone, on another app.
		ref := func(v int) {
			f := scale.Formation{App: "ref", Release: v, Image: scale.Image{Ref: "img"}, Processes: []scale.Process{
				{Type: "web", Command: "web", Count: 2, Port: true}, {Type: "worker", Command: "wait", Count: 1}}}
			if err := sched.Apply(ctx, f); err != nil {
				b.Fatal(err)
			}
			var addrs []release.Backend
			for {
				insts, _ := sched.Instances(ctx, scale.Query{App: "ref", Release: v})
				up := 0
				addrs = addrs[:0]
				for _, in := range insts {
					if in.State == scale.StateUp && in.Healthy {
						up++
						if in.Addr != "" {
							addrs = append(addrs, release.Backend{ID: in.ID, Addr: in.Addr})
						}
					}
				}
				if up == 3 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			_ = traffic.SetRoute(ctx, release.Route{App: "ref", Release: v, Backends: addrs})
			if v > 1 {
				_ = sched.StopRelease(ctx, "ref", v-1)
			}
		}
		b.ResetTimer()
		var mgr, refT time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := m.Deploy(ctx, app, release.Build{Image: scale.Image{Ref: fmt.Sprint("img:", i)}, Processes: procs}, release.DeployOptions{}); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			ref(i + 1)
			mgr += t1.Sub(t0)
			refT += time.Since(t1)
		}
		b.StopTimer()
		_ = sched.StopApp(ctx, app)
		_ = sched.StopApp(ctx, "ref")
		return mgr / time.Duration(b.N), refT / time.Duration(b.N)
	}
	report := func(b *testing.B, mgr, ref time.Duration) {
		b.ReportMetric(float64(mgr.Microseconds()), "µs/deploy")
		b.ReportMetric(float64(ref.Microseconds()), "µs/reference")
		b.ReportMetric(float64(mgr)/float64(ref), "ratio")
	}
	b.Run("memstore", func(b *testing.B) {
		mgr, ref := run(b, releasetest.NewMemStore())
		report(b, mgr, ref)
	})
	b.Run("bolt", func(b *testing.B) {
		st, err := bolt.Open(filepath.Join(b.TempDir(), "r.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		mgr, ref := run(b, st)
		report(b, mgr, ref)
	})
}
