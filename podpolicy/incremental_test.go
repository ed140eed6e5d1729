package podpolicy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// The incremental world: pods of the mirror (m*), of the manifest folder
// on this node (s*) and on another (f*: local only while they hold an
// address here), and pods no source knows (u*); policies in the mirror
// and in the folder, and peers from the peer informer, all changing.
var (
	incMirrorPods = []string{"m0", "m1", "m2", "m3"}
	incHolders    = []string{"m0", "m1", "m2", "m3", "s0", "s1", "f0", "f1", "u0"}
	incLabels     = []string{"web", "client", "db"}
	incFolderPods = `apiVersion: v1
kind: Pod
metadata: {name: s0, namespace: shop, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: s1, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: f0, namespace: shop, labels: {app: client}, annotations: {k8s.aliyun.com/pod-ips: "10.9.0.7"}}
spec: {nodeName: node-b, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: f1, namespace: shop, labels: {app: web}}
spec: {nodeName: node-b, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
`
	incFolderPolicies = []string{"", allowHTTP, denyAll, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 8080}]
`}
	incMirrorPolicies = []string{
		`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"db-in","namespace":"shop"},` +
			`"spec":{"podSelector":{"matchLabels":{"app":"db"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"web"}}}]}]}}`,
		`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"db-in","namespace":"shop"},` +
			`"spec":{"podSelector":{"matchLabels":{"app":"db"}},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"x"}}}]}]}}`,
		`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"web-out","namespace":"shop"},` +
			`"spec":{"podSelector":{"matchLabels":{"app":"web"}},"policyTypes":["Egress"],"egress":[{"to":[{"podSelector":{"matchLabels":{"app":"client"}}}]}]}}`,
	}
)

// incWorld is one randomized history applied alike to two stores: a's
// syncer lives through it (its caches, its reuse of the last compile),
// b's is made anew for every pass and reads the whole store (noCache).
type incWorld struct {
	t          *testing.T
	rng        *rand.Rand
	a, b       store.File
	dir        string
	sa         *Syncer
	ka         *fakeKernel
	peers      []policy.Pod
	held       map[string]store.OwnerKey // pod → allocation
	bound      map[string]bool
	free       []string
	ifindex    int
	readCache  storedCache
	folderFile int
}

func (w *incWorld) update(fn func(tx *store.WriteTx) error) {
	w.t.Helper()
	mustUpdate(w.t, w.a, fn)
	mustUpdate(w.t, w.b, fn)
}

func (w *incWorld) newSyncer(db store.File, k Kernel) *Syncer {
	return NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: w.dir, Node: "node-a",
		NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Peers: func() ([]policy.Pod, bool) { return w.peers, true }})
}

// step makes one random change, as the daemon's sources and CNI calls
// would, and returns what it did.
func (w *incWorld) step() string {
	pod := incHolders[w.rng.IntN(len(incHolders))]
	switch op := w.rng.IntN(10); op {
	case 0, 1: // an ADD's reservation
		if _, ok := w.held[pod]; ok || len(w.free) == 0 {
			return "nothing"
		}
		ip := w.free[0]
		w.free = w.free[1:]
		ka := reserve(w.t, w.a, "shop", pod, ip)
		reserve(w.t, w.b, "shop", pod, ip)
		w.held[pod] = ka
		return "reserve " + pod + " " + ip
	case 2, 3: // an ADD's bind
		key, ok := w.held[pod]
		if !ok || w.bound[pod] {
			return "nothing"
		}
		w.ifindex++
		bind(w.t, w.a, key, w.ifindex)
		bind(w.t, w.b, key, w.ifindex)
		w.bound[pod] = true
		return "bind " + pod
	case 4: // a DEL
		key, ok := w.held[pod]
		if !ok {
			return "nothing"
		}
		var ip netip.Addr
		_ = w.a.View(func(tx *store.ReadTx) error { a, err := tx.Allocation(key); ip = a.IP; return err })
		release(w.t, w.a, key)
		release(w.t, w.b, key)
		delete(w.held, pod)
		delete(w.bound, pod)
		w.free = append(w.free, ip.String())
		return "release " + pod
	case 5: // the informer: a pod relabelled, added or gone
		name := incMirrorPods[w.rng.IntN(len(incMirrorPods))]
		if w.rng.IntN(4) == 0 {
			w.update(func(tx *store.WriteTx) error { return tx.DeleteMirrorPod("shop", name) })
			return "forget " + name
		}
		label := incLabels[w.rng.IntN(len(incLabels))]
		w.update(func(tx *store.WriteTx) error {
			return tx.PutMirrorPod(store.Pod{Namespace: "shop", Name: name, UID: "u-" + name, Labels: map[string]string{"app": label},
				Ports: []store.PodPort{{Name: "http", Port: 8080, Protocol: "TCP"}}})
		})
		return "label " + name + " " + label
	case 6: // the informer: a policy edited or gone
		i := w.rng.IntN(len(incMirrorPolicies) + 1)
		if i == len(incMirrorPolicies) {
			name := []string{"db-in", "web-out"}[w.rng.IntN(2)] // drawn once: update runs fn on both stores
			w.update(func(tx *store.WriteTx) error { return tx.DeleteMirrorPolicy("shop", name) })
			return "delete mirror policy " + name
		}
		raw := incMirrorPolicies[i]
		name := "db-in"
		if i == 2 {
			name = "web-out"
		}
		w.update(func(tx *store.WriteTx) error {
			return tx.PutMirrorPolicy(store.Policy{Namespace: "shop", Name: name, UID: "p-" + name, Raw: []byte(raw)})
		})
		return fmt.Sprintf("mirror policy %d", i)
	case 7: // the folder's policy file rewritten
		i := w.rng.IntN(len(incFolderPolicies))
		w.folderFile++
		// A new name each time: a file's size and time are what the
		// loop looks at, and two writes may share both.
		removeAll(w.t, w.dir, "pol-")
		if incFolderPolicies[i] != "" {
			writeFile(w.t, w.dir, fmt.Sprintf("pol-%d.yaml", w.folderFile), incFolderPolicies[i])
		}
		return fmt.Sprintf("folder policy %d", i)
	case 8: // the peer informer
		n := w.rng.IntN(3)
		w.peers = nil
		for j := range n {
			w.peers = append(w.peers, policy.Pod{Namespace: "shop", Name: fmt.Sprintf("r%d", j), Node: "node-c",
				Labels: map[string]string{"app": incLabels[w.rng.IntN(len(incLabels))]}, IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 7, 0, byte(j + 1)})}})
		}
		return fmt.Sprintf("%d peers", n)
	default: // a namespace's labels, or a write of the same bytes
		team := []string{"x", "y"}[w.rng.IntN(2)]
		w.update(func(tx *store.WriteTx) error {
			return tx.PutMirrorNamespace(store.Namespace{Name: "shop", Labels: map[string]string{"team": team}})
		})
		return "namespace team " + team
	}
}

// check compares a's pass with a from-scratch pass over b: the records
// stored and what every bound endpoint holds in the kernel; and a cached
// read of a with a plain one.
func (w *incWorld) check(step int, what string) {
	w.t.Helper()
	ra, err := w.sa.Pass(w.t.Context())
	if err != nil {
		w.t.Fatalf("step %d (%s): incremental pass: %v", step, what, err)
	}
	kb := newFakeKernel()
	sb := w.newSyncer(w.b, kb)
	sb.noCache = true
	if _, err := sb.Pass(w.t.Context()); err != nil {
		w.t.Fatalf("step %d (%s): full pass: %v", step, what, err)
	}
	recs := func(db store.File) map[string]store.PolicyRecord {
		out := make(map[string]store.PolicyRecord)
		_ = db.View(func(tx *store.ReadTx) error {
			rs, err := tx.PolicyRecords()
			if err != nil {
				w.t.Fatal(err)
			}
			for _, r := range rs {
				r.Generation, r.Compiled = 0, time.Time{} // when, not what
				out[store.PodKey(r.Namespace, r.Name)] = r
			}
			return nil
		})
		return out
	}
	if a, b := recs(w.a), recs(w.b); !reflect.DeepEqual(a, b) {
		w.t.Fatalf("step %d (%s): records differ (pass %+v)\nincremental %v\nfull        %v", step, what, ra, digests(a), digests(b))
	}
	for pod, key := range w.held {
		if !w.bound[pod] {
			continue
		}
		var ep Endpoint
		_ = w.a.View(func(tx *store.ReadTx) error {
			a, err := tx.Allocation(key)
			ep = Endpoint{Ifindex: a.HostIfindex, IP: a.IP}
			return err
		})
		ga, oka := w.ka.get(ep)
		gb, okb := kb.get(ep)
		if oka != okb || ga.digest != gb.digest {
			w.t.Fatalf("step %d (%s): %s's endpoint holds %q (%v) incrementally, %q (%v) from scratch", step, what, pod, ga.digest, oka, gb.digest, okb)
		}
	}
	_ = w.a.View(func(tx *store.ReadTx) error {
		cached, err := readStoredCached(tx, &w.readCache)
		if err != nil {
			w.t.Fatal(err)
		}
		plain, err := ReadStored(tx)
		if err != nil {
			w.t.Fatal(err)
		}
		cached.base, plain.base = "", ""
		for _, d := range []struct {
			what string
			a, b any
		}{{"mirror", cached.Mirror, plain.Mirror}, {"local", cached.Local, plain.Local}, {"policies", cached.policies, plain.policies},
			{"records", cached.Records, plain.Records}, {"allocations", cached.Allocations, plain.Allocations}} {
			if !reflect.DeepEqual(d.a, d.b) {
				w.t.Fatalf("step %d (%s): cached read's %s %+v\nplain read's %+v", step, what, d.what, d.a, d.b)
			}
		}
		return nil
	})
}

// removeAll removes dir's files whose names start with prefix.
func removeAll(tb testing.TB, dir, prefix string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func digests(m map[string]store.PolicyRecord) map[string]string {
	out := make(map[string]string, len(m))
	for k, r := range m {
		out[k] = r.Digest
	}
	return out
}

// Ensure the daemon's incremental passes (cached reads, reused merges and
// compiles, readdressed records) leave the store and the kernel as a pass
// from scratch over the same store would, through random histories of
// ADDs, DELs, relabels, policy edits in the mirror and the folder, peers
// and namespaces changing.
func TestSyncer_IncrementalEqualsFull(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := &incWorld{t: t, rng: rand.New(rand.NewPCG(seed, 42)), a: testStore(t), b: testStore(t), dir: t.TempDir(),
				held: make(map[string]store.OwnerKey), bound: make(map[string]bool), ka: newFakeKernel()}
			for i := 10; i < 30; i++ {
				w.free = append(w.free, fmt.Sprintf("10.0.0.%d", i))
			}
			writeFile(t, w.dir, "pods.yaml", incFolderPods)
			w.sa = w.newSyncer(w.a, w.ka)
			w.check(0, "start")
			for i := 1; i <= 80; i++ {
				what := w.step()
				w.check(i, what)
			}
			// Every allocation released: nothing left to readdress.
			for pod, key := range w.held {
				release(t, w.a, key)
				release(t, w.b, key)
				delete(w.held, pod)
			}
			w.check(81, "all released")
		})
	}
}
