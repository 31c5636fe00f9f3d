//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// BenchmarkLatency measures Provision and Deprovision, interleaved with a
// reference that does the least a naive provisioner does (CREATE ROLE and
// CREATE DATABASE; DROP DATABASE and DROP ROLE, over the same pool), and
// reports medians, 95th percentiles and the ratio to the reference. Run
// it with -benchtime=50x (scripts/bench-addons.sh does).
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	p, pool := newProvisioner(b, nil)
	run := time.Now().UnixNano()
	var prov, deprov, refProv, refDeprov []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		res, err := p.Provision(ctx, addons.Request{RequestID: fmt.Sprintf("bench-%d-%d", run, i), App: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := p.Deprovision(ctx, res.ID); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		name := fmt.Sprintf(`"bench_ref_%d_%d"`, run, i)
		if _, err := pool.Exec(ctx, "CREATE ROLE "+name+" LOGIN PASSWORD 'reference-password'"); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "CREATE DATABASE "+name+" OWNER "+name+" TEMPLATE template0"); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := pool.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "DROP ROLE "+name); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		prov, deprov = append(prov, t1.Sub(t0)), append(deprov, t2.Sub(t1))
		refProv, refDeprov = append(refProv, t3.Sub(t2)), append(refDeprov, t4.Sub(t3))
	}
	report(b, "postgres", "raw CREATE ROLE+DATABASE", prov, deprov, refProv, refDeprov)
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func report(b *testing.B, name, ref string, prov, deprov, refProv, refDeprov []time.Duration) {
	b.Helper()
	if len(prov) == 0 {
		return
	}
	p50, p95 := quantile(prov, 0.5), quantile(prov, 0.95)
	d50, d95 := quantile(deprov, 0.5), quantile(deprov, 0.95)
	r50, rd50 := quantile(refProv, 0.5), quantile(refDeprov, 0.5)
	b.ReportMetric(ms(p50), "prov-p50-ms")
	b.ReportMetric(ms(p95), "prov-p95-ms")
	b.ReportMetric(ms(d50), "deprov-p50-ms")
	b.ReportMetric(ms(d95), "deprov-p95-ms")
	b.ReportMetric(ms(p50)/ms(r50), "prov-x-ref")
	b.ReportMetric(ms(d50)/ms(rd50), "deprov-x-ref")
	b.Logf("RESULT %s n=%d provision p50=%.2fms p95=%.2fms | deprovision p50=%.2fms p95=%.2fms | reference (%s) provision p50=%.2fms p95=%.2fms deprovision p50=%.2fms p95=%.2fms | ratio provision %.2fx deprovision %.2fx",
		name, len(prov), ms(p50), ms(p95), ms(d50), ms(d95), ref, ms(r50), ms(quantile(refProv, 0.95)), ms(rd50), ms(quantile(refDeprov, 0.95)), ms(p50)/ms(r50), ms(d50)/ms(rd50))
}
