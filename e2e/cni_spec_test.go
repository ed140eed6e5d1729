package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/eni/sim/pods"
)

// Ensure a node whose daemon is stopped still serves pods: the first ADD
// finds the pool empty and grows it through the allocator lease itself (the
// cold path); a later ADD reuses a free address without calling the cloud.
func TestCNI_DaemonStopped_ColdThenWarm(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--daemons=false", "--min-pool-size", "0", "--max-pool-size", "3")
	ctx := context.Background()
	if l := c.ipamList(t, "node-1"); len(l.ENIs) != 0 || len(l.IPs) != 0 {
		t.Fatalf("pool not empty before the first ADD: %+v", l)
	}
	before := c.cloudCalls(t)
	cold := c.newPod(t, "node-1", "cold")
	if _, _, err := c.add(ctx, "node-1", cold); err != nil {
		t.Fatalf("cold ADD: %v", err)
	}
	afterCold := c.cloudCalls(t)
	for _, action := range []string{"CreateNetworkInterface", "AttachNetworkInterface"} {
		if afterCold[action] <= before[action] {
			t.Fatalf("cold ADD made no %s call: before %v after %v", action, before, afterCold)
		}
	}
	l := c.ipamList(t, "node-1")
	if l.free() == 0 {
		t.Fatalf("cold ADD grew the pool by one address only (want a batch): %+v", l.IPs)
	}
	warm := c.newPod(t, "node-1", "warm")
	if _, _, err := c.add(ctx, "node-1", warm); err != nil {
		t.Fatalf("warm ADD: %v", err)
	}
	afterWarm := c.cloudCalls(t)
	for action, n := range afterWarm {
		if n != afterCold[action] {
			t.Fatalf("warm ADD called the cloud (%s: %d -> %d)", action, afterCold[action], n)
		}
	}
	c.mustVerify(t, "node-1")
}

// pluginRun executes the plugin once inside the node's namespace with the
// given CNI environment and stdin, as a runtime would, and returns its
// stdout and exit code.
func (c *cluster) pluginRun(tb testing.TB, node string, env map[string]string, stdin []byte) (map[string]any, int) {
	tb.Helper()
	cmd := exec.Command(filepath.Join(c.dir, "cni-bin", "veni"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errOut
	err := ns.WithNetNSPath(c.nodes[node].netns, func(ns.NetNS) error { return cmd.Run() })
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	var res map[string]any
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			tb.Fatalf("plugin stdout is not JSON: %v\n%s\nstderr: %s", err, out.String(), errOut.String())
		}
	}
	return res, code
}

// Ensure bad input gets the CNI spec's error code and a message that says
// what to fix, and changes nothing on the node.
func TestCNI_BadInput(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "2", "--max-pool-size", "3")
	node := c.nodes["node-1"]
	good := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"veni","type":"veni","config":%q}`, node.config)
	pod := c.newPod(t, "node-1", "bad")
	baseEnv := func() map[string]string {
		return map[string]string{
			"CNI_COMMAND":     "ADD",
			"CNI_CONTAINERID": "bad-input-container",
			"CNI_NETNS":       pod.NetNS,
			"CNI_IFNAME":      "eth0",
			"CNI_PATH":        filepath.Join(c.dir, "cni-bin"),
			"CNI_ARGS":        "K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=bad",
		}
	}
	badConfig := filepath.Join(t.TempDir(), "veni.json")
	if err := os.WriteFile(badConfig, []byte(`{"max_pool_size": -3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := c.ipamList(t, "node-1")
	cases := []struct {
		name  string
		env   func(map[string]string)
		stdin string
		code  float64
		msg   string
	}{
		{"stdin not json", nil, `{"cniVersion":`, 6, ""},
		{"unsupported version", nil, `{"cniVersion":"9.9.9","name":"veni","type":"veni"}`, 1, ""},
		{"missing container id", func(e map[string]string) { delete(e, "CNI_CONTAINERID") }, good, 4, "CNI_CONTAINERID"},
		{"missing ifname", func(e map[string]string) { delete(e, "CNI_IFNAME") }, good, 4, "CNI_IFNAME"},
		{"netns does not exist", func(e map[string]string) { e["CNI_NETNS"] = "/run/netns/veni-e2e-no-such-ns" }, good, 4, "network namespace"},
		{"config file missing", nil, `{"cniVersion":"1.1.0","name":"veni","type":"veni","config":"/nonexistent/veni.json"}`, 7, "veni.json"},
		{"config value invalid", nil, fmt.Sprintf(`{"cniVersion":"1.1.0","name":"veni","type":"veni","config":%q}`, badConfig), 7, "max_pool_size"},
		{"mtu invalid", nil, fmt.Sprintf(`{"cniVersion":"1.1.0","name":"veni","type":"veni","mtu":100,"config":%q}`, node.config), 7, "mtu"},
		{"timeout invalid", nil, fmt.Sprintf(`{"cniVersion":"1.1.0","name":"veni","type":"veni","timeout":"soon","config":%q}`, node.config), 7, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := baseEnv()
			if tc.env != nil {
				tc.env(env)
			}
			res, code := c.pluginRun(t, "node-1", env, []byte(tc.stdin))
			if code == 0 {
				t.Fatalf("exit 0, want a CNI error; result %v", res)
			}
			if res["code"] != tc.code {
				t.Fatalf("code %v, want %v: %v", res["code"], tc.code, res)
			}
			text := fmt.Sprint(res["msg"], " ", res["details"])
			if tc.msg != "" && !strings.Contains(text, tc.msg) {
				t.Fatalf("message %q does not mention %q", text, tc.msg)
			}
		})
	}
	after := c.ipamList(t, "node-1")
	if len(after.Allocations) != 0 || len(after.IPs) != len(before.IPs) {
		t.Fatalf("bad input changed the store: before %+v after %+v", before, after)
	}
	links := c.mustRun("sim", "exec", "node-1", "--", "ip", "-br", "link")
	if hostVeths(links) != 0 {
		t.Fatalf("bad input left a host veth:\n%s", links)
	}
	c.mustVerify(t, "node-1")

	// And the good input works, so the cases above failed for their reason.
	if res, code := c.pluginRun(t, "node-1", baseEnv(), []byte(good)); code != 0 {
		t.Fatalf("good ADD failed: %v", res)
	}
	env := baseEnv()
	env["CNI_COMMAND"] = "DEL"
	if res, code := c.pluginRun(t, "node-1", env, []byte(good)); code != 0 {
		t.Fatalf("DEL failed: %v", res)
	}
}

