package sim

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// The sim refuses what it does not model. Every action names the request
// parameters it reads; a request carrying any other parameter is answered
// InvalidParameter naming it, so a client never gets different semantics
// than it asked for (a silently ignored Ipv4PrefixCount, an attach that
// ignores TrunkNetworkInstanceId) and a test never passes for the wrong
// reason. The check runs in one place, handleAPI, before the action.

// commonParams are accepted by every action: the RPC envelope and the
// signature the SDK adds to every call.
var commonParams = []string{
	"Action", "Version", "Format", "RegionId",
	"AccessKeyId", "SecurityToken", "Timestamp",
	"Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "SignatureType",
}

// actionParams lists, per action, the parameters it models. A pattern
// segment "N" matches a list index (1, 2, ...), as the SDK flattens
// repeated parameters ("PrivateIpAddress.N") and lists of structs
// ("Tag.N.Key").
var actionParams = map[string][]string{
	"CreateNetworkInterface": {
		"VSwitchId", "SecurityGroupId", "SecurityGroupIds.N", "InstanceType",
		"NetworkInterfaceName", "Description", "ResourceGroupId", "ClientToken",
		"SourceDestCheck", "Tag.N.Key", "Tag.N.Value",
		"PrimaryIpAddress", "SecondaryPrivateIpAddressCount", "Ipv4PrefixCount",
		"Ipv6AddressCount", "Ipv6PrefixCount",
	},
	"AttachNetworkInterface": {"NetworkInterfaceId", "InstanceId", "TrunkNetworkInstanceId"},
	"DetachNetworkInterface": {"NetworkInterfaceId", "InstanceId", "TrunkNetworkInstanceId"},
	"DeleteNetworkInterface": {"NetworkInterfaceId"},
	"DescribeNetworkInterfaces": {
		"NetworkInterfaceId.N", "InstanceId", "VSwitchId", "VpcId", "Status", "Type",
		"SecurityGroupId", "NetworkInterfaceName", "PrimaryIpAddress", "PrivateIpAddress.N",
		"Tag.N.Key", "Tag.N.Value", "NextToken", "MaxResults", "PageNumber", "PageSize",
	},
	"AssignPrivateIpAddresses": {
		"NetworkInterfaceId", "ClientToken",
		"SecondaryPrivateIpAddressCount", "PrivateIpAddress.N",
		"Ipv4PrefixCount", "Ipv4Prefix.N",
	},
	"UnassignPrivateIpAddresses": {"NetworkInterfaceId", "PrivateIpAddress.N", "Ipv4Prefix.N"},
	"AssignIpv6Addresses": {
		"NetworkInterfaceId", "ClientToken", "Ipv6AddressCount", "Ipv6Address.N",
		"Ipv6PrefixCount", "Ipv6Prefix.N",
	},
	"UnassignIpv6Addresses": {"NetworkInterfaceId", "Ipv6Address.N", "Ipv6Prefix.N"},
	"DescribeInstanceTypes": {"InstanceTypes.N"},
	"DescribeVSwitches":     {"VSwitchId", "VpcId", "ZoneId", "PageNumber", "PageSize"},

	"CreateSecurityGroup": {"VpcId", "SecurityGroupType", "SecurityGroupName", "Description", "ClientToken"},
	"AuthorizeSecurityGroup": append([]string{"SecurityGroupId", "ClientToken"},
		ruleParamNames(sgIngress)...),
	"AuthorizeSecurityGroupEgress": append([]string{"SecurityGroupId", "ClientToken"},
		ruleParamNames(sgEgress)...),
	"RevokeSecurityGroup": append([]string{"SecurityGroupId", "ClientToken", "SecurityGroupRuleId.N"},
		ruleParamNames(sgIngress)...),
	"RevokeSecurityGroupEgress": append([]string{"SecurityGroupId", "ClientToken", "SecurityGroupRuleId.N"},
		ruleParamNames(sgEgress)...),
	"DescribeSecurityGroups": {
		"VpcId", "SecurityGroupId", "SecurityGroupIds", "SecurityGroupType", "PageNumber", "PageSize",
	},
	"DescribeSecurityGroupAttribute":  {"SecurityGroupId", "Direction", "NicType"},
	"DeleteSecurityGroup":             {"SecurityGroupId"},
	"ModifyNetworkInterfaceAttribute": {"NetworkInterfaceId", "SecurityGroupId.N"},
	"TagResources":                    {"ResourceType", "ResourceId.N", "Tag.N.Key", "Tag.N.Value"},
}

// ruleParamNames are the parameters of one security group rule of
// direction, flat (one rule) and as Permissions.N.* (several).
func ruleParamNames(direction string) []string {
	var out []string
	for _, f := range ruleParams[direction] {
		out = append(out, f, "Permissions.N."+f)
	}
	return out
}

// checkParams refuses the first parameter (in name order) that the action
// does not model.
func checkParams(action string, q *request) *apiError {
	names := make([]string, 0, len(q.params))
	for k := range q.params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !paramAccepted(action, k) {
			return newAPIError(http.StatusBadRequest, CodeInvalidParameter,
				"The specified parameter %q is not supported by %s in this simulated VPC.", k, action)
		}
	}
	return nil
}

func paramAccepted(action, name string) bool {
	for _, p := range commonParams {
		if p == name {
			return true
		}
	}
	for _, p := range actionParams[action] {
		if matchParam(p, name) {
			return true
		}
	}
	return false
}

// matchParam matches name against a pattern whose "N" segments stand for a
// list index.
func matchParam(pattern, name string) bool {
	ps, ns := strings.Split(pattern, "."), strings.Split(name, ".")
	if len(ps) != len(ns) {
		return false
	}
	for i, p := range ps {
		if p == "N" {
			if n, err := strconv.Atoi(ns[i]); err != nil || n < 1 || strconv.Itoa(n) != ns[i] {
				return false
			}
			continue
		}
		if p != ns[i] {
			return false
		}
	}
	return true
}
