package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// percentile returns the nearest-rank q-th percentile (0 < q <= 100) of ds,
// or 0 for no samples.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*q/100 + 0.9999999)
	return s[min(max(rank, 1), len(s))-1]
}

// podsPerSecond is completed ADDs per wall second of the ADD phases.
func podsPerSecond(s *samples) float64 {
	if s.addWall <= 0 {
		return 0
	}
	return float64(len(s.add)) / s.addWall.Seconds()
}

// row is one system's line of the latency table.
type row struct {
	system                         string
	addP50, addP99, delP50, delP99 time.Duration
	addCPU, delCPU                 time.Duration // mean plugin CPU per ADD (DEL)
	podsPerSec                     float64
}

func rowOf(system string, s *samples) row {
	return row{
		system: system,
		addP50: percentile(s.add, 50), addP99: percentile(s.add, 99),
		delP50: percentile(s.del, 50), delP99: percentile(s.del, 99),
		addCPU: perCall(s.addCPU, len(s.add)), delCPU: perCall(s.delCPU, len(s.del)),
		podsPerSec: podsPerSecond(s),
	}
}

func perCall(total time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return total / time.Duration(n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// writeLatencyReport prints the ADD/DEL table with ratios to the baseline
// and says which targets veni meets.
func writeLatencyReport(w io.Writer, o options, phases []phaseResult) {
	fmt.Fprintf(w, "\nCNI ADD/DEL through libcni (one AddNetworkList/DelNetworkList timed per pod), %s: %d pods at parallelism 1, %d at 8, batches of %d, systems interleaved\n",
		time.Now().Format(time.RFC3339), o.n1, o.n8, o.batch)
	dp := o.datapath
	if dp == "" {
		dp = "veni's default"
	}
	fmt.Fprintf(w, "veni: one sim node per row, daemon running, pool >= %d free; row veni has datapath %s, veni/X datapath X\n", o.batch, dp)
	fmt.Fprintf(w, "ratios: divided by %s at the same parallelism\n", refBaseline)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PAR\tSYSTEM\tADD p50 ms\tADD p99 ms\tDEL p50 ms\tDEL p99 ms\tPODS/S\tADD cpu ms\tDEL cpu ms\t| ADD p50\tDEL p50\tPODS/S\tADD cpu\t")
	rows := map[int]map[string]row{}
	for _, ph := range phases {
		rows[ph.par] = map[string]row{}
		for _, name := range ph.systems {
			rows[ph.par][name] = rowOf(name, ph.res[name])
		}
		base, ok := rows[ph.par][refBaseline]
		for _, name := range ph.systems {
			r := rows[ph.par][name]
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t", ph.par, name, ms(r.addP50), ms(r.addP99), ms(r.delP50), ms(r.delP99), r.podsPerSec, ms(r.addCPU), ms(r.delCPU))
			if ok {
				fmt.Fprintf(tw, "| %s\t%s\t%s\t%s\t", ratio(float64(r.addP50), float64(base.addP50)), ratio(float64(r.delP50), float64(base.delP50)),
					ratio(r.podsPerSec, base.podsPerSec), ratio(float64(r.addCPU), float64(base.addCPU)))
			} else {
				fmt.Fprint(tw, "| -\t-\t-\t-\t")
			}
			fmt.Fprintln(tw)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "cpu: user+sys of the plugin processes per call (veni's daemon not included); it does not depend on what else the machine runs, wall times do")
	fmt.Fprintln(w, "\ntargets for veni against "+refBaseline+":")
	for _, t := range targets(rows) {
		fmt.Fprintln(w, "  "+t)
	}
	if t := dualTargets(rows); len(t) > 0 {
		fmt.Fprintln(w, "\ntargets for veni/dual (ip_stack dual, plain datapath) against veni/plain:")
		for _, t := range t {
			fmt.Fprintln(w, "  "+t)
		}
	}
	if t := ipv6Targets(rows); len(t) > 0 {
		fmt.Fprintln(w, "\ntargets for veni/ipv6 (ip_stack ipv6, plain datapath) against veni/plain:")
		for _, t := range t {
			fmt.Fprintln(w, "  "+t)
		}
	}
	if t := policyTargets(rows); len(t) > 0 {
		fmt.Fprintln(w, "\ntargets for "+policyRow+" (100 policies, 1,000 rules select every pod) against veni:")
		for _, t := range t {
			fmt.Fprintln(w, "  "+t)
		}
	}
}

// dualTargets checks dual stack's ADD goal: a dual-stack pod's ADD at
// most 1.15x an IPv4-only pod's, p50, same datapath, at every parallelism.
func dualTargets(rows map[int]map[string]row) []string {
	return addRatioTargets(rows, "veni/dual", "veni/plain", 1.15)
}

// ipv6Targets checks an IPv6-only pod's ADD against an IPv4-only pod's,
// p50, same datapath, at every parallelism, with dual stack's goal (an
// IPv6-only pod's plumbing is no more than a dual-stack pod's).
func ipv6Targets(rows map[int]map[string]row) []string {
	return addRatioTargets(rows, "veni/ipv6", "veni/plain", 1.15)
}

// policyTargets checks NetworkPolicy's ADD goal: the ADD of a pod 1,000
// rules select at most 1.10x the ADD of a pod none selects, p50, at every
// parallelism.
func policyTargets(rows map[int]map[string]row) []string {
	return addRatioTargets(rows, policyRow, "veni", 1.10)
}

// addRatioTargets checks that row's ADD p50 is at most limit times ref's,
// at every parallelism both rows ran.
func addRatioTargets(rows map[int]map[string]row, name, ref string, limit float64) []string {
	var out []string
	for _, par := range []int{1, 8} {
		r, okR := rows[par][name]
		v, okV := rows[par][ref]
		if !okR || !okV || v.addP50 == 0 {
			continue
		}
		add := float64(r.addP50) / float64(v.addP50)
		verdict := "met"
		if add > limit {
			verdict = "MISSED"
		}
		out = append(out, fmt.Sprintf("par %d  ADD p50 %.2fx (<= %.2fx): %s", par, add, limit, verdict))
	}
	return out
}

// targets checks veni's goals: ADD and DEL p50 at most the baseline's (at
// every parallelism), and at least 1.5x its pods/s at parallelism 8.
func targets(rows map[int]map[string]row) []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, par := range []int{1, 8} {
		v, okV := rows[par]["veni"]
		b, okB := rows[par][refBaseline]
		if !okV || !okB || b.addP50 == 0 || b.delP50 == 0 || b.podsPerSec == 0 {
			continue
		}
		add := float64(v.addP50) / float64(b.addP50)
		del := float64(v.delP50) / float64(b.delP50)
		out = append(out,
			fmt.Sprintf("par %d  ADD p50 %.2fx (<= 1.00x): %s", par, add, verdict(add <= 1.0)),
			fmt.Sprintf("par %d  DEL p50 %.2fx (<= 1.00x): %s", par, del, verdict(del <= 1.0)))
		if par == 8 {
			pps := v.podsPerSec / b.podsPerSec
			out = append(out, fmt.Sprintf("par 8  pods/s  %.2fx (>= 1.50x): %s", pps, verdict(pps >= 1.5)))
		}
	}
	return out
}