// Ensure CHECK passes on a healthy pod and names what is missing on a broken
// one, STATUS reports a usable plugin, and GC releases every attachment the
// runtime no longer lists (cni.dev/valid-attachments) and nothing else.
func TestCNI_CheckStatusGC(t *testing.T) {
	c := mustCluster(t, "--nodes", "1", "--min-pool-size", "2", "--max-pool-size", "4")
	ctx := context.Background()
	rt := c.nodes["node-1"].rt
	keep := c.newPod(t, "node-1", "keep")
	drop := c.newPod(t, "node-1", "drop")
	kept, _, err := c.add(ctx, "node-1", keep)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.add(ctx, "node-1", drop); err != nil {
		t.Fatal(err)
	}
	if err := rt.Check(ctx, keep); err != nil {
		t.Fatalf("CHECK on a healthy pod: %v", err)
	}
	if err := rt.Status(ctx); err != nil {
		t.Fatalf("STATUS: %v", err)
	}

	// Break the pod's host route: CHECK must say so.
	c.mustRun("sim", "exec", "node-1", "--", "ip", "route", "del", kept.ip.String()+"/32")
	err = rt.Check(ctx, keep)
	if err == nil || !strings.Contains(err.Error(), "route") {
		t.Fatalf("CHECK after removing the host route: %v, want an error naming the route", err)
	}

	if err := rt.GC(ctx, []pods.Pod{keep}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	l := c.ipamList(t, "node-1")
	if len(l.Allocations) != 1 || l.Allocations[0].IP != kept.ip.String() {
		t.Fatalf("after GC keeping only %s: allocations %+v", kept.ip, l.Allocations)
	}
	links := c.mustRun("sim", "exec", "node-1", "--", "ip", "-br", "link")
	if n := hostVeths(links); n != 1 {
		t.Fatalf("after GC want 1 host veth, got %d:\n%s", n, links)
	}

	// libcni's GC first synthesizes DELs from its own cache; the plugin's
	// GC verb must stand on its own, so call it directly as well.
	direct := c.newPod(t, "node-1", "direct")
	if _, _, err := c.add(ctx, "node-1", direct); err != nil {
		t.Fatal(err)
	}
	gc := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"veni","type":"veni","config":%q,"cni.dev/valid-attachments":[{"containerID":%q,"ifname":"eth0"}]}`,
		c.nodes["node-1"].config, keep.ContainerID)
	env := map[string]string{"CNI_COMMAND": "GC", "CNI_PATH": filepath.Join(c.dir, "cni-bin")}
	if res, code := c.pluginRun(t, "node-1", env, []byte(gc)); code != 0 {
		t.Fatalf("GC verb: %v", res)
	}
	if l := c.ipamList(t, "node-1"); len(l.Allocations) != 1 || l.Allocations[0].IP != kept.ip.String() {
		t.Fatalf("after the GC verb keeping only %s: allocations %+v", kept.ip, l.Allocations)
	}

	if _, err := rt.Del(ctx, keep); err != nil {
		t.Fatal(err)
	}
	c.mustVerify(t, "node-1")
}
