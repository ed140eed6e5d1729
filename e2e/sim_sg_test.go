package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/pods"
)

// Ensure the simulated VPC enforces security groups on pods, through the
// "veni sim" commands: by default every node's ENIs share the normal group
// sg-sim-default and all pods reach each other; once the server pod's ENI
// is in its own group that admits tcp/8080 from sg-sim-default, a client
// on the other node connects on 8080 and not on 8081; the rule revoked,
// 8080 closes to new connections too.
func TestSim_SecurityGroups(t *testing.T) {
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "2")
	s.mustRun("sim", "pod", "add", "node-1", "client")
	s.mustRun("sim", "pod", "add", "node-2", "server")

	// probe returns whether client reached server on each port.
	probe := func() (map[int]bool, string) {
		out, _ := s.run("sim", "connectivity", "-o", "json", "--timeout", "700ms", "--port", "8080,8081")
		var m simcluster.MatrixJSON
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&m); err != nil {
			t.Fatalf("connectivity -o json: %v\n%s", err, out)
		}
		got := map[int]bool{}
		for _, r := range m.Results {
			if strings.HasSuffix(r.From, "client") && strings.HasSuffix(r.To, "server") {
				got[r.Port] = r.OK
			}
		}
		return got, out
	}
	expect := func(what string, want map[int]bool) {
		t.Helper()
		// A pod's first packets may race its own set-up; the groups do not.
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, out := probe()
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: client -> server by port %v, want %v\n%s", what, got, want, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	expect("default group", map[int]bool{8080: true, 8081: true})

	// The server's ENI: the one holding its address.
	var st simcluster.StatusReport
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("sim status -o json: %v", err)
	}
	serverIP := podIP(t, s, "server")
	eniID := ""
	for _, e := range st.Live.Cloud.ENIs {
		for _, ip := range e.IPs {
			if ip.String() == serverIP {
				eniID = e.ID
			}
		}
	}
	if eniID == "" {
		t.Fatalf("no ENI holds the server's address %s", serverIP)
	}

	web := strings.TrimSpace(s.mustRun("sim", "sg", "create", "--name", "web"))
	if !strings.HasPrefix(web, "sg-") {
		t.Fatalf("sg create printed %q", web)
	}
	s.mustRun("sim", "sg", "authorize", web, "--port", "8080/8080", "--group", "sg-sim-default")
	s.mustRun("sim", "sg", "set-eni", eniID, web)
	list := s.mustRun("sim", "sg", "list")
	if !strings.Contains(list, web) || !strings.Contains(list, eniID) || !strings.Contains(list, "8080/8080") {
		t.Errorf("sg list lacks the group, its ENI or its rule:\n%s", list)
	}
	expect("8080 from the default group", map[int]bool{8080: true, 8081: false})

	s.mustRun("sim", "sg", "revoke", web, "--port", "8080/8080", "--group", "sg-sim-default")
	expect("rule revoked", map[int]bool{8080: false, 8081: false})

	// The cloud's errors reach the command: an unknown group.
	if out, err := s.run("sim", "sg", "set-eni", eniID, "sg-nope"); err == nil || !strings.Contains(out, "InvalidSecurityGroupId.NotFound") {
		t.Errorf("set-eni with an unknown group: %v\n%s", err, out)
	}
}

// podIP returns a pod's address from the connectivity matrix's sources.
func podIP(t *testing.T, s *testSim, name string) string {
	t.Helper()
	out, _ := s.run("sim", "connectivity", "-o", "json", "--timeout", "300ms")
	var m simcluster.MatrixJSON
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&m); err != nil {
		t.Fatalf("connectivity -o json: %v\n%s", err, out)
	}
	for _, e := range m.Sources {
		if strings.HasSuffix(e.Name, "/"+name) || e.Name == name {
			return e.IP.String()
		}
	}
	t.Fatalf("no pod %s in %s", name, out)
	return ""
}

