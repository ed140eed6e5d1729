package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/eni/sim/pods"
)

// mustLibcni100 builds the driver of e2e/libcni100: a libcni whose newest
// spec is 1.0.0, the one Debian 12's containerd 1.6 vendors.
func mustLibcni100(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "libcni100")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "libcni100"
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build e2e/libcni100: %v\n%s", err, out)
	}
	return bin
}

// oldRuntime is a node's runtime as containerd 1.6 drives it: the driver
// with the files "veni install" wrote.
type oldRuntime struct {
	driver, netns      string
	binDir, confDir    string
	cacheDir           string
	podNS, podName, id string
}

// run runs the driver inside the node's namespace, as a runtime runs its
// plugins there, and returns stdout, stderr and the error.
func (r oldRuntime) run(verb string, p pods.Pod, netnsPath string) (string, string, error) {
	cmd := exec.Command(r.driver, "-conf-dir", r.confDir, "-bin-dir", r.binDir, "-cache-dir", r.cacheDir,
		"-netns", netnsPath, "-id", p.ContainerID, "-pod-namespace", p.Namespace, "-pod-name", p.Name, "-pod-uid", p.UID, verb)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := ns.WithNetNSPath(r.netns, func(ns.NetNS) error { return cmd.Run() })
	return out.String(), errOut.String(), err
}

// mustInstall runs "veni install" into dir with the node's configuration,
// as the DaemonSet's init container does on a node.
func mustInstall(tb testing.TB, veni, nodeConfig, dir string) (binDir, confDir string) {
	tb.Helper()
	binDir, confDir = filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	out, err := exec.Command(veni, "install", "--cni-bin-dir", binDir, "--cni-conf-dir", confDir,
		"--config-dir", filepath.Join(dir, "etc"), "--eni-conf", nodeConfig,
		"--networkmanager-dir", "", "--networkd-dir", "", "--sysctl-dir", "").CombinedOutput()
	if err != nil {
		tb.Fatalf("veni install: %v\n%s", err, out)
	}
	return binDir, confDir
}

// cniIface is an interface of a CNI result.
type cniIface struct {
	Name    string `json:"name"`
	Sandbox string `json:"sandbox"`
}

// withLoopback runs fn with a netlink handle in the namespace at path and
// that namespace's lo.
func withLoopback(tb testing.TB, path string, fn func(*netlink.Handle, netlink.Link) error) {
	tb.Helper()
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = fn(h, lo)
	}
	if err != nil {
		tb.Fatalf("lo in %s: %v", path, err)
	}
}

