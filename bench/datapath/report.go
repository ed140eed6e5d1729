package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// floorRow is the row every other row is a ratio to.
const floorRow = "bare"

// figure is one column of the table.
type figure struct {
	Name   string
	Unit   string
	Higher bool // higher is better (throughput, rate); latency is lower-better
	Get    func(sample) float64
}

var figures = []figure{
	{"TCP x1", "Gbit/s", true, func(s sample) float64 { return s.TCP1 }},
	{"TCP x4", "Gbit/s", true, func(s sample) float64 { return s.TCP4 }},
	{"RR p50", "µs", false, func(s sample) float64 { return s.P50 }},
	{"RR p99", "µs", false, func(s sample) float64 { return s.P99 }},
	{"CONN/s", "", true, func(s sample) float64 { return s.ConnPerSec }},
}

// stat is a figure over a row's repetitions.
type stat struct {
	Median float64
	Spread float64 // (max-min)/median: how noisy the repetitions were
	N      int
}

func newStat(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	st := stat{Median: m, N: len(v)}
	if m != 0 {
		st.Spread = (v[len(v)-1] - v[0]) / m
	}
	return st
}

// rowStats are one row's figures in one scenario.
type rowStats struct {
	Row, Label string
	Figures    []stat // in the order of figures
	Forwarded  stat   // packets forwarded by the node's IP stack per run
	ConnErrors int64
	FastShare  stat              // share of packets the fast path redirected, over runs that read its counters
	FastPath   map[string]uint64 // fast path counters, mean per run
}

// scenarioStats are a scenario's rows in the order they were first run.
type scenarioStats struct {
	Scenario string
	Rows     []rowStats
}

func (sc scenarioStats) row(key string) (rowStats, bool) {
	for _, r := range sc.Rows {
		if r.Row == key {
			return r, true
		}
	}
	return rowStats{}, false
}

