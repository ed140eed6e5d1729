package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/store"
)

// The CNI verbs run in-process, as the runtime runs the plugin in the
// node's namespace, against a node namespace with one "ENI" (a veth whose
// node end has the ENI's MAC) and a store seeded with that ENI, its free
// addresses and the node's facts, so that no cloud is needed: the warm
// path and every error path that comes before the cloud.

var cniENIMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x0e, 0x01}

type cniNode struct {
	t      *testing.T
	nodeNS ns.NetNS
	db     store.File
	conf   string // the network configuration (stdin)
	free   []netip.Addr
}

// newCNINode builds the node namespace, the ENI link, veni.json and the
// store. n addresses are free on the ENI.
func newCNINode(t *testing.T, n int) *cniNode {
	t.Helper()
	testutil.RequireRoot(t)
	nodeName, _ := testutil.NewNetNS(t)
	peerName, _ := testutil.NewNetNS(t)
	nodeNS, err := ns.GetNS(filepath.Join("/run/netns", nodeName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nodeNS.Close() })
	peerNS, err := ns.GetNS(filepath.Join("/run/netns", peerName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peerNS.Close() })
	err = nodeNS.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1", HardwareAddr: cniENIMAC}, PeerName: "vpc", PeerNamespace: netlink.NsFd(int(peerNS.Fd()))}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &cniNode{t: t, nodeNS: nodeNS, db: store.File{Path: filepath.Join(dir, "veni.db")}}
	cfg := filepath.Join(dir, "veni.json")
	// No credentials and an unreachable metadata address: any cloud call
	// fails, so these tests prove the paths they take make none.
	body := fmt.Sprintf(`{"store_path": %q, "datapath": "plain", "region_id": "cn-test", "metadata_url": "http://127.0.0.1:1", "alloc_wait": "1s", "max_pool_size": 5}`, c.db.Path)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c.conf = fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "veni", "type": "veni", "config": %q, "timeout": "2s", "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}}`, cfg)
	err = c.db.Update(func(tx *store.WriteTx) error {
		err := tx.PutNode(store.NodeInfo{InstanceID: "i-cnitest", InstanceType: "ecs.g7.large", ZoneID: "zone-a", PrimaryENIID: "eni-primary", ENIs: 3, IPv4PerENI: 6})
		if err != nil {
			return err
		}
		err = tx.PutENI(store.ENI{
			ID: "eni-1", MAC: cniENIMAC.String(), InstanceID: "i-cnitest", VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.253"),
			PrimaryIP: netip.MustParseAddr("10.0.1.5"), Owned: true, State: store.ENIReady,
		})
		if err != nil {
			return err
		}
		a := netip.MustParseAddr("10.0.1.10")
		for range n {
			if err := tx.PutIP(store.IP{Addr: a, ENIID: "eni-1", State: store.IPFree}); err != nil {
				return err
			}
			c.free = append(c.free, a)
			a = a.Next()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.db.View(func(tx *store.ReadTx) error {
			for _, v := range tx.Check() {
				t.Errorf("store invariant: %s", v)
			}
			return nil
		})
	})
	return c
}

func (c *cniNode) args(cid, netns, ifname string) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: cid, Netns: netns, IfName: ifname, StdinData: []byte(c.conf),
		Args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + cid + ";K8S_POD_UID=uid-" + cid + ";IgnoreUnknown=1",
	}
}

