package policy

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

// cidrsOf renders a direction's table compactly: "prefix: rule by..; ...".
func cidrsOf(entries []CIDREntry) []string {
	var out []string
	for _, e := range entries {
		s := e.Prefix.String() + ":"
		for _, r := range e.Rules {
			s += " " + r.String() + "["
			for i, b := range r.By {
				if i > 0 {
					s += ","
				}
				if b.Host {
					s += "node"
				} else {
					s += b.Policy + "/" + string(rune('0'+b.Rule)) + "/" + string(rune('0'+b.Peer))
				}
			}
			s += "]"
		}
		out = append(out, s)
	}
	return out
}

// TestSnapshot_Compile_Tables pins the compiled LPM tables of the cases
// where a naive layout goes wrong.
func TestSnapshot_Compile_Tables(t *testing.T) {
	for _, tc := range []struct {
		name, policies string
		pod            string // in namespace x
		egress         bool
		want           []string
	}{
		{"an except carries the other rules (AWS agent #326)", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    - ports: [{port: 53, protocol: UDP}, {port: 53}]`, "c", true, []string{
			"0.0.0.0/0: any[x/p/0/0] TCP/53[x/p/1/" + string(rune('0'-1)) + "] UDP/53[x/p/1/" + string(rune('0'-1)) + "]",
			"10.0.0.0/8: TCP/53[x/p/1/" + string(rune('0'-1)) + "] UDP/53[x/p/1/" + string(rune('0'-1)) + "]",
			"::/0: TCP/53[x/p/1/" + string(rune('0'-1)) + "] UDP/53[x/p/1/" + string(rune('0'-1)) + "]",
		}},
		{"the longer prefix carries the union", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress:
    - {to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 80}]}
    - {to: [{ipBlock: {cidr: 10.1.0.0/16}}], ports: [{port: 443}]}`, "c", true, []string{
			"10.0.0.0/8: TCP/80[x/p/0/0]",
			"10.1.0.0/16: TCP/80[x/p/0/0] TCP/443[x/p/1/0]",
		}},
		{"an except inside an except is the same nothing, dropped", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.1.2.0/24]}}]}]`, "c", true, []string{
			"10.0.0.0/8: any[x/p/0/0]",
			"10.1.0.0/16:",
		}},
		{"overlapping ranges split, adjacent ones of one rule joined", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress:
    - {to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 1000, endPort: 2000}, {port: 80}, {port: 81}, {port: 82, protocol: UDP}]}
    - {to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 1500, endPort: 3000}]}`, "c", true, []string{
			"10.0.0.0/8: TCP/80-81[x/p/0/0] TCP/1000-1499[x/p/0/0] TCP/1500-2000[x/p/0/0,x/p/1/0] TCP/2001-3000[x/p/1/0] UDP/82[x/p/0/0]",
		}},
		{"selected pods become host prefixes, the node too on ingress", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]`, "c", false, []string{
			"10.0.1.1/32: TCP/5432[x/p/0/0]",
			"10.0.1.2/32: TCP/5432[x/p/0/0]",
			"192.168.0.1/32: any[node]",
			"fd00::1:1/128: TCP/5432[x/p/0/0]",
			"fd00::1:2/128: TCP/5432[x/p/0/0]",
		}},
		{"egress named ports resolve per destination pod", `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    policyTypes: [Egress]
    egress: [{to: [{podSelector: {}}], ports: [{port: http}, {port: 9090}]}]`, "c", true, []string{
			"10.0.1.1/32: TCP/80[x/p/0/0] TCP/9090[x/p/0/0]",
			"10.0.1.2/32: TCP/8080[x/p/0/0] TCP/9090[x/p/0/0]",
			"10.0.1.3/32: TCP/9090[x/p/0/0]",
			"fd00::1:1/128: TCP/80[x/p/0/0] TCP/9090[x/p/0/0]",
			"fd00::1:2/128: TCP/8080[x/p/0/0] TCP/9090[x/p/0/0]",
			"fd00::1:3/128: TCP/9090[x/p/0/0]",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixedCluster()
			in.Policies = mustPolicies(t, tc.policies)
			rs := mustCompile(t, mustSnapshot(t, in), "x", tc.pod)
			d := &rs.Ingress
			if tc.egress {
				d = &rs.Egress
			}
			if got := cidrsOf(d.CIDRs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestSnapshot_Compile_Identities checks the identity split: selector
// peers by identity, the rest in Blocks.
func TestSnapshot_Compile_Identities(t *testing.T) {
	in := fixedCluster()
	in.Policies = mustPolicies(t, `
