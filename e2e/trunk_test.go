package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/fabric"
)

// trunkPodNetworking gives pods labelled net=trunk a trunk member.
const trunkPodNetworking = `apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: trunk-pods}
spec:
  selector:
    podSelector: {matchLabels: {net: trunk}}
  eniOptions: {eniType: Trunk}
`

// trunkSim is a cluster of trunk nodes (ecs.g7.large: 6 members each)
// whose PodNetworking gives pods labelled net=trunk a member.
func trunkSim(t *testing.T, extra ...string) *cluster {
	t.Helper()
	c := mustCluster(t, append([]string{"--nodes", "2", "--instance-type", "ecs.g7.large",
		"--node-config", "enable_eni_trunking=true", "--node-config", "idle_ip_reclaim_after=1h"}, extra...)...)
	pn := filepath.Join(t.TempDir(), "trunk.yaml")
	if err := os.WriteFile(pn, []byte(trunkPodNetworking), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustRun("sim", "policy", "apply", pn)
	return c
}

func (c *cluster) status(t *testing.T) simcluster.StatusReport {
	t.Helper()
	var st simcluster.StatusReport
	if err := json.Unmarshal([]byte(c.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("sim status -o json: %v", err)
	}
	return st
}

// simPods reads the sim's pod records (what "sim pod list" prints), by
// pod name.
func (c *cluster) simPods(t *testing.T) map[string]simcluster.PodRecord {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(simcluster.Paths(c.dir, "*").PodsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]simcluster.PodRecord)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p simcluster.PodRecord
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[p.Pod.Name] = p
	}
	return out
}

// createCalls sums the calls that make or attach an ENI.
func createCalls(m map[string]int) int {
	return m["CreateNetworkInterface"] + m["AttachNetworkInterface"]
}

