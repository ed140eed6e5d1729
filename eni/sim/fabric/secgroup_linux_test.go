package fabric

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/eni/sim"
)

// sgNodes builds three nodes, each with its primary ENI: n1 172.30.1.10,
// n2 172.30.2.10, n3 172.30.1.40, each serving an echo on port 7000 and
// n2 also on 7001.
func sgNodes(t *testing.T) (f *Fabric, n1, n2, n3 Node) {
	t.Helper()
	f = mustFabric(t)
	n1 = mustAddNode(t, f, "node-1", "i-1")
	n2 = mustAddNode(t, f, "node-2", "i-2")
	n3 = mustAddNode(t, f, "node-3", "i-3")
	mustAttach(t, f, primaryLink(t, "i-1", "eni-p1", "00:16:3e:00:01:01", testVswA, "172.30.1.10"))
	mustAttach(t, f, primaryLink(t, "i-2", "eni-p2", "00:16:3e:00:02:01", testVswB, "172.30.2.10"))
	mustAttach(t, f, primaryLink(t, "i-3", "eni-p3", "00:16:3e:00:03:01", testVswA, "172.30.1.40"))
	mustServeEcho(t, n1.NetNS, "172.30.1.10:7000")
	mustServeEcho(t, n2.NetNS, "172.30.2.10:7000")
	mustServeEcho(t, n2.NetNS, "172.30.2.10:7001")
	mustServeEcho(t, n3.NetNS, "172.30.1.40:7000")
	return f, n1, n2, n3
}

// mustServeEcho echoes lines back on every connection until it closes.
func mustServeEcho(tb testing.TB, nsName, addr string) {
	tb.Helper()
	l, err := listenIn(NetNSPath(nsName), "tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// connectFrom opens a TCP connection from nsName to dst; the socket keeps
// the namespace it was made in.
func connectFrom(nsName, dst string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", dst)
		return err
	})
	return c, err
}

// echo sends a line on c and waits for it to come back.
func echo(c net.Conn, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := bufio.NewReader(c).ReadString('\n')
	return err
}

