package enforce

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"

	"github.com/veni-cni/veni/policy"
)

// The layout of an endpoint's table, as veni_policy.h declares it
// (TestTableLayout_MatchesC keeps them in step).
const (
	keySize   = 28  // struct pol_key
	valueSize = 4   // struct pol_value
	epSize    = 24  // struct pol_ep
	keyBits   = 192 // every bit of pol_key after prefixlen

	kindHead  = 0
	kindIn4   = 1
	kindOut4  = 2
	kindIn6   = 3
	kindOut6  = 4
	kindPorts = 5

	flagIsolatedIn  = 1
	flagIsolatedOut = 2
	flagFailClosed  = 4

	// kindBits covers pol_key.gen, kind and its padding: every prefix
	// starts with them.
	kindBits = 64
	// setBits covers a port set's id, protoBits its protocol.
	setBits   = 32
	protoBits = 8

	// maxTableEntries bounds one endpoint's table (a ruleset beyond it is
	// refused rather than loaded in part). The node's trie holds
	// VENI_POL_MAX_RULES entries for all of them.
	maxTableEntries = 1 << 16
)

type (
	tableKey   [keySize]byte
	tableValue [valueSize]byte
)

// table is an endpoint's compiled table, without its HEAD entry and with
// generation 0 in its keys: the generation is known only when it is
// installed (withGen).
type table struct {
	keys   []tableKey
	values []tableValue
	flags  uint32
	// digest identifies the content: flags, then every key and value.
	digest uint64
	// portSets counts the distinct port sets.
	portSets int
}

// entries returns how many entries the installed table has.
func (t *table) entries() int { return len(t.keys) + 1 }

func newKey(bits int, kind byte, data []byte) tableKey {
	var k tableKey
	binary.NativeEndian.PutUint32(k[0:4], uint32(bits))
	k[8] = kind
	copy(k[12:], data)
	return k
}

// genOf reads the generation of a key.
func genOf(k tableKey) uint32 { return binary.NativeEndian.Uint32(k[4:8]) }

// headKey is generation gen's first key in the trie's order.
func headKey(gen uint32) tableKey {
	k := newKey(keyBits, kindHead, nil)
	binary.NativeEndian.PutUint32(k[4:8], gen)
	return k
}

// withGen returns the table's entries as generation gen writes them,
// HEAD first: a generation whose HEAD exists can be found and deleted
// even if the rest of it was cut short.
func (t *table) withGen(gen uint32) ([]tableKey, []tableValue) {
	keys := make([]tableKey, 0, t.entries())
	values := make([]tableValue, 0, t.entries())
	keys = append(keys, headKey(gen))
	values = append(values, tableValue{})
	for i, k := range t.keys {
		binary.NativeEndian.PutUint32(k[4:8], gen)
		keys = append(keys, k)
		values = append(values, t.values[i])
	}
	return keys, values
}

// epRecord is an endpoint's entry in veni_pol_eps (struct pol_ep).
type epRecord [epSize]byte

func newEPRecord(gen, flags uint32, digest uint64, ip netip.Addr, entries int) epRecord {
	var r epRecord
	binary.NativeEndian.PutUint32(r[0:4], gen)
	binary.NativeEndian.PutUint32(r[4:8], flags)
	binary.NativeEndian.PutUint64(r[8:16], digest)
	if ip.Is4() {
		a := ip.As4()
		copy(r[16:20], a[:])
	}
	binary.NativeEndian.PutUint32(r[20:24], uint32(entries))
	return r
}

func (r epRecord) installed() installed {
	in := installed{
		gen:     binary.NativeEndian.Uint32(r[0:4]),
		flags:   binary.NativeEndian.Uint32(r[4:8]),
		digest:  binary.NativeEndian.Uint64(r[8:16]),
		entries: int(binary.NativeEndian.Uint32(r[20:24])),
	}
	if a := netip.AddrFrom4([4]byte(r[16:20])); !a.IsUnspecified() {
		in.ip = a
	}
	return in
}

