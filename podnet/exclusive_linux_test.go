package podnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/store"
)

var exclusiveMAC = net.HardwareAddr{2, 0, 0, 0, 2, 2}

// mustExclusiveNode is a node namespace holding a warm exclusive ENI
// (eni-x, a veth end with the ENI's MAC) and a store in exclusive mode that
// knows it.
func mustExclusiveNode(tb testing.TB) (store.File, string, config.Config) {
	tb.Helper()
	db, nodeNS := mustStore(tb), mustNetNS(tb)
	cfg := config.DefaultConfig()
	cfg.ExclusiveENIType = config.ExclusiveENIOnly
	cfg.SecurityGroups = []string{"sg-1"}
	err := db.Update(func(tx *store.WriteTx) error {
		// mustStore's shared ENI goes: an exclusive node has none.
		ips, _ := tx.IPs()
		for _, ip := range ips {
			if err := tx.DeleteIP(ip.Addr); err != nil {
				return err
			}
		}
		if err := tx.DeleteENI("eni-1"); err != nil {
			return err
		}
		primary := netip.MustParseAddr("10.0.1.20")
		err := tx.PutENI(store.ENI{
			ID: "eni-x", MAC: exclusiveMAC.String(), InstanceID: "i-test", VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.253"),
			PrimaryIP: primary, SecurityGroupIDs: []string{"sg-1"}, Owned: true, State: store.ENIReady, Kind: store.ENIExclusive,
		})
		if err != nil {
			return err
		}
		return tx.PutIP(store.IP{Addr: primary, ENIID: "eni-x", State: store.IPFree})
	})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := netlink.NewHandleAt(mustNSHandle(tb, nodeNS))
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vpc-x"}, PeerName: "ethx", PeerHardwareAddr: exclusiveMAC}
	if err := h.LinkAdd(veth); err != nil {
		tb.Fatalf("add eni link: %v", err)
	}
	return db, nodeNS, cfg
}

// Ensure a pod on its own ENI whose namespace the runtime destroyed
// without DEL is released by GC through Release: the ENI comes back to the
// node from the namespace veni pinned, is back before its address is freed
// (no other pod can take it while it is in the pod), and then is warm: the
// next pod gets it with no cloud call.
func TestRelease_ExclusiveNetNSGone(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS, cfg := mustExclusiveNode(t)
	podNS := mustNetNS(t)
	id, err := IdentifyNetNS(podNS)
	if err != nil {
		t.Fatal(err)
	}
	owner := ipam.Owner{ContainerID: "x1", IfName: "eth0", Network: "veni", PodNamespace: "default", PodName: "x1", NetNS: podNS, NetNSID: id}
	// No cloud: the warm ENI is taken in the store alone.
	res, err := ipam.AllocateExclusive(context.Background(), db, nil, ipam.Node{}, cfg, owner, ipam.ExclusiveRequest{Pod: "default/x1"})
	if err != nil || res.ENI.ID != "eni-x" {
		t.Fatalf("AllocateExclusive = %+v, %v", res, err)
	}
	xcfg := netplumb.ExclusiveConfig{
		ContainerID: "x1", IfName: "eth0", ContainerNetNS: podNS, Pin: ExclusivePin(db, res.Key), MAC: exclusiveMAC,
		IP: res.IP, VSwitchCIDR: res.ENI.VSwitchCIDR, Gateway: res.ENI.Gateway,
	}
	var links netplumb.PodResult
	if err := inNS(nodeNS, func() (err error) { links, err = netplumb.SetupExclusive(context.Background(), xcfg); return err }); err != nil {
		t.Fatalf("SetupExclusive: %v", err)
	}
	if err := ipam.Commit(db, res.Key, ipam.HostSide{Veth: links.Host.Name, Ifindex: links.Host.Index}, nil); err != nil {
		t.Fatal(err)
	}

	mustDeleteNetNS(t, podNS)
	// What a runtime may leave for a moment: an empty file, no namespace.
	if err := os.WriteFile(podNS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(podNS) })
	var inWindow error
	testHookTornDown = func(store.Allocation) {
		if !linkWithMAC(t, nodeNS, exclusiveMAC) {
			inWindow = errors.New("the ENI is not back in the node when its address is freed")
		}
		_, err := ipam.AllocateExclusive(context.Background(), db, nil, ipam.Node{}, cfg, ipam.Owner{ContainerID: "thief", IfName: "eth0"}, ipam.ExclusiveRequest{Pod: "default/thief"})
		if err == nil {
			inWindow = errors.New("another pod took the ENI while it was being given back")
		}
	}
	t.Cleanup(func() { testHookTornDown = nil })
	var got []store.Allocation
	err = inNS(nodeNS, func() (err error) {
		got, err = GC(context.Background(), Node{Store: db}, OwnerGone(db.ClaimsDir(), time.Minute, time.Now()), "OwnerGone")
		return err
	})
	if err != nil || len(got) != 1 || got[0].IP != res.IP {
		t.Fatalf("GC = %v, %v; want %s released", got, err, res.IP)
	}
	if inWindow != nil {
		t.Fatal(inWindow)
	}
	if !linkWithMAC(t, nodeNS, exclusiveMAC) {
		t.Fatal("the ENI is not back in the node")
	}
	if _, err := os.Stat(xcfg.Pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin left: %v", err)
	}
	next, err := ipam.AllocateExclusive(context.Background(), db, nil, ipam.Node{}, cfg, ipam.Owner{ContainerID: "x2", IfName: "eth0"}, ipam.ExclusiveRequest{Pod: "default/x2"})
	if err != nil || next.ENI.ID != "eni-x" {
		t.Fatalf("the next pod got %+v, %v; want the warm eni-x", next, err)
	}
	if err := ipam.Release(db, next.Key); err != nil {
		t.Fatal(err)
	}
}

// mustNSHandle opens a namespace for the test's lifetime.
func mustNSHandle(tb testing.TB, path string) netns.NsHandle {
	tb.Helper()
	h, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func linkWithMAC(tb testing.TB, nsPath string, mac net.HardwareAddr) bool {
	tb.Helper()
	h, err := netlink.NewHandleAt(mustNSHandle(tb, nsPath))
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().HardwareAddr.String() == mac.String() {
			return true
		}
	}
	return false
}
