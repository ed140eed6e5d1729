package kubesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// The node's Kubernetes side against a real kube-apiserver (etcd and
// kube-apiserver on loopback, see internal/kubetest); the store is a file
// in a temporary directory, the cloud a fake for the sweeper.

const testNode = "node-a"

type harness struct {
	t       *testing.T
	kc      *kubetest.Cluster
	client  *kube.Client
	db      store.File
	cfgPath string
	sync    *Sync

	mu      sync.Mutex
	cfg     config.Config
	applied []config.Config
	logs    syncBuffer
}

// syncBuffer collects the Sync's log for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startHarness(t *testing.T, base string, cloud eni.Client, tune func(*Sync)) *harness {
	t.Helper()
	return startHarnessAs(t, kubetest.Start(t, kubetest.Options{}), nil, base, cloud, tune)
}

// startHarnessAs runs the Sync with its own identity's client (nil: the
// admin's); the test itself always acts as admin.
func startHarnessAs(t *testing.T, kc *kubetest.Cluster, as *kube.Client, base string, cloud eni.Client, tune func(*Sync)) *harness {
	t.Helper()
	h := &harness{t: t, kc: kc, client: kc.Client(t)}
	syncClient := as
	if syncClient == nil {
		syncClient = h.client
	}
	dir := t.TempDir()
	h.cfgPath = filepath.Join(dir, "veni.json")
	h.db = store.File{Path: filepath.Join(dir, "veni.db")}
	if err := os.WriteFile(h.cfgPath, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	h.mustCreate(&kube.Node{ObjectMeta: kube.ObjectMeta{Name: testNode, Labels: map[string]string{"kubernetes.io/hostname": testNode}}})
	s, err := New(Options{
		Client: syncClient, NodeName: testNode, Store: h.db, ConfigPath: h.cfgPath, Cloud: cloud,
		Logger: slog.New(slog.NewTextHandler(&h.logs, nil)),
		Config: func() config.Config { h.mu.Lock(); defer h.mu.Unlock(); return h.cfg },
		Apply: func(c config.Config) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.cfg = c
			h.applied = append(h.applied, c)
		},
		Facts: func() (store.NodeInfo, bool) {
			return store.NodeInfo{InstanceID: "i-a", InstanceType: "ecs.g7.large", ENIs: 3, IPv4PerENI: 6}, true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(s)
	}
	h.sync = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func (h *harness) mustCreate(obj any) {
	h.t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *kube.Node:
		_, err = kube.Create(ctx, h.client, kube.Nodes, o, kube.WriteOptions{})
	case *kube.Pod:
		_, err = kube.Create(ctx, h.client, kube.Pods, o, kube.WriteOptions{})
	case *kube.Namespace:
		_, err = kube.Create(ctx, h.client, kube.Namespaces, o, kube.WriteOptions{})
	case *kube.ConfigMap:
		_, err = kube.Create(ctx, h.client, kube.ConfigMaps, o, kube.WriteOptions{})
	case *kube.NetworkPolicy:
		_, err = kube.Create(ctx, h.client, kube.NetworkPolicies, o, kube.WriteOptions{})
	default:
		h.t.Fatalf("create %T", obj)
	}
	if err != nil {
		h.t.Fatalf("create %T: %v", obj, err)
	}
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out (%s) waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testPod(ns, name, node string) *kube.Pod {
	return &kube.Pod{
		ObjectMeta: kube.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name},
			Annotations: map[string]string{"k8s.aliyun.com/pod-ip-reservation": "true", "unrelated": "x"}},
		Spec: kube.PodSpec{NodeName: node, Containers: []kube.Container{{Name: "c", Image: "pause",
			Ports: []kube.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, Protocol: "UDP"}}}}},
	}
}

