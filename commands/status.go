package commands

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/daemon"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/store"
)

type statusOptions struct {
	config string
	output string
}

func (o *statusOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.config, "config", envOr("VENI_CONFIG", node.DefaultConfigPath), "node configuration file; names the store [$VENI_CONFIG]")
	fs.StringVarP(&o.output, "output", "o", "text", "text or json")
}

func newStatusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this node at a glance: instance, datapath and why, fast path counters, pool, daemon",
		Long: `Reads the node's configuration, its store and its eBPF pins, and changes
nothing. Run it in the node's network namespace (on a simulated node:
veni sim exec NODE -- veni status --config <node's veni.json>).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "text" && o.output != "json" {
				return fmt.Errorf("output %q: want text or json", o.output)
			}
			env, err := node.Load(o.config)
			if err != nil {
				return err
			}
			rep := gatherStatus(env, time.Now())
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return printStatus(cmd.OutOrStdout(), rep)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// statusReport is everything "veni status" shows; -o json prints it as is.
type statusReport struct {
	Config   string          `json:"config"`
	Store    string          `json:"store"`
	Node     *store.NodeInfo `json:"node,omitempty"`
	Datapath statusDatapath  `json:"datapath"`
	Pool     statusPool      `json:"pool"`
	Trunk    *statusTrunk    `json:"trunk,omitempty"`
	Policy   statusPolicy    `json:"policy"`
	Daemon   statusDaemon    `json:"daemon"`
	Problems []string        `json:"problems,omitempty"` // what an operator should look at first

	// Mode is the configured pool mode ("ip" or "prefix"), MaxPods the
	// shared-ENI pods the node holds in it (prefix mode: Terway's
	// (IPv4PerAdapter−1)×16×(TotalAdapters−1)).
	Mode    string `json:"mode"`
	MaxPods int    `json:"maxPods,omitempty"`
	// ENIMode is "shared" or "exclusive" (exclusive_eni_type eniOnly: one
	// ENI per pod, MaxPods = the ENIs besides the primary).
	ENIMode string `json:"eniMode"`

	// Stack is eni_conf's ip_stack ("ipv4" or "dual"); StackNotes say
	// what dual stack does not do on this node (an instance type with
	// fewer IPv6 than IPv4 per ENI, IPv6 beside the eBPF fast path).
	Stack      string   `json:"stack"`
	StackNotes []string `json:"stackNotes,omitempty"`

	StoreRecovery *store.Recovery `json:"storeRecovery,omitempty"` // the store replaced a damaged file
	Credentials   string          `json:"credentials"`             // where cloud credentials come from (never the secret)
}

type statusDatapath struct {
	datapath.Decision
	Kernel       string             `json:"kernel"` // "supported", or what the probe found missing
	PinDir       string             `json:"pinDir,omitempty"`
	Pinned       bool               `json:"pinned"` // the pin dir exists
	Endpoints    []statusEndpoint   `json:"endpoints,omitempty"`
	BoundPods    int                `json:"boundPods"`
	ENIIfindexes []int              `json:"eniIfindexes,omitempty"` // ENIs with the program attached
	HostStack    map[string]string  `json:"hostStack,omitempty"`    // prefix → service, cidr or node
	Counters     *fastpath.Counters `json:"counters,omitempty"`
	Error        string             `json:"error,omitempty"`
}

type statusEndpoint struct {
	IP          netip.Addr `json:"ip"`
	Pod         string     `json:"pod"` // namespace/name from the store, "-" when it has none
	HostIfindex int        `json:"hostIfindex"`
	ENIIfindex  int        `json:"eniIfindex"`
	ENITable    int        `json:"eniTable"`
}

// statusPolicy is the NetworkPolicy enforcer's view of this node: each
// endpoint (pod veth) it holds, isolated or not, with its counters.
type statusPolicy struct {
	Enabled bool `json:"enabled"`
	podpolicy.NodeCounters
	Note string `json:"note,omitempty"` // why there are no endpoints
}

type statusPool struct {
	ENIs      []statusENI     `json:"enis"`
	Free      int             `json:"free"`
	Reserved  int             `json:"reserved"`
	Bound     int             `json:"bound"`
	MinIdle   int             `json:"minIdle"`
	MaxIdle   int             `json:"maxIdle"`
	Backoffs  []statusBackoff `json:"backoffs,omitempty"` // active ones only
	Lease     *store.Lease    `json:"allocatorLease,omitempty"`
	LeaseLive bool            `json:"allocatorLeaseLive"` // a live process holds the allocator claim
	UpdatedAt time.Time       `json:"updatedAt,omitzero"`
}

type statusENI struct {
	ID        string     `json:"id"`
	MAC       string     `json:"mac"`
	State     string     `json:"state"`
	PrimaryIP netip.Addr `json:"primaryIp"`
	Free      int        `json:"free"`
	Reserved  int        `json:"reserved"`
	Bound     int        `json:"bound"`
	Owned     bool       `json:"owned"`
	Table     int        `json:"table"`

	Prefixes []netip.Prefix `json:"prefixes,omitempty"` // delegated /28s (prefix mode)

	MissingSince time.Time `json:"missingSince,omitzero"` // the cloud stopped listing it as attached
	Gone         bool      `json:"gone,omitempty"`        // veni decided it is detached: no new pod gets an address there
}

type statusBackoff struct {
	Scope  string    `json:"scope"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until"`
}

