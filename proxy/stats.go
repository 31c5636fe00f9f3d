package proxy

import (
	"math/bits"
	"sync"
	"time"
)

// QueueStats summarizes the time requests of one app and process type
// waited in the router for a free instance, over a recent window. It is the
// autoscaler's signal: measured by the router alone, on one monotonic
// clock, with no help from the app.
type QueueStats struct {
	App         string
	ProcessType string
	Window      time.Duration // the window actually covered

	Requests int64 // requests that got an instance slot in the window
	Rejected int64 // requests refused for want of one (H10, H11, H14)

	// Quantiles of queue time over Requests (zero when there were none).
	// They are interpolated within power-of-two histogram buckets, so they
	// are accurate to within a factor of two.
	P50, P95, P99 time.Duration
	Mean, Max     time.Duration

	// Now, at the time of the snapshot.
	InFlight  int // requests at the app's instances
	Queued    int // requests waiting in the router
	Instances int // instances in the route table
	Healthy   int // of those, healthy and not quarantined
	Capacity  int // total concurrency of the healthy instances
}

const (
	statsSlots   = 60 // one per second
	histBuckets  = 26 // bucket i holds durations in [2^(i-1), 2^i) microseconds; bucket 0: < 1µs
	maxStatsSpan = statsSlots * time.Second
)

type statsSlot struct {
	sec      int64 // unix second this slot holds
	count    int64
	rejected int64
	sum      time.Duration
	max      time.Duration
	hist     [histBuckets]uint32
}

// statsWindow is a ring of per-second slots.
type statsWindow struct {
	mu    sync.Mutex
	slots [statsSlots]statsSlot
}

func bucketOf(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	b := bits.Len64(us)
	if b >= histBuckets {
		b = histBuckets - 1
	}
	return b
}

func (w *statsWindow) slot(sec int64) *statsSlot {
	s := &w.slots[sec%statsSlots]
	if s.sec != sec {
		*s = statsSlot{sec: sec}
	}
	return s
}

// record adds one request's queue time, or a rejection.
func (w *statsWindow) record(now time.Time, queue time.Duration, rejected bool) {
	sec := now.Unix()
	w.mu.Lock()
	s := w.slot(sec)
	if rejected {
		s.rejected++
	} else {
		s.count++
		s.sum += queue
		if queue > s.max {
			s.max = queue
		}
		s.hist[bucketOf(queue)]++
	}
	w.mu.Unlock()
}

// snapshot fills the windowed fields of q.
func (w *statsWindow) snapshot(now time.Time, window time.Duration, q *QueueStats) {
	if window <= 0 || window > maxStatsSpan {
		window = maxStatsSpan
	}
	n := int64((window + time.Second - 1) / time.Second)
	q.Window = time.Duration(n) * time.Second
	last := now.Unix()
	var hist [histBuckets]uint64
	var sum time.Duration
	w.mu.Lock()
	for sec := last - n + 1; sec <= last; sec++ {
		s := &w.slots[sec%statsSlots]
		if s.sec != sec {
			continue
		}
		q.Requests += s.count
		q.Rejected += s.rejected
		sum += s.sum
		if s.max > q.Max {
			q.Max = s.max
		}
		for i, c := range s.hist {
			hist[i] += uint64(c)
		}
	}
	w.mu.Unlock()
	if q.Requests == 0 {
		return
	}
	q.Mean = sum / time.Duration(q.Requests)
	q.P50 = quantile(&hist, q.Requests, 0.50, q.Max)
	q.P95 = quantile(&hist, q.Requests, 0.95, q.Max)
	q.P99 = quantile(&hist, q.Requests, 0.99, q.Max)
}

// quantile interpolates the p-quantile linearly within its bucket.
func quantile(hist *[histBuckets]uint64, total int64, p float64, max time.Duration) time.Duration {
	rank := p * float64(total)
	var cum float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := time.Duration(0), time.Microsecond
			if i > 0 {
				lo = time.Duration(1<<(i-1)) * time.Microsecond
				hi = 2 * lo
			}
			if hi > max {
				hi = max
			}
			if lo > hi {
				lo = hi
			}
			frac := (rank - cum) / float64(c)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		cum += float64(c)
	}
	return max
}
