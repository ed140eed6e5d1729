package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/internal/testutil"
)

var veniBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if veniBuild.dir != "" {
		os.RemoveAll(veniBuild.dir)
	}
	os.Exit(code)
}

// mustVeni returns the veni binary under test: $VENI_BIN, or one build
// shared by the package's tests.
func mustVeni(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("VENI_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			tb.Fatal(err)
		}
		return abs
	}
	veniBuild.once.Do(func() {
		if veniBuild.dir, veniBuild.err = os.MkdirTemp("", "veni-e2e-"); veniBuild.err != nil {
			return
		}
		veniBuild.bin = filepath.Join(veniBuild.dir, "veni")
		cmd := exec.Command("go", "build", "-o", veniBuild.bin, "github.com/veni-cni/veni")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			veniBuild.err = fmt.Errorf("build veni: %w\n%s", err, out)
		}
	})
	if veniBuild.err != nil {
		tb.Fatal(veniBuild.err)
	}
	return veniBuild.bin
}

// testSim is one sim of a test: its binary, name and directory.
type testSim struct {
	tb   testing.TB
	bin  string
	name string
	dir  string
}

// mustSim prepares a uniquely named sim whose teardown ("sim down", then a
// direct fabric cleanup for good measure) is registered before it starts.
func mustSim(tb testing.TB) *testSim {
	tb.Helper()
	testutil.RequireRoot(tb)
	var b [3]byte
	_, _ = rand.Read(b[:])
	s := &testSim{tb: tb, bin: mustVeni(tb), name: "vte-" + hex.EncodeToString(b[:]), dir: filepath.Join(tb.TempDir(), "sim")}
	tb.Cleanup(func() {
		if out, err := s.run("sim", "down"); err != nil {
			tb.Errorf("sim down at cleanup: %v\n%s", err, out)
		}
		_ = fabric.Cleanup(s.name)
	})
	return s
}

