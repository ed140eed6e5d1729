package policy

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/veni-cni/veni/kube"
)

var (
	randomWorlds = flag.Int("policy.worlds", 150, "random worlds TestSnapshot_Trace_Random compares with cyclonus")
	randomSeed   = flag.Uint64("policy.seed", 1, "seed of TestSnapshot_Trace_Random")
)

// TestSnapshot_Trace_Random compares veni with cyclonus on random worlds:
// namespaces, pods (labels, container ports, host network, dual stack),
// policies (selectors, ipBlocks with excepts, named and numbered ports,
// ranges, protocols, every policyTypes form), every flow between their
// addresses. A disagreement is shrunk to a minimal reproducer. It also
// checks, on the same flows, that the identity-keyed split of each
// compiled direction decides as the LPM table does, and that compiling is
// deterministic whatever the input order.
func TestSnapshot_Trace_Random(t *testing.T) {
	worlds, flows := *randomWorlds, 0
	if testing.Short() || raceEnabled {
		worlds = min(worlds, 20)
	}
	for w := range worlds {
		seed := *randomSeed*1000003 + uint64(w)
		r := rand.New(rand.NewPCG(seed, 0x7665_6e69))
		in := randomWorld(r)
		fl := randomFlows(r, in)
		if n, bad := compareFlows(t, in, fl); bad {
			t.Fatalf("world %d (-policy.seed=%d): disagreement, see above", w, *randomSeed)
		} else {
			flows += n
		}
		checkSplit(t, in, fl)
		checkDeterministic(t, r, in)
	}
	t.Logf("%d random worlds, %d flows compared with cyclonus, no disagreement", worlds, flows)
}

// compareFlows compares each flow; on the first disagreement it shrinks
// the world and reports a minimal reproducer.
func compareFlows(tb testing.TB, in Input, flows []flow) (int, bool) {
	tb.Helper()
	s := mustSnapshot(tb, in)
	o := newOracle(tb, in)
	tr := s.Tracer()
	for _, f := range flows {
		wantE, wantI := o.verdict(f.src, f.dst, f.proto, f.port)
		got, err := tr.Trace(IPEndpoint(f.src), IPEndpoint(f.dst), f.proto, f.port)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if got.Egress.Allowed != wantE || got.Ingress.Allowed != wantI {
			small := shrink(tb, in, f)
			got, wantE, wantI := traceBoth(tb, small, f)
			tb.Errorf("disagreement on %s: veni egress=%v ingress=%v, cyclonus egress=%v ingress=%v\nminimal reproducer:\n%s",
				f, got.Egress.Allowed, got.Ingress.Allowed, wantE, wantI, reproducer(small, f, got))
			return 0, true
		}
	}
	return len(flows), false
}

func traceBoth(tb testing.TB, in Input, f flow) (*Trace, bool, bool) {
	s, err := New(in)
	if err != nil {
		return nil, false, false
	}
	got, err := s.Trace(IPEndpoint(f.src), IPEndpoint(f.dst), f.proto, f.port)
	if err != nil {
		return nil, false, false
	}
	e, i := newOracle(tb, in).verdict(f.src, f.dst, f.proto, f.port)
	return got, e, i
}

func disagrees(tb testing.TB, in Input, f flow) bool {
	got, e, i := traceBoth(tb, in, f)
	return got != nil && (got.Egress.Allowed != e || got.Ingress.Allowed != i)
}

// shrink removes policies, rules, peers, ports and pods while the flow
// still disagrees.
func shrink(tb testing.TB, in Input, f flow) Input {
	try := func(cand Input) bool {
		if disagrees(tb, cand, f) {
			in = cand
			return true
		}
		return false
	}
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(in.Policies); i++ {
			c := in
			c.Policies = slices.Delete(slices.Clone(in.Policies), i, i+1)
			if try(c) {
				changed, i = true, i-1
			}
		}
		for i := 0; i < len(in.Pods); i++ {
			if slices.Contains(in.Pods[i].IPs, f.src) || slices.Contains(in.Pods[i].IPs, f.dst) {
				continue
			}
			c := in
			c.Pods = slices.Delete(slices.Clone(in.Pods), i, i+1)
			if try(c) {
				changed, i = true, i-1
			}
		}
		for pi := range in.Policies {
			for _, edit := range policyEdits(in.Policies[pi]) {
				c := in
				c.Policies = slices.Clone(in.Policies)
				c.Policies[pi] = edit
				if try(c) {
					changed = true
					break
				}
			}
		}
	}
	return in
}