type statusDaemon struct {
	PIDs           []int     `json:"pids,omitempty"` // running "veni daemon" processes for this config
	LastPoolUpdate time.Time `json:"lastPoolUpdate,omitzero"`
	Verdict        string    `json:"verdict"`
}

// gatherStatus collects the report. It never fails as a whole: a part it
// cannot read is reported as a problem, because status is what an operator
// runs when things are already broken.
func gatherStatus(env *node.Env, now time.Time) statusReport {
	rep := statusReport{Config: env.ConfigPath, Store: env.Store.Path}
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	var info store.NodeInfo
	err := env.Store.View(func(tx *store.ReadTx) error {
		if r, err := tx.Recovery(); err == nil {
			rep.StoreRecovery = &r
		}
		var err error
		info, err = tx.Node()
		return err
	})
	switch {
	case err == nil:
		rep.Node = &info
	case errors.Is(err, store.ErrNotFound):
		problem("no node facts in the store yet: neither the daemon nor an ADD has run")
	case errors.Is(err, store.ErrDamaged):
		problem("the store is damaged: %v (the next veni process that writes keeps it aside and starts a new one; the daemon then rebuilds the pods' allocations from the host)", err)
	default:
		problem("read node facts: %v", err)
	}
	if r := rep.StoreRecovery; r != nil {
		problem("the store was replaced at %s because the old file was damaged (%s); it is kept at %s. Allocations were rebuilt from the host's pods: check them with veni ipam list",
			r.Time.Format(time.RFC3339), r.Reason, r.KeptAs)
	}

	listing, err := readListing(env.Store)
	if err != nil {
		problem("read pool: %v", err)
	}
	rep.Pool = summarizePool(listing, now)
	rep.Trunk = gatherTrunk(listing, env.Config, info, problem)
	for _, b := range rep.Pool.Backoffs {
		problem("pool growth backed off for %s until %s: %s", b.Scope, b.Until.Format(time.RFC3339), b.Reason)
	}

	if src, err := env.CredentialSource(); err != nil {
		rep.Credentials = "none"
		problem("cloud credentials: %v (the cold path of an ADD cannot grow the pool on this host)", err)
	} else {
		rep.Credentials = src
	}
	for _, w := range env.CredentialWarnings() {
		problem("cloud credentials: %s", w)
	}

	rep.Mode = env.Config.PoolMode()
	if m := listing.Pool.Mode; m != "" && m != rep.Mode {
		problem("the store is in %s mode but eni_conf asks for %s mode: ADDs that need the pool and the daemon refuse to run (a node keeps its mode; drain it and reset its store to switch)", m, rep.Mode)
	}
	rep.ENIMode = env.Config.ENIMode()
	if env.Config.ExclusiveENI() && env.Config.PolicyEnabled() {
		problem("NetworkPolicy is not enforced on exclusive ENI pods: their traffic does not cross a host veth where veni's enforcer sits")
	}
	if m := listing.Pool.ENIMode; m != "" && m != rep.ENIMode {
		problem("the store is in %s ENI mode but the node's configuration asks for %s ENI mode (exclusive_eni_type, from the node label k8s.aliyun.com/exclusive-mode-eni-type): ADDs and the daemon refuse to run (a node keeps its ENI mode; drain it and reset its store to switch)", m, rep.ENIMode)
	}
	if rep.Node != nil {
		rep.MaxPods = ipam.MaxPods(node.IPAMNode(info), env.Config)
		if msg := neighbourProblem(rep.MaxPods, info.ENIs); msg != "" {
			problem("%s", msg)
		}
	}
	// A pod on its own ENI (exclusive mode) has no fast path: its
	// traffic never crosses the node.
	rep.Datapath = gatherDatapath(env, info.InstanceID, sharedAllocations(listing.ENIs, listing.Allocations), problem)
	rep.Stack = env.Config.IPStack
	if m := listing.Pool.Stack; m != "" && m != rep.Stack {
		problem("the store holds %s addresses but eni_conf ip_stack is %s: ADDs that need the pool and the daemon refuse to run (a node keeps its stack; drain it and reset its store to switch)", m, rep.Stack)
	}
	if env.Config.DualStack() {
		if rep.Node != nil {
			if msg := ipam.StackWarning(node.IPAMNode(info), env.Config); msg != "" {
				rep.StackNotes = append(rep.StackNotes, msg)
				problem("%s", msg)
			}
		}
		if rep.Datapath.EBPF() {
			rep.StackNotes = append(rep.StackNotes, "pods' IPv6 stays on the plain datapath (the eBPF fast path takes IPv4 only)")
		}
	}
	rep.Policy = gatherPolicy(env, info.InstanceID, problem)
	rep.Daemon = gatherDaemon(env.ConfigPath, listing.Pool.UpdatedAt, now)
	if len(rep.Daemon.PIDs) == 0 {
		problem("no veni daemon runs for %s: the pool is not refilled nor garbage-collected", env.ConfigPath)
	}
	return rep
}