// readSamples reads a results file written by "measure".
func readSamples(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("results line %d: %w", n, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// aggregate groups samples by scenario and row, keeping first-seen order.
func aggregate(samples []sample) []scenarioStats {
	type key struct{ scenario, row string }
	var scenarios []string
	rows := map[string][]string{}
	labels := map[key]string{}
	byKey := map[key][]sample{}
	for _, s := range samples {
		k := key{s.Scenario, s.Row}
		if _, ok := rows[s.Scenario]; !ok {
			scenarios = append(scenarios, s.Scenario)
		}
		if _, ok := byKey[k]; !ok {
			rows[s.Scenario] = append(rows[s.Scenario], s.Row)
			labels[k] = s.Label
		}
		byKey[k] = append(byKey[k], s)
	}
	var out []scenarioStats
	for _, sc := range scenarios {
		st := scenarioStats{Scenario: sc}
		for _, row := range rows[sc] {
			k := key{sc, row}
			rs := rowStats{Row: row, Label: labels[k]}
			var fwd []float64
			for _, f := range figures {
				var v []float64
				for _, s := range byKey[k] {
					v = append(v, f.Get(s))
				}
				rs.Figures = append(rs.Figures, newStat(v))
			}
			var share []float64
			for _, s := range byKey[k] {
				fwd = append(fwd, float64(s.Forwarded))
				rs.ConnErrors += s.ConnErrors
				if f, ok := fastShare(s.FastPath); ok {
					share = append(share, f)
				}
				for c, v := range s.FastPath {
					if rs.FastPath == nil {
						rs.FastPath = map[string]uint64{}
					}
					rs.FastPath[c] += v / uint64(len(byKey[k]))
				}
			}
			rs.FastShare = newStat(share)
			rs.Forwarded = newStat(fwd)
			st.Rows = append(st.Rows, rs)
		}
		out = append(out, st)
	}
	return out
}

// scenarioTitles explain the scenario letters of the issue.
var scenarioTitles = map[string]string{
	"a": "(a) clean node",
	"b": "(b) node carrying a large cluster's host firewall (conntrack on, nat PREROUTING and filter FORWARD rules)",
}

func scenarioTitle(s string) string {
	if t, ok := scenarioTitles[s]; ok {
		return t
	}
	return "(" + s + ")"
}

// printTables writes one table per scenario: each figure's median, its
// spread over the repetitions and its ratio to the bare pair.
func printTables(w io.Writer, stats []scenarioStats) error {
	for _, sc := range stats {
		floor, haveFloor := sc.row(floorRow)
		n := 0
		if len(sc.Rows) > 0 && len(sc.Rows[0].Figures) > 0 {
			n = sc.Rows[0].Figures[0].N
		}
		fmt.Fprintf(w, "\nScenario %s\nmedian of %d runs, ±spread (max-min)/median, [ratio to row 1]\n", scenarioTitle(sc.Scenario), n)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "ROW\t")
		for _, f := range figures {
			fmt.Fprintf(tw, "%s\t", f.Name+" "+f.Unit)
		}
		fmt.Fprint(tw, "NODE FWD pkts\tFAST PATH\t\n")
		for _, r := range sc.Rows {
			label := r.Label
			if r.Figures[0].N != n {
				label += fmt.Sprintf(" (%d runs)", r.Figures[0].N)
			}
			fmt.Fprintf(tw, "%s\t", label)
			for i, st := range r.Figures {
				ratio := "[ - ]"
				if haveFloor && floor.Figures[i].Median != 0 {
					ratio = fmt.Sprintf("[%.2f]", st.Median/floor.Figures[i].Median)
				}
				fmt.Fprintf(tw, "%s ±%2.0f%% %s\t", formatValue(st.Median), 100*st.Spread, ratio)
			}
			fast := "-"
			if r.FastShare.N > 0 {
				fast = fmt.Sprintf("%.1f%%", 100*r.FastShare.Median)
			}
			fmt.Fprintf(tw, "%s\t%s\t\n", formatCount(r.Forwarded.Median), fast)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, r := range sc.Rows {
			if r.ConnErrors > 0 {
				fmt.Fprintf(w, "note: %s: %d failed connections in the connection-rate runs\n", r.Label, r.ConnErrors)
			}
			if passed := hostStackCounters(r.FastPath); passed != "" {
				fmt.Fprintf(w, "note: %s: fast path left to the host stack, per run: %s\n", r.Label, passed)
			}
		}
	}
	return nil
}

// printScenarioRatios writes each row's figures in (b) as a ratio to the
// same row in (a): what the host firewall costs each datapath.
func printScenarioRatios(w io.Writer, stats []scenarioStats) error {
	var a, b *scenarioStats
	for i := range stats {
		switch stats[i].Scenario {
		case "a":
			a = &stats[i]
		case "b":
			b = &stats[i]
		}
	}
	if a == nil || b == nil {
		return nil
	}
	fmt.Fprintf(w, "\nCost of the host firewall: (b) / (a), per row\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "ROW\t")
	for _, f := range figures {
		fmt.Fprintf(tw, "%s\t", f.Name)
	}
	fmt.Fprint(tw, "\n")
	for _, rb := range b.Rows {
		ra, ok := a.row(rb.Row)
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t", rb.Label)
		for i := range figures {
			fmt.Fprintf(tw, "%s\t", formatRatio(rb.Figures[i].Median, ra.Figures[i].Median))
		}
		fmt.Fprint(tw, "\n")
	}
	return tw.Flush()
}

// printFamilyRatios writes, per scenario, the eBPF datapath's figures as
// a ratio to the plain one's, for IPv4 (rows ebpf-X / plain-X) and IPv6
// (ebpf6-X / plain6-X) side by side, same node and cross node: what the
// fast path buys each family. Rows not measured are left out.
func printFamilyRatios(w io.Writer, stats []scenarioStats) error {
	for _, sc := range stats {
		type line struct{ label, ebpf, plain string }
		var lines []line
		for _, where := range []struct{ key, text string }{{"same", "same node"}, {"cross", "cross node"}} {
			for _, fam := range []struct{ sfx, text string }{{"", "IPv4"}, {"6", "IPv6"}} {
				e, p := "ebpf"+fam.sfx+"-"+where.key, "plain"+fam.sfx+"-"+where.key
				_, okE := sc.row(e)
				_, okP := sc.row(p)
				if okE && okP {
					lines = append(lines, line{fam.text + " " + where.text, e, p})
				}
			}
		}
		if !slices.ContainsFunc(lines, func(l line) bool { return strings.HasPrefix(l.label, "IPv6") }) {
			continue
		}
		fmt.Fprintf(w, "\nScenario %s: eBPF / plain datapath, per family (medians; RR: sockperf for IPv4, pingpong for IPv6)\n", scenarioTitle(sc.Scenario))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "ROWS\t")
		for _, f := range figures {
			fmt.Fprintf(tw, "%s\t", f.Name)
		}
		fmt.Fprint(tw, "\n")
		for _, l := range lines {
			e, _ := sc.row(l.ebpf)
			p, _ := sc.row(l.plain)
			fmt.Fprintf(tw, "%s\t", l.label)
			for i := range figures {
				fmt.Fprintf(tw, "%s\t", formatRatio(e.Figures[i].Median, p.Figures[i].Median))
			}
			fmt.Fprint(tw, "\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func formatRatio(x, y float64) string {
	if y == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x/y)
}

func formatValue(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// hostStackCounters lists, largest first, the fast path counters that
// count packets left to the host stack (Pass*, FIB*).
func hostStackCounters(m map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var l []kv
	for k, v := range m {
		name := k[strings.LastIndex(k, ".")+1:] // "FromPod.PassProto", "IPv6.FromPod.PassProto"
		if v > 0 && (strings.HasPrefix(name, "Pass") || strings.HasPrefix(name, "FIB")) {
			l = append(l, kv{k, v})
		}
	}
	slices.SortFunc(l, func(a, b kv) int {
		if a.v != b.v {
			return cmp.Compare(b.v, a.v)
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for _, e := range l {
		parts = append(parts, e.k+" "+formatCount(float64(e.v)))
	}
	return strings.Join(parts, ", ")
}
