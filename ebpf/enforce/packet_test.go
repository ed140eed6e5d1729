package enforce

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/veni-cni/veni/policy"
)

// testPacket describes a frame for bpf_prog_test_run. Checksums are left
// zero: the programs never look at them.
type testPacket struct {
	src, dst     netip.Addr
	proto        policy.Protocol
	sport, dport uint16 // TCP, UDP, SCTP
	syn, ack     bool   // TCP flags
	icmpType     uint8  // ICMP
	icmpCode     uint8
	echoID       uint16
	quoted       *testPacket // ICMP error: the packet it quotes
	ipID         uint16
	moreFrags    bool
	fragOffset   uint16 // in 8-byte units
	arp          bool
	// IPv6 (src and dst are IPv6): hopLimit (0: 64) and extension
	// headers before the upper layer (each of 8 bytes; a fragment header
	// is added after them for moreFrags or fragOffset, with ipID).
	hopLimit uint8
	ext      []uint8
}

// protoICMPv6 is ICMPv6's protocol number (policy names no constant).
const protoICMPv6 = policy.Protocol(58)

func (p testPacket) String() string {
	switch {
	case p.arp:
		return "arp"
	case (p.proto == policy.ProtoICMP || p.proto == protoICMPv6) && p.quoted != nil:
		return fmt.Sprintf("%s %d/%d %s->%s quoting [%s]", p.proto, p.icmpType, p.icmpCode, p.src, p.dst, p.quoted)
	case p.proto == policy.ProtoICMP || p.proto == protoICMPv6:
		return fmt.Sprintf("%s %d %s->%s id %d", p.proto, p.icmpType, p.src, p.dst, p.echoID)
	}
	flags := ""
	if p.syn {
		flags += " syn"
	}
	if p.ack {
		flags += " ack"
	}
	if p.fragOffset > 0 || p.moreFrags {
		flags += fmt.Sprintf(" frag id %d off %d mf %v", p.ipID, p.fragOffset, p.moreFrags)
	}
	if len(p.ext) > 0 {
		flags += fmt.Sprintf(" ext %v", p.ext)
	}
	return fmt.Sprintf("%s %s->%s%s", p.proto, netip.AddrPortFrom(p.src, p.sport), netip.AddrPortFrom(p.dst, p.dport), flags)
}

// ip returns the packet from its IP header on.
func (p testPacket) ip() []byte {
	if p.src.Is6() {
		return p.ip6()
	}
	return p.ip4(p.l4())
}

// l4 returns the transport header (and payload) of p.
func (p testPacket) l4() []byte {
	var l4 []byte
	switch p.proto {
	case policy.ProtoTCP:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
		l4[12] = 5 << 4
		if p.syn {
			l4[13] |= 0x02
		}
		if p.ack {
			l4[13] |= 0x10
		}
	case policy.ProtoUDP:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
		binary.BigEndian.PutUint16(l4[4:], 8)
	case policy.ProtoSCTP:
		l4 = make([]byte, 12)
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
	case policy.ProtoICMP, protoICMPv6:
		l4 = make([]byte, 8)
		l4[0], l4[1] = p.icmpType, p.icmpCode
		binary.BigEndian.PutUint16(l4[4:], p.echoID)
		if p.quoted != nil {
			q := p.quoted.ip()
			if p.proto == policy.ProtoICMP {
				q = q[:min(len(q), 28)] // IP header and 8 bytes
			}
			l4 = append(l4, q...) // ICMPv6: as much as fits
		}
	default:
		l4 = make([]byte, 8)
	}
	if p.fragOffset > 0 {
		l4 = make([]byte, 16) // no transport header in a later fragment
	}
	return l4
}

// ip4 returns the IPv4 packet of p around l4.
func (p testPacket) ip4(l4 []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(h[4:], p.ipID)
	frag := p.fragOffset & 0x1fff
	if p.moreFrags {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = 64
	h[9] = byte(p.proto)
	s, d := p.src.As4(), p.dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, l4...)
}

// ip6 returns the IPv6 packet of p: the fixed header, p.ext, a fragment
// header when p is a fragment, then the transport header.
func (p testPacket) ip6() []byte {
	l4 := p.l4()
	frag := p.moreFrags || p.fragOffset > 0
	// types[i] is the type of the header after header i (header 0 is
	// the fixed one): the extensions, the fragment header, the upper
	// layer. Every extension here is 8 bytes: length 0 for hop-by-hop,
	// routing and destination options ((0+1)*8), and for AH ((0+2)*4).
	types := append([]uint8{}, p.ext...)
	if frag {
		types = append(types, 44)
	}
	types = append(types, uint8(p.proto))
	var body []byte
	for i := range p.ext {
		e := make([]byte, 8)
		e[0] = types[i+1]
		body = append(body, e...)
	}
	if frag {
		f := make([]byte, 8)
		f[0] = uint8(p.proto)
		off := p.fragOffset << 3
		if p.moreFrags {
			off |= 1
		}
		binary.BigEndian.PutUint16(f[2:], off)
		binary.BigEndian.PutUint32(f[4:], uint32(p.ipID))
		body = append(body, f...)
	}
	body = append(body, l4...)
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(body)))
	h[6] = types[0]
	h[7] = p.hopLimit
	if h[7] == 0 {
		h[7] = 64
	}
	s, d := p.src.As16(), p.dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, body...)
}

// frame returns the packet as an Ethernet frame.
func (p testPacket) frame() []byte {
	eth := make([]byte, 14)
	copy(eth[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(eth[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	switch {
	case p.arp:
		binary.BigEndian.PutUint16(eth[12:], 0x0806)
		return append(eth, make([]byte, 28)...)
	case p.src.Is6():
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
		return append(eth, p.ip6()...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	return append(eth, p.ip()...)
}