// neighbourProblem checks the kernel's neighbour table limits against the
// node's pod capacity; "" when they suffice or this namespace cannot see
// them (a simulated node: the simulator raises them for the machine).
func neighbourProblem(maxPods, enis int) string {
	l, err := netplumb.ReadNeighbourLimits()
	if errors.Is(err, netplumb.ErrNoNeighbourLimits) {
		return ""
	}
	if err != nil {
		return "neighbour table limits: " + err.Error()
	}
	need := netplumb.NeighbourEntries(maxPods, enis)
	msg := netplumb.NeighbourShortfall(l, need)
	if msg == "" {
		return ""
	}
	sl := netplumb.SuggestedNeighbourLimits(need)
	return fmt.Sprintf("%s; raise them with veni install, or sysctl -w net.ipv4.neigh.default.gc_thresh1=%d net.ipv4.neigh.default.gc_thresh2=%d net.ipv4.neigh.default.gc_thresh3=%d",
		msg, sl.Thresh1, sl.Thresh2, sl.Thresh3)
}

func summarizePool(l ipamListing, now time.Time) statusPool {
	p := statusPool{MinIdle: l.Pool.MinIdle, MaxIdle: l.Pool.MaxIdle, UpdatedAt: l.Pool.UpdatedAt, Lease: l.Lease, LeaseLive: l.LeaseHeld}
	for _, e := range l.ENIs {
		if e.Dedicated() {
			continue // a pod's own ENI (gatherTrunk shows members), not the pool's
		}
		se := statusENI{ID: e.ID, MAC: e.MAC, State: string(e.State), PrimaryIP: e.PrimaryIP, Owned: e.Owned, Table: e.Table, Prefixes: e.Prefixes}
		if e.Missing() {
			se.MissingSince = e.MissingSince
			se.Gone = e.Gone()
		}
		for _, ip := range l.IPs {
			if ip.ENIID != e.ID {
				continue
			}
			switch ip.State {
			case store.IPFree:
				se.Free++
			case store.IPReserved:
				se.Reserved++
			case store.IPBound:
				se.Bound++
			}
		}
		p.Free, p.Reserved, p.Bound = p.Free+se.Free, p.Reserved+se.Reserved, p.Bound+se.Bound
		p.ENIs = append(p.ENIs, se)
	}
	for _, b := range l.Pool.ActiveBackoffs(now) {
		p.Backoffs = append(p.Backoffs, statusBackoff{Scope: b.Scope, Reason: b.Reason, Until: b.Until})
	}
	return p
}

