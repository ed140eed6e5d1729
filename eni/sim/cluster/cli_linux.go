package cluster

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/pods"
)

// The functions in this file are "veni sim" commands, one each, for the
// thin cobra wrappers in package commands: they find the live sim in dir,
// act, and print to w.

// PodAdd is "veni sim pod add": a pod on node through libcni.
// With sendUDP valid, the pod sends numbered datagrams to it from the
// first instant its namespace routes (pods.StartUDPStream, for a second),
// and the command reports when the first left.
func PodAdd(ctx context.Context, w io.Writer, dir, node, namespace, name string, spec PodSpec, sendUDP netip.AddrPort) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	var (
		stream *pods.UDPStream
		born   func(string)
		start  time.Time
	)
	if sendUDP.IsValid() {
		born = func(netns string) {
			start = time.Now()
			stream = pods.StartUDPStream(netns, sendUDP, time.Second)
		}
	}
	p, err := addPod(ctx, st, node, namespace, name, spec, born)
	if err != nil {
		if stream != nil {
			stream.Wait()
		}
		return err
	}
	if _, err = fmt.Fprintf(w, "%s/%s on %s: %s (netns %s, ADD %s)\n", namespace, name, p.Node, p.IP, p.Pod.NetNS, p.AddTook.Round(time.Millisecond)); err != nil {
		return err
	}
	if stream == nil {
		return nil
	}
	stream.Wait()
	if stream.Err != nil {
		return stream.Err
	}
	_, err = fmt.Fprintf(w, "udp stream to %s: datagram 0 sent %s after the namespace was made, %d sent in 1s\n", sendUDP, stream.First.Sub(start).Round(time.Microsecond), stream.Sent)
	return err
}

// PodDel is "veni sim pod del": CNI DEL, then the pod's namespace goes.
func PodDel(ctx context.Context, dir, node, namespace, name string) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	return DelPod(ctx, st, node, namespace, name)
}

// PodList is "veni sim pod list": every pod with its node, address, ENI,
// vSwitch and ADD latency.
func PodList(ctx context.Context, w io.Writer, dir string) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	all, err := ListPods(ctx, st, true, "")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tIP\tENI\tVSWITCH\tADD")
	for _, p := range all {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", p.Pod.Namespace, p.Pod.Name, p.Node, p.IP, p.ENI, p.VSwitch, p.AddTook.Round(time.Millisecond))
	}
	return tw.Flush()
}

// Connectivity is "veni sim connectivity": each protocol and port from
// every pod (and node, with o.FromNodes) to every pod, printed as a table
// or, with asJSON, as MatrixJSON. May return an error wrapping
// ErrConnectivity.
func Connectivity(ctx context.Context, w io.Writer, dir string, o ProbeOptions, asJSON bool) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	all, err := ListPods(ctx, st, false, "")
	if err != nil {
		return err
	}
	m, err := Probe(ctx, all, st.Nodes, o)
	if err != nil {
		return err
	}
	if asJSON {
		return m.PrintJSON(w)
	}
	return m.Print(w)
}

// Env is "veni sim env": the exports a libcni client needs to add pods on
// node.
func Env(w io.Writer, dir, node string) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	n, err := st.FindNode(node)
	if err != nil {
		return err
	}
	p := st.Paths(n.Name)
	_, err = fmt.Fprintf(w, "export CNI_PATH=%s\nexport NETCONFPATH=%s\nexport VENI_CONFIG=%s\n",
		shellQuote(st.CNIBin()), shellQuote(p.ConfDir), shellQuote(p.Config))
	return err
}

// Fault is "veni sim fault": apply f to the cloud's faults (or, with show,
// change nothing) and print the faults in force and what was injected.
func Fault(ctx context.Context, w io.Writer, dir string, f sim.FaultRequest, show bool) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	var st sim.FaultState
	if show {
		st, err = c.Faults(ctx)
	} else {
		st, err = c.SetFault(ctx, f)
	}
	if err != nil {
		return err
	}
	printFaults(w, st)
	return nil
}

