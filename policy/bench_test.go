package policy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/veni-cni/veni/kube"
)

// benchWorld is the benchmark's cluster: 10 namespaces of 100 pods
// (1,000 pods, 10 of each namespace on the local node: 100 endpoints)
// and 100 policies of 10 rules each (1,000 rules: 5 ingress, 5 egress),
// ten in each namespace, each selecting one app (10 pods, one local).
// Rules mix what real policies hold: same-namespace podSelectors on a
// named port, namespace-and-pod selectors on a port range, ipBlocks with
// excepts, a CIDR on two protocols, and egress to a named port on every
// pod of the cluster.
func benchWorld() Input {
	var in Input
	in.Nodes = []Node{{Name: "local", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}}
	for n := range 10 {
		ns := fmt.Sprintf("ns%d", n)
		in.Namespaces = append(in.Namespaces, Namespace{Name: ns, Labels: map[string]string{"team": fmt.Sprintf("t%d", n%3), "env": []string{"prod", "dev"}[n%2]}})
		for i := range 100 {
			node := "local"
			if i >= 10 {
				node = fmt.Sprintf("remote%d", i%20)
			}
			p := Pod{Namespace: ns, Name: fmt.Sprintf("p%d", i), Node: node,
				Labels: map[string]string{"app": fmt.Sprintf("app%d", i%10), "tier": fmt.Sprintf("tier%d", i%3)},
				IPs:    []netip.Addr{netip.AddrFrom4([4]byte{10, byte(n), byte(i / 256), byte(i%256 + 1)})},
				Ports:  []ContainerPort{{"http", 8080, ProtoTCP}, {"metrics", 9090, ProtoTCP}}}
			if i%10 == 0 {
				p.Ports = append(p.Ports, ContainerPort{"dns", 53, ProtoUDP})
			}
			in.Pods = append(in.Pods, p)
		}
	}
	port := func(p int32) *kube.IntOrString { v := kube.FromInt(p); return &v }
	named := func(s string) *kube.IntOrString { v := kube.FromString(s); return &v }
	udp := "UDP"
	end := int32(8090)
	for n := range 10 {
		ns := fmt.Sprintf("ns%d", n)
		for j := range 10 {
			np := kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("np%d", j)}}
			np.Spec.PodSelector = kube.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", j)}}
			np.Spec.PolicyTypes = []string{"Ingress", "Egress"}
			k := (j + 1) % 10
			ingress := []kube.NetworkPolicyIngressRule{
				{From: []kube.NetworkPolicyPeer{{PodSelector: &kube.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", k)}}}}, Ports: []kube.NetworkPolicyPort{{Port: named("http")}}},
				{From: []kube.NetworkPolicyPeer{{NamespaceSelector: &kube.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", j%3)}}, PodSelector: &kube.LabelSelector{MatchLabels: map[string]string{"tier": "tier1"}}}}, Ports: []kube.NetworkPolicyPort{{Port: port(8080), EndPort: &end}}},
				{From: []kube.NetworkPolicyPeer{{IPBlock: &kube.IPBlock{CIDR: "10.0.0.0/8", Except: []string{fmt.Sprintf("10.%d.0.0/16", j), fmt.Sprintf("10.%d.0.0/24", k)}}}}, Ports: []kube.NetworkPolicyPort{{Port: port(443)}}},
				{From: []kube.NetworkPolicyPeer{{IPBlock: &kube.IPBlock{CIDR: fmt.Sprintf("172.16.%d.0/24", j)}}}, Ports: []kube.NetworkPolicyPort{{Port: port(9000)}, {Port: port(9000), Protocol: &udp}}},
				{From: []kube.NetworkPolicyPeer{{NamespaceSelector: &kube.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}}, Ports: []kube.NetworkPolicyPort{{Port: named("metrics")}}},
			}
			egress := []kube.NetworkPolicyEgressRule{
				{To: []kube.NetworkPolicyPeer{{PodSelector: &kube.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", k)}}}}, Ports: []kube.NetworkPolicyPort{{Port: named("http")}}},
				{To: []kube.NetworkPolicyPeer{{NamespaceSelector: &kube.LabelSelector{}, PodSelector: &kube.LabelSelector{MatchLabels: map[string]string{"app": "app0"}}}}, Ports: []kube.NetworkPolicyPort{{Port: named("dns"), Protocol: &udp}}},
				{To: []kube.NetworkPolicyPeer{{IPBlock: &kube.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}}}}},
				{Ports: []kube.NetworkPolicyPort{{Port: named("metrics")}}},
				{To: []kube.NetworkPolicyPeer{{IPBlock: &kube.IPBlock{CIDR: fmt.Sprintf("10.%d.0.0/16", k)}}}, Ports: []kube.NetworkPolicyPort{{Port: port(5432)}, {Port: port(6379)}}},
			}
			np.Spec.Ingress, np.Spec.Egress = ingress, egress
			in.Policies = append(in.Policies, np)
		}
	}
	return in
}

func localEndpoints(in Input) []PodRef {
	var out []PodRef
	for _, p := range in.Pods {
		if p.Node == "local" {
			out = append(out, p.Ref())
		}
	}
	return out
}

// BenchmarkSnapshot_Compile measures compiling the 100 local endpoints
// of benchWorld against its 1,000 rules: building the snapshot and
// compiling every endpoint (a full recompute of the node; one by one, and
// with CompileAll), building the snapshot alone, and compiling one
// endpoint on a warm snapshot (one pod changed). It reports the
// compiled size per endpoint: LPM entries and map bytes (MapSize).
func BenchmarkSnapshot_Compile(b *testing.B) {
	in := benchWorld()
	eps := localEndpoints(in)
	b.Run("new+100-endpoints", func(b *testing.B) {
		b.ReportAllocs()
		var last []*Ruleset
		for b.Loop() {
			s, err := New(in)
			if err != nil {
				b.Fatal(err)
			}
			last = last[:0]
			for _, ref := range eps {
				rs, err := s.Compile(ref)
				if err != nil {
					b.Fatal(err)
				}
				last = append(last, rs)
			}
		}
		var entries, bytes, idEntries, idBytes int
		for _, rs := range last {
			m := rs.MapSize()
			entries += m.LPM.Entries
			bytes += m.LPM.Bytes
			idEntries += m.Identity.Entries
			idBytes += m.Identity.Bytes
		}
		n := float64(len(last))
		b.ReportMetric(float64(entries)/n, "lpm-entries/endpoint")
		b.ReportMetric(float64(bytes)/n, "lpm-B/endpoint")
		b.ReportMetric(float64(idEntries)/n, "id-entries/endpoint")
		b.ReportMetric(float64(idBytes)/n, "id-B/endpoint")
	})
	b.Run("new+CompileAll-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := New(in)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.CompileAll(eps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := New(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("1-endpoint-warm", func(b *testing.B) {
		s, err := New(in)
		if err != nil {
			b.Fatal(err)
		}
		for _, ref := range eps {
			_, _ = s.Compile(ref)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Compile(eps[i%len(eps)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// TestBenchWorld_Oracle spot-checks the benchmark's world against cyclonus
// (flows from a sample of pods and addresses into and out of the local
// endpoints), so the figures are for a compiler that is right on it.
func TestBenchWorld_Oracle(t *testing.T) {
	in := benchWorld()
	// Under -race or -short a smaller sample (CI runs every test, none
	// may skip).
	sample := 37
	if testing.Short() || raceEnabled {
		sample = 151
	}
	var addrs []netip.Addr
	for i, p := range in.Pods {
		if (p.Node == "local" && (sample == 37 || i%3 == 0)) || i%sample == 0 {
			addrs = append(addrs, p.IPs...)
		}
	}
	addrs = append(addrs, netip.MustParseAddr("172.16.3.9"), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("192.168.0.1"))
	var flows []flow
	for _, s := range addrs {
		for _, d := range addrs {
			for _, pt := range []struct {
				p Protocol
				n uint16
			}{{ProtoTCP, 8080}, {ProtoTCP, 8085}, {ProtoTCP, 443}, {ProtoTCP, 9090}, {ProtoUDP, 53}, {ProtoUDP, 9000}, {ProtoTCP, 5432}} {
				flows = append(flows, flow{s, d, pt.p, pt.n})
			}
		}
	}
	n, bad := compareFlows(t, in, flows)
	if !bad {
		t.Logf("%d flows of the benchmark world compared with cyclonus", n)
	}
}
