package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/store"
)

// The fault campaign: two nodes, 300 pods going through ADD and DEL with at
// most 100 at a time, while plugins and daemons are killed with SIGKILL at
// random (at least 50 kills) and the cloud misbehaves the whole time: 30%
// of calls throttled, 5% answered 5xx, Describe answers 2 s behind writes,
// attaches that take 10 s and then never complete, a vSwitch that runs out
// of addresses and recovers.
//
// What must hold: no address is bound to two pods at any moment (checked
// continuously, in the stores and among the pods that have one); every ADD
// that failed said "try again later" (11) with a reason, unless its plugin
// was killed; once the faults stop, pods succeed again; after GC no
// allocation is left without a pod, verify is clean on both nodes (store,
// links, cloud, no leaked ENI).
func TestCNI_FaultCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault campaign takes minutes")
	}
	const podCount, parallel, minKills = 300, 100, 50
	const campaignFor = 60 * time.Second // the fault plan's length
	c := mustCluster(t, "--nodes", "2", "--instance-type", "ecs.g7.2xlarge", "--min-pool-size", "2", "--max-pool-size", "5",
		"--daemon-sync-interval", "1s",
		"--node-config", "gc_grace=1s", "--node-config", "idle_ip_reclaim_after=1s", "--node-config", "idle_ip_reclaim_interval=1s",
		"--node-config", "attach_timeout=12s", "--node-config", "lease_ttl=20s", "--node-config", "alloc_wait=5s")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	nodes := []string{"node-1", "node-2"}

	checker := startInvariantChecker(t, c, nodes)
	faults := startFaults(t, c)
	killer := startKiller(c)

	var (
		adds, addOK, addKilled atomic.Int64
		mu                     sync.Mutex
		bad                    []string // ADD failures that were not code 11 with a reason
		delErrs                []string
		tooks                  []time.Duration
		live                   = make(map[netip.Addr]string) // pods that have an address now
	)
	// 300 pods cycle through ADD and DEL, 100 at a time, for as long as the
	// fault plan runs (each cycle is a new sandbox: a new container id).
	type campPod struct {
		pod  pods.Pod
		node string
	}
	queue := make(chan campPod, podCount)
	for i := range podCount {
		queue <- campPod{c.newPod(t, nodes[i%2], fmt.Sprintf("camp%d", i)), nodes[i%2]}
	}
	until := time.Now().Add(campaignFor)
	cycle := func(p pods.Pod, node string) {
		rt := c.nodes[node].rt
		adds.Add(1)
		res, took, err := rt.Add(ctx, p)
		if err == nil {
			ip, perr := pods.PodIP(res)
			if perr != nil {
				mu.Lock()
				bad = append(bad, perr.Error())
				mu.Unlock()
			} else {
				addr := netip.MustParseAddr(ip)
				mu.Lock()
				addOK.Add(1)
				tooks = append(tooks, took)
				if other, ok := live[addr]; ok {
					checker.fail("ADD gave %s to %s while %s has it", addr, p.Name, other)
				}
				live[addr] = p.Name
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
				mu.Lock()
				delete(live, addr)
				mu.Unlock()
			}
		} else if reason, ok := addFailure(err); !ok {
			mu.Lock()
			bad = append(bad, reason)
			mu.Unlock()
		} else if reason == "killed" {
			addKilled.Add(1)
		}
		// Like kubelet, every sandbox ends with a DEL that succeeded.
		var derr error
		for range 100 {
			if _, derr = rt.Del(ctx, p); derr == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if derr != nil {
			mu.Lock()
			delErrs = append(delErrs, derr.Error())
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for ctx.Err() == nil {
				cp := <-queue
				cycle(cp.pod, cp.node)
				cp.pod.ContainerID = newContainerID()
				queue <- cp
				if time.Now().After(until) && killer.total() >= minKills {
					return
				}
			}
		})
	}
	wg.Wait()
	killer.stop()
	injected := faults.stop()
	faultsOff := time.Now()

	// Pods succeed again once the faults are gone: a batch on each node,
	// retried as kubelet does, until a whole batch works the first time.
	recovered := time.Duration(0)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		ok := true
		var batch []testPod
		for _, node := range nodes {
			for i := range 5 {
				p := c.newPod(t, node, fmt.Sprintf("after%d-%d", attempt, i))
				tp, retries, err := c.add(ctx, node, p)
				if err != nil {
					t.Fatalf("ADD after the faults stopped: %v", err)
				}
				ok = ok && retries == 0
				batch = append(batch, tp)
			}
		}
		for _, tp := range batch {
			if _, err := c.nodes[tp.node].rt.Del(ctx, tp.pod); err != nil {
				t.Fatalf("DEL after the faults stopped: %v", err)
			}
		}
		if ok {
			recovered = time.Since(faultsOff)
			break
		}
		time.Sleep(time.Second)
	}
	checker.stop()

	slices.Sort(tooks)
	t.Logf("campaign: %d ADDs, %d succeeded, %d failed because their plugin was killed; %d kills (%d of daemons)",
		adds.Load(), addOK.Load(), addKilled.Load(), killer.total(), killer.daemons.Load())
	t.Logf("faults injected: %s", injected)
	t.Logf("ADD p50 %s p99 %s; %d invariant checks; recovered %s after the faults stopped",
		percentile(tooks, 50), percentile(tooks, 99), checker.checks.Load(), recovered.Round(time.Millisecond))
	if killer.total() < minKills {
		t.Errorf("only %d kills, want at least %d", killer.total(), minKills)
	}
	if len(bad) > 0 {
		t.Errorf("%d ADDs failed without code 11 and a reason:\n%s", len(bad), summarize(bad, 10))
	}
	if len(delErrs) > 0 {
		t.Errorf("%d DELs never succeeded:\n%s", len(delErrs), summarize(delErrs, 10))
	}
	if v := checker.violations(); len(v) > 0 {
		t.Fatalf("%d invariant violations during the campaign:\n%s", len(v), summarize(v, 10))
	}
	if recovered == 0 {
		t.Fatal("pods did not succeed again after the faults stopped")
	}

	// After GC nothing is held without a pod, and store, links and cloud
	// agree on both nodes (verify also finds ENIs veni leaked).
	for _, node := range nodes {
		deadline := time.Now().Add(90 * time.Second)
		for {
			c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "gc", "--config", c.nodes[node].config)
			l := c.ipamList(t, node)
			out, err := c.verify(node)
			if err == nil && len(l.Allocations) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s after GC: %d allocations left; verify: %v\n%s", node, len(l.Allocations), err, out)
			}
			time.Sleep(time.Second)
		}
	}
}

