package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// The daemon's loops run here against the simulated cloud over loopback
// (the real SDK, the real protocol) and a fake Host whose ENI links exist
// at once: no root, no namespaces.

// fakeHost is a node whose links appear as soon as they are asked for.
type fakeHost struct {
	mu    sync.Mutex
	pods  []ipam.HostPod
	neigh *netplumb.NeighbourLimits // nil: not visible, as in a simulated node
}

func (h *fakeHost) NeighbourLimits() (netplumb.NeighbourLimits, error) {
	if h.neigh == nil {
		return netplumb.NeighbourLimits{}, netplumb.ErrNoNeighbourLimits
	}
	return *h.neigh, nil
}

func (h *fakeHost) WaitLink(context.Context, net.HardwareAddr) error { return nil }
func (h *fakeHost) EnsureENI(context.Context, store.ENI) (int, error) {
	return 1, nil
}
func (h *fakeHost) HostPods(context.Context) ([]ipam.HostPod, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ipam.HostPod(nil), h.pods...), nil
}

func (h *fakeHost) setPods(p ...ipam.HostPod) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pods = p
}

type loopNode struct {
	env     *node.Env
	host    *fakeHost
	cloud   *sim.Cloud
	stop    func()
	wakeGap time.Duration // Options.MinWakeGap; zero: 10 ms
}

// startLoopNode runs the sim's API and metadata on loopback, writes a node
// config with extra fields, and starts a daemon on it.
func startLoopNode(t *testing.T, extra string) *loopNode {
	n := newLoopNode(t, extra)
	n.start(t)
	return n
}

// newLoopNode is startLoopNode without the daemon.
func newLoopNode(t *testing.T, extra string) *loopNode {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Credentials = map[string]string{"LTAIdaemon": "secret"}
	cfg.AttachDelay = 20 * time.Millisecond
	var id string
	cfg.IdentifyCaller = func(*http.Request) (string, bool) { return id, true }
	cloud, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	inst, err := cloud.AddInstance(sim.InstanceSpec{Hostname: "n1", Type: "ecs.g7.large"})
	if err != nil {
		t.Fatal(err)
	}
	id = inst.ID
	api := httptest.NewServer(cloud.APIHandler())
	t.Cleanup(api.Close)
	md := httptest.NewServer(cloud.MetadataHandler())
	t.Cleanup(md.Close)
	dir := t.TempDir()
	path := filepath.Join(dir, "veni.json")
	conf := fmt.Sprintf(`{"endpoint": %q, "scheme": "http", "metadata_url": %q, "access_key": "LTAIdaemon", "access_secret": "secret",
		"store_path": %q, "datapath": "plain", "poll_interval": "20ms" %s}`,
		strings.TrimPrefix(api.URL, "http://"), md.URL, filepath.Join(dir, "veni.db"), extra)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := node.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return &loopNode{env: env, host: &fakeHost{}, cloud: cloud}
}

// start runs a daemon on the node until n.stop or the test's end; ready
// is closed when its first full pass is done.
func (n *loopNode) start(t *testing.T) (ready chan struct{}) {
	t.Helper()
	ready = make(chan struct{})
	gap := n.wakeGap
	if gap == 0 {
		gap = 10 * time.Millisecond
	}
	d := New(n.env, Options{SyncInterval: time.Hour, MinWakeGap: gap, Host: n.host,
		Logger: slog.New(slog.NewTextHandler(testWriter(t), nil)), OnReady: func() { close(ready) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	n.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			n.stop()
		}
	})
	return ready
}

