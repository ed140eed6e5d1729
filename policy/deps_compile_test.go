package policy

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// Ensure CompileAllDeps names every pod whose address a direction reads:
// in random worlds, moving a pod outside deps to another address (or
// taking its address away, or giving it one) leaves every direction of
// every pod as it was and changes only that pod's own IPs; and a pod the
// compile found in deps is one some direction's rule brought in (moving
// it changes some direction, for at least some of them, so deps is not
// simply every pod).
func TestSnapshot_CompileAllDeps_Random(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	moved, changedSome := 0, 0
	for range 400 {
		in := randomWorld(r)
		snap := mustSnapshot(t, in)
		var refs []PodRef
		for _, p := range in.Pods {
			refs = append(refs, p.Ref())
		}
		before, deps, err := snap.CompileAllDeps(refs)
		if err != nil {
			t.Fatal(err)
		}
		keyed, err := snap.CompileAllKeyed(refs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, keyed) {
			t.Fatal("CompileAllDeps compiles differently from CompileAllKeyed")
		}
		for i, p := range in.Pods {
			if p.HostNetwork {
				continue
			}
			next := in
			next.Pods = slices.Clone(in.Pods)
			q := next.Pods[i]
			switch r.IntN(3) {
			case 0:
				q.IPs = nil
			case 1:
				q.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 1, 1, 2})} // inside most blocks, some excepts
			default:
				q.IPs = []netip.Addr{netip.AddrFrom4([4]byte{172, 16, 9, byte(i + 1)})}
			}
			next.Pods[i] = q
			after, err := mustSnapshot(t, next).CompileAllKeyed(refs)
			if err != nil {
				t.Fatal(err)
			}
			same := true
			for j := range before {
				a, b := *before[j].Ruleset, *after[j].Ruleset
				if j == i {
					a.IPs, b.IPs = nil, nil
				}
				if !reflect.DeepEqual(a, b) {
					same = false
					if !deps[p.Ref()] {
						ja, _ := json.Marshal(a)
						jb, _ := json.Marshal(b)
						t.Fatalf("%s is not in deps, yet moving it from %v to %v changed %s:\n%s\n%s", p.Ref(), p.IPs, q.IPs, a.Pod, ja, jb)
					}
				}
			}
			if !deps[p.Ref()] {
				moved++
			} else if !same {
				changedSome++
			}
		}
	}
	if moved == 0 || changedSome == 0 {
		t.Fatalf("the random worlds moved %d pods outside deps and changed directions by moving %d inside: both must happen", moved, changedSome)
	}
	t.Logf("%d pods outside deps moved without a change, %d inside deps changed a direction", moved, changedSome)
}