func sumCalls(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func diffCalls(after, before map[string]int) map[string]int {
	out := make(map[string]int)
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Ensure trunking through the simulated VPC and the unchanged SDK: a
// trunk node's first ENI is a trunk; pods a PodNetworking gives a member
// get one (cold: CreateNetworkInterface and AttachNetworkInterface with the
// trunk, VLAN ID = DeviceIndex), their traffic leaves the trunk tagged with
// it, a deleted pod's member goes warm to the next pod with no ENI call,
// the member limit is a fast CNI error 11 that names it, and veni ipam
// verify passes on every node throughout. Logs ADD latency (cold, warm)
// and cloud calls per member pod.
func TestSim_TrunkMembers(t *testing.T) {
	c := trunkSim(t)
	c.mustRun("sim", "pod", "add", "node-2", "target")
	const n = 4
	before := c.cloudCalls(t)
	for i := range n {
		c.mustRun("sim", "pod", "add", "node-1", fmt.Sprintf("cold%d", i), "--labels", "net=trunk")
	}
	cold := diffCalls(c.cloudCalls(t), before)

	st := c.status(t)
	node1 := ""
	for _, nd := range st.State.Nodes {
		if nd.Name == "node-1" {
			node1 = nd.InstanceID
		}
	}
	var trunkID string
	members := map[netip.Addr]int{} // member address → VLAN ID
	for _, e := range st.Live.Cloud.ENIs {
		if e.InstanceID != node1 {
			continue
		}
		switch e.Type {
		case "Trunk":
			trunkID = e.ID
		case "Member":
			if len(e.IPs) != 1 || e.DeviceIndex < 1 {
				t.Fatalf("member %s: ips %v vlan %d", e.ID, e.IPs, e.DeviceIndex)
			}
			members[e.IPs[0]] = e.DeviceIndex
		}
	}
	if trunkID == "" || len(members) != n {
		t.Fatalf("node-1: trunk %q, %d members (want %d)", trunkID, len(members), n)
	}
	pods := c.simPods(t)
	var coldTook []time.Duration
	for i := range n {
		p := pods[fmt.Sprintf("cold%d", i)]
		if _, ok := members[p.IP]; !ok {
			t.Fatalf("pod %s has %s, which is no member's address %v", p.Pod.Name, p.IP, members)
		}
		coldTook = append(coldTook, p.AddTook)
	}
	c.mustVerify(t, "node-1")
	c.mustVerify(t, "node-2")

	// On the wire: what the member pod sends leaves the trunk tagged.
	p := pods["cold0"]
	vid := sniffVLAN(t, c, trunkID, p, pods["target"].IP)
	if vid != members[p.IP] {
		t.Fatalf("pod %s (%s) left the trunk with vlan %d, want its member's %d", p.Pod.Name, p.IP, vid, members[p.IP])
	}

	// Warm: the deleted pods' members go to the next pods, no ENI made.
	for i := range n {
		c.mustRun("sim", "pod", "del", "node-1", fmt.Sprintf("cold%d", i))
	}
	before = c.cloudCalls(t)
	for i := range n {
		c.mustRun("sim", "pod", "add", "node-1", fmt.Sprintf("warm%d", i), "--labels", "net=trunk")
	}
	warm := diffCalls(c.cloudCalls(t), before)
	if createCalls(warm) != 0 {
		t.Fatalf("warm member ADDs made ENIs: %v", warm)
	}
	pods = c.simPods(t)
	var warmTook []time.Duration
	for i := range n {
		p := pods[fmt.Sprintf("warm%d", i)]
		if _, ok := members[p.IP]; !ok {
			t.Fatalf("warm pod %s has %s, not an idle member's %v", p.Pod.Name, p.IP, members)
		}
		warmTook = append(warmTook, p.AddTook)
	}
	c.mustVerify(t, "node-1")

	// The limit: 6 members on ecs.g7.large.
	for i := range 2 {
		c.mustRun("sim", "pod", "add", "node-1", fmt.Sprintf("fill%d", i), "--labels", "net=trunk")
	}
	start := time.Now()
	out, err := c.run("sim", "pod", "add", "node-1", "over", "--labels", "net=trunk")
	if err == nil {
		t.Fatalf("a 7th member pod was added:\n%s", out)
	}
	for _, want := range []string{"member", "allows 6"} {
		if !strings.Contains(out, want) {
			t.Errorf("the member limit error does not say %q:\n%s", want, out)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the member limit took %s to report", took)
	}
	c.mustVerify(t, "node-1")

	slices.Sort(coldTook)
	slices.Sort(warmTook)
	t.Logf("member pod ADD, %d pods each: cold p50 %s p99 %s; warm p50 %s p99 %s",
		n, percentile(coldTook, 50), percentile(coldTook, 99), percentile(warmTook, 50), percentile(warmTook, 99))
	t.Logf("cloud calls per cold member pod: %.1f (%v over %d pods, daemon included); per warm one: %.1f (%v)",
		float64(sumCalls(cold))/n, cold, n, float64(sumCalls(warm))/n, warm)
}

// sniffVLAN sends UDP datagrams from pod p to dst and returns the VLAN ID
// its first one carries on the VPC end of the trunk (AF_PACKET auxdata).
func sniffVLAN(t *testing.T, c *cluster, trunkID string, p simcluster.PodRecord, dst netip.Addr) int {
	t.Helper()
	vpc, err := ns.GetNS(fabric.NetNSPath(fabric.VPCNetNSName(c.name)))
	if err != nil {
		t.Fatal(err)
	}
	defer vpc.Close()
	pod, err := ns.GetNS(p.Pod.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	var fd int
	err = vpc.Do(func(ns.NetNS) error {
		l, err := net.InterfaceByName(fabric.LinkName(trunkID))
		if err != nil {
			return err
		}
		proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8)
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: l.Index})
	})
	if err != nil {
		t.Fatalf("capture on the trunk's VPC end: %v", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf, oob := make([]byte, 2048), make([]byte, 256)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		err := pod.Do(func(ns.NetNS) error {
			u, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: dst.AsSlice(), Port: 9})
			if err != nil {
				return err
			}
			defer u.Close()
			_, err = u.Write([]byte("veni"))
			return err
		})
		if err != nil {
			t.Fatalf("send from %s: %v", p.Pod.Name, err)
		}
		for {
			nr, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil {
				break
			}
			f := buf[:nr]
			if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP || netip.AddrFrom4([4]byte(f[26:30])) != p.IP {
				continue
			}
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA {
					aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
					if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
						return int(aux.Vlan_tci & 0xfff)
					}
				}
			}
			return 0
		}
	}
	t.Fatalf("nothing from %s (%s) crossed the trunk", p.Pod.Name, p.IP)
	return 0
}

// Ensure a member ADD killed with SIGKILL at any point (creating the
// member, attaching it through the trunk, waiting for it, recording it,
// plumbing the pod) leaks nothing GC does not reclaim: after "veni ipam
// gc" every member the cloud has on the node is in the store, no ENI veni
// made is left unattached, verify passes, and the node still fits its
// instance type's 6 members.
func TestSim_TrunkMembers_CrashSafety(t *testing.T) {
	c := trunkSim(t, "--node-config", "lease_ttl=10s", "--node-config", "attach_timeout=5s",
		"--node-config", "gc_grace=1s", "--daemon-sync-interval", "1s")
	cniPath := []byte("CNI_PATH=" + filepath.Join(c.dir, "cni-bin"))
	kills := 0
	for i := range 8 {
		cmd := exec.Command(c.bin, "sim", "pod", "add", "node-1", fmt.Sprintf("k%d", i), "--labels", "net=trunk", "--dir", c.dir, "--name", c.name)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A cold member ADD takes about a second (create, attach, wait):
		// kill at a different point each time.
		time.Sleep(time.Duration(150+i*150) * time.Millisecond)
		for _, pid := range findProcs(func(_ int, _, environ []byte) bool {
			return bytes.Contains(environ, cniPath) && bytes.Contains(environ, []byte("CNI_COMMAND=ADD"))
		}) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				kills++
			}
		}
		_ = cmd.Wait()
	}
	if kills < 4 {
		t.Fatalf("only %d ADDs killed", kills)
	}
	live := 0
	for name := range c.simPods(t) {
		if strings.HasPrefix(name, "k") {
			live++
		}
	}
	// Past lease_ttl, so the sweep takes what the killed ADDs made.
	time.Sleep(11 * time.Second)
	c.mustRun("sim", "exec", "node-1", "--", c.bin, "ipam", "gc", "--config", c.nodes["node-1"].config)

	st := c.status(t)
	node1 := ""
	for _, nd := range st.State.Nodes {
		if nd.Name == "node-1" {
			node1 = nd.InstanceID
		}
	}
	known := map[string]bool{}
	for _, e := range c.ipamList(t, "node-1").ENIs {
		known[e.ID] = true
	}
	members := 0
	for _, e := range st.Live.Cloud.ENIs {
		ours := e.Tags["veni.io/instance"] == node1
		switch {
		case e.Type == "Member" && e.InstanceID == node1:
			members++
			if !known[e.ID] {
				t.Errorf("member %s is attached to node-1 and unknown to its store", e.ID)
			}
		case ours && e.Status == "Available":
			t.Errorf("eni %s made for node-1 is left unattached", e.ID)
		}
	}
	c.mustVerify(t, "node-1")
	if allocs := len(c.ipamList(t, "node-1").Allocations); allocs != live {
		t.Errorf("%d allocations on node-1, %d live pods", allocs, live)
	}
	// Every slot the killed ADDs took is usable again.
	for i := live; i < 6; i++ {
		c.mustRun("sim", "pod", "add", "node-1", fmt.Sprintf("after%d", i), "--labels", "net=trunk")
	}
	c.mustVerify(t, "node-1")
	t.Logf("%d ADDs killed, %d pods lived, %d members in the cloud after gc", kills, live, members)
}