func (c *cniNode) add(args *skel.CmdArgs) (*types100.Result, error) {
	c.t.Helper()
	var res types.Result
	err := c.nodeNS.Do(func(ns.NetNS) error {
		var err error
		res, _, err = testutils.CmdAddWithArgs(args, func() error { return cmdAdd(args) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return types100.NewResultFromResult(res)
}

func (c *cniNode) do(f func() error) error {
	return c.nodeNS.Do(func(ns.NetNS) error { return f() })
}

func (c *cniNode) allocations() []store.Allocation {
	c.t.Helper()
	var out []store.Allocation
	if err := c.db.View(func(tx *store.ReadTx) (err error) { out, err = tx.Allocations(); return err }); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func podNetNS(t *testing.T) string {
	t.Helper()
	name, _ := testutil.NewNetNS(t)
	return filepath.Join("/run/netns", name)
}

func wantCode(t *testing.T, err error, code uint, mentions string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want CNI error code %d", err, err, code)
	}
	if e.Code != code || !strings.Contains(e.Msg+" "+e.Details, mentions) {
		t.Fatalf("CNI error %d %q (%s), want code %d mentioning %q", e.Code, e.Msg, e.Details, code, mentions)
	}
}

// Ensure ADD, CHECK (against the prevResult), DEL and DEL again work
// in-process, and ADD's result carries the configured DNS.
func TestCNIVerbs_AddCheckDel(t *testing.T) {
	c := newCNINode(t, 3)
	netns := podNetNS(t)
	args := c.args("c1", netns, "eth0")
	res, err := c.add(args)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.IP.String() != c.free[0].String() {
		t.Fatalf("ADD result IPs %v, want %s", res.IPs, c.free[0])
	}
	if len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != "10.96.0.10" {
		t.Errorf("ADD result DNS %+v, want the configured one", res.DNS)
	}
	if a := c.allocations(); len(a) != 1 || a[0].State != store.IPBound || a[0].Network != "veni" || a[0].NetNSID.Inode == 0 || a[0].HostVeth == "" {
		t.Fatalf("allocation after ADD %+v", a)
	}

	check := *args
	check.StdinData = withPrevResult(t, c.conf, res)
	if err := c.do(func() error { return testutils.CmdCheckWithArgs(&check, func() error { return cmdCheck(&check) }) }); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	// A prevResult that names another address fails CHECK.
	other := *res
	other.IPs = []*types100.IPConfig{{Address: net.IPNet{IP: net.ParseIP("10.0.1.99").To4(), Mask: net.CIDRMask(32, 32)}}}
	bad := *args
	bad.StdinData = withPrevResult(t, c.conf, &other)
	err = c.do(func() error { return testutils.CmdCheckWithArgs(&bad, func() error { return cmdCheck(&bad) }) })
	wantCode(t, err, types.ErrInternal, "10.0.1.99")

	for i := range 2 {
		if err := c.do(func() error { return testutils.CmdDelWithArgs(args, func() error { return cmdDel(args) }) }); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
		args = c.args("c1", "", "eth0") // containerd's second DEL has no netns
	}
	if a := c.allocations(); len(a) != 0 {
		t.Fatalf("allocations after DEL %+v", a)
	}
}

func withPrevResult(t *testing.T, conf string, res *types100.Result) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(conf), &m); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var prev map[string]any
	_ = json.Unmarshal(raw, &prev)
	m["prevResult"] = prev
	out, _ := json.Marshal(m)
	return out
}

// Ensure a CNI_NETNS that is not a network namespace (an empty file, as
// containerd leaves after unmounting one) gets code 4 before anything is
// reserved.
func TestCNIVerbs_AddNotANetNS(t *testing.T) {
	c := newCNINode(t, 3)
	file := filepath.Join(t.TempDir(), "cni-1234")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, netns := range []string{file, "/proc/self/ns/pid", filepath.Join(t.TempDir(), "missing")} {
		_, err := c.add(c.args("c1", netns, "eth0"))
		wantCode(t, err, types.ErrInvalidEnvironmentVariables, "not a usable network namespace")
	}
	if a := c.allocations(); len(a) != 0 {
		t.Fatalf("reserved %+v for a bad netns", a)
	}
}

// Ensure an ADD whose attachment another process is working on (its own
// earlier ADD still running, or GC releasing it) answers 11 and leaves the
// store as it was, and a DEL in that state answers 11 too instead of
// tearing down under the running ADD.
func TestCNIVerbs_AttachmentBusy(t *testing.T) {
	c := newCNINode(t, 3)
	netns := podNetNS(t)
	claim, err := store.TryClaim(store.OwnerClaim(c.db.ClaimsDir(), store.NewOwnerKey("c1", "eth0")), true)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()
	_, err = c.add(c.args("c1", netns, "eth0"))
	wantCode(t, err, types.ErrTryAgainLater, "still running")
	args := c.args("c1", netns, "eth0")
	err = c.do(func() error { return testutils.CmdDelWithArgs(args, func() error { return cmdDel(args) }) })
	wantCode(t, err, types.ErrTryAgainLater, "still running")
	if a := c.allocations(); len(a) != 0 {
		t.Fatalf("allocations %+v", a)
	}
}

// Ensure a store another process keeps locked past the timeout is "try
// again later" (11) naming the contention, not an internal error (999).
func TestCNIVerbs_StoreLocked(t *testing.T) {
	c := newCNINode(t, 3)
	netns := podNetNS(t)
	db, err := store.Open(c.db.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.add(c.args("c1", netns, "eth0"))
	db.Close()
	wantCode(t, err, types.ErrTryAgainLater, "busy")
	t.Logf("ADD gave up after %s", time.Since(start).Round(time.Millisecond))
}

// Ensure an empty pool with no way to grow it (no credentials: the cold
// path cannot call the cloud) is code 11 with the reason, and nothing is
// left reserved.
func TestCNIVerbs_PoolEmptyNoCloud(t *testing.T) {
	c := newCNINode(t, 0)
	_, err := c.add(c.args("c1", podNetNS(t), "eth0"))
	var e *types.Error
	if !errors.As(err, &e) || (e.Code != types.ErrTryAgainLater && e.Code != types.ErrInternal) {
		t.Fatalf("ADD on an empty pool without a cloud = %v", err)
	}
	if !strings.Contains(e.Details, "credentials") {
		t.Errorf("error does not say the plugin has no credentials: %v", e)
	}
	if a := c.allocations(); len(a) != 0 {
		t.Fatalf("allocations %+v", a)
	}
}

// Ensure the CNI GC verb releases this network's attachments the runtime
// no longer lists, and leaves another network's attachment on the same pod
// (Multus) alone.
func TestCNIVerbs_GC(t *testing.T) {
	c := newCNINode(t, 3)
	netns := podNetNS(t)
	if _, err := c.add(c.args("kept", netns, "eth0")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.add(c.args("gone", podNetNS(t), "eth0")); err != nil {
		t.Fatal(err)
	}
	other := c.args("kept", netns, "net1")
	other.StdinData = []byte(strings.Replace(c.conf, `"name": "veni"`, `"name": "veni-storage"`, 1))
	if _, err := c.add(other); err != nil {
		t.Fatal(err)
	}
	gc := map[string]any{}
	_ = json.Unmarshal([]byte(c.conf), &gc)
	gc["cniVersion"] = "1.1.0"
	gc["cni.dev/valid-attachments"] = []map[string]string{{"containerID": "kept", "ifname": "eth0"}}
	stdin, _ := json.Marshal(gc)
	err := c.do(func() error { return cmdGC(&skel.CmdArgs{StdinData: stdin}) })
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	var keys []string
	for _, a := range c.allocations() {
		keys = append(keys, string(a.Key))
	}
	if strings.Join(keys, " ") != "kept/eth0 kept/net1" {
		t.Fatalf("after GC: %v, want kept/eth0 and the other network's kept/net1", keys)
	}
}

// Ensure every ADD and DEL leaves its record in the store's event log (what
// the daemon exports as metrics and Kubernetes events), in the same
// transaction as its commit or release: success with the address and the
// time taken, failure with the CNI code.
func TestCNIVerbs_CallRecords(t *testing.T) {
	c := newCNINode(t, 3)
	args := c.args("c1", podNetNS(t), "eth0")
	if _, err := c.add(args); err != nil {
		t.Fatal(err)
	}
	if err := c.do(func() error { return testutils.CmdDelWithArgs(args, func() error { return cmdDel(args) }) }); err != nil {
		t.Fatal(err)
	}
	claim, err := store.TryClaim(store.OwnerClaim(c.db.ClaimsDir(), store.NewOwnerKey("c2", "eth0")), true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.add(c.args("c2", podNetNS(t), "eth0"))
	wantCode(t, err, types.ErrTryAgainLater, "still running")
	delArgs := c.args("c2", "", "eth0")
	err = c.do(func() error { return testutils.CmdDelWithArgs(delArgs, func() error { return cmdDel(delArgs) }) })
	claim.Release()
	wantCode(t, err, types.ErrTryAgainLater, "still running")

	var calls []store.Event
	_ = c.db.View(func(tx *store.ReadTx) error {
		all, err := tx.Events(0, 0)
		for _, e := range all {
			if e.CNI != nil {
				calls = append(calls, e)
			}
		}
		return err
	})
	want := []struct {
		reason, verb, pod string
		code              uint
		ip                bool
	}{
		{"AllocIPSucceed", store.CNIAdd, "c1", 0, true},
		{"ReleaseIPSucceed", store.CNIDel, "c1", 0, true},
		{"AllocIPFailed", store.CNIAdd, "c2", types.ErrTryAgainLater, false},
		{"ReleaseIPFailed", store.CNIDel, "c2", types.ErrTryAgainLater, false},
	}
	if len(calls) != len(want) {
		t.Fatalf("call records %+v", calls)
	}
	for i, w := range want {
		e := calls[i]
		if e.Reason != w.reason || e.CNI.Verb != w.verb || e.CNI.PodName != w.pod || e.CNI.Code != w.code || e.CNI.IP.IsValid() != w.ip || e.CNI.Took <= 0 || e.Object != "pod/default/"+w.pod {
			t.Errorf("record %d = %+v %+v, want %+v", i, e, *e.CNI, w)
		}
	}
}
