package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Ensure no crash loses or leaks an address: 100 pods go through ADD and DEL
// in parallel on 2 nodes while plugin processes and node daemons are killed
// with SIGKILL at random (at least 50 kills). Like kubelet, a failed ADD is
// followed by DEL, and a failed DEL is retried. Afterwards, once GC has run,
// no allocation is left, no address is held twice, every held address is
// assigned to its ENI in the cloud, and no ENI veni created is leaked.
func TestCNI_CrashSafety(t *testing.T) { crashSafety(t) }

// Ensure the same in prefix mode: no address of a delegated /28 is bound
// twice or leaked through the kills, and every held one lies in a prefix
// its ENI holds in the cloud (verify).
func TestCNI_Prefix_CrashSafety(t *testing.T) {
	crashSafety(t, "--node-config", "enable_ip_prefix=true")
}

// Ensure the same on dual-stack nodes: through the kills no pod is left
// with half its stack and no half is leaked (verify runs the store's
// half-stack check), and every held IPv6 is assigned to its ENI.
func TestCNI_DualStack_CrashSafety(t *testing.T) {
	crashSafety(t, "--vswitches", dualVSwitches, "--node-config", "ip_stack=dual")
}

// Ensure the same on dual-stack nodes in prefix mode: each pod's IPv6
// record is made in the transaction that reserves its IPv4, so through the
// kills no pod is left with half its stack, no half is leaked, and every
// held address lies in a /28 or /80 its ENI holds in the cloud (verify).
func TestCNI_DualStackPrefix_CrashSafety(t *testing.T) {
	crashSafety(t, "--vswitches", dualVSwitches, "--node-config", "ip_stack=dual", "--node-config", "enable_ip_prefix=true")
}

// Ensure the same on IPv6-only nodes: every pod's one address is an IPv6
// of its ENI, none is bound twice or leaked through the kills, and every
// held one is assigned to its ENI in the cloud (verify).
func TestCNI_IPv6Only_CrashSafety(t *testing.T) {
	crashSafety(t, "--vswitches", dualVSwitches, "--node-config", "ip_stack=ipv6")
}

// Ensure the same on IPv6-only nodes in prefix mode: every pod's one
// address is a record of its ENI's /80, none is bound twice or leaked
// through the kills, and every held one lies in a /80 its ENI holds in the
// cloud (verify).
func TestCNI_IPv6OnlyPrefix_CrashSafety(t *testing.T) {
	crashSafety(t, "--vswitches", dualVSwitches, "--node-config", "ip_stack=ipv6", "--node-config", "enable_ip_prefix=true")
}

func crashSafety(t *testing.T, extra ...string) {
	const pods, minKills = 100, 50
	c := mustCluster(t, append([]string{"--nodes", "2", "--min-pool-size", "2", "--max-pool-size", "5",
		"--daemon-sync-interval", "1s",
		"--node-config", "gc_grace=1s", "--node-config", "idle_ip_reclaim_after=1s", "--node-config", "idle_ip_reclaim_interval=1s"},
		extra...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	stop := make(chan struct{})
	var kills, daemonKills atomic.Int64
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		cniPath := "CNI_PATH=" + filepath.Join(c.dir, "cni-bin")
		// Crashes are random, not a siege: a sandbox's plugin runs are
		// killed at most maxKillsPerSandbox times. Without the cap the last
		// DEL still running is the killer's only target and dies on every
		// retry, which says nothing about veni (kubelet's DEL retries
		// forever; a node does not crash every 30 ms).
		const maxKillsPerSandbox = 6
		killed := map[string]int{}
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(10+rand.IntN(30)) * time.Millisecond):
			}
			daemon := rand.IntN(8) == 0
			sandbox := map[int]string{}
			pids := findProcs(func(pid int, cmdline, environ []byte) bool {
				if daemon {
					return bytes.Contains(cmdline, []byte("daemon\x00--config\x00"+c.dir))
				}
				if !bytes.Contains(environ, []byte(cniPath)) || !bytes.Contains(environ, []byte("CNI_COMMAND=")) {
					return false
				}
				id := envValue(environ, "CNI_CONTAINERID")
				sandbox[pid] = id
				return killed[id] < maxKillsPerSandbox
			})
			if len(pids) == 0 {
				continue
			}
			pid := pids[rand.IntN(len(pids))]
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				kills.Add(1)
				if daemon {
					daemonKills.Add(1)
				} else {
					killed[sandbox[pid]]++
				}
			}
		}
	}()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
		adds atomic.Int64
	)
	for i := range pods {
		node := fmt.Sprintf("node-%d", i%2+1)
		p := c.newPod(t, node, fmt.Sprintf("crash%d", i))
		rt := c.nodes[node].rt
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A few sandboxes per pod, as kubelet makes new ones after
			// failures; every one ends with a DEL that succeeded.
			for attempt := range 3 {
				p := p
				p.ContainerID = fmt.Sprintf("%s%02d", p.ContainerID[:30], attempt)
				if _, _, err := rt.Add(ctx, p); err == nil {
					adds.Add(1)
					time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
				}
				var err error
				for range 20 {
					if _, err = rt.Del(ctx, p); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	// Keep killing until both the count is reached and the work is done.
	wg.Wait()
	for extra := 0; kills.Load() < minKills && ctx.Err() == nil; extra++ {
		// Named by its own counter: the kill count may not move between
		// two rounds, and a pod name is a namespace that must be new.
		p := c.newPod(t, "node-1", fmt.Sprintf("extra%d", extra))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = c.nodes["node-1"].rt.Add(ctx, p)
			for range 20 {
				if _, err := c.nodes["node-1"].rt.Del(ctx, p); err == nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-killerDone
	wg.Wait()
	t.Logf("%d successful ADDs, %d kills (%d of daemons)", adds.Load(), kills.Load(), daemonKills.Load())
	if kills.Load() < minKills {
		t.Fatalf("only %d kills, want at least %d", kills.Load(), minKills)
	}
	if len(errs) > 0 {
		t.Fatalf("%d DELs never succeeded (DEL must always succeed eventually):\n%s", len(errs), summarize(errs, 10))
	}

	// Let GC's grace pass and a daemon pass run, then collect explicitly.
	time.Sleep(2 * time.Second)
	for _, node := range []string{"node-1", "node-2"} {
		deadline := time.Now().Add(30 * time.Second)
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

// envValue returns the value of key in a /proc environ (NUL-separated).
func envValue(environ []byte, key string) string {
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(key+"=")); ok {
			return string(v)
		}
	}
	return ""
}

// findProcs returns the pids whose /proc cmdline and environ match.
func findProcs(match func(pid int, cmdline, environ []byte) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if match(pid, cmdline, environ) {
			pids = append(pids, pid)
		}
	}
	return pids
}