// Ensure, and measure, what a member pod costs on an ecs.g7.4xlarge (30
// members): 20 cold ADDs (a member each: create, attach through the
// trunk, wait) and, after their DELs, 20 warm ones (an idle member each,
// no ENI call). Logs ADD p50/p99 for both and the cloud calls per pod.
func TestSim_TrunkMembers_Latency(t *testing.T) {
	c := trunkSim(t, "--instance-type", "ecs.g7.4xlarge")
	const n = 20
	add := func(prefix string) ([]time.Duration, map[string]int) {
		before := c.cloudCalls(t)
		for i := range n {
			c.mustRun("sim", "pod", "add", "node-1", fmt.Sprintf("%s%d", prefix, i), "--labels", "net=trunk")
		}
		calls := diffCalls(c.cloudCalls(t), before)
		pods := c.simPods(t)
		var took []time.Duration
		for i := range n {
			took = append(took, pods[fmt.Sprintf("%s%d", prefix, i)].AddTook)
		}
		slices.Sort(took)
		return took, calls
	}
	cold, coldCalls := add("cold")
	members := 0
	for _, e := range c.status(t).Live.Cloud.ENIs {
		if e.Type == "Member" {
			members++
		}
	}
	if members != n {
		t.Fatalf("%d members in the cloud for %d cold member pods", members, n)
	}
	for i := range n {
		c.mustRun("sim", "pod", "del", "node-1", fmt.Sprintf("cold%d", i))
	}
	warm, warmCalls := add("warm")
	c.mustVerify(t, "node-1")
	if createCalls(warmCalls) != 0 {
		t.Fatalf("warm member ADDs made ENIs: %v", warmCalls)
	}
	if percentile(warm, 50) >= percentile(cold, 50) {
		t.Fatalf("warm ADD p50 %s is not below cold %s", percentile(warm, 50), percentile(cold, 50))
	}
	t.Logf("member pod ADD (%d pods each, sequential): cold p50 %s p99 %s, warm p50 %s p99 %s",
		n, percentile(cold, 50), percentile(cold, 99), percentile(warm, 50), percentile(warm, 99))
	t.Logf("cloud calls per member pod: cold %.2f %v, warm %.2f %v (the node daemon's calls included)",
		float64(sumCalls(coldCalls))/n, coldCalls, float64(sumCalls(warmCalls))/n, warmCalls)
}

// Ensure a member pod keeps its VLAN tag when the node's daemon restarts
// on the plain datapath (a daemon that finds no eBPF datapath configured
// removes the fast path's pins of an earlier run; the tagger's are not
// among them): veni ipam verify, which checks the tag, passes before and
// after.
func TestSim_TrunkMembers_DaemonRestart(t *testing.T) {
	c := trunkSim(t, "--datapath", "plain")
	c.mustRun("sim", "pod", "add", "node-1", "m", "--labels", "net=trunk")
	c.mustVerify(t, "node-1")
	daemonOf := func() []int {
		return findProcs(func(_ int, cmdline, _ []byte) bool {
			return bytes.Contains(cmdline, []byte("daemon\x00--config\x00"+c.nodes["node-1"].config))
		})
	}
	old := daemonOf()
	if len(old) != 1 {
		t.Fatalf("node-1 daemons: %v", old)
	}
	if err := syscall.Kill(old[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if now := daemonOf(); len(now) == 1 && now[0] != old[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node-1's daemon did not come back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // its start-up pass
	c.mustVerify(t, "node-1")
}
