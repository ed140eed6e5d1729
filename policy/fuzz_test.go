package policy

import (
	"math/rand/v2"
	"testing"
)

// FuzzParseManifests feeds arbitrary bytes to the manifest reader: it
// may refuse them, never panic, and what it accepts New must take or
// refuse without panicking either.
func FuzzParseManifests(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"))
	f.Add([]byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 80, endPort: 90}]}]\n"))
	f.Add([]byte(`{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"podIP": "10.0.0.1"}}]}`))
	f.Add([]byte("--- # c\n---\nkind: X\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseManifests("fuzz.yaml", data)
		if err != nil {
			return
		}
		s, err := New(in)
		if err != nil {
			return
		}
		for _, p := range s.Pods() {
			if _, err := s.Compile(p.Ref()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzSnapshot_Trace drives the random-world comparison with cyclonus
// from fuzzed seeds: coverage-guided exploration of worlds beyond the
// seeded ones of TestSnapshot_Trace_Random.
func FuzzSnapshot_Trace(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		in := randomWorld(r)
		flows := randomFlows(r, in)
		if len(flows) > 3000 {
			flows = flows[:3000]
		}
		compareFlows(t, in, flows)
		checkSplit(t, in, flows)
	})
}