- metadata: {name: p, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    ingress:
    - from: [{podSelector: {matchLabels: {pod: a}}, namespaceSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8}}]
      ports: [{port: 443}]`)
	rs := mustCompile(t, mustSnapshot(t, in), "x", "c")
	var ids []string
	for _, ir := range rs.Ingress.Identities {
		ids = append(ids, ir.Identity+" "+ir.Rules[0].String())
	}
	want := []string{
		"reserved:host any",
		"x|app=web,pod=a|dns=53/UDP,http=80/TCP TCP/443",
		"y|app=web,pod=a|dns=53/UDP,http=80/TCP TCP/443",
		"z|app=web,pod=a|dns=53/UDP,http=80/TCP TCP/443",
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("identities\n%q\nwant\n%q", ids, want)
	}
	if got := cidrsOf(rs.Ingress.Blocks); !reflect.DeepEqual(got, []string{"10.0.0.0/8: TCP/443[x/p/0/1]", "192.168.0.1/32: any[node]"}) {
		t.Errorf("blocks %q", got)
	}
}

// TestSnapshot_Compile_Endpoints covers what is compiled for whom.
func TestSnapshot_Compile_Endpoints(t *testing.T) {
	in := fixedCluster()
	in.Policies = mustPolicies(t, `
- metadata: {name: deny, namespace: z}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}`)
	s := mustSnapshot(t, in)

	if rs := mustCompile(t, s, "x", "a"); rs.Ingress.Isolated || rs.Egress.Isolated || rs.Ingress.CIDRs != nil {
		t.Errorf("x/a is selected by no policy, got %+v", rs)
	}
	rs := mustCompile(t, s, "z", "a")
	if !rs.Ingress.Isolated || !rs.Egress.Isolated || len(rs.Egress.CIDRs) != 0 {
		t.Errorf("z/a: deny all both ways, got %+v", rs)
	}
	if got := cidrsOf(rs.Ingress.CIDRs); !reflect.DeepEqual(got, []string{"192.168.0.2/32: any[node]"}) {
		t.Errorf("z/a ingress %q: only its node", got)
	}
	if rs := mustCompile(t, s, "z", "h"); !rs.HostNetwork || rs.Ingress.Isolated || rs.Egress.Isolated {
		t.Errorf("host-network z/h: not subject to policy, got %+v", rs)
	}
	if _, err := s.Compile(PodRef{"z", "nope"}); !errors.Is(err, ErrUnknownPod) {
		t.Errorf("unknown pod: %v", err)
	}
	// A pod the snapshot does not know yet (a CNI ADD ahead of the
	// daemon) is compiled from its own labels.
	born := s.CompilePod(Pod{Namespace: "z", Name: "new", Node: "n2", IPs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.3.9")}})
	if !born.Ingress.Isolated || !born.Egress.Isolated || born.IPs[0] != netip.MustParseAddr("10.0.3.9") {
		t.Errorf("new pod in z: %+v", born)
	}
	a, _ := json.Marshal(mustCompile(t, s, "z", "b"))
	b, _ := json.Marshal(mustCompile(t, s, "z", "b"))
	if string(a) != string(b) {
		t.Errorf("two compilations differ:\n%s\n%s", a, b)
	}
}

// TestPortPrefixes covers the ranges the reference names and checks on
// random ranges that the blocks cover the range exactly, in order.
func TestPortPrefixes(t *testing.T) {
	for _, tc := range []struct {
		first, last uint16
		n           int
	}{{1, 65535, 16}, {1024, 65535, 6}, {0, 65535, 1}, {80, 80, 1}, {1000, 2000, 8}, {10000, 20000, 11}, {65535, 65535, 1}} {
		if got := PortPrefixes(tc.first, tc.last); len(got) != tc.n {
			t.Errorf("%d-%d: %d blocks %v, want %d", tc.first, tc.last, len(got), got, tc.n)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		a, b := uint16(r.IntN(65536)), uint16(r.IntN(65536))
		if a > b {
			a, b = b, a
		}
		next := uint32(a)
		for _, p := range PortPrefixes(a, b) {
			size := uint32(1) << (16 - p.Bits)
			if uint32(p.Port) != next || uint32(p.Port)%size != 0 {
				t.Fatalf("%d-%d: block %v misplaced (next %d)", a, b, p, next)
			}
			next += size
		}
		if next != uint32(b)+1 {
			t.Fatalf("%d-%d: blocks end at %d", a, b, next-1)
		}
	}
}

// TestFailClosed checks the ruleset of a pod born without knowing its
// selection: its node may probe it, nothing else passes either way.
func TestFailClosed(t *testing.T) {
	rs := FailClosed(Pod{Namespace: "x", Name: "new", Node: "n1", IPs: []netip.Addr{netip.MustParseAddr("10.0.1.9")}},
		[]netip.Addr{netip.MustParseAddr("fd01::1"), netip.MustParseAddr("192.168.0.1")})
	if !rs.Ingress.Isolated || !rs.Egress.Isolated || len(rs.Egress.CIDRs) != 0 || len(rs.Egress.Identities) != 0 {
		t.Fatalf("%+v", rs)
	}
	if got := cidrsOf(rs.Ingress.CIDRs); !reflect.DeepEqual(got, []string{"192.168.0.1/32: any[node]", "fd01::1/128: any[node]"}) {
		t.Errorf("ingress %q", got)
	}
	if _, by, _ := rs.Ingress.Lookup(netip.MustParseAddr("10.0.1.2"), ProtoTCP, 80); by != nil {
		t.Errorf("a pod reaches the fail-closed pod: %v", by)
	}
	b, _ := json.Marshal(rs.Ingress.CIDRs[0].Rules[0].By)
	if string(b) != `[{"host":true}]` {
		t.Errorf("host ref as JSON: %s", b)
	}
}