// addFailure classifies a failed ADD: a CNI error must be code 11 with a
// reason; a plugin killed by the campaign fails with no CNI error at all.
func addFailure(err error) (string, bool) {
	if strings.Contains(err.Error(), "signal: killed") {
		// libcni's words for a plugin that died without a result.
		return "killed", true
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		if cniErr.Code == types.ErrTryAgainLater && cniErr.Msg != "" && cniErr.Details != "" {
			return "code 11", true
		}
		return fmt.Sprintf("code %d: %s (%s)", cniErr.Code, cniErr.Msg, cniErr.Details), false
	}
	return err.Error(), false
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(time.Millisecond)
}

// invariantChecker reads both nodes' stores every 50 ms while the campaign
// runs: each store's own invariants, and no address held on both nodes.
type invariantChecker struct {
	mu     sync.Mutex
	found  []string
	checks atomic.Int64
	done   chan struct{}
	exited chan struct{}
}

func startInvariantChecker(t *testing.T, c *cluster, nodes []string) *invariantChecker {
	t.Helper()
	paths := make(map[string]string)
	for _, n := range nodes {
		raw, err := os.ReadFile(c.nodes[n].config)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			StorePath string `json:"store_path"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil || cfg.StorePath == "" {
			t.Fatalf("store path of %s: %v", n, err)
		}
		paths[n] = cfg.StorePath
	}
	ic := &invariantChecker{done: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(ic.exited)
		for {
			select {
			case <-ic.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			held := make(map[netip.Addr]string)
			for _, n := range nodes {
				err := store.View(paths[n], func(tx *store.ReadTx) error {
					for _, v := range tx.Check() {
						ic.fail("%s: store invariant: %s", n, v)
					}
					all, err := tx.Allocations()
					for _, a := range all {
						if other, ok := held[a.IP]; ok {
							ic.fail("%s held by %s and by %s/%s", a.IP, other, n, a.Key)
						}
						held[a.IP] = n + "/" + string(a.Key)
					}
					return err
				})
				if err != nil && !errors.Is(err, store.ErrLocked) {
					ic.fail("%s: read store: %v", n, err)
				}
			}
			ic.checks.Add(1)
		}
	}()
	return ic
}

func (ic *invariantChecker) fail(format string, args ...any) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.found = append(ic.found, fmt.Sprintf(format, args...))
}

func (ic *invariantChecker) stop() {
	close(ic.done)
	<-ic.exited
}

func (ic *invariantChecker) violations() []string {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return slices.Clone(ic.found)
}

// faultPlan drives the cloud's faults on a schedule until stopped.
type faultPlan struct {
	c      *cluster
	done   chan struct{}
	exited chan struct{}
}

func startFaults(t *testing.T, c *cluster) *faultPlan {
	t.Helper()
	c.mustRun("sim", "fault", "--throttle", "0.3", "--error-rate", "0.05", "--error-code", "ServiceUnavailable")
	c.mustRun("sim", "fault", "--describe-lag", "2s")
	f := &faultPlan{c: c, done: make(chan struct{}), exited: make(chan struct{})}
	steps := []struct {
		at   time.Duration
		args []string
	}{
		{2 * time.Second, []string{"--attach-delay", "10s"}},
		{10 * time.Second, []string{"--vswitch", "vsw-sim-a", "--vswitch-free", "0"}},
		{20 * time.Second, []string{"--attach-never"}},
		{35 * time.Second, []string{"--attach-delay", "0s"}},
		{45 * time.Second, []string{"--vswitch", "vsw-sim-a", "--clear"}},
	}
	go func() {
		defer close(f.exited)
		start := time.Now()
		for _, s := range steps {
			select {
			case <-f.done:
				return
			case <-time.After(time.Until(start.Add(s.at))):
			}
			if out, err := c.run(append([]string{"sim", "fault"}, s.args...)...); err != nil {
				t.Errorf("sim fault %v: %v\n%s", s.args, err, out)
			}
		}
	}()
	return f
}

// stop clears every fault and returns what was injected.
func (f *faultPlan) stop() string {
	close(f.done)
	<-f.exited
	injected := strings.TrimSpace(f.c.mustRun("sim", "fault", "--show"))
	f.c.mustRun("sim", "fault", "--clear")
	f.c.mustRun("sim", "fault", "--attach-delay", "0s")
	f.c.mustRun("sim", "fault", "--describe-lag", "0s")
	f.c.mustRun("sim", "fault", "--vswitch", "vsw-sim-a", "--clear")
	return injected
}

// killer sends SIGKILL to a random veni plugin (CNI_COMMAND in its
// environment) or, one time in eight, a node daemon, every 150-450 ms: at
// least 50 kills over the campaign, while most ADDs still get through.
type killer struct {
	kills, daemons atomic.Int64
	done, exited   chan struct{}
}

func startKiller(c *cluster) *killer {
	k := &killer{done: make(chan struct{}), exited: make(chan struct{})}
	cniPath := []byte("CNI_PATH=" + filepath.Join(c.dir, "cni-bin"))
	daemonArgs := []byte("daemon\x00--config\x00" + c.dir)
	go func() {
		defer close(k.exited)
		for {
			select {
			case <-k.done:
				return
			case <-time.After(time.Duration(150+rand.IntN(300)) * time.Millisecond):
			}
			daemon := rand.IntN(8) == 0
			pids := findProcs(func(_ int, cmdline, environ []byte) bool {
				if daemon {
					return bytes.Contains(cmdline, daemonArgs)
				}
				return bytes.Contains(environ, cniPath) && bytes.Contains(environ, []byte("CNI_COMMAND="))
			})
			if len(pids) == 0 {
				continue
			}
			sort.Ints(pids)
			if syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
				k.kills.Add(1)
				if daemon {
					k.daemons.Add(1)
				}
			}
		}
	}()
	return k
}

func (k *killer) total() int64 { return k.kills.Load() }

func (k *killer) stop() {
	close(k.done)
	<-k.exited
}

// newContainerID is a fresh sandbox id, as a runtime makes for each try.
func newContainerID() string {
	var b [32]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
