package netplumb

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// exclusiveTopology is the test VPC with the ENI attached to the node and
// a disposable pod namespace; the pod's address is routed to the ENI.
func exclusiveTopology(t *testing.T) (*topology, ExclusiveConfig) {
	t.Helper()
	topo := mustTopology(t)
	topo.mustENI(t)
	ip := netip.MustParseAddr("10.0.1.20")
	topo.mustAssign(t, ip)
	cfg := ExclusiveConfig{
		ContainerID: "excl1", IfName: "eth0", ContainerNetNS: mustDisposableNetNS(t),
		Pin: filepath.Join(t.TempDir(), "pins", "excl1"), NetNS: topo.node, MAC: eniMAC,
		IP: ip, VSwitchCIDR: eniCIDR, Gateway: eniGW,
		HostRoutes: []netip.Prefix{netip.PrefixFrom(nodeIP.Addr(), 32)},
	}
	t.Cleanup(func() { _ = unpinNetNS(cfg.Pin) })
	return topo, cfg
}

// mustENIBack fails unless the ENI is a node link again, down, without
// addresses, under its node name, and the pin and host veth are gone.
func mustENIBack(t *testing.T, topo *topology, cfg ExclusiveConfig) {
	t.Helper()
	l, err := findLinkNow(topo.nodeH, eniMAC)
	if err != nil {
		t.Fatalf("ENI not back in the node: %v", err)
	}
	if l.Attrs().Name != exclusiveNodeName(eniMAC) || l.Attrs().Flags&unix.IFF_UP != 0 {
		t.Errorf("ENI back as %s, flags %v; want %s, down", l.Attrs().Name, l.Attrs().Flags, exclusiveNodeName(eniMAC))
	}
	if addrs, _ := addrList(topo.nodeH, l); len(addrs) != 0 {
		t.Errorf("ENI back with addresses %v", addrs)
	}
	if _, err := os.Stat(cfg.Pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin %s still there: %v", cfg.Pin, err)
	}
	if _, err := linkByName(topo.nodeH, HostVethName(cfg.ContainerID, cfg.IfName)); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("host veth still there: %v", err)
	}
}

// Ensure SetupExclusive makes the ENI the pod's eth0 (its MAC, its address
// in the vSwitch prefix, the default route via the vSwitch gateway) with
// traffic to the VPC leaving by it and traffic to the node by veth1, that
// CheckExclusive agrees, and that TeardownExclusive gives the ENI back to
// the node, twice in a row included.
func TestSetupExclusive_DatapathAndBack(t *testing.T) {
	topo, cfg := exclusiveTopology(t)
	res, err := SetupExclusive(t.Context(), cfg)
	if err != nil {
		t.Fatalf("SetupExclusive: %v", err)
	}
	if _, err := findLinkNow(topo.nodeH, eniMAC); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("ENI still in the node after setup: %v", err)
	}
	if res.Pod.Name != "eth0" || res.Pod.MAC.String() != eniMAC.String() {
		t.Errorf("pod interface %+v, want eth0 with the ENI's MAC", res.Pod)
	}
	if !pinned(cfg.Pin) {
		t.Errorf("pod namespace not pinned at %s", cfg.Pin)
	}
	if err := CheckExclusive(t.Context(), cfg); err != nil {
		t.Fatalf("CheckExclusive: %v", err)
	}
	mustEchoServer(t, topo.vpc, behindVPC)
	mustRoundTrip(t, cfg.ContainerNetNS, cfg.IP, behindVPC)
	mustEchoServer(t, topo.node, nodeIP.Addr())
	mustRoundTrip(t, cfg.ContainerNetNS, cfg.IP, nodeIP.Addr())
	vpcRx := rxPackets(t, topo.vpcH, vpcENIName)
	mustRoundTrip(t, cfg.ContainerNetNS, cfg.IP, behindVPC)
	if rxPackets(t, topo.vpcH, vpcENIName) == vpcRx {
		t.Errorf("the pod's traffic to the VPC did not cross the ENI")
	}

	if err := TeardownExclusive(context.Background(), cfg); err != nil {
		t.Fatalf("TeardownExclusive: %v", err)
	}
	mustENIBack(t, topo, cfg)
	if err := TeardownExclusive(context.Background(), cfg); err != nil {
		t.Fatalf("second TeardownExclusive: %v", err)
	}
	// Back in the node it serves the next pod.
	cfg.ContainerID, cfg.ContainerNetNS, cfg.Pin = "excl2", mustDisposableNetNS(t), filepath.Join(filepath.Dir(cfg.Pin), "excl2")
	if _, err := SetupExclusive(t.Context(), cfg); err != nil {
		t.Fatalf("SetupExclusive of the next pod: %v", err)
	}
	mustRoundTrip(t, cfg.ContainerNetNS, cfg.IP, behindVPC)
	if err := TeardownExclusive(context.Background(), cfg); err != nil {
		t.Fatalf("TeardownExclusive of the next pod: %v", err)
	}
}