// Ensure the store mirrors this node's pods (and only them), namespaces and
// network policies, follows changes and deletions, and keeps only the
// annotations veni reads; and measure the lag from creation to the store.
func TestSync_Mirror(t *testing.T) {
	h := startHarness(t, `{}`, nil, nil)
	h.mustCreate(&kube.Namespace{ObjectMeta: kube.ObjectMeta{Name: "team", Labels: map[string]string{"tier": "web"}}})
	h.mustCreate(testPod("team", "mine", testNode))
	h.mustCreate(testPod("team", "elsewhere", "node-b"))
	sts := testPod("team", "db-0", testNode)
	sts.OwnerReferences = []kube.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "0d2c5c1e-5e8e-4c8e-9a51-7c8d3c2b1a00"}}
	h.mustCreate(sts)
	h.mustCreate(&kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Namespace: "team", Name: "deny"},
		Spec: kube.NetworkPolicySpec{PolicyTypes: []string{"Ingress"}}})

	var pod store.Pod
	eventually(t, "the pod, namespace and policy in the store", 10*time.Second, func() bool {
		found := false
		_ = h.db.View(func(tx *store.ReadTx) error {
			p, err := tx.MirrorPod("team", "mine")
			nss, _ := tx.MirrorNamespaces()
			pols, _ := tx.MirrorPolicies()
			nsOK := false
			for _, n := range nss {
				nsOK = nsOK || (n.Name == "team" && n.Labels["tier"] == "web")
			}
			found = err == nil && nsOK && len(pols) == 1
			pod = p
			return nil
		})
		return found
	})
	if len(pod.Ports) != 2 || pod.Ports[1].Protocol != "UDP" || pod.Ports[0].Protocol != "TCP" || pod.Labels["app"] != "mine" ||
		pod.Annotations["k8s.aliyun.com/pod-ip-reservation"] != "true" || pod.Annotations["unrelated"] != "" {
		t.Fatalf("mirrored pod %+v", pod)
	}
	t.Logf("mirror lag for the first pod: %s", pod.Mirrored.Sub(pod.Created).Round(time.Millisecond))
	eventually(t, "a StatefulSet's pod mirrored as one", 10*time.Second, func() bool {
		var p store.Pod
		_ = h.db.View(func(tx *store.ReadTx) error { p, _ = tx.MirrorPod("team", "db-0"); return nil })
		return p.Stateful
	})
	if pod.Stateful {
		t.Errorf("a pod no StatefulSet owns mirrored as stateful")
	}
	_ = h.db.View(func(tx *store.ReadTx) error {
		if _, err := tx.MirrorPod("team", "elsewhere"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another node's pod mirrored: %v", err)
		}
		return nil
	})
	// No kubelet here to finish a graceful deletion: delete at once, as
	// kubelet does once the containers are gone.
	zero := int64(0)
	if err := kube.Delete(context.Background(), h.client, kube.Pods, "team", "mine", kube.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod to leave the store", 10*time.Second, func() bool {
		gone := false
		_ = h.db.View(func(tx *store.ReadTx) error {
			_, err := tx.MirrorPod("team", "mine")
			gone = errors.Is(err, store.ErrNotFound)
			return nil
		})
		return gone
	})
}

