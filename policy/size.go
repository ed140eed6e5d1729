package policy

import "math/bits"

// PortPrefix is a block of ports sharing their top Bits bits, as an LPM
// key or a masked match holds a port range.
type PortPrefix struct {
	Port uint16 `json:"port"` // first port of the block
	Bits int    `json:"bits"` // 16: this port only; 0: every port
}

// PortPrefixes returns the fewest aligned blocks covering first..last
// exactly, in order: 1-65535 is 16 blocks, 1024-65535 six, 80-80 one.
func PortPrefixes(first, last uint16) []PortPrefix {
	var out []PortPrefix
	lo, hi := uint32(first), uint32(last)
	for lo <= hi {
		// The largest block aligned at lo that stays within hi.
		size := uint32(1) << 16
		if lo != 0 {
			size = uint32(1) << bits.TrailingZeros32(lo)
		}
		for lo+size-1 > hi {
			size >>= 1
		}
		out = append(out, PortPrefix{Port: uint16(lo), Bits: 16 - bits.TrailingZeros32(size)})
		lo += size
	}
	return out
}

// MapSize estimates what a ruleset costs loaded as eBPF maps, in the two
// layouts the compiled form allows (both directions together).
type MapSize struct {
	// LPM: CIDRs alone. Per direction an LPM_TRIE keyed by
	// {u32 prefixlen, u8 direction, 3 pad, 16 B address} (24 B) whose value
	// is a u32 index into an array of port sets; each PortRule of a set is
	// 8 B {u8 protocol, u8 pad, u16 first, u16 last, u16 pad}; equal sets
	// are stored once.
	LPM Layout `json:"lpm"`
	// Identity: Identities in an LPM_TRIE keyed by {u32 prefixlen, u8
	// direction, u8 protocol, u16 port, u32 identity} (12 B, value 4 B),
	// one entry per port block (PortPrefixes) of each rule and
	// ProtoAny as one wildcard entry; plus Blocks as in LPM.
	Identity Layout `json:"identity"`
}

// Layout is the size of one layout.
type Layout struct {
	Entries   int `json:"entries"`   // LPM entries
	PortRules int `json:"portRules"` // port-set array entries, deduplicated
	// Bytes counts keys, values and port sets, plus 40 B per LPM entry
	// for the kernel's lpm_trie_node (rcu head, two children, prefix
	// length, flags); the trie's intermediate nodes (at most one per
	// entry) and allocator rounding are not counted.
	Bytes int `json:"bytes"`
}

// Sizes of the layouts MapSize assumes.
const (
	cidrKeyBytes  = 24
	idKeyBytes    = 12
	valueBytes    = 4
	portRuleBytes = 8
	lpmNodeBytes  = 40
)

// MapSize estimates rs's map footprint; see MapSize.
func (rs *Ruleset) MapSize() MapSize {
	var m MapSize
	lpmSets := make(map[string]int)
	idSets := make(map[string]int)
	for _, d := range []*Direction{&rs.Ingress, &rs.Egress} {
		if !d.Isolated {
			continue
		}
		for _, e := range d.CIDRs {
			m.LPM.Entries++
			lpmSets[portSetKey(e.Rules)] = len(e.Rules)
		}
		for _, e := range d.Blocks {
			m.Identity.Entries++
			idSets[portSetKey(e.Rules)] = len(e.Rules)
		}
		for _, ir := range d.Identities {
			for _, r := range ir.Rules {
				if r.Protocol == ProtoAny {
					m.Identity.Entries++
					continue
				}
				m.Identity.Entries += len(PortPrefixes(r.First, r.Last))
			}
		}
	}
	for _, n := range lpmSets {
		m.LPM.PortRules += n
	}
	for _, n := range idSets {
		m.Identity.PortRules += n
	}
	m.LPM.Bytes = m.LPM.Entries*(cidrKeyBytes+valueBytes+lpmNodeBytes) + m.LPM.PortRules*portRuleBytes
	blocks := 0
	for _, d := range []*Direction{&rs.Ingress, &rs.Egress} {
		if d.Isolated {
			blocks += len(d.Blocks)
		}
	}
	ids := m.Identity.Entries - blocks
	m.Identity.Bytes = blocks*(cidrKeyBytes+valueBytes+lpmNodeBytes) + ids*(idKeyBytes+valueBytes+lpmNodeBytes) + m.Identity.PortRules*portRuleBytes
	return m
}

// portSetKey identifies a port set by its ports, not by what allows them
// (the kernel needs no origins).
func portSetKey(rules []PortRule) string {
	b := make([]byte, 0, 5*len(rules))
	for _, r := range rules {
		b = append(b, byte(r.Protocol), byte(r.First>>8), byte(r.First), byte(r.Last>>8), byte(r.Last))
	}
	return string(b)
}
