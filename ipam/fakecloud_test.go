package ipam

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/veni-cni/veni/eni"
)

// fakeCloud is an in-memory eni.Client: vSwitches whose addresses run out,
// ENIs that attach asynchronously, per-method call counts and injectable
// errors.
type fakeCloud struct {
	mu       sync.Mutex
	vsw      map[string]*fakeVSwitch
	enis     map[string]*eni.ENI
	calls    map[string]int
	errs     map[string]error // method → error returned by every call
	nextENI  int
	attachIn int           // describes before an Attaching ENI is InUse
	delay    time.Duration // every call sleeps this long first
	pending  map[string]int

	inFlight, maxInFlight int // calls overlapping in time

	maxSlots int // secondary IPs plus prefixes per ENI; 0: unlimited
	maxIPv6  int // IPv6 per ENI; 0: unlimited
}

type fakeVSwitch struct {
	eni.VSwitch
	next          netip.Addr
	next6         netip.Addr
	nextPrefix    netip.Prefix
	freedPrefixes []netip.Prefix
	next80        int // /80s handed out, from the top of the /64 down
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{
		vsw:     make(map[string]*fakeVSwitch),
		enis:    make(map[string]*eni.ENI),
		calls:   make(map[string]int),
		errs:    make(map[string]error),
		pending: make(map[string]int),
	}
}

// addVSwitch adds a vSwitch with free addresses from cidr, starting at .10.
func (f *fakeCloud) addVSwitch(id, cidr string, free int) {
	p := netip.MustParsePrefix(cidr)
	start := p.Addr()
	for range 10 {
		start = start.Next()
	}
	f.vsw[id] = &fakeVSwitch{VSwitch: eni.VSwitch{ID: id, VPCID: "vpc-1", ZoneID: "zone-a", CIDR: p, AvailableIPs: free}, next: start}
}

// addVSwitch6 gives a vSwitch an IPv6 /64, handed out from ::10 up.
func (f *fakeCloud) addVSwitch6(id, cidr6 string) {
	p := netip.MustParsePrefix(cidr6)
	v := f.vsw[id]
	v.IPv6CIDR = p
	v.next6 = p.Addr()
	for range 16 {
		v.next6 = v.next6.Next()
	}
}

// addENI puts an attached ENI on the instance, as if made by someone.
func (f *fakeCloud) addENI(e eni.ENI) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enis[e.ID] = &e
}

func (f *fakeCloud) setErr(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeCloud) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeCloud) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// enter records a call and returns its injected error.
func (f *fakeCloud) enter(method string) error {
	f.mu.Lock()
	f.calls[method]++
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	d, err := f.delay, f.errs[method]
	f.mu.Unlock()
	time.Sleep(d)
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	return err
}

func (f *fakeCloud) takeIP(vswID string) (netip.Addr, error) {
	v := f.vsw[vswID]
	if v == nil {
		return netip.Addr{}, fmt.Errorf("vswitch %s: %w", vswID, eni.ErrNotFound)
	}
	if v.AvailableIPs == 0 {
		return netip.Addr{}, &eni.APIError{Action: "Assign", Code: "InvalidVSwitchId.IpNotEnough", Kind: eni.ErrVSwitchExhausted}
	}
	v.AvailableIPs--
	a := v.next
	v.next = v.next.Next()
	return a, nil
}

func (f *fakeCloud) InstanceLimits(context.Context, string) (eni.InstanceLimits, error) {
	return eni.InstanceLimits{}, f.enter("InstanceLimits")
}

