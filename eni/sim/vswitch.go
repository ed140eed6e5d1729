package sim

import (
	"net"
	"net/netip"
)

// vswitch is a subnet with its address book. Addresses are handed out
// lowest first, which keeps tests and demos readable.
type vswitch struct {
	VSwitchSpec
	first, last netip.Addr          // usable range, inclusive
	gateway     netip.Addr          // CIDR's last address minus 2
	used        map[netip.Addr]bool // allocated usable addresses
	total       int
	limit       int // with a VSwitchFault: len(used) may not exceed it; -1 without
	maxMore     int // the VSwitchFault as set, for FaultState
}

func newVSwitch(spec VSwitchSpec) *vswitch {
	v := &vswitch{VSwitchSpec: spec, used: map[netip.Addr]bool{}, limit: -1}
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
