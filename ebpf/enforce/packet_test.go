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
	ipv6         bool
	arp          bool
}

func (p testPacket) String() string {
	switch {
	case p.arp:
		return "arp"
	case p.ipv6:
		return "ipv6"
	case p.proto == policy.ProtoICMP && p.quoted != nil:
		return fmt.Sprintf("icmp %d/%d %s->%s quoting [%s]", p.icmpType, p.icmpCode, p.src, p.dst, p.quoted)
	case p.proto == policy.ProtoICMP:
		return fmt.Sprintf("icmp %d %s->%s id %d", p.icmpType, p.src, p.dst, p.echoID)
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
	return fmt.Sprintf("%s %s:%d->%s:%d%s", p.proto, p.src, p.sport, p.dst, p.dport, flags)
}

// ip returns the packet from its IPv4 header on.
func (p testPacket) ip() []byte {
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
	case policy.ProtoICMP:
		l4 = make([]byte, 8)
		l4[0], l4[1] = p.icmpType, p.icmpCode
		binary.BigEndian.PutUint16(l4[4:], p.echoID)
		if p.quoted != nil {
			q := p.quoted.ip()
			l4 = append(l4, q[:min(len(q), 28)]...) // IP header and 8 bytes
		}
	default:
		l4 = make([]byte, 8)
	}
	if p.fragOffset > 0 {
		l4 = make([]byte, 16) // no transport header in a later fragment
	}
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

// frame returns the packet as an Ethernet frame.
func (p testPacket) frame() []byte {
	eth := make([]byte, 14)
	copy(eth[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(eth[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	switch {
	case p.arp:
		binary.BigEndian.PutUint16(eth[12:], 0x0806)
		return append(eth, make([]byte, 28)...)
	case p.ipv6:
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
		h := make([]byte, 40+8)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], 8)
		h[6] = 17
		h[7] = 64
		return append(eth, h...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	return append(eth, p.ip()...)
}