// policyEdits returns copies of p each missing one rule, peer or port.
func policyEdits(p kube.NetworkPolicy) []kube.NetworkPolicy {
	var out []kube.NetworkPolicy
	clone := func() kube.NetworkPolicy {
		var c kube.NetworkPolicy
		b, _ := json.Marshal(p)
		_ = json.Unmarshal(b, &c)
		return c
	}
	for i := range p.Spec.Ingress {
		c := clone()
		c.Spec.Ingress = slices.Delete(c.Spec.Ingress, i, i+1)
		out = append(out, c)
		for j := range p.Spec.Ingress[i].From {
			c := clone()
			c.Spec.Ingress[i].From = slices.Delete(c.Spec.Ingress[i].From, j, j+1)
			out = append(out, c)
		}
		for j := range p.Spec.Ingress[i].Ports {
			c := clone()
			c.Spec.Ingress[i].Ports = slices.Delete(c.Spec.Ingress[i].Ports, j, j+1)
			out = append(out, c)
		}
	}
	for i := range p.Spec.Egress {
		c := clone()
		c.Spec.Egress = slices.Delete(c.Spec.Egress, i, i+1)
		out = append(out, c)
		for j := range p.Spec.Egress[i].To {
			c := clone()
			c.Spec.Egress[i].To = slices.Delete(c.Spec.Egress[i].To, j, j+1)
			out = append(out, c)
		}
		for j := range p.Spec.Egress[i].Ports {
			c := clone()
			c.Spec.Egress[i].Ports = slices.Delete(c.Spec.Egress[i].Ports, j, j+1)
			out = append(out, c)
		}
	}
	return out
}

// checkSplit checks that Identities plus Blocks decide every flow as
// CIDRs does, with addresses mapped to identities as a datapath's ip2id
// would (pods by IdentityOf, the endpoint's node by HostIdentity).
func checkSplit(tb testing.TB, in Input, flows []flow) {
	tb.Helper()
	s := mustSnapshot(tb, in)
	tr := s.Tracer()
	idOf := func(ip netip.Addr, endpoint *Pod) string {
		if p, ok := s.podByIP[ip]; ok {
			return IdentityOf(p)
		}
		if n := s.nodes[endpoint.Node]; n != nil && slices.Contains(n.IPs, ip) {
			return HostIdentity
		}
		return ""
	}
	check := func(pod *Pod, d *Direction, peer netip.Addr, f flow) {
		_, byCIDR, _ := d.Lookup(peer, f.proto, f.port)
		_, byBlock, _ := lookup(d.Blocks, peer, f.proto, f.port)
		byID := false
		if k := idOf(peer, pod); k != "" {
			for _, ir := range d.Identities {
				if ir.Identity == k && len(allowing(ir.Rules, f.proto, f.port)) > 0 {
					byID = true
				}
			}
		}
		if (len(byCIDR) > 0) != (byID || len(byBlock) > 0) {
			tb.Errorf("%s %s: CIDRs allow=%v, identities=%v blocks=%v\n%s", pod.Ref(), f, len(byCIDR) > 0, byID, len(byBlock) > 0, reproducer(in, f, nil))
		}
	}
	for _, f := range flows {
		if p, ok := s.podByIP[f.src]; ok {
			check(p, &tr.ruleset(p).Egress, f.dst, f)
		}
		if p, ok := s.podByIP[f.dst]; ok {
			check(p, &tr.ruleset(p).Ingress, f.src, f)
		}
	}
}

// checkDeterministic compiles every pod from the input and from a
// shuffled copy, one by one and with CompileAll (which shares directions
// between pods alike), and wants equal rulesets.
func checkDeterministic(tb testing.TB, r *rand.Rand, in Input) {
	tb.Helper()
	sh := in
	sh.Pods, sh.Policies, sh.Namespaces = slices.Clone(in.Pods), slices.Clone(in.Policies), slices.Clone(in.Namespaces)
	r.Shuffle(len(sh.Pods), func(i, j int) { sh.Pods[i], sh.Pods[j] = sh.Pods[j], sh.Pods[i] })
	r.Shuffle(len(sh.Policies), func(i, j int) { sh.Policies[i], sh.Policies[j] = sh.Policies[j], sh.Policies[i] })
	r.Shuffle(len(sh.Namespaces), func(i, j int) { sh.Namespaces[i], sh.Namespaces[j] = sh.Namespaces[j], sh.Namespaces[i] })
	a, b := mustSnapshot(tb, in), mustSnapshot(tb, sh)
	var refs []PodRef
	for _, p := range sh.Pods {
		refs = append(refs, p.Ref())
	}
	all, err := b.CompileAll(refs)
	if err != nil {
		tb.Fatal(err)
	}
	for i, ref := range refs {
		ra, _ := a.Compile(ref)
		rb, _ := b.Compile(ref)
		if !reflect.DeepEqual(ra, rb) {
			ja, _ := json.Marshal(ra)
			jb, _ := json.Marshal(rb)
			tb.Fatalf("%s compiles differently after shuffling the input:\n%s\n%s", ref, ja, jb)
		}
		if !reflect.DeepEqual(ra, all[i]) {
			ja, _ := json.Marshal(ra)
			jb, _ := json.Marshal(all[i])
			tb.Fatalf("%s: CompileAll differs from Compile:\n%s\n%s", ref, ja, jb)
		}
	}
}

