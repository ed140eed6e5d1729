package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
)

// The sims of the fixed-IP tests: the nodes' daemons park a fixed ENI 2 s
// after its pod went (fixed_eni_hold), and an attach takes 1 s, as the
// cloud's take 1-3 s.
var fixedSimArgs = []string{"--node-config", "fixed_eni_hold=2s", "--attach-delay", "1s"}

// fixedPodNetworking gives pods labelled net=fixed a fixed IP on an ENI of
// kind eniType, kept releaseAfter after the pod went (or for ever).
func fixedPodNetworking(t *testing.T, s *testSim, eniType, allocation string) {
	t.Helper()
	pn := filepath.Join(t.TempDir(), "fixed.yaml")
	if err := os.WriteFile(pn, fmt.Appendf(nil, `apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: fixed}
spec:
  selector:
    podSelector: {matchLabels: {net: fixed}}
  eniOptions: {eniType: %s}
  allocationType: %s
`, eniType, allocation), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustRun("sim", "policy", "apply", pn)
}

// cloudENIByID returns the cloud's ENI id, from "sim status"; ok is false
// once it is deleted.
func (c *cluster) cloudENIByID(t *testing.T, id string) (e sim.ENISnapshot, ok bool) {
	t.Helper()
	for _, e := range c.status(t).Live.Cloud.ENIs {
		if e.ID == id {
			return e, true
		}
	}
	return e, false
}

// waitENI waits until the cloud's ENI id satisfies cond.
func (c *cluster) waitENI(t *testing.T, id, what string, within time.Duration, cond func(sim.ENISnapshot, bool) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e, ok := c.cloudENIByID(t, id)
		if cond(e, ok) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eni %s not %s after %s: %+v (exists %t)", id, what, within, e, ok)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fixedMove is one fixed pod deleted on one node and recreated on another.
type fixedMove struct {
	total   time.Duration // DEL on the old node to the pod up on the new one
	add     time.Duration // the ADD that succeeded (attach and wait included)
	retries int           // ADDs refused with CNI error 11 before it
	calls   map[string]int
}

// moveFixed deletes pod name on from and adds it on to, retrying while the
// ADD says (CNI error 11) that the ENI is still attached to the old node,
// once a second, as a runtime retries.
func (c *cluster) moveFixed(t *testing.T, from, to, name string) fixedMove {
	t.Helper()
	before := c.cloudCalls(t)
	start := time.Now()
	c.mustRun("sim", "pod", "del", from, name)
	var m fixedMove
	for {
		out, err := c.run("sim", "pod", "add", to, name, "--labels", "net=fixed")
		if err == nil {
			break
		}
		if !strings.Contains(out, "(CNI error code 11)") || !strings.Contains(out, "still attached to instance") || !strings.Contains(out, "retry") {
			t.Fatalf("ADD of %s on %s while %s parks its ENI: %v\n%s", name, to, from, err, out)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s not up on %s 30s after its DEL on %s:\n%s", name, to, from, out)
		}
		m.retries++
		time.Sleep(time.Second)
	}
	m.total = time.Since(start)
	m.calls = diffCalls(c.cloudCalls(t), before)
	m.add = c.simPods(t)[name].AddTook
	return m
}

// mustConnect probes TCP between every pair of pods until all connect.
func (c *cluster) mustConnect(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := c.run("sim", "connectivity", "-o", "json", "--timeout", "700ms")
		var mx simcluster.MatrixJSON
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&mx); err != nil {
			t.Fatalf("connectivity -o json: %v\n%s", err, out)
		}
		var failed []string
		for _, r := range mx.Results {
			if !r.OK {
				failed = append(failed, r.From+" -> "+r.To+": "+r.Error)
			}
		}
		if len(failed) == 0 && len(mx.Results) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods do not all connect: %v", failed)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// eniOf returns the cloud's ENI that holds address ip.
func (c *cluster) eniOf(t *testing.T, ip string) sim.ENISnapshot {
	t.Helper()
	for _, e := range c.status(t).Live.Cloud.ENIs {
		for _, a := range e.IPs {
			if a.String() == ip {
				return e
			}
		}
	}
	t.Fatalf("no ENI holds %s", ip)
	return sim.ENISnapshot{}
}

func logMoves(t *testing.T, kind string, moves []fixedMove) {
	var total, add []time.Duration
	for i, m := range moves {
		t.Logf("%s move %d: DEL -> up on the new node %s (%d ADDs refused with 11 first), the ADD that attached %s; cloud calls %d %v",
			kind, i+1, m.total.Round(time.Millisecond), m.retries, m.add.Round(time.Millisecond), sumCalls(m.calls), m.calls)
		total, add = append(total, m.total), append(add, m.add)
	}
	slices.Sort(total)
	slices.Sort(add)
	t.Logf("%s moves (%d): DEL -> up p50 %s max %s; attaching ADD p50 %s max %s", kind, len(moves),
		percentile(total, 50), total[len(total)-1].Round(time.Millisecond), percentile(add, 50), add[len(add)-1].Round(time.Millisecond))
}

// Ensure a fixed-IP member pod deleted and recreated on another node in
// the zone keeps its IP: three trunk nodes, node-1 and node-3 in
// cn-hangzhou-h, node-2 in cn-hangzhou-k. Recreated on its node within
// fixed_eni_hold it gets its member back with no ENI call; recreated on
// node-3 its ADD is refused with CNI error 11 (still attached to node-1's
// instance) until node-1's daemon parks the ENI, then attaches it through
// node-3's trunk with the same address, and the VPC carries its traffic
// there (TCP both ways with a pod on node-3, from node-1 too); in the
// other zone the cloud refuses the attach and the ADD fails with CNI
// error 7 saying why and what to do; releaseAfter after its last DEL the
// node that parked it deletes it. veni ipam verify holds on every node
// throughout. Logs the moves' latency and cloud calls.
func TestSim_FixedIP_Member(t *testing.T) {
	c := mustCluster(t, append([]string{"--nodes", "3", "--instance-type", "ecs.g7.large",
		"--vswitches", "vsw-sim-a=172.30.1.0/24@cn-hangzhou-h,vsw-sim-k=172.30.2.0/24@cn-hangzhou-k",
		"--node-config", "enable_eni_trunking=true", "--node-config", "idle_ip_reclaim_after=1h"}, fixedSimArgs...)...)
	fixedPodNetworking(t, c.testSim, "Trunk", "{type: Fixed, releaseStrategy: TTL, releaseAfter: 8s}")
	c.mustRun("sim", "pod", "add", "node-3", "client")
	c.mustRun("sim", "pod", "add", "node-1", "peer")
	c.mustRun("sim", "pod", "add", "node-1", "db-0", "--labels", "net=fixed")
	ip := c.simPods(t)["db-0"].IP.String()
	e := c.eniOf(t, ip)
	if e.Type != "Member" || e.Tags["veni.io/fixed"] != "true" || e.Tags["veni.io/pod"] != "default/db-0" {
		t.Fatalf("db-0's ENI %s: %s, tags %v", e.ID, e.Type, e.Tags)
	}

	// Back on its node within the hold: its member, no ENI call.
	before := c.cloudCalls(t)
	c.mustRun("sim", "pod", "del", "node-1", "db-0")
	c.mustRun("sim", "pod", "add", "node-1", "db-0", "--labels", "net=fixed")
	if got := c.simPods(t)["db-0"].IP.String(); got != ip {
		t.Fatalf("db-0 recreated on node-1 got %s, want %s", got, ip)
	}
	if calls := diffCalls(c.cloudCalls(t), before); createCalls(calls) != 0 || calls["DetachNetworkInterface"] != 0 {
		t.Fatalf("recreate on the same node made ENI calls: %v", calls)
	}

	var moves []fixedMove
	for i, hop := range [][2]string{{"node-1", "node-3"}, {"node-3", "node-1"}, {"node-1", "node-3"}} {
		moves = append(moves, c.moveFixed(t, hop[0], hop[1], "db-0"))
		p := c.simPods(t)["db-0"]
		if p.IP.String() != ip || p.Node != hop[1] {
			t.Fatalf("move %d: db-0 on %s with %s, want %s with %s", i+1, p.Node, p.IP, hop[1], ip)
		}
		if got := c.eniOf(t, ip); got.ID != e.ID || got.Type != "Member" || got.Status != "InUse" {
			t.Fatalf("move %d: %s is on %s (%s %s), want member %s", i+1, ip, got.ID, got.Type, got.Status, e.ID)
		}
		if moves[i].retries == 0 {
			t.Errorf("move %d: no ADD was refused while the old node held the ENI", i+1)
		}
	}
	c.mustConnect(t)
	for _, n := range []string{"node-1", "node-3"} {
		c.mustVerify(t, n)
	}
	logMoves(t, "member", moves)

	// The other zone: refused, clearly, and the ENI stays parked.
	c.mustRun("sim", "pod", "del", "node-3", "db-0")
	c.waitENI(t, e.ID, "parked", 15*time.Second, func(s sim.ENISnapshot, ok bool) bool {
		return ok && s.Status == "Available" && s.Tags["veni.io/fixed-release-at"] != ""
	})
	out, err := c.run("sim", "pod", "add", "node-2", "db-0", "--labels", "net=fixed")
	if err == nil {
		t.Fatalf("db-0 was added in the other zone:\n%s", out)
	}
	for _, want := range []string{"(CNI error code 7)", "cannot leave its zone", "cn-hangzhou-h", "cn-hangzhou-k",
		"InvalidOperation.AvailabilityZoneMismatch", "veni ipam fixed release default/db-0"} {
		if !strings.Contains(out, want) {
			t.Errorf("the other zone's refusal does not say %q:\n%s", want, out)
		}
	}
	if s, _ := c.cloudENIByID(t, e.ID); s.Status != "Available" {
		t.Fatalf("after the refusal the ENI is %s", s.Status)
	}

	// TTL: node-3 parked it last and deletes it 8 s after the DEL.
	c.waitENI(t, e.ID, "deleted", 20*time.Second, func(_ sim.ENISnapshot, ok bool) bool { return !ok })
	if ev := c.mustRun("sim", "exec", "node-3", "--", c.bin, "ipam", "events", "--config", c.nodes["node-3"].config); !strings.Contains(ev, "FixedENIReleased") {
		t.Errorf("node-3's events say nothing of the release:\n%s", ev)
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		c.mustVerify(t, n)
	}
}

// Ensure a fixed-IP exclusive pod deleted and recreated on another node in
// the zone keeps its IP: its ENI, moved back to node-1 at DEL, is taken
// back on node-1 within the hold with no ENI call, then parked by node-1's
// daemon and attached to node-2, where it is again the pod's eth0 with
// the same address, and pods on both nodes reach it. With releaseStrategy
// Never no node deletes it once parked; veni ipam fixed release does.
func TestSim_FixedIP_Exclusive(t *testing.T) {
	c := mustCluster(t, append([]string{"--nodes", "2", "--min-pool-size", "0", "--node-config", "exclusive_eni_type=eniOnly"}, fixedSimArgs...)...)
	fixedPodNetworking(t, c.testSim, "ENI", "{type: Fixed, releaseStrategy: Never}")
	c.mustRun("sim", "pod", "add", "node-2", "client")
	c.mustRun("sim", "pod", "add", "node-1", "peer")
	c.mustRun("sim", "pod", "add", "node-1", "db-0", "--labels", "net=fixed")
	ip := c.simPods(t)["db-0"].IP.String()
	e := c.eniOf(t, ip)
	if e.Tags["veni.io/fixed"] != "true" {
		t.Fatalf("db-0's ENI %s: tags %v", e.ID, e.Tags)
	}

	before := c.cloudCalls(t)
	c.mustRun("sim", "pod", "del", "node-1", "db-0")
	c.mustRun("sim", "pod", "add", "node-1", "db-0", "--labels", "net=fixed")
	if got := c.simPods(t)["db-0"].IP.String(); got != ip {
		t.Fatalf("db-0 recreated on node-1 got %s, want %s", got, ip)
	}
	if calls := diffCalls(c.cloudCalls(t), before); createCalls(calls) != 0 || calls["DetachNetworkInterface"] != 0 {
		t.Fatalf("recreate on the same node made ENI calls: %v", calls)
	}

	var moves []fixedMove
	for i, hop := range [][2]string{{"node-1", "node-2"}, {"node-2", "node-1"}, {"node-1", "node-2"}} {
		moves = append(moves, c.moveFixed(t, hop[0], hop[1], "db-0"))
		p := c.simPods(t)["db-0"]
		if p.IP.String() != ip || p.Node != hop[1] {
			t.Fatalf("move %d: db-0 on %s with %s, want %s with %s", i+1, p.Node, p.IP, hop[1], ip)
		}
	}
	// Its eth0 is the ENI, on node-2.
	links := podLinks(t, c.name+"-node-2-pod-default-db-0")
	if !strings.Contains(links, "eth0") || !strings.Contains(links, e.MAC) {
		t.Errorf("db-0's eth0 on node-2 is not ENI %s (%s):\n%s", e.ID, e.MAC, links)
	}
	c.mustConnect(t)
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")
	logMoves(t, "exclusive", moves)

	// Never: parked, and kept past any TTL; released by the operator.
	c.mustRun("sim", "pod", "del", "node-2", "db-0")
	c.waitENI(t, e.ID, "parked", 15*time.Second, func(s sim.ENISnapshot, ok bool) bool {
		return ok && s.Status == "Available" && s.Tags["veni.io/fixed-release-at"] == "never"
	})
	list, err := c.nodeVeni("node-1", "ipam", "fixed", "list")
	if err != nil || !strings.Contains(list, e.ID) || !strings.Contains(list, "parked") {
		t.Fatalf("ipam fixed list: %v\n%s", err, list)
	}
	out, err := c.nodeVeni("node-1", "ipam", "fixed", "release", "default/db-0")
	if err != nil || !strings.Contains(out, "deleted fixed eni "+e.ID) {
		t.Fatalf("ipam fixed release: %v\n%s", err, out)
	}
	if _, ok := c.cloudENIByID(t, e.ID); ok {
		t.Fatalf("released ENI %s still in the cloud", e.ID)
	}
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")
}
