package metrics

import (
	"math"
	"sort"
	"sync/atomic"
	"time"
)

// Counter is a value that only goes up (requests, errors, bytes). Its
// name ends in _total.
type Counter struct{ bits atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds v, which must not be negative (a counter never goes down; a
// negative v panics, as client_golang's does).
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("metrics: counter decreased")
	}
	addFloat(&c.bits, v)
}

// Get returns the current value.
func (c *Counter) Get() float64 { return math.Float64frombits(c.bits.Load()) }

// Gauge is a value that goes up and down (pool size, last-event time).
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v (negative subtracts).
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// SetToTime sets the value to t as Unix seconds (for *_timestamp_seconds).
func (g *Gauge) SetToTime(t time.Time) { g.Set(float64(t.UnixNano()) / 1e9) }

// Get returns the current value.
func (g *Gauge) Get() float64 { return math.Float64frombits(g.bits.Load()) }

func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Histogram counts observations in fixed buckets (latencies in seconds).
// Buckets are upper bounds; +Inf is implied.
type Histogram struct {
	upper  []float64       // sorted, without +Inf
	counts []atomic.Uint64 // len(upper)+1: per bucket, not cumulative; last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(buckets []float64) *Histogram {
	return &Histogram{upper: buckets, counts: make([]atomic.Uint64, len(buckets)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // first bound >= v: le is inclusive
	h.counts[i].Add(1)
	addFloat(&h.sum, v)
}

// ObserveSince records the seconds elapsed since start.
func (h *Histogram) ObserveSince(start time.Time) { h.Observe(time.Since(start).Seconds()) }

// snapshot returns cumulative bucket counts (the last is the total count)
// and the sum. Concurrent observations may make sum and counts differ by
// the observations in flight; the count always equals the +Inf bucket.
func (h *Histogram) snapshot() (cum []uint64, sum float64) {
	cum = make([]uint64, len(h.counts))
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		cum[i] = acc
	}
	return cum, math.Float64frombits(h.sum.Load())
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	cum, _ := h.snapshot()
	return cum[len(cum)-1]
}

// Sum returns the sum of observations.
func (h *Histogram) Sum() float64 { return math.Float64frombits(h.sum.Load()) }

// Bucket sets for common cases. Callers must not modify them.

// DefBuckets are client_golang's default latency buckets, in seconds
// (5 ms to 10 s).
func DefBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// ExponentialBuckets returns count bounds starting at start, each factor
// times the previous.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if start <= 0 || factor <= 1 || count < 1 {
		panic("metrics: ExponentialBuckets needs start > 0, factor > 1, count >= 1")
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}
