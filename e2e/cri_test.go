package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/internal/crictest"
	"github.com/veni-cni/veni/internal/testutil"
)

// criNode is a simulated node whose container runtime is containerd,
// driven through its CRI by a kubelet stand-in.
type criNode struct {
	name    string
	vswitch netip.Prefix // the CIDR of the node's vSwitch
	ctrd    *crictest.Containerd
	kubelet *crictest.Kubelet
}

// mustContainerds starts containerd in each node's network namespace, on
// the node's CNI files (the sim's plugin dir, the node's conflist), all at
// once. They are stopped, their sandboxes removed first, when the test
// ends, before the sim goes down.
func (c *cluster) mustContainerds(tb testing.TB, names ...string) map[string]criNode {
	tb.Helper()
	st, err := simcluster.ReadState(c.dir)
	if err != nil {
		tb.Fatal(err)
	}
	opts := make([]crictest.Options, len(names))
	for i, name := range names {
		opts[i] = crictest.Options{
			Name:       name,
			NetNS:      c.nodes[name].netns,
			CNIBinDir:  st.CNIBin(),
			CNIConfDir: st.Paths(name).ConfDir,
		}
	}
	ctrds := crictest.StartContainerds(tb, opts...)
	nodes := make(map[string]criNode, len(names))
	for i, name := range names {
		n, err := st.FindNode(name)
		if err != nil {
			tb.Fatal(err)
		}
		var cidr netip.Prefix
		for _, v := range st.VSwitches {
			if v.ID == n.VSwitchID {
				cidr = v.CIDR
			}
		}
		if !cidr.IsValid() {
			tb.Fatalf("node %s: vSwitch %s not in the sim's state", name, n.VSwitchID)
		}
		nodes[name] = criNode{name: name, vswitch: cidr, ctrd: ctrds[i], kubelet: ctrds[i].Kubelet()}
	}
	return nodes
}

// newCRIPod names a pod as an API server would: a namespace, a name, a
// fresh uid.
func newCRIPod(name string) crictest.Pod {
	return crictest.Pod{Namespace: "e2e-cri", Name: name, UID: rand.Text()}
}

// criAlloc is an allocation as "veni ipam list -o json" shows it, with
// what veni recorded of its owner.
type criAlloc struct {
	ContainerID  string     `json:"containerID"`
	IfName       string     `json:"ifName"`
	PodNamespace string     `json:"podNamespace"`
	PodName      string     `json:"podName"`
	PodUID       string     `json:"podUID"`
	IP           netip.Addr `json:"ip"`
	State        string     `json:"state"`
	NetNS        string     `json:"netns"`
	HostVeth     string     `json:"hostVeth"`
}

