package kube_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
)

// handlerLog counts handler calls and keeps its own view of the objects.
type handlerLog[T any] struct {
	mu                  sync.Mutex
	adds, updates, dels int
	initialAdds         int
	view                map[string]string // key -> resourceVersion
}

func newHandlerLog[T any]() *handlerLog[T] { return &handlerLog[T]{view: map[string]string{}} }

func meta(o any) *kube.ObjectMeta { return o.(kube.Object).Meta() }

func (h *handlerLog[T]) handler() kube.EventHandler[T] {
	return kube.EventHandler[T]{
		OnAdd: func(o *T, initial bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.adds++
			if initial {
				h.initialAdds++
			}
			h.view[meta(o).Key()] = meta(o).ResourceVersion
		},
		OnUpdate: func(old, o *T) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.updates++
			h.view[meta(o).Key()] = meta(o).ResourceVersion
		},
		OnDelete: func(o *T) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.dels++
			delete(h.view, meta(o).Key())
		},
	}
}

// snapshot renders key=rv pairs sorted, for comparing views.
func snapshot(m map[string]string) string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// serverView lists the server's objects as key=rv.
func serverView[T any](t *testing.T, c *kube.Client, r kube.Resource[T], ns string) string {
	t.Helper()
	l, err := kube.ListAll(context.Background(), c, r, ns, kube.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for k := range l.Items {
		m[meta(&l.Items[k]).Key()] = meta(&l.Items[k]).ResourceVersion
	}
	return snapshot(m)
}

func cacheView[T any](inf *kube.Informer[T]) string {
	m := map[string]string{}
	for _, o := range inf.List() {
		m[meta(o).Key()] = meta(o).ResourceVersion
	}
	return snapshot(m)
}

// waitConverged waits until the informer's cache and its handlers' view
// both equal the server's list.
func waitConverged[T any](t *testing.T, c *kube.Client, r kube.Resource[T], ns string, inf *kube.Informer[T], h *handlerLog[T], timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		want := serverView(t, c, r, ns)
		h.mu.Lock()
		hv := snapshot(h.view)
		h.mu.Unlock()
		got := cacheView(inf)
		if got == want && hv == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after %s:\nserver  %s\ncache   %s\nhandler %s\nstats %+v", timeout, want, got, hv, inf.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runInformer[T any](t *testing.T, inf *kube.Informer[T]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = inf.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := inf.WaitForSync(sctx); err != nil {
		t.Fatalf("informer did not sync: %v (stats %+v)", err, inf.Stats())
	}
}

