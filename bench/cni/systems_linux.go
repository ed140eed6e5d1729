package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/veni-cni/veni/config"
	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/store"
)

// refBaseline is the system every ratio is taken against.
const refBaseline = "ptp+host-local"

// system is one CNI under test: a node namespace with a conflist, and the
// libcni runtime that adds pods to it.
type system struct {
	name    string
	rt      *pods.Runtime
	podNS   func(seq int) string // name of the seq'th pod's namespace
	close   func() error         // removes the node and all it holds
	nextSeq int
	ctl     *simcluster.Client // the sim's control endpoint (exclusive rows)
}

// simNodeName is the one node veni's sim gets.
const simNodeName = "node-1"

// veniSim names one veni system: its row in the table, its sim and the
// datapath its node is configured with.
type veniSim struct {
	system   string // "veni", or "veni/<datapath>" for an extra row
	simName  string // prefix of the sim's namespaces
	dir      string // the sim's directory
	datapath string // "" keeps veni's default
	// policy: every pod the run adds is selected by the policy world
	// (writePolicyWorld) and compiled before its ADD.
	policy bool
	// stack is the node's ip_stack, "" for veni's default (ipv4): "dual"
	// or "ipv6" on the sim's default vSwitch, which has IPv6.
	stack string
}

// dualRow and ipv6Row are the rows of veni with ip_stack dual and ipv6 on
// the plain datapath, compared with row veni/plain.
const (
	dualRow = "veni/dual"
	ipv6Row = "veni/ipv6"
)

// policyRow is the row of veni with policy, compared with row veni.
const policyRow = "veni/policy"

// veniSims are the veni systems of a run: veni as configured, then one
// extra row per other datapath asked for. An extra sim is named
// "<name>-<datapath>" in "<dir>/sim-<datapath>", which hack/bench.sh knows.
func veniSims(o options) []veniSim {
	out := []veniSim{{system: "veni", simName: o.name, dir: filepath.Join(o.workDir, "sim"), datapath: o.datapath}}
	for _, dp := range strings.Split(o.extraDatapaths, ",") {
		dp = strings.TrimSpace(dp)
		if dp == "" || dp == o.datapath {
			continue
		}
		out = append(out, veniSim{system: "veni/" + dp, simName: o.name + "-" + dp, dir: filepath.Join(o.workDir, "sim-"+dp), datapath: dp})
	}
	if o.dual {
		out = append(out, veniSim{system: dualRow, simName: o.name + "-dual", dir: filepath.Join(o.workDir, "sim-dual"), datapath: config.DatapathPlain, stack: config.IPStackDual})
	}
	if o.ipv6 {
		out = append(out, veniSim{system: ipv6Row, simName: o.name + "-ipv6", dir: filepath.Join(o.workDir, "sim-ipv6"), datapath: config.DatapathPlain, stack: config.IPStackV6})
	}
	if o.policy {
		out = append(out, veniSim{system: policyRow, simName: o.name + "-pol", dir: filepath.Join(o.workDir, "sim-policy"), datapath: o.datapath, policy: true})
	}
	return out
}

// startVeni brings up a one-node sim whose pool holds at least batch free
// addresses (a batch at parallelism 8 never takes the cold path), and
// returns it as a system once the pool is warm.
func startVeni(ctx context.Context, o options, v veniSim) (*system, error) {
	// max_pool_size at twice the batch: after the first batch the pool holds
	// the batch and its refill, and neither the daemon nor the cloud has
	// work to do while the benchmark runs.
	args := []string{"--min-pool-size", strconv.Itoa(o.batch), "--max-pool-size", strconv.Itoa(2 * o.batch)}
	if v.datapath != "" {
		args = append(args, "--datapath", v.datapath)
	}
	if v.stack != "" {
		args = append(args, "--node-config", "ip_stack="+v.stack)
	}
	s, storePath, err := startVeniWith(ctx, o, v, args...)
	if err != nil {
		return nil, err
	}
	if err := waitPool(ctx, storePath, v.stack == config.IPStackV6, o.batch, o.poolWait); err != nil {
		return nil, errors.Join(err, s.close())
	}
	if v.policy {
		pods := o.podsPerSystem()
		if err := writePolicyWorld(v.dir, pods); err != nil {
			return nil, errors.Join(fmt.Errorf("policy world: %w", err), s.close())
		}
		if err := waitPolicyRecords(ctx, storePath, pods, o.poolWait); err != nil {
			return nil, errors.Join(err, s.close())
		}
	}
	return s, nil
}

