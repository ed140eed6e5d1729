package sim

import (
	"net"
	"net/netip"
)

// vswitch is a subnet with its address book. Addresses are handed out
// lowest first, which keeps tests and demos readable.
type vswitch struct {
	VSwitchSpec
	first, last netip.Addr            // usable range, inclusive
	gateway     netip.Addr            // CIDR's last address minus 2
	used        map[netip.Addr]bool   // allocated usable addresses
	used6       map[netip.Addr]bool   // allocated IPv6 addresses
	prefixes6   map[netip.Prefix]bool // delegated IPv6 /80s
	total       int
	limit       int // with a VSwitchFault: len(used) may not exceed it; -1 without
	maxMore     int // the VSwitchFault as set, for FaultState
}

func newVSwitch(spec VSwitchSpec) *vswitch {
	v := &vswitch{VSwitchSpec: spec, used: map[netip.Addr]bool{}, used6: map[netip.Addr]bool{}, prefixes6: map[netip.Prefix]bool{}, limit: -1}
	// Alibaba reserves the network address and the last three addresses of
	// every vSwitch; the gateway sits at the last address minus 2.
	broadcast := lastAddr(spec.CIDR)
	v.first = spec.CIDR.Addr().Next()
	v.last = broadcast.Prev().Prev().Prev()
	v.gateway = GatewayOf(spec.CIDR)
	v.total = 1<<(32-spec.CIDR.Bits()) - 4
	return v
}

// GatewayOf returns a vSwitch's gateway: its last address minus 2 (the last
// is broadcast, the one before is reserved), as Alibaba Cloud assigns it.
// The fabric puts the same address on the VPC's side.
func GatewayOf(cidr netip.Prefix) netip.Addr {
	return lastAddr(cidr).Prev().Prev()
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}

// free is how many more addresses the vSwitch hands out: the real count,
// capped by a VSwitchFault.
func (v *vswitch) free() int {
	f := v.realFree()
	if v.limit >= 0 {
		f = min(f, max(0, v.limit-len(v.used)))
	}
	return f
}

// realFree is the free count without a VSwitchFault.
func (v *vswitch) realFree() int { return v.total - len(v.used) }

// usable reports whether ip is an address the vSwitch may hand out.
func (v *vswitch) usable(ip netip.Addr) bool {
	return v.CIDR.Contains(ip) && ip.Compare(v.first) >= 0 && ip.Compare(v.last) <= 0
}

// allocate takes n free addresses, or none when fewer than n are free.
func (v *vswitch) allocate(n int) ([]netip.Addr, bool) {
	if v.free() < n {
		return nil, false
	}
	out := make([]netip.Addr, 0, n)
	for ip := v.first; len(out) < n && ip.Compare(v.last) <= 0; ip = ip.Next() {
		if !v.used[ip] {
			v.used[ip] = true
			out = append(out, ip)
		}
	}
	return out, true
}

func (v *vswitch) release(ips ...netip.Addr) {
	for _, ip := range ips {
		delete(v.used, ip)
	}
}

func (v *vswitch) netmask() string {
	return net.IP(net.CIDRMask(v.CIDR.Bits(), 32)).String()
}

// PrefixBits is the length of a delegated IPv4 prefix: a /28, 16 addresses.
const PrefixBits = 28

const prefixSize = 1 << (32 - PrefixBits)

// prefixFree reports whether every address of p is usable and free.
func (v *vswitch) prefixFree(p netip.Prefix) bool {
	for ip := p.Addr(); p.Contains(ip); ip = ip.Next() {
		if !v.usable(ip) || v.used[ip] {
			return false
		}
	}
	return true
}

// allocatePrefixes carves n aligned /28s, lowest first, each made of
// usable free addresses only; none when fewer than n exist. A vSwitch
// whose free addresses are scattered can have plenty free and no /28.
func (v *vswitch) allocatePrefixes(n int) ([]netip.Prefix, bool) {
	if v.free() < n*prefixSize {
		return nil, false
	}
	var out []netip.Prefix
	for p := netip.PrefixFrom(v.CIDR.Masked().Addr(), PrefixBits); len(out) < n && v.CIDR.Contains(p.Addr()); p = nextPrefix(p) {
		if v.prefixFree(p) {
			out = append(out, p)
		}
	}
	if len(out) < n {
		return nil, false
	}
	for _, p := range out {
		v.takePrefix(p)
	}
	return out, true
}