// criAllocs returns the node's allocations by container (sandbox) id.
func (c *cluster) criAllocs(tb testing.TB, node string) map[string]criAlloc {
	tb.Helper()
	out := c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "list", "-o", "json", "--config", c.nodes[node].config)
	var l struct {
		Allocations []criAlloc `json:"allocations"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		tb.Fatalf("ipam list on %s: %v\n%s", node, err, out)
	}
	m := make(map[string]criAlloc, len(l.Allocations))
	for _, a := range l.Allocations {
		m[a.ContainerID] = a
	}
	return m
}

// nodeLinks is "ip -br link" in the node.
func (c *cluster) nodeLinks(tb testing.TB, node string) string {
	tb.Helper()
	return c.mustRun("sim", "exec", node, "--", "ip", "-br", "link")
}

// mustSandbox checks what containerd and veni say of a sandbox that runs:
// ready, a vSwitch address, a netns, and veni's allocation bound to it
// with the pod's namespace, name and uid that containerd put in CNI_ARGS.
func (c *cluster) mustSandbox(tb testing.TB, n criNode, sb crictest.Sandbox, allocs map[string]criAlloc) {
	tb.Helper()
	if sb.State.String() != "SANDBOX_READY" || sb.NetNS == "" {
		tb.Errorf("sandbox %s of %s on %s: state %s, netns %q", sb.ID, sb.Pod, n.name, sb.State, sb.NetNS)
	}
	if !n.vswitch.Contains(sb.IP) {
		tb.Errorf("sandbox of %s on %s: ip %v, want an address of the node's vSwitch %s", sb.Pod, n.name, sb.IP, n.vswitch)
	}
	a, ok := allocs[sb.ID]
	if !ok {
		tb.Errorf("veni has no allocation for sandbox %s of %s on %s", sb.ID, sb.Pod, n.name)
		return
	}
	want := criAlloc{ContainerID: sb.ID, IfName: "eth0", PodNamespace: sb.Pod.Namespace, PodName: sb.Pod.Name, PodUID: sb.Pod.UID,
		IP: sb.IP, State: "bound", NetNS: sb.NetNS, HostVeth: a.HostVeth}
	if a != want || a.HostVeth == "" {
		tb.Errorf("allocation of %s on %s:\n got %+v\nwant %+v (and a host veth)", sb.Pod, n.name, a, want)
	}
}

// asTestPods turns sandboxes into the probes' pods.
func asTestPods(node string, sbs ...crictest.Sandbox) []testPod {
	var out []testPod
	for _, sb := range sbs {
		out = append(out, testPod{node: node, ip: sb.IP, pod: pods.Pod{Namespace: sb.Pod.Namespace, Name: sb.Pod.Name, UID: sb.Pod.UID, ContainerID: sb.ID, NetNS: sb.NetNS}})
	}
	return out
}

// mustNothingLeft checks that a node whose sandboxes are all removed has
// none left in containerd, no allocation, no pod veth, no namespace or
// other mount in containerd's directory, and a store that agrees with the
// node and the cloud.
func (c *cluster) mustNothingLeft(tb testing.TB, n criNode) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if items, err := n.kubelet.Sandboxes(ctx); err != nil || len(items) != 0 {
		tb.Errorf("%s: containerd still lists %d sandboxes (%v)", n.name, len(items), err)
	}
	if allocs := c.criAllocs(tb, n.name); len(allocs) != 0 {
		tb.Errorf("%s: allocations left: %+v", n.name, allocs)
	}
	if links := c.nodeLinks(tb, n.name); hostVeths(links) != 0 {
		tb.Errorf("%s: pod veths left:\n%s", n.name, links)
	}
	if m := n.ctrd.Mounts(); len(m) != 0 {
		tb.Errorf("%s: mounts left under containerd's directory: %v", n.name, m)
	}
	if entries, err := os.ReadDir(n.ctrd.NetNSDir()); err == nil && len(entries) != 0 {
		tb.Errorf("%s: files left in containerd's netns directory: %v", n.name, entries)
	}
	c.mustVerify(tb, n.name)
}

// Ensure sandboxes that containerd runs through its CRI on two nodes get
// addresses of their node's vSwitch from veni, recorded with the pod's
// namespace, name and uid from CNI_ARGS; that they reach each other within
// and across nodes; and that StopPodSandbox (DEL with the netns) frees the
// address and the host veth at once, RemovePodSandbox (DEL again, without
// a netns) succeeds, and neither disturbs the other pods.
func TestCRI_RunPodSandbox_TwoNodes(t *testing.T) {
	c := mustCluster(t, "--nodes", "2")
	nodes := c.mustContainerds(t, "node-1", "node-2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sandboxes := map[string][]crictest.Sandbox{}
	var all []testPod
	for _, name := range []string{"node-1", "node-2"} {
		n := nodes[name]
		for i := range 2 {
			sb, err := n.kubelet.RunPod(ctx, newCRIPod(fmt.Sprintf("%s-%d", name, i)))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sandboxes[name] = append(sandboxes[name], sb)
		}
		allocs := c.criAllocs(t, name)
		for _, sb := range sandboxes[name] {
			c.mustSandbox(t, n, sb, allocs)
			// containerd runs its own loopback network beside the
			// conflist: veni, invoked as "loopback", brings lo up.
			withLoopback(t, sb.NetNS, func(_ *netlink.Handle, lo netlink.Link) error {
				if lo.Attrs().Flags&net.FlagUp == 0 {
					t.Errorf("%s: lo of %s is down", name, sb.Pod)
				}
				return nil
			})
		}
		all = append(all, asTestPods(name, sandboxes[name]...)...)
	}
	if t.Failed() {
		t.FailNow()
	}
	if fails := probeAll(ctx, all); len(fails) > 0 {
		t.Fatalf("sandboxes cannot connect:\n%s", summarize(fails, 10))
	}

	// Delete the first pod of each node, one CRI call at a time.
	var rest []testPod
	for _, name := range []string{"node-1", "node-2"} {
		n, sb := nodes[name], sandboxes[name][0]
		veth := c.criAllocs(t, name)[sb.ID].HostVeth
		if err := n.kubelet.StopPod(ctx, sb.ID); err != nil {
			t.Fatalf("%s: stop %s: %v", name, sb.Pod, err)
		}
		if a, ok := c.criAllocs(t, name)[sb.ID]; ok {
			t.Errorf("%s: after StopPodSandbox of %s the allocation stays: %+v", name, sb.Pod, a)
		}
		if links := c.nodeLinks(t, name); strings.Contains(links, veth+"@") || strings.Contains(links, veth+" ") {
			t.Errorf("%s: after StopPodSandbox of %s its host veth %s stays:\n%s", name, sb.Pod, veth, links)
		}
		if st, err := n.kubelet.Sandbox(ctx, sb.ID); err != nil || st.State.String() != "SANDBOX_NOTREADY" {
			t.Errorf("%s: stopped sandbox %s: state %s, %v", name, sb.Pod, st.State, err)
		}
		c.mustVerify(t, name)
		if err := n.kubelet.RemovePod(ctx, sb.ID); err != nil {
			t.Fatalf("%s: remove %s (DEL without netns): %v", name, sb.Pod, err)
		}
		items, err := n.kubelet.Sandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.GetId() == sb.ID {
				t.Errorf("%s: removed sandbox %s still listed", name, sb.Pod)
			}
		}
		if _, err := os.Stat(sb.NetNS); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: removed sandbox's netns %s: %v", name, sb.NetNS, err)
		}
		c.mustVerify(t, name)
		rest = append(rest, asTestPods(name, sandboxes[name][1:]...)...)
	}
	if fails := probeAll(ctx, rest); len(fails) > 0 {
		t.Fatalf("remaining sandboxes cannot connect after the others were removed:\n%s", summarize(fails, 10))
	}

	for _, name := range []string{"node-1", "node-2"} {
		for _, sb := range sandboxes[name][1:] {
			if err := nodes[name].kubelet.DeletePod(ctx, sb.ID); err != nil {
				t.Fatalf("%s: delete %s: %v", name, sb.Pod, err)
			}
		}
		c.mustNothingLeft(t, nodes[name])
	}
}

// criMethods are the CRI calls whose latencies the tests report.
var criMethods = []string{"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"}

// criLatencies logs the p50 and p99 of the CRI's pod calls and returns
// the p50s.
func criLatencies(tb testing.TB, what string, clients ...*crictest.Client) map[string]time.Duration {
	tb.Helper()
	var parts []string
	p50 := map[string]time.Duration{}
	for _, m := range criMethods {
		var ds []time.Duration
		for _, cl := range clients {
			ds = append(ds, cl.Latencies(m)...)
		}
		p50[m] = crictest.Quantile(ds, 0.5)
		parts = append(parts, fmt.Sprintf("%s p50 %v p99 %v (n=%d)", m,
			p50[m].Round(time.Millisecond), crictest.Quantile(ds, 0.99).Round(time.Millisecond), len(ds)))
	}
	tb.Logf("%s: %s", what, strings.Join(parts, "; "))
	return p50
}

// criOneAtATime runs, stops, then removes n sandboxes, one CRI call at a
// time, logs the latencies and returns their p50 by CRI method.
func criOneAtATime(tb testing.TB, ctx context.Context, what string, k *crictest.Kubelet, n int) map[string]time.Duration {
	tb.Helper()
	k.CRI.ResetLatencies()
	var sbs []crictest.Sandbox
	for i := range n {
		sb, err := k.RunPod(ctx, newCRIPod(fmt.Sprintf("seq-%d", i)))
		if err != nil {
			tb.Fatal(err)
		}
		sbs = append(sbs, sb)
	}
	for _, sb := range sbs {
		if err := k.StopPod(ctx, sb.ID); err != nil {
			tb.Fatal(err)
		}
	}
	for _, sb := range sbs {
		if err := k.RemovePod(ctx, sb.ID); err != nil {
			tb.Fatal(err)
		}
	}
	return criLatencies(tb, fmt.Sprintf("%s, %d sandboxes one at a time", what, n), k.CRI)
}

// referenceCNIDir holds Debian's reference plugins (containernetworking-
// plugins; hack/deps.sh bench installs them).
const referenceCNIDir = "/usr/lib/cni"

// mustReferenceContainerd starts a containerd in a plain network namespace
// whose pods get ptp + host-local, the baseline "make bench" compares veni
// with; nil when the reference plugins are not installed.
func mustReferenceContainerd(tb testing.TB) *crictest.Containerd {
	tb.Helper()
	for _, p := range []string{"ptp", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(referenceCNIDir, p)); err != nil {
			tb.Logf("no reference figures: %v (hack/deps.sh bench installs containernetworking-plugins)", err)
			return nil
		}
	}
	name, _ := testutil.NewNetNS(tb)
	dir := tb.TempDir()
	confDir := filepath.Join(dir, "net.d")
	ipam := map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": "10.244.0.0/16"}}},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}}, "dataDir": filepath.Join(dir, "host-local")}
	// Debian 12's plugins speak up to CNI 1.0.0.
	conflist, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "ref", "plugins": []any{
		map[string]any{"type": "ptp", "ipMasq": false, "ipam": ipam}}})
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-ref.conflist"), conflist, 0o644); err != nil {
		tb.Fatal(err)
	}
	return crictest.StartContainerd(tb, crictest.Options{Name: "ref", NetNS: "/run/netns/" + name, CNIBinDir: referenceCNIDir, CNIConfDir: confDir})
}

// forEach runs fn(i) for i in [0, n) all at once and returns the errors.
func forEach(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}

// Ensure 20 sandboxes per node started at once through the CRI all get
// distinct addresses, reach across nodes, and leave nothing once stopped
// and removed at once; and measure the CRI's pod calls, one at a time (to
// compare with the reference plugins' figures) and 20 at once per node.
func TestCRI_RunPodSandbox_Parallel20(t *testing.T) {
	const perNode = 20
	// A warm pool, so the figures are the runtime's and veni's ADD, not
	// the cloud's; room for every released address, so the daemon deletes
	// no ENI while the test checks the store against the cloud.
	c := mustCluster(t, "--nodes", "2", "--min-pool-size", fmt.Sprint(perNode), "--max-pool-size", fmt.Sprint(3*perNode),
		"--daemon-sync-interval", "1s")
	nodes := c.mustContainerds(t, "node-1", "node-2")
	names := []string{"node-1", "node-2"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, name := range names {
		deadline := time.Now().Add(30 * time.Second)
		for free := 0; free < perNode; free = c.ipamList(t, name).free() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: pool has %d free addresses after 30s, want %d", name, free, perNode)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// One at a time on node-1, then the same through the reference
	// plugins, so the figures come with a yardstick from the same run.
	n := nodes["node-1"]
	ref := mustReferenceContainerd(t)
	seq := criOneAtATime(t, ctx, "veni", n.kubelet, perNode)
	if ref != nil {
		logRatios(t, "one at a time", seq, criOneAtATime(t, ctx, "ptp+host-local", ref.Kubelet(), perNode))
	}
	c.mustNothingLeft(t, n)

	// perNode at once on each node.
	kubelets := map[string]*crictest.Kubelet{}
	for _, name := range names {
		kubelets[name] = nodes[name].kubelet
		kubelets[name].CRI.ResetLatencies()
	}
	runs := runAtOnce(t, ctx, kubelets, perNode)
	seen := map[netip.Addr]string{}
	var all []testPod
	for _, name := range names {
		allocs := c.criAllocs(t, name)
		if len(allocs) != perNode {
			t.Errorf("%s: %d allocations, want %d", name, len(allocs), perNode)
		}
		for _, r := range runs {
			if r.node != name {
				continue
			}
			c.mustSandbox(t, nodes[name], r.sb, allocs)
			if other, dup := seen[r.sb.IP]; dup {
				t.Errorf("%s given to %s and %s", r.sb.IP, other, r.sb.Pod)
			}
			seen[r.sb.IP] = r.sb.Pod.String()
			all = append(all, asTestPods(name, r.sb)...)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// A ring alternating nodes: every sandbox dials one on the other node.
	var fails []string
	servers := make([]*pods.EchoServer, 0, len(all))
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, p := range all {
		s, err := pods.Serve(p.pod.NetNS, p.ip)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	for i, err := range forEach(len(all), func(i int) error {
		return pods.Dial(ctx, all[i].pod.NetNS, all[(i+1)%len(all)].ip, 5*time.Second)
	}) {
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s@%s: %v", all[i].pod.Name, all[i].node, err))
		}
	}
	if len(fails) > 0 {
		t.Fatalf("sandboxes cannot reach the other node:\n%s", summarize(fails, 10))
	}

	deleteAtOnce(t, ctx, kubelets, runs)
	par := criLatencies(t, fmt.Sprintf("veni, %d sandboxes at once on each of 2 nodes", perNode), kubelets["node-1"].CRI, kubelets["node-2"].CRI)
	for _, name := range names {
		c.mustNothingLeft(t, nodes[name])
	}
	// The same load on the machine through the reference plugins: all the
	// sandboxes at once in its one namespace.
	if ref != nil {
		k := ref.Kubelet()
		k.CRI.ResetLatencies()
		deleteAtOnce(t, ctx, map[string]*crictest.Kubelet{"ref": k}, runAtOnce(t, ctx, map[string]*crictest.Kubelet{"ref": k}, 2*perNode))
		logRatios(t, "all at once", par, criLatencies(t, fmt.Sprintf("ptp+host-local, %d sandboxes at once", 2*perNode), k.CRI))
	}
}

// placed is a sandbox and the node it runs on.
type placed struct {
	node string
	sb   crictest.Sandbox
}

// runAtOnce runs perNode sandboxes on every node of kubelets, all at once.
func runAtOnce(tb testing.TB, ctx context.Context, kubelets map[string]*crictest.Kubelet, perNode int) []placed {
	tb.Helper()
	var names []string
	for name := range kubelets {
		names = append(names, name)
	}
	slices.Sort(names)
	runs := make([]placed, perNode*len(names))
	errs := forEach(len(runs), func(i int) error {
		name := names[i%len(names)]
		sb, err := kubelets[name].RunPod(ctx, newCRIPod(fmt.Sprintf("par-%d", i)))
		runs[i] = placed{name, sb}
		return err
	})
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("RunPodSandbox, %d at once per node: %v", perNode, err)
	}
	return runs
}

// deleteAtOnce stops every sandbox of runs at once, then removes them all
// at once.
func deleteAtOnce(tb testing.TB, ctx context.Context, kubelets map[string]*crictest.Kubelet, runs []placed) {
	tb.Helper()
	if err := errors.Join(forEach(len(runs), func(i int) error { return kubelets[runs[i].node].StopPod(ctx, runs[i].sb.ID) })...); err != nil {
		tb.Fatalf("StopPodSandbox, all at once: %v", err)
	}
	if err := errors.Join(forEach(len(runs), func(i int) error { return kubelets[runs[i].node].RemovePod(ctx, runs[i].sb.ID) })...); err != nil {
		tb.Fatalf("RemovePodSandbox, all at once: %v", err)
	}
}

// logRatios logs veni's p50s over the reference's.
func logRatios(tb testing.TB, what string, veni, ref map[string]time.Duration) {
	tb.Helper()
	var ratios []string
	for _, m := range criMethods {
		ratios = append(ratios, fmt.Sprintf("%s %.2f", m, float64(veni[m])/float64(ref[m])))
	}
	tb.Logf("%s, p50 veni / ptp+host-local: %s", what, strings.Join(ratios, ", "))
}

// Ensure a sandbox whose ADD fails (the pool is empty and the vSwitch has
// no address left) fails RunPodSandbox with veni's own error in the CRI's
// answer, and leaves no sandbox, allocation, veth or namespace behind; and
// that the node runs sandboxes again once the vSwitch has room.
func TestCRI_RunPodSandbox_ADDFails(t *testing.T) {
	// An empty pool that stays empty, and a short back-off after "no
	// address left" so that the node recovers within the test.
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "0", "--max-pool-size", "0", "--node-config", "vswitch_backoff=2s")
	nodes := c.mustContainerds(t, "node-1")
	n := nodes["node-1"]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := simcluster.ReadState(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	vsw := st.Nodes[0].VSwitchID
	if free := c.ipamList(t, "node-1").free(); free != 0 {
		t.Fatalf("pool has %d free addresses: the ADD would not need the cloud", free)
	}
	c.mustRun("sim", "fault", "--vswitch", vsw, "--vswitch-free", "0")

	start := time.Now()
	sb, err := n.kubelet.RunPod(ctx, newCRIPod("no-room"))
	t.Logf("RunPodSandbox failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil {
		t.Fatalf("RunPodSandbox succeeded with an exhausted vSwitch: %+v", sb)
	}
	for _, want := range []string{`plugin type="veni" failed (add)`, "no free VPC address for the pod yet", "vswitch " + vsw + " has no free address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the CRI's error lacks %q: %v", want, err)
		}
	}
	c.mustNothingLeft(t, n)

	// kubelet retries a pod whose sandbox failed; veni answers from its
	// back-off until it ends, then asks the cloud again.
	c.mustRun("sim", "fault", "--vswitch", vsw, "--clear")
	deadline := time.Now().Add(20 * time.Second)
	for sb, err = n.kubelet.RunPod(ctx, newCRIPod("room-again")); err != nil; sb, err = n.kubelet.RunPod(ctx, newCRIPod("room-again")) {
		if !strings.Contains(err.Error(), "backing off") || time.Now().After(deadline) {
			t.Fatalf("RunPodSandbox once the vSwitch has room: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.mustSandbox(t, n, sb, c.criAllocs(t, "node-1"))
	if err := n.kubelet.DeletePod(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	c.mustNothingLeft(t, n)
}
