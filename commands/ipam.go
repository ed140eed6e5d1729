package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/audit"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/store"
)

// ipamOptions are the flags every "veni ipam" subcommand shares.
type ipamOptions struct {
	config string
	output string
}

func (o *ipamOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.config, "config", envOr("VENI_CONFIG", node.DefaultConfigPath), "node configuration file; names the store [$VENI_CONFIG]")
	fs.StringVarP(&o.output, "output", "o", "table", "table or json")
}

func (o *ipamOptions) validate() error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("output %q: want table or json", o.output)
	}
	return nil
}

// env validates the shared flags and loads the node's configuration.
func (o *ipamOptions) env() (*node.Env, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return node.Load(o.config)
}

func newIPAMCommand() *cobra.Command {
	o := &ipamOptions{}
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "Inspect and repair this node's address store",
	}
	o.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newIPAMListCommand(o),
		newIPAMShowCommand(o),
		newIPAMVerifyCommand(o),
		newIPAMReleaseCommand(o),
		newIPAMGCCommand(o),
		newIPAMEventsCommand(o),
		newIPAMFixedCommand(o),
	)
	return cmd
}

// ipamListing is everything "veni ipam list" shows.
type ipamListing struct {
	ENIs        []store.ENI        `json:"enis"`
	IPs         []store.IP         `json:"ips"`
	Allocations []store.Allocation `json:"allocations"`
	Pool        store.PoolState    `json:"pool"`
	Lease       *store.Lease       `json:"allocatorLease,omitempty"`
	LeaseHeld   bool               `json:"allocatorLeaseHeld"` // a live process holds the allocator claim
	// Fixed are the fixed ENIs this node attaches or parked in the cloud
	// (the ones attached here are among ENIs, with their Fixed).
	Fixed []store.FixedENI `json:"fixed,omitempty"`
}

func readListing(db store.File) (ipamListing, error) {
	var l ipamListing
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		if l.ENIs, err = tx.ENIs(); err != nil {
			return err
		}
		if l.IPs, err = tx.IPs(); err != nil {
			return err
		}
		if l.Allocations, err = tx.Allocations(); err != nil {
			return err
		}
		if l.Pool, err = tx.PoolState(); err != nil {
			return err
		}
		if l.Fixed, err = tx.FixedENIs(); err != nil {
			return err
		}
		lease, err := tx.Lease(store.LeaseAllocator)
		if err == nil {
			l.Lease = &lease
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	slices.SortFunc(l.IPs, func(a, b store.IP) int { return a.Addr.Compare(b.Addr) })
	slices.SortFunc(l.Allocations, func(a, b store.Allocation) int { return a.IP.Compare(b.IP) })
	if err == nil {
		l.LeaseHeld, err = store.Claimed(store.AllocatorClaim(db.ClaimsDir()))
	}
	return l, err
}

func newIPAMListCommand(o *ipamOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List ENIs, pod addresses and the pool",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			return runIPAMList(cmd.OutOrStdout(), env.Store, o.output, time.Now())
		},
	}
}

