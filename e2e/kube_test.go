package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/internal/crictest"
	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/kubesync"
)

// A simulated VPC whose nodes' daemons join a real kube-apiserver (etcd and
// kube-apiserver on loopback; the VPC reaches it through the sim's relay):
// the cluster sees veni the way an operator would.
type kubeCluster struct {
	*cluster
	kc     *kubetest.Cluster
	client *kube.Client
}

// mustKubeCluster starts the API server, creates the Node objects (node-2
// in node pool "pool-b" through the terway-config label) and the eni-config
// ConfigMaps, then the sim with its daemons joined to the API server.
func mustKubeCluster(t testing.TB, args ...string) *kubeCluster {
	t.Helper()
	kc := kubetest.Start(t, kubetest.Options{})
	client := kc.Client(t)
	ctx := context.Background()
	for _, n := range []kube.Node{
		{ObjectMeta: kube.ObjectMeta{Name: "node-1"}},
		{ObjectMeta: kube.ObjectMeta{Name: "node-2", Labels: map[string]string{kubesync.LabelTerwayConfig: "pool-b"}}},
	} {
		if _, err := kube.Create(ctx, client, kube.Nodes, &n, kube.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, conf := range map[string]string{"eni-config": `{"max_pool_size": 5}`, "pool-b": `{"min_pool_size": 3}`} {
		cm := &kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Namespace: "kube-system", Name: name}, Data: map[string]string{"eni_conf": conf}}
		if _, err := kube.Create(ctx, client, kube.ConfigMaps, cm, kube.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	args = append([]string{"--kubeconfig", kc.WriteKubeconfig(t, false)}, args...)
	return &kubeCluster{cluster: mustCluster(t, args...), kc: kc, client: client}
}

// createPod creates the Pod object bound to node, as the scheduler would.
func (k *kubeCluster) createPod(t testing.TB, node, name string) *kube.Pod {
	t.Helper()
	p := &kube.Pod{
		ObjectMeta: kube.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": name}},
		Spec: kube.PodSpec{NodeName: node, Containers: []kube.Container{{Name: "c", Image: "localhost/pause:1",
			Ports: []kube.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	got, err := kube.Create(context.Background(), k.client, kube.Pods, p, kube.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (k *kubeCluster) node(t *testing.T, name string) *kube.Node {
	t.Helper()
	n, err := kube.Get(context.Background(), k.client, kube.Nodes, "", name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func kubeEventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out (%s) waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (k *kubeCluster) hasEvent(reason, object, mentions string) bool {
	l, err := kube.List(context.Background(), k.client, kube.Events, "", kube.ListOptions{})
	if err != nil {
		return false
	}
	for _, e := range l.Items {
		if e.Reason == reason && e.InvolvedObject.Name == object && strings.Contains(e.Message, mentions) {
			return true
		}
	}
	return false
}

func condition(n *kube.Node, typ string) *kube.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// Ensure veni lives in a real cluster: pods added through the CNI get VPC
// addresses and their k8s.aliyun.com/pod-ips annotation and AllocIPSucceed
// event; nodes carry SufficientIP and the instance annotation; the node
// pool's ConfigMap applies to its node only; an edit of the cluster's
// eni-config is applied by the running daemons; SufficientIP turns False
// when the vSwitch runs out and back True when it has room.
func TestKube_NodeLifecycle(t *testing.T) {
	k := mustKubeCluster(t, "--nodes", "2", "--min-pool-size", "1", "--max-pool-size", "5", "--daemon-sync-interval", "1s",
		"--node-config", "idle_ip_reclaim_after=1s", "--node-config", "idle_ip_reclaim_interval=1s")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Pods through the CNI, named like kubelet names them in CNI_ARGS.
	var added []testPod
	for i, node := range []string{"node-1", "node-2"} {
		obj := k.createPod(t, node, fmt.Sprintf("web-%d", i))
		p := k.newPod(t, node, obj.Name)
		p.Namespace, p.UID = obj.Namespace, obj.UID
		tp, _, err := k.add(ctx, node, p)
		if err != nil {
			t.Fatalf("ADD on %s: %v", node, err)
		}
		added = append(added, tp)
	}
	for _, tp := range added {
		kubeEventually(t, "pod-ips on "+tp.pod.Name, 30*time.Second, func() bool {
			p, err := kube.Get(ctx, k.client, kube.Pods, "default", tp.pod.Name)
			return err == nil && p.Annotations[kubesync.AnnotationPodIPs] == tp.ip.String()
		})
		kubeEventually(t, "AllocIPSucceed on "+tp.pod.Name, 30*time.Second, func() bool {
			return k.hasEvent("AllocIPSucceed", tp.pod.Name, "took")
		})
	}
	for _, name := range []string{"node-1", "node-2"} {
		kubeEventually(t, name+"'s SufficientIP and instance annotation", 30*time.Second, func() bool {
			n := k.node(t, name)
			c := condition(n, kubesync.ConditionSufficientIP)
			return c != nil && c.Status == kube.ConditionTrue && strings.Contains(n.Annotations[kubesync.AnnotationInstance], "maxPods")
		})
	}

	// The daemon's metrics (its unix socket) show what the store holds and
	// the CNI calls it served, and its informers are synced.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		differs := k.metricsAgreeWithStore(t, "node-1")
		if differs == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-1's metrics disagree with its store: %s", differs)
		}
	}
	m := k.scrapeMetrics(t, "node-1")
	if n := sumWhere(m["veni_cni_call_duration_seconds"], map[string]string{"verb": "ADD"}); n < 1 {
		// The histogram's samples include _count; any ADD makes it positive.
		t.Errorf("no CNI ADD in node-1's metrics")
	}
	if n := sumWhere(m["veni_informer_synced"], map[string]string{"resource": "pods"}); n != 1 {
		t.Errorf("veni_informer_synced{resource=pods} = %v, want 1", n)
	}

	// node-2 is in pool-b: min_pool_size 3 there, 1 on node-1.
	kubeEventually(t, "node-2's pool at pool-b's min_pool_size", 60*time.Second, func() bool {
		return k.ipamList(t, "node-2").free() >= 3
	})
	if cfg := nodeClusterLayer(t, k.cluster, "node-1"); strings.Contains(cfg, "min_pool_size") {
		t.Errorf("node-1 got pool-b's config: %s", cfg)
	}

	// An edit of the cluster's eni-config reaches the running daemons.
	patch := []byte(`{"data":{"eni_conf":"{\"max_pool_size\": 7, \"min_pool_size\": 4}"}}`)
	if _, err := kube.Patch(ctx, k.client, kube.ConfigMaps, "kube-system", "eni-config", kube.MergePatch, patch, kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeEventually(t, "node-1 to take min_pool_size 4 from the edited ConfigMap", 60*time.Second, func() bool {
		return k.ipamList(t, "node-1").free() >= 4
	})
	kubeEventually(t, "a ConfigApplied event", 30*time.Second, func() bool { return k.hasEvent("ConfigApplied", "node-1", "min_pool_size") })

	// The vSwitch runs out: once node-1's free addresses are taken, it
	// cannot grow, and says so.
	vsw := k.nodeVSwitch(t, "node-1")
	k.mustRun("sim", "fault", "--vswitch", vsw, "--vswitch-free", "0")
	var more []testPod
	for i := 0; ; i++ {
		p := k.newPod(t, "node-1", fmt.Sprintf("fill-%d", i))
		res, _, err := k.nodes["node-1"].rt.Add(ctx, p)
		if err != nil {
			break
		}
		ip, err := pods.PodIP(res)
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, testPod{node: "node-1", pod: p, ip: netip.MustParseAddr(ip)})
		if i > 40 {
			t.Fatal("node-1 never ran out of addresses")
		}
	}
	kubeEventually(t, "SufficientIP False on node-1", 60*time.Second, func() bool {
		c := condition(k.node(t, "node-1"), kubesync.ConditionSufficientIP)
		return c != nil && c.Status == kube.ConditionFalse && strings.Contains(c.Message, vsw)
	})
	k.mustRun("sim", "fault", "--vswitch", vsw, "--clear")
	for _, tp := range more {
		if _, err := k.nodes["node-1"].rt.Del(ctx, tp.pod); err != nil {
			t.Fatal(err)
		}
	}
	kubeEventually(t, "SufficientIP True again on node-1", 90*time.Second, func() bool {
		c := condition(k.node(t, "node-1"), kubesync.ConditionSufficientIP)
		return c != nil && c.Status == kube.ConditionTrue
	})
	for _, tp := range added {
		if _, err := k.nodes[tp.node].rt.Del(ctx, tp.pod); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range []string{"node-1", "node-2"} {
		k.mustVerify(t, node)
	}
}

// Ensure the packaging applies as written: the API server accepts every
// manifest in a server-side dry run (RBAC, ConfigMap, DaemonSet).
func TestKube_PackagingDryRun(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	path, err := filepath.Abs("../packaging/kubernetes/veni.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := kc.Kubectl(t, "apply", "--dry-run=server", "-f", path)
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
	for _, want := range []string{"serviceaccount/veni", "clusterrole.rbac.authorization.k8s.io/veni", "daemonset.apps/veni"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run did not create %s:\n%s", want, out)
		}
	}
}

// nodeClusterLayer is the cluster.json a node's daemon wrote.
func nodeClusterLayer(t *testing.T, c *cluster, node string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(c.nodes[node].config), "cluster.json"))
	if err != nil {
		t.Fatalf("cluster.json of %s: %v", node, err)
	}
	return string(b)
}

// nodeVSwitch is the vSwitch of a node's primary ENI, from the sim's state.
func (k *kubeCluster) nodeVSwitch(t *testing.T, node string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(k.dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Nodes []struct {
			Name      string `json:"name"`
			VSwitchID string `json:"vswitchID"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Name == node {
			return n.VSwitchID
		}
	}
	t.Fatalf("no node %s in the sim's state", node)
	return ""
}

// Ensure the API server being down changes nothing a pod needs: ADDs keep
// working and the pool keeps being topped up, and once it is back the
// daemons catch up (the annotation of a pod added meanwhile appears). A pod
// deleted from the API server while its ADD runs still gets its address and
// the daemon shrugs off the missing object.
func TestKube_APIServerDown(t *testing.T) {
	k := mustKubeCluster(t, "--nodes", "1", "--min-pool-size", "2", "--max-pool-size", "5", "--daemon-sync-interval", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kubeEventually(t, "node-1's SufficientIP", 30*time.Second, func() bool {
		return condition(k.node(t, "node-1"), kubesync.ConditionSufficientIP) != nil
	})

	obj := k.createPod(t, "node-1", "during-outage")
	k.kc.StopAPIServer(t)
	p := k.newPod(t, "node-1", obj.Name)
	p.Namespace, p.UID = obj.Namespace, obj.UID
	var pods []testPod
	for i := range 4 { // more than the warm pool: the daemon must top it up meanwhile
		q := p
		if i > 0 {
			q = k.newPod(t, "node-1", fmt.Sprintf("outage-%d", i))
		}
		tp, _, err := k.add(ctx, "node-1", q)
		if err != nil {
			t.Fatalf("ADD with the API server down: %v", err)
		}
		pods = append(pods, tp)
	}
	kubeEventually(t, "the pool topped up with the API server down", 60*time.Second, func() bool {
		return k.ipamList(t, "node-1").free() >= 2
	})
	k.kc.StartAPIServer(t)
	kubeEventually(t, "the annotation of the pod added during the outage", 90*time.Second, func() bool {
		got, err := kube.Get(ctx, k.client, kube.Pods, "default", obj.Name)
		return err == nil && got.Annotations[kubesync.AnnotationPodIPs] == pods[0].ip.String()
	})

	// A pod whose object is deleted before its ADD.
	gone := k.createPod(t, "node-1", "deleted-early")
	zero := int64(0)
	if err := kube.Delete(ctx, k.client, kube.Pods, "default", gone.Name, kube.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	q := k.newPod(t, "node-1", gone.Name)
	q.Namespace, q.UID = gone.Namespace, gone.UID
	tp, _, err := k.add(ctx, "node-1", q)
	if err != nil {
		t.Fatalf("ADD of a pod deleted from the API server: %v", err)
	}
	pods = append(pods, tp)
	for _, tp := range pods {
		if _, err := k.nodes["node-1"].rt.Del(ctx, tp.pod); err != nil {
			t.Fatal(err)
		}
	}
	k.mustVerify(t, "node-1")
}

// Ensure the whole chain a cluster runs works on real parts: Pod objects in
// a kube-apiserver, bound to a node whose daemon joined it, sandboxes run
// for them through containerd's CRI (as kubelet does), veni giving them VPC
// addresses that the API server then shows (pod-ips, AllocIPSucceed), and
// Stop/Remove (containerd's two DELs) leaving nothing.
func TestKube_CRI_PodsThroughContainerd(t *testing.T) {
	k := mustKubeCluster(t, "--nodes", "2", "--min-pool-size", "2", "--max-pool-size", "5", "--daemon-sync-interval", "1s")
	nodes := k.mustContainerds(t, "node-1", "node-2")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type running struct {
		node string
		pod  crictest.Pod
		sb   crictest.Sandbox
	}
	var all []running
	for _, node := range []string{"node-1", "node-2"} {
		for i := range 3 {
			obj := k.createPod(t, node, fmt.Sprintf("cri-%s-%d", node, i))
			p := crictest.Pod{Namespace: obj.Namespace, Name: obj.Name, UID: obj.UID}
			sb, err := nodes[node].kubelet.RunPod(ctx, p)
			if err != nil {
				t.Fatalf("RunPodSandbox of %s on %s: %v", obj.Name, node, err)
			}
			all = append(all, running{node, p, sb})
		}
	}
	for _, r := range all {
		kubeEventually(t, "pod-ips of "+r.pod.Name, 30*time.Second, func() bool {
			got, err := kube.Get(ctx, k.client, kube.Pods, r.pod.Namespace, r.pod.Name)
			return err == nil && got.Annotations[kubesync.AnnotationPodIPs] == r.sb.IP.String()
		})
		kubeEventually(t, "AllocIPSucceed of "+r.pod.Name, 30*time.Second, func() bool {
			return k.hasEvent("AllocIPSucceed", r.pod.Name, r.sb.IP.String())
		})
	}
	var probe []testPod
	for _, r := range all {
		probe = append(probe, asTestPods(r.node, r.sb)...)
	}
	if bad := probeAll(ctx, probe); len(bad) > 0 {
		t.Fatalf("pods cannot reach each other:\n%s", summarize(bad, 10))
	}
	for _, r := range all {
		if err := nodes[r.node].kubelet.DeletePod(ctx, r.sb.ID); err != nil {
			t.Fatalf("stop and remove %s: %v", r.pod.Name, err)
		}
	}
	for _, node := range []string{"node-1", "node-2"} {
		if n := len(k.ipamList(t, node).Allocations); n != 0 {
			t.Errorf("%s: %d allocations left after Stop and Remove", node, n)
		}
		k.mustVerify(t, node)
	}
}
