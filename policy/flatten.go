package policy

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
)

// flatten turns atoms (a prefix minus excepts, and the ports one rule
// allows there) into a longest-prefix-match table whose every prefix
// carries the union of the atoms covering it.
//
// The table's prefixes are the atoms' prefixes and excepts. An address
// whose longest stored prefix is P lies inside an atom exactly when the
// atom's prefix contains P and none of its excepts contains P: prefixes
// nest or are disjoint, and an except inside P is itself stored, so the
// address would match it (or something longer) rather than P. The value
// of P is therefore the union over atoms containing P and not excepted at
// P. That is the AWS agent's #326 avoided: an except of one rule is an
// entry that still carries every other rule covering it.
//
// Entries equal to their nearest stored ancestor (or empty with no
// ancestor) change no lookup and are dropped. With blocksOnly, atoms from
// selectors are left out.
func (c *compiler) flatten(atoms []atom, blocksOnly bool) []CIDREntry {
	// head maps every point (atom prefix or except) to the first atom
	// with that prefix (-1: an except only); next chains the others.
	head := make(map[netip.Prefix]int32, len(atoms))
	next := make([]int32, len(atoms))
	var byLen [129][]netip.Prefix // points by prefix length
	var lens4, lens6 []int        // distinct lengths of atom prefixes, per family
	npoints := 0
	addPoint := func(p netip.Prefix) {
		if _, ok := head[p]; !ok {
			head[p] = -1
			byLen[p.Bits()] = append(byLen[p.Bits()], p)
			npoints++
		}
	}
	for i := range atoms {
		a := &atoms[i]
		if blocksOnly && !a.block {
			continue
		}
		addPoint(a.cidr)
		if head[a.cidr] < 0 {
			if a.cidr.Addr().Is4() {
				lens4 = appendLen(lens4, a.cidr.Bits())
			} else {
				lens6 = appendLen(lens6, a.cidr.Bits())
			}
		}
		next[i] = head[a.cidr]
		head[a.cidr] = int32(i)
		for _, e := range a.except {
			addPoint(e)
		}
	}
	if npoints == 0 {
		return nil
	}
	out := make([]CIDREntry, 0, npoints)
	kept := make(map[netip.Prefix]int, npoints)
	var keptLens4, keptLens6 []int
	var items []portItem
	// Shorter prefixes first, so a point's nearest kept ancestor is
	// decided when the point is.
	for bitsLen := range byLen {
		for _, pt := range byLen[bitsLen] {
			lens, keptLens := lens4, keptLens4
			if !pt.Addr().Is4() {
				lens, keptLens = lens6, keptLens6
			}
			items = items[:0]
			for _, b := range lens {
				if b > pt.Bits() {
					break
				}
				anc, _ := pt.Addr().Prefix(b)
				ai, ok := head[anc]
				for ; ok && ai >= 0; ai = next[ai] {
					if !excepted(&atoms[ai], pt) {
						items = append(items, atoms[ai].ports...)
					}
				}
			}
			rules := c.mergePorts(items)
			var parent []PortRule
			for k := len(keptLens) - 1; k >= 0; k-- {
				b := keptLens[k]
				if b >= pt.Bits() {
					continue
				}
				anc, _ := pt.Addr().Prefix(b)
				if i, ok := kept[anc]; ok {
					parent = out[i].Rules
					break
				}
			}
			if equalRules(rules, parent) {
				continue
			}
			kept[pt] = len(out)
			out = append(out, CIDREntry{Prefix: pt, Rules: rules})
			if pt.Addr().Is4() {
				keptLens4 = appendLen(keptLens4, pt.Bits())
			} else {
				keptLens6 = appendLen(keptLens6, pt.Bits())
			}
		}
	}
	// Sort a small index rather than the entries (moving entries, which
	// hold pointers, costs write barriers), by family, address, length.
	keys := make([]sortKey, len(out))
	for i, e := range out {
		a := e.Prefix.Addr().As16()
		keys[i] = sortKey{hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:]), bits: e.Prefix.Bits(), v6: !e.Prefix.Addr().Is4(), i: i}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.v6 != b.v6 {
			if b.v6 {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(a.bits, b.bits))
	})
	sorted := make([]CIDREntry, len(out))
	for j, k := range keys {
		sorted[j] = out[k.i]
	}
	return sorted
}

