package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestNewStat(t *testing.T) {
	tests := []struct {
		name   string
		v      []float64
		median float64
		spread float64
	}{
		{"odd", []float64{3, 1, 2}, 2, 1},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1.2},
		{"one", []float64{5}, 5, 0},
		{"none", nil, 0, 0},
		{"zero median", []float64{0, 0, 1}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStat(tt.v)
			if st.Median != tt.median || math.Abs(st.Spread-tt.spread) > 1e-9 || st.N != len(tt.v) {
				t.Errorf("got %+v, want median %v spread %v n %d", st, tt.median, tt.spread, len(tt.v))
			}
		})
	}
}

// mustResults encodes samples as a results file.
func mustResults(tb testing.TB, samples []sample) *bytes.Buffer {
	tb.Helper()
	var b bytes.Buffer
	for _, s := range samples {
		if err := json.NewEncoder(&b).Encode(s); err != nil {
			tb.Fatal(err)
		}
	}
	return &b
}

// fakeRun is a run where each row is the bare pair scaled by its factor,
// the same in every repetition.
func fakeRun(scenario string, reps int, rows map[string]float64) []sample {
	var out []sample
	for rep := 1; rep <= reps; rep++ {
		for _, row := range []string{"bare", "plain-same", "plain-cross", "ebpf-same", "ebpf-cross"} {
			f, ok := rows[row]
			if !ok {
				continue
			}
			out = append(out, sample{
				Scenario: scenario, Row: row, Label: "label " + row, Rep: rep,
				TCP1: 10 * f, TCP4: 20 * f, P50: 20 / f, P99: 100 / f, ConnPerSec: 5000 * f,
				Forwarded: uint64(1000 * rep),
			})
		}
	}
	return out
}

func TestAggregate_RatiosAndOrder(t *testing.T) {
	samples := fakeRun("a", 3, map[string]float64{"bare": 1, "plain-same": 0.5})
	samples[0].TCP1 = 13 // one noisy repetition of the bare pair
	stats := aggregate(samples)
	if len(stats) != 1 || stats[0].Scenario != "a" {
		t.Fatalf("scenarios %+v", stats)
	}
	rows := stats[0].Rows
	if len(rows) != 2 || rows[0].Row != "bare" || rows[1].Row != "plain-same" {
		t.Fatalf("rows not in first-run order: %+v", rows)
	}
	bare := rows[0].Figures[0]
	if bare.Median != 10 || bare.N != 3 || math.Abs(bare.Spread-0.3) > 1e-9 {
		t.Errorf("bare tcp x1 %+v, want median 10 over 3 runs with spread 0.3", bare)
	}
	if rows[1].Forwarded.Median != 2000 {
		t.Errorf("forwarded median %v, want 2000", rows[1].Forwarded.Median)
	}
}

func TestCheckTargets(t *testing.T) {
	tests := []struct {
		name     string
		samples  []sample
		met      int
		missed   int
		measured int
	}{
		{
			name: "all met",
			samples: append(fakeRun("a", 1, map[string]float64{"bare": 1, "ebpf-same": 1, "ebpf-cross": 0.96, "plain-same": 0.9, "plain-cross": 0.8}),
				fakeRun("b", 1, map[string]float64{"bare": 1, "ebpf-same": 1, "ebpf-cross": 1, "plain-same": 0.4, "plain-cross": 0.45})...),
			met: 14, measured: 14,
		},
		{
			// In (a) throughput 0.9 misses, and latency (20/0.9) is 1.11x;
			// in (b) 1.2x plain misses all three.
			name: "all missed",
			samples: append(fakeRun("a", 1, map[string]float64{"bare": 1, "ebpf-same": 0.9, "ebpf-cross": 0.9}),
				fakeRun("b", 1, map[string]float64{"ebpf-same": 0.6, "ebpf-cross": 0.6, "plain-same": 0.5, "plain-cross": 0.5})...),
			missed: 14, measured: 14,
		},
		{
			name:    "no ebpf rows",
			samples: fakeRun("a", 1, map[string]float64{"bare": 1, "plain-same": 0.9}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var met, missed, measured int
			for _, v := range checkTargets(aggregate(tt.samples)) {
				if v.Measured {
					measured++
					if v.Met {
						met++
					} else {
						missed++
					}
				}
			}
			if met != tt.met || missed != tt.missed || measured != tt.measured {
				t.Errorf("met %d missed %d measured %d, want %d %d %d", met, missed, measured, tt.met, tt.missed, tt.measured)
			}
		})
	}
}

func TestRunTable(t *testing.T) {
	samples := append(fakeRun("a", 2, map[string]float64{"bare": 1, "plain-same": 0.5, "ebpf-same": 1}),
		fakeRun("b", 2, map[string]float64{"bare": 1, "plain-same": 0.25})...)
	for i := range samples {
		if samples[i].Row == "ebpf-same" {
			samples[i].FastPath = map[string]uint64{"FromPod.Packets": 100, "FromPod.RedirectNeigh": 90, "FromPod.PassNotLocal": 8, "FromENI.FIBDrop": 2}
		}
	}
	// One run of plain-same in (b) failed and left no sample.
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].Scenario == "b" && samples[i].Row == "plain-same" {
			samples = append(samples[:i], samples[i+1:]...)
			break
		}
	}
	var out bytes.Buffer
	if err := runTable(&out, mustResults(t, samples)); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"Scenario (a) clean node",
		"Scenario (b) node carrying a large cluster's host firewall",
		"label plain-same",
		"label plain-same (1 runs)",
		"5.00 ± 0% [0.50]",  // plain tcp x1 in (a), as a ratio to bare
		"2.50 ± 0% [0.25]",  // and in (b)
		"40.00 ± 0% [2.00]", // latency doubles
		"NOT MEASURED  (b) ebpf-same",
		"Cost of the host firewall",
		"90.0%", // the fast path's share
		"note: label ebpf-same: fast path left to the host stack, per run: FromPod.PassNotLocal 8, FromENI.FIBDrop 2",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}

func TestReadSamples_Bad(t *testing.T) {
	if _, err := readSamples(strings.NewReader("{\"row\": \"bare\"}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}

func TestPrintFamilyRatios(t *testing.T) {
	var samples []sample
	for _, r := range []struct {
		row  string
		tcp1 float64
		p50  float64
	}{{"plain-same", 10, 40}, {"ebpf-same", 20, 20}, {"plain6-same", 8, 50}, {"ebpf6-same", 16, 40}} {
		samples = append(samples, sample{Scenario: "a", Row: r.row, Label: r.row, TCP1: r.tcp1, TCP4: r.tcp1, P50: r.p50, P99: r.p50, ConnPerSec: 1000})
	}
	var b strings.Builder
	if err := printFamilyRatios(&b, aggregate(samples)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"IPv4 same node  2.00  2.00  0.50", "IPv6 same node  2.00  2.00  0.80"} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cross node") {
		t.Errorf("cross node rows were not measured:\n%s", out)
	}
	b.Reset()
	if err := printFamilyRatios(&b, aggregate(samples[:2])); err != nil || b.Len() != 0 {
		t.Errorf("without IPv6 rows: %q, %v; want nothing", b.String(), err)
	}
}
