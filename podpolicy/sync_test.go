package podpolicy

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

func allows(rs *policy.Ruleset, ingress bool, peer string, port uint16) bool {
	d := &rs.Egress
	if ingress {
		d = &rs.Ingress
	}
	if !d.Isolated {
		return true
	}
	_, by, _ := d.Lookup(netip.MustParseAddr(peer), policy.ProtoTCP, port)
	return len(by) > 0
}

// Ensure the loop compiles this node's pods from a manifest folder, puts
// their records in the store and their rulesets in the kernel, touches
// nothing when nothing changed, and re-applies only the endpoints whose
// policy changed.
func TestSyncer_ManifestFolder(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	web := bind(t, db, reserve(t, db, "shop", "web", "10.0.0.10"), 5)
	client := bind(t, db, reserve(t, db, "shop", "client", "10.0.0.11"), 6)
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})

	rep := mustPass(t, s)
	if rep.Local != 2 || rep.Written != 2 || rep.Applied != 2 {
		t.Fatalf("first pass %+v: want 2 pods compiled, written and applied", rep)
	}
	if _, ok := record(t, db, "shop", "far"); ok {
		t.Error("pod far of node-b got a record on node-a")
	}
	w, ok := k.get(web)
	if !ok || !w.attached || w.rs == nil {
		t.Fatalf("web endpoint in kernel: %+v, %t", w, ok)
	}
	if !w.rs.Ingress.Isolated || !slices.Equal(w.rs.Ingress.Policies, []string{"shop/web-allow"}) {
		t.Errorf("web ingress = isolated %t by %v", w.rs.Ingress.Isolated, w.rs.Ingress.Policies)
	}
	for _, c := range []struct {
		peer string
		port uint16
		want bool
	}{
		{"10.0.0.11", 8080, true}, // client, local
		{"10.9.0.7", 8080, true},  // far, on node-b: known from its manifest
		{"10.0.0.11", 80, false},  // not the named port
		{"10.0.0.12", 8080, false},
		{"10.0.0.1", 9999, true}, // the node (kubelet probes)
	} {
		if got := allows(w.rs, true, c.peer, c.port); got != c.want {
			t.Errorf("web ingress from %s:%d = %t, want %t", c.peer, c.port, got, c.want)
		}
	}
	if c, _ := k.get(client); c.rs == nil || c.rs.Ingress.Isolated || c.rs.Egress.Isolated {
		t.Errorf("client should be unisolated: %+v", c.rs)
	}
	rec, _ := record(t, db, "shop", "web")
	if rec.Digest != w.digest {
		t.Errorf("kernel holds %s, record says %s", w.digest, rec.Digest)
	}

	calls := k.callCount()
	if rep := mustPass(t, s); rep.Written != 0 || rep.Applied != 0 || k.callCount() != calls || !rep.Reused {
		t.Errorf("unchanged pass %+v made %d kernel calls (want none, and the last compile reused)", rep, k.callCount()-calls)
	}
	// A peer gets an address: web's ruleset names it, so it recompiles.
	writeFile(t, dir, "peer.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: peer, namespace: shop, labels: {app: client}}\nspec: {containers: [{name: c}]}\n")
	mustPass(t, s)
	peerKey := reserve(t, db, "shop", "peer", "10.0.0.12")
	if rep := mustPass(t, s); rep.Reused || rep.Written == 0 || rep.Applied != 1 {
		t.Errorf("after a peer's address: %+v, want web recompiled and re-applied", rep)
	}
	if w, _ := k.get(web); !allows(w.rs, true, "10.0.0.12", 8080) {
		t.Error("web does not allow the new client peer")
	}
	// Binding it changes no ruleset.
	bind(t, db, peerKey, 7)
	if rep := mustPass(t, s); !rep.Reused || rep.Written != 0 {
		t.Errorf("after a bind: %+v, want the last compile reused", rep)
	}

	// Default deny in the namespace: every pod changes.
	writeFile(t, dir, "deny.yaml", denyAll)
	rep = mustPass(t, s)
	if rep.Written != 3 || rep.Applied != 3 {
		t.Errorf("after deny-all: %+v, want the three pods rewritten and re-applied", rep)
	}
	if c, _ := k.get(client); c.rs == nil || !c.rs.Egress.Isolated || allows(c.rs, false, "10.0.0.10", 8080) {
		t.Errorf("client egress should be denied: %+v", c.rs)
	}

	// A manifest that does not parse: the last good policy stays, and the
	// error says which file.
	writeFile(t, dir, "broken.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: 7}\n")
	before := rec.Generation
	if _, err := s.Pass(context.Background()); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("broken manifest: err = %v, want it named", err)
	}
	if c, _ := k.get(client); c.rs == nil || !c.rs.Egress.Isolated {
		t.Error("a broken manifest opened the client")
	}
	var st store.PolicyState
	_ = db.View(func(tx *store.ReadTx) error { st, _ = tx.PolicyState(); return nil })
	if st.Synced || !strings.Contains(st.Error, "broken.yaml") || st.Generation <= before {
		t.Errorf("state after broken manifest: %+v", st)
	}
	if err := os.Remove(filepath.Join(dir, "broken.yaml")); err != nil {
		t.Fatal(err)
	}
	mustPass(t, s)
	_ = db.View(func(tx *store.ReadTx) error { st, _ = tx.PolicyState(); return nil })
	if !st.Synced || st.Error != "" {
		t.Errorf("state after the fix: %+v", st)
	}

	// Policy off: records go, endpoints lose their tables.
	off := NewSyncer(SyncOptions{DB: db, Enabled: false, Kernel: k, ManifestDir: dir, Node: "node-a"})
	mustPass(t, off)
	if _, ok := record(t, db, "shop", "web"); ok {
		t.Error("records kept with network_policy off")
	}
	if c, _ := k.get(client); c.rs == nil || c.rs.Egress.Isolated {
		t.Errorf("client still isolated with policy off: %+v", c.rs)
	}
	if r, err := Show(db, policy.PodRef{Namespace: "shop", Name: "web"}); err != nil || r.From != FromOff {
		t.Errorf("show with policy off: %+v, %v", r, err)
	}
}

