package cluster

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// The functions in this file are "veni sim" commands, one each, for the
// thin cobra wrappers in package commands: they find the live sim in dir,
// act, and print to w.

// PodAdd is "veni sim pod add": a pod on node through libcni.
func PodAdd(ctx context.Context, w io.Writer, dir, node, namespace, name string) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	p, err := AddPod(ctx, st, node, namespace, name)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s/%s on %s: %s (netns %s, ADD %s)\n", namespace, name, p.Node, p.IP, p.Pod.NetNS, p.AddTook.Round(time.Millisecond))
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

// Connectivity is "veni sim connectivity": TCP between every pair of pods.
// May return an error wrapping ErrConnectivity.
func Connectivity(ctx context.Context, w io.Writer, dir string, timeout time.Duration) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	all, err := ListPods(ctx, st, false, "")
	if err != nil {
		return err
	}
	m, err := Probe(ctx, all, timeout)
	if err != nil {
		return err
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

// Fault is "veni sim fault": inject or clear a fault of the cloud's API.
func Fault(ctx context.Context, w io.Writer, dir string, f FaultRequest) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	if _, err := c.SetFault(ctx, f); err != nil {
		return err
	}
	target := f.Action
	if target == "" {
		target = "every action"
	}
	if f.Clear {
		_, err = fmt.Fprintf(w, "faults cleared on %s\n", target)
		return err
	}
	_, err = fmt.Fprintf(w, "fault on %s: latency %s, throttle %.2f, errors %.2f\n", target, f.Latency.Round(time.Millisecond), f.ThrottleRate, f.ErrorRate)
	return err
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