func (v *vswitch) takePrefix(p netip.Prefix) {
	for ip := p.Addr(); p.Contains(ip); ip = ip.Next() {
		v.used[ip] = true
	}
}

func (v *vswitch) releasePrefixes(ps ...netip.Prefix) {
	for _, p := range ps {
		for ip := p.Addr(); p.Contains(ip); ip = ip.Next() {
			delete(v.used, ip)
		}
	}
}

// nextPrefix returns the prefix of the same length right after p.
func nextPrefix(p netip.Prefix) netip.Prefix {
	b := p.Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n += 1 << (32 - p.Bits())
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), p.Bits())
}

// ipv6On reports whether IPv6 is turned on for the vSwitch.
func (v *vswitch) ipv6On() bool { return v.IPv6CIDR.IsValid() }

// gateway6 is the vSwitch's IPv6 gateway: like IPv4, the block's last
// address minus 2 (Terway derives it the same way).
func (v *vswitch) gateway6() netip.Addr {
	b := v.IPv6CIDR.Masked().Addr().As16()
	for i := 8; i < 16; i++ {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b).Prev().Prev()
}

// usable6 reports whether ip is an IPv6 address the vSwitch may hand out:
// inside its /64, not the subnet-router anycast address (::0) and not one
// of the last three (gateway and reserved), as for IPv4.
func (v *vswitch) usable6(ip netip.Addr) bool {
	return v.ipv6On() && ip.Is6() && !ip.Is4In6() && v.IPv6CIDR.Contains(ip) &&
		ip != v.IPv6CIDR.Masked().Addr() && ip.Compare(v.gateway6()) < 0
}

// Prefix6Bits is the length of a delegated IPv6 prefix (Ipv6PrefixCount):
// a /80 of the vSwitch's /64.
const Prefix6Bits = 80

// inPrefix6 reports whether ip is inside a delegated /80.
func (v *vswitch) inPrefix6(ip netip.Addr) bool {
	p, err := ip.Prefix(Prefix6Bits)
	return err == nil && v.prefixes6[p]
}

// prefix6Free reports whether p, an aligned /80 of the vSwitch's /64, is
// not delegated and holds no assigned address. The /80s holding the
// subnet-router anycast address and the gateway are never delegated.
func (v *vswitch) prefix6Free(p netip.Prefix) bool {
	if !v.ipv6On() || !v.IPv6CIDR.Contains(p.Addr()) || v.prefixes6[p] ||
		p.Contains(v.IPv6CIDR.Masked().Addr()) || p.Contains(v.gateway6()) {
		return false
	}
	for ip := range v.used6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// allocatePrefixes6 carves n free /80s, highest first: single addresses
// are handed out lowest first, so the two rarely meet. None when fewer
// than n are free.
func (v *vswitch) allocatePrefixes6(n int) ([]netip.Prefix, bool) {
	var out []netip.Prefix
	top, _ := v.gateway6().Prefix(Prefix6Bits)
	for p := top; len(out) < n && v.IPv6CIDR.Contains(p.Addr()); p = prevPrefix6(p) {
		if v.prefix6Free(p) {
			out = append(out, p)
		}
		if p.Addr() == v.IPv6CIDR.Masked().Addr() {
			break
		}
	}
	if len(out) < n {
		return nil, false
	}
	for _, p := range out {
		v.prefixes6[p] = true
	}
	return out, true
}

func (v *vswitch) releasePrefixes6(ps ...netip.Prefix) {
	for _, p := range ps {
		delete(v.prefixes6, p)
	}
}

// prevPrefix6 returns the /80 right below p.
func prevPrefix6(p netip.Prefix) netip.Prefix {
	b := p.Addr().As16()
	// Bits 64..79 are bytes 8 and 9.
	n := uint16(b[8])<<8 | uint16(b[9])
	n--
	b[8], b[9] = byte(n>>8), byte(n)
	return netip.PrefixFrom(netip.AddrFrom16(b), Prefix6Bits)
}

// allocate6 takes n free IPv6 addresses, lowest first.
func (v *vswitch) allocate6(n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for ip := v.IPv6CIDR.Masked().Addr().Next(); len(out) < n && v.usable6(ip); ip = ip.Next() {
		if !v.used6[ip] && !v.inPrefix6(ip) {
			v.used6[ip] = true
			out = append(out, ip)
		}
	}
	return out
}

func (v *vswitch) release6(ips ...netip.Addr) {
	for _, ip := range ips {
		delete(v.used6, ip)
	}
}
