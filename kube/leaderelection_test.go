package kube_test

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/veni-cni/veni/internal/kubetest"
	"github.com/veni-cni/veni/kube"
)

// candidate runs one elector in the background and records its
// leadership.
type candidate struct {
	id      string
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	leading bool
	started int
	stopped bool
	leaders []string
}

func (cd *candidate) isLeading() bool {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.leading
}

func startCandidate(t *testing.T, c *kube.Client, ns, id string, release bool) *candidate {
	t.Helper()
	cd := &candidate{id: id, done: make(chan struct{})}
	le, err := kube.NewLeaderElector(c, kube.LeaderElectionOptions{
		Namespace: ns, Name: "veni-sweeper", Identity: id,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond,
		ReleaseOnCancel: release,
		OnStartedLeading: func(ctx context.Context) {
			cd.mu.Lock()
			cd.leading, cd.started = true, cd.started+1
			cd.mu.Unlock()
			<-ctx.Done()
			cd.mu.Lock()
			cd.leading = false
			cd.mu.Unlock()
		},
		OnStoppedLeading: func() {
			cd.mu.Lock()
			cd.stopped = true
			cd.mu.Unlock()
		},
		OnNewLeader: func(l string) {
			cd.mu.Lock()
			cd.leaders = append(cd.leaders, l)
			cd.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cd.cancel = cancel
	go func() { le.Run(ctx); close(cd.done) }()
	t.Cleanup(func() { cancel(); <-cd.done })
	return cd
}

func lease(t *testing.T, c *kube.Client, ns string) kube.LeaseSpec {
	t.Helper()
	l, err := kube.Get(context.Background(), c, kube.Leases, ns, "veni-sweeper")
	if err != nil {
		t.Fatal(err)
	}
	return l.Spec
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func TestLeaderElector_RealServer(t *testing.T) {
	cl := kubetest.Start(t, kubetest.Options{})
	c := fastClient(t, cl.Config())

	t.Run("HandOverOnRelease", func(t *testing.T) {
		ns := newNamespace(t, c, "le")
		a := startCandidate(t, c, ns, "node-a", true)
		waitUntil(t, "a leads", 10*time.Second, a.isLeading)
		b := startCandidate(t, c, ns, "node-b", true)
		time.Sleep(4 * time.Second) // more than a lease duration: a renews, b must wait
		if b.isLeading() || !a.isLeading() {
			t.Fatalf("a %v b %v: b took a renewed lease", a.isLeading(), b.isLeading())
		}
		sp := lease(t, c, ns)
		if deref(sp.HolderIdentity) != "node-a" || deref(sp.LeaseDurationSeconds) != 3 || deref(sp.LeaseTransitions) != 0 || sp.RenewTime == nil || sp.AcquireTime == nil {
			t.Fatalf("lease while a leads: %+v", sp)
		}
		a.cancel()
		<-a.done
		if sp := lease(t, c, ns); deref(sp.HolderIdentity) != "" {
			t.Errorf("release left holder %q", deref(sp.HolderIdentity))
		}
		took := waitUntil(t, "b leads", 10*time.Second, b.isLeading)
		if took > 3*time.Second {
			t.Errorf("hand-over after release took %s, want well under the lease duration", took)
		}
		if sp := lease(t, c, ns); deref(sp.HolderIdentity) != "node-b" || deref(sp.LeaseTransitions) != 1 {
			t.Errorf("lease after hand-over: %+v", sp)
		}
		a.mu.Lock()
		if !a.stopped || a.started != 1 {
			t.Errorf("a: stopped %v started %d", a.stopped, a.started)
		}
		a.mu.Unlock()
		b.mu.Lock()
		if len(b.leaders) == 0 || b.leaders[0] != "node-a" || b.leaders[len(b.leaders)-1] != "node-b" {
			t.Errorf("b saw leaders %v", b.leaders)
		}
		b.mu.Unlock()
	})

	t.Run("ReleaseAfterRenewalLandedUnseen", func(t *testing.T) {
		// The window: a renewal the server applied but whose answer the
		// leader never read (its context was cancelled in flight) leaves
		// the leader's copy one resourceVersion behind. A rewrite of the
		// lease by another client, same holder, puts the leader in exactly
		// that state; its release must still clear the holder.
		ns := newNamespace(t, c, "unseen")
		a := startCandidate(t, c, ns, "node-a", true)
		waitUntil(t, "a leads", 10*time.Second, a.isLeading)
		l, err := kube.Get(t.Context(), c, kube.Leases, ns, "veni-sweeper")
		if err != nil {
			t.Fatal(err)
		}
		now := kube.NewMicroTime(time.Now()) // a change: the server skips no-op updates
		l.Spec.RenewTime = &now
		if _, err := kube.Update(t.Context(), c, kube.Leases, l, kube.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		a.cancel()
		<-a.done
		if sp := lease(t, c, ns); deref(sp.HolderIdentity) != "" {
			t.Errorf("release left holder %q", deref(sp.HolderIdentity))
		}
	})

	t.Run("TakeOverFromDeadHolder", func(t *testing.T) {
		ns := newNamespace(t, c, "dead")
		a := startCandidate(t, c, ns, "node-a", false)
		waitUntil(t, "a leads", 10*time.Second, a.isLeading)
		b := startCandidate(t, c, ns, "node-b", false)
		time.Sleep(time.Second)
		a.cancel() // dies without releasing: the lease still names it
		<-a.done
		dead := time.Now()
		waitUntil(t, "b leads", 15*time.Second, b.isLeading)
		if took := time.Since(dead); took < 2*time.Second {
			t.Errorf("b took over %s after a died: before the 3 s lease could expire", took)
		}
		if sp := lease(t, c, ns); deref(sp.HolderIdentity) != "node-b" || deref(sp.LeaseTransitions) != 1 {
			t.Errorf("lease after take-over: %+v", sp)
		}
	})

	t.Run("LosesLeadershipWhenRenewalFails", func(t *testing.T) {
		ns := newNamespace(t, c, "lose")
		proxy := cl.NewProxy(t)
		cfg := cl.Config()
		cfg.Host, cfg.Timeout = proxy.Host, time.Second
		a := startCandidate(t, fastClient(t, cfg), ns, "node-a", false)
		waitUntil(t, "a leads", 10*time.Second, a.isLeading)
		proxy.Block()
		took := waitUntil(t, "a steps down", 10*time.Second, func() bool { return !a.isLeading() })
		if took > 4*time.Second {
			t.Errorf("stepped down after %s, want about the 2 s renew deadline", took)
		}
	})

	t.Run("InteropWithClientGo", func(t *testing.T) {
		// Ours and client-go's elector contend for one lease: each must
		// respect the other.
		ns := newNamespace(t, c, "interop")
		ours := startCandidate(t, c, ns, "veni", true)
		waitUntil(t, "veni leads", 10*time.Second, ours.isLeading)

		cs := clientGo(t, cl)
		var mu sync.Mutex
		goLeading := false
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: "veni-sweeper"},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: "client-go"},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
				Lock: lock, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond,
				ReleaseOnCancel: true,
				Callbacks: leaderelection.LeaderCallbacks{
					OnStartedLeading: func(context.Context) { mu.Lock(); goLeading = true; mu.Unlock() },
					OnStoppedLeading: func() { mu.Lock(); goLeading = false; mu.Unlock() },
				},
			})
		}()
		t.Cleanup(func() { cancel(); <-done })
		isGo := func() bool { mu.Lock(); defer mu.Unlock(); return goLeading }
		time.Sleep(4 * time.Second)
		if isGo() {
			t.Fatal("client-go took the lease veni renews")
		}
		ours.cancel()
		<-ours.done
		waitUntil(t, "client-go leads after veni releases", 10*time.Second, isGo)

		again := startCandidate(t, c, ns, "veni-2", true)
		time.Sleep(4 * time.Second)
		if again.isLeading() {
			t.Fatal("veni took the lease client-go renews")
		}
		cancel()
		<-done
		waitUntil(t, "veni leads after client-go releases", 10*time.Second, again.isLeading)
		if sp := lease(t, c, ns); deref(sp.LeaseTransitions) != 2 {
			t.Errorf("transitions %d, want 2", deref(sp.LeaseTransitions))
		}
	})
}

func TestNewLeaderElector_Invalid(t *testing.T) {
	c, _ := kube.New(&kube.Config{Host: "https://127.0.0.1:1"})
	base := kube.LeaderElectionOptions{Namespace: "ns", Name: "l", Identity: "me"}
	tests := []struct {
		name string
		mod  func(o *kube.LeaderElectionOptions)
	}{
		{"no identity", func(o *kube.LeaderElectionOptions) { o.Identity = "" }},
		{"no name", func(o *kube.LeaderElectionOptions) { o.Name = "" }},
		{"duration not above deadline", func(o *kube.LeaderElectionOptions) { o.LeaseDuration, o.RenewDeadline = 5*time.Second, 5*time.Second }},
		{"deadline not above jittered retry", func(o *kube.LeaderElectionOptions) { o.RenewDeadline, o.RetryPeriod = 2*time.Second, 2*time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			if _, err := kube.NewLeaderElector(c, o); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := kube.NewLeaderElector(c, base); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
}
