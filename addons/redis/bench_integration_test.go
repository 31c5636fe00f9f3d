//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// BenchmarkLatency measures Provision and Deprovision, interleaved with a
// reference that does the least a naive provisioner does (one ACL SETUSER;
// one ACL DELUSER), and reports medians, 95th percentiles and the ratio to
// the reference. Run it with -benchtime=50x (scripts/bench-addons.sh
// does).
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	p, admin := newProvisioner(b, nil)
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
		user := fmt.Sprintf("bench-ref-%d-%d", run, i)
		if err := admin.ACLSetUser(ctx, user, "reset", "on", ">reference-password", "~"+user+":*", "+@all", "-@admin", "-@dangerous").Err(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := admin.ACLDelUser(ctx, user).Err(); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		prov, deprov = append(prov, t1.Sub(t0)), append(deprov, t2.Sub(t1))
		refProv, refDeprov = append(refProv, t3.Sub(t2)), append(refDeprov, t4.Sub(t3))
	}
	report(b, "redis", "one ACL SETUSER / DELUSER", prov, deprov, refProv, refDeprov)
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