func mkCM(t *testing.T, c *kube.Client, ns, name string) {
	t.Helper()
	if _, err := kube.Create(context.Background(), c, kube.ConfigMaps, &kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"v": "0"}}, kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func patchCM(t *testing.T, c *kube.Client, ns, name, v string) {
	t.Helper()
	if _, err := kube.Patch(context.Background(), c, kube.ConfigMaps, ns, name, kube.MergePatch, []byte(`{"data":{"v":"`+v+`"}}`), kube.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func delCM(t *testing.T, c *kube.Client, ns, name string) {
	t.Helper()
	if err := kube.Delete(context.Background(), c, kube.ConfigMaps, ns, name, kube.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestInformer_RealServer runs against an API server whose configmaps
// watch cache is off (--watch-cache-sizes=configmaps#0): their watches go
// to etcd, so compacting etcd makes an old resourceVersion expire for real.
func TestInformer_RealServer(t *testing.T) {
	cl := kubetest.Start(t, kubetest.Options{APIServerArgs: []string{"--watch-cache-sizes=configmaps#0"}})
	c := fastClient(t, cl.Config())

	t.Run("ListWatch", func(t *testing.T) {
		ns := newNamespace(t, c, "lw")
		for i := range 7 {
			mkCM(t, c, ns, fmt.Sprintf("pre-%d", i))
		}
		h := newHandlerLog[kube.ConfigMap]()
		inf := kube.NewInformer(c, kube.ConfigMaps, kube.InformerOptions[kube.ConfigMap]{Namespace: ns, PageSize: 3, Handler: h.handler()})
		if inf.HasSynced() {
			t.Fatal("synced before Run")
		}
		runInformer(t, inf)
		if h.initialAdds != 7 || inf.Stats().Objects != 7 {
			t.Fatalf("initial list: %d adds, stats %+v", h.initialAdds, inf.Stats())
		}
		mkCM(t, c, ns, "new")
		patchCM(t, c, ns, "pre-1", "1")
		delCM(t, c, ns, "pre-2")
		waitConverged(t, c, kube.ConfigMaps, ns, inf, h, 10*time.Second)
		if o, ok := inf.Get(ns, "pre-1"); !ok || o.Data["v"] != "1" {
			t.Errorf("Get pre-1: %+v", o)
		}
		st := inf.Stats()
		if h.adds != 8 || h.updates != 1 || h.dels != 1 || st.Events != 3 || st.LastEvent.IsZero() || st.AddLag <= 0 || st.AddLag > 5*time.Second {
			t.Errorf("handlers %d/%d/%d, stats %+v", h.adds, h.updates, h.dels, st)
		}
	})

	t.Run("Bookmarks", func(t *testing.T) {
		// A bookmark tells a watcher the resourceVersion moved on through
		// changes it does not see: watch one namespace, change another.
		// (The watch cache sends one 2 s before the watch's timeout.)
		ns, other := newNamespace(t, c, "bm"), newNamespace(t, c, "bm-other")
		l, err := kube.List(context.Background(), c, kube.Pods, ns, kube.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := kube.Watch(context.Background(), c, kube.Pods, ns, kube.ListOptions{ResourceVersion: l.ResourceVersion, AllowWatchBookmarks: true, TimeoutSeconds: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		p, err := kube.Create(context.Background(), c, kube.Pods, &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: other},
			Spec: kube.PodSpec{Containers: []kube.Container{{Name: "c", Image: "pause"}}}}, kube.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := w.Next()
			if err != nil {
				t.Fatalf("no bookmark before the watch ended: %v", err)
			}
			if ev.Type == kube.Bookmark {
				if ev.Object.ResourceVersion != p.ResourceVersion {
					t.Errorf("bookmark at %q, want the other namespace's change %q", ev.Object.ResourceVersion, p.ResourceVersion)
				}
				return
			}
			t.Errorf("unexpected %s %s", ev.Type, ev.Object.Name)
		}
	})

	t.Run("InformerFollowsBookmarks", func(t *testing.T) {
		ns, other := newNamespace(t, c, "ibm"), newNamespace(t, c, "ibm-other")
		inf := kube.NewInformer(c, kube.Pods, kube.InformerOptions[kube.Pod]{Namespace: ns, WatchTimeout: 3 * time.Second})
		runInformer(t, inf)
		p, err := kube.Create(context.Background(), c, kube.Pods, &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: other},
			Spec: kube.PodSpec{Containers: []kube.Container{{Name: "c", Image: "pause"}}}}, kube.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a bookmark to move the informer's resourceVersion", 10*time.Second, func() bool {
			st := inf.Stats()
			return st.Bookmarks > 0 && st.ResourceVersion == p.ResourceVersion
		})
		if st := inf.Stats(); st.Objects != 0 || st.Lists != 1 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("WatchExpired", func(t *testing.T) {
		ns := newNamespace(t, c, "exp")
		l, err := kube.List(context.Background(), c, kube.ConfigMaps, ns, kube.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The server watches from rv+1 and compaction at N keeps N: two
		// writes put rv+1 below the compacted revision.
		mkCM(t, c, ns, "a")
		mkCM(t, c, ns, "b")
		cl.CompactEtcd(t)
		w, err := kube.Watch(context.Background(), c, kube.ConfigMaps, ns, kube.ListOptions{ResourceVersion: l.ResourceVersion})
		if err == nil {
			defer w.Close()
			_, err = w.Next() // the server may answer 200 then an ERROR event
		}
		if !kube.IsGone(err) {
			t.Fatalf("watch from a compacted resourceVersion: %v, want Gone", err)
		}
		t.Log(err)
	})

	t.Run("RelistAfterGone", func(t *testing.T) {
		ns := newNamespace(t, c, "gone")
		for i := range 5 {
			mkCM(t, c, ns, fmt.Sprintf("cm-%d", i))
		}
		proxy := cl.NewProxy(t)
		cfg := cl.Config()
		cfg.Host = proxy.Host
		pc := fastClient(t, cfg)
		h := newHandlerLog[kube.ConfigMap]()
		inf := kube.NewInformer(pc, kube.ConfigMaps, kube.InformerOptions[kube.ConfigMap]{
			Namespace: ns, Handler: h.handler(), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		})
		runInformer(t, inf)
		// Cut the informer off, change things behind its back, and compact
		// etcd so its resourceVersion is gone for good.
		proxy.Block()
		delCM(t, c, ns, "cm-0")
		patchCM(t, c, ns, "cm-1", "x")
		mkCM(t, c, ns, "cm-new")
		cl.CompactEtcd(t)
		time.Sleep(300 * time.Millisecond) // let it fail at least once
		proxy.Unblock()
		waitConverged(t, c, kube.ConfigMaps, ns, inf, h, 20*time.Second)
		st := inf.Stats()
		if st.Relists410 < 1 || st.Lists < 2 || st.WatchErrors < 1 {
			t.Errorf("want a 410 relist after reconnect errors: %+v", st)
		}
		if h.dels != 1 || h.updates < 1 {
			t.Errorf("relist diff: %d deletes, %d updates", h.dels, h.updates)
		}
		// And it keeps watching after the relist.
		mkCM(t, c, ns, "after")
		waitConverged(t, c, kube.ConfigMaps, ns, inf, h, 10*time.Second)
	})

	t.Run("ReconnectAfterAPIServerRestart", func(t *testing.T) {
		ns := newNamespace(t, c, "rs")
		mkCM(t, c, ns, "before")
		h := newHandlerLog[kube.ConfigMap]()
		inf := kube.NewInformer(c, kube.ConfigMaps, kube.InformerOptions[kube.ConfigMap]{
			Namespace: ns, Handler: h.handler(), MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		})
		hp := newHandlerLog[kube.Pod]()
		pinf := kube.NewInformer(c, kube.Pods, kube.InformerOptions[kube.Pod]{
			Namespace: ns, Handler: hp.handler(), MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		})
		runInformer(t, inf)
		runInformer(t, pinf)
		cl.RestartAPIServer(t)
		mkCM(t, c, ns, "after")
		delCM(t, c, ns, "before")
		if _, err := kube.Create(context.Background(), c, kube.Pods, &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: ns},
			Spec: kube.PodSpec{Containers: []kube.Container{{Name: "c", Image: "pause"}}}}, kube.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitConverged(t, c, kube.ConfigMaps, ns, inf, h, 30*time.Second)
		waitConverged(t, c, kube.Pods, ns, pinf, hp, 30*time.Second)
		if st := inf.Stats(); st.WatchesOpened < 2 {
			t.Errorf("no reconnect recorded: %+v", st)
		}
	})
}
