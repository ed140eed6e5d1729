package enforce

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/veni-cni/veni/policy"
)

// rulesetFromBytes builds a ruleset from fuzz input: per entry a prefix
// (4 address bytes, a length) and up to three port rules.
func rulesetFromBytes(b []byte) *policy.Ruleset {
	rs := &policy.Ruleset{}
	if len(b) == 0 {
		return rs
	}
	rs.Ingress.Isolated = b[0]&1 != 0
	rs.Egress.Isolated = b[0]&2 != 0
	b = b[1:]
	for len(b) >= 6 {
		dir := &rs.Ingress
		if b[5]&0x80 != 0 {
			dir = &rs.Egress
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[0:4])), int(b[4]%33))
		e := policy.CIDREntry{Prefix: p}
		n := int(b[5] & 3)
		b = b[6:]
		for i := 0; i < n && len(b) >= 5; i++ {
			first := binary.BigEndian.Uint16(b[1:3])
			last := binary.BigEndian.Uint16(b[3:5])
			if last < first {
				first, last = last, first
			}
			proto := []policy.Protocol{policy.ProtoAny, policy.ProtoTCP, policy.ProtoUDP, policy.ProtoSCTP, policy.ProtoICMP}[int(b[0])%5]
			r := policy.PortRule{Protocol: proto}
			if proto != policy.ProtoAny && proto != policy.ProtoICMP {
				r.First, r.Last = first, last
			}
			e.Rules = append(e.Rules, r)
			b = b[5:]
		}
		if dir.Isolated {
			dir.CIDRs = append(dir.CIDRs, e)
		}
	}
	return rs
}

// FuzzCompileTable: any ruleset compiles to a table whose prefixes point
// at port sets it holds (or 0), whose keys fit the C layout, and whose
// digest is a function of its content.
func FuzzCompileTable(f *testing.F) {
	f.Add([]byte{3, 10, 1, 0, 0, 16, 1, 1, 0, 80, 0, 80})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 0, 53, 0, 53})
	f.Add([]byte{2, 8, 8, 8, 8, 32, 0x81, 3, 0, 0, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs := rulesetFromBytes(b)
		tbl, err := compileTable(rs)
		if err != nil {
			t.Fatal(err)
		}
		if !rs.Ingress.Isolated && !rs.Egress.Isolated {
			if tbl != nil {
				t.Fatal("a table for a ruleset isolating nothing")
			}
			return
		}
		sets := map[uint32]bool{}
		for _, k := range tbl.keys {
			if bits, kind, data := keyOf(k); kind == kindPorts {
				if bits < kindBits+setBits || bits > keyBits {
					t.Fatalf("port key of %d bits", bits)
				}
				sets[binary.NativeEndian.Uint32(data[0:4])] = true
			}
		}
		for i, k := range tbl.keys {
			bits, kind, _ := keyOf(k)
			if bits > keyBits {
				t.Fatalf("key of %d bits", bits)
			}
			if kind == kindIn4 || kind == kindOut4 {
				if id := setOf(tbl.values[i]); id != 0 && !sets[id] {
					t.Fatalf("prefix points at port set %d, which has no entries", id)
				}
			}
		}
		if len(sets) != tbl.portSets {
			t.Fatalf("%d port sets with entries, %d counted", len(sets), tbl.portSets)
		}
		again, _ := compileTable(rulesetFromBytes(b))
		if again.digest != tbl.digest {
			t.Fatal("digest differs for the same ruleset")
		}
	})
}

// FuzzParseDrop: any ring buffer record parses or is refused, never
// panics.
func FuzzParseDrop(f *testing.F) {
	f.Add(make([]byte, dropSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDrop(b)
		if err != nil {
			if len(b) >= dropSize {
				t.Fatalf("%d bytes refused: %v", len(b), err)
			}
			return
		}
		_ = d.String()
	})
}
