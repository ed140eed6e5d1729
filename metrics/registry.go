package metrics

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Metric types, as written in # TYPE lines.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
)

// Registry holds metric families and writes them in the Prometheus text
// format. Registration panics on a programming error (bad or duplicate
// name, wrong labels), as client_golang's MustRegister does: names are
// constants, so a test catches it.
type Registry struct {
	mu    sync.Mutex
	fams  map[string]*family
	hooks []func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{fams: map[string]*family{}} }

// family is one metric name with its series.
type family struct {
	name, help, typ string
	labels          []string
	buckets         []float64 // histograms

	mu     sync.RWMutex
	series map[string]*series // by labelKey(values)
	fn     func() float64     // func metrics: one unlabelled series
}

type series struct {
	values []string
	c      *Counter
	g      *Gauge
	h      *Histogram
}

// OnCollect registers f to run before every write, to refresh gauges from
// their source (the store, an informer's stats). f runs on the scraping
// goroutine with no registry lock held.
func (r *Registry) OnCollect(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, f)
}

func (r *Registry) register(f *family) *family {
	if err := checkName(f.name, f.typ); err != nil {
		panic(err)
	}
	for _, l := range f.labels {
		if err := checkLabel(l, f.typ); err != nil {
			panic(fmt.Errorf("metrics: %s: %w", f.name, err))
		}
	}
	if f.typ == typeHistogram {
		if len(f.buckets) == 0 || !sort.Float64sAreSorted(f.buckets) || slices.Contains(f.buckets, math.Inf(1)) {
			panic(fmt.Sprintf("metrics: %s: buckets must be sorted, non-empty and without +Inf", f.name))
		}
		f.buckets = slices.Compact(slices.Clone(f.buckets))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.fams[f.name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	f.series = map[string]*series{}
	r.fams[f.name] = f
	return f
}

// checkName enforces the Prometheus conventions veni follows: snake case
// with a unit suffix left to the caller, counters end in _total and
// nothing else does, and the suffixes a histogram generates are not used.
func checkName(name, typ string) error {
	if name == "" || !(name[0] >= 'a' && name[0] <= 'z') {
		return fmt.Errorf("metrics: name %q must start with a lower-case letter", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("metrics: name %q: only a-z, 0-9 and _ (snake case)", name)
		}
	}
	total := strings.HasSuffix(name, "_total")
	switch {
	case typ == typeCounter && !total:
		return fmt.Errorf("metrics: counter %q must end in _total", name)
	case typ != typeCounter && total:
		return fmt.Errorf("metrics: %s %q must not end in _total (only counters do)", typ, name)
	}
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, s) {
			return fmt.Errorf("metrics: name %q must not end in %s (histogram series suffix)", name, s)
		}
	}
	return nil
}

func checkLabel(l, typ string) error {
	if l == "" || strings.HasPrefix(l, "__") {
		return fmt.Errorf("label %q is empty or reserved", l)
	}
	if typ == typeHistogram && l == "le" {
		return fmt.Errorf(`label "le" is reserved in histograms`)
	}
	for i, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("label %q: only [a-zA-Z_][a-zA-Z0-9_]*", l)
		}
	}
	return nil
}

// labelKey joins label values unambiguously.
func labelKey(values []string) string { return strings.Join(values, "\xff") }

// get returns the series for values, creating it.
func (f *family) get(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values (%s), got %d", f.name, len(f.labels), strings.Join(f.labels, ", "), len(values)))
	}
	k := labelKey(values)
	f.mu.RLock()
	s := f.series[k]
	f.mu.RUnlock()
	if s != nil {
		return s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s = f.series[k]; s != nil {
		return s
	}
	s = &series{values: slices.Clone(values)}
	switch f.typ {
	case typeCounter:
		s.c = &Counter{}
	case typeGauge:
		s.g = &Gauge{}
	case typeHistogram:
		s.h = newHistogram(f.buckets)
	}
	f.series[k] = s
	return s
}

func (f *family) delete(values []string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := labelKey(values)
	_, ok := f.series[k]
	delete(f.series, k)
	return ok
}

func (f *family) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.series)
}

// NewCounter registers an unlabelled counter.
func (r *Registry) NewCounter(name, help string) *Counter {
	return r.register(&family{name: name, help: help, typ: typeCounter}).get(nil).c
}

// NewGauge registers an unlabelled gauge.
func (r *Registry) NewGauge(name, help string) *Gauge {
	return r.register(&family{name: name, help: help, typ: typeGauge}).get(nil).g
}

// NewHistogram registers an unlabelled histogram with the given upper
// bounds (sorted; +Inf is added).
func (r *Registry) NewHistogram(name, help string, buckets []float64) *Histogram {
	return r.register(&family{name: name, help: help, typ: typeHistogram, buckets: buckets}).get(nil).h
}

// NewGaugeFunc registers a gauge whose value fn returns at each write.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	r.register(&family{name: name, help: help, typ: typeGauge, fn: fn})
}

// NewCounterFunc registers a counter whose value fn returns at each write
// (for counts kept elsewhere, e.g. an informer's Stats).
func (r *Registry) NewCounterFunc(name, help string, fn func() float64) {
	r.register(&family{name: name, help: help, typ: typeCounter, fn: fn})
}

// CounterVec is a counter family with labels.
type CounterVec struct{ f *family }

// NewCounterVec registers a counter family with the given label names.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.register(&family{name: name, help: help, typ: typeCounter, labels: labels})}
}

// With returns the counter for the label values (in label order),
// creating it at zero.
func (v *CounterVec) With(values ...string) *Counter { return v.f.get(values).c }

// Delete removes one series; it reports whether it existed.
func (v *CounterVec) Delete(values ...string) bool { return v.f.delete(values) }

// Reset removes every series.
func (v *CounterVec) Reset() { v.f.reset() }

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ f *family }

// NewGaugeVec registers a gauge family with the given label names.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.register(&family{name: name, help: help, typ: typeGauge, labels: labels})}
}

// With returns the gauge for the label values, creating it at zero.
func (v *GaugeVec) With(values ...string) *Gauge { return v.f.get(values).g }

// Delete removes one series (an ENI that is gone); it reports whether it
// existed.
func (v *GaugeVec) Delete(values ...string) bool { return v.f.delete(values) }

// Reset removes every series (before setting the current ones in an
// OnCollect hook).
func (v *GaugeVec) Reset() { v.f.reset() }

// HistogramVec is a histogram family with labels.
type HistogramVec struct{ f *family }

// NewHistogramVec registers a histogram family with the given bounds and
// label names.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	return &HistogramVec{r.register(&family{name: name, help: help, typ: typeHistogram, buckets: buckets, labels: labels})}
}

// With returns the histogram for the label values, creating it empty.
func (v *HistogramVec) With(values ...string) *Histogram { return v.f.get(values).h }

// Delete removes one series; it reports whether it existed.
func (v *HistogramVec) Delete(values ...string) bool { return v.f.delete(values) }
