package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/internal/testutil"
)

// dpServiceVIP is a Service address inside the sim's service range
// (fabric.ServiceCIDR, the nodes' service_cidr) that nothing in the VPC
// answers: only the node's DNAT rule makes it reach a pod. The root
// namespace blackholes the whole range while the sim runs.
const dpServiceVIP = "100.100.77.77"

// dpStatus is the part of "veni status -o json" these tests read.
type dpStatus struct {
	Datapath struct {
		Configured string `json:"configured"`
		Active     string `json:"active"`
		Reason     string `json:"reason"`
		PinDir     string `json:"pinDir"`
		Pinned     bool   `json:"pinned"`
		Endpoints  []struct {
			IP netip.Addr `json:"ip"`
		} `json:"endpoints"`
		HostStack map[string]string  `json:"hostStack"`
		Counters  *fastpath.Counters `json:"counters"`
	} `json:"datapath"`
}

// dpPod is a pod added with "veni sim pod add".
type dpPod struct {
	node, name string
	ip         netip.Addr
	netns      string
}

// dpSim is a two-node sim running one datapath, with the pods a test added.
type dpSim struct {
	*testSim
	instances map[string]string // node name → instance id
	pods      []dpPod
}

var podAddLine = regexp.MustCompile(`: (\S+) \(netns (\S+),`)

// mustDatapathSim starts a two-node sim whose nodes run mode. Whatever the
// test does, the nodes' pin directories are removed after sim down.
func mustDatapathSim(tb testing.TB, mode string) *dpSim {
	tb.Helper()
	var pinDirs []string
	// Registered before mustSim's cleanup, so it runs after sim down.
	tb.Cleanup(func() {
		for _, dir := range pinDirs {
			_ = fastpath.Teardown(dir)
		}
	})
	s := &dpSim{testSim: mustSim(tb), instances: make(map[string]string)}
	// A short sync interval lets the daemon's GC pass run within a test.
	s.mustRun("sim", "up", "--nodes", "2", "--datapath", mode, "--daemon-sync-interval", "1s")
	var st statusJSON
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		tb.Fatalf("sim status -o json: %v", err)
	}
	for _, n := range st.State.Nodes {
		s.instances[n.Name] = n.InstanceID
		dir, err := datapath.PinDir(n.InstanceID)
		if err != nil {
			tb.Fatal(err)
		}
		pinDirs = append(pinDirs, dir)
	}
	return s
}

// mustAddPod adds a pod through the sim's libcni runtime, retrying while
// the node's pool is still warming up (CNI "try again later").
func (s *dpSim) mustAddPod(tb testing.TB, node, name string) dpPod {
	tb.Helper()
	var (
		out string
		err error
	)
	for attempt := 0; attempt < 20; attempt++ {
		if out, err = s.run("sim", "pod", "add", node, name); err == nil || !strings.Contains(out, "try again") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("sim pod add %s %s: %v\n%s", node, name, err, out)
	}
	m := podAddLine.FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("sim pod add output: %q", out)
	}
	p := dpPod{node: node, name: name, ip: netip.MustParseAddr(m[1]), netns: m[2]}
	s.pods = append(s.pods, p)
	return p
}

func (s *dpSim) nodeConfig(node string) string {
	return filepath.Join(s.dir, "nodes", node, "veni.json")
}

// status runs "veni status -o json" inside node, as an operator would.
func (s *dpSim) status(tb testing.TB, node string) dpStatus {
	tb.Helper()
	out := s.mustRun("sim", "exec", node, "--", s.bin, "status", "--config", s.nodeConfig(node), "-o", "json")
	var st dpStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		tb.Fatalf("veni status -o json on %s: %v\n%s", node, err, out)
	}
	return st
}

func (s *dpSim) mustExec(tb testing.TB, node string, argv ...string) string {
	tb.Helper()
	return s.mustRun(append([]string{"sim", "exec", node, "--"}, argv...)...)
}