// Ensure the daemon corrects what an ADD installed from a record that
// changed between the ADD's read and its kernel write: the daemon's pass
// runs in that window (the endpoint is only reserved, so the daemon leaves
// the kernel alone), the ADD then installs the stale ruleset and binds,
// and the daemon's next pass puts the current one in.
func TestSyncer_CorrectsADDInstalledInWindow(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a"})
	mustPass(t, s)

	key := reserve(t, db, "shop", "web", "10.0.0.10")
	plan := planFor(t, db, "shop", "web") // the ADD's check
	if plan.From != FromRecord {
		t.Fatalf("plan from %s, want the record", plan.From)
	}
	// In the window: the policy is deleted, a deny-all arrives, the
	// daemon recompiles.
	if err := os.Remove(filepath.Join(dir, "web-allow.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "deny.yaml", denyAll)
	if rep := mustPass(t, s); rep.Written == 0 || rep.Applied != 0 {
		t.Fatalf("window pass %+v: want records rewritten and nothing applied to an unbound endpoint", rep)
	}
	ep := Endpoint{Ifindex: 9, IP: netip.MustParseAddr("10.0.0.10")}
	if err := plan.Install(k, ep); err != nil { // the ADD's write: stale
		t.Fatal(err)
	}
	if got, _ := k.get(ep); got.digest != plan.Digest || !got.attached {
		t.Fatalf("ADD did not install its plan: %+v", got)
	}
	bind(t, db, key, 9)
	mustPass(t, s)
	rec, _ := record(t, db, "shop", "web")
	got, _ := k.get(ep)
	if got.digest != rec.Digest || got.digest == plan.Digest {
		t.Fatalf("kernel holds %s after the daemon's pass; record %s, stale plan %s", got.digest, rec.Digest, plan.Digest)
	}
	if !got.rs.Egress.Isolated || !slices.Equal(got.rs.Ingress.Policies, []string{"shop/deny-all"}) {
		t.Errorf("corrected ruleset: %+v", got.rs)
	}
}

// Ensure a policy change reaches the kernel well within a second through
// Run's debounce, and a burst of signals costs few passes.
func TestSyncer_RunLatency(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	web := bind(t, db, reserve(t, db, "shop", "web", "10.0.0.10"), 5)
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { s.Run(ctx, wake); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) time.Duration {
		start := time.Now()
		for !cond() {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("first pass", func() bool { g, ok := k.get(web); return ok && g.rs != nil })
	var worst time.Duration
	for i := range 5 {
		name := "deny.yaml"
		if i%2 == 1 {
			name = "deny-" + string(rune('a'+i)) + ".yaml"
			_ = os.Remove(filepath.Join(dir, "deny.yaml"))
		} else {
			for _, f := range []string{"deny-b.yaml", "deny-d.yaml"} {
				_ = os.Remove(filepath.Join(dir, f))
			}
		}
		writeFile(t, dir, name, strings.Replace(denyAll, "name: deny-all", "name: "+strings.TrimSuffix(name, ".yaml"), 1))
		want := "shop/" + strings.TrimSuffix(name, ".yaml")
		start := time.Now()
		for range 20 { // a burst
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		waitFor("policy "+want+" enforced", func() bool {
			g, _ := k.get(web)
			return g.rs != nil && slices.Equal(g.rs.Ingress.Policies, []string{want})
		})
		worst = max(worst, time.Since(start))
	}
	t.Logf("policy change → kernel, worst of 5: %s", worst)
	if worst > time.Second {
		t.Errorf("policy change took %s to reach the kernel, want ≤ 1s", worst)
	}
}

// Ensure pods of other nodes from the Kubernetes peer informer become
// peers of local pods' selectors, and the state is not synced before
// the peer list is.
func TestSyncer_Peers(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	web := bind(t, db, reserve(t, db, "shop", "web", "10.0.0.10"), 5)
	peers := []policy.Pod{
		{Namespace: "shop", Name: "remote-client", Labels: map[string]string{"app": "client"}, Node: "node-c", IPs: []netip.Addr{netip.MustParseAddr("10.7.0.9")}},
		{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, Node: "node-a"}, // this node's: the mirror's
	}
	synced := false
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a",
		Peers: func() ([]policy.Pod, bool) { return peers, synced }})
	mustPass(t, s)
	w, _ := k.get(web)
	if !allows(w.rs, true, "10.7.0.9", 8080) {
		t.Error("web does not allow the remote client known from the peer informer")
	}
	var st store.PolicyState
	_ = db.View(func(tx *store.ReadTx) error { st, _ = tx.PolicyState(); return nil })
	if st.Synced {
		t.Error("state synced before the peer informer")
	}
	synced = true
	peers = peers[1:] // the remote client is gone
	if rep := mustPass(t, s); rep.Reused || rep.Applied != 1 {
		t.Errorf("after the peer left: %+v, want web recompiled and re-applied", rep)
	}
	if w, _ := k.get(web); allows(w.rs, true, "10.7.0.9", 8080) {
		t.Error("web still allows a peer that is gone")
	}
	_ = db.View(func(tx *store.ReadTx) error { st, _ = tx.PolicyState(); return nil })
	if !st.Synced {
		t.Error("state not synced with every source read")
	}
}

// Ensure a pod whose ADD failed closed because the daemon had not read its
// sources through yet is opened by the daemon once it has, when the pod
// is unknown to the sources (a manifest folder without it) and no policy
// of its namespace exists; and that one of a namespace with policies
// stays closed. (e2e TestDaemon_RestartRestoresNode: a node's first pod,
// added before the daemon's first pass, stayed unreachable for good.)
func TestSyncer_OpensUnknownPodFailedClosedBeforeFirstPass(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "deny.yaml", denyAll) // namespace shop only

	// The ADD of default/first while the state says the sources are not
	// read through yet.
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		return tx.PutPolicyState(store.PolicyState{Enabled: true, Node: "node-a", Synced: false})
	})
	key := reserve(t, db, "default", "first", "10.0.0.20")
	plan := planFor(t, db, "default", "first")
	if plan.From != FromFailClosed {
		t.Fatalf("ADD before the first pass planned %s, want fail closed", plan.From)
	}
	ep := Endpoint{Ifindex: 7, IP: netip.MustParseAddr("10.0.0.20")}
	if err := plan.Install(k, ep); err != nil {
		t.Fatal(err)
	}
	bind(t, db, key, 7)
	shopKey := reserve(t, db, "shop", "unknown", "10.0.0.21")
	shopEP := Endpoint{Ifindex: 8, IP: netip.MustParseAddr("10.0.0.21")}
	if err := planFor(t, db, "shop", "unknown").Install(k, shopEP); err != nil {
		t.Fatal(err)
	}
	bind(t, db, shopKey, 8)

	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a"})
	mustPass(t, s)
	got, ok := k.get(ep)
	if !ok || got.digest == "closed" || got.rs == nil || got.rs.Ingress.Isolated || got.rs.Egress.Isolated {
		t.Fatalf("default/first after the daemon's pass: %+v (present %t), want open", got, ok)
	}
	if got, _ := k.get(shopEP); got.digest != "closed" {
		t.Errorf("shop/unknown after the pass: %+v, want still closed (a policy of its namespace may select it)", got)
	}
	// And the ADD of a pod of default now plans it open too.
	if p := planFor(t, db, "default", "second"); p.From == FromFailClosed {
		t.Errorf("ADD after the pass: %s (%s)", p.From, p.Why)
	}
}