// pool counts the free addresses a warm ADD could take (on ready ENIs)
// and the held ones.
func (n *loopNode) pool(t *testing.T) (free, held int) {
	t.Helper()
	h, err := ipam.PoolHealth(n.env.Store, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = n.env.Store.View(func(tx *store.ReadTx) error {
		all, err := tx.Allocations()
		held = len(all)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.Free, held
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ensure the daemon fills an empty pool to min_pool_size at start, and
// tops it up again when ADDs (store writes, no RPC) take addresses.
func TestDaemon_TopsUpOnStoreWrites(t *testing.T) {
	// A long gc_grace: these reservations stand for ADDs in progress.
	n := startLoopNode(t, `, "min_pool_size": 2, "max_pool_size": 5, "gc_grace": "1h"`)
	eventually(t, "the pool to reach min_pool_size", func() bool { f, _ := n.pool(t); return f >= 2 })
	for _, cid := range []string{"a", "b"} {
		if _, err := ipam.Reserve(n.env.Store, ipam.Owner{ContainerID: cid, IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	// Woken by the writes (the timer is an hour away).
	eventually(t, "the pool to be topped up after two ADDs", func() bool { f, h := n.pool(t); return f >= 2 && h == 2 })
}

// Ensure the daemon's GC releases a reservation whose ADD died (nobody
// holds its claim) and leaves one whose ADD still runs.
func TestDaemon_GCsDeadReservations(t *testing.T) {
	n := startLoopNode(t, `, "min_pool_size": 2, "max_pool_size": 5, "gc_grace": "0s"`)
	eventually(t, "the pool to fill", func() bool { f, _ := n.pool(t); return f >= 2 })
	live := store.NewOwnerKey("live", "eth0")
	claim, err := store.TryClaim(store.OwnerClaim(n.env.Store.ClaimsDir(), live), true)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()
	if _, err := ipam.Reserve(n.env.Store, ipam.Owner{ContainerID: "live", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ipam.Reserve(n.env.Store, ipam.Owner{ContainerID: "crashed", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the crashed ADD's reservation to be collected", func() bool {
		var keys []store.OwnerKey
		_ = n.env.Store.View(func(tx *store.ReadTx) error {
			all, err := tx.Allocations()
			for _, a := range all {
				keys = append(keys, a.Key)
			}
			return err
		})
		return len(keys) == 1 && keys[0] == live
	})
}

// Ensure a store that is replaced under a running daemon (lost, or damaged
// and moved aside) is rebuilt without handing out a running pod's address:
// the daemon notices the new file, adopts the node's ENIs, and records the
// addresses the host's pods use as bound.
func TestDaemon_StoreReplaced_RecoversPods(t *testing.T) {
	n := startLoopNode(t, `, "min_pool_size": 2, "max_pool_size": 5`)
	eventually(t, "the pool to fill", func() bool { f, _ := n.pool(t); return f >= 2 })
	netns := fmt.Sprintf("/proc/%d/ns/net", os.Getpid()) // alive as long as the test
	r, err := ipam.Reserve(n.env.Store, ipam.Owner{ContainerID: "running", IfName: "eth0", NetNS: netns})
	if err != nil {
		t.Fatal(err)
	}
	if err := ipam.Commit(n.env.Store, r.Key, ipam.HostSide{Veth: "veniabc", Ifindex: 9}, nil); err != nil {
		t.Fatal(err)
	}
	n.host.setPods(ipam.HostPod{ContainerID: "running", IfName: "eth0", NetNS: netns, HostVeth: "veniabc", HostIfindex: 9, IPs: []netip.Addr{r.IP}})

	// A new, empty store renamed over the old one.
	fresh := n.env.Store.Path + ".new"
	if err := (store.File{Path: fresh}).Update(func(*store.WriteTx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fresh, n.env.Store.Path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the running pod's address to be recovered as bound", func() bool {
		var a store.Allocation
		err := n.env.Store.View(func(tx *store.ReadTx) (err error) { a, err = tx.AllocationByIP(r.IP); return err })
		return err == nil && a.Key == r.Key && a.Recovered && a.State == store.IPBound
	})
	// Every other address is free again, and none of them is the pod's.
	for i := range 10 {
		res, err := ipam.Reserve(n.env.Store, ipam.Owner{ContainerID: fmt.Sprint("new", i), IfName: "eth0"})
		if err != nil {
			break
		}
		if res.IP == r.IP {
			t.Fatalf("handed out %s, which the running pod holds", r.IP)
		}
	}
}

// Ensure a node at rest costs the OpenAPI nothing: a restarted daemon
// trusts the facts it cached when metadata names the same instance, and
// its passes read instance metadata instead of describing ENIs while the
// two agree. A rollout restarting every node at once must not spend the
// account's API budget (DescribeInstanceTypes, DescribeNetworkInterfaces).
func TestDaemon_RestartAndIdle_NoCloudCalls(t *testing.T) {
	n := newLoopNode(t, `, "min_pool_size": 2, "max_pool_size": 5`)
	<-n.start(t)
	eventually(t, "the pool to fill", func() bool { f, _ := n.pool(t); return f >= 2 })
	n.stop()

	before := n.cloud.Snapshot().Calls
	<-n.start(t)
	// Wake it: an ADD takes an address (a store write, a local pass).
	if _, err := ipam.Reserve(n.env.Store, ipam.Owner{ContainerID: "a", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	after := n.cloud.Snapshot().Calls
	for _, action := range []string{"DescribeInstanceTypes", "DescribeNetworkInterfaces"} {
		if d := after[action].Calls - before[action].Calls; d != 0 {
			t.Errorf("%s called %d times by a restarted, idle daemon", action, d)
		}
	}

	// A store whose facts name another instance type is discovered afresh.
	n.stop()
	err := n.env.Store.Update(func(tx *store.WriteTx) error {
		info, err := tx.Node()
		if err != nil {
			return err
		}
		info.InstanceType = "ecs.g7.xlarge"
		return tx.PutNode(info)
	})
	if err != nil {
		t.Fatal(err)
	}
	<-n.start(t)
	var info store.NodeInfo
	if err := n.env.Store.View(func(tx *store.ReadTx) (err error) { info, err = tx.Node(); return err }); err != nil {
		t.Fatal(err)
	}
	if info.InstanceType != "ecs.g7.large" {
		t.Errorf("facts not discovered afresh: type %s, from %v", info.InstanceType, info.UpdatedAt)
	}
}

// Ensure a node whose kernel neighbour table cannot hold two entries per
// pod is reported: a warning event (relayed to Kubernetes) that names the
// sysctl and the values to set, and none when the limits suffice.
func TestDaemon_WarnsOfSmallNeighbourTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits netplumb.NeighbourLimits
		want   string
	}{
		{"kernel defaults too small", netplumb.NeighbourLimits{Thresh1: 32, Thresh2: 64, Thresh3: 128}, "gc_thresh3 is 128"},
		{"enough", netplumb.NeighbourLimits{Thresh1: 4096, Thresh2: 8192, Thresh3: 16384}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newLoopNode(t, "")
			n.host.neigh = &tc.limits
			<-n.start(t)
			var got []string
			err := n.env.Store.View(func(tx *store.ReadTx) error {
				evs, err := tx.Events(0, 0)
				for _, e := range evs {
					if e.Reason == "NeighbourTableTooSmall" {
						got = append(got, e.Message)
					}
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("warned with enough room: %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "gc_thresh1/2/3 = 4096/8192/16384")):
				t.Errorf("events %q, want one naming %q and the values to set", got, tc.want)
			}
		})
	}
}

// testWriter sends the daemon's log to the test's, shown when it fails.
func testWriter(t *testing.T) io.Writer {
	if os.Getenv("VENI_TEST_DAEMON_LOG") == "" {
		return io.Discard
	}
	return os.Stderr
}
