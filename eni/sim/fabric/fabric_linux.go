package fabric

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Fabric is a running simulated VPC network. It satisfies sim.Fabric. Close
// tears it down; until then it owns the namespaces named after
// Options.Name and the root namespace's blackhole routes for that name.
type Fabric struct {
	name    string
	vpcCIDR netip.Prefix

	// sgScript is the security group rule set last applied
	// (secgroup_linux.go), so an unchanged policy is not applied again.
	// Guarded by mu.
	sgScript string

	mu      sync.Mutex
	closed  bool
	ownsVPC bool // New created the VPC namespace, so Close removes it
	vpcNS   netns.NsHandle
	vpc     *netlink.Handle
	nodes   map[string]*node            // by instance id
	macs    map[string]net.HardwareAddr // attached ENIs' MACs, by ENI id
	enis6   map[string]*eni6            // attached ENIs' IPv6 state, by ENI id
	own     map[string][]netip.Addr     // attached ENIs' own addresses (not their members'), by ENI id
	trunks  map[string]*trunkState      // attached trunk ENIs' programs, by ENI id (trunk_linux.go)
	members map[string]*memberState     // members carried by a trunk, by ENI id
	holes   []netip.Prefix              // root blackholes installed
	holes6  []netip.Prefix              // IPv6 prefixes to blackhole (Options.IPv6CIDRs)
}

type node struct {
	Node
	ns netns.NsHandle
	nl *netlink.Handle
}

// New builds the VPC namespace and installs the root blackholes. It fails
// with ErrExists when a namespace of that name is already there.
func New(opts Options) (_ *Fabric, err error) {
	f := &Fabric{
		name: opts.name(), vpcCIDR: opts.VPCCIDR.Masked(), holes6: opts.IPv6CIDRs,
		nodes: map[string]*node{}, macs: map[string]net.HardwareAddr{}, enis6: map[string]*eni6{},
		own: map[string][]netip.Addr{}, trunks: map[string]*trunkState{}, members: map[string]*memberState{},
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	// The namespace first: it fails on a name in use before anything of the
	// running sim's (its blackholes) could be touched by the undo.
	vpcName := VPCNetNSName(f.name)
	if f.vpcNS, err = CreateNetNS(vpcName); err != nil {
		return nil, err
	}
	f.ownsVPC = true
	if err := f.addBlackholes(); err != nil {
		return nil, err
	}
	if f.vpc, err = netlink.NewHandleAt(f.vpcNS, unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", vpcName, err)
	}
	// Links created later in the namespace copy conf/default; addENILink
	// still sets each link's values itself (neigh/default does not exist
	// outside the root namespace).
	err = writeSysctls(NetNSPath(vpcName), []sysctl{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/rp_filter", "1"},
		{"net/ipv4/conf/default/rp_filter", "1"},
		{"net/ipv4/conf/default/proxy_arp", "1"},
	})
	if err != nil {
		return nil, fmt.Errorf("configure %s: %w", vpcName, err)
	}
	if err := f.setupIPv6(); err != nil {
		return nil, err
	}
	if err := setUp(f.vpc, "lo"); err != nil {
		return nil, fmt.Errorf("%s: %w", vpcName, err)
	}
	addrs := []netip.Addr{APIAddr, MetadataAddr}
	for _, cidr := range opts.VSwitches {
		addrs = append(addrs, sim.GatewayOf(cidr))
	}
	for _, a := range addrs {
		if err := f.ensureVPCAddr(a); err != nil {
			return nil, err
		}
	}
	slog.Debug("sim fabric up", "name", f.name, "vpc", vpcName)
	return f, nil
}

// Name returns the sim name the fabric's namespaces are prefixed with.
func (f *Fabric) Name() string { return f.name }

// VPCNetNS returns the VPC namespace's name.
func (f *Fabric) VPCNetNS() string { return VPCNetNSName(f.name) }

// AddNode creates the namespace of a node (hostname name) for an instance,
// with lo up. Its ENIs, the primary one included, arrive through AttachENI.
//
// Equivalent to: ip netns add <sim>-<name>; ip -n <sim>-<name> link set lo up
func (f *Fabric) AddNode(name, instanceID string) (_ Node, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Node{}, ErrClosed
	}
	if n, ok := f.nodes[instanceID]; ok {
		if n.Name != name {
			return Node{}, fmt.Errorf("add node %s: instance %s is already node %s: %w", name, instanceID, n.Name, ErrExists)
		}
		return n.Node, nil
	}
	nsName := NodeNetNSName(f.name, name)
	n := &node{Node: Node{Name: name, InstanceID: instanceID, NetNS: nsName, NetNSPath: NetNSPath(nsName)}}
	if n.ns, err = CreateNetNS(nsName); err != nil {
		return Node{}, fmt.Errorf("add node %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			n.close()
			_ = DeleteNetNS(nsName)
		}
	}()
	if n.nl, err = netlink.NewHandleAt(n.ns, unix.NETLINK_ROUTE); err != nil {
		return Node{}, fmt.Errorf("netlink handle in %s: %w", nsName, err)
	}
	if err := setUp(n.nl, "lo"); err != nil {
		return Node{}, fmt.Errorf("add node %s: %w", name, err)
	}
	f.nodes[instanceID] = n
	return n.Node, nil
}

// Listen opens a listening socket inside the VPC namespace, for the
// OpenAPI and metadata servers (addr such as "100.100.0.10:80").
func (f *Fabric) Listen(network, addr string) (net.Listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	return listenIn(NetNSPath(f.VPCNetNS()), network, addr)
}

// Close tears the fabric down: every ENI link, node namespace, the VPC
// namespace and the root blackholes. Sockets from Listen must be closed
// first: an open socket keeps its namespace alive. Close is idempotent.
func (f *Fabric) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	var errs []error
	if f.vpc != nil {
		// Deleting the VPC ends destroys the pairs even when a process
		// (veni sim exec) still keeps a node namespace alive.
		errs = append(errs, deleteSimLinks(f.vpc, f.name))
		f.vpc.Close()
		f.vpc = nil
	}
	// The links (and with them the trunk filters) are gone: release the
	// programs and maps.
	for id := range f.trunks {
		errs = append(errs, f.forgetTrunk(id))
	}
	for id, n := range f.nodes {
		n.close()
		errs = append(errs, DeleteNetNS(n.NetNS))
		delete(f.nodes, id)
	}
	if f.vpcNS.IsOpen() {
		f.vpcNS.Close()
	}
	if f.ownsVPC {
		errs = append(errs, DeleteNetNS(f.VPCNetNS()))
		f.ownsVPC = false
	}
	errs = append(errs, f.removeBlackholes())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down sim %s: %w", f.name, err)
	}
	return nil
}

func (n *node) close() {
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	if n.ns.IsOpen() {
		n.ns.Close()
	}
}

// ensureVPCAddr puts a /32 (or an IPv6 /128) on the VPC's lo.
//
// Equivalent to: ip -n <sim>-vpc addr replace a/32 dev lo
func (f *Fabric) ensureVPCAddr(a netip.Addr) error {
	lo, err := f.vpc.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("vpc lo: %w", err)
	}
	addr := &netlink.Addr{IPNet: hostNet(a)}
	if err := f.vpc.AddrReplace(lo, addr); err != nil {
		return fmt.Errorf("add %s to vpc lo: %w", a, err)
	}
	return nil
}

func setUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
