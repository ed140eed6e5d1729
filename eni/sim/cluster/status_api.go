package cluster

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

// statusWindows is how many recent throttling windows "veni sim status"
// prints, one line each (-o json has them all).
const statusWindows = 5

// printAPI writes the cloud's OpenAPI counters: per action its budget,
// what the current window used, and the calls, throttles and errors so far;
// then the account's budget, what is blocked, and the recent windows.
func printAPI(w io.Writer, snap sim.Snapshot, now time.Time) {
	th := snap.Throttling
	win := th.Quotas.Window
	if win <= 0 {
		win = sim.DefaultQuotaWindow
	}
	var cur sim.QuotaWindow
	if n := len(th.Windows); n > 0 && !now.Before(th.Windows[n-1].Start) && now.Before(th.Windows[n-1].Start.Add(win)) {
		cur = th.Windows[n-1]
	}
	actions := slices.Sorted(maps.Keys(snap.Calls))
	for a := range th.Quotas.PerAPI {
		if _, ok := snap.Calls[a]; !ok {
			actions = append(actions, a)
		}
	}
	slices.Sort(actions)
	unit := "/" + windowWord(win)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "API ACTION\tQUOTA%s\tTHIS %s\tCALLS\tTHROTTLED\tOVER QUOTA\tFAULTED\tERRORS\n", unit, strings.ToUpper(windowWord(win)))
	total := sim.ActionStats{}
	for _, a := range actions {
		st := snap.Calls[a]
		quota := "-"
		if n := th.Quotas.PerAPI[a]; n > 0 {
			quota = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", a, quota, cur.Calls[a], st.Calls, st.Throttled, st.OverQuota, st.Faulted, st.Errors)
		total.Calls += st.Calls
		total.Throttled += st.Throttled
		total.OverQuota += st.OverQuota
		total.Faulted += st.Faulted
		total.Errors += st.Errors
	}
	acct := "-"
	if th.Quotas.Account > 0 {
		acct = fmt.Sprint(th.Quotas.Account)
	}
	curTotal := 0
	for _, n := range cur.Calls {
		curTotal += n
	}
	fmt.Fprintf(tw, "(account)\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", acct, curTotal, total.Calls, total.Throttled, total.OverQuota, total.Faulted, total.Errors)
	_ = tw.Flush()
	switch {
	case !th.Quotas.On():
		fmt.Fprintln(w, "api quotas: off (nothing is throttled but by a fault)")
	case len(th.Blocked) > 0:
		for _, a := range slices.Sorted(maps.Keys(th.Blocked)) {
			fmt.Fprintf(w, "throttled: %s refused until %s (%s left)\n", a, th.Blocked[a].Format("15:04:05Z"), th.Blocked[a].Sub(now).Round(time.Second))
		}
	}
	first := max(0, len(th.Windows)-statusWindows)
	for _, win := range th.Windows[first:] {
		calls, throttled := 0, 0
		for _, n := range win.Calls {
			calls += n
		}
		for _, n := range win.Throttled {
			throttled += n
		}
		fmt.Fprintf(w, "  %s  %d calls, %d throttled  %s\n", win.Start.Format("15:04:05Z"), calls, throttled, topActions(win, 3))
	}
}

// topActions names the busiest actions of a window, with their counts.
func topActions(win sim.QuotaWindow, n int) string {
	actions := slices.Collect(maps.Keys(win.Calls))
	slices.SortFunc(actions, func(a, b string) int {
		if win.Calls[a] != win.Calls[b] {
			return win.Calls[b] - win.Calls[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, n)
	for _, a := range actions[:min(n, len(actions))] {
		p := fmt.Sprintf("%s %d", a, win.Calls[a])
		if t := win.Throttled[a]; t > 0 {
			p += fmt.Sprintf(" (%d throttled)", t)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// windowWord is "min" for Alibaba's minute, else the window's length.
func windowWord(d time.Duration) string {
	if d == time.Minute {
		return "min"
	}
	return d.String()
}