func runIPAMList(w io.Writer, db store.File, output string, now time.Time) error {
	l, err := readListing(db)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(w, l)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENI\tSTATE\tMAC\tVSWITCH\tCIDR\tFREE\tHELD\tOWNED\tKIND")
	for _, e := range l.ENIs {
		free, held := 0, 0
		for _, ip := range l.IPs {
			if ip.ENIID != e.ID {
				continue
			}
			if ip.State == store.IPFree {
				free++
			} else {
				held++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%t\t%s\n", e.ID, e.State, e.MAC, e.VSwitchID, e.VSwitchCIDR, free, held, e.Owned, eniKind(e))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "IP\tSTATE\tENI\tPOD\tCONTAINER/IFNAME\tAGE")
	for _, a := range l.Allocations {
		since := a.ReservedAt
		if !a.BoundAt.IsZero() {
			since = a.BoundAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.IP, a.State, a.ENIID, podName(a), shortKey(a.Key), age(now, since))
	}
	fmt.Fprintln(tw)
	// The pool is the shared ENIs' addresses; a member's is its pod's.
	dedicated := map[string]bool{}
	for _, e := range l.ENIs {
		dedicated[e.ID] = e.Dedicated()
	}
	free, pooled := 0, 0
	for _, ip := range l.IPs {
		if dedicated[ip.ENIID] {
			continue
		}
		pooled++
		if ip.State == store.IPFree {
			free++
		}
	}
	if len(l.Fixed) > 0 {
		fmt.Fprintln(tw, "FIXED ENI\tSTATE\tIP\tPOD\tSINCE\tRELEASE")
		for _, f := range l.Fixed {
			release := "-"
			if !f.ReleaseAt.IsZero() {
				release = f.ReleaseAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.State, f.IP, f.Pod, age(now, f.Since), release)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "pool: %d free, %d held, targets min %d max %d\n", free, pooled-free, l.Pool.MinIdle, l.Pool.MaxIdle)
	for _, b := range l.Pool.ActiveBackoffs(now) {
		fmt.Fprintf(tw, "backoff: %s until %s: %s\n", b.Scope, b.Until.Format(time.RFC3339), b.Reason)
	}
	if l.Lease != nil && now.Before(l.Lease.Expires) {
		fmt.Fprintf(tw, "allocator lease: held by pid %d (%s) until %s\n", l.Lease.HolderPID, l.Lease.Holder, l.Lease.Expires.Format(time.RFC3339))
	}
	return tw.Flush()
}

func podName(a store.Allocation) string {
	if a.PodName == "" {
		return "-"
	}
	return a.PodNamespace + "/" + a.PodName
}

func shortKey(k store.OwnerKey) string {
	id, ifname, _ := strings.Cut(string(k), "/")
	if len(id) > 12 {
		id = id[:12]
	}
	return id + "/" + ifname
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

func newIPAMShowCommand(o *ipamOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show IP|CONTAINER_ID[/IFNAME]|NAMESPACE/POD",
		Short: "Show one address or pod: its allocation, ENI and recent events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			return runIPAMShow(cmd.OutOrStdout(), env.Store, args[0], o.output)
		},
	}
}

// ipamDetail is what "veni ipam show" prints.
type ipamDetail struct {
	IP         store.IP          `json:"ip"`
	Allocation *store.Allocation `json:"allocation,omitempty"`
	ENI        store.ENI         `json:"eni"`
	Events     []store.Event     `json:"events,omitempty"`
}

func runIPAMShow(w io.Writer, db store.File, what, output string) error {
	l, err := readListing(db)
	if err != nil {
		return err
	}
	var d ipamDetail
	found := false
	if addr, err := netip.ParseAddr(what); err == nil {
		for _, ip := range l.IPs {
			if ip.Addr == addr {
				d.IP, found = ip, true
			}
		}
	}
	if !found {
		for _, a := range l.Allocations {
			if matchesOwner(a, what) {
				d.IP, found = store.IP{Addr: a.IP, ENIID: a.ENIID, State: a.State, Owner: a.Key}, true
				break
			}
		}
	}
	if !found {
		return fmt.Errorf("%s: no such address, container or pod in %s", what, db.Path)
	}
	for _, a := range l.Allocations {
		if a.IP == d.IP.Addr {
			d.Allocation = &a
		}
	}
	for _, e := range l.ENIs {
		if e.ID == d.IP.ENIID {
			d.ENI = e
		}
	}
	err = db.View(func(tx *store.ReadTx) error {
		evs, err := tx.Events(0, 0)
		for _, ev := range evs {
			if strings.Contains(ev.Object, d.IP.Addr.String()) || (d.Allocation != nil && strings.Contains(ev.Object, string(d.Allocation.Key))) {
				d.Events = append(d.Events, ev)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(w, d)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "IP:\t%s (%s)\n", d.IP.Addr, d.IP.State)
	fmt.Fprintf(tw, "ENI:\t%s mac %s on %s %s gateway %s\n", d.ENI.ID, d.ENI.MAC, d.ENI.VSwitchID, d.ENI.VSwitchCIDR, d.ENI.Gateway)
	if a := d.Allocation; a != nil {
		fmt.Fprintf(tw, "Pod:\t%s uid %s\n", podName(*a), a.PodUID)
		fmt.Fprintf(tw, "Attachment:\t%s netns %s\n", a.Key, a.NetNS)
		fmt.Fprintf(tw, "Host veth:\t%s\n", netplumb.HostVethName(a.ContainerID, a.IfName))
		fmt.Fprintf(tw, "Reserved:\t%s by pid %d\n", a.ReservedAt.Format(time.RFC3339), a.ReservedBy)
		if !a.BoundAt.IsZero() {
			fmt.Fprintf(tw, "Bound:\t%s\n", a.BoundAt.Format(time.RFC3339))
		}
	} else if !d.IP.FreeSince.IsZero() {
		fmt.Fprintf(tw, "Free since:\t%s\n", d.IP.FreeSince.Format(time.RFC3339))
	}
	for _, ev := range d.Events {
		fmt.Fprintf(tw, "Event:\t%s %s %s: %s\n", ev.Time.Format(time.RFC3339), ev.Level, ev.Reason, ev.Message)
	}
	return tw.Flush()
}

func matchesOwner(a store.Allocation, what string) bool {
	if string(a.Key) == what || a.ContainerID == what || strings.HasPrefix(a.ContainerID, what) && len(what) >= 8 {
		return true
	}
	return a.PodName != "" && a.PodNamespace+"/"+a.PodName == what
}

func newIPAMVerifyCommand(o *ipamOptions) *cobra.Command {
	var offline bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the store's invariants against this node's links and the cloud; exit 1 if one is broken",
		Long: `verify checks that no address is held by two owners, that every held
address is assigned to its ENI in the cloud, that every pod's links, routes
and rules are in place, that no owner is gone, and that no ENI veni created
for this node is unknown to the store. It changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			return runIPAMVerify(cmd.Context(), cmd.OutOrStdout(), env, offline, o.output)
		},
	}
	cmd.Flags().BoolVar(&offline, "offline", false, "skip the cloud checks")
	return cmd
}

func runIPAMVerify(ctx context.Context, w io.Writer, env *node.Env, offline bool, output string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	opts := audit.Options{Links: true}
	if !offline {
		facts, err := env.Facts(ctx)
		if err != nil {
			return fmt.Errorf("node facts (use --offline to skip the cloud checks): %w", err)
		}
		opts.Cloud, opts.Node = env.Cloud(), facts
	}
	rep, err := audit.Run(ctx, env.Store, opts)
	if err != nil {
		return err
	}
	if output == "json" {
		if err := writeJSON(w, rep); err != nil {
			return err
		}
	} else {
		scope := "store, links and cloud"
		if offline {
			scope = "store and links"
		}
		fmt.Fprintf(w, "checked %s: %d ENIs, %d addresses, %d allocations\n", scope, rep.ENIs, rep.IPs, rep.Allocations)
		for _, f := range rep.Fixed {
			fmt.Fprintln(w, f)
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(w, p)
		}
		if rep.OK() {
			fmt.Fprintln(w, "ok: every invariant holds")
		}
	}
	if !rep.OK() {
		return fmt.Errorf("%d problems: %w", len(rep.Problems), audit.ErrProblems)
	}
	return nil
}

func newIPAMReleaseCommand(o *ipamOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "release CONTAINER_ID[/IFNAME]|IP",
		Short: "Tear down a pod's host side and free its address (for attachments the runtime forgot)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			return runIPAMRelease(cmd.Context(), cmd.OutOrStdout(), env.Store, args[0])
		},
	}
}

func runIPAMRelease(ctx context.Context, w io.Writer, db store.File, what string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	l, err := readListing(db)
	if err != nil {
		return err
	}
	var match []store.Allocation
	for _, a := range l.Allocations {
		if a.IP.String() == what || matchesOwner(a, what) {
			match = append(match, a)
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("%s: no allocation with that address or container in %s", what, db.Path)
	case 1:
	default:
		return fmt.Errorf("%s matches %d allocations: name CONTAINER_ID/IFNAME", what, len(match))
	}
	a := match[0]
	att := podnet.Attachment{ContainerID: a.ContainerID, IfName: a.IfName, NetNS: a.NetNS}
	got, err := podnet.Release(ctx, podnet.Node{Store: db}, att, podnet.ReleaseOptions{Wait: 10 * time.Second, Reason: "ReleasedByOperator"})
	if err != nil {
		return err
	}
	if got == nil {
		return fmt.Errorf("%s: released meanwhile by another veni process", a.Key)
	}
	fmt.Fprintf(w, "released %s (%s)\n", a.IP, a.Key)
	return nil
}

func newIPAMGCCommand(o *ipamOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Release addresses whose pod or ADD is gone, and delete ENIs veni created here but never recorded (the daemon does both on its own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			return runIPAMGC(cmd.Context(), cmd.OutOrStdout(), env)
		},
	}
}

func runIPAMGC(ctx context.Context, w io.Writer, env *node.Env) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dead := podnet.OwnerGone(env.Store.ClaimsDir(), time.Duration(env.Config.GCGrace), time.Now())
	released, err := podnet.GC(ctx, podnet.Node{Store: env.Store}, dead, "OwnerGone")
	for _, a := range released {
		fmt.Fprintf(w, "released %s (%s, %s)\n", a.IP, a.Key, podName(a))
	}
	fmt.Fprintf(w, "%d released\n", len(released))
	if err != nil {
		return err
	}
	return sweepLeakedENIs(ctx, w, env)
}

// sweepLeakedENIs deletes ENIs veni created for this node that never made
// it into the store (see ipam.SweepLeakedENIs). It needs the node's facts
// and the cloud; a node that has neither yet has nothing to sweep.
func sweepLeakedENIs(ctx context.Context, w io.Writer, env *node.Env) error {
	var facts store.NodeInfo
	err := env.Store.View(func(tx *store.ReadTx) (err error) { facts, err = tx.Node(); return err })
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintln(w, "no node facts yet: no leaked ENI to look for")
		return nil
	}
	if err != nil {
		return err
	}
	n := node.IPAMNode(facts)
	n.Holder = "veni ipam gc"
	// A trunk member unknown to the store is deleted only when no pod on
	// this host uses its address.
	n.HostPods = podnet.HostPods
	deleted, err := ipam.SweepLeakedENIs(ctx, env.Store, env.Cloud(), n, env.Config, time.Now())
	if errors.Is(err, store.ErrLeaseHeld) {
		fmt.Fprintf(w, "leaked ENIs not swept: %v (the holder sweeps on its own)\n", err)
		return nil
	}
	for _, id := range deleted {
		fmt.Fprintf(w, "deleted leaked eni %s\n", id)
	}
	return err
}

func newIPAMEventsCommand(o *ipamOptions) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the node's event log (pool growth, back-offs, GC)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			var evs []store.Event
			err = env.Store.View(func(tx *store.ReadTx) error {
				all, err := tx.Events(0, 0)
				if len(all) > limit && limit > 0 {
					all = all[len(all)-limit:]
				}
				evs = all
				return err
			})
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), evs)
			}
			for _, ev := range evs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %-5s %-22s %-30s %s\n", ev.Time.Format(time.RFC3339), ev.Level, ev.Reason, ev.Object, ev.Message)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "newest events to print (0: all)")
	return cmd
}

// eniKind says what an ENI is for in "veni ipam list": shared, the trunk,
// a member (its trunk, VLAN ID and pod) or an exclusive ENI (its pod);
// "idle" while no pod holds a dedicated ENI.
func eniKind(e store.ENI) string {
	pod := e.Pod
	switch {
	case pod == "":
		pod = "idle"
	case e.Fixed != nil && e.Fixed.Detaching:
		pod = "fixed, " + pod + " gone, detaching"
	case e.Kept():
		pod = "fixed, kept for " + pod + " since " + e.Fixed.PodGoneAt.Format(time.RFC3339)
	case e.Fixed != nil:
		pod = pod + ", fixed"
	}
	switch e.Kind {
	case store.ENIShared:
		return "shared"
	case store.ENIMember:
		return fmt.Sprintf("member of %s vlan %d (%s)", e.TrunkID, e.VLANID, pod)
	case store.ENIExclusive:
		return fmt.Sprintf("exclusive (%s)", pod)
	}
	return string(e.Kind)
}
