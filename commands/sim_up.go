package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric"
)

// simTopologyOptions describe the sim to build; "up" passes them to the
// server it starts.
type simTopologyOptions struct {
	nodes        int
	instanceType string
	vswitches    string
	attachDelay  time.Duration
	pool         simPoolOptions
}

func (o *simTopologyOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.nodes, "nodes", 2, "number of nodes (ECS instances), named node-1 … node-N")
	fs.StringVar(&o.instanceType, "instance-type", "ecs.g7.xlarge", "instance type of every node (sets its ENI and IP quotas)")
	fs.StringVar(&o.vswitches, "vswitches", "", "vSwitches as id=cidr[@zone],... inside 172.30.0.0/16 (default vsw-sim-a=172.30.1.0/24,vsw-sim-b=172.30.2.0/24); nodes go round-robin over them")
	fs.DurationVar(&o.attachDelay, "attach-delay", sim.DefaultConfig().AttachDelay, "how long an ENI stays Attaching")
	fs.IntVar(&o.pool.minPool, "min-pool-size", 2, "min_pool_size of every node's veni config: idle addresses the daemon keeps")
	fs.IntVar(&o.pool.maxPool, "max-pool-size", 5, "max_pool_size of every node's veni config: idle addresses above it are reclaimed")
	fs.BoolVar(&o.pool.daemons, "daemons", true, "run a veni daemon in every node (false: the CNI plugin alone, cold path included)")
	fs.StringVar(&o.pool.datapath, "datapath", "", "datapath of every node's veni config (default: veni's default)")
	fs.StringArrayVar(&o.pool.extra, "node-config", nil, "extra field of every node's veni config as key=value (value parsed as JSON when it is JSON), e.g. idle_ip_reclaim_after=30s; repeatable")
	fs.DurationVar(&o.pool.syncInterval, "daemon-sync-interval", 10*time.Second, "the node daemons' --sync-interval")
}

func (o *simTopologyOptions) args() []string {
	a := []string{"--nodes", strconv.Itoa(o.nodes), "--instance-type", o.instanceType, "--attach-delay", o.attachDelay.String(),
		"--min-pool-size", strconv.Itoa(o.pool.minPool), "--max-pool-size", strconv.Itoa(o.pool.maxPool),
		"--daemons=" + strconv.FormatBool(o.pool.daemons)}
	if o.pool.datapath != "" {
		a = append(a, "--datapath", o.pool.datapath)
	}
	for _, kv := range o.pool.extra {
		a = append(a, "--node-config", kv)
	}
	a = append(a, "--daemon-sync-interval", o.pool.syncInterval.String())
	if o.vswitches != "" {
		a = append(a, "--vswitches", o.vswitches)
	}
	return a
}

// config turns the options into the cloud's configuration.
func (o *simTopologyOptions) config() (sim.Config, error) {
	cfg := sim.DefaultConfig()
	if o.nodes < 1 {
		return cfg, fmt.Errorf("--nodes %d: need at least 1", o.nodes)
	}
	if _, err := o.pool.extraFields(); err != nil {
		return cfg, err
	}
	if o.pool.minPool < 0 || o.pool.maxPool < o.pool.minPool {
		return cfg, fmt.Errorf("--min-pool-size %d --max-pool-size %d: need 0 <= min <= max", o.pool.minPool, o.pool.maxPool)
	}
	cfg.AttachDelay = o.attachDelay
	if o.vswitches != "" {
		vsws, err := parseVSwitches(o.vswitches, cfg.VSwitches[0].ZoneID)
		if err != nil {
			return cfg, err
		}
		cfg.VSwitches = vsws
	}
	return cfg, nil
}

// parseVSwitches parses "id=cidr[@zone],...".
func parseVSwitches(s, defaultZone string) ([]sim.VSwitchSpec, error) {
	var out []sim.VSwitchSpec
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, rest, ok := strings.Cut(item, "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("--vswitches %q: want id=cidr[@zone]", item)
		}
		cidrStr, zone, _ := strings.Cut(rest, "@")
		if zone == "" {
			zone = defaultZone
		}
		cidr, err := netip.ParsePrefix(cidrStr)
		if err != nil {
			return nil, fmt.Errorf("--vswitches %q: %w", item, err)
		}
		out = append(out, sim.VSwitchSpec{ID: id, ZoneID: zone, CIDR: cidr})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--vswitches %q: no vswitch", s)
	}
	return out, nil
}

type simUpOptions struct {
	*simGlobalOptions
	topo    simTopologyOptions
	timeout time.Duration
}

