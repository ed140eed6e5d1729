package sim

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Config describes the simulated region and how the control plane behaves.
type Config struct {
	RegionID string // e.g. "cn-hangzhou"
	VPCID    string
	VPCCIDR  netip.Prefix

	// VSwitches are the VPC's subnets. Each CIDR must lie inside VPCCIDR,
	// be between /16 and /29 (as the cloud allows), and not overlap another.
	VSwitches []VSwitchSpec

	// SecurityGroups are the security group IDs that exist. nil gets one
	// group, DefaultSecurityGroupID.
	SecurityGroups []string

	// InstanceTypes are the ECS types instances may have. nil gets
	// DefaultInstanceTypes().
	InstanceTypes []InstanceType

	// Credentials maps AccessKeyId to AccessKeySecret. When empty, requests
	// are not authenticated at all (any key, any signature): the open mode
	// for a laptop demo. With credentials, every request must be signed,
	// by one of these keys or by the STS credentials of an instance RAM
	// role (with their SecurityToken, until they expire).
	Credentials map[string]string

	AttachDelay time.Duration // Attaching → InUse, asynchronously; SetAttachFault overrides it at run time
	DetachDelay time.Duration // Detaching → Available, asynchronously

	// DescribeLag makes Describe* answer from the state as it was this long
	// ago (the cloud's eventual consistency). 0 answers from the live state.
	// SetDescribeLag changes it at run time; ClearFaults restores this.
	DescribeLag time.Duration

	// DefaultRAMRole is the instance RAM role of every instance whose
	// InstanceSpec names none: its metadata serves STS credentials for it.
	// Empty: instances have no role unless their spec names one.
	DefaultRAMRole string

	// STSLifetime is how long the STS credentials of a RAM role live; 0
	// means DefaultSTSLifetime. The metadata service rotates them when half
	// of it has passed.
	STSLifetime time.Duration

	// Quotas are the account's API budgets per window (quotas.go): calls
	// over them are answered Throttling.User until the window ends. The
	// zero value throttles nothing; DefaultConfig has DefaultQuotas.
	// SetQuotas changes them at run time.
	Quotas Quotas

	// Fabric is told about attach, detach and address changes. nil: API
	// only, no packets.
	Fabric Fabric

	// IdentifyCaller tells the metadata service which instance is asking.
	// nil identifies the caller by its source address, as the real service
	// does: it must be a private IP of an InUse ENI.
	IdentifyCaller func(r *http.Request) (instanceID string, ok bool)
}

// VSwitchSpec is one subnet of the VPC, in one zone.
type VSwitchSpec struct {
	ID     string
	ZoneID string
	CIDR   netip.Prefix
	// IPv6CIDR is the vSwitch's IPv6 block (a /64, as the cloud assigns
	// it); the zero Prefix means IPv6 is not turned on for the vSwitch.
	IPv6CIDR netip.Prefix
}

// InstanceType holds the network quotas of one ECS instance type, as
// DescribeInstanceTypes reports them.
type InstanceType struct {
	ID             string
	ENIs           int  // EniQuantity: ENIs per instance, primary included
	IPv4PerENI     int  // EniPrivateIpAddressQuantity, primary address included
	IPv6PerENI     int  // EniIpv6AddressQuantity
	TrunkSupported bool // EniTrunkSupported
	MemberENIs     int  // trunk member ENIs; EniTotalQuantity = ENIs + MemberENIs
}

// DefaultSecurityGroupID is the security group a Config without
// SecurityGroups gets.
const DefaultSecurityGroupID = "sg-sim-default"

// maxIPsPerENI is the cloud-wide ceiling of private IPv4s on one ENI
// (primary included); it bounds ENIs that are not attached to an instance.
const maxIPsPerENI = 50

