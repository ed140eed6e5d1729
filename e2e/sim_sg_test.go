package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
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
