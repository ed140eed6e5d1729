package main

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
)

// firewallOptions size the host firewall of scenario (b).
type firewallOptions struct {
	NATRules     int // nat PREROUTING rules, one per Service port, as kube-proxy leaves them
	ForwardRules int // filter FORWARD rules, as a host firewall leaves them
}

// Address ranges the rules match. Neither overlaps an address the
// benchmark uses (10.199.0.0/16 for its own namespaces, the sim's
// 172.30.0.0/16), so every packet walks every rule and none matches: the
// cost of a large firewall without changing what is delivered.
var (
	// firewallServiceBase is where the NAT rules' Service addresses start
	// (Kubernetes' default Service range is 10.96.0.0/12).
	firewallServiceBase = netip.MustParseAddr("10.96.0.0")
	// firewallBlockedBase is where the FORWARD rules' blocked sources
	// start (198.18.0.0/15 is reserved for benchmarks, RFC 2544).
	firewallBlockedBase = netip.MustParseAddr("198.18.0.0")
)

// writeFirewall writes an iptables-restore input that replaces the nat and
// filter tables with o's rules. The nat table alone turns conntrack on for
// the namespace (NAT needs it); the last FORWARD rule reads the conntrack
// state as well, as every stateful firewall does. The FORWARD rules come
// before any "ESTABLISHED accept", so each forwarded packet walks all of
// them: that is what cut plain routing from ~17 to ~9.4 Gbit/s in the
// issue's measurement.
func writeFirewall(w io.Writer, o firewallOptions) error {
	// The FORWARD rules differ by destination port, from 1024 up.
	if o.NATRules < 0 || o.ForwardRules < 0 || o.NATRules > 1<<16 || o.ForwardRules > 60000 {
		return fmt.Errorf("%w: firewall rules: nat within 0..65536, forward within 0..60000", errUsage)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "*nat")
	fmt.Fprintln(bw, ":PREROUTING ACCEPT [0:0]")
	fmt.Fprintln(bw, ":INPUT ACCEPT [0:0]")
	fmt.Fprintln(bw, ":OUTPUT ACCEPT [0:0]")
	fmt.Fprintln(bw, ":POSTROUTING ACCEPT [0:0]")
	svc := firewallServiceBase.Next()
	for i := range o.NATRules {
		// A Service IP with its endpoint, like kube-proxy's per-port DNAT.
		fmt.Fprintf(bw, "-A PREROUTING -d %s/32 -p tcp -m tcp --dport %d -m comment --comment \"bench/svc-%d\" -j DNAT --to-destination %s:8080\n",
			svc, 80+i%2, i, firewallBlockedBase)
		if i%2 == 1 {
			svc = svc.Next()
		}
	}
	fmt.Fprintln(bw, "COMMIT")
	fmt.Fprintln(bw, "*filter")
	fmt.Fprintln(bw, ":INPUT ACCEPT [0:0]")
	fmt.Fprintln(bw, ":FORWARD ACCEPT [0:0]")
	fmt.Fprintln(bw, ":OUTPUT ACCEPT [0:0]")
	blocked := firewallBlockedBase.Next()
	for i := range o.ForwardRules {
		fmt.Fprintf(bw, "-A FORWARD -s %s/32 -p tcp -m tcp --dport %d -m comment --comment \"bench/deny-%d\" -j DROP\n",
			blocked, 1024+i, i)
		blocked = blocked.Next()
	}
	fmt.Fprintln(bw, "-A FORWARD -m conntrack --ctstate INVALID -j DROP")
	fmt.Fprintln(bw, "COMMIT")
	return bw.Flush()
}
