package netplumb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// macPollInterval is how often FindLinkByMAC looks again. A fresh ENI shows
// up within a second or two of the cloud reporting it InUse; 100ms keeps
// the wait short without busy-looping.
const macPollInterval = 100 * time.Millisecond

// FindLinkByMAC returns the link with the given MAC in h's namespace,
// waiting for it to appear until ctx is done (a freshly attached ENI shows
// up some time after the cloud says it is attached). Without a deadline on
// ctx it waits until ctx is cancelled. May return an error wrapping
// ErrLinkNotFound.
//
// Links that always inherit their parent's MAC (vlan, ipvlan, ipvtap) are
// skipped so a sub-interface is never mistaken for the ENI.
func FindLinkByMAC(ctx context.Context, h *netlink.Handle, mac net.HardwareAddr) (netlink.Link, error) {
	// An ENI that EnsureENI configured carries eniAltName: one RTM_GETLINK
	// instead of a dump of every link, which grows with the node's pods.
	if l, err := h.LinkByName(eniAltName(mac)); err == nil && bytes.Equal(l.Attrs().HardwareAddr, mac) {
		return l, nil
	}
	t := time.NewTicker(macPollInterval)
	defer t.Stop()
	for {
		links, err := linkList(h)
		if err != nil {
			return nil, fmt.Errorf("find link with mac %s: %w", mac, err)
		}
		for _, l := range links {
			switch l.Type() {
			case "vlan", "ipvlan", "ipvtap":
				continue
			}
			if bytes.Equal(l.Attrs().HardwareAddr, mac) {
				return l, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("find link with mac %s: %w (%w; is the ENI attached to this node?)", mac, ErrLinkNotFound, ctx.Err())
		case <-t.C:
		}
	}
}

// EnsureENI prepares the ENI with cfg.MAC to carry pod traffic and returns
// it. It is idempotent; every step replaces what it finds. In order:
//
//	ip link set $eni mtu $MTU up
//	sysctl net.ipv4.conf.$eni.rp_filter=0 .arp_ignore=1 .arp_announce=2 .proxy_arp=0
//	ip addr replace $PrimaryIP/32 dev $eni           (when PrimaryIP is set)
//	ip route replace $VSwitchCIDR dev $eni scope link table $Table
//	ip route replace default via $Gateway dev $eni table $Table
//
// and with IPv6 (cfg.IPv6CIDR, dual stack) ensureENI6's steps.
//
// The ENI gets at most its own primary address as a /32: it carries pod
// addresses (Terway's veth mode), and the main table keeps no route through
// it.
//
// ARP: the VPC never asks a node who holds an address. Its SDN delivers a
// packet for an address assigned to an ENI straight to that ENI's MAC (the
// simulated VPC does the same with permanent neighbour entries), so the
// node needs no proxy ARP for its pods, and Terway's veth mode sets none;
// proxy_arp is written 0 to undo what earlier veni versions set. What the
// node must not do is speak for addresses that are not the ENI's:
// arp_ignore=1 answers only requests for an address configured on the ENI
// itself (not for the node's eth0 address or another ENI's, which Linux
// would otherwise answer on any link), and arp_announce=2 makes the node's
// own requests on the ENI carry the ENI's address as sender, never another
// link's, which a VPC that checks sources per ENI would refuse or learn
// wrongly.
//
// rp_filter is off on the ENI because replies for pods arrive on it while
// the main table reaches the VPC through eth0. The reverse-path lookup does
// see the pod's "from" rule, but strict mode would still drop anything the
// rules do not cover exactly (a reply racing SetupPod, an address the VPC
// routes here before its rule exists), and the VPC already refuses spoofed
// sources. The kernel applies max(conf/all, conf/$eni), which EnsureENI
// leaves to the node's owner; pod traffic passes even with conf/all=1
// (TestSetupPod_Datapath pins that).
//
// May return an error wrapping ErrLinkNotFound (the ENI did not appear
// before ctx's deadline), ErrNetNSNotFound or ErrInvalidConfig (a missing
// Table among them).
func EnsureENI(ctx context.Context, cfg ENIConfig) (ENILink, error) {
	if err := cfg.validate(); err != nil {
		return ENILink{}, err
	}
	h, err := openHandle(cfg.NetNS)
	if err != nil {
		return ENILink{}, fmt.Errorf("ensure eni %s: %w", cfg.MAC, err)
	}
	defer h.Close()

	link, err := FindLinkByMAC(ctx, h, cfg.MAC)
	if err != nil {
		return ENILink{}, fmt.Errorf("ensure eni: %w", err)
	}
	nameENILink(h, link, cfg.MAC)
	name := link.Attrs().Name
	if cfg.MTU > 0 && link.Attrs().MTU != cfg.MTU {
		if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
			return ENILink{}, fmt.Errorf("ensure eni %s: set mtu %d: %w", name, cfg.MTU, err)
		}
		link.Attrs().MTU = cfg.MTU // what the kernel accepted, or it said no
	}
	if cfg.IPv6CIDR.IsValid() {
		// Before the link is up: its link-local address must not be
		// tentative (see ensureENI6).
		if err := inNetNS(cfg.NetNS, func() error { return setSysctls(eniSysctls6(name)...) }); err != nil {
			return ENILink{}, fmt.Errorf("ensure eni %s: %w", name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return ENILink{}, fmt.Errorf("ensure eni %s: set up: %w", name, err)
	}
	if err := inNetNS(cfg.NetNS, func() error {
		return setSysctls(
			[2]string{"net/ipv4/conf/" + name + "/rp_filter", "0"},
			[2]string{"net/ipv4/conf/" + name + "/arp_ignore", "1"},
			[2]string{"net/ipv4/conf/" + name + "/arp_announce", "2"},
			[2]string{"net/ipv4/conf/" + name + "/proxy_arp", "0"},
		)
	}); err != nil {
		return ENILink{}, fmt.Errorf("ensure eni %s: %w", name, err)
	}

	if cfg.PrimaryIP.IsValid() {
		// A /32 adds no prefix route to the main table: the ENI carries
		// only what the policy rules send to its table.
		addr := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(cfg.PrimaryIP, 32)), Scope: unix.RT_SCOPE_UNIVERSE}
		if err := h.AddrReplace(link, addr); err != nil {
			return ENILink{}, fmt.Errorf("ensure eni %s: address %s: %w", name, cfg.PrimaryIP, err)
		}
	}

	eni := eniLinkOf(link, cfg)
	if err := replaceENIRoutes(h, eni.Index, eni.Table, cfg.VSwitchCIDR, cfg.Gateway); err != nil {
		return ENILink{}, fmt.Errorf("ensure eni %s table %d: %w", name, eni.Table, err)
	}
	if cfg.IPv6CIDR.IsValid() {
		if err := ensureENI6(h, eni); err != nil {
			return ENILink{}, fmt.Errorf("ensure eni %s: %w", name, err)
		}
	}
	slog.Debug("eni ready", "name", name, "index", eni.Index, "table", eni.Table, "mac", cfg.MAC.String())
	return eni, nil
}