// Ensure the cluster's eni_conf and a node pool's are merged over the
// node's file, written to cluster.json for the plugin and applied live;
// a change of a field that cannot change live is refused (kept, pinned,
// event); a malformed layer keeps the last good configuration and turns
// the node's VeniConfig condition False.
func TestSync_ConfigLayers(t *testing.T) {
	h := startHarness(t, `{"max_pool_size": 5, "min_pool_size": 0, "ip_stack": "ipv4"}`, nil, nil)
	ctx := context.Background()
	// Forget what was applied before the ConfigMaps exist, before they do:
	// the daemon may apply the cluster's layer as soon as it is created.
	h.mu.Lock()
	h.applied = nil
	h.mu.Unlock()
	h.mustCreate(&kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Namespace: "kube-system", Name: "eni-config"},
		Data: map[string]string{"eni_conf": `{"max_pool_size": 9}`}})
	h.mustCreate(&kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Namespace: "kube-system", Name: "pool-a"},
		Data: map[string]string{"eni_conf": `{"min_pool_size": 3}`}})
	h.wantApplied(t, "the cluster's eni_conf", func(c config.Config) bool { return c.MaxPoolSize == 9 && c.MinPoolSize == 0 })
	h.patchNodeLabels(t, map[string]string{"terway-config": "pool-a"})
	h.wantApplied(t, "the node pool's eni_conf over it", func(c config.Config) bool { return c.MaxPoolSize == 9 && c.MinPoolSize == 3 })

	// What the plugin reads: the node's file with cluster.json over it.
	layer, err := os.ReadFile(filepath.Join(filepath.Dir(h.cfgPath), "cluster.json"))
	if err != nil || !strings.Contains(string(layer), `"min_pool_size":3`) {
		t.Fatalf("cluster.json %s, %v", layer, err)
	}
	if fi, _ := os.Stat(filepath.Join(filepath.Dir(h.cfgPath), "cluster.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("cluster.json mode %v", fi.Mode())
	}

	// ip_stack cannot change on a running node.
	h.updateConfigMap(t, "eni-config", `{"max_pool_size": 7, "ip_stack": "dual"}`)
	h.wantApplied(t, "the live field only", func(c config.Config) bool { return c.MaxPoolSize == 7 && c.IPStack == "ipv4" })
	h.wantEvent(t, "ConfigError", "ip_stack")
	layer, _ = os.ReadFile(filepath.Join(filepath.Dir(h.cfgPath), "cluster.json"))
	if !strings.Contains(string(layer), `"ip_stack":"ipv4"`) {
		t.Errorf("cluster.json does not pin ip_stack: %s", layer)
	}

	// Broken: the last good configuration stays, the condition says why.
	h.updateConfigMap(t, "eni-config", `{"max_pool_size": "many"`)
	h.wantCondition(t, ConditionConfig, kube.ConditionFalse)
	h.wantEvent(t, "ConfigError", "eni-config")
	if c := h.sync.opts.Config(); c.MaxPoolSize != 7 {
		t.Errorf("config changed by a broken layer: %+v", c)
	}
	h.updateConfigMap(t, "eni-config", `{"max_pool_size": 6}`)
	h.wantApplied(t, "the fixed layer", func(c config.Config) bool { return c.MaxPoolSize == 6 })
	h.wantCondition(t, ConditionConfig, kube.ConditionTrue)
	_ = ctx
}

func (h *harness) wantApplied(t *testing.T, what string, ok func(config.Config) bool) {
	t.Helper()
	eventually(t, what+" applied", 15*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.applied) > 0 && ok(h.applied[len(h.applied)-1])
	})
}