// DefaultInstanceTypes returns a handful of real ECS types with their
// published ENI and address quotas, plus "ecs.sim.tiny" (2 ENIs, 3 IPv4 per
// ENI) for exhaustion tests. The trunk member counts are the sim's choice.
func DefaultInstanceTypes() []InstanceType {
	return []InstanceType{
		{ID: "ecs.g7.large", ENIs: 3, IPv4PerENI: 6, IPv6PerENI: 6, TrunkSupported: true, MemberENIs: 6},
		{ID: "ecs.g7.xlarge", ENIs: 4, IPv4PerENI: 15, IPv6PerENI: 15, TrunkSupported: true, MemberENIs: 15},
		{ID: "ecs.g7.2xlarge", ENIs: 6, IPv4PerENI: 15, IPv6PerENI: 15, TrunkSupported: true, MemberENIs: 15},
		{ID: "ecs.g7.4xlarge", ENIs: 8, IPv4PerENI: 30, IPv6PerENI: 30, TrunkSupported: true, MemberENIs: 30},
		{ID: "ecs.c7.large", ENIs: 3, IPv4PerENI: 6, IPv6PerENI: 6, TrunkSupported: true, MemberENIs: 6},
		{ID: "ecs.c7.xlarge", ENIs: 4, IPv4PerENI: 15, IPv6PerENI: 15, TrunkSupported: true, MemberENIs: 15},
		{ID: "ecs.g6.large", ENIs: 2, IPv4PerENI: 6, IPv6PerENI: 1},
		{ID: "ecs.g6.xlarge", ENIs: 3, IPv4PerENI: 10, IPv6PerENI: 1},
		{ID: "ecs.g6.2xlarge", ENIs: 4, IPv4PerENI: 10, IPv6PerENI: 1},
		{ID: "ecs.sim.tiny", ENIs: 2, IPv4PerENI: 3},
	}
}

