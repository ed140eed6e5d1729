package policy

// The oracle: cyclonus's policy engine (github.com/mattfenwick/cyclonus,
// pkg/matcher), imported here only; TestDeps_NoCyclonus keeps it out of
// the binary.
//
// How a flow is put to cyclonus, and where veni's documented choices
// differ from what cyclonus models:
//   - Policies go through JSON into networking/v1 types (veni's kube types
//     have the same shape) and get the API server's defaulting, which
//     cyclonus needs done (it panics on empty policyTypes).
//   - Endpoints are addresses. An address of a pod on the pod network is
//     an InternalPeer with its labels and namespace labels; any other
//     address (nodes, host-network pods, the outside) is external.
//   - A named port resolves on the destination pod: the traffic's
//     ResolvedPortName is the name of the destination's container port
//     with this number and this protocol (cyclonus leaves that to the
//     caller; its prober ignores the protocol, Kubernetes does not).
//     When several container ports share the number and protocol, each
//     name is asked and a direction allows if any does.
//   - cyclonus's label matching differs from Kubernetes's in two places
//     (found by the random comparison): "k NotIn (v)" does not match an
//     object without k (apimachinery's labels.Requirement.Matches and the
//     documentation say it does), and matchLabels {k: ""} matches an
//     object without k (Kubernetes wants k present with an empty value).
//     veni follows Kubernetes. The adapter rewrites each policy into
//     policies meaning the same under Kubernetes semantics that cyclonus
//     evaluates right: matchLabels become In expressions, and a selector
//     with "k NotIn V" becomes two, one with it and one with
//     "k DoesNotExist" (a policy split in two with equal rules selects
//     and allows the same union; a peer split in two is an OR). See
//     TestOracle_LabelQuirks.
//   - cyclonus knows no nodes. veni allows traffic from a pod's own node
//     into the pod whatever its ingress policy (kubelet probes), so the
//     expected ingress verdict is cyclonus's OR "the source is the
//     destination pod's node". Egress from a pod to its node is not
//     exempt, in both.

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/veni-cni/veni/internal/policydefault"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// oracle answers flows of one Input through cyclonus.
type oracle struct {
	in     Input
	policy *matcher.Policy
	pods   map[netip.Addr]*Pod // pod-network pods by address
	nsLbl  map[string]map[string]string
	nodeOf map[string][]netip.Addr
}

func newOracle(tb testing.TB, in Input) *oracle {
	tb.Helper()
	o := &oracle{in: in, pods: make(map[netip.Addr]*Pod), nsLbl: make(map[string]map[string]string), nodeOf: make(map[string][]netip.Addr)}
	var nps []*networkingv1.NetworkPolicy
	for i := range in.Policies {
		b, err := json.Marshal(&in.Policies[i])
		if err != nil {
			tb.Fatal(err)
		}
		var np networkingv1.NetworkPolicy
		if err := json.Unmarshal(b, &np); err != nil {
			tb.Fatalf("policy %s into networking/v1: %v\n%s", in.Policies[i].Name, err, b)
		}
		policydefault.Apply(&np)
		nps = append(nps, cyclonusSafe(&np)...)
	}
	o.policy = matcher.BuildNetworkPolicies(false, nps)
	for _, n := range in.Namespaces {
		l := map[string]string{LabelNamespaceName: n.Name}
		for k, v := range n.Labels {
			l[k] = v
		}
		o.nsLbl[n.Name] = l
	}
	for i := range in.Pods {
		p := &in.Pods[i]
		if _, ok := o.nsLbl[p.Namespace]; !ok {
			o.nsLbl[p.Namespace] = map[string]string{LabelNamespaceName: p.Namespace}
		}
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			o.pods[ip] = p
		}
	}
	for _, n := range in.Nodes {
		o.nodeOf[n.Name] = n.IPs
	}
	return o
}

// cyclonusSafe returns policies equivalent to np under Kubernetes label
// semantics whose selectors cyclonus matches as Kubernetes does.
func cyclonusSafe(np *networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
	peers := func(in []networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer {
		if in == nil {
			return nil
		}
		out := []networkingv1.NetworkPolicyPeer{}
		for _, p := range in {
			if p.IPBlock != nil {
				out = append(out, p)
				continue
			}
			pods, nss := []*metav1.LabelSelector{nil}, []*metav1.LabelSelector{nil}
			if p.PodSelector != nil {
				pods = selectorVariants(*p.PodSelector)
			}
			if p.NamespaceSelector != nil {
				nss = selectorVariants(*p.NamespaceSelector)
			}
			for _, ps := range pods {
				for _, ns := range nss {
					out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: ps, NamespaceSelector: ns})
				}
			}
		}
		return out
	}
	for i := range np.Spec.Ingress {
		np.Spec.Ingress[i].From = peers(np.Spec.Ingress[i].From)
	}
	for i := range np.Spec.Egress {
		np.Spec.Egress[i].To = peers(np.Spec.Egress[i].To)
	}
	var out []*networkingv1.NetworkPolicy
	for i, sel := range selectorVariants(np.Spec.PodSelector) {
		c := np.DeepCopy()
		c.Name = fmt.Sprintf("%s.%d", np.Name, i)
		c.Spec.PodSelector = *sel
		out = append(out, c)
	}
	return out
}