// compileTable turns rs into the endpoint's table, or nil when no
// direction is isolated (the endpoint needs no table: everything passes).
//
// Per isolated direction every CIDRs entry becomes a prefix whose value is
// a port set id (0 when the entry allows nothing: an except). Each
// distinct set of port rules is stored once: a ProtoAny rule as the prefix
// {set}, other rules as {set, protocol} plus each aligned block of their
// port range (policy.PortPrefixes). The compiled CIDRs table already
// decides alone (excepts flattened, the node's addresses included), so the
// kernel needs no other structure.
func compileTable(rs *policy.Ruleset) (*table, error) {
	if rs == nil {
		return nil, fmt.Errorf("%w: no ruleset", ErrInvalidEndpoint)
	}
	t := &table{}
	if rs.Ingress.Isolated {
		t.flags |= flagIsolatedIn
	}
	if rs.Egress.Isolated {
		t.flags |= flagIsolatedOut
	}
	if t.flags == 0 {
		return nil, nil
	}
	sets := make(map[string]uint32)
	for _, d := range []struct {
		dir          *policy.Direction
		kind4, kind6 byte
	}{
		{&rs.Ingress, kindIn4, kindIn6},
		{&rs.Egress, kindOut4, kindOut6},
	} {
		if !d.dir.Isolated {
			continue
		}
		ids := make(map[netip.Prefix]uint32, len(d.dir.CIDRs))
		for _, e := range d.dir.CIDRs {
			p := e.Prefix.Masked()
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			ids[p] = t.portSet(sets, e.Rules)
		}
		for _, p := range aggregate(ids) {
			kind := d.kind4
			if !p.Addr().Is4() {
				kind = d.kind6
			}
			var v tableValue
			binary.NativeEndian.PutUint32(v[0:4], ids[p])
			t.add(newKey(kindBits+p.Bits(), kind, p.Addr().AsSlice()), v)
		}
	}
	if t.entries() > maxTableEntries {
		return nil, fmt.Errorf("%w: ruleset of %s needs %d table entries, more than %d", ErrInvalidEndpoint, rs.Pod, t.entries(), maxTableEntries)
	}
	t.portSets = len(sets)
	h := fnv.New64a()
	var fl [4]byte
	binary.LittleEndian.PutUint32(fl[:], t.flags)
	h.Write(fl[:])
	for i := range t.keys {
		h.Write(t.keys[i][:])
		h.Write(t.values[i][:])
	}
	t.digest = h.Sum64()
	return t, nil
}

// aggregate shrinks a longest-prefix-match table (prefix → port set) to
// fewer prefixes that answer every lookup as it did, and returns them
// sorted (ids gains the merged prefixes and keeps the rest). Pods of a
// namespace have neighbouring addresses, so a selector that matches many
// of them compiles to runs of /32s with one port set: two halves of a
// prefix with the same set become the prefix, and an entry with the set
// of the entry that covers it is dropped. Fewer entries install faster and
// take less kernel memory; a lookup costs the same.
func aggregate(ids map[netip.Prefix]uint32) []netip.Prefix {
	// covering returns the longest prefix in ids strictly containing p.
	covering := func(p netip.Prefix) (netip.Prefix, bool) {
		for b := p.Bits() - 1; b >= 0; b-- {
			q := netip.PrefixFrom(p.Addr(), b).Masked()
			if _, ok := ids[q]; ok {
				return q, true
			}
		}
		return netip.Prefix{}, false
	}
	// Merge halves, longest first: a merged prefix can merge again with
	// its own other half on the next level up.
	byBits := make(map[int][]netip.Prefix)
	maxBits := 0
	for p := range ids {
		byBits[p.Bits()] = append(byBits[p.Bits()], p)
		maxBits = max(maxBits, p.Bits())
	}
	for b := maxBits; b > 0; b-- {
		for _, p := range byBits[b] {
			id, ok := ids[p]
			if !ok {
				continue // merged already, as the other half
			}
			other := otherHalf(p)
			oid, ok := ids[other]
			if !ok || oid != id {
				continue
			}
			parent := netip.PrefixFrom(p.Addr(), b-1).Masked()
			if pid, ok := ids[parent]; ok && pid != id {
				continue // the halves override their parent
			} else if !ok {
				ids[parent] = id
				byBits[b-1] = append(byBits[b-1], parent)
			}
			delete(ids, p)
			delete(ids, other)
		}
	}
	// Drop entries that say what their cover says. Decided against the
	// table before any is dropped: a dropped cover had its own cover's
	// set, so the answer under it stays the same.
	var redundant []netip.Prefix
	for p, id := range ids {
		if q, ok := covering(p); ok && ids[q] == id {
			redundant = append(redundant, p)
		}
	}
	for _, p := range redundant {
		delete(ids, p)
	}
	out := make([]netip.Prefix, 0, len(ids))
	for p := range ids {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// otherHalf returns the prefix that, with p, makes up p's parent.
func otherHalf(p netip.Prefix) netip.Prefix {
	a := p.Addr().AsSlice()
	bit := p.Bits() - 1
	a[bit/8] ^= 0x80 >> (bit % 8)
	o, _ := netip.AddrFromSlice(a)
	return netip.PrefixFrom(o, p.Bits())
}

func (t *table) add(k tableKey, v tableValue) {
	t.keys = append(t.keys, k)
	t.values = append(t.values, v)
}

// portSet returns the id of the set of rules, adding the set's entries the
// first time it is seen. An empty set is 0, which allows nothing.
func (t *table) portSet(sets map[string]uint32, rules []policy.PortRule) uint32 {
	if len(rules) == 0 {
		return 0
	}
	any := false
	for _, r := range rules {
		any = any || r.Protocol == policy.ProtoAny
	}
	// Origins (RuleRef) do not matter to the kernel: equal ports are one set.
	b := make([]byte, 0, 5*len(rules))
	if any {
		b = append(b, 0)
	} else {
		for _, r := range rules {
			b = append(b, byte(r.Protocol), byte(r.First>>8), byte(r.First), byte(r.Last>>8), byte(r.Last))
		}
	}
	if id, ok := sets[string(b)]; ok {
		return id
	}
	id := uint32(len(sets) + 1)
	sets[string(b)] = id
	var data [7]byte
	binary.NativeEndian.PutUint32(data[0:4], id)
	if any {
		t.add(newKey(kindBits+setBits, kindPorts, data[:4]), tableValue{})
		return id
	}
	for _, r := range rules {
		data[4] = byte(r.Protocol)
		for _, pp := range policy.PortPrefixes(r.First, r.Last) {
			binary.BigEndian.PutUint16(data[5:7], pp.Port)
			t.add(newKey(kindBits+setBits+protoBits+pp.Bits, kindPorts, data[:]), tableValue{})
		}
	}
	return id
}

// failClosedTable isolates both directions and allows nothing but what the
// programs always allow (the node's own packets into the pod, replies).
func failClosedTable() *table {
	t := &table{flags: flagIsolatedIn | flagIsolatedOut | flagFailClosed}
	h := fnv.New64a()
	var fl [4]byte
	binary.LittleEndian.PutUint32(fl[:], t.flags)
	h.Write(fl[:])
	t.digest = h.Sum64()
	return t
}

// A table's kernel form, for a store to keep (EncodeTable) and a CNI ADD
// to copy into the kernel without compiling (SetEndpointTable): a magic,
// the flags, the digest and the entry count, then every key and every
// value as the maps take them, generation zero.
const (
	tableMagic      = "VPT1"
	tableHeaderSize = 4 + 4 + 8 + 4
)

// EncodeTable compiles rs into its kernel form, or returns nil when rs
// isolates nothing (the endpoint needs no table). The bytes depend on this
// binary's table layout: a binary that reads another's (after an upgrade)
// refuses them and the caller compiles the ruleset instead.
func EncodeTable(rs *policy.Ruleset) ([]byte, error) {
	t, err := compileTable(rs)
	if err != nil || t == nil {
		return nil, err
	}
	b := make([]byte, 0, tableHeaderSize+len(t.keys)*(keySize+valueSize))
	b = append(b, tableMagic...)
	b = binary.LittleEndian.AppendUint32(b, t.flags)
	b = binary.LittleEndian.AppendUint64(b, t.digest)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.keys)))
	for _, k := range t.keys {
		b = append(b, k[:]...)
	}
	for _, v := range t.values {
		b = append(b, v[:]...)
	}
	return b, nil
}