// Ensure a pod's new address that no rule holds (a new pod no policy
// names as a peer) is taken in without compiling: only that pod's record
// is written, every other record and endpoint is left alone, and the
// records are those a full compile gives; while a new address of a peer
// compiles again and reaches the rulesets that allow it.
func TestSyncer_NewAddressReaddressed(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	const more = `---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: shop, labels: {app: batch}}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client2, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c}]}
`
	writeFile(t, dir, "pods.yaml", podsYAML+more)
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	writeFile(t, dir, "deny-all.yaml", denyAll)
	web := bind(t, db, reserve(t, db, "shop", "web", "10.0.0.10"), 5)
	bind(t, db, reserve(t, db, "shop", "client", "10.0.0.11"), 6)
	opts := SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	s := NewSyncer(opts)
	mustPass(t, s)
	webRec, _ := record(t, db, "shop", "web")
	calls := k.callCount()

	// Same records as a syncer that compiles everything from scratch.
	sameAsFull := func(step string) {
		t.Helper()
		fresh := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: opts.Node, NodeIPs: opts.NodeIPs})
		if rep := mustPass(t, fresh); rep.Written != 0 || rep.Deleted != 0 || rep.Readdressed != 0 {
			t.Errorf("%s: a full compile would write %d and delete %d records: the pass left them stale", step, rep.Written, rep.Deleted)
		}
	}

	batch := reserve(t, db, "shop", "batch", "10.0.0.12")
	rep := mustPass(t, s)
	if rep.Readdressed != 1 || rep.Written != 1 || rep.Applied != 0 {
		t.Errorf("a new address of a pod no rule names: %+v, want it readdressed and its record alone written", rep)
	}
	if r, _ := record(t, db, "shop", "web"); r.Generation != webRec.Generation || r.Digest != webRec.Digest {
		t.Errorf("web's record was rewritten (generation %d → %d) though no rule of it names batch", webRec.Generation, r.Generation)
	}
	if p := planFor(t, db, "shop", "batch"); p.From != FromRecord {
		t.Errorf("batch's ADD plans from %s, want its record", p.From)
	} else {
		// Its kernel table is the one encoded for client's (the same
		// directions): it must be batch's ruleset's.
		rec, _ := record(t, db, "shop", "batch")
		rs, err := DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if want, err := enforce.EncodeTable(rs); err != nil || !bytes.Equal(p.Table, want) {
			t.Errorf("batch's kernel table is not its ruleset's (%v)", err)
		}
	}
	sameAsFull("batch reserved")
	bind(t, db, batch, 7)
	if rep := mustPass(t, s); !rep.Reused || rep.Applied != 1 || k.callCount() == calls {
		t.Errorf("batch bound: %+v, want the compile reused and batch applied", rep)
	}

	client2 := reserve(t, db, "shop", "client2", "10.0.0.13")
	if rep := mustPass(t, s); rep.Readdressed != 0 || rep.Reused || rep.Written < 2 {
		t.Errorf("a new address of a peer of web: %+v, want a compile that rewrites web's record too", rep)
	}
	if w, _ := k.get(web); !allows(w.rs, true, "10.0.0.13", 8080) {
		t.Error("web does not allow client2's new address")
	}
	sameAsFull("client2 reserved")

	release(t, db, batch)
	if rep := mustPass(t, s); rep.Readdressed != 1 || rep.Written != 1 {
		t.Errorf("batch released: %+v, want it readdressed", rep)
	}
	sameAsFull("batch released")
	release(t, db, client2)
	if rep := mustPass(t, s); rep.Readdressed != 0 {
		t.Errorf("client2 released: %+v, want a compile", rep)
	}
	if w, _ := k.get(web); allows(w.rs, true, "10.0.0.13", 8080) {
		t.Error("web still allows client2's address after its release")
	}
	sameAsFull("client2 released")
}

