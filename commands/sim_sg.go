package commands

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

func newSimSGCommand(g *simGlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sg",
		Short: "Security groups of the simulated VPC: create, authorize and revoke rules, set an ENI's groups, list",
		Long: `Security groups of the simulated VPC, through its OpenAPI actions
(CreateSecurityGroup, AuthorizeSecurityGroup[Egress],
RevokeSecurityGroup[Egress], ModifyNetworkInterfaceAttribute,
DescribeSecurityGroups) run as the account's owner, so errors are the
cloud's. The VPC enforces the groups on real packets, statefully: a rule
change applies to new connections. "veni sim up" puts every node in one
normal group, sg-sim-default, whose members reach each other.`,
	}
	cmd.AddCommand(newSimSGCreateCommand(g), newSimSGRuleCommand(g, false), newSimSGRuleCommand(g, true),
		newSimSGSetENICommand(g), newSimSGListCommand(g))
	return cmd
}

type simSGCreateOptions struct {
	*simGlobalOptions
	typ  string
	name string
}

func (o *simSGCreateOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.typ, "type", "normal", "normal (members reach each other) or enterprise (they do not)")
	fs.StringVar(&o.name, "name", "", "the group's name")
}

func newSimSGCreateCommand(g *simGlobalOptions) *cobra.Command {
	o := &simSGCreateOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a security group in the sim's VPC and print its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.typ != "normal" && o.typ != "enterprise" {
				return fmt.Errorf("--type %q: want normal or enterprise", o.typ)
			}
			return cluster.SGCreate(cmd.Context(), cmd.OutOrStdout(), o.dir, o.typ, o.name)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

type simSGRuleOptions struct {
	*simGlobalOptions
	rule cluster.SGRule
}

func (o *simSGRuleOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.rule.Egress, "egress", false, "an egress rule (the peer is the destination); default ingress")
	fs.StringVar(&o.rule.Policy, "policy", "accept", "accept or drop")
	fs.IntVar(&o.rule.Priority, "priority", 1, "1 (first) to 100")
	fs.StringVar(&o.rule.Protocol, "proto", "tcp", "tcp, udp, icmp, icmpv6 or all")
	fs.StringVar(&o.rule.PortRange, "port", "", "port range FROM/TO, e.g. 8080/8080 (tcp and udp)")
	fs.StringVar(&o.rule.CIDR, "cidr", "", "peer CIDR, IPv4 or IPv6 (sent as SourceCidrIp/DestCidrIp or Ipv6SourceCidrIp/Ipv6DestCidrIp)")
	fs.StringVar(&o.rule.Group, "group", "", "peer security group id (its members' addresses)")
}

func newSimSGRuleCommand(g *simGlobalOptions, revoke bool) *cobra.Command {
	o := &simSGRuleOptions{simGlobalOptions: g}
	use, short := "authorize SG", "Add a rule to a security group"
	if revoke {
		use, short = "revoke SG", "Remove a rule (given as it was authorized) from a security group; established connections keep flowing"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Example: `  veni sim sg authorize sg-xxx --port 8080/8080 --group sg-sim-default
  veni sim sg authorize sg-xxx --egress --policy drop --proto all --cidr 172.30.2.0/24`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (o.rule.CIDR == "") == (o.rule.Group == "") {
				return errors.New("give one peer: --cidr or --group")
			}
			return cluster.SGRuleChange(cmd.Context(), o.dir, args[0], o.rule, revoke)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func newSimSGSetENICommand(g *simGlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "set-eni ENI SG...",
		Short: "Make the groups an ENI's security groups (ModifyNetworkInterfaceAttribute; not for primary ENIs)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.SGSetENI(cmd.Context(), g.dir, args[0], args[1:])
		},
	}
}

func newSimSGListCommand(g *simGlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the VPC's security groups, their rules and their ENIs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cluster.SGList(cmd.Context(), cmd.OutOrStdout(), g.dir)
		},
	}
}