// TableIsolatesEgress reports whether EncodeTable's bytes b isolate the
// endpoint's egress (false for bytes that are no table), without decoding
// the rest.
func TableIsolatesEgress(b []byte) bool {
	return len(b) >= tableHeaderSize && string(b[:4]) == tableMagic &&
		binary.LittleEndian.Uint32(b[4:8])&flagIsolatedOut != 0
}

// decodeTable reads EncodeTable's bytes back, checking every length, so
// that damaged or foreign bytes are refused, never installed in part.
func decodeTable(b []byte) (*table, error) {
	if len(b) < tableHeaderSize || string(b[:4]) != tableMagic {
		return nil, fmt.Errorf("%w: not a policy table of this veni build", ErrInvalidTable)
	}
	t := &table{
		flags:  binary.LittleEndian.Uint32(b[4:8]),
		digest: binary.LittleEndian.Uint64(b[8:16]),
	}
	n := int(binary.LittleEndian.Uint32(b[16:20]))
	body := b[tableHeaderSize:]
	if n+1 > maxTableEntries || len(body) != n*(keySize+valueSize) {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrInvalidTable, n, len(body))
	}
	if t.flags&(flagIsolatedIn|flagIsolatedOut) == 0 || t.flags&^(flagIsolatedIn|flagIsolatedOut|flagFailClosed) != 0 {
		return nil, fmt.Errorf("%w: flags %#x", ErrInvalidTable, t.flags)
	}
	t.keys = make([]tableKey, n)
	t.values = make([]tableValue, n)
	for i := range n {
		copy(t.keys[i][:], body[i*keySize:])
		if bits := binary.NativeEndian.Uint32(t.keys[i][0:4]); bits < kindBits || bits > keyBits {
			return nil, fmt.Errorf("%w: entry %d has a prefix of %d bits", ErrInvalidTable, i, bits)
		}
	}
	vals := body[n*keySize:]
	for i := range n {
		copy(t.values[i][:], vals[i*valueSize:])
	}
	return t, nil
}