func (o *simUpOptions) AddFlags(fs *pflag.FlagSet) {
	o.topo.AddFlags(fs)
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "how long to wait for the sim to be ready")
}

func newSimUpCommand(g *simGlobalOptions) *cobra.Command {
	o := &simUpOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the simulated VPC in the background and print how to use it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := o.topo.config(); err != nil {
				return err
			}
			return runSimUp(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runSimUp(ctx context.Context, w io.Writer, o *simUpOptions) error {
	if os.Geteuid() != 0 {
		return errors.New("sim up needs root (it creates network namespaces)")
	}
	if st, err := runningSim(o.dir); err == nil {
		return fmt.Errorf("%w: %s (pid %d, dir %s); run veni sim down first", errSimRunning, st.Name, st.PID, o.dir)
	}
	lock, err := lockSimName(o.name)
	if err != nil {
		return fmt.Errorf("%w; run veni sim down (with that sim's --dir)", err)
	}
	// The server takes the lock itself; holding it here only checks.
	lock.Close()
	if _, err := os.Stat(fabric.NetNSPath(fabric.VPCNetNSName(o.name))); err == nil {
		return fmt.Errorf("%w: namespace %s exists without a server (a crashed sim?); run veni sim down --name %s", errSimRunning, fabric.VPCNetNSName(o.name), o.name)
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("sim dir: %w", err)
	}
	// A state file left by a crash would look like a ready server.
	_ = os.Remove(filepath.Join(o.dir, simStateFile))

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	logPath := filepath.Join(o.dir, simLogFile)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open sim log: %w", err)
	}
	defer logFile.Close()
	args := append([]string{"sim", "serve", "--dir", o.dir, "--name", o.name}, o.topo.args()...)
	// Not CommandContext: the server must outlive this command.
	server := exec.Command(self, args...)
	server.Stdout, server.Stderr = logFile, logFile
	server.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := server.Start(); err != nil {
		return fmt.Errorf("start sim server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()

	st, err := waitSimReady(ctx, o.dir, server.Process.Pid, exited, o.timeout)
	if err != nil {
		_ = server.Process.Signal(syscall.SIGTERM)
		return fmt.Errorf("%w\n--- %s ---\n%s", err, logPath, tailFile(logPath, 20))
	}
	printSimUp(w, st)
	return nil
}

// waitSimReady waits until the server published its state (it does so once
// every listener is up) and its control endpoint answers.
func waitSimReady(ctx context.Context, dir string, pid int, exited <-chan error, timeout time.Duration) (simState, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return simState{}, fmt.Errorf("sim server exited during start-up: %v", err)
		case <-ctx.Done():
			return simState{}, fmt.Errorf("sim server not ready after %s", timeout)
		case <-tick.C:
		}
		st, err := readSimState(dir)
		if err != nil || st.PID != pid {
			continue
		}
		if err := simControl(ctx, st, "GET", "/v1/state", nil, nil); err == nil {
			return st, nil
		}
	}
}

func printSimUp(w io.Writer, st simState) {
	fmt.Fprintf(w, "sim %s is up (server pid %d, log %s)\n\n", st.Name, st.PID, filepath.Join(st.Dir, simLogFile))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tINSTANCE\tTYPE\tNETNS\tPRIMARY IP\tMAC\tVSWITCH")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.InstanceID, n.InstanceType, n.NetNS, n.PrimaryIP, n.MAC, n.VSwitchID)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nregion       %s, vpc %s (%s)\n", st.Region, st.VPCID, st.VPCCIDR)
	fmt.Fprintf(w, "API          %s (scheme http, region %s; reachable from the nodes)\n", st.APIEndpoint, st.Region)
	fmt.Fprintf(w, "metadata     %s (answers per node, by source address)\n", st.MetadataEndpoint)
	fmt.Fprintf(w, "control      %s (veni sim status|fault)\n", st.ControlEndpoint)
	fmt.Fprintf(w, "credentials  %s\n\n", st.Credentials)
	first := "node-1"
	if len(st.Nodes) > 0 {
		first = st.Nodes[0].Name
	}
	fmt.Fprintf(w, "Run commands on a node:  veni sim exec %s -- ip -br addr\n", first)
	fmt.Fprintf(w, "                         veni sim exec %s -- veni eni list --endpoint %s --scheme http --region %s --credentials %s\n",
		first, strings.TrimPrefix(st.APIEndpoint, "http://"), st.Region, st.Credentials)
	fmt.Fprintln(w, "Stop and clean up:       veni sim down")
}

// tailFile returns the last n lines of a file, for error reports.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
