package telemetry

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veni-cni/veni/store"
)

// t0 is the tests' epoch (a function: a package-level variable would be init
// work, which TestInit_NoWork forbids in the test binary too).
func t0() time.Time { return time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC) }

// clock is a settable time source for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// mustStore returns a store file in a temporary directory whose log keeps
// eventCap events (0: the default), checked for its invariants at cleanup.
func mustStore(tb testing.TB, eventCap int) store.File {
	tb.Helper()
	f := store.File{Path: filepath.Join(tb.TempDir(), "veni.db"), Options: store.Options{EventCap: eventCap}}
	tb.Cleanup(func() {
		err := f.View(func(tx *store.ReadTx) error {
			for _, v := range tx.Check() {
				tb.Errorf("store invariant: %s", v)
			}
			return nil
		})
		if err != nil {
			tb.Errorf("check store: %v", err)
		}
	})
	return f
}

func mustUpdate(tb testing.TB, db store.File, fn func(*store.WriteTx) error) {
	tb.Helper()
	if err := db.Update(fn); err != nil {
		tb.Fatalf("update store: %v", err)
	}
}

// newTestExporter returns an exporter on db whose clock starts at t0().
func newTestExporter(tb testing.TB, db store.File) (*Exporter, *clock) {
	tb.Helper()
	c := newClock(t0())
	return New(Options{Store: db, Build: Build{Version: "v-test", Commit: "abc123"}, Now: c.Now}), c
}

// scrape GETs the exporter's handler and parses the answer with
// Prometheus' own parser.
func scrape(tb testing.TB, e *Exporter) map[string]*dto.MetricFamily {
	tb.Helper()
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return parse(tb, rec.Body)
}

func parse(tb testing.TB, r io.Reader) map[string]*dto.MetricFamily {
	tb.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("expfmt rejects the output: %v\n%s", err, raw)
	}
	return fams
}

// labels turns "k=v,k=v" into a label set; "" is no labels.
func labels(s string) map[string]string {
	out := map[string]string{}
	if s == "" {
		return out
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// find returns the series of name with exactly the labels ls ("k=v,...").
func find(fams map[string]*dto.MetricFamily, name, ls string) (*dto.Metric, bool) {
	want := labels(ls)
	for _, m := range fams[name].GetMetric() {
		if sameLabels(labelsOf(m), want) {
			return m, true
		}
	}
	return nil, false
}

// value returns a counter's or gauge's value, failing when the series is
// missing.
func value(tb testing.TB, fams map[string]*dto.MetricFamily, name, ls string) float64 {
	tb.Helper()
	m, ok := find(fams, name, ls)
	if !ok {
		tb.Fatalf("no series %s{%s}; have %s", name, ls, seriesOf(fams, name))
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	tb.Fatalf("%s{%s} is neither counter nor gauge", name, ls)
	return 0
}

// valueOr0 is value for a series that may not exist yet (a counter never
// incremented).
func valueOr0(tb testing.TB, fams map[string]*dto.MetricFamily, name, ls string) float64 {
	tb.Helper()
	if _, ok := find(fams, name, ls); !ok {
		return 0
	}
	return value(tb, fams, name, ls)
}

// histogram returns a histogram series' count and sum.
func histogram(tb testing.TB, fams map[string]*dto.MetricFamily, name, ls string) (uint64, float64) {
	tb.Helper()
	m, ok := find(fams, name, ls)
	if !ok || m.Histogram == nil {
		tb.Fatalf("no histogram %s{%s}; have %s", name, ls, seriesOf(fams, name))
	}
	return m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum()
}

func seriesOf(fams map[string]*dto.MetricFamily, name string) string {
	var out []string
	for _, m := range fams[name].GetMetric() {
		var kv []string
		for k, v := range labelsOf(m) {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		out = append(out, "{"+strings.Join(kv, ",")+"}")
	}
	return strings.Join(out, " ")
}

// appendEvents appends events to the log in one transaction.
func appendEvents(tb testing.TB, db store.File, evs ...store.Event) {
	tb.Helper()
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		for _, ev := range evs {
			if _, err := tx.AppendEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// cniEvent is the record a CNI call leaves, logged at when.
func cniEvent(verb string, code uint, took time.Duration, when time.Time) store.Event {
	reason := "AllocIPSucceed"
	switch {
	case verb == store.CNIDel:
		reason = "ReleaseIPSucceed"
	case code != 0:
		reason = "AllocIPFailed"
	}
	return store.Event{
		Time: when, Reason: reason, Object: "pod/default/web",
		CNI: &store.CNICall{Verb: verb, Code: code, Took: took, Key: "c1/eth0", IP: netip.MustParseAddr("10.0.0.9")},
	}
}