func (h *harness) patchNodeLabels(t *testing.T, labels map[string]string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if _, err := kube.Patch(context.Background(), h.client, kube.Nodes, "", testNode, kube.MergePatch, patch, kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) updateConfigMap(t *testing.T, name, conf string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"data": map[string]string{"eni_conf": conf}})
	if _, err := kube.Patch(context.Background(), h.client, kube.ConfigMaps, "kube-system", name, kube.MergePatch, patch, kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) wantEvent(t *testing.T, reason, mentions string) {
	t.Helper()
	eventually(t, "event "+reason+" mentioning "+mentions, 15*time.Second, func() bool {
		l, err := kube.List(context.Background(), h.client, kube.Events, "", kube.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range l.Items {
			if e.Reason == reason && strings.Contains(e.Message, mentions) {
				return true
			}
		}
		return false
	})
}

func (h *harness) wantCondition(t *testing.T, typ, status string) *kube.NodeCondition {
	t.Helper()
	var got *kube.NodeCondition
	eventually(t, "node condition "+typ+"="+status, 15*time.Second, func() bool {
		h.sync.Notify()
		n, err := kube.Get(context.Background(), h.client, kube.Nodes, "", testNode)
		if err != nil {
			return false
		}
		got = findCondition(n.Status.Conditions, typ)
		return got != nil && got.Status == status
	})
	return got
}

// Ensure what the plugin and the pool leave in the store reaches the
// cluster: the pod's k8s.aliyun.com/pod-ips annotation, the pod event
// AllocIPSucceed with the time the ADD took, node events for the pool,
// SufficientIP False while the pool is empty and cannot grow and True once
// it has addresses, and the instance annotation.
func TestSync_Reporting(t *testing.T) {
	h := startHarness(t, `{}`, nil, nil)
	h.mustCreate(&kube.Namespace{ObjectMeta: kube.ObjectMeta{Name: "team"}})
	h.mustCreate(testPod("team", "web", testNode))
	ip := netip.MustParseAddr("172.30.1.10")
	err := h.db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutENI(store.ENI{ID: "eni-1", State: store.ENIReady}); err != nil {
			return err
		}
		key := store.NewOwnerKey("c1", "eth0")
		if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-1", State: store.IPBound, Owner: key}); err != nil {
			return err
		}
		if err := tx.PutAllocation(store.Allocation{Key: key, ContainerID: "c1", IfName: "eth0", PodNamespace: "team", PodName: "web", IP: ip, ENIID: "eni-1", State: store.IPBound}); err != nil {
			return err
		}
		ps := store.PoolState{}
		ps.SetBackoff(store.VSwitchScope("vsw-a"), store.Backoff{Until: time.Now().Add(time.Hour), Reason: "InvalidVSwitchId.IpNotEnough"})
		if err := tx.PutPoolState(ps); err != nil {
			return err
		}
		_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "AllocIPSucceed", Object: "pod/team/web", Message: "alloc ip 172.30.1.10 for c1/eth0 took 12ms",
			CNI: &store.CNICall{Verb: store.CNIAdd, Took: 12 * time.Millisecond, PodNamespace: "team", PodName: "web", IP: ip}})
		if err != nil {
			return err
		}
		_, err = tx.AppendEvent(store.Event{Level: slog.LevelWarn, Reason: "VSwitchExhausted", Object: "vswitch/vsw-a", Message: "vswitch vsw-a has no free address"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.sync.Notify()
	eventually(t, "the pod-ips annotation", 15*time.Second, func() bool {
		h.sync.Notify()
		p, err := kube.Get(context.Background(), h.client, kube.Pods, "team", "web")
		return err == nil && p.Annotations[AnnotationPodIPs] == ip.String()
	})
	h.wantEvent(t, "AllocIPSucceed", "took 12ms")
	h.wantEvent(t, "VSwitchExhausted", "vsw-a")
	c := h.wantCondition(t, ConditionSufficientIP, kube.ConditionFalse)
	if !strings.Contains(c.Message, "vsw-a") || !strings.Contains(c.Message, "vswitches") {
		t.Errorf("condition message does not say what ran out and what to do: %q", c.Message)
	}
	err = h.db.Update(func(tx *store.WriteTx) error {
		return tx.PutIP(store.IP{Addr: netip.MustParseAddr("172.30.1.11"), ENIID: "eni-1", State: store.IPFree})
	})
	if err != nil {
		t.Fatal(err)
	}
	h.wantCondition(t, ConditionSufficientIP, kube.ConditionTrue)
	n, err := kube.Get(context.Background(), h.client, kube.Nodes, "", testNode)
	if err != nil {
		t.Fatal(err)
	}
	var info instanceInfo
	if err := json.Unmarshal([]byte(n.Annotations[AnnotationInstance]), &info); err != nil || info.MaxPods != 10 || info.InstanceType != "ecs.g7.large" {
		t.Errorf("instance annotation %q: %+v %v", n.Annotations[AnnotationInstance], info, err)
	}
}

// Ensure a pod deleted while its ADD ran, and recreated under the same
// name (a StatefulSet's pod), is not annotated with the old pod's address:
// the allocation's UID must match, and the patch is conditional on it.
func TestSync_PodReplaced_NoStaleAnnotation(t *testing.T) {
	h := startHarness(t, `{}`, nil, nil)
	h.mustCreate(testPod("default", "db-0", testNode))
	cur, err := kube.Get(context.Background(), h.client, kube.Pods, "default", "db-0")
	if err != nil {
		t.Fatal(err)
	}
	bind := func(cid, uid string, ip netip.Addr) {
		t.Helper()
		err := h.db.Update(func(tx *store.WriteTx) error {
			if err := tx.PutENI(store.ENI{ID: "eni-1", State: store.ENIReady}); err != nil {
				return err
			}
			key := store.NewOwnerKey(cid, "eth0")
			if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-1", State: store.IPBound, Owner: key}); err != nil {
				return err
			}
			return tx.PutAllocation(store.Allocation{Key: key, ContainerID: cid, IfName: "eth0", PodNamespace: "default", PodName: "db-0",
				PodUID: uid, IP: ip, ENIID: "eni-1", State: store.IPBound})
		})
		if err != nil {
			t.Fatal(err)
		}
		h.sync.Notify()
	}
	annotation := func() string {
		p, err := kube.Get(context.Background(), h.client, kube.Pods, "default", "db-0")
		if err != nil {
			t.Fatal(err)
		}
		return p.Annotations[AnnotationPodIPs]
	}
	// The old pod's sandbox, not yet torn down.
	bind("old", "uid-of-the-deleted-pod", netip.MustParseAddr("172.30.1.20"))
	for range 10 {
		h.sync.Notify()
		time.Sleep(100 * time.Millisecond)
	}
	if a := annotation(); a != "" {
		t.Fatalf("the new pod got the deleted pod's address: %q", a)
	}
	// The new pod's own ADD.
	bind("new", cur.UID, netip.MustParseAddr("172.30.1.21"))
	eventually(t, "the new pod's own address", 15*time.Second, func() bool {
		h.sync.Notify()
		return annotation() == "172.30.1.21"
	})
}