// eniLinkOf describes an ENI's link as configured by cfg.
func eniLinkOf(l netlink.Link, cfg ENIConfig) ENILink {
	return ENILink{
		Name:        l.Attrs().Name,
		Index:       l.Attrs().Index,
		Table:       cfg.Table,
		MAC:         l.Attrs().HardwareAddr,
		MTU:         l.Attrs().MTU,
		NetNS:       cfg.NetNS,
		VSwitchCIDR: cfg.VSwitchCIDR.Masked(),
		Gateway:     cfg.Gateway,
		IPv6CIDR:    cfg.IPv6CIDR.Masked(),
		Gateway6:    cfg.Gateway6,
	}
}

// replaceENIRoutes installs the subnet route first: the kernel resolves the
// default route's gateway in the same table, and refuses it (ENETUNREACH)
// while the gateway has no route there.
func replaceENIRoutes(h *netlink.Handle, index, table int, cidr netip.Prefix, gw netip.Addr) error {
	unspecified := netip.IPv4Unspecified()
	if cidr.Addr().Is6() {
		unspecified = netip.IPv6Unspecified()
	}
	cidr = cidr.Masked()
	subnet := &netlink.Route{
		LinkIndex: index,
		Dst:       prefixToIPNet(cidr),
		Scope:     netlink.SCOPE_LINK,
		Table:     table,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := h.RouteReplace(subnet); err != nil {
		return fmt.Errorf("route %s: %w", cidr, err)
	}
	def := &netlink.Route{
		LinkIndex: index,
		Dst:       prefixToIPNet(netip.PrefixFrom(unspecified, 0)),
		Gw:        gw.AsSlice(),
		Table:     table,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := h.RouteReplace(def); err != nil {
		return fmt.Errorf("default via %s: %w", gw, err)
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func routeString(r netlink.Route) string {
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	if r.Gw != nil {
		dst += " via " + r.Gw.String()
	}
	return dst + " table " + strconv.Itoa(r.Table)
}

// WaitLink waits (until ctx ends) for a link with mac to appear in the
// caller's namespace: a freshly attached ENI shows up some time after the
// cloud says InUse. It is the ipam.Node.WaitLink of the CNI and the daemon.
func WaitLink(ctx context.Context, mac net.HardwareAddr) error {
	h, err := openHandle("")
	if err != nil {
		return err
	}
	defer h.Close()
	_, err = FindLinkByMAC(ctx, h, mac)
	return err
}

// eniAltName is the alternative name EnsureENI gives an ENI's link, so
// that FindLinkByMAC finds it with one RTM_GETLINK instead of dumping every
// link of the node (one host veth per pod). Alternative names may be longer
// than interface names (up to 127 bytes) and are looked up like them.
func eniAltName(mac net.HardwareAddr) string {
	return "veni-eni-" + strings.ReplaceAll(mac.String(), ":", "")
}

// nameENILink gives the link its alternative name unless it has it. Best
// effort: without the name FindLinkByMAC simply dumps the links.
func nameENILink(h *netlink.Handle, l netlink.Link, mac net.HardwareAddr) {
	alt := eniAltName(mac)
	if slices.Contains(l.Attrs().AltNames, alt) {
		return
	}
	if err := h.LinkAddAltName(l, alt); err != nil && !errors.Is(err, unix.EEXIST) {
		slog.Debug("eni alt name", "link", l.Attrs().Name, "name", alt, "err", err)
	}
}
