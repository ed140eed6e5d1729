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
// The prefixes are visited in table order (family, address, length), in
// which every prefix comes after its ancestors and before its
// descendants, keeping a stack of the enclosing prefixes with the atoms
// covering each: a prefix's atoms are its parent's, less those it is an
// except of, plus its own. Entries equal to their nearest kept ancestor
// (or empty with none) change no lookup and are dropped. With blocksOnly,
// atoms from selectors are left out.
func (c *compiler) flatten(atoms []atom, blocksOnly bool) []CIDREntry {
	// One row per atom and per except; rows of equal prefixes are then
	// adjacent.
	rows := make([]flatRow, 0, len(atoms))
	for i := range atoms {
		a := &atoms[i]
		if blocksOnly && !a.block {
			continue
		}
		rows = append(rows, flatRow{key: keyOf(a.cidr), atom: int32(i)})
		for _, e := range a.except {
			rows = append(rows, flatRow{key: keyOf(e), atom: -1})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(a, b flatRow) int { return compareKeys(a.key, b.key) })

	type frame struct {
		key  prefixKey
		acc  int        // c.arena[acc:end] are the atoms covering the prefix
		end  int        //
		kept []PortRule // the value of the nearest kept prefix at or above
	}
	var out []CIDREntry
	var stack []frame
	c.arena = c.arena[:0]
	var items []portItem
	for i := 0; i < len(rows); {
		k := rows[i].key
		pfx := k.prefix()
		for len(stack) > 0 && !stack[len(stack)-1].key.contains(k) {
			stack = stack[:len(stack)-1]
		}
		start := len(c.arena)
		var parentKept []PortRule
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			for j := top.acc; j < top.end; j++ {
				if ai := c.arena[j]; !excepted(&atoms[ai], pfx) {
					c.arena = append(c.arena, ai)
				}
			}
			parentKept = top.kept
		}
		for ; i < len(rows) && rows[i].key == k; i++ {
			if rows[i].atom >= 0 {
				c.arena = append(c.arena, rows[i].atom)
			}
		}
		items = items[:0]
		for _, ai := range c.arena[start:] {
			items = append(items, atoms[ai].ports...)
		}
		rules := c.mergePorts(items)
		kept := parentKept
		if !equalRules(rules, parentKept) {
			out = append(out, CIDREntry{Prefix: pfx, Rules: rules})
			kept = rules
		}
		stack = append(stack, frame{key: k, acc: start, end: len(c.arena), kept: kept})
	}
	return out
}

// flatRow is one prefix occurrence: an atom's prefix, or an except (-1).
type flatRow struct {
	key  prefixKey
	atom int32
}

// prefixKey is a prefix as integers, for fast ordering and containment;
// an IPv4 address is in the low 32 bits of lo.
type prefixKey struct {
	hi, lo uint64
	bits   uint8
	v6     bool
}

func keyOf(p netip.Prefix) prefixKey {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		return prefixKey{lo: uint64(binary.BigEndian.Uint32(b[:])), bits: uint8(p.Bits())}
	}
	b := a.As16()
	return prefixKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: uint8(p.Bits()), v6: true}
}

func (k prefixKey) prefix() netip.Prefix {
	if !k.v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(k.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(k.bits))
}

// contains reports whether k's prefix contains o's: same family, k no
// longer, and o's address starts with k's bits.
func (k prefixKey) contains(o prefixKey) bool {
	if k.v6 != o.v6 || k.bits > o.bits {
		return false
	}
	switch {
	case k.bits == 0:
		return true
	case !k.v6:
		shift := 32 - uint(k.bits)
		return k.lo>>shift == o.lo>>shift
	case k.bits <= 64:
		shift := 64 - uint(k.bits)
		return k.hi>>shift == o.hi>>shift
	default:
		shift := 128 - uint(k.bits)
		return k.hi == o.hi && k.lo>>shift == o.lo>>shift
	}
}

// compareKeys orders prefixes as tables are: IPv4 first, then by address,
// then by length (so ancestors come first and descendants follow at once).
func compareKeys(a, b prefixKey) int {
	if a.v6 != b.v6 {
		if b.v6 {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(a.bits, b.bits))
}

// comparePrefix orders prefixes as tables are.
func comparePrefix(a, b netip.Prefix) int { return compareKeys(keyOf(a), keyOf(b)) }

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

// identities groups the selector items by identity, in key order.
func (c *compiler) identities(ids []idItem) []IdentityRule {
	if len(ids) == 0 {
		return nil
	}
	slices.SortStableFunc(ids, func(a, b idItem) int { return cmp.Compare(a.id, b.id) })
	var out []IdentityRule
	var items []portItem
	for i := 0; i < len(ids); {
		id := ids[i].id
		items = items[:0]
		for ; i < len(ids) && ids[i].id == id; i++ {
			items = append(items, ids[i].ports...)
		}
		key := HostIdentity
		if id != hostID {
			key = c.s.identKeys[id]
		}
		out = append(out, IdentityRule{Identity: key, Rules: c.mergePorts(items)})
	}
	// The node's key sorts among the pods' by its text.
	slices.SortStableFunc(out, func(a, b IdentityRule) int { return strings.Compare(a.Identity, b.Identity) })
	return out
}