// fakeCloud answers the sweeper's two calls.
type fakeCloud struct {
	eni.Client
	mu      sync.Mutex
	enis    []eni.ENI
	deleted []string
}

func (f *fakeCloud) ENIs(_ context.Context, filter eni.ENIFilter) ([]eni.ENI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []eni.ENI
	for _, e := range f.enis {
		if e.Tags["creator"] == filter.Tags["creator"] {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeCloud) DeleteENI(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, id)
	for i, e := range f.enis {
		if e.ID == id {
			f.enis = append(f.enis[:i], f.enis[i+1:]...)
			break
		}
	}
	return nil
}

// Ensure the elected sweeper deletes ENIs veni created that stay Available
// past the grace, and leaves attached ones and other owners' alone, and
// fixed ENIs parked for their pods (until their release time and the
// grace, for ever with Never).
func TestSync_Sweeper(t *testing.T) {
	fixed := func(releaseAt string) map[string]string {
		return map[string]string{"creator": "veni", "veni.io/fixed": "true", "veni.io/pod": "ns/db-0", "veni.io/fixed-release-at": releaseAt}
	}
	cloud := &fakeCloud{enis: []eni.ENI{
		{ID: "eni-orphan", Status: eni.StatusAvailable, Tags: map[string]string{"creator": "veni", "veni.io/instance": "i-gone"}},
		{ID: "eni-used", Status: eni.StatusInUse, Tags: map[string]string{"creator": "veni"}},
		{ID: "eni-theirs", Status: eni.StatusAvailable, Tags: map[string]string{"creator": "terway"}},
		{ID: "eni-parked", Status: eni.StatusAvailable, Tags: fixed(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))},
		{ID: "eni-never", Status: eni.StatusAvailable, Tags: fixed("never")},
	}}
	h := startHarness(t, `{}`, cloud, func(s *Sync) { s.sweepAfter, s.sweepEvery = 500*time.Millisecond, 200*time.Millisecond })
	eventually(t, "the orphan ENI swept", 30*time.Second, func() bool {
		cloud.mu.Lock()
		defer cloud.mu.Unlock()
		return len(cloud.deleted) == 1
	})
	if cloud.deleted[0] != "eni-orphan" {
		t.Fatalf("deleted %v", cloud.deleted)
	}
	h.wantEvent(t, "ENISwept", "eni-orphan")
	time.Sleep(time.Second)
	if fmt.Sprint(cloud.deleted) != "[eni-orphan]" {
		t.Fatalf("deleted %v", cloud.deleted)
	}
}