// Ensure the pin keeps the ENI from dying with the pod's namespace: the
// runtime unmounts and removes CNI_NETNS (a sandbox destroyed without
// DEL, a crashed ADD), yet TeardownExclusive finds the ENI in the pinned
// namespace and brings it back; and an ENI whose link is gone from
// everywhere is reported lost (ErrLinkNotFound) so it is retired.
func TestTeardownExclusive_NetNSGone(t *testing.T) {
	topo, cfg := exclusiveTopology(t)
	if _, err := SetupExclusive(t.Context(), cfg); err != nil {
		t.Fatalf("SetupExclusive: %v", err)
	}
	if err := unix.Unmount(cfg.ContainerNetNS, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cfg.ContainerNetNS); err != nil {
		t.Fatal(err)
	}
	where, err := LocateExclusive(cfg)
	if err != nil || where != "pod" {
		t.Fatalf("LocateExclusive after the runtime dropped the namespace: %q, %v; want pod (pinned)", where, err)
	}
	if err := TeardownExclusive(context.Background(), cfg); err != nil {
		t.Fatalf("TeardownExclusive: %v", err)
	}
	mustENIBack(t, topo, cfg)

	// Lost: the ENI's link is deleted outright.
	l, err := findLinkNow(topo.nodeH, eniMAC)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.nodeH.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	err = TeardownExclusive(context.Background(), cfg)
	if !errors.Is(err, ErrLinkNotFound) || !strings.Contains(err.Error(), "no link with the eni's mac") {
		t.Fatalf("TeardownExclusive of a lost ENI: %v, want ErrLinkNotFound", err)
	}
}

// Ensure a failed SetupExclusive leaves the ENI in the node and nothing
// pinned: a pod that already has eth0 is refused before anything moves.
func TestSetupExclusive_PodInterfaceExists(t *testing.T) {
	topo, cfg := exclusiveTopology(t)
	h := mustHandle(t, cfg.ContainerNetNS)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "other"}); err != nil {
		t.Fatal(err)
	}
	_, err := SetupExclusive(t.Context(), cfg)
	if !errors.Is(err, ErrPodInterfaceExists) {
		t.Fatalf("SetupExclusive into a pod with eth0: %v, want ErrPodInterfaceExists", err)
	}
	if _, err := findLinkNow(topo.nodeH, eniMAC); err != nil {
		t.Errorf("ENI left the node: %v", err)
	}
	if pinned(cfg.Pin) {
		t.Errorf("namespace pinned after a refused setup")
	}
}

// Ensure ExclusiveConfig refuses what SetupExclusive cannot do right: no
// pin, an address outside the vSwitch, a second interface (the ENI brings
// the pod's default route), a tiny MTU.
func TestExclusiveConfig_Validate(t *testing.T) {
	good := ExclusiveConfig{
		ContainerID: "c", IfName: "eth0", Pin: "/run/pin", MAC: eniMAC,
		IP: netip.MustParseAddr("10.0.1.20"), VSwitchCIDR: eniCIDR, Gateway: eniGW,
	}
	if err := good.validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*ExclusiveConfig){
		"no pin":         func(c *ExclusiveConfig) { c.Pin = "" },
		"ip outside":     func(c *ExclusiveConfig) { c.IP = netip.MustParseAddr("10.0.2.20") },
		"second network": func(c *ExclusiveConfig) { c.IfName = "net1" },
		"tiny mtu":       func(c *ExclusiveConfig) { c.MTU = 100 },
		"no mac":         func(c *ExclusiveConfig) { c.MAC = nil },
	} {
		c := good
		mod(&c)
		if err := c.validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}