// Ensure eni_conf's security_groups put every ENI veni creates in those
// groups and only those: with the pods' ENIs in sg-sim-app alone (a normal
// group), pods reach each other across nodes, a node (its primary ENI in
// sg-sim-default) does not reach the other node's pods until sg-sim-app
// admits sg-sim-default, and reaches its own pods without crossing the VPC.
func TestSim_SecurityGroups_NodeConfig(t *testing.T) {
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "2", "--security-group", "sg-sim-app", "--node-config", `security_groups=["sg-sim-app"]`)
	s.mustRun("sim", "pod", "add", "node-1", "a")
	s.mustRun("sim", "pod", "add", "node-2", "b")

	var st simcluster.StatusReport
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("sim status -o json: %v", err)
	}
	secondary := 0
	for _, e := range st.Live.Cloud.ENIs {
		want := "sg-sim-app"
		if e.Type == "Primary" {
			want = "sg-sim-default"
		} else {
			secondary++
		}
		if len(e.SecurityGroupIDs) != 1 || e.SecurityGroupIDs[0] != want {
			t.Errorf("%s ENI %s is in %v, want [%s]", e.Type, e.ID, e.SecurityGroupIDs, want)
		}
	}
	if secondary < 2 {
		t.Fatalf("%d ENIs made by veni, want one per node at least", secondary)
	}

	// reach returns from → to → reached, nodes included, on the probe port.
	reach := func() (map[string]map[string]bool, string) {
		out, _ := s.run("sim", "connectivity", "-o", "json", "--from-nodes", "--timeout", "700ms")
		var m simcluster.MatrixJSON
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&m); err != nil {
			t.Fatalf("connectivity -o json: %v\n%s", err, out)
		}
		got := map[string]map[string]bool{}
		short := func(n string) string { return n[strings.LastIndex(n, "/")+1:] }
		for _, r := range m.Results {
			from := short(r.From)
			if got[from] == nil {
				got[from] = map[string]bool{}
			}
			got[from][short(r.To)] = r.OK
		}
		return got, out
	}
	expect := func(what string, want map[[2]string]bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, out := reach()
			ok := true
			for pair, w := range want {
				if got[pair[0]][pair[1]] != w {
					ok = false
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %v, want %v\n%s", what, got, want, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	expect("pods in sg-sim-app", map[[2]string]bool{
		{"a", "b"}: true, {"b", "a"}: true,
		{"node-1", "a"}: true, {"node-2", "b"}: true,
		{"node-2", "a"}: false, {"node-1", "b"}: false,
	})
	s.mustRun("sim", "sg", "authorize", "sg-sim-app", "--port", "7777/7777", "--group", "sg-sim-default")
	expect("sg-sim-app admits the nodes on 7777", map[[2]string]bool{
		{"node-2", "a"}: true, {"node-1", "b"}: true, {"a", "b"}: true,
	})
}

// Ensure the simulated VPC's security groups filter IPv6 as well, on
// dual-stack nodes: in the default group the client reaches the server's
// IPv6 on every port; once the server's ENI is in a group that admits
// tcp/8080 from the client's vSwitch IPv6 /64 (Ipv6SourceCidrIp), the
// client connects over IPv6 on 8080 and not on 8081, and that IPv6 rule
// does not open 8080 over IPv4.
func TestSim_SecurityGroups_IPv6(t *testing.T) {
	s := mustSim(t)
	s.mustRun("sim", "up", "--nodes", "2", "--vswitches", dualVSwitches, "--node-config", "ip_stack=dual")
	s.mustRun("sim", "pod", "add", "node-1", "client")
	s.mustRun("sim", "pod", "add", "node-2", "server")
	client := mustDSPod(t, s.dir, "node-1", "default", "client")
	server := mustDSPod(t, s.dir, "node-2", "default", "server")
	type target struct {
		ip   netip.Addr
		port int
	}
	targets := []target{{server.ip6, 8080}, {server.ip6, 8081}, {server.ip4, 8080}}
	for _, tg := range targets {
		srv, err := pods.ServeOn(server.netns, tg.ip, pods.TCP, tg.port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
	}
	expect := func(what string, want ...bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var got []bool
			for _, tg := range targets {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				got = append(got, pods.DialOn(ctx, client.netns, tg.ip, pods.TCP, tg.port, 700*time.Millisecond) == nil)
				cancel()
			}
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: client -> %v reached %v, want %v", what, targets, got, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	expect("default group", true, true, true)

	var st simcluster.StatusReport
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("sim status -o json: %v", err)
	}
	eniID := ""
	for _, e := range st.Live.Cloud.ENIs {
		if slices.Contains(e.IPs, server.ip4) {
			eniID = e.ID
		}
	}
	if eniID == "" {
		t.Fatalf("no ENI holds the server's address %s", server.ip4)
	}
	web := strings.TrimSpace(s.mustRun("sim", "sg", "create", "--name", "web6"))
	s.mustRun("sim", "sg", "authorize", web, "--port", "8080/8080", "--cidr", "fd00:ac1e:1::/64")
	s.mustRun("sim", "sg", "set-eni", eniID, web)
	if list := s.mustRun("sim", "sg", "list"); !strings.Contains(list, "from fd00:ac1e:1::/64") {
		t.Errorf("sg list lacks the ipv6 rule:\n%s", list)
	}
	expect("8080 from the client's ipv6 /64", true, false, false)
}
