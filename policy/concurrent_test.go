package policy

import (
	"encoding/json"
	"sync"
	"testing"
)

// TestSnapshot_Concurrent compiles and traces from many goroutines on one
// snapshot and one tracer (the lazy indexes are built under sync.Once):
// run with -race, and the results must equal a sequential run's.
func TestSnapshot_Concurrent(t *testing.T) {
	in := fixedCluster()
	in.Policies = mustPolicies(t, semanticCases[len(semanticCases)-1].policies)
	in.Policies = append(in.Policies, mustPolicies(t, `
- metadata: {name: named, namespace: x}
  spec:
    podSelector: {matchLabels: {pod: c}}
    egress: [{ports: [{port: http}]}, {to: [{namespaceSelector: {}}]}]`)...)
	want := make(map[PodRef]string)
	seq := mustSnapshot(t, in)
	for _, p := range seq.Pods() {
		rs, _ := seq.Compile(p.Ref())
		b, _ := json.Marshal(rs)
		want[p.Ref()] = string(b)
	}
	s := mustSnapshot(t, in)
	tr := s.Tracer()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, p := range s.Pods() {
				rs, err := s.Compile(p.Ref())
				if err != nil {
					t.Error(err)
					return
				}
				if b, _ := json.Marshal(rs); string(b) != want[p.Ref()] {
					t.Errorf("%s differs when compiled concurrently", p.Ref())
				}
				if _, err := tr.Trace(PodEndpoint("x", "c"), PodEndpoint(p.Namespace, p.Name), ProtoTCP, 80); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}