// run runs "veni ARGS" against this sim: --dir and --name go before a
// "--" so exec's command keeps its own arguments.
func (s *testSim) run(args ...string) (string, error) {
	flags := []string{"--dir", s.dir, "--name", s.name}
	if i := slices.Index(args, "--"); i >= 0 {
		args = slices.Concat(args[:i], flags, args[i:])
	} else {
		args = append(args, flags...)
	}
	var out bytes.Buffer
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (s *testSim) mustRun(args ...string) string {
	s.tb.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.tb.Fatalf("veni %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// simBlackholes lists the root namespace's sim blackhole routes, IPv4
// and IPv6.
func simBlackholes(tb testing.TB) []string {
	tb.Helper()
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Type: unix.RTN_BLACKHOLE, Protocol: fabric.RouteProtocol},
		netlink.RT_FILTER_TYPE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		out = append(out, fmt.Sprintf("%s metric %d", r.Dst, r.Priority))
	}
	slices.Sort(out)
	return out
}

// simNamespaces lists the mounted namespaces of sim name.
func simNamespaces(tb testing.TB, name string) []string {
	tb.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

type statusJSON struct {
	State struct {
		PID   int `json:"pid"`
		Nodes []struct {
			Name       string `json:"name"`
			InstanceID string `json:"instanceId"`
			NetNSPath  string `json:"netnsPath"`
			PrimaryIP  string `json:"primaryIp"`
			MAC        string `json:"mac"`
		} `json:"nodes"`
	} `json:"state"`
	Live struct {
		Cloud struct {
			ENIs []struct {
				Status string `json:"status"`
				MAC    string `json:"mac"`
			} `json:"enis"`
		} `json:"cloud"`
	} `json:"live"`
}

// metadataGet asks the metadata service for path from inside the namespace
// at nsPath. The socket is created on the switched thread; http.Client
// would dial on another goroutine, outside the namespace.
func metadataGet(nsPath, path string) (string, error) {
	var conn net.Conn
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		conn, err = net.DialTimeout("tcp", fabric.MetadataAddr.String()+":80", 3*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+fabric.MetadataAddr.String()+path, nil)
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metadata %s: %s: %s", path, resp.Status, body.String())
	}
	return strings.TrimSpace(body.String()), nil
}

func TestSim_UpExecDown(t *testing.T) {
	s := mustSim(t)
	before := simBlackholes(t)

	// Without daemons, so the cloud holds exactly the primary ENIs.
	out := s.mustRun("sim", "up", "--nodes", "2", "--daemons=false")
	for _, want := range []string{"node-1", "node-2", "http://100.100.0.10", "http://100.100.100.200", "credentials.json"} {
		if !strings.Contains(out, want) {
			t.Fatalf("sim up output lacks %q:\n%s", want, out)
		}
	}

	var st statusJSON
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatalf("status -o json: %v", err)
	}
	if len(st.State.Nodes) != 2 || len(st.Live.Cloud.ENIs) != 2 {
		t.Fatalf("status: %d nodes, %d enis, want 2 and 2", len(st.State.Nodes), len(st.Live.Cloud.ENIs))
	}
	node1 := st.State.Nodes[0]
	if text := s.mustRun("sim", "status"); !strings.Contains(text, node1.InstanceID) || !strings.Contains(text, "InUse") {
		t.Fatalf("sim status lacks %s InUse:\n%s", node1.InstanceID, text)
	}
	// The VPC CIDR, 100.100.0.0/16 and vsw-sim-a's IPv6 /64.
	up := simBlackholes(t)
	if len(up) != len(before)+3 || !slices.ContainsFunc(up, func(r string) bool { return strings.HasPrefix(r, "fd00:ac1e:1::/64 ") }) {
		t.Fatalf("while up: sim blackholes %v, want 3 more than %v, fd00:ac1e:1::/64 among them", up, before)
	}

	t.Run("exec sees the node", func(t *testing.T) {
		out := s.mustRun("sim", "exec", "node-1", "--", "ip", "link")
		if !strings.Contains(out, "eth0") || !strings.Contains(out, node1.MAC) {
			t.Fatalf("ip link in node-1 lacks eth0 with %s:\n%s", node1.MAC, out)
		}
	})
	t.Run("exec runs veni in the node", func(t *testing.T) {
		if out := s.mustRun("sim", "exec", "node-1", "--", s.bin, "version"); !strings.HasPrefix(out, "veni ") {
			t.Fatalf("veni version in node-1: %q", out)
		}
	})
	t.Run("exec propagates the exit code", func(t *testing.T) {
		_, err := s.run("sim", "exec", "node-1", "--", "sh", "-c", "exit 7")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("exit code: %v, want 7", err)
		}
	})
	t.Run("metadata answers per node", func(t *testing.T) {
		for _, n := range st.State.Nodes {
			got, err := metadataGet(n.NetNSPath, "/latest/meta-data/instance-id")
			if err != nil || got != n.InstanceID {
				t.Fatalf("%s: instance-id = %q, %v; want %s", n.Name, got, err, n.InstanceID)
			}
		}
	})
	t.Run("second up refused", func(t *testing.T) {
		out, err := s.run("sim", "up")
		if err == nil || !strings.Contains(out, "already running") {
			t.Fatalf("second up: %v\n%s", err, out)
		}
	})
	t.Run("fault round trip", func(t *testing.T) {
		s.mustRun("sim", "fault", "AssignPrivateIpAddresses", "--throttle", "0.5", "--latency", "10ms")
		s.mustRun("sim", "fault", "--clear")
	})

	s.mustRun("sim", "down")
	if left := simNamespaces(t, s.name); len(left) != 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if after := simBlackholes(t); !slices.Equal(after, before) {
		t.Errorf("blackholes after down %v, before up %v", after, before)
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(st.State.PID) + "/cmdline"); err == nil && bytes.Contains(b, []byte("serve")) {
		t.Errorf("sim server %d still running", st.State.PID)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sim dir %s left: %v", s.dir, err)
	}
	if out := s.mustRun("sim", "down"); !strings.Contains(out, "no sim") {
		t.Errorf("second down: %q", out)
	}
}

func TestSim_Down_AfterCrash(t *testing.T) {
	s := mustSim(t)
	before := simBlackholes(t)
	s.mustRun("sim", "up", "--nodes", "1")
	var st statusJSON
	if err := json.Unmarshal([]byte(s.mustRun("sim", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	// kill -9: the server cannot tear anything down itself.
	if err := unix.Kill(st.State.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(st.State.PID) + "/cmdline"); err != nil || len(b) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(simNamespaces(t, s.name)) == 0 {
		t.Fatal("the killed server left no namespaces: the test proves nothing")
	}
	if out, err := s.run("sim", "status"); err == nil {
		t.Fatalf("status after crash succeeded:\n%s", out)
	}
	s.mustRun("sim", "down")
	if left := simNamespaces(t, s.name); len(left) != 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if after := simBlackholes(t); !slices.Equal(after, before) {
		t.Errorf("blackholes after down %v, before up %v", after, before)
	}
}