func (f *fakeCloud) VSwitches(_ context.Context, ids ...string) ([]eni.VSwitch, error) {
	if err := f.enter("VSwitches"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []eni.VSwitch
	for _, id := range ids {
		if v, ok := f.vsw[id]; ok {
			out = append(out, v.VSwitch)
		}
	}
	return out, nil
}

func (f *fakeCloud) CreateENI(_ context.Context, opts eni.CreateENIOptions) (eni.ENI, error) {
	if err := f.enter("CreateENI"); err != nil {
		return eni.ENI{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	primary, err := f.takeIP(opts.VSwitchID)
	if err != nil {
		return eni.ENI{}, err
	}
	f.nextENI++
	e := &eni.ENI{
		ID: fmt.Sprintf("eni-new%d", f.nextENI), Type: eni.TypeSecondary, Status: eni.StatusAvailable,
		MAC:       net.HardwareAddr{0x02, 0, 0, 0, 1, byte(f.nextENI)},
		VSwitchID: opts.VSwitchID, ZoneID: "zone-a", SecurityGroupIDs: opts.SecurityGroupIDs,
		PrimaryIP: primary, PrivateIPs: []netip.Addr{primary}, Tags: opts.Tags, Description: opts.Description,
	}
	for range opts.SecondaryIPs {
		a, err := f.takeIP(opts.VSwitchID)
		if err != nil {
			break
		}
		e.PrivateIPs = append(e.PrivateIPs, a)
	}
	if opts.Prefixes > 0 && opts.SecondaryIPs > 0 {
		return eni.ENI{}, fmt.Errorf("create eni with ips and prefixes: %w", eni.ErrInvalidParameter)
	}
	for range opts.Prefixes {
		p, err := f.takePrefix(opts.VSwitchID)
		if err != nil {
			break
		}
		e.Prefixes = append(e.Prefixes, p)
	}
	if opts.IPv6s > 0 {
		got, err := f.takeIPv6s(e, opts.IPv6s)
		if err != nil {
			return eni.ENI{}, err
		}
		e.IPv6s = got
	}
	if opts.IPv6Prefixes > 0 && opts.IPv6s > 0 {
		return eni.ENI{}, fmt.Errorf("create eni with ipv6s and ipv6 prefixes: %w", eni.ErrInvalidParameter)
	}
	if opts.IPv6Prefixes > 0 {
		got, err := f.takePrefixes6(e, opts.IPv6Prefixes)
		if err != nil {
			return eni.ENI{}, err
		}
		e.IPv6Prefixes = got
	}
	f.enis[e.ID] = e
	c := *e
	c.Prefixes = slices.Clone(e.Prefixes)
	c.IPv6s = slices.Clone(e.IPv6s)
	c.IPv6Prefixes = slices.Clone(e.IPv6Prefixes)
	return c, nil
}

func (f *fakeCloud) AttachENI(_ context.Context, id, instance string) error {
	if err := f.enter("AttachENI"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	e.Status, e.InstanceID = eni.StatusAttaching, instance
	f.pending[id] = f.attachIn
	return nil
}

func (f *fakeCloud) DetachENI(_ context.Context, id, _ string) error {
	if err := f.enter("DetachENI"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	e.Status, e.InstanceID = eni.StatusAvailable, ""
	return nil
}

func (f *fakeCloud) DeleteENI(_ context.Context, id string) error {
	if err := f.enter("DeleteENI"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	if e.Status != eni.StatusAvailable {
		return eni.ErrInvalidState
	}
	if v := f.vsw[e.VSwitchID]; v != nil {
		v.AvailableIPs += len(e.PrivateIPs)
	}
	f.freePrefixes(e.VSwitchID, e.Prefixes)
	delete(f.enis, id)
	return nil
}

func (f *fakeCloud) ENIs(_ context.Context, filter eni.ENIFilter) ([]eni.ENI, error) {
	if err := f.enter("ENIs"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []eni.ENI
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range f.enis {
			if !yield(id) {
				return
			}
		}
	}) {
		e := f.enis[id]
		if e.Status == eni.StatusAttaching {
			if f.pending[id] <= 0 {
				e.Status = eni.StatusInUse
			}
			f.pending[id]--
		}
		if (filter.InstanceID != "" && e.InstanceID != filter.InstanceID) || (len(filter.IDs) > 0 && !slices.Contains(filter.IDs, id)) {
			continue
		}
		if !tagsMatch(e.Tags, filter.Tags) {
			continue
		}
		c := *e
		c.PrivateIPs = slices.Clone(e.PrivateIPs)
		c.Prefixes = slices.Clone(e.Prefixes)
		c.IPv6s = slices.Clone(e.IPv6s)
		c.IPv6Prefixes = slices.Clone(e.IPv6Prefixes)
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeCloud) AssignPrivateIPs(_ context.Context, id string, n int) ([]netip.Addr, error) {
	if err := f.enter("AssignPrivateIPs"); err != nil {
		return nil, err
	}
	if n > eni.MaxIPsPerAssign {
		return nil, fmt.Errorf("assign %d: %w", n, eni.ErrInvalidParameter)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return nil, eni.ErrNotFound
	}
	var out []netip.Addr
	for range n {
		a, err := f.takeIP(e.VSwitchID)
		if err != nil {
			if len(out) == 0 {
				return nil, err
			}
			break
		}
		out = append(out, a)
	}
	e.PrivateIPs = append(e.PrivateIPs, out...)
	return out, nil
}

func (f *fakeCloud) UnassignPrivateIPs(_ context.Context, id string, ips []netip.Addr) error {
	if err := f.enter("UnassignPrivateIPs"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	e.PrivateIPs = slices.DeleteFunc(e.PrivateIPs, func(a netip.Addr) bool { return slices.Contains(ips, a) })
	if v := f.vsw[e.VSwitchID]; v != nil {
		v.AvailableIPs += len(ips)
	}
	return nil
}

// ipsOf returns the secondary IPs the cloud has on an ENI.
func (f *fakeCloud) ipsOf(id string) []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return nil
	}
	return slices.Clone(e.PrivateIPs[1:])
}

var _ eni.Client = (*fakeCloud)(nil)

func tagsMatch(tags, want map[string]string) bool {
	for k, v := range want {
		if tags[k] != v {
			return false
		}
	}
	return true
}

// Prefixes: aligned /28s carved from the top half of the vSwitch (secondary
// IPs come from its bottom), each one of the ENI's address slots when
// maxSlots is set. The fake does not model IPv6: it refuses it rather than
// pretending, as the sim refuses what it does not model.

// takePrefix carves the next free aligned /28 of the vSwitch.
func (f *fakeCloud) takePrefix(vswID string) (netip.Prefix, error) {
	v := f.vsw[vswID]
	if v == nil {
		return netip.Prefix{}, fmt.Errorf("vswitch %s: %w", vswID, eni.ErrNotFound)
	}
	if !v.nextPrefix.IsValid() {
		half := netip.PrefixFrom(v.CIDR.Addr(), v.CIDR.Bits()+1)
		b := half.Addr().As4()
		b[3] += byte(1 << (32 - half.Bits()))
		v.nextPrefix = netip.PrefixFrom(netip.AddrFrom4(b), eni.PrefixBits)
	}
	for _, p := range v.freedPrefixes {
		v.freedPrefixes = v.freedPrefixes[1:]
		v.AvailableIPs -= PrefixSize
		return p, nil
	}
	if v.AvailableIPs < PrefixSize || !v.CIDR.Contains(v.nextPrefix.Addr()) {
		return netip.Prefix{}, &eni.APIError{Action: "Assign", Code: "InvalidVSwitchId.IpNotEnough", Kind: eni.ErrVSwitchExhausted}
	}
	p := v.nextPrefix
	last := prefixAddrs(p)[PrefixSize-1]
	v.nextPrefix = netip.PrefixFrom(last.Next(), eni.PrefixBits)
	v.AvailableIPs -= PrefixSize
	return p, nil
}

func (f *fakeCloud) slotsFull(e *eni.ENI) bool {
	return f.maxSlots > 0 && len(e.PrivateIPs)-1+len(e.Prefixes) >= f.maxSlots
}

func (f *fakeCloud) AssignPrefixes(_ context.Context, id string, n int) ([]netip.Prefix, error) {
	if err := f.enter("AssignPrefixes"); err != nil {
		return nil, err
	}
	if n < 1 || n > eni.MaxPrefixesPerAssign {
		return nil, fmt.Errorf("assign %d prefixes: %w", n, eni.ErrInvalidParameter)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return nil, eni.ErrNotFound
	}
	var out []netip.Prefix
	for range n {
		if f.slotsFull(e) {
			return nil, &eni.APIError{Action: "Assign", Code: "InvalidOperation.Ipv4CountExceeded", Kind: eni.ErrQuotaExceeded}
		}
		p, err := f.takePrefix(e.VSwitchID)
		if err != nil {
			if len(out) == 0 {
				return nil, err
			}
			break
		}
		out = append(out, p)
		e.Prefixes = append(e.Prefixes, p)
	}
	return out, nil
}

func (f *fakeCloud) UnassignPrefixes(_ context.Context, id string, prefixes []netip.Prefix) error {
	if err := f.enter("UnassignPrefixes"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	for _, p := range prefixes {
		if !slices.Contains(e.Prefixes, p) {
			return fmt.Errorf("unassign prefix %s from %s: not delegated to it: %w", p, id, eni.ErrInvalidParameter)
		}
	}
	e.Prefixes = slices.DeleteFunc(e.Prefixes, func(p netip.Prefix) bool { return slices.Contains(prefixes, p) })
	f.freePrefixes(e.VSwitchID, prefixes)
	return nil
}

func (f *fakeCloud) freePrefixes(vswID string, prefixes []netip.Prefix) {
	if v := f.vsw[vswID]; v != nil {
		v.freedPrefixes = append(v.freedPrefixes, prefixes...)
		v.AvailableIPs += PrefixSize * len(prefixes)
	}
}

// prefixesOf returns the prefixes the cloud has delegated to an ENI.
func (f *fakeCloud) prefixesOf(id string) []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enis[id]; e != nil {
		return slices.Clone(e.Prefixes)
	}
	return nil
}

// takeIPv6s takes n IPv6 of e's vSwitch, with the cloud's errors: no IPv6
// on the vSwitch, or more than maxIPv6 on the ENI.
func (f *fakeCloud) takeIPv6s(e *eni.ENI, n int) ([]netip.Addr, error) {
	v := f.vsw[e.VSwitchID]
	if v == nil || !v.IPv6CIDR.IsValid() {
		return nil, &eni.APIError{Action: "AssignIpv6Addresses", Code: "InvalidVSwitch.Ipv6NotTurnOn", Kind: eni.ErrIPv6Unsupported}
	}
	if f.maxIPv6 > 0 && len(e.IPv6s)+len(e.IPv6Prefixes)+n > f.maxIPv6 {
		return nil, &eni.APIError{Action: "AssignIpv6Addresses", Code: "InvalidOperation.Ipv6CountExceeded", Kind: eni.ErrQuotaExceeded}
	}
	var out []netip.Addr
	for range n {
		out = append(out, v.next6)
		v.next6 = v.next6.Next()
	}
	return out, nil
}

func (f *fakeCloud) AssignIPv6s(_ context.Context, id string, n int) ([]netip.Addr, error) {
	if err := f.enter("AssignIPv6s"); err != nil {
		return nil, err
	}
	if n > eni.MaxIPsPerAssign {
		return nil, fmt.Errorf("assign %d ipv6s: %w", n, eni.ErrInvalidParameter)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return nil, eni.ErrNotFound
	}
	got, err := f.takeIPv6s(e, n)
	if err != nil {
		return nil, err
	}
	e.IPv6s = append(e.IPv6s, got...)
	return got, nil
}

func (f *fakeCloud) UnassignIPv6s(_ context.Context, id string, ips []netip.Addr) error {
	if err := f.enter("UnassignIPv6s"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	for _, a := range ips {
		if !slices.Contains(e.IPv6s, a) {
			return fmt.Errorf("unassign %s from %s: not assigned: %w", a, id, eni.ErrInvalidParameter)
		}
	}
	e.IPv6s = slices.DeleteFunc(e.IPv6s, func(a netip.Addr) bool { return slices.Contains(ips, a) })
	return nil
}

// ipv6sOf returns the IPv6 the cloud has on an ENI.
func (f *fakeCloud) ipv6sOf(id string) []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enis[id]; e != nil {
		return slices.Clone(e.IPv6s)
	}
	return nil
}

// takePrefixes6 delegates n /80s of e's vSwitch /64, from its top down (the
// single IPv6 grow from the bottom), each taking one IPv6 slot as in the
// cloud.
func (f *fakeCloud) takePrefixes6(e *eni.ENI, n int) ([]netip.Prefix, error) {
	v := f.vsw[e.VSwitchID]
	if v == nil || !v.IPv6CIDR.IsValid() {
		return nil, &eni.APIError{Action: "AssignIpv6Addresses", Code: "InvalidVSwitch.Ipv6NotTurnOn", Kind: eni.ErrIPv6Unsupported}
	}
	if f.maxIPv6 > 0 && len(e.IPv6s)+len(e.IPv6Prefixes)+n > f.maxIPv6 {
		return nil, &eni.APIError{Action: "AssignIpv6Addresses", Code: "InvalidOperation.Ipv6CountExceeded", Kind: eni.ErrQuotaExceeded}
	}
	var out []netip.Prefix
	for range n {
		v.next80++
		b := v.IPv6CIDR.Masked().Addr().As16()
		idx := 0xffff - v.next80 + 1 // bits 64..79 of the address
		b[8], b[9] = byte(idx>>8), byte(idx)
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), eni.Prefix6Bits))
	}
	return out, nil
}

func (f *fakeCloud) AssignIPv6Prefixes(_ context.Context, id string, n int) ([]netip.Prefix, error) {
	if err := f.enter("AssignIPv6Prefixes"); err != nil {
		return nil, err
	}
	if n < 1 || n > eni.MaxPrefixesPerAssign {
		return nil, fmt.Errorf("assign %d ipv6 prefixes: %w", n, eni.ErrInvalidParameter)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return nil, eni.ErrNotFound
	}
	got, err := f.takePrefixes6(e, n)
	if err != nil {
		return nil, err
	}
	e.IPv6Prefixes = append(e.IPv6Prefixes, got...)
	return got, nil
}

func (f *fakeCloud) UnassignIPv6Prefixes(_ context.Context, id string, prefixes []netip.Prefix) error {
	if err := f.enter("UnassignIPv6Prefixes"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.enis[id]
	if e == nil {
		return eni.ErrNotFound
	}
	for _, p := range prefixes {
		if !slices.Contains(e.IPv6Prefixes, p) {
			return fmt.Errorf("unassign %s from %s: not delegated: %w", p, id, eni.ErrInvalidParameter)
		}
	}
	e.IPv6Prefixes = slices.DeleteFunc(e.IPv6Prefixes, func(p netip.Prefix) bool { return slices.Contains(prefixes, p) })
	return nil
}

// prefixes6Of returns the /80s the cloud has on an ENI.
func (f *fakeCloud) prefixes6Of(id string) []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.enis[id]; e != nil {
		return slices.Clone(e.IPv6Prefixes)
	}
	return nil
}
