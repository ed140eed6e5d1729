package metrics

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse checks the registry's output with Prometheus' own text parser and
// returns the families.
func parse(t *testing.T, r *Registry) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("expfmt rejects the output: %v\n%s", err, buf.String())
	}
	return fams, buf.String()
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestRegistry_WriteTo_ParsesWithExpfmt(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("veni_cni_add_total", "CNI ADD calls.")
	c.Add(3)
	g := r.NewGauge("veni_pool_idle_ips", "Idle IPs in the pool.")
	g.Set(-2.5)
	cv := r.NewCounterVec("veni_cloud_api_calls_total", "Cloud API calls by action and result.", "action", "result")
	cv.With("AssignPrivateIpAddresses", "ok").Inc()
	cv.With("AssignPrivateIpAddresses", "Throttling").Add(2)
	gv := r.NewGaugeVec("veni_pool_ips", "Pool IPs by ENI and state.", "eni", "state")
	gv.With("eni-1", "idle").Set(4)
	h := r.NewHistogram("veni_cni_add_duration_seconds", "CNI ADD latency.", []float64{0.01, 0.1, 1})
	for _, v := range []float64{0.005, 0.01, 0.05, 0.5, 5} {
		h.Observe(v)
	}
	hv := r.NewHistogramVec("veni_cloud_api_duration_seconds", "Cloud API latency.", DefBuckets(), "action")
	hv.With("CreateNetworkInterface").Observe(0.3)
	r.NewGaugeFunc("veni_informer_objects", "Objects in the informer caches.", func() float64 { return 42 })
	r.NewCounterFunc("veni_informer_relists_total", "Informer relists.", func() float64 { return 7 })

	fams, text := parse(t, r)
	tests := []struct {
		name   string
		typ    dto.MetricType
		labels map[string]string
		value  float64
	}{
		{"veni_cni_add_total", dto.MetricType_COUNTER, map[string]string{}, 3},
		{"veni_pool_idle_ips", dto.MetricType_GAUGE, map[string]string{}, -2.5},
		{"veni_cloud_api_calls_total", dto.MetricType_COUNTER, map[string]string{"action": "AssignPrivateIpAddresses", "result": "Throttling"}, 2},
		{"veni_cloud_api_calls_total", dto.MetricType_COUNTER, map[string]string{"action": "AssignPrivateIpAddresses", "result": "ok"}, 1},
		{"veni_pool_ips", dto.MetricType_GAUGE, map[string]string{"eni": "eni-1", "state": "idle"}, 4},
		{"veni_informer_objects", dto.MetricType_GAUGE, map[string]string{}, 42},
		{"veni_informer_relists_total", dto.MetricType_COUNTER, map[string]string{}, 7},
	}
	for _, tc := range tests {
		f := fams[tc.name]
		if f == nil {
			t.Fatalf("%s missing:\n%s", tc.name, text)
		}
		if f.GetType() != tc.typ {
			t.Errorf("%s type %v, want %v", tc.name, f.GetType(), tc.typ)
		}
		found := false
		for _, m := range f.GetMetric() {
			ls := labelsOf(m)
			if len(ls) != len(tc.labels) {
				continue
			}
			match := true
			for k, v := range tc.labels {
				if ls[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			found = true
			got := m.GetCounter().GetValue()
			if tc.typ == dto.MetricType_GAUGE {
				got = m.GetGauge().GetValue()
			}
			if got != tc.value {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.value)
			}
		}
		if !found {
			t.Errorf("%s%v not found:\n%s", tc.name, tc.labels, text)
		}
	}

	hf := fams["veni_cni_add_duration_seconds"]
	if hf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("histogram type %v", hf.GetType())
	}
	hm := hf.GetMetric()[0].GetHistogram()
	if hm.GetSampleCount() != 5 || math.Abs(hm.GetSampleSum()-5.565) > 1e-9 {
		t.Errorf("count %d sum %v, want 5 and 5.565", hm.GetSampleCount(), hm.GetSampleSum())
	}
	wantCum := map[float64]uint64{0.01: 2, 0.1: 3, 1: 4} // le is inclusive: 0.01 counts in le="0.01"
	for _, b := range hm.GetBucket() {
		if w, ok := wantCum[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if !strings.Contains(text, `veni_cni_add_duration_seconds_bucket{le="+Inf"} 5`) {
		t.Errorf("no +Inf bucket:\n%s", text)
	}
}

func TestRegistry_WriteTo_Escaping(t *testing.T) {
	r := NewRegistry()
	help := "Help with a backslash \\ and a\nnewline and \"quotes\"."
	v := r.NewGaugeVec("veni_escape_test", help, "msg")
	odd := "a \"quoted\" \\path\\ and\na newline"
	v.With(odd).Set(1)
	fams, text := parse(t, r)
	f := fams["veni_escape_test"]
	if f.GetHelp() != help {
		t.Errorf("help round trip: %q, want %q", f.GetHelp(), help)
	}
	if got := labelsOf(f.GetMetric()[0])["msg"]; got != odd {
		t.Errorf("label round trip: %q, want %q\n%s", got, odd, text)
	}
	if strings.Count(text, "\n") != 3 {
		t.Errorf("raw newline leaked into output:\n%s", text)
	}
}

func TestRegistry_WriteTo_SpecialValues(t *testing.T) {
	r := NewRegistry()
	v := r.NewGaugeVec("veni_special", "Special floats.", "k")
	v.With("inf").Set(math.Inf(1))
	v.With("ninf").Set(math.Inf(-1))
	v.With("nan").Set(math.NaN())
	v.With("big").Set(1e21)
	v.With("small").Set(1.5e-7)
	fams, text := parse(t, r)
	got := map[string]float64{}
	for _, m := range fams["veni_special"].GetMetric() {
		got[labelsOf(m)["k"]] = m.GetGauge().GetValue()
	}
	if !math.IsInf(got["inf"], 1) || !math.IsInf(got["ninf"], -1) || !math.IsNaN(got["nan"]) || got["big"] != 1e21 || got["small"] != 1.5e-7 {
		t.Errorf("special values: %v\n%s", got, text)
	}
}

func TestRegistry_Register_Invalid(t *testing.T) {
	tests := []struct {
		name string
		reg  func(r *Registry)
	}{
		{"counter without _total", func(r *Registry) { r.NewCounter("veni_calls", "x") }},
		{"gauge with _total", func(r *Registry) { r.NewGauge("veni_ips_total", "x") }},
		{"upper case", func(r *Registry) { r.NewGauge("veni_IPs", "x") }},
		{"dash", func(r *Registry) { r.NewGauge("veni-ips", "x") }},
		{"histogram suffix", func(r *Registry) { r.NewGauge("veni_ips_count", "x") }},
		{"le label on histogram", func(r *Registry) { r.NewHistogramVec("veni_h_seconds", "x", DefBuckets(), "le") }},
		{"reserved label", func(r *Registry) { r.NewGaugeVec("veni_g", "x", "__name") }},
		{"unsorted buckets", func(r *Registry) { r.NewHistogram("veni_h_seconds", "x", []float64{1, 0.5}) }},
		{"inf bucket", func(r *Registry) { r.NewHistogram("veni_h_seconds", "x", []float64{1, math.Inf(1)}) }},
		{"duplicate", func(r *Registry) { r.NewGauge("veni_g", "x"); r.NewGauge("veni_g", "y") }},
		{"wrong label count", func(r *Registry) { r.NewGaugeVec("veni_g", "x", "a", "b").With("only-one") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			tc.reg(NewRegistry())
		})
	}
}

func TestCounter_Add_Negative(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("negative Add did not panic")
		}
	}()
	NewRegistry().NewCounter("veni_x_total", "x").Add(-1)
}

