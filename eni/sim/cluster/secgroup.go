package cluster

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Security groups of a running sim, for "veni sim sg": each function is
// one or two OpenAPI actions run as the account's owner (Client.CallAPI),
// so the groups, rules and errors are the ones the SDK gets.

// SGRule is one security group rule as the command line gives it.
type SGRule struct {
	Egress    bool   // AuthorizeSecurityGroupEgress / RevokeSecurityGroupEgress
	Policy    string // accept (default) or drop
	Priority  int    // 1..100; 0 leaves the cloud's default (1)
	Protocol  string // tcp, udp, icmp, icmpv6 or all
	PortRange string // "8080/8080"; "" means -1/-1 (icmp, all)
	CIDR      string // peer CIDR (IPv4 or IPv6): source of ingress, destination of egress
	Group     string // peer group instead of a CIDR
}

// params renders r as the action's parameters.
func (r SGRule) params(groupID string) map[string]string {
	p := map[string]string{"SecurityGroupId": groupID, "IpProtocol": r.Protocol}
	if r.PortRange != "" {
		p["PortRange"] = r.PortRange
	} else {
		p["PortRange"] = "-1/-1"
	}
	if r.Policy != "" {
		p["Policy"] = r.Policy
	}
	if r.Priority != 0 {
		p["Priority"] = strconv.Itoa(r.Priority)
	}
	cidr, group := "SourceCidrIp", "SourceGroupId"
	if r.Egress {
		cidr, group = "DestCidrIp", "DestGroupId"
	}
	if p, err := netip.ParsePrefix(r.CIDR); err == nil && !p.Addr().Is4() {
		cidr = "Ipv6" + cidr // an IPv6 peer has its own field, as in the console
	}
	if r.CIDR != "" {
		p[cidr] = r.CIDR
	}
	if r.Group != "" {
		p[group] = r.Group
	}
	return p
}

// SGCreate creates a group (typ normal or enterprise) in the sim's VPC
// and prints its id.
func SGCreate(ctx context.Context, w io.Writer, dir, typ, name string) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	p := map[string]string{"VpcId": c.State.VPCID, "SecurityGroupType": typ}
	if name != "" {
		p["SecurityGroupName"] = name
	}
	var out struct{ SecurityGroupId string }
	if err := c.CallAPI(ctx, "CreateSecurityGroup", p, &out); err != nil {
		return err
	}
	fmt.Fprintln(w, out.SecurityGroupId)
	return nil
}

// SGRuleChange authorizes (or, with revoke, revokes) one rule of a group.
func SGRuleChange(ctx context.Context, dir, groupID string, r SGRule, revoke bool) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	action := "AuthorizeSecurityGroup"
	if revoke {
		action = "RevokeSecurityGroup"
	}
	if r.Egress {
		action += "Egress"
	}
	return c.CallAPI(ctx, action, r.params(groupID), nil)
}

// SGSetENI makes groups the ENI's groups (ModifyNetworkInterfaceAttribute);
// a change applies to new connections.
func SGSetENI(ctx context.Context, dir, eniID string, groups []string) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	p := map[string]string{"NetworkInterfaceId": eniID}
	for i, g := range groups {
		p["SecurityGroupId."+strconv.Itoa(i+1)] = g
	}
	return c.CallAPI(ctx, "ModifyNetworkInterfaceAttribute", p, nil)
}

// SGList prints every group of the sim's VPC with its rules, and which
// ENIs are in it.
func SGList(ctx context.Context, w io.Writer, dir string) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	var groups []struct {
		SecurityGroupId, SecurityGroupName, SecurityGroupType string
		EcsCount                                              int
	}
	for page := 1; ; page++ {
		var out struct {
			TotalCount     int
			SecurityGroups struct {
				SecurityGroup []struct {
					SecurityGroupId, SecurityGroupName, SecurityGroupType string
					EcsCount                                              int
				}
			}
		}
		p := map[string]string{"VpcId": c.State.VPCID, "PageNumber": strconv.Itoa(page), "PageSize": "50"}
		if err := c.CallAPI(ctx, "DescribeSecurityGroups", p, &out); err != nil {
			return err
		}
		for _, g := range out.SecurityGroups.SecurityGroup {
			groups = append(groups, struct {
				SecurityGroupId, SecurityGroupName, SecurityGroupType string
				EcsCount                                              int
			}(g))
		}
		if len(out.SecurityGroups.SecurityGroup) == 0 || len(groups) >= out.TotalCount {
			break
		}
	}
	live, err := c.Live(ctx, false)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		var enis []string
		for _, e := range live.Cloud.ENIs {
			for _, id := range e.SecurityGroupIDs {
				if id == g.SecurityGroupId {
					enis = append(enis, e.ID)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%q\t%d enis: %s\n", g.SecurityGroupId, g.SecurityGroupType, g.SecurityGroupName,
			g.EcsCount, strings.Join(enis, ","))
		var attr struct {
			Permissions struct {
				Permission []struct {
					Direction, Policy, Priority, IpProtocol, PortRange   string
					SourceCidrIp, SourceGroupId, DestCidrIp, DestGroupId string
					Ipv6SourceCidrIp, Ipv6DestCidrIp                     string
				}
			}
		}
		if err := c.CallAPI(ctx, "DescribeSecurityGroupAttribute", map[string]string{"SecurityGroupId": g.SecurityGroupId}, &attr); err != nil {
			return err
		}
		if len(attr.Permissions.Permission) == 0 {
			fmt.Fprintln(tw, "  (no rules)")
		}
		for _, r := range attr.Permissions.Permission {
			peer := r.SourceCidrIp + r.Ipv6SourceCidrIp + r.SourceGroupId
			if r.Direction == "egress" {
				peer = "to " + r.DestCidrIp + r.Ipv6DestCidrIp + r.DestGroupId
			} else {
				peer = "from " + peer
			}
			fmt.Fprintf(tw, "  %s\t%s\tprio %s\t%s %s\t%s\n", r.Direction, r.Policy, r.Priority, r.IpProtocol, r.PortRange, peer)
		}
	}
	return tw.Flush()
}
