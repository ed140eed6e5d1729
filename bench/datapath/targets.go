package main

import (
	"fmt"
	"io"
)

// target is one goal of the issue: in scenario, row's figure over base's
// must be at least (or, for latency, at most) ratio.
type target struct {
	Scenario  string
	Row, Base string
	Figure    int // index in figures
	Ratio     float64
}

// targets are the issue's: in (a) the eBPF datapath within 5% of the bare
// pair, in (b) well ahead of plain routing.
var targets = func() []target {
	var out []target
	for _, row := range []struct{ ebpf, plain string }{{"ebpf-same", "plain-same"}, {"ebpf-cross", "plain-cross"}} {
		out = append(out,
			target{"a", row.ebpf, floorRow, 0, 0.95},
			target{"a", row.ebpf, floorRow, 1, 0.95},
			target{"a", row.ebpf, floorRow, 2, 1.05},
			target{"a", row.ebpf, floorRow, 3, 1.05},
			target{"b", row.ebpf, row.plain, 0, 1.5},
			target{"b", row.ebpf, row.plain, 1, 1.5},
			target{"b", row.ebpf, row.plain, 4, 2},
		)
	}
	return out
}()

// verdict is a target checked against the measurements.
type verdict struct {
	target
	Got      float64 // measured ratio
	Measured bool    // both rows were measured
	Met      bool
}

func checkTargets(stats []scenarioStats) []verdict {
	var out []verdict
	for _, t := range targets {
		v := verdict{target: t}
		for _, sc := range stats {
			if sc.Scenario != t.Scenario {
				continue
			}
			row, ok1 := sc.row(t.Row)
			base, ok2 := sc.row(t.Base)
			if !ok1 || !ok2 || base.Figures[t.Figure].Median == 0 {
				break
			}
			v.Measured = true
			v.Got = row.Figures[t.Figure].Median / base.Figures[t.Figure].Median
			if figures[t.Figure].Higher {
				v.Met = v.Got >= t.Ratio
			} else {
				v.Met = v.Got <= t.Ratio
			}
		}
		out = append(out, v)
	}
	return out
}

func printTargets(w io.Writer, vs []verdict) {
	fmt.Fprintf(w, "\nTargets\n")
	for _, v := range vs {
		cmp := "≥"
		if !figures[v.Figure].Higher {
			cmp = "≤"
		}
		goal := fmt.Sprintf("(%s) %-10s %-7s vs %-11s %s %.2f×", v.Scenario, v.Row, figures[v.Figure].Name, v.Base, cmp, v.Ratio)
		switch {
		case !v.Measured:
			fmt.Fprintf(w, "  NOT MEASURED  %s\n", goal)
		case v.Met:
			fmt.Fprintf(w, "  met           %s: %.2f×\n", goal, v.Got)
		default:
			fmt.Fprintf(w, "  MISSED        %s: %.2f×\n", goal, v.Got)
		}
	}
}
