package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/eni/sim/pods"
)

// cluster is a running sim seen as a Kubernetes node pool: nodes with their
// libcni runtimes, and the pods a test added.
type cluster struct {
	*testSim
	nodes map[string]clusterNode
}

type clusterNode struct {
	name   string
	netns  string
	config string // the node's veni.json
	rt     *pods.Runtime
}

// testPod is a pod a test added, with what the runtime got back.
type testPod struct {
	node string
	pod  pods.Pod
	ip   netip.Addr
	took time.Duration
}

// mustCluster starts a sim with args ("--nodes", "2", ...) and loads the
// nodes' runtimes. Everything is torn down when the test ends.
func mustCluster(tb testing.TB, args ...string) *cluster {
	tb.Helper()
	s := mustSim(tb)
	s.mustRun(append([]string{"sim", "up"}, args...)...)
	raw, err := os.ReadFile(filepath.Join(s.dir, "state.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var st struct {
		Nodes []struct {
			Name      string `json:"name"`
			NetNSPath string `json:"netnsPath"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		tb.Fatal(err)
	}
	c := &cluster{testSim: s, nodes: make(map[string]clusterNode)}
	for _, n := range st.Nodes {
		nodeDir := filepath.Join(s.dir, "nodes", n.Name)
		rt, err := pods.NewRuntime(pods.Node{
			Name:     n.Name,
			NetNS:    n.NetNSPath,
			ConfDir:  filepath.Join(nodeDir, "net.d"),
			CNIPath:  []string{filepath.Join(s.dir, "cni-bin")},
			CacheDir: filepath.Join(nodeDir, "cni-cache"),
		})
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes[n.Name] = clusterNode{name: n.Name, netns: n.NetNSPath, config: filepath.Join(nodeDir, "veni.json"), rt: rt}
	}
	return c
}

// newPod creates a pod namespace on node, named under the node's namespace
// so that sim down removes it too; the test's cleanup removes it as well.
func (c *cluster) newPod(tb testing.TB, node, name string) pods.Pod {
	tb.Helper()
	var b [16]byte
	_, _ = rand.Read(b[:])
	nsName := fabric.NodeNetNSName(c.name, node) + "-pod-" + name
	path, err := pods.CreateNetNS(nsName)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pods.DeleteNetNS(nsName) })
	return pods.Pod{Namespace: "e2e", Name: name, UID: hex.EncodeToString(b[:4]), ContainerID: hex.EncodeToString(b[:]), NetNS: path}
}

// add runs ADD the way kubelet's runtime would see it through: a "try
// again later" (CNI code 11) is retried, anything else is returned.
func (c *cluster) add(ctx context.Context, node string, p pods.Pod) (testPod, int, error) {
	retries := 0
	for {
		res, took, err := c.nodes[node].rt.Add(ctx, p)
		var cniErr *types.Error
		if errors.As(err, &cniErr) && cniErr.Code == types.ErrTryAgainLater && ctx.Err() == nil {
			retries++
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			return testPod{}, retries, err
		}
		ip, err := pods.PodIP(res)
		if err != nil {
			return testPod{}, retries, err
		}
		return testPod{node: node, pod: p, ip: netip.MustParseAddr(ip), took: took}, retries, nil
	}
}

// ipamList is "veni ipam list -o json" on a node.
type ipamList struct {
	ENIs []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Owned bool   `json:"owned"`
	} `json:"enis"`
	IPs []struct {
		Addr  string `json:"addr"`
		State string `json:"state"`
		ENIID string `json:"eniID"`
	} `json:"ips"`
	Allocations []struct {
		Key   string `json:"key"`
		IP    string `json:"ip"`
		State string `json:"state"`
	} `json:"allocations"`
}

func (l ipamList) free() int {
	n := 0
	for _, ip := range l.IPs {
		if ip.State == "free" {
			n++
		}
	}
	return n
}

func (c *cluster) ipamList(tb testing.TB, node string) ipamList {
	tb.Helper()
	out := c.mustRun("sim", "exec", node, "--", c.bin, "ipam", "list", "-o", "json", "--config", c.nodes[node].config)
	var l ipamList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		tb.Fatalf("ipam list on %s: %v\n%s", node, err, out)
	}
	return l
}

// verify runs "veni ipam verify" on the node: the store, the node's links
// and the cloud must agree.
func (c *cluster) verify(node string) (string, error) {
	return c.run("sim", "exec", node, "--", c.bin, "ipam", "verify", "--config", c.nodes[node].config)
}

func (c *cluster) mustVerify(tb testing.TB, node string) {
	tb.Helper()
	if out, err := c.verify(node); err != nil {
		tb.Fatalf("ipam verify on %s: %v\n%s", node, err, out)
	}
}

// cloudCalls returns the sim's per-action call counters.
func (c *cluster) cloudCalls(tb testing.TB) map[string]int {
	tb.Helper()
	out := c.mustRun("sim", "status", "-o", "json")
	var st struct {
		Live struct {
			Cloud struct {
				Calls map[string]struct {
					Calls int `json:"calls"`
				} `json:"calls"`
			} `json:"cloud"`
		} `json:"live"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		tb.Fatalf("sim status: %v\n%s", err, out)
	}
	calls := make(map[string]int)
	for action, s := range st.Live.Cloud.Calls {
		calls[action] = s.Calls
	}
	return calls
}

// probeAll dials from every pod to every other pod and returns the failures.
func probeAll(ctx context.Context, all []testPod) []string {
	servers := make([]*pods.EchoServer, 0, len(all))
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	var fails []string
	for _, p := range all {
		s, err := pods.Serve(p.pod.NetNS, p.ip)
		if err != nil {
			return []string{err.Error()}
		}
		servers = append(servers, s)
	}
	type pair struct{ from, to int }
	results := make(chan string, len(all)*len(all))
	work := make(chan pair)
	done := make(chan struct{})
	for range 16 {
		go func() {
			for pr := range work {
				if err := pods.Dial(ctx, all[pr.from].pod.NetNS, all[pr.to].ip, 5*time.Second); err != nil {
					results <- fmt.Sprintf("%s@%s -> %s@%s: %v", all[pr.from].pod.Name, all[pr.from].node, all[pr.to].pod.Name, all[pr.to].node, err)
				}
			}
			done <- struct{}{}
		}()
	}
	for i := range all {
		for j := range all {
			if i != j {
				work <- pair{i, j}
			}
		}
	}
	close(work)
	for range 16 {
		<-done
	}
	close(results)
	for r := range results {
		fails = append(fails, r)
	}
	return fails
}

func summarize(lines []string, max int) string {
	if len(lines) > max {
		return strings.Join(lines[:max], "\n") + fmt.Sprintf("\n... and %d more", len(lines)-max)
	}
	return strings.Join(lines, "\n")
}

// hostVeths counts the pod host veths (named veni…) in "ip -br link" output.
func hostVeths(ipBrLink string) int {
	n := 0
	for _, l := range strings.Split(ipBrLink, "\n") {
		if strings.HasPrefix(l, "veni") {
			n++
		}
	}
	return n
}