func (s *dpSim) pinDir(tb testing.TB, node string) string {
	tb.Helper()
	dir, err := datapath.PinDir(s.instances[node])
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// runtime returns a libcni runtime for p's node, set up as the sim's, and
// the pod as the sim recorded it (its container id is the attachment's).
func (s *dpSim) runtime(tb testing.TB, p dpPod) (*pods.Runtime, pods.Pod) {
	tb.Helper()
	nodeDir := filepath.Join(s.dir, "nodes", p.node)
	b, err := os.ReadFile(filepath.Join(nodeDir, "pods", "default_"+p.name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var rec struct {
		Pod pods.Pod `json:"pod"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		tb.Fatal(err)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		tb.Fatal(err)
	}
	var netnsPath string
	for _, n := range st.State.Nodes {
		if n.Name == p.node {
			netnsPath = n.NetNSPath
		}
	}
	rt, err := pods.NewRuntime(pods.Node{
		Name:     p.node,
		NetNS:    netnsPath,
		ConfDir:  filepath.Join(nodeDir, "net.d"),
		CNIPath:  []string{filepath.Join(s.dir, "cni-bin")},
		CacheDir: filepath.Join(nodeDir, "cni-cache"),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rt, rec.Pod
}

// dialVia connects from the pod namespace fromNetNS to addr:ProbePort and
// returns what the echo server answered; through a DNAT the answer names
// the backend pod, not addr.
func dialVia(fromNetNS string, addr netip.Addr) (string, error) {
	var conn net.Conn
	err := ns.WithNetNSPath(fromNetNS, func(ns.NetNS) error {
		d := net.Dialer{Timeout: 3 * time.Second}
		var err error
		conn, err = d.DialContext(context.Background(), "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(pods.ProbePort)))
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

var nftCounter = regexp.MustCompile(`counter packets (\d+)`)

func TestDatapath_TwoNodes(t *testing.T) {
	for _, mode := range []string{"ebpf", "plain"} {
		t.Run(mode, func(t *testing.T) {
			s := mustDatapathSim(t, mode)
			ebpf := mode == "ebpf"
			if ebpf {
				if err := fastpath.Supported(); err != nil {
					testutil.Skipf(t, "kernel lacks the fast path: %v", err)
				}
			}
			for _, node := range []string{"node-1", "node-2"} {
				for _, name := range []string{"a", "b"} {
					s.mustAddPod(t, node, name+"-"+node)
				}
			}
			before := map[string]dpStatus{"node-1": s.status(t, "node-1"), "node-2": s.status(t, "node-2")}
			for node, st := range before {
				dp := st.Datapath
				if dp.Active != mode || dp.Configured != mode {
					t.Fatalf("%s: datapath %+v, want %s", node, dp, mode)
				}
				if ebpf && (len(dp.Endpoints) != 2 || dp.HostStack[fabric.ServiceCIDR.String()] != "service") {
					t.Fatalf("%s: %d endpoints, host stack %v; want 2 and the service range", node, len(dp.Endpoints), dp.HostStack)
				}
				if !ebpf && dp.Pinned {
					t.Fatalf("%s: plain datapath has pins in %s", node, dp.PinDir)
				}
			}

			t.Run("connectivity", func(t *testing.T) {
				if out, err := s.run("sim", "connectivity"); err != nil {
					t.Fatalf("sim connectivity: %v\n%s", err, out)
				}
				if !ebpf {
					return
				}
				// Same-node pairs go pod to pod, cross-node pairs leave
				// through the ENI and come in through the other's.
				for _, node := range []string{"node-1", "node-2"} {
					b, a := before[node].Datapath.Counters, s.status(t, node).Datapath.Counters
					for _, c := range []struct {
						name          string
						before, after uint64
					}{
						{"from_pod redirect_peer", b.FromPod.RedirectPeer, a.FromPod.RedirectPeer},
						{"from_pod redirect_neigh", b.FromPod.RedirectNeigh, a.FromPod.RedirectNeigh},
						{"from_eni redirect_peer", b.FromENI.RedirectPeer, a.FromENI.RedirectPeer},
					} {
						if c.after <= c.before {
							t.Errorf("%s: %s %d → %d: the fast path was not taken", node, c.name, c.before, c.after)
						}
					}
				}
			})

			t.Run("service through the host stack", func(t *testing.T) {
				client, backend := s.pods[0], s.pods[2] // a-node-1 → a-node-2
				echo, err := pods.Serve(backend.netns, backend.ip)
				if err != nil {
					t.Fatal(err)
				}
				defer echo.Close()
				s.mustExec(t, "node-1", "nft", "add", "table", "ip", "vtest")
				s.mustExec(t, "node-1", "nft", "add", "chain", "ip", "vtest", "pre", "{", "type", "nat", "hook", "prerouting", "priority", "-100", ";", "}")
				s.mustExec(t, "node-1", "nft", "add", "rule", "ip", "vtest", "pre", "ip", "daddr", dpServiceVIP, "tcp", "dport", strconv.Itoa(pods.ProbePort),
					"counter", "dnat", "to", netip.AddrPortFrom(backend.ip, pods.ProbePort).String())
				var b dpStatus
				if ebpf {
					b = s.status(t, "node-1")
				}

				reply, err := dialVia(client.netns, netip.MustParseAddr(dpServiceVIP))
				if err != nil {
					t.Fatalf("%s → %s:%d: %v", client.ip, dpServiceVIP, pods.ProbePort, err)
				}
				if want := backend.ip.String() + " hello\n"; reply != want {
					t.Fatalf("reply %q, want %q", reply, want)
				}
				m := nftCounter.FindStringSubmatch(s.mustExec(t, "node-1", "nft", "list", "chain", "ip", "vtest", "pre"))
				if m == nil || m[1] == "0" {
					t.Fatalf("the DNAT rule counted no packet (%v): the Service bypassed the host stack", m)
				}
				if !ebpf {
					return
				}
				a := s.status(t, "node-1").Datapath.Counters
				if a.FromPod.PassService <= b.Datapath.Counters.FromPod.PassService {
					t.Errorf("from_pod pass_service did not grow (%d)", a.FromPod.PassService)
				}
				// The backend's answer must meet the node's conntrack to be
				// un-DNATed; a redirect straight into the client would
				// have broken the connection above.
				if a.FromENI.PassHostFlow <= b.Datapath.Counters.FromENI.PassHostFlow {
					t.Errorf("from_eni pass_host_flow did not grow (%d)", a.FromENI.PassHostFlow)
				}
			})

			t.Run("del removes the pod from the fast path", func(t *testing.T) {
				gone := s.pods[1] // b-node-1
				s.mustRun("sim", "pod", "del", gone.node, gone.name)
				st := s.status(t, gone.node)
				for _, ep := range st.Datapath.Endpoints {
					if ep.IP == gone.ip {
						t.Errorf("endpoint %s still in the map after DEL", gone.ip)
					}
				}
				if !ebpf {
					return
				}
				if len(st.Datapath.Endpoints) != 1 {
					t.Errorf("%d endpoints after DEL, want 1", len(st.Datapath.Endpoints))
				}
				base := "pod-" + strings.ReplaceAll(gone.ip.String(), ".", "_")
				for _, suffix := range []string{"-from", "-to"} {
					pin := filepath.Join(st.Datapath.PinDir, "links", base+suffix)
					if _, err := os.Stat(pin); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("link pin %s after DEL: %v", pin, err)
					}
				}
			})

			t.Run("check wants the endpoint", func(t *testing.T) {
				p := s.pods[0] // a-node-1; node-2 keeps its endpoints for the gc test
				rt, pod := s.runtime(t, p)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := rt.Check(ctx, pod); err != nil {
					t.Fatalf("CHECK of a healthy pod: %v", err)
				}
				if !ebpf {
					return
				}
				fp, err := fastpath.Open(fastpath.Options{PinDir: s.pinDir(t, p.node)})
				if err != nil {
					t.Fatal(err)
				}
				defer fp.Close()
				if err := fp.DetachPod(p.ip); err != nil {
					t.Fatal(err)
				}
				if err := rt.Check(ctx, pod); err == nil || !strings.Contains(err.Error(), "no endpoint") {
					t.Errorf("CHECK without the fast path endpoint = %v, want an error naming it", err)
				}
			})

			t.Run("gc removes the endpoint of a pod whose del never came", func(t *testing.T) {
				if !ebpf {
					return // the plain datapath has no endpoints; a skip here would fail CI's skip count
				}
				lost := s.pods[3] // b-node-2
				if err := pods.DeleteNetNS(filepath.Base(lost.netns)); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(20 * time.Second)
				for {
					var left []netip.Addr
					for _, ep := range s.status(t, lost.node).Datapath.Endpoints {
						left = append(left, ep.IP)
					}
					if !slices.Contains(left, lost.ip) {
						if len(left) != 1 {
							t.Errorf("endpoints after gc = %v, want only the live pod's", left)
						}
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("endpoint %s still there 20s after its namespace went: %v", lost.ip, left)
					}
					time.Sleep(500 * time.Millisecond)
				}
			})

			s.mustRun("sim", "down")
			for node, id := range s.instances {
				dir, _ := datapath.PinDir(id)
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: pin dir %s after sim down: %v", node, dir, err)
				}
			}
		})
	}
}
