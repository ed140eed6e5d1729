package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/pods"
)

// exclusiveSim starts a sim whose nodes are in exclusive ENI mode, with
// extra "sim up" arguments.
func exclusiveSim(t *testing.T, args ...string) *testSim {
	t.Helper()
	s := mustSim(t)
	s.mustRun(append([]string{"sim", "up", "--node-config", "exclusive_eni_type=eniOnly"}, args...)...)
	return s
}

// nodeVeni runs "veni ARGS --config <node's config>" inside a node.
func (s *testSim) nodeVeni(node string, args ...string) (string, error) {
	cfg := filepath.Join(s.dir, "nodes", node, "veni.json")
	return s.run(slices.Concat([]string{"sim", "exec", node, "--", s.bin}, args, []string{"--config", cfg})...)
}

// mustVerify fails unless "veni ipam verify" (store, links, cloud) holds
// on the node.
func (s *testSim) mustVerify(t *testing.T, node string) {
	t.Helper()
	if out, err := s.nodeVeni(node, "ipam", "verify"); err != nil || !strings.Contains(out, "every invariant holds") {
		t.Fatalf("ipam verify on %s: %v\n%s", node, err, out)
	}
}

// cloudENI returns the ENI whose addresses include ip, from "sim status".
func (s *testSim) cloudENI(t *testing.T, ip string) (id string, groups []string) {
	t.Helper()
	var st simcluster.StatusReport
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("sim status -o json: %v", err)
	}
	for _, e := range st.Live.Cloud.ENIs {
		for _, a := range e.IPs {
			if a.String() == ip {
				return e.ID, e.SecurityGroupIDs
			}
		}
	}
	t.Fatalf("no ENI holds %s", ip)
	return "", nil
}

// podLinks lists the pod's links as "name mac".
func podLinks(t *testing.T, netns string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", netns, "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s link: %v\n%s", netns, err, out)
	}
	return string(out)
}

// eniMACIn returns the one ENI MAC (Alibaba's 00:16:3e OUI) in an
// "ip -o link" listing.
func eniMACIn(t *testing.T, links string) string {
	t.Helper()
	var macs []string
	for f := range strings.FieldsSeq(links) {
		if strings.HasPrefix(f, "00:16:3e:") {
			macs = append(macs, f)
		}
	}
	if len(macs) != 1 {
		t.Fatalf("want one ENI MAC in\n%s", links)
	}
	return macs[0]
}