// Ensure a runtime whose libcni knows spec 1.0.0 at most (Debian 12's
// containerd 1.6, defect 12) runs a pod with what "veni install" writes:
// the loopback plugin brings the sandbox's lo up, veni's result parses, the
// pod reaches a pod added through the current libcni, CHECK passes, and
// both of containerd's DELs release the address. The conflist veni used to
// write (cniVersion 1.1.0) fails there as users saw it fail.
func TestCompat_Libcni100_InstallAddCheckDel(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "2", "--max-pool-size", "4")
	driver := mustLibcni100(t) // after the cluster, which skips without root
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := c.nodes["node-1"]
	dir := t.TempDir()
	binDir, confDir := mustInstall(t, c.bin, node.config, dir)
	rt := oldRuntime{driver: driver, netns: node.netns, binDir: binDir, confDir: confDir, cacheDir: filepath.Join(dir, "cni-cache")}

	out, errOut, err := rt.run("version", pods.Pod{}, "")
	if err != nil {
		t.Fatalf("version: %v\n%s", err, errOut)
	}
	var versions struct {
		Libcni   string   `json:"libcni"`
		Loopback []string `json:"loopback"`
		Veni     []string `json:"veni"`
	}
	if err := json.Unmarshal([]byte(out), &versions); err != nil {
		t.Fatalf("version output: %v\n%s", err, out)
	}
	if versions.Libcni != "1.0.0" || !slices.Contains(versions.Loopback, "0.3.1") || !slices.Contains(versions.Veni, "1.0.0") {
		t.Fatalf("versions %+v: want a libcni at 1.0.0, loopback speaking 0.3.1 and veni 1.0.0", versions)
	}

	old := c.newPod(t, "node-1", "old")
	// Down, so that only the loopback plugin can bring it up.
	withLoopback(t, old.NetNS, func(h *netlink.Handle, lo netlink.Link) error { return h.LinkSetDown(lo) })
	out, errOut, err = rt.run("add", old, old.NetNS)
	if err != nil {
		t.Fatalf("ADD through libcni 1.0.0: %v\n%s", err, errOut)
	}
	var added struct {
		Loopback struct {
			CNIVersion string `json:"cniVersion"`
			IPs        []struct {
				Address string `json:"address"`
			} `json:"ips"`
		} `json:"loopback"`
		Result struct {
			CNIVersion string     `json:"cniVersion"`
			Interfaces []cniIface `json:"interfaces"`
			IPs        []struct {
				Address string `json:"address"`
			} `json:"ips"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("ADD output: %v\n%s", err, out)
	}
	if added.Loopback.CNIVersion != "0.3.1" || len(added.Loopback.IPs) == 0 || added.Loopback.IPs[0].Address != "127.0.0.1/8" {
		t.Fatalf("loopback result %+v", added.Loopback)
	}
	withLoopback(t, old.NetNS, func(_ *netlink.Handle, lo netlink.Link) error {
		if lo.Attrs().Flags&net.FlagUp == 0 {
			t.Error("lo still down after the loopback plugin's ADD")
		}
		return nil
	})
	r := added.Result
	if r.CNIVersion != "1.0.0" || len(r.IPs) != 1 || !slices.Contains(r.Interfaces, cniIface{Name: "eth0", Sandbox: old.NetNS}) {
		t.Fatalf("veni's result through libcni 1.0.0: %s", out)
	}
	prefix, err := netip.ParsePrefix(r.IPs[0].Address)
	if err != nil || prefix.Bits() != 32 {
		t.Fatalf("pod address %q: %v", r.IPs[0].Address, err)
	}
	oldPod := testPod{node: "node-1", pod: old, ip: prefix.Addr()}

	current, _, err := c.add(ctx, "node-1", c.newPod(t, "node-1", "current"))
	if err != nil {
		t.Fatalf("ADD through the current libcni: %v", err)
	}
	if fails := probeAll(ctx, []testPod{oldPod, current}); len(fails) > 0 {
		t.Fatalf("pods cannot connect:\n%s", strings.Join(fails, "\n"))
	}
	if _, errOut, err := rt.run("check", old, old.NetNS); err != nil {
		t.Fatalf("CHECK through libcni 1.0.0: %v\n%s", err, errOut)
	}
	c.mustVerify(t, "node-1")

	// containerd deletes twice: with the netns on StopPodSandbox, without
	// it on RemovePodSandbox.
	for _, netnsPath := range []string{old.NetNS, ""} {
		if _, errOut, err := rt.run("del", old, netnsPath); err != nil {
			t.Fatalf("DEL (netns %q) through libcni 1.0.0: %v\n%s", netnsPath, err, errOut)
		}
	}
	if l := c.ipamList(t, "node-1"); len(l.Allocations) != 1 || l.Allocations[0].IP != current.ip.String() {
		t.Fatalf("after DEL of the old runtime's pod, allocations %+v, want only %s", l.Allocations, current.ip)
	}

	// What users saw with the conflist veni wrote before: cniVersion
	// 1.1.0, which this libcni cannot read a result of. The runtime then
	// deletes the sandbox, and that DEL must free the address.
	conflist, err := os.ReadFile(filepath.Join(confDir, "10-veni.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	rt.confDir = filepath.Join(dir, "net.d-1.1.0")
	if err := os.MkdirAll(rt.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	newer := bytes.Replace(conflist, []byte(`"cniVersion": "1.0.0"`), []byte(`"cniVersion": "1.1.0"`), 1)
	if bytes.Equal(newer, conflist) {
		t.Fatalf("no cniVersion 1.0.0 in the installed conflist:\n%s", conflist)
	}
	if err := os.WriteFile(filepath.Join(rt.confDir, "10-veni.conflist"), newer, 0o644); err != nil {
		t.Fatal(err)
	}
	failing := c.newPod(t, "node-1", "failing")
	if _, errOut, err := rt.run("add", failing, failing.NetNS); err == nil || !strings.Contains(errOut, `unsupported CNI result version "1.1.0"`) {
		t.Fatalf("ADD with a 1.1.0 conflist through libcni 1.0.0: %v, %s; want the error users saw", err, errOut)
	}
	if _, errOut, err := rt.run("del", failing, failing.NetNS); err != nil {
		t.Fatalf("DEL after the failed ADD: %v\n%s", err, errOut)
	}
	if l := c.ipamList(t, "node-1"); len(l.Allocations) != 1 {
		t.Fatalf("the failed sandbox's DEL left allocations %+v", l.Allocations)
	}

	if _, err := node.rt.Del(ctx, current.pod); err != nil {
		t.Fatal(err)
	}
	c.mustVerify(t, "node-1")
}