// comparePrefix orders prefixes as tables are: IPv4 first, then by
// address, then by length.
func comparePrefix(a, b netip.Prefix) int {
	if a.Addr().Is4() != b.Addr().Is4() {
		if a.Addr().Is4() {
			return -1
		}
		return 1
	}
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

type sortKey struct {
	hi, lo uint64
	bits   int
	v6     bool
	i      int
}

// appendLen adds b to the sorted set lens.
func appendLen(lens []int, b int) []int {
	i, found := slices.BinarySearch(lens, b)
	if found {
		return lens
	}
	return slices.Insert(lens, i, b)
}

func excepted(a *atom, p netip.Prefix) bool {
	for _, e := range a.except {
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func equalRules(a, b []PortRule) bool {
	return slices.EqualFunc(a, b, func(x, y PortRule) bool {
		return x.Protocol == y.Protocol && x.First == y.First && x.Last == y.Last && slices.Equal(x.By, y.By)
	})
}

// mergePorts turns port items into non-overlapping PortRules, each range
// listing every rule that allows it; adjacent ranges allowed by the same
// rules are joined. Sorted by protocol (ProtoAny first), then port.
// Equal item sets give the same slice (memoized per compilation): most
// prefixes of a table share a handful of port sets.
func (c *compiler) mergePorts(items []portItem) []PortRule {
	if len(items) == 0 {
		return nil
	}
	c.sortBuf = append(c.sortBuf[:0], items...)
	items = c.sortBuf
	slices.SortFunc(items, func(a, b portItem) int {
		return cmp.Or(cmp.Compare(a.proto, b.proto), cmp.Compare(a.first, b.first), cmp.Compare(a.last, b.last), cmp.Compare(a.by, b.by))
	})
	items = slices.Compact(items)
	c.key = c.key[:0]
	for _, it := range items {
		c.key = append(c.key, byte(it.proto), byte(it.first>>8), byte(it.first), byte(it.last>>8), byte(it.last),
			byte(it.by>>24), byte(it.by>>16), byte(it.by>>8), byte(it.by))
	}
	if rules, ok := c.memo[string(c.key)]; ok {
		return rules
	}
	var out []PortRule
	for start := 0; start < len(items); {
		end := start
		for end < len(items) && items[end].proto == items[start].proto {
			end++
		}
		out = c.mergeProto(out, items[start:end])
		start = end
	}
	c.memo[string(c.key)] = out
	return out
}

// mergeProto appends the rules of one protocol's items.
func (c *compiler) mergeProto(out []PortRule, items []portItem) []PortRule {
	bounds := make([]int, 0, 2*len(items))
	for _, it := range items {
		bounds = append(bounds, int(it.first), int(it.last)+1)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	var prevSet []int32
	var set []int32
	for k := 0; k+1 < len(bounds); k++ {
		lo, hi := bounds[k], bounds[k+1]-1
		set = set[:0]
		for _, it := range items {
			if int(it.first) <= lo && hi <= int(it.last) {
				set = append(set, it.by)
			}
		}
		if len(set) == 0 {
			prevSet = nil
			continue
		}
		slices.Sort(set)
		set = slices.Compact(set)
		if n := len(out); n > 0 && prevSet != nil && slices.Equal(set, prevSet) && int(out[n-1].Last)+1 == lo && out[n-1].Protocol == items[0].proto {
			out[n-1].Last = uint16(hi)
			continue
		}
		prevSet = slices.Clone(set)
		out = append(out, PortRule{Protocol: items[0].proto, First: uint16(lo), Last: uint16(hi), By: c.refsOf(set)})
	}
	return out
}

func (c *compiler) refsOf(set []int32) []RuleRef {
	by := make([]RuleRef, len(set))
	for i, r := range set {
		by[i] = c.refs[r]
	}
	slices.SortFunc(by, compareRuleRef)
	return by
}

// identities groups the selector items by identity.
func (c *compiler) identities(ids []idItem) []IdentityRule {
	if len(ids) == 0 {
		return nil
	}
	byKey := make(map[string][]portItem)
	var keys []string
	for _, it := range ids {
		if _, ok := byKey[it.key]; !ok {
			keys = append(keys, it.key)
		}
		byKey[it.key] = append(byKey[it.key], it.ports...)
	}
	slices.SortFunc(keys, strings.Compare)
	out := make([]IdentityRule, 0, len(keys))
	for _, k := range keys {
		out = append(out, IdentityRule{Identity: k, Rules: c.mergePorts(byKey[k])})
	}
	return out
}