func TestGaugeVec_DeleteReset(t *testing.T) {
	r := NewRegistry()
	v := r.NewGaugeVec("veni_pool_ips", "x", "eni")
	v.With("a").Set(1)
	v.With("b").Set(2)
	if !v.Delete("a") || v.Delete("a") {
		t.Error("Delete: want true then false")
	}
	fams, _ := parse(t, r)
	if n := len(fams["veni_pool_ips"].GetMetric()); n != 1 {
		t.Errorf("%d series after Delete, want 1", n)
	}
	v.Reset()
	var buf bytes.Buffer
	_, _ = r.WriteTo(&buf)
	if strings.Contains(buf.String(), "eni=") {
		t.Errorf("series left after Reset:\n%s", buf.String())
	}
}

func TestRegistry_OnCollect_RunsBeforeWrite(t *testing.T) {
	r := NewRegistry()
	v := r.NewGaugeVec("veni_pool_ips", "x", "eni")
	n := 0
	r.OnCollect(func() {
		n++
		v.Reset()
		v.With("eni-" + string(rune('0'+n))).Set(float64(n))
	})
	_, _ = parse(t, r)
	fams, _ := parse(t, r)
	ms := fams["veni_pool_ips"].GetMetric()
	if len(ms) != 1 || labelsOf(ms[0])["eni"] != "eni-2" || ms[0].GetGauge().GetValue() != 2 {
		t.Errorf("after two scrapes: %v", ms)
	}
}

func TestCounter_Add_Concurrent(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("veni_c_total", "x", "k")
	h := r.NewHistogram("veni_h_seconds", "x", DefBuckets())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				c.With("a").Add(0.5)
				h.Observe(float64(i%20) / 100)
				if i%100 == 0 {
					_, _ = r.WriteTo(io.Discard)
				}
			}
		}()
	}
	wg.Wait()
	if got := c.With("a").Get(); got != 4000 {
		t.Errorf("counter = %v, want 4000", got)
	}
	if h.Count() != 8000 {
		t.Errorf("histogram count = %d, want 8000", h.Count())
	}
}

func TestServe_UnixSocket(t *testing.T) {
	r := NewRegistry()
	r.NewCounter("veni_scrapes_test_total", "x").Inc()
	sock := filepath.Join(t.TempDir(), "sub", "metrics.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, r.Handler()) }()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://veni/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != ContentType || !strings.Contains(string(body), "veni_scrapes_test_total 1") {
		t.Errorf("got %q %q", resp.Header.Get("Content-Type"), body)
	}
	resp, err = hc.Post("http://veni/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	// A second Listen on the same path replaces the stale socket.
	l2, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatalf("relisten: %v", err)
	}
	l2.Close()
}

func TestListen_TCP(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().Network() != "tcp" {
		t.Errorf("network %s", l.Addr().Network())
	}
}

func BenchmarkRegistry_WriteTo(b *testing.B) {
	r := NewRegistry()
	v := r.NewGaugeVec("veni_pool_ips", "x", "eni", "state")
	for i := range 50 {
		v.With("eni-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "idle").Set(float64(i))
	}
	h := r.NewHistogramVec("veni_cloud_api_duration_seconds", "x", DefBuckets(), "action")
	h.With("A").Observe(1)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = r.WriteTo(io.Discard)
	}
}
