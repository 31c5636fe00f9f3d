// Package latency reports the add-on adapters' provision and deprovision
// latencies against their raw references, in the one format
// scripts/bench-addons.sh reads.
package latency

import (
	"slices"
	"testing"
	"time"
)

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