// DefaultConfig returns a small region: cn-hangzhou, VPC 172.30.0.0/16 with
// vSwitches vsw-sim-a (172.30.1.0/24) and vsw-sim-b (172.30.2.0/24) in
// cn-hangzhou-h, attach in 500ms, detach in 200ms, no describe lag, no
// credentials (open mode), the RAM role "VeniSimNodeRole" on every
// instance and the account's API quotas of DefaultQuotas.
func DefaultConfig() Config {
	return Config{
		RegionID: "cn-hangzhou",
		VPCID:    "vpc-sim-main",
		VPCCIDR:  netip.MustParsePrefix("172.30.0.0/16"),
		VSwitches: []VSwitchSpec{
			{
				ID: "vsw-sim-a", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.1.0/24"),
				IPv6CIDR: netip.MustParsePrefix("fd00:ac1e:1::/64"),
			},
			{ID: "vsw-sim-b", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.2.0/24")},
		},
		AttachDelay:    500 * time.Millisecond,
		DetachDelay:    200 * time.Millisecond,
		DefaultRAMRole: DefaultRAMRoleName,
		Quotas:         DefaultQuotas(),
	}
}

// DefaultRAMRoleName is the RAM role DefaultConfig gives every instance.
const DefaultRAMRoleName = "VeniSimNodeRole"

// withDefaults fills the fields whose zero value means "default".
func (cfg Config) withDefaults() Config {
	if cfg.InstanceTypes == nil {
		cfg.InstanceTypes = DefaultInstanceTypes()
	}
	if cfg.SecurityGroups == nil {
		cfg.SecurityGroups = []string{DefaultSecurityGroupID}
	}
	return cfg
}

func (cfg Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.RegionID == "" {
		return bad("region id is empty")
	}
	if !strings.HasPrefix(cfg.VPCID, "vpc-") {
		return bad("vpc id %q must start with vpc-", cfg.VPCID)
	}
	if !cfg.VPCCIDR.IsValid() || !cfg.VPCCIDR.Addr().Is4() || cfg.VPCCIDR != cfg.VPCCIDR.Masked() {
		return bad("vpc cidr %s must be a masked IPv4 prefix", cfg.VPCCIDR)
	}
	if len(cfg.VSwitches) == 0 {
		return bad("no vswitches")
	}
	seen := map[string]bool{}
	for i, v := range cfg.VSwitches {
		switch {
		case !strings.HasPrefix(v.ID, "vsw-"):
			return bad("vswitch id %q must start with vsw-", v.ID)
		case seen[v.ID]:
			return bad("vswitch id %q appears twice", v.ID)
		case v.ZoneID == "":
			return bad("vswitch %s has no zone", v.ID)
		case !v.CIDR.IsValid() || v.CIDR != v.CIDR.Masked():
			return bad("vswitch %s cidr %s must be a masked prefix", v.ID, v.CIDR)
		case v.CIDR.Bits() < 16 || v.CIDR.Bits() > 29:
			return bad("vswitch %s cidr %s must be between /16 and /29 (as the cloud allows)", v.ID, v.CIDR)
		case !cfg.VPCCIDR.Contains(v.CIDR.Addr()) || v.CIDR.Bits() < cfg.VPCCIDR.Bits():
			return bad("vswitch %s cidr %s is outside vpc cidr %s", v.ID, v.CIDR, cfg.VPCCIDR)
		}
		if v.IPv6CIDR.IsValid() && (!v.IPv6CIDR.Addr().Is6() || v.IPv6CIDR.Addr().Is4In6() || v.IPv6CIDR.Bits() != 64 || v.IPv6CIDR != v.IPv6CIDR.Masked()) {
			return bad("vswitch %s ipv6 cidr %s must be a masked IPv6 /64", v.ID, v.IPv6CIDR)
		}
		for _, o := range cfg.VSwitches[:i] {
			if v.IPv6CIDR.IsValid() && o.IPv6CIDR.IsValid() && o.IPv6CIDR.Overlaps(v.IPv6CIDR) {
				return bad("vswitch %s ipv6 cidr %s overlaps %s (%s)", v.ID, v.IPv6CIDR, o.ID, o.IPv6CIDR)
			}
			if o.CIDR.Overlaps(v.CIDR) {
				return bad("vswitch %s cidr %s overlaps %s (%s)", v.ID, v.CIDR, o.ID, o.CIDR)
			}
		}
		seen[v.ID] = true
	}
	if len(cfg.InstanceTypes) == 0 {
		return bad("no instance types")
	}
	types := map[string]bool{}
	for _, t := range cfg.InstanceTypes {
		switch {
		case t.ID == "" || types[t.ID]:
			return bad("instance type %q is empty or appears twice", t.ID)
		case t.ENIs < 1 || t.IPv4PerENI < 1 || t.IPv4PerENI > maxIPsPerENI:
			return bad("instance type %s needs at least 1 eni and 1..%d ipv4 per eni", t.ID, maxIPsPerENI)
		case t.IPv6PerENI < 0 || t.MemberENIs < 0:
			return bad("instance type %s has negative quotas", t.ID)
		}
		types[t.ID] = true
	}
	for _, sg := range cfg.SecurityGroups {
		if !strings.HasPrefix(sg, "sg-") {
			return bad("security group id %q must start with sg-", sg)
		}
	}
	if !validRoleName(cfg.DefaultRAMRole) {
		return bad("ram role %q: want letters, digits, '.', '-' or '_'", cfg.DefaultRAMRole)
	}
	if cfg.AttachDelay < 0 || cfg.DetachDelay < 0 || cfg.DescribeLag < 0 || cfg.STSLifetime < 0 {
		return bad("delays must not be negative")
	}
	if err := cfg.Quotas.Validate(); err != nil {
		return err
	}
	for k, v := range cfg.Credentials {
		if k == "" || v == "" {
			return bad("credentials need a non-empty access key id and secret")
		}
	}
	return nil
}

// validRoleName accepts what RAM role names look like, and the empty name.
func validRoleName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return len(s) <= 64
}