// randomFlows returns every same-family pair of the world's addresses and
// a few outside ones, each with every protocol on a few ports (those the
// world names, their neighbours, and a random one).
func randomFlows(r *rand.Rand, in Input) []flow {
	ports := []uint16{53, 80, 443, 999, 1000, 1500, 2000, 2001, 8080, 9090, uint16(1 + r.IntN(65535))}
	extra := []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("10.1.9.9"), netip.MustParseAddr("10.2.0.7"), netip.MustParseAddr("2001:db8::5")}
	all := allFlows(in, extra, []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP}, ports)
	// Keep a third of the port choices per pair to bound the run time.
	out := all[:0]
	for _, f := range all {
		if r.IntN(3) == 0 {
			out = append(out, f)
		}
	}
	return out
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func randomWorld(r *rand.Rand) Input {
	in := Input{Nodes: []Node{
		{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("fd01::1")}},
		{Name: "n2", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}},
	}}
	nss := []string{"x", "y", "z", "w"}[:2+r.IntN(3)]
	for ni, ns := range nss {
		labels := map[string]string{}
		if r.IntN(2) == 0 {
			labels["team"] = pick(r, "a", "b")
		}
		if r.IntN(2) == 0 {
			labels["env"] = pick(r, "prod", "dev")
		}
		in.Namespaces = append(in.Namespaces, Namespace{Name: ns, Labels: labels})
		for i := range 1 + r.IntN(4) {
			p := Pod{Namespace: ns, Name: fmt.Sprintf("p%d", i), Node: pick(r, "n1", "n2"), Labels: map[string]string{}}
			for _, k := range []string{"app", "tier", "role"} {
				if r.IntN(2) == 0 {
					p.Labels[k] = pick(r, "web", "db", "dns", "")
				}
			}
			switch {
			case r.IntN(10) == 0:
				p.HostNetwork = true
				if p.Node == "n1" {
					p.IPs = []netip.Addr{netip.MustParseAddr("192.168.0.1")}
				} else {
					p.IPs = []netip.Addr{netip.MustParseAddr("192.168.0.2")}
				}
			case r.IntN(15) == 0: // pending: no address yet
			default:
				p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(ni + 1), byte(i + 1)})}
				if r.IntN(3) == 0 {
					p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00::%d:%d", ni+1, i+1)))
				}
			}
			names := []string{"http", "dns", "metrics", "", ""}
			r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			for k := range r.IntN(4) {
				p.Ports = append(p.Ports, ContainerPort{Name: names[k], Port: pick[uint16](r, 53, 80, 443, 1500, 8080, 9090), Protocol: pick(r, ProtoTCP, ProtoUDP, ProtoSCTP)})
			}
			in.Pods = append(in.Pods, p)
		}
	}
	for i := range 1 + r.IntN(5) {
		// Now and then a policy in a namespace with no pod and no object.
		in.Policies = append(in.Policies, randomPolicy(r, fmt.Sprintf("np%d", i), pick(r, append(nss, "v")...), nss))
	}
	return in
}

func randomSelector(r *rand.Rand, keys []string, values []string) *kube.LabelSelector {
	s := &kube.LabelSelector{}
	switch r.IntN(4) {
	case 0: // empty: everything
	case 1, 2:
		s.MatchLabels = map[string]string{pick(r, keys...): pick(r, values...)}
	default:
		req := kube.LabelSelectorRequirement{Key: pick(r, keys...), Operator: pick(r, "In", "NotIn", "Exists", "DoesNotExist")}
		if req.Operator == "In" || req.Operator == "NotIn" {
			req.Values = []string{pick(r, values...), pick(r, values...)}
		}
		s.MatchExpressions = []kube.LabelSelectorRequirement{req}
	}
	return s
}