// tabledFake is a fake kernel that, as the enforcer, takes a ruleset with
// its kernel form.
type tabledFake struct {
	*fakeKernel
	tables map[Endpoint][]byte
}

func (k *tabledFake) SetEndpointRuleset(ep Endpoint, rs *policy.Ruleset, digest string, table []byte) error {
	k.mu.Lock()
	k.tables[ep] = table
	k.mu.Unlock()
	return k.SetEndpoint(ep, rs)
}

// Ensure the table a pass hands the kernel with a ruleset is that
// ruleset's kernel form, for every endpoint, though pods selected alike
// share one encoding of it.
func TestSyncer_AppliesEachRulesetsTable(t *testing.T) {
	db, dir := testStore(t), t.TempDir()
	k := &tabledFake{fakeKernel: newFakeKernel(), tables: make(map[Endpoint][]byte)}
	writeFile(t, dir, "pods.yaml", podsYAML+"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web2, namespace: shop, labels: {app: web}}\n"+
		"spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}\n")
	writeFile(t, dir, "web-allow.yaml", allowHTTP)
	writeFile(t, dir, "deny-all.yaml", denyAll)
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
	var eps []Endpoint
	for i, name := range []string{"web", "web2", "client"} {
		key := reserve(t, db, "shop", name, fmt.Sprintf("10.0.0.%d", 10+i))
		mustPass(t, s) // records written: their tables encoded
		eps = append(eps, bind(t, db, key, 5+i))
	}
	mustPass(t, s)
	if len(k.tables) != 3 {
		t.Fatalf("%d endpoints applied with a table, want 3", len(k.tables))
	}
	for _, ep := range eps {
		st, _ := k.get(ep)
		want, err := enforce.EncodeTable(st.rs)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.tables[ep]; !bytes.Equal(got, want) {
			t.Errorf("endpoint %s got a table of %d bytes, its ruleset's is %d", ep, len(got), len(want))
		}
	}
}