// reach reports whether a new connection from nsName to dst carries an
// echo. A dropped SYN shows as a timeout, which bounds negative cases.
func reach(nsName, dst string) bool {
	c, err := connectFrom(nsName, dst, 700*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	return echo(c, time.Second) == nil
}

func mustPolicy(tb testing.TB, f *Fabric, p sim.SecurityPolicy) {
	tb.Helper()
	if err := f.SetSecurityPolicy(p); err != nil {
		tb.Fatalf("SetSecurityPolicy: %v", err)
	}
}

var (
	p1 = netip.MustParseAddr("172.30.1.10")
	p2 = netip.MustParseAddr("172.30.2.10")
	p3 = netip.MustParseAddr("172.30.1.40")
)

// groupsPolicy puts eni-p1 and eni-p3 in sg-a (enterprise when asked) and
// eni-p2 in sg-b, whose ingress accepts tcp/7000 from sg-a at priority
// 10 (when allow7000) and drops tcp/7000 from 172.30.1.40/32 at priority
// 20 (shadowed by the accept: a better priority wins).
func groupsPolicy(enterprise, allow7000 bool) sim.SecurityPolicy {
	var rules []sim.SecurityRule
	if allow7000 {
		rules = append(rules, sim.SecurityRule{Priority: 10, Protocol: "tcp", PortFrom: 7000, PortTo: 7000, PeerGroup: "sg-a"})
	}
	rules = append(rules, sim.SecurityRule{Priority: 20, Drop: true, Protocol: "tcp", PortFrom: 7000, PortTo: 7000,
		PeerCIDR: netip.PrefixFrom(p3, 32)})
	var egress []sim.SecurityRule
	if enterprise {
		// Enterprise groups close egress by default: open it to the VPC.
		egress = append(egress, sim.SecurityRule{Egress: true, Priority: 1, Protocol: "all", PortFrom: -1, PortTo: -1,
			PeerCIDR: netip.MustParsePrefix("172.30.0.0/16")})
	}
	return sim.SecurityPolicy{
		Groups: []sim.SecurityGroup{
			{ID: "sg-a", Enterprise: enterprise, Members: []netip.Addr{p1, p3}, Rules: egress},
			{ID: "sg-b", Members: []netip.Addr{p2}, Rules: rules},
		},
		ENIs: []sim.ENISecurity{
			{ENIID: "eni-p1", Groups: []string{"sg-a"}},
			{ENIID: "eni-p2", Groups: []string{"sg-b"}},
			{ENIID: "eni-p3", Groups: []string{"sg-a"}},
		},
	}
}

func TestFabric_SecurityGroups_Enforced(t *testing.T) {
	f, n1, n2, n3 := sgNodes(t)

	// No policy yet: the VPC carries everything, as before groups.
	if !reach(n2.NetNS, "172.30.1.10:7000") {
		t.Fatal("without a policy n2 cannot reach n1")
	}

	mustPolicy(t, f, groupsPolicy(false, true))
	cases := []struct {
		name     string
		from, to string
		want     bool
	}{
		{"allowed port from the peer group", n1.NetNS, "172.30.2.10:7000", true},
		{"other port dropped", n1.NetNS, "172.30.2.10:7001", false},
		{"accept at priority 10 beats drop at 20", n3.NetNS, "172.30.2.10:7000", true},
		{"same normal group", n1.NetNS, "172.30.1.40:7000", true},
		{"same normal group, back", n3.NetNS, "172.30.1.10:7000", true},
		{"ingress denied by default", n2.NetNS, "172.30.1.10:7000", false},
	}
	for _, tc := range cases {
		if got := reach(tc.from, tc.to); got != tc.want {
			t.Errorf("normal groups: %s: reach %s from %s = %v, want %v", tc.name, tc.to, tc.from, got, tc.want)
		}
	}

	mustPolicy(t, f, groupsPolicy(true, true))
	if reach(n1.NetNS, "172.30.1.40:7000") {
		t.Error("enterprise group: members reach each other without a rule")
	}
	if !reach(n1.NetNS, "172.30.2.10:7000") {
		t.Error("enterprise group: the peer group rule no longer lets n1 in")
	}

	// Without its egress rule an enterprise group lets nothing out.
	p := groupsPolicy(true, true)
	p.Groups[0].Rules = nil
	mustPolicy(t, f, p)
	if reach(n1.NetNS, "172.30.2.10:7000") {
		t.Error("enterprise group: egress passes without an egress rule")
	}
}

func TestFabric_SecurityGroups_RevokeAppliesToNewConnections(t *testing.T) {
	f, n1, n2, _ := sgNodes(t)
	mustPolicy(t, f, groupsPolicy(false, true))
	c, err := connectFrom(n1.NetNS, "172.30.2.10:7000", time.Second)
	if err != nil {
		t.Fatalf("connect while allowed: %v", err)
	}
	defer c.Close()
	if err := echo(c, time.Second); err != nil {
		t.Fatalf("echo while allowed: %v", err)
	}

	mustPolicy(t, f, groupsPolicy(false, false)) // the accept rule revoked
	if err := echo(c, time.Second); err != nil {
		t.Errorf("the established connection broke when the rule went: %v", err)
	}
	if reach(n1.NetNS, "172.30.2.10:7000") {
		t.Error("a new connection passed after the rule was revoked")
	}

	mustPolicy(t, f, groupsPolicy(false, true)) // and authorized again
	if !reach(n1.NetNS, "172.30.2.10:7000") {
		t.Error("a new connection was dropped after the rule came back")
	}
	mustPolicy(t, f, sim.SecurityPolicy{}) // no groups: everything passes
	if !reach(n2.NetNS, "172.30.1.10:7000") {
		t.Error("an empty policy still filters")
	}
}
