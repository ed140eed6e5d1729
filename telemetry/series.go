package telemetry

import (
	"strings"

	"github.com/veni-cni/veni/metrics"
)

// gaugeSet keeps a GaugeVec equal to the latest reading of a source whose
// label sets come and go (ENIs, back-offs): series are set in place and
// the ones the reading no longer has are deleted afterwards, so a
// concurrent scrape never sees the family empty. Its owner serialises
// calls.
type gaugeSet struct {
	vec  *metrics.GaugeVec
	have map[string][]string // label values by key
}

// sample is one series of a reading.
type sample struct {
	labels []string
	value  float64
}

// replace makes the family hold exactly samples.
func (s *gaugeSet) replace(samples []sample) {
	next := make(map[string][]string, len(samples))
	for _, x := range samples {
		s.vec.With(x.labels...).Set(x.value)
		next[strings.Join(x.labels, "\xff")] = x.labels
	}
	for k, labels := range s.have {
		if _, ok := next[k]; !ok {
			s.vec.Delete(labels...)
		}
	}
	s.have = next
}

// setCounter makes a counter series equal v, a count kept elsewhere (the
// kernel's per-CPU maps, an informer). A count that went down was reset
// at its source (maps recreated, informer replaced): the series starts
// again from v, which Prometheus reads as a counter reset. Callers
// serialise calls for one family.
func setCounter(vec *metrics.CounterVec, v float64, labels ...string) {
	c := vec.With(labels...)
	switch old := c.Get(); {
	case v > old:
		c.Add(v - old)
	case v < old:
		vec.Delete(labels...)
		vec.With(labels...).Add(v)
	}
}

// maxLabelValues bounds how many distinct values a label fed from outside
// veni's code (a cloud error code, an event reason, a CNI error code) may
// take per metric; the rest are counted as "other", so a misbehaving
// source cannot grow the daemon's memory or a scraper's without bound.
const maxLabelValues = 100

// labelLimiter remembers the values each bounded label has taken. It is
// safe for concurrent use only under its owner's lock.
type labelLimiter struct {
	max  int
	seen map[string]map[string]bool // by metric name
}

func newLabelLimiter() labelLimiter {
	return labelLimiter{max: maxLabelValues, seen: make(map[string]map[string]bool)}
}

// value returns v, or "other" once metric has max other values.
func (l *labelLimiter) value(metric, v string) string {
	m := l.seen[metric]
	if m == nil {
		m = make(map[string]bool)
		l.seen[metric] = m
	}
	if m[v] {
		return v
	}
	if len(m) >= l.max {
		return "other"
	}
	m[v] = true
	return v
}
