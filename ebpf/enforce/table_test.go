package enforce

import (
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/veni-cni/veni/policy"
)

func keyOf(k tableKey) (bits int, kind byte, data []byte) {
	return int(binary.NativeEndian.Uint32(k[0:4])), k[8], k[12:]
}

func setOf(v tableValue) uint32 { return binary.NativeEndian.Uint32(v[0:4]) }

// TestCompileTable_Entries checks the entries testRuleset compiles to:
// one prefix per CIDR entry (IPv6 apart), the except's with set 0, equal
// port rules sharing a set, ranges split into aligned blocks.
func TestCompileTable_Entries(t *testing.T) {
	tbl, err := compileTable(testRuleset())
	if err != nil {
		t.Fatal(err)
	}
	if tbl.flags != flagIsolatedIn|flagIsolatedOut {
		t.Errorf("flags %#x", tbl.flags)
	}
	prefixes := map[string]uint32{}
	ports := map[uint32]int{}
	for i, k := range tbl.keys {
		bits, kind, data := keyOf(k)
		switch kind {
		case kindIn4, kindOut4:
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte(data[:4])), bits-kindBits)
			prefixes[string(rune('0'+kind))+p.String()] = setOf(tbl.values[i])
		case kindIn6, kindOut6:
			p := netip.PrefixFrom(netip.AddrFrom16([16]byte(data[:16])), bits-kindBits)
			prefixes[string(rune('0'+kind))+p.String()] = setOf(tbl.values[i])
		case kindPorts:
			ports[binary.NativeEndian.Uint32(data[0:4])]++
		default:
			t.Errorf("entry %d of kind %d", i, kind)
		}
	}
	in, out := string(rune('0'+kindIn4)), string(rune('0'+kindOut4))
	if prefixes[in+"10.1.2.0/24"] != 0 || prefixes[out+"10.0.0.0/8"] != 0 {
		t.Errorf("excepts allow something: %v", prefixes)
	}
	for _, p := range []string{in + "10.1.0.0/16", in + "10.1.2.3/32", in + "192.168.0.1/32", out + "0.0.0.0/0", out + "10.2.0.0/16", out + "10.3.0.0/16"} {
		if prefixes[p] == 0 {
			t.Errorf("%s: no port set (%v)", p, prefixes)
		}
	}
	if _, ok := prefixes[string(rune('0'+kindIn6))+"fd00::/64"]; !ok {
		t.Errorf("ipv6 entry missing: %v", prefixes)
	}
	if len(prefixes) != 9 {
		t.Errorf("%d prefixes, want 9: %v", len(prefixes), prefixes)
	}
	// tcp 80 + udp 53 + sctp 9: 3 entries; 8080-8090: 8080/13 8088/15 8090/16
	// = 3; tcp 443: 1; any: 1 (twice, one set); udp 1000-2000: 1000/13
	// 1008/12 1024/7 1536/8 1792/9 1920/10 1984/12 2000/16 = 8.
	if tbl.portSets != 6 {
		t.Errorf("%d port sets, want 6 (%v)", tbl.portSets, ports)
	}
	total := 0
	for _, n := range ports {
		total += n
	}
	if want := 3 + 3 + 1 + 1 + 1 + 8; total != want {
		t.Errorf("%d port entries, want %d (%v)", total, want, ports)
	}
	if tbl.entries() != len(tbl.keys)+1 { // and HEAD
		t.Errorf("entries %d, keys %d", tbl.entries(), len(tbl.keys))
	}
}

// TestCompileTable_Digest: the digest follows content, not rule origins.
func TestCompileTable_Digest(t *testing.T) {
	a, _ := compileTable(testRuleset())
	b, _ := compileTable(testRuleset())
	if a.digest != b.digest {
		t.Error("same ruleset, different digests")
	}
	rs := testRuleset()
	rs.Ingress.CIDRs[0].Rules[0].By = []policy.RuleRef{{Policy: "other/p"}}
	c, _ := compileTable(rs)
	if c.digest != a.digest {
		t.Error("rule origins changed the digest")
	}
	rs.Ingress.CIDRs[0].Rules[0].Last = 81
	d, _ := compileTable(rs)
	if d.digest == a.digest {
		t.Error("a port change kept the digest")
	}
	rs = testRuleset()
	rs.Egress.Isolated = false
	e, _ := compileTable(rs)
	if e.digest == a.digest {
		t.Error("dropping egress isolation kept the digest")
	}
	if failClosedTable().digest == a.digest {
		t.Error("fail-closed table shares a digest")
	}
}

