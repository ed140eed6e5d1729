package policy

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
)

// PodReport is what `veni policy show POD` prints: the pod as the
// snapshot knows it, its identity, its compiled ruleset and its size.
type PodReport struct {
	Pod      Pod      `json:"pod"`
	Identity string   `json:"identity,omitempty"`
	Ruleset  *Ruleset `json:"ruleset"`
	Size     MapSize  `json:"size"`
}

// Show compiles the pod ref and reports it. May return an error wrapping
// ErrUnknownPod.
func (s *Snapshot) Show(ref PodRef) (*PodReport, error) {
	p, ok := s.podByRef[ref]
	if !ok {
		return nil, fmt.Errorf("show %s: %w", ref, ErrUnknownPod)
	}
	rs := s.compile(p)
	r := &PodReport{Pod: *p, Ruleset: rs, Size: rs.MapSize()}
	if !p.HostNetwork {
		r.Identity = s.identityOf(p)
	}
	return r, nil
}

// WriteText writes the report for a terminal.
func (r *PodReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := &r.Pod
	fmt.Fprintf(tw, "pod %s\taddresses %s\tnode %s\n", p.Ref(), joinAddrs(p.IPs), orNone(p.Node))
	if p.HostNetwork {
		fmt.Fprintf(tw, "host network: NetworkPolicy does not apply (its traffic is the node's)\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "identity %s\n", r.Identity)
	writeDirection(tw, "ingress", "from", &r.Ruleset.Ingress)
	writeDirection(tw, "egress", "to", &r.Ruleset.Egress)
	fmt.Fprintf(tw, "maps: %d LPM entries, %d port rules, ~%d B; identity layout %d entries, ~%d B\n",
		r.Size.LPM.Entries, r.Size.LPM.PortRules, r.Size.LPM.Bytes, r.Size.Identity.Entries, r.Size.Identity.Bytes)
	return tw.Flush()
}

func writeDirection(w io.Writer, dir, verb string, d *Direction) {
	if !d.Isolated {
		fmt.Fprintf(w, "%s: not isolated (no policy selects the pod for %s): everything allowed\n", dir, dir)
		return
	}
	fmt.Fprintf(w, "%s: isolated by %s\n", dir, strings.Join(d.Policies, ", "))
	if len(d.CIDRs) == 0 {
		fmt.Fprintf(w, "  nothing allowed\n")
	}
	for _, e := range d.CIDRs {
		if len(e.Rules) == 0 {
			fmt.Fprintf(w, "  %s %s\tnothing\t(shadows a shorter prefix: an except)\n", verb, e.Prefix)
			continue
		}
		for i, r := range e.Rules {
			pfx := ""
			if i == 0 {
				pfx = verb + " " + e.Prefix.String()
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\n", pfx, r, joinRefs(r.By))
		}
	}
	if len(d.Identities) > 0 {
		fmt.Fprintf(w, "  by identity:\n")
		for _, ir := range d.Identities {
			for i, r := range ir.Rules {
				id := ""
				if i == 0 {
					id = ir.Identity
				}
				fmt.Fprintf(w, "    %s\t%s\t%s\n", id, r, joinRefs(r.By))
			}
		}
	}
}

// WriteText writes the trace for a terminal.
func (t *Trace) WriteText(w io.Writer) error {
	verdict := "denied"
	if t.Allowed {
		verdict = "allowed"
	}
	fmt.Fprintf(w, "%s from %s to %s: %s\n", flowPort(t.Protocol, t.Port), t.From, t.To, verdict)
	fmt.Fprintf(w, "  egress of %s: %s\n", t.From.name(), t.Egress.text())
	fmt.Fprintf(w, "  ingress of %s: %s\n", t.To.name(), t.Ingress.text())
	return nil
}

// String writes "shop/web (10.0.0.2, pod on node-1)".
func (p Party) String() string {
	where := p.Kind
	if p.Node != "" {
		where += " on " + p.Node
	}
	if p.Pod != nil {
		return fmt.Sprintf("%s (%s, %s)", p.Pod, p.IP, where)
	}
	return fmt.Sprintf("%s (%s)", p.IP, where)
}

func (p Party) name() string {
	if p.Pod != nil {
		return p.Pod.String()
	}
	return p.IP.String()
}

func (s Side) text() string {
	if s.Prefix != nil && s.Allowed {
		return fmt.Sprintf("%s [entry %s; all: %s]", s.Reason, s.Prefix, joinRefs(s.By))
	}
	return s.Reason
}

func joinRefs(refs []RuleRef) string {
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = r.String()
	}
	return strings.Join(parts, "; ")
}

func joinAddrs(ips []netip.Addr) string {
	if len(ips) == 0 {
		return "none"
	}
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = ip.String()
	}
	return strings.Join(parts, ",")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
