package podpolicy

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/veni-cni/veni/policy"
)

// Ensure a pass's encoder, which encodes each shared direction once,
// writes exactly the bytes and digest encodeRuleset writes for each pod
// alone (an ADD compiling a pod and the daemon must agree on its digest),
// that the bytes decode to the ruleset, and that damaged bytes are refused.
func TestPassEncoder_AsEncodeRuleset(t *testing.T) {
	// The bench world, and a replica of ns0/p0: pods alike share their
	// directions.
	replica := "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p0-replica, namespace: ns0, labels: {app: app0, tier: tier0}}\n" +
		"spec: {nodeName: local, containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]}]}\n"
	in, err := policy.ParseManifests("world.yaml", []byte(benchManifests()+replica))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.New(in)
	if err != nil {
		t.Fatal(err)
	}
	refs := []policy.PodRef{{Namespace: "ns0", Name: "p0-replica"}}
	for n := range 10 {
		for i := range 10 {
			refs = append(refs, policy.PodRef{Namespace: fmt.Sprintf("ns%d", n), Name: fmt.Sprintf("p%d", i)})
		}
	}
	all, err := snap.CompileAllKeyed(refs)
	if err != nil {
		t.Fatal(err)
	}
	enc := newPassEncoder(nil)
	for _, c := range all {
		e, err := enc.encode(c)
		if err != nil {
			t.Fatal(err)
		}
		alone, err := encodeRuleset(c.Ruleset)
		if err != nil {
			t.Fatal(err)
		}
		if e.digest != alone.digest || !bytes.Equal(e.b, alone.b) {
			t.Fatalf("%s: the pass encoder's digest %s, alone %s", c.Ruleset.Pod, e.digest, alone.digest)
		}
		rs, err := decodeRecord(e.record(c.Ruleset))
		if err != nil {
			t.Fatalf("%s: %v", c.Ruleset.Pod, err)
		}
		if again, _ := encodeRuleset(rs); again.digest != e.digest || !reflect.DeepEqual(rs, c.Ruleset) {
			t.Fatalf("%s: decoded ruleset differs (digest %s, was %s)", c.Ruleset.Pod, again.digest, e.digest)
		}
	}
	if len(enc.dirs) != 2*len(all)-2 {
		t.Errorf("%d directions encoded for %d pods, a replica among them: want %d", len(enc.dirs), len(all), 2*len(all)-2)
	}
	if enc.joined != len(all) {
		t.Errorf("first pass joined %d rulesets, want %d", enc.joined, len(all))
	}

	// The next pass reuses what did not change, and only that: the same
	// rulesets, then one pod with a new address.
	again := newPassEncoder(enc.next)
	for _, c := range all {
		e, err := again.encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if alone, _ := encodeRuleset(c.Ruleset); e.digest != alone.digest || !bytes.Equal(e.b, alone.b) {
			t.Fatalf("%s: reused digest %s, alone %s", c.Ruleset.Pod, e.digest, alone.digest)
		}
	}
	if again.joined != 0 {
		t.Errorf("an unchanged pass joined %d rulesets, want 0", again.joined)
	}
	moved := *all[3].Ruleset
	moved.IPs = []netip.Addr{netip.MustParseAddr("10.9.9.9")}
	third := newPassEncoder(again.next)
	for i, c := range all {
		if i == 3 {
			c.Ruleset = &moved
		}
		e, err := third.encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if alone, _ := encodeRuleset(c.Ruleset); e.digest != alone.digest {
			t.Fatalf("%s: digest %s after one pod moved, alone %s", c.Ruleset.Pod, e.digest, alone.digest)
		}
		if i == 3 {
			// What a pass that knows only the address changed makes.
			if w, err := again.next[moved.Pod].withHead(&moved); err != nil || w.digest != e.digest || !bytes.Equal(w.b, e.b) {
				t.Errorf("withHead: digest %s, want %s (%v)", w.digest, e.digest, err)
			}
		}
	}
	if third.joined != 1 {
		t.Errorf("a pass with one pod's address changed joined %d rulesets, want 1", third.joined)
	}

	e, _ := encodeRuleset(all[0].Ruleset)
	rec := e.record(all[0].Ruleset)
	b := rec.Ruleset
	if len(rec.Parts) != 2 || len(b) > 1024 {
		t.Errorf("a record of %d bytes with %d parts: its directions should be parts", len(b), len(rec.Parts))
	}
	parts := map[string][]byte{rec.Parts[0]: rec.PartData[0], rec.Parts[1]: rec.PartData[1]}
	for name, bad := range map[string]struct {
		b     []byte
		parts map[string][]byte
	}{
		"empty":         {nil, parts},
		"older format":  {b[4:], parts},
		"truncated":     {b[:len(b)-3], parts},
		"trailing":      {append(bytes.Clone(b), 0), parts},
		"no parts":      {b, nil},
		"damaged part":  {b, map[string][]byte{rec.Parts[0]: rec.PartData[0][:10], rec.Parts[1]: rec.PartData[1]}},
		"trailing part": {b, map[string][]byte{rec.Parts[0]: append(bytes.Clone(rec.PartData[0]), 1), rec.Parts[1]: rec.PartData[1]}},
	} {
		if _, err := decodeRuleset(bad.b, bad.parts); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// A record of the encoding before parts (VRS2: the frames inline)
	// still decodes.
	v2 := append([]byte(rulesetMagicV2), e.head...)
	v2 = append(append(v2, e.in.b...), e.eg.b...)
	if rs, err := decodeRuleset(v2, nil); err != nil || !reflect.DeepEqual(rs, all[0].Ruleset) {
		t.Errorf("a VRS2 ruleset: %v", err)
	}
}
