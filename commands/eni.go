package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
)

// eniOptions are the flags every "veni eni" subcommand shares: where the
// cloud and the metadata service are, and who we are.
type eniOptions struct {
	endpoint    string
	scheme      string
	region      string
	credentials string
	metadata    string
	instance    string
	timeout     time.Duration
}

func (o *eniOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.endpoint, "endpoint", "", "OpenAPI host[:port] for ECS and VPC (default: the region's public endpoints)")
	fs.StringVar(&o.scheme, "scheme", "https", "OpenAPI scheme: https or http")
	fs.StringVar(&o.region, "region", "", "region id (default: from instance metadata)")
	fs.StringVar(&o.credentials, "credentials", "", "JSON file with AccessKeyId and AccessKeySecret (default: ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET)")
	fs.StringVar(&o.metadata, "metadata", eni.DefaultMetadataURL, "instance metadata service URL")
	fs.StringVar(&o.instance, "instance", "", "instance id (default: this instance, from metadata)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
}

// eniSession is one invocation's view of the cloud. Metadata is only asked
// for what the flags did not say.
type eniSession struct {
	opts   *eniOptions
	client eni.Client
	md     *eni.Metadata
}

func (o *eniOptions) connect(ctx context.Context) (*eniSession, error) {
	s := &eniSession{opts: o, md: eni.NewMetadata(o.metadata, nil)}
	region := o.region
	if region == "" {
		r, err := s.md.RegionID(ctx)
		if err != nil {
			return nil, fmt.Errorf("region: %w (pass --region)", err)
		}
		region = r
	}
	creds, err := eni.LoadCredentials(o.credentials)
	if err != nil {
		return nil, err
	}
	c, err := eni.NewAlibabaClient(eni.AlibabaOptions{
		RegionID:    region,
		Endpoint:    o.endpoint,
		Scheme:      o.scheme,
		Credentials: creds,
	})
	if err != nil {
		return nil, err
	}
	s.client = c
	return s, nil
}

func (s *eniSession) instanceID(ctx context.Context) (string, error) {
	if s.opts.instance != "" {
		return s.opts.instance, nil
	}
	id, err := s.md.InstanceID(ctx)
	if err != nil {
		return "", fmt.Errorf("instance id: %w (pass --instance)", err)
	}
	return id, nil
}

// withSession runs fn with a connected session under the --timeout.
func (o *eniOptions) withSession(cmd *cobra.Command, fn func(ctx context.Context, s *eniSession) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	s, err := o.connect(ctx)
	if err != nil {
		return err
	}
	return fn(ctx, s)
}

func newENICommand() *cobra.Command {
	o := &eniOptions{}
	cmd := &cobra.Command{
		Use:   "eni",
		Short: "Create, attach and inspect this instance's ENIs through the cloud API",
		Long: "Operator access to the ECS ENI API, with the same client, rate limits and retries as the daemon.\n" +
			"Region and instance come from the metadata service unless given.",
	}
	o.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newENIListCommand(o),
		newENICreateCommand(o),
		newENIAttachCommand(o),
		newENIDetachCommand(o),
		newENIDeleteCommand(o),
		newENIAssignCommand(o),
		newENIUnassignCommand(o),
		newENILimitsCommand(o),
	)
	return cmd
}

// --- list ---

type eniListOptions struct {
	*eniOptions
	all    bool
	tags   []string
	output string
}

func (o *eniListOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.all, "all", false, "list every ENI of the account in the region, not only this instance's")
	fs.StringArrayVar(&o.tags, "tag", nil, "only ENIs with tag key=value (repeatable; implies --all)")
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
}

func newENIListCommand(common *eniOptions) *cobra.Command {
	o := &eniListOptions{eniOptions: common}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List ENIs (this instance's, or --all / --tag k=v)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tags, err := parseENITags(o.tags)
			if err != nil {
				return err
			}
			if err := checkENIOutput(o.output); err != nil {
				return err
			}
			return o.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return runENIList(ctx, cmd.OutOrStdout(), s, o, tags)
			})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runENIList(ctx context.Context, w io.Writer, s *eniSession, o *eniListOptions, tags map[string]string) error {
	filter := eni.ENIFilter{Tags: tags}
	if !o.all && len(tags) == 0 {
		id, err := s.instanceID(ctx)
		if err != nil {
			return err
		}
		filter.InstanceID = id
	}
	enis, err := s.client.ENIs(ctx, filter)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return writeJSON(w, eniViews(enis))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATUS\tINSTANCE\tMAC\tVSWITCH\tIPS\tTAGS")
	for _, e := range enis {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Type, e.Status, eniOrDash(e.InstanceID),
			eniOrDash(e.MAC.String()), e.VSwitchID, eniOrDash(joinENIAddrs(e.PrivateIPs)), eniOrDash(formatENITags(e.Tags)))
	}
	return tw.Flush()
}