func randomPolicy(r *rand.Rand, name, ns string, nss []string) kube.NetworkPolicy {
	p := kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Name: name, Namespace: ns}}
	p.Spec.PodSelector = *randomSelector(r, []string{"app", "tier", "role"}, []string{"web", "db", "dns", ""})
	p.Spec.PolicyTypes = pick(r, nil, []string{"Ingress"}, []string{"Egress"}, []string{"Ingress", "Egress"}, nil)
	nRules := func() int {
		switch r.IntN(6) {
		case 0:
			return -1 // an empty, non-nil list
		case 1, 2:
			return 0
		}
		return 1 + r.IntN(3)
	}
	if n := nRules(); n < 0 {
		p.Spec.Ingress = []kube.NetworkPolicyIngressRule{}
	} else {
		for range n {
			p.Spec.Ingress = append(p.Spec.Ingress, kube.NetworkPolicyIngressRule{Ports: randomPorts(r), From: randomPeers(r, nss)})
		}
	}
	if n := nRules(); n < 0 {
		p.Spec.Egress = []kube.NetworkPolicyEgressRule{}
	} else {
		for range n {
			p.Spec.Egress = append(p.Spec.Egress, kube.NetworkPolicyEgressRule{Ports: randomPorts(r), To: randomPeers(r, nss)})
		}
	}
	return p
}

func randomPorts(r *rand.Rand) []kube.NetworkPolicyPort {
	if r.IntN(3) == 0 {
		return nil
	}
	var out []kube.NetworkPolicyPort
	for range 1 + r.IntN(3) {
		var np kube.NetworkPolicyPort
		if r.IntN(3) > 0 {
			proto := pick(r, "TCP", "UDP", "SCTP")
			np.Protocol = &proto
		}
		switch r.IntN(6) {
		case 0: // every port of the protocol
		case 1, 2:
			v := kube.FromInt(pick[int32](r, 53, 80, 443, 1500, 8080, 9090))
			np.Port = &v
		case 3, 4:
			v := kube.FromString(pick(r, "http", "dns", "metrics"))
			np.Port = &v
		default:
			start := pick[int32](r, 1, 53, 1000, 1024, 2000)
			end := start + pick[int32](r, 0, 1, 1000, 8000, 65535-start)
			v := kube.FromInt(start)
			np.Port, np.EndPort = &v, &end
		}
		out = append(out, np)
	}
	return out
}

func randomPeers(r *rand.Rand, nss []string) []kube.NetworkPolicyPeer {
	if r.IntN(4) == 0 {
		return nil
	}
	var out []kube.NetworkPolicyPeer
	for range 1 + r.IntN(3) {
		var pr kube.NetworkPolicyPeer
		switch r.IntN(5) {
		case 0:
			pr.PodSelector = randomSelector(r, []string{"app", "tier", "role"}, []string{"web", "db", "dns", ""})
		case 1:
			pr.NamespaceSelector = randomSelector(r, []string{"team", "env", LabelNamespaceName}, append([]string{"a", "b", "prod", "dev"}, nss...))
		case 2:
			pr.PodSelector = randomSelector(r, []string{"app", "tier", "role"}, []string{"web", "db", "dns"})
			pr.NamespaceSelector = randomSelector(r, []string{"team", "env", LabelNamespaceName}, append([]string{"a", "b", "prod", "dev"}, nss...))
		default:
			pr.IPBlock = randomBlock(r)
		}
		out = append(out, pr)
	}
	return out
}

func randomBlock(r *rand.Rand) *kube.IPBlock {
	type blk struct {
		cidr   string
		except []string
	}
	b := pick(r,
		blk{"10.0.0.0/8", []string{"10.1.0.0/16", "10.1.1.0/24", "10.1.2.0/25", "10.1.1.1/32"}},
		blk{"10.1.0.0/16", []string{"10.1.1.0/24", "10.1.2.1/32", "10.1.3.0/30"}},
		blk{"10.1.1.0/24", []string{"10.1.1.2/31", "10.1.1.1/32"}},
		blk{"10.1.2.1/32", nil},
		blk{"0.0.0.0/0", []string{"10.0.0.0/8", "192.168.0.0/16", "10.1.0.0/16"}},
		blk{"192.168.0.0/24", []string{"192.168.0.2/32"}},
		blk{"fd00::/8", []string{"fd00::1:0/112", "fd01::/16"}},
		blk{"::/0", []string{"fd00::/16"}},
	)
	out := &kube.IPBlock{CIDR: b.cidr}
	for _, e := range b.except {
		if r.IntN(3) == 0 {
			out.Except = append(out.Except, e)
		}
	}
	return out
}