// Ensure exclusive ENI mode gives each pod an ENI of its own, in the
// security groups (and on the vSwitch) its PodNetworking names while a pod
// no PodNetworking selects keeps the node's: the server's own group admits tcp/8080 from
// the node's group, so a client on the other node reaches the server on
// 8080 and not on 8081, and a shared-group pod beside the server on both.
// The pod's eth0 is the ENI (its MAC, its address, the vSwitch gateway),
// "ipam verify" holds, DEL gives the ENI back to the node, and a node
// configured back to shared ENIs is refused with a clear error.
func TestSim_Exclusive_SecurityGroups(t *testing.T) {
	s := exclusiveSim(t, "--nodes", "2", "--min-pool-size", "0")
	web := strings.TrimSpace(s.mustRun("sim", "sg", "create", "--name", "web"))
	s.mustRun("sim", "sg", "authorize", web, "--port", "8080/8080", "--group", "sg-sim-default")
	pn := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(pn, fmt.Appendf(nil, `apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: web}
spec:
  selector:
    podSelector: {matchLabels: {app: web}}
  securityGroupIDs: [%s]
  eniOptions: {eniType: ENI}
---
apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: db}
spec:
  selector:
    podSelector: {matchLabels: {app: db}}
  vSwitchOptions: [vsw-sim-b]
  eniOptions: {eniType: ENI}
`, web), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustRun("sim", "policy", "apply", pn)
	s.mustRun("sim", "pod", "add", "node-1", "client")
	s.mustRun("sim", "pod", "add", "node-2", "server", "--labels", "app=web")
	s.mustRun("sim", "pod", "add", "node-2", "plain")

	// A PodNetworking's vSwitch: node-1's own is vsw-sim-a.
	s.mustRun("sim", "pod", "add", "node-1", "db", "--labels", "app=db")
	if ip := netip.MustParseAddr(podIP(t, s, "db")); !netip.MustParsePrefix("172.30.2.0/24").Contains(ip) {
		t.Errorf("db's address %s is not on vsw-sim-b (172.30.2.0/24)", ip)
	}
	serverIP, clientIP, plainIP := podIP(t, s, "server"), podIP(t, s, "client"), podIP(t, s, "plain")
	serverENI, groups := s.cloudENI(t, serverIP)
	if !slices.Equal(groups, []string{web}) {
		t.Errorf("server's ENI %s is in %v, want [%s]", serverENI, groups, web)
	}
	for _, ip := range []string{clientIP, plainIP} {
		if id, groups := s.cloudENI(t, ip); !slices.Equal(groups, []string{"sg-sim-default"}) {
			t.Errorf("ENI %s of %s is in %v, want the node's [sg-sim-default]", id, ip, groups)
		}
	}
	// The pod's eth0 is the ENI itself; veth1 goes to the node.
	links := podLinks(t, s.name+"-node-2-pod-default-server")
	if !strings.Contains(links, "eth0") || !strings.Contains(links, "veth1") {
		t.Errorf("server's links:\n%s", links)
	}
	var st simcluster.StatusReport
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, e := range st.Live.Cloud.ENIs {
		if e.ID == serverENI && !strings.Contains(links, e.MAC) {
			t.Errorf("server's eth0 is not ENI %s (%s):\n%s", e.ID, e.MAC, links)
		}
	}

	probe := func() (map[string]bool, string) {
		out, _ := s.run("sim", "connectivity", "-o", "json", "--timeout", "700ms", "--port", "8080,8081")
		var m simcluster.MatrixJSON
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&m); err != nil {
			t.Fatalf("connectivity -o json: %v\n%s", err, out)
		}
		got := map[string]bool{}
		for _, r := range m.Results {
			if strings.HasSuffix(r.From, "client") {
				got[fmt.Sprintf("%s:%d", r.To[strings.LastIndex(r.To, "/")+1:], r.Port)] = r.OK
			}
		}
		return got, out
	}
	want := map[string]bool{"server:8080": true, "server:8081": false, "plain:8080": true, "plain:8081": true, "db:8080": true, "db:8081": true}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, out := probe()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client -> pod:port %v, want %v\n%s", got, want, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.mustVerify(t, "node-1")
	s.mustVerify(t, "node-2")

	// DEL: the ENI is back in the node, down, under veni's name for it.
	s.mustRun("sim", "pod", "del", "node-2", "server")
	out, err := s.run("sim", "exec", "node-2", "--", "ip", "-o", "link")
	if err != nil {
		t.Fatal(err)
	}
	back := false
	for _, e := range st.Live.Cloud.ENIs {
		if e.ID == serverENI {
			for _, l := range strings.Split(out, "\n") {
				back = back || (strings.Contains(l, e.MAC) && strings.Contains(l, "veni-x"))
			}
		}
	}
	if !back {
		t.Errorf("server's ENI %s is not back in node-2:\n%s", serverENI, out)
	}
	s.mustVerify(t, "node-2")

	// The mode is the node's for life.
	cfgPath := filepath.Join(s.dir, "nodes", "node-1", "veni.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "exclusive_eni_type")
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = s.run("sim", "pod", "add", "node-1", "late")
	if err == nil {
		t.Fatalf("a node switched from exclusive to shared ENIs took a pod:\n%s", out)
	}
	for _, w := range []string{"exclusive ENI mode", "k8s.aliyun.com/exclusive-mode-eni-type"} {
		if !strings.Contains(out, w) {
			t.Errorf("the refusal does not say %q:\n%s", w, out)
		}
	}
}

// Ensure an exclusive ENI is never stranded by a plugin killed (SIGKILL)
// in the middle of an ADD, at both crash points: after the store names the
// pod as the ENI's owner, and after the ENI moved into the pod's namespace
// (which the sim's runtime then destroys, as a failed sandbox's). "ipam
// verify" reports the dead owner and no lost ENI; "veni ipam gc" releases
// it and the ENI is back in the node; the next pod gets it (no new ENI).
func TestSim_Exclusive_CrashMidAdd(t *testing.T) {
	s := exclusiveSim(t, "--nodes", "1", "--min-pool-size", "1", "--node-config", "gc_grace=0s")
	s.mustRun("sim", "pod", "add", "node-1", "first")
	for _, point := range []string{"reserved", "moved"} {
		t.Run(point, func(t *testing.T) {
			cmd := exec.Command(s.bin, "sim", "pod", "add", "node-1", "crash-"+point, "--dir", s.dir, "--name", s.name)
			cmd.Env = append(os.Environ(), "VENI_TEST_CRASH_AT="+point)
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "killed") {
				t.Fatalf("ADD with the plugin killed at %s: %v\n%s", point, err, out)
			}
			out, _ := s.nodeVeni("node-1", "ipam", "verify")
			if !strings.Contains(out, "owner-gone") || strings.Contains(out, "eni-link") {
				t.Fatalf("verify after the crash should name the dead owner and no lost ENI:\n%s", out)
			}
			// The ENI the crash left in the pod, by its MAC (the cloud's
			// 00:16:3e OUI; the pod's end of the veth has a random one).
			// Counting the node's ENIs instead races the daemon, which may
			// attach a warm ENI meanwhile.
			// The runtime removed the failed pod's namespace; the ENI
			// lives on in it through the node's pin, the only pin besides
			// first's.
			var eniMAC string
			if point == "moved" {
				first := eniMACIn(t, podLinks(t, s.name+"-node-1-pod-default-first"))
				pins, _ := filepath.Glob(filepath.Join(s.dir, "nodes", "node-1", "netns", "*"))
				for _, pin := range pins {
					out, err := exec.Command("nsenter", "--net="+pin, "ip", "-o", "link").CombinedOutput()
					if err != nil {
						t.Fatalf("links in pin %s: %v\n%s", pin, err, out)
					}
					if mac := eniMACIn(t, string(out)); mac != first {
						eniMAC = mac
					}
				}
				if eniMAC == "" {
					t.Fatalf("no pinned namespace holds the crashed pod's ENI (pins %v)", pins)
				}
			}
			if out, err := s.nodeVeni("node-1", "ipam", "gc"); err != nil || !strings.Contains(out, "1 released") {
				t.Fatalf("ipam gc: %v\n%s", err, out)
			}
			s.mustVerify(t, "node-1")
			if after := s.mustRun("sim", "exec", "node-1", "--", "ip", "-o", "link"); eniMAC != "" && !strings.Contains(after, eniMAC) {
				t.Errorf("the ENI %s did not come back to the node:\n%s", eniMAC, after)
			}
			pins, _ := filepath.Glob(filepath.Join(s.dir, "nodes", "node-1", "netns", "*"))
			if len(pins) != 1 { // first's
				t.Errorf("pins left after gc: %v", pins)
			}
			var st simcluster.StatusReport
			if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
				t.Fatal(err)
			}
			// The next pod takes an ENI that existed before it (the
			// released one, or a warm one the daemon made meanwhile), not
			// a new one.
			existed := map[string]bool{}
			for _, e := range st.Live.Cloud.ENIs {
				existed[e.ID] = true
			}
			s.mustRun("sim", "pod", "add", "node-1", "next-"+point)
			if id, _ := s.cloudENI(t, podIP(t, s, "next-"+point)); !existed[id] {
				t.Errorf("the next pod made a new ENI %s: the released one was not reused", id)
			}
			s.mustRun("sim", "pod", "del", "node-1", "next-"+point)
			s.mustVerify(t, "node-1")
		})
	}
}