// printFaults writes the faults in force, one line each, and the count of
// each kind injected so far.
func printFaults(w io.Writer, s sim.FaultState) {
	fmt.Fprintln(w, "faults in force:")
	n := 0
	for _, action := range slices.Sorted(maps.Keys(s.Actions)) {
		f := s.Actions[action]
		name := action
		if name == "" {
			name = "every action"
		}
		var parts []string
		if f.Latency > 0 {
			parts = append(parts, "latency "+f.Latency.String())
		}
		if f.ThrottleRate > 0 {
			parts = append(parts, fmt.Sprintf("throttle %.2f (%s)", f.ThrottleRate, cmp.Or(f.ThrottleCode, sim.CodeThrottlingUser)))
		}
		if f.ErrorRate > 0 {
			code := f.ErrorCode
			if code == "" {
				code = sim.CodeInternalError
			}
			parts = append(parts, fmt.Sprintf("%s %.2f", code, f.ErrorRate))
		}
		fmt.Fprintf(w, "  %s: %s\n", name, strings.Join(parts, ", "))
		n++
	}
	switch {
	case s.Attach.Never:
		fmt.Fprintln(w, "  attach: held in Attaching until cleared")
		n++
	case s.Attach.Delay > 0:
		fmt.Fprintf(w, "  attach: takes %s\n", s.Attach.Delay)
		n++
	}
	if s.DescribeLag > 0 {
		fmt.Fprintf(w, "  describe: lags %s behind writes\n", s.DescribeLag)
		n++
	}
	for _, id := range slices.Sorted(maps.Keys(s.VSwitches)) {
		v := s.VSwitches[id]
		fmt.Fprintf(w, "  vswitch %s: at most %d more addresses (%d left)\n", id, v.MaxMore, v.Left)
		n++
	}
	if n == 0 {
		fmt.Fprintln(w, "  none")
	}
	fmt.Fprint(w, "injected:")
	if len(s.Injected) == 0 {
		fmt.Fprint(w, " none")
	}
	for _, kind := range slices.Sorted(maps.Keys(s.Injected)) {
		fmt.Fprintf(w, " %s %d", kind, s.Injected[kind])
	}
	fmt.Fprintln(w)
}

// shellQuote quotes s for a POSIX shell unless it needs none.
func shellQuote(s string) string {
	for _, c := range s {
		if !(c == '/' || c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// Quota is "veni sim quota": with change, replace the account's API quotas
// by what change makes of the ones in force; then print them.
func Quota(ctx context.Context, w io.Writer, dir string, change func(sim.Quotas) (sim.Quotas, error)) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	st, err := c.Quotas(ctx)
	if err != nil {
		return err
	}
	if change != nil {
		q, err := change(st.Quotas)
		if err != nil {
			return err
		}
		if st, err = c.SetQuotas(ctx, q); err != nil {
			return err
		}
	}
	printQuotas(w, st, time.Now())
	return nil
}

// printQuotas writes each action's budget with this window's calls, and
// what is refused until the window ends.
func printQuotas(w io.Writer, st sim.ThrottlingState, now time.Time) {
	q := st.Quotas
	if !q.On() {
		fmt.Fprintln(w, "api quotas: off (nothing is throttled but by a fault)")
		return
	}
	win := q.Window
	if win <= 0 {
		win = sim.DefaultQuotaWindow
	}
	var cur sim.QuotaWindow
	if n := len(st.Windows); n > 0 && now.Before(st.Windows[n-1].Start.Add(win)) {
		cur = st.Windows[n-1]
	}
	acct := "none beyond the actions' own"
	if q.Account > 0 {
		acct = fmt.Sprintf("%d", q.Account)
	}
	fmt.Fprintf(w, "api quotas per %s window, for the whole account (account-wide: %s):\n", win, acct)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tQUOTA\tTHIS WINDOW\tREFUSED")
	for _, a := range slices.Sorted(maps.Keys(q.PerAPI)) {
		refused := "-"
		if until, ok := st.Blocked[a]; ok {
			refused = "until " + until.Format("15:04:05Z")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", a, q.PerAPI[a], cur.Calls[a], refused)
	}
	_ = tw.Flush()
}