// gatherDatapath reads the decision and, when the node has pins, what they
// hold. Opening only reads: it reuses the pinned maps and creates nothing
// when the pin dir exists (and it is not opened when it does not).
func gatherDatapath(env *node.Env, instanceID string, allocs []store.Allocation, problem func(string, ...any)) statusDatapath {
	probe := fastpath.Supported()
	dp := statusDatapath{
		Decision: datapath.Decide(env.Config.DatapathMode(), func() error { return probe }),
		Kernel:   "supported",
	}
	if probe != nil {
		dp.Kernel = probe.Error()
	}
	for _, a := range allocs {
		if a.State == store.IPBound {
			dp.BoundPods++
		}
	}
	pinDir, err := datapath.PinDir(instanceID)
	if err != nil {
		return dp
	}
	dp.PinDir = pinDir
	if _, err := os.Stat(pinDir); err != nil {
		if dp.EBPF() && dp.BoundPods > 0 {
			problem("datapath is ebpf but %s has no pins: %d pods run on the plain datapath", pinDir, dp.BoundPods)
		}
		return dp
	}
	dp.Pinned = true
	if !dp.EBPF() {
		problem("datapath is plain but fast path pins remain in %s (the daemon removes them at start)", pinDir)
	}
	fp, err := fastpath.Open(fastpath.Options{PinDir: pinDir})
	if err != nil {
		dp.Error = err.Error()
		problem("open fast path pins: %v", err)
		return dp
	}
	defer fp.Close()
	if c, err := fp.Counters(); err == nil {
		dp.Counters = &c
	} else {
		problem("read fast path counters: %v", err)
	}
	if dp.ENIIfindexes, err = fp.ENIs(); err != nil {
		problem("list eni programs: %v", err)
	}
	if hs, err := fp.HostStackPrefixes(); err == nil {
		dp.HostStack = make(map[string]string, len(hs))
		for p, why := range hs {
			dp.HostStack[p.String()] = why
		}
	} else {
		problem("read host-stack destinations: %v", err)
	}
	eps, err := fp.Endpoints()
	if err != nil {
		problem("list endpoints: %v", err)
	}
	byIP := make(map[netip.Addr]store.Allocation, len(allocs))
	for _, a := range allocs {
		byIP[a.IP] = a
	}
	for _, ep := range eps {
		a, ok := byIP[ep.IP]
		if !ok {
			problem("endpoint %s has no allocation in the store (the daemon's GC removes it)", ep.IP)
		}
		dp.Endpoints = append(dp.Endpoints, statusEndpoint{IP: ep.IP, Pod: podName(a), HostIfindex: ep.HostIfindex, ENIIfindex: ep.ENIIfindex, ENITable: ep.ENITable})
	}
	if dp.EBPF() && len(dp.Endpoints) < dp.BoundPods {
		problem("%d of %d bound pods have no fast path endpoint", dp.BoundPods-len(dp.Endpoints), dp.BoundPods)
	}
	return dp
}

// gatherPolicy reads the enforcer's endpoints and counters from its pins.
func gatherPolicy(env *node.Env, instanceID string, problem func(string, ...any)) statusPolicy {
	pol := statusPolicy{Enabled: env.Config.PolicyEnabled()}
	if !pol.Enabled {
		pol.Note = "network_policy is off in the configuration"
		return pol
	}
	if instanceID == "" {
		pol.Note = "no node facts yet"
		return pol
	}
	nc, err := podpolicy.Counters(env.Store, env.Config, instanceID)
	switch {
	case errors.Is(err, podpolicy.ErrNoEnforcer):
		pol.Note = err.Error()
	case err != nil:
		problem("read policy counters: %v", err)
	}
	pol.NodeCounters = nc
	return pol
}

// gatherDaemon finds the daemons serving configPath in /proc and judges
// the last pool update: the daemon writes it on every full pass.
func gatherDaemon(configPath string, updated, now time.Time) statusDaemon {
	pids := daemonPIDs(configPath)
	return statusDaemon{LastPoolUpdate: updated, PIDs: pids, Verdict: daemonVerdict(len(pids) > 0, updated, now)}
}

func daemonVerdict(running bool, updated, now time.Time) string {
	switch {
	case !running:
		return "not running"
	case updated.IsZero():
		return "running, no pool pass recorded yet"
	case now.Sub(updated) > 3*daemon.DefaultSyncInterval:
		return fmt.Sprintf("running, but the last pool pass was %s ago (stuck, or a long --sync-interval?)", age(now, updated))
	}
	return fmt.Sprintf("running, last pool pass %s ago", age(now, updated))
}