// eniView is the JSON shape of an ENI: strings for the MAC and addresses
// so that scripts can use jq without decoding base64.
type eniView struct {
	ID               string            `json:"id"`
	Type             string            `json:"type"`
	Status           string            `json:"status"`
	InstanceID       string            `json:"instanceId,omitempty"`
	MAC              string            `json:"mac"`
	VPCID            string            `json:"vpcId,omitempty"`
	VSwitchID        string            `json:"vswitchId"`
	ZoneID           string            `json:"zoneId,omitempty"`
	SecurityGroupIDs []string          `json:"securityGroupIds,omitempty"`
	PrimaryIP        string            `json:"primaryIp,omitempty"`
	PrivateIPs       []string          `json:"privateIps"`
	Prefixes         []string          `json:"ipv4Prefixes,omitempty"`
	IPv6s            []string          `json:"ipv6s,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	Description      string            `json:"description,omitempty"`
}

func eniViews(enis []eni.ENI) []eniView {
	out := make([]eniView, 0, len(enis))
	for _, e := range enis {
		v := eniView{
			ID: e.ID, Type: e.Type, Status: e.Status, InstanceID: e.InstanceID, MAC: e.MAC.String(),
			VPCID: e.VPCID, VSwitchID: e.VSwitchID, ZoneID: e.ZoneID, SecurityGroupIDs: e.SecurityGroupIDs,
			Tags: e.Tags, Description: e.Description, PrivateIPs: []string{},
		}
		if e.PrimaryIP.IsValid() {
			v.PrimaryIP = e.PrimaryIP.String()
		}
		for _, ip := range e.PrivateIPs {
			v.PrivateIPs = append(v.PrivateIPs, ip.String())
		}
		for _, p := range e.Prefixes {
			v.Prefixes = append(v.Prefixes, p.String())
		}
		for _, ip := range e.IPv6s {
			v.IPv6s = append(v.IPv6s, ip.String())
		}
		out = append(out, v)
	}
	return out
}

// --- create ---

type eniCreateOptions struct {
	*eniOptions
	vswitch        string
	securityGroups []string
	tags           []string
	ips            int
	description    string
	clientToken    string
	output         string
}

func (o *eniCreateOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.vswitch, "vswitch", "", "vSwitch of the new ENI (required)")
	fs.StringArrayVar(&o.securityGroups, "security-group", nil, "security group (required, repeatable)")
	fs.StringArrayVar(&o.tags, "tag", nil, "tag key=value (repeatable)")
	fs.IntVar(&o.ips, "ips", 0, "secondary private IPv4s to assign at creation")
	fs.StringVar(&o.description, "description", "", "ENI description")
	fs.StringVar(&o.clientToken, "client-token", "", "idempotency key: a retried create with the same token returns the same ENI")
	fs.StringVarP(&o.output, "output", "o", "id", "output: id (just the ENI id, for scripts) or json")
}

func newENICreateCommand(common *eniOptions) *cobra.Command {
	o := &eniCreateOptions{eniOptions: common}
	cmd := &cobra.Command{
		Use:   "create --vswitch VSW --security-group SG [--tag k=v] [--ips N]",
		Short: "Create a secondary ENI and print its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tags, err := parseENITags(o.tags)
			if err != nil {
				return err
			}
			switch {
			case o.vswitch == "":
				return errors.New("create: --vswitch is required")
			case len(o.securityGroups) == 0:
				return errors.New("create: --security-group is required")
			case o.ips < 0:
				return fmt.Errorf("create: --ips %d must not be negative", o.ips)
			case o.output != "id" && o.output != "json":
				return fmt.Errorf("create: output %q: want id or json", o.output)
			}
			opts := eni.CreateENIOptions{
				VSwitchID: o.vswitch, SecurityGroupIDs: o.securityGroups, Tags: tags,
				SecondaryIPs: o.ips, Description: o.description, ClientToken: o.clientToken,
			}
			return o.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return runENICreate(ctx, cmd.OutOrStdout(), s, opts, o.output)
			})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runENICreate(ctx context.Context, w io.Writer, s *eniSession, opts eni.CreateENIOptions, output string) error {
	e, err := s.client.CreateENI(ctx, opts)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(w, eniViews([]eni.ENI{e})[0])
	}
	_, err = fmt.Fprintln(w, e.ID)
	return err
}

// --- attach / detach ---

type eniAttachOptions struct {
	*eniOptions
	wait time.Duration
}

func (o *eniAttachOptions) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.wait, "wait", 30*time.Second, "wait this long for the ENI to be InUse (0: do not wait)")
}

func newENIAttachCommand(common *eniOptions) *cobra.Command {
	o := &eniAttachOptions{eniOptions: common}
	cmd := &cobra.Command{
		Use:   "attach ENI",
		Short: "Attach an ENI to this instance, wait until it is InUse and print its MAC",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return runENIAttach(ctx, cmd.OutOrStdout(), s, args[0], o.wait)
			})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runENIAttach(ctx context.Context, w io.Writer, s *eniSession, id string, wait time.Duration) error {
	inst, err := s.instanceID(ctx)
	if err != nil {
		return err
	}
	if err := s.client.AttachENI(ctx, id, inst); err != nil {
		// Attaching what is already ours is done, not an error: the demo
		// and scripts re-run this.
		if !errors.Is(err, eni.ErrInvalidState) {
			return err
		}
		cur, lerr := describeENI(ctx, s.client, id)
		if lerr != nil || cur.InstanceID != inst {
			return err
		}
	}
	if wait <= 0 {
		return nil
	}
	e, err := waitENIStatus(ctx, s.client, id, eni.StatusInUse, wait)
	if err != nil {
		return fmt.Errorf("attach %s to %s: %w", id, inst, err)
	}
	_, err = fmt.Fprintln(w, e.MAC)
	return err
}

func newENIDetachCommand(common *eniOptions) *cobra.Command {
	o := &eniAttachOptions{eniOptions: common}
	cmd := &cobra.Command{
		Use:   "detach ENI",
		Short: "Detach an ENI from this instance and wait until it is Available",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return runENIDetach(ctx, s, args[0], o.wait)
			})
		},
	}
	fs := cmd.Flags()
	fs.DurationVar(&o.wait, "wait", 30*time.Second, "wait this long for the ENI to be Available (0: do not wait)")
	return cmd
}

func runENIDetach(ctx context.Context, s *eniSession, id string, wait time.Duration) error {
	inst, err := s.instanceID(ctx)
	if err != nil {
		return err
	}
	if err := s.client.DetachENI(ctx, id, inst); err != nil {
		return err
	}
	if wait <= 0 {
		return nil
	}
	if _, err := waitENIStatus(ctx, s.client, id, eni.StatusAvailable, wait); err != nil {
		return fmt.Errorf("detach %s from %s: %w", id, inst, err)
	}
	return nil
}

func describeENI(ctx context.Context, c eni.Client, id string) (eni.ENI, error) {
	got, err := c.ENIs(ctx, eni.ENIFilter{IDs: []string{id}})
	if err != nil {
		return eni.ENI{}, err
	}
	if len(got) == 0 {
		return eni.ENI{}, fmt.Errorf("eni %s: %w", id, eni.ErrNotFound)
	}
	return got[0], nil
}

// waitENIStatus polls until the ENI reaches status or wait runs out. The
// API changes status asynchronously after attach and detach.
func waitENIStatus(ctx context.Context, c eni.Client, id, status string, wait time.Duration) (eni.ENI, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		e, err := describeENI(ctx, c, id)
		if err == nil && e.Status == status {
			return e, nil
		}
		if err == nil {
			last = e.Status
		} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, eni.ErrNotFound) {
			// Not found is the API's eventual consistency right after a
			// create; anything else will not heal by waiting.
			return eni.ENI{}, err
		}
		select {
		case <-ctx.Done():
			return eni.ENI{}, fmt.Errorf("still %s after %v, want %s: %w", eniOrDash(last), wait, status, ctx.Err())
		case <-tick.C:
		}
	}
}

// --- delete ---

func newENIDeleteCommand(common *eniOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ENI",
		Short: "Delete an Available ENI",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return common.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return s.client.DeleteENI(ctx, args[0])
			})
		},
	}
}

// --- assign / unassign ---

type eniAssignOptions struct {
	*eniOptions
	count int
}

func (o *eniAssignOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.count, "count", 1, "number of secondary private IPv4s to assign")
}

func newENIAssignCommand(common *eniOptions) *cobra.Command {
	o := &eniAssignOptions{eniOptions: common}
	cmd := &cobra.Command{
		Use:   "assign ENI --count N",
		Short: "Assign secondary private IPs to an ENI and print them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 1 {
				return fmt.Errorf("assign: --count %d must be at least 1", o.count)
			}
			return o.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return runENIAssign(ctx, cmd.OutOrStdout(), s, args[0], o.count)
			})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runENIAssign(ctx context.Context, w io.Writer, s *eniSession, id string, count int) error {
	ips, err := s.client.AssignPrivateIPs(ctx, id, count)
	// Print what was assigned even on a partial failure, so nothing the
	// operator now owns goes unseen.
	for _, ip := range ips {
		fmt.Fprintln(w, ip)
	}
	return err
}

func newENIUnassignCommand(common *eniOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "unassign ENI IP...",
		Short: "Remove secondary private IPs from an ENI",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ips := make([]netip.Addr, 0, len(args)-1)
			for _, a := range args[1:] {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return fmt.Errorf("unassign: %w", err)
				}
				ips = append(ips, ip)
			}
			return common.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				return s.client.UnassignPrivateIPs(ctx, args[0], ips)
			})
		},
	}
}

// --- limits ---

type eniLimitsOptions struct {
	*eniOptions
	output string
}

func newENILimitsCommand(common *eniOptions) *cobra.Command {
	o := &eniLimitsOptions{eniOptions: common}
	cmd := &cobra.Command{
		Use:   "limits [TYPE]",
		Short: "Show the ENI and address quotas of an instance type (default: this instance's)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkENIOutput(o.output); err != nil {
				return err
			}
			return o.withSession(cmd, func(ctx context.Context, s *eniSession) error {
				typ := ""
				if len(args) == 1 {
					typ = args[0]
				}
				return runENILimits(ctx, cmd.OutOrStdout(), s, typ, o.output)
			})
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runENILimits(ctx context.Context, w io.Writer, s *eniSession, typ, output string) error {
	if typ == "" {
		t, err := s.md.InstanceType(ctx)
		if err != nil {
			return fmt.Errorf("instance type: %w (name one: veni eni limits TYPE)", err)
		}
		typ = t
	}
	l, err := s.client.InstanceLimits(ctx, typ)
	if err != nil {
		return err
	}
	// Max pods per mode, for the type's limits alone (a node's max_eni
	// lowers them: veni status shows the node's).
	n := ipam.Node{Limits: l}
	ipMode, prefixMode := config.DefaultConfig(), config.DefaultConfig()
	prefixMode.EnableIPPrefix = true
	dualIP, dualPrefix := ipMode, prefixMode
	dualIP.IPStack, dualPrefix.IPStack = config.IPStackDual, config.IPStackDual
	maxIP, maxPrefix := ipam.MaxPods(n, ipMode), ipam.MaxPods(n, prefixMode)
	maxDualIP, maxDualPrefix := ipam.MaxPods(n, dualIP), ipam.MaxPods(n, dualPrefix)
	v6IP, v6Prefix := ipMode, prefixMode
	v6IP.IPStack, v6Prefix.IPStack = config.IPStackV6, config.IPStackV6
	maxV6IP, maxV6Prefix := ipam.MaxPods(n, v6IP), ipam.MaxPods(n, v6Prefix)
	if output == "json" {
		return writeJSON(w, struct {
			eni.InstanceLimits
			MaxPodsIPMode         int `json:"maxPodsIPMode"`
			MaxPodsPrefixMode     int `json:"maxPodsPrefixMode"`
			MaxPodsDualIPMode     int `json:"maxPodsDualIPMode"`
			MaxPodsDualPrefixMode int `json:"maxPodsDualPrefixMode"`
			MaxPodsIPv6IPMode     int `json:"maxPodsIPv6IPMode"`
			MaxPodsIPv6PrefixMode int `json:"maxPodsIPv6PrefixMode"`
		}{l, maxIP, maxPrefix, maxDualIP, maxDualPrefix, maxV6IP, maxV6Prefix})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "instance type\t%s\n", l.InstanceType)
	fmt.Fprintf(tw, "enis\t%d\n", l.ENIs)
	fmt.Fprintf(tw, "ipv4 per eni\t%d\n", l.IPv4PerENI)
	fmt.Fprintf(tw, "ipv6 per eni\t%d\n", l.IPv6PerENI)
	fmt.Fprintf(tw, "trunk\t%t\n", l.TrunkSupported)
	fmt.Fprintf(tw, "member enis\t%d\n", l.MemberENIs)
	fmt.Fprintf(tw, "max pods, ip mode\t%d\n", maxIP)
	fmt.Fprintf(tw, "max pods, prefix mode\t%d\n", maxPrefix)
	fmt.Fprintf(tw, "max pods, dual stack, ip mode\t%d\n", maxDualIP)
	fmt.Fprintf(tw, "max pods, dual stack, prefix mode\t%d\n", maxDualPrefix)
	fmt.Fprintf(tw, "max pods, ipv6 only, ip mode\t%d\n", maxV6IP)
	// An ENI's /80 never runs short: its IPv6 quota bounds its pods.
	fmt.Fprintf(tw, "max pods, ipv6 only, prefix mode\t%d\n", maxV6Prefix)
	return tw.Flush()
}

// --- helpers ---

func parseENITags(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	tags := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag %q: want key=value", kv)
		}
		tags[k] = v
	}
	return tags, nil
}

func checkENIOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("output %q: want table or json", o)
	}
	return nil
}

func formatENITags(tags map[string]string) string {
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}

func joinENIAddrs(ips []netip.Addr) string {
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = ip.String()
	}
	return strings.Join(parts, ",")
}

func eniOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