// selectorVariants returns selectors whose union matches what s matches,
// using no matchLabels and no NotIn on an absent key.
func selectorVariants(s metav1.LabelSelector) []*metav1.LabelSelector {
	var exprs []metav1.LabelSelectorRequirement
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		exprs = append(exprs, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{s.MatchLabels[k]}})
	}
	out := []*metav1.LabelSelector{{}}
	for _, e := range append(exprs, s.MatchExpressions...) {
		var next []*metav1.LabelSelector
		for _, v := range out {
			with := v.DeepCopy()
			with.MatchExpressions = append(with.MatchExpressions, e)
			next = append(next, with)
			if e.Operator == metav1.LabelSelectorOpNotIn {
				absent := v.DeepCopy()
				absent.MatchExpressions = append(absent.MatchExpressions, metav1.LabelSelectorRequirement{Key: e.Key, Operator: metav1.LabelSelectorOpDoesNotExist})
				next = append(next, absent)
			}
		}
		out = next
	}
	return out
}

func (o *oracle) peer(ip netip.Addr) *matcher.TrafficPeer {
	tp := &matcher.TrafficPeer{IP: ip.String()}
	if p, ok := o.pods[ip]; ok {
		tp.Internal = &matcher.InternalPeer{PodLabels: p.Labels, NamespaceLabels: o.nsLbl[p.Namespace], Namespace: p.Namespace}
		if tp.Internal.PodLabels == nil {
			tp.Internal.PodLabels = map[string]string{}
		}
	}
	return tp
}

// verdict returns cyclonus's egress and ingress verdicts, with veni's
// node exemption applied to ingress.
func (o *oracle) verdict(src, dst netip.Addr, proto Protocol, port uint16) (egress, ingress bool) {
	// cyclonus takes one resolved name; a destination may declare the
	// same number and protocol under several names (or none), in several
	// containers. A flow is allowed per direction when any of them is.
	names := []string{""}
	dp, dstIsPod := o.pods[dst]
	if dstIsPod {
		for _, cp := range dp.Ports {
			if cp.Port == port && cp.Protocol == proto && cp.Name != "" {
				names = append(names, cp.Name)
			}
		}
	}
	for _, name := range names {
		tr := &matcher.Traffic{Source: o.peer(src), Destination: o.peer(dst), ResolvedPort: int(port), ResolvedPortName: name, Protocol: v1.Protocol(proto.String())}
		r := o.policy.IsTrafficAllowed(tr)
		egress = egress || r.Egress.IsAllowed()
		ingress = ingress || r.Ingress.IsAllowed()
	}
	if dstIsPod && slices.Contains(o.nodeOf[dp.Node], src) {
		ingress = true
	}
	return egress, ingress
}

// flow is one flow between addresses.
type flow struct {
	src, dst netip.Addr
	proto    Protocol
	port     uint16
}

func (f flow) String() string { return fmt.Sprintf("%s -> %s %s/%d", f.src, f.dst, f.proto, f.port) }

// compareOracle checks every flow against cyclonus, one direction at a
// time, and reports each disagreement with a reproducer. It returns the
// number of flows compared.
func compareOracle(tb testing.TB, in Input, flows []flow) int {
	tb.Helper()
	s := mustSnapshot(tb, in)
	o := newOracle(tb, in)
	tr := s.Tracer()
	bad := 0
	for _, f := range flows {
		wantE, wantI := o.verdict(f.src, f.dst, f.proto, f.port)
		got, err := tr.Trace(IPEndpoint(f.src), IPEndpoint(f.dst), f.proto, f.port)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if got.Egress.Allowed == wantE && got.Ingress.Allowed == wantI {
			continue
		}
		bad++
		if bad <= 3 {
			tb.Errorf("disagreement on %s: veni egress=%v ingress=%v, cyclonus egress=%v ingress=%v\n%s",
				f, got.Egress.Allowed, got.Ingress.Allowed, wantE, wantI, reproducer(in, f, got))
		}
	}
	if bad > 3 {
		tb.Errorf("%d disagreements in all (first 3 shown)", bad)
	}
	return len(flows)
}

// reproducer prints what a human needs to replay one flow: the policies,
// the two ends and veni's trace.
func reproducer(in Input, f flow, got *Trace) string {
	var b strings.Builder
	pols, _ := yaml.Marshal(in.Policies)
	fmt.Fprintf(&b, "--- policies\n%s", pols)
	for _, ip := range []netip.Addr{f.src, f.dst} {
		for _, p := range in.Pods {
			if slices.Contains(p.IPs, ip) {
				pj, _ := json.Marshal(p)
				fmt.Fprintf(&b, "--- pod %s\n", pj)
			}
		}
		for _, n := range in.Nodes {
			if slices.Contains(n.IPs, ip) {
				fmt.Fprintf(&b, "--- node %s %v\n", n.Name, n.IPs)
			}
		}
	}
	for _, n := range in.Namespaces {
		fmt.Fprintf(&b, "--- namespace %s %v\n", n.Name, n.Labels)
	}
	tj, _ := json.MarshalIndent(got, "", "  ")
	fmt.Fprintf(&b, "--- veni's trace\n%s\n", tj)
	return b.String()
}

// allFlows returns every flow between the addresses of in's pods and
// nodes and the extra addresses, same family only, on each port of each
// protocol.
func allFlows(in Input, extra []netip.Addr, protos []Protocol, ports []uint16) []flow {
	addrs := slices.Clone(extra)
	for _, p := range in.Pods {
		addrs = append(addrs, p.IPs...)
	}
	for _, n := range in.Nodes {
		addrs = append(addrs, n.IPs...)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	var out []flow
	for _, s := range addrs {
		for _, d := range addrs {
			if s.Is4() != d.Is4() {
				continue
			}
			for _, pr := range protos {
				for _, pt := range ports {
					out = append(out, flow{s, d, pr, pt})
				}
			}
		}
	}
	return out
}