// daemonPIDs lists "veni daemon" (or veni-daemon) processes whose --config
// is configPath; a daemon without --config serves the default path.
func daemonPIDs(configPath string) []int {
	want, _ := filepath.Abs(configPath)
	dirs, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range dirs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !isDaemonCommand(args) {
			continue
		}
		cfg := node.DefaultConfigPath
		for i, a := range args {
			if v, ok := strings.CutPrefix(a, "--config="); ok {
				cfg = v
			} else if a == "--config" && i+1 < len(args) {
				cfg = args[i+1]
			}
		}
		if abs, _ := filepath.Abs(cfg); abs == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

func isDaemonCommand(args []string) bool {
	base := filepath.Base(args[0])
	if base == "veni-daemon" {
		return true
	}
	// Tests and the sim may run a binary renamed from veni.
	return strings.Contains(base, "veni") && len(args) > 1 && args[1] == "daemon"
}

func printStatus(w io.Writer, rep statusReport) error {
	p := &errWriter{w: w}
	if n := rep.Node; n != nil {
		p.printf("node      %s (%s, zone %s, vpc %s), primary %s\n", n.InstanceID, n.InstanceType, n.ZoneID, n.VPCID, n.PrimaryIP)
		if rep.ENIMode == config.ENIModeExclusive {
			p.printf("limits    %d ENIs (facts from %s); max pods %d in exclusive ENI mode (one ENI per pod)\n", n.ENIs, n.UpdatedAt.Format(time.RFC3339), rep.MaxPods)
		} else {
			p.printf("limits    %d ENIs x %d IPv4 (facts from %s); max pods %d in %s mode\n", n.ENIs, n.IPv4PerENI, n.UpdatedAt.Format(time.RFC3339), rep.MaxPods, rep.Mode)
		}
	} else {
		p.printf("node      unknown\n")
	}
	p.printf("config    %s\nstore     %s\ncloud     credentials from %s\n", rep.Config, rep.Store, rep.Credentials)
	if rep.Stack != "" {
		p.printf("stack     %s\n", rep.Stack)
		for _, n := range rep.StackNotes {
			p.printf("          %s\n", n)
		}
	}

	dp := rep.Datapath
	p.printf("datapath  %s (%s)\n", dp.Active, dp.Reason)
	p.printf("  kernel  %s\n", dp.Kernel)
	switch {
	case dp.PinDir == "":
	case !dp.Pinned:
		p.printf("  pins    %s: none\n", dp.PinDir)
	default:
		p.printf("  pins    %s: %d endpoints for %d bound pods, eni programs on ifindex %v\n", dp.PinDir, len(dp.Endpoints), dp.BoundPods, dp.ENIIfindexes)
	}
	if len(dp.HostStack) > 0 {
		var hs []string
		for pfx, why := range dp.HostStack {
			hs = append(hs, pfx+" "+why)
		}
		slices.Sort(hs)
		p.printf("  host    %s\n", strings.Join(hs, ", "))
	}
	if c := dp.Counters; c != nil {
		for _, h := range []struct {
			name string
			hc   fastpath.HookCounters
		}{{"from_pod", c.FromPod}, {"to_pod", c.ToPod}, {"from_eni", c.FromENI}} {
			p.printf("  %-9s %s\n", h.name, nonZeroCounters(h.hc))
		}
	}
	for _, ep := range dp.Endpoints {
		p.printf("  pod     %s %s host ifindex %d, eni ifindex %d table %d\n", ep.IP, ep.Pod, ep.HostIfindex, ep.ENIIfindex, ep.ENITable)
	}

	printPolicy(p, rep.Policy)

	pool := rep.Pool
	p.printf("pool      %d free, %d reserved, %d bound (min %d, max %d idle)\n", pool.Free, pool.Reserved, pool.Bound, pool.MinIdle, pool.MaxIdle)
	for _, e := range pool.ENIs {
		p.printf("  eni     %s %s %s primary %s: %d free, %d reserved, %d bound, owned %t\n", e.ID, e.MAC, e.State, e.PrimaryIP, e.Free, e.Reserved, e.Bound, e.Owned)
		if len(e.Prefixes) > 0 {
			p.printf("          prefixes %v\n", e.Prefixes)
		}
	}
	for _, b := range pool.Backoffs {
		p.printf("  backoff %s until %s: %s\n", b.Scope, b.Until.Format(time.RFC3339), b.Reason)
	}
	if pool.LeaseLive && pool.Lease != nil {
		p.printf("  lease   allocator held by %s (pid %d in its PID namespace) since %s, its cloud work bounded by %s\n", pool.Lease.Holder, pool.Lease.HolderPID, pool.Lease.Acquired.Format(time.RFC3339), pool.Lease.Expires.Format(time.RFC3339))
	}
	printTrunk(p, rep.Trunk)
	p.printf("daemon    %s", rep.Daemon.Verdict)
	if len(rep.Daemon.PIDs) > 0 {
		p.printf(" (pid %v)", rep.Daemon.PIDs)
	}
	p.printf("\n")
	for _, pr := range rep.Problems {
		p.printf("PROBLEM   %s\n", pr)
	}
	return p.err
}

// printPolicy prints the enforcer's summary, then one line per endpoint:
// flows allowed (each counted once, when first allowed) and packets
// dropped, per direction.
func printPolicy(p *errWriter, pol statusPolicy) {
	if !pol.Enabled {
		p.printf("policy    off (%s)\n", pol.Note)
		return
	}
	isolated := 0
	for _, ep := range pol.Endpoints {
		if ep.Selected {
			isolated++
		}
	}
	var mem uint64
	for _, b := range pol.MapBytes {
		mem += b
	}
	p.printf("policy    on: %d endpoints, %d with a table, maps %.1f MiB", len(pol.Endpoints), isolated, float64(mem)/(1<<20))
	if pol.Note != "" {
		p.printf(" (%s)", pol.Note)
	}
	p.printf("\n")
	for _, ep := range pol.Endpoints {
		p.printf("  pod     %s %s ifindex %d %s: allowed flows in %d out %d, dropped packets in %d out %d\n",
			ep.IP, ep.Pod, ep.Ifindex, isolation(ep.Endpoint),
			ep.AllowedIngress, ep.AllowedEgress, ep.DeniedIngress, ep.DeniedEgress)
	}
}

// isolation says which directions a policy isolates an endpoint in.
func isolation(ep enforce.Endpoint) string {
	switch {
	case ep.FailClosed:
		return "fail-closed (no record yet: isolated both ways)"
	case !ep.Selected:
		return "open"
	case ep.IngressIsolated && ep.EgressIsolated:
		return "isolated in+out"
	case ep.IngressIsolated:
		return "isolated in"
	case ep.EgressIsolated:
		return "isolated out"
	}
	return "open"
}

// nonZeroCounters prints a hook's counters, packets and redirects always,
// the pass and fib reasons only when they happened.
func nonZeroCounters(hc fastpath.HookCounters) string {
	out := []string{
		"packets " + strconv.FormatUint(hc.Packets, 10),
		"redirect_peer " + strconv.FormatUint(hc.RedirectPeer, 10),
		"redirect_neigh " + strconv.FormatUint(hc.RedirectNeigh, 10),
	}
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"pass_not_ipv4", hc.PassNotIPv4}, {"pass_malformed", hc.PassMalformed}, {"pass_fragment", hc.PassFragment},
		{"pass_proto", hc.PassProto}, {"pass_special", hc.PassSpecial}, {"pass_service", hc.PassService},
		{"pass_host_cidr", hc.PassHostCIDR}, {"pass_node_addr", hc.PassNodeAddr}, {"pass_host_flow", hc.PassHostFlow},
		{"pass_unknown_src", hc.PassUnknownSrc}, {"pass_not_local", hc.PassNotLocal}, {"pass_ttl", hc.PassTTL},
		{"fib_not_forwarded", hc.FIBNotForwarded}, {"fib_drop", hc.FIBDrop}, {"fib_frag_needed", hc.FIBFragNeeded},
		{"fib_forwarding_disabled", hc.FIBForwardingDisabled}, {"fib_other_device", hc.FIBOtherDevice},
		{"fib_error", hc.FIBError}, {"flows_tracked", hc.FlowsTracked}, {"flow_no_map", hc.FlowNoMap},
		{"drop_spoofed", hc.DropSpoofed}, {"pass_plain_pod", hc.PassPlainPod},
	} {
		if c.v > 0 {
			out = append(out, c.name+" "+strconv.FormatUint(c.v, 10))
		}
	}
	return strings.Join(out, ", ")
}

// errWriter keeps the first write error so printStatus reads as a list.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
