// Package latency reports the add-on adapters' provision and deprovision
// latencies against their raw references, in the one format
// scripts/bench-addons.sh reads.
package latency

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
)

// Reference is the raw work an adapter is compared with: Provision does
// the least a naive provisioner would for the i-th round (a unique name
// made from run and i), Deprovision undoes it.
type Reference struct {
	Name        string // "raw CREATE ROLE+DATABASE"
	Provision   func(ctx context.Context, run int64, i int) error
	Deprovision func(ctx context.Context, run int64, i int) error
}

// Run measures p's Provision and Deprovision for a fresh app each round,
// interleaved with ref's in the same round so that noise spreads over
// both, and reports them with Report under name.
func Run(b *testing.B, name string, p addons.Provisioner, ref Reference) {
	b.Helper()
	ctx := context.Background()
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
		if err := ref.Provision(ctx, run, i); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := ref.Deprovision(ctx, run, i); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		prov, deprov = append(prov, t1.Sub(t0)), append(deprov, t2.Sub(t1))
		refProv, refDeprov = append(refProv, t3.Sub(t2)), append(refDeprov, t4.Sub(t3))
	}
	Report(b, name, ref.Name, prov, deprov, refProv, refDeprov)
}

// Quantile returns the q-quantile (0..1) of d, nearest rank.
func Quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Report records medians, 95th percentiles and the ratios to the reference
// (described by ref) as benchmark metrics, and logs them on one RESULT line.
func Report(b *testing.B, name, ref string, prov, deprov, refProv, refDeprov []time.Duration) {
	b.Helper()
	if len(prov) == 0 {
		return
	}
	p50, p95 := Quantile(prov, 0.5), Quantile(prov, 0.95)
	d50, d95 := Quantile(deprov, 0.5), Quantile(deprov, 0.95)
	r50, rd50 := Quantile(refProv, 0.5), Quantile(refDeprov, 0.5)
	b.ReportMetric(ms(p50), "prov-p50-ms")
	b.ReportMetric(ms(p95), "prov-p95-ms")
	b.ReportMetric(ms(d50), "deprov-p50-ms")
	b.ReportMetric(ms(d95), "deprov-p95-ms")
	b.ReportMetric(ms(p50)/ms(r50), "prov-x-ref")
	b.ReportMetric(ms(d50)/ms(rd50), "deprov-x-ref")
	b.Logf("RESULT %s n=%d provision p50=%.2fms p95=%.2fms | deprovision p50=%.2fms p95=%.2fms | reference (%s) provision p50=%.2fms p95=%.2fms deprovision p50=%.2fms p95=%.2fms | ratio provision %.2fx deprovision %.2fx",
		name, len(prov), ms(p50), ms(p95), ms(d50), ms(d95), ref, ms(r50), ms(Quantile(refProv, 0.95)), ms(rd50), ms(Quantile(refDeprov, 0.95)), ms(p50)/ms(r50), ms(d50)/ms(rd50))
}