// startVeniWith brings up v's one-node sim with these "sim up" arguments
// and returns it as a system, with the node's store path.
func startVeniWith(ctx context.Context, o options, v veniSim, upArgs ...string) (_ *system, storePath string, err error) {
	dir := v.dir
	s := &system{name: v.system}
	s.close = func() error {
		out, err := exec.Command(o.veniBin, "sim", "down", "--dir", dir, "--name", v.simName).CombinedOutput()
		if err != nil {
			return fmt.Errorf("veni sim down: %w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	args := append([]string{"sim", "up", "--dir", dir, "--name", v.simName, "--nodes", "1"}, upArgs...)
	up := exec.CommandContext(ctx, o.veniBin, args...)
	if out, err := up.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("veni sim up: %w: %s", err, bytes.TrimSpace(out))
	}
	env, err := simEnv(ctx, o, v)
	if err != nil {
		return nil, "", err
	}
	nodeNS := fabric.NodeNetNSName(v.simName, simNodeName)
	s.rt, err = pods.NewRuntime(pods.Node{
		Name:     v.system,
		NetNS:    fabric.NetNSPath(nodeNS),
		ConfDir:  env["NETCONFPATH"],
		CNIPath:  filepath.SplitList(env["CNI_PATH"]),
		CacheDir: filepath.Join(dir, "cni-cache-bench"),
	})
	if err != nil {
		return nil, "", err
	}
	// Named after the node, so "sim down" removes pods a crash left.
	s.podNS = func(seq int) string { return fmt.Sprintf("%s-pod-bench-%d", nodeNS, seq) }
	var cfg struct {
		StorePath string `json:"store_path"`
	}
	b, err := os.ReadFile(env["VENI_CONFIG"])
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		return nil, "", fmt.Errorf("veni node config: %w", err)
	}
	return s, cfg.StorePath, nil
}

// simEnv reads the node's CNI_PATH, NETCONFPATH and VENI_CONFIG from
// "veni sim env", the sim's public way to name them.
func simEnv(ctx context.Context, o options, v veniSim) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, o.veniBin, "sim", "env", "--dir", v.dir, "--name", v.simName, simNodeName).Output()
	if err != nil {
		return nil, fmt.Errorf("veni sim env: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			env[k] = strings.Trim(v, `'"`)
		}
	}
	for _, k := range []string{"CNI_PATH", "NETCONFPATH", "VENI_CONFIG"} {
		if env[k] == "" {
			return nil, fmt.Errorf("veni sim env: no %s in %q", k, out)
		}
	}
	return env, nil
}

// waitPool waits until the store holds at least want free addresses
// (IPv4, or with six IPv6) on ready ENIs: the daemon fills the pool after
// "sim up" returns.
func waitPool(ctx context.Context, storePath string, six bool, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		free, err := freeIPs(storePath, six)
		if err == nil && free >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("veni pool has %d free addresses after %s, want %d: %v (see the daemon log in the sim dir)", free, timeout, want, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freeIPs(storePath string, six bool) (free int, err error) {
	err = store.View(storePath, func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, e := range enis {
			ready[e.ID] = e.State == store.ENIReady
		}
		ips, err := tx.IPs()
		for _, ip := range ips {
			// One family: on a dual-stack node each pod also takes an
			// IPv6, which the daemon keeps as many of; an IPv6-only
			// node's pods take IPv6 alone.
			if ip.State == store.IPFree && ready[ip.ENIID] && ip.Addr.Is6() == six {
				free++
			}
		}
		return err
	})
	return free, err
}

// refPlugin is a reference main plugin with host-local IPAM.
type refPlugin struct {
	short  string // namespace and file name part
	name   string // table name
	subnet string // host-local range, private and only inside the node namespace
	plugin func(ipam map[string]any) map[string]any
}

var refPlugins = []refPlugin{
	{
		short: "ptp", name: refBaseline, subnet: "10.244.0.0/16",
		plugin: func(ipam map[string]any) map[string]any {
			return map[string]any{"type": "ptp", "ipMasq": false, "ipam": ipam}
		},
	},
	{
		short: "bridge", name: "bridge+host-local", subnet: "10.245.0.0/16",
		plugin: func(ipam map[string]any) map[string]any {
			return map[string]any{"type": "bridge", "bridge": "bench0", "isGateway": true, "ipMasq": false, "ipam": ipam}
		},
	},
}

// startRef creates a plain node namespace and a conflist for a reference
// plugin, its host-local data kept in the work directory.
func startRef(o options, p refPlugin) (_ *system, err error) {
	prefix := o.name + "r-" + p.short
	dir := filepath.Join(o.workDir, p.short)
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, err
	}
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": p.subnet}}},
		"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
		"dataDir": filepath.Join(dir, "host-local"),
	}
	// Debian 12's plugins speak up to CNI 1.0.0.
	conflist := map[string]any{"cniVersion": "1.0.0", "name": "bench-" + p.short, "plugins": []any{p.plugin(ipam)}}
	b, _ := json.MarshalIndent(conflist, "", "  ")
	if err := os.WriteFile(filepath.Join(confDir, "10-"+p.short+".conflist"), b, 0o644); err != nil {
		return nil, err
	}
	nodeNS := prefix + "-node"
	nodePath, err := pods.CreateNetNS(nodeNS)
	if err != nil {
		return nil, err
	}
	s := &system{
		name:  p.name,
		podNS: func(seq int) string { return fmt.Sprintf("%s-pod-%d", prefix, seq) },
		close: func() error { return pods.DeleteNetNS(nodeNS) },
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	s.rt, err = pods.NewRuntime(pods.Node{
		Name:     p.name,
		NetNS:    nodePath,
		ConfDir:  confDir,
		CNIPath:  []string{o.cniPath},
		CacheDir: filepath.Join(o.workDir, "cni-cache-"+p.short),
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