// Ensure a parked fixed ENI is the sweeper's once its release time is
// past by the grace: its parker had its chance.
func TestKeptFixed(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	tagged := func(v string) eni.ENI {
		return eni.ENI{Status: eni.StatusAvailable, Tags: map[string]string{"veni.io/fixed": "true", "veni.io/fixed-release-at": v}}
	}
	for _, tc := range []struct {
		e    eni.ENI
		kept bool
	}{
		{eni.ENI{Status: eni.StatusAvailable, Tags: map[string]string{"veni.io/fixed": "true"}}, false}, // never parked: a leak like any
		{tagged("never"), true},
		{tagged("2026-07-01T12:10:00Z"), true},
		{tagged("2026-07-01T11:58:00Z"), true},  // past, within the grace
		{tagged("2026-07-01T11:50:00Z"), false}, // past the grace
		{tagged("garbage"), true},
	} {
		if got := keptFixed(tc.e, now, 5*time.Minute); got != tc.kept {
			t.Errorf("%v: kept %t, want %t", tc.e.Tags, got, tc.kept)
		}
	}
}

// Measure how long a pod created in the API server takes to reach the
// node's store (what an ADD reads), once the informers run: p50 and p99 of
// 60 pods created one after another, by the test's own clock.
func TestSync_MirrorLag(t *testing.T) {
	h := startHarness(t, `{}`, nil, nil)
	h.mustCreate(&kube.Namespace{ObjectMeta: kube.ObjectMeta{Name: "lag"}})
	eventually(t, "the informers to sync", 10*time.Second, func() bool { return h.sync.pods.HasSynced() })
	var lags []time.Duration
	for i := range 60 {
		name := fmt.Sprintf("p%d", i)
		start := time.Now()
		h.mustCreate(testPod("lag", name, testNode))
		for {
			var err error
			_ = h.db.View(func(tx *store.ReadTx) error { _, err = tx.MirrorPod("lag", name); return nil })
			if err == nil {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("pod %s not mirrored after 10s", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lags = append(lags, time.Since(start))
	}
	slices.Sort(lags)
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
	t.Logf("pod created in the API server -> in the node's store: p50 %s p99 %s (60 pods)", p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	if p99 > 5*time.Second {
		t.Errorf("mirror lag p99 %s", p99)
	}
}

// Ensure the DaemonSet's RBAC, applied from packaging/, is all the daemon
// needs: as the veni service account it mirrors, annotates, sets
// conditions, records events, reads the ConfigMaps and takes the sweeper's
// Lease; and that a missing verb is logged naming the verb and resource.
func TestSync_PackagedRBAC(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	path, err := filepath.Abs("../packaging/kubernetes/veni.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kc.Kubectl(t, "apply", "-f", path); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	token := kc.ServiceAccountToken(t, "kube-system", "veni", time.Hour)
	as, err := kube.New(kc.ConfigFor(token))
	if err != nil {
		t.Fatal(err)
	}
	cloud := &fakeCloud{}
	h := startHarnessAs(t, kc, as, `{}`, cloud, nil)
	h.mustCreate(testPod("default", "web", testNode))
	ip := netip.MustParseAddr("172.30.1.20")
	err = h.db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutENI(store.ENI{ID: "eni-1", State: store.ENIReady}); err != nil {
			return err
		}
		key := store.NewOwnerKey("c1", "eth0")
		if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-1", State: store.IPBound, Owner: key}); err != nil {
			return err
		}
		if err := tx.PutAllocation(store.Allocation{Key: key, ContainerID: "c1", IfName: "eth0", PodNamespace: "default", PodName: "web", IP: ip, ENIID: "eni-1", State: store.IPBound}); err != nil {
			return err
		}
		_, err := tx.AppendEvent(store.Event{Level: slog.LevelInfo, Reason: "AllocIPSucceed", Object: "pod/default/web", Message: "alloc ip 172.30.1.20 took 9ms",
			CNI: &store.CNICall{Verb: store.CNIAdd, PodNamespace: "default", PodName: "web", IP: ip}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pod-ips annotation, as the service account", 20*time.Second, func() bool {
		h.sync.Notify()
		p, err := kube.Get(context.Background(), h.client, kube.Pods, "default", "web")
		return err == nil && p.Annotations[AnnotationPodIPs] == ip.String()
	})
	h.wantEvent(t, "AllocIPSucceed", "took 9ms")
	h.wantCondition(t, ConditionSufficientIP, kube.ConditionTrue) // no free address, but nothing stops the pool from growing
	eventually(t, "the pod in the store, as the service account", 20*time.Second, func() bool {
		var err error
		_ = h.db.View(func(tx *store.ReadTx) error { _, err = tx.MirrorPod("default", "web"); return nil })
		return err == nil
	})
	eventually(t, "the sweeper's Lease, as the service account", 30*time.Second, func() bool {
		l, err := kube.Get(context.Background(), h.client, kube.Leases, "kube-system", sweepLease)
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == testNode
	})
	if strings.Contains(h.logs.String(), "forbidden") {
		t.Errorf("the packaged RBAC lacks a verb the daemon uses:\n%s", h.logs.String())
	}
}

// Ensure a missing RBAC verb is logged naming the verb and the resource.
func TestSync_MissingVerbNamed(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	kc.Grant(t, kubetest.RestrictedUser,
		kubetest.Rule{APIGroups: []string{""}, Resources: []string{"pods", "nodes", "namespaces", "configmaps"}, Verbs: []string{"list", "watch"}},
		kubetest.Rule{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}})
	as, err := kube.New(kc.ConfigFor(kubetest.RestrictedToken))
	if err != nil {
		t.Fatal(err)
	}
	h := startHarnessAs(t, kc, as, `{}`, nil, nil)
	eventually(t, "a log line naming the missing verb", 20*time.Second, func() bool {
		h.sync.Notify()
		l := h.logs.String()
		return strings.Contains(l, `verb \"patch\" on resource \"nodes`) || strings.Contains(l, `verb "patch" on resource "nodes`)
	})
}

// Ensure a trunk node is annotated as Terway annotates one: its trunk ENI
// (k8s.aliyun.com/trunk-on) and its member limit.
func TestSync_TrunkAnnotations(t *testing.T) {
	h := startHarness(t, `{"enable_eni_trunking": true}`, nil, func(s *Sync) {
		s.opts.Facts = func() (store.NodeInfo, bool) {
			return store.NodeInfo{InstanceID: "i-a", InstanceType: "ecs.g7.large", ENIs: 3, IPv4PerENI: 6, TrunkSupported: true, MemberENIs: 6}, true
		}
	})
	err := h.db.Update(func(tx *store.WriteTx) error {
		return tx.PutENI(store.ENI{ID: "eni-trunk", State: store.ENIReady, Kind: store.ENITrunk})
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the trunk annotations", 15*time.Second, func() bool {
		h.sync.Notify()
		n, err := kube.Get(context.Background(), h.client, kube.Nodes, "", testNode)
		return err == nil && n.Annotations[AnnotationTrunkOn] == "eni-trunk" && n.Annotations[AnnotationMaxMemberENI] == "6"
	})
}