// Ensure a node out of ENIs fails the ADD at once with CNI error 11 and a
// message that says why (one pod per ENI, the limit, what to change),
// instead of hanging until the runtime's timeout; a DEL makes room again.
// A fixed pod on the full node takes a warm ENI as its own.
func TestSim_Exclusive_Limit(t *testing.T) {
	s := exclusiveSim(t, "--nodes", "1", "--min-pool-size", "0", "--node-config", "max_eni=2")
	s.mustRun("sim", "pod", "add", "node-1", "a")
	s.mustRun("sim", "pod", "add", "node-1", "b")
	start := time.Now()
	out, err := s.run("sim", "pod", "add", "node-1", "c")
	if err == nil {
		t.Fatalf("a third pod on a node of two ENIs:\n%s", out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	for _, w := range []string{"CNI error code 11", "exclusive eni mode", "2 of 2 secondary enis", "max_eni"} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
			t.Errorf("the refusal does not say %q:\n%s", w, out)
		}
	}
	out = s.mustRun("sim", "exec", "node-1", "--", s.bin, "status", "--config", filepath.Join(s.dir, "nodes", "node-1", "veni.json"))
	if !strings.Contains(out, "exclusive") {
		t.Errorf("status does not show exclusive mode:\n%s", out)
	}
	s.mustRun("sim", "pod", "del", "node-1", "a")
	s.mustRun("sim", "pod", "add", "node-1", "c")
	s.mustVerify(t, "node-1")

	// A fixed pod on the full node takes the warm ENI b left as its own
	// (TestSim_FixedIP_Exclusive moves one between nodes).
	pn := filepath.Join(t.TempDir(), "sts.yaml")
	if err := os.WriteFile(pn, []byte(`apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: sts}
spec:
  selector:
    podSelector: {matchLabels: {app: sts}}
  allocationType: {type: Fixed, releaseStrategy: Never}
  eniOptions: {eniType: ENI}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustRun("sim", "policy", "apply", pn)
	s.mustRun("sim", "pod", "del", "node-1", "b")
	s.mustRun("sim", "pod", "add", "node-1", "sts-0", "--labels", "app=sts")
	if id, _ := s.cloudENI(t, podIP(t, s, "sts-0")); id == "" {
		t.Fatal("sts-0 has no ENI")
	}
	s.mustVerify(t, "node-1")
}

// Ensure CHECK, STATUS and GC work for exclusive pods through libcni: CHECK
// passes on a healthy pod and names the route when the pod's default route
// via the vSwitch gateway is gone; GC of every pod but one gives the other
// pod's ENI back to the node, and "ipam verify" holds.
func TestCNI_Exclusive_CheckGC(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "0", "--node-config", "exclusive_eni_type=eniOnly")
	ctx := t.Context()
	rt := c.nodes["node-1"].rt
	keep := c.newPod(t, "node-1", "keep")
	drop := c.newPod(t, "node-1", "drop")
	if _, _, err := c.add(ctx, "node-1", keep); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.add(ctx, "node-1", drop); err != nil {
		t.Fatal(err)
	}
	if err := rt.Check(ctx, keep); err != nil {
		t.Fatalf("CHECK on a healthy exclusive pod: %v", err)
	}
	if err := rt.Status(ctx); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	def, err := exec.Command("ip", "-n", filepath.Base(keep.NetNS), "route", "show", "default").Output()
	if err != nil || !strings.Contains(string(def), "onlink") {
		t.Fatalf("the pod's default route: %q, %v", def, err)
	}
	if out, err := exec.Command("ip", "-n", filepath.Base(keep.NetNS), "route", "del", "default").CombinedOutput(); err != nil {
		t.Fatalf("break the pod's route: %v\n%s", err, out)
	}
	if err := rt.Check(ctx, keep); err == nil || !strings.Contains(err.Error(), "route") {
		t.Fatalf("CHECK without the default route: %v, want an error naming the route", err)
	}
	if err := rt.GC(ctx, []pods.Pod{keep}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	l := c.ipamList(t, "node-1")
	if len(l.Allocations) != 1 {
		t.Fatalf("after GC keeping one pod: allocations %+v", l.Allocations)
	}
	links := c.mustRun("sim", "exec", "node-1", "--", "ip", "-o", "link")
	if !strings.Contains(links, "veni-x") {
		t.Errorf("the dropped pod's ENI is not back in the node:\n%s", links)
	}
	// verify sees the broken pod too, and holds once it is mended.
	verify := []string{"sim", "exec", "node-1", "--", c.bin, "ipam", "verify", "--config", c.nodes["node-1"].config}
	if out, err := c.run(verify...); err == nil || !strings.Contains(out, "plumbing") || !strings.Contains(out, "pod route missing") {
		t.Errorf("verify with the pod's route gone: %v\n%s", err, out)
	}
	mend := append([]string{"-n", filepath.Base(keep.NetNS), "route", "add"}, strings.Fields(string(def))...)
	if out, err := exec.Command("ip", mend...).CombinedOutput(); err != nil {
		t.Fatalf("mend the pod's route: %v\n%s", err, out)
	}
	if err := rt.Check(ctx, keep); err != nil {
		t.Errorf("CHECK after mending: %v", err)
	}
	if out := c.mustRun(verify...); !strings.Contains(out, "every invariant holds") {
		t.Errorf("verify:\n%s", out)
	}
}
