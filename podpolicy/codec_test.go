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
		b, digest, err := enc.encode(c)
		if err != nil {
			t.Fatal(err)
		}
		alone, want, err := encodeRuleset(c.Ruleset)
		if err != nil {
			t.Fatal(err)
		}
		if digest != want || !bytes.Equal(b, alone) {
			t.Fatalf("%s: the pass encoder's digest %s, alone %s", c.Ruleset.Pod, digest, want)
		}
		rs, err := decodeRuleset(b)
		if err != nil {
			t.Fatalf("%s: %v", c.Ruleset.Pod, err)
		}
		if _, again, _ := encodeRuleset(rs); again != digest || !reflect.DeepEqual(rs.Pod, c.Ruleset.Pod) || !reflect.DeepEqual(rs.IPs, c.Ruleset.IPs) {
			t.Fatalf("%s: decoded ruleset differs (digest %s, was %s)", c.Ruleset.Pod, again, digest)
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
		b, digest, err := again.encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if alone, want, _ := encodeRuleset(c.Ruleset); digest != want || !bytes.Equal(b, alone) {
			t.Fatalf("%s: reused digest %s, alone %s", c.Ruleset.Pod, digest, want)
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
		_, digest, err := third.encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, want, _ := encodeRuleset(c.Ruleset); digest != want {
			t.Fatalf("%s: digest %s after one pod moved, alone %s", c.Ruleset.Pod, digest, want)
		}
	}
	if third.joined != 1 {
		t.Errorf("a pass with one pod's address changed joined %d rulesets, want 1", third.joined)
	}

	b, _, _ := encodeRuleset(all[0].Ruleset)
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"older format": b[4:],
		"truncated":    b[:len(b)-3],
		"trailing":     append(bytes.Clone(b), 0),
	} {
		if _, err := decodeRuleset(bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