// TestCompileTable_NotIsolated: nothing isolated needs no table; nil is
// an error.
func TestCompileTable_NotIsolated(t *testing.T) {
	tbl, err := compileTable(&policy.Ruleset{})
	if err != nil || tbl != nil {
		t.Errorf("empty ruleset: %v, %v; want no table", tbl, err)
	}
	if _, err := compileTable(nil); err == nil {
		t.Error("nil ruleset accepted")
	}
}

// TestEncodeTable_RoundTrip: the kernel form decodes to the table it was
// compiled to; damaged or foreign bytes are refused whole.
func TestEncodeTable_RoundTrip(t *testing.T) {
	rs := testRuleset()
	b, err := EncodeTable(rs)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := compileTable(rs)
	got, err := decodeTable(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.flags != want.flags || got.digest != want.digest || !slices.Equal(got.keys, want.keys) || !slices.Equal(got.values, want.values) {
		t.Fatalf("decoded table differs: %d keys (want %d), flags %#x (%#x), digest %x (%x)", len(got.keys), len(want.keys), got.flags, want.flags, got.digest, want.digest)
	}
	if b, err := EncodeTable(&policy.Ruleset{Pod: rs.Pod}); b != nil || err != nil {
		t.Errorf("a ruleset isolating nothing encodes to %v, %v; want nil", b, err)
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"truncated": b[:len(b)-1],
		"longer":    append(slices.Clone(b), 0),
		"magic":     append([]byte("VPT0"), b[4:]...),
		"no flags":  append(append(slices.Clone(b[:4]), 0, 0, 0, 0), b[8:]...),
	} {
		if _, err := decodeTable(bad); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("%s: %v, want ErrInvalidTable", name, err)
		}
	}
}

// lpm answers a longest-prefix-match lookup of a in table ids.
func lpm(ids map[netip.Prefix]uint32, a netip.Addr) (uint32, bool) {
	for b := a.BitLen(); b >= 0; b-- {
		if id, ok := ids[netip.PrefixFrom(a, b).Masked()]; ok {
			return id, true
		}
	}
	return 0, false
}

// Ensure aggregate answers every lookup as the table it shrinks: random
// tables of clustered prefixes (runs of neighbouring /32s, covers with
// and without the same set, nested overrides), probed at every prefix's
// first and last address and their neighbours, and at random addresses.
func TestAggregate_SameAnswers(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		orig := make(map[netip.Prefix]uint32)
		n := 1 + rnd.IntN(40)
		for range n {
			a := netip.AddrFrom4([4]byte{10, byte(rnd.IntN(2)), byte(rnd.IntN(2)), byte(rnd.IntN(16))})
			bits := []int{32, 32, 32, 31, 30, 28, 24, 16, 8}[rnd.IntN(9)]
			orig[netip.PrefixFrom(a, bits).Masked()] = uint32(rnd.IntN(3))
		}
		ids := maps.Clone(orig)
		got := aggregate(ids)
		if len(got) != len(ids) {
			t.Fatalf("round %d: %d prefixes returned, %d in the table", round, len(got), len(ids))
		}
		kept := make(map[netip.Prefix]uint32, len(got))
		for _, p := range got {
			kept[p] = ids[p]
		}
		var probes []netip.Addr
		for p := range orig {
			first := p.Addr()
			last := lastAddr(p)
			probes = append(probes, first, last, first.Prev(), last.Next())
		}
		for range 64 {
			probes = append(probes, netip.AddrFrom4([4]byte{10, byte(rnd.IntN(2)), byte(rnd.IntN(2)), byte(rnd.IntN(256))}))
		}
		for _, a := range probes {
			if !a.IsValid() {
				continue
			}
			wid, wok := lpm(orig, a)
			gid, gok := lpm(kept, a)
			if wid != gid || wok != gok {
				t.Fatalf("round %d: %s answers %d,%t; aggregated %d,%t\ntable %v\naggregated %v", round, a, wid, wok, gid, gok, orig, kept)
			}
		}
		if len(kept) > len(orig) {
			t.Fatalf("round %d: aggregated to %d prefixes from %d", round, len(kept), len(orig))
		}
	}
	// A run of pods' /32s with one set is one prefix.
	run := make(map[netip.Prefix]uint32)
	for i := range 16 {
		run[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(16 + i)}), 32)] = 7
	}
	if got := aggregate(run); len(got) != 1 || got[0] != netip.MustParsePrefix("10.0.0.16/28") {
		t.Errorf("16 neighbouring /32s aggregate to %v, want 10.0.0.16/28", got)
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}
