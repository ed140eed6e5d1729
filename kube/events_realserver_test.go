package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
)

// TestRecorder_RealServer: a storm of identical node events becomes one
// Event whose count is exact, 100 pods failing the same way get one event
// each, and kubectl shows the aggregated count.
func TestRecorder_RealServer(t *testing.T) {
	cl := kubetest.Start(t, kubetest.Options{})
	c := fastClient(t, cl.Config())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node, err := kube.Create(ctx, c, kube.Nodes, &kube.Node{ObjectMeta: kube.ObjectMeta{Name: "node-1"}}, kube.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, c, "ev")
	rec := kube.NewRecorder(fastClient(t, cl.Config()), kube.RecorderOptions{Host: "node-1", FlushInterval: 100 * time.Millisecond})
	go func() { _ = rec.Run(ctx) }()

	nodeRef := kube.RefOf(kube.Nodes, node)
	for i := range 300 {
		rec.Event(nodeRef, kube.EventTypeWarning, "AllocIPFailed", "vSwitch vsw-1 has no free IP; add a vSwitch to eni_conf")
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond) // a storm in bursts, so some repeats patch
		}
	}
	for i := range 100 {
		rec.Event(kube.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: fmt.Sprintf("p-%03d", i), UID: fmt.Sprintf("u-%d", i)},
			kube.EventTypeWarning, "AllocIPFailed", "no free IP")
	}

	var nodeEvents []kube.Event
	waitUntil(t, "aggregated node event with count 300", 20*time.Second, func() bool {
		l, err := kube.ListAll(ctx, c, kube.Events, "default", kube.ListOptions{FieldSelector: "involvedObject.name=node-1,reason=AllocIPFailed"})
		if err != nil {
			t.Fatal(err)
		}
		nodeEvents = l.Items
		return len(l.Items) == 1 && l.Items[0].Count == 300
	})
	ev := nodeEvents[0]
	if ev.InvolvedObject.UID != node.UID || ev.Type != kube.EventTypeWarning || ev.Source.Component != "veni" || ev.FirstTimestamp.IsZero() || ev.LastTimestamp.Before(ev.FirstTimestamp.Time) {
		t.Errorf("node event: %+v", ev)
	}
	waitUntil(t, "100 pod events", 20*time.Second, func() bool {
		l, _ := kube.ListAll(ctx, c, kube.Events, ns, kube.ListOptions{})
		return len(l.Items) == 100
	})
	st := rec.Stats()
	t.Logf("recorder stats for 300 identical + 100 distinct events: %+v", st)
	// Repeats are patched in batches, and never more than the object's
	// write budget (burst 25): the API server sees ≤ 26 writes for 300.
	if st.Created != 101 || st.Aggregated != 299 || st.Patched < 1 || st.Patched > 25 || st.Dropped != 0 || st.Failed != 0 {
		t.Errorf("stats %+v: want 101 creates and at most 25 patches", st)
	}
	out, err := cl.Kubectl(t, "get", "events", "-n", "default", "--field-selector", "involvedObject.name=node-1", "-o", "custom-columns=REASON:.reason,COUNT:.count")
	if err != nil || !strings.Contains(out, "AllocIPFailed   300") {
		t.Errorf("kubectl shows:\n%s %v", out, err)
	}
}