// Ensure a dual-stack pod's endpoint reaches the kernel with its IPv6
// beside its IPv4: the kernel finds the sender of IPv6 Service traffic,
// decided after DNAT, by that address.
func TestSyncer_DualStackEndpoint(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "deny.yaml", denyAll)
	key := reserve(t, db, "shop", "web", "10.0.0.10")
	reserve6(t, db, key, "fd00::10")
	ep := bind(t, db, key, 5)
	if ep.IP6 != netip.MustParseAddr("fd00::10") {
		t.Fatalf("bound endpoint %+v has no ipv6", ep)
	}
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a"})
	mustPass(t, s)
	got, ok := k.get(ep)
	if !ok || got.digest == "" {
		t.Fatalf("kernel endpoints %v: want %s installed with its ipv6", k.eps, ep)
	}
}

// Ensure the node's addresses from NodeAddrs (its IPv6, which may come
// after the daemon started) are the node's on the pass that reads them:
// veni policy trace names the node's IPv6 the node and allows it into an
// isolated pod, as the kernel does; once gone, the address is external.
func TestSyncer_NodeAddrs(t *testing.T) {
	db, k, dir := testStore(t), newFakeKernel(), t.TempDir()
	writeFile(t, dir, "pods.yaml", podsYAML)
	writeFile(t, dir, "deny.yaml", denyAll)
	key := reserve(t, db, "shop", "web", "10.0.0.10")
	reserve6(t, db, key, "fd00::10")
	bind(t, db, key, 5)
	node6 := netip.MustParseAddr("fd00::1")
	var addrs []netip.Addr
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, Kernel: k, ManifestDir: dir, Node: "node-a",
		NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, NodeAddrs: func() ([]netip.Addr, error) { return addrs, nil }})
	web := policy.PodEndpoint("shop", "web")
	trace := func() *policy.Trace {
		t.Helper()
		tr, err := Trace(db, policy.IPEndpoint(node6), web, policy.ProtoTCP, 8080)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	mustPass(t, s)
	if tr := trace(); tr.From.Kind != policy.KindExternal || tr.Allowed {
		t.Fatalf("before the node has %s: trace %+v, want an external peer denied", node6, tr)
	}
	addrs = []netip.Addr{node6}
	mustPass(t, s)
	if tr := trace(); tr.From.Kind != policy.KindNode || !tr.Allowed {
		t.Fatalf("node ipv6 %s: trace from %+v allowed %v, want the node, allowed", node6, tr.From, tr.Allowed)
	}
	addrs = nil
	mustPass(t, s)
	if tr := trace(); tr.From.Kind != policy.KindExternal {
		t.Fatalf("after the node lost %s: trace from %+v, want external", node6, tr.From)
	}
}
