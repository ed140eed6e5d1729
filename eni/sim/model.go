package sim

import (
	"net"
	"net/netip"
	"slices"
	"time"
)

// ENI types and states as the ECS API names them.
const (
	eniTypePrimary   = "Primary"
	eniTypeSecondary = "Secondary"
	eniTypeTrunk     = "Trunk"
	eniTypeMember    = "Member" // what Describe calls a Secondary ENI attached through a trunk

	statusAvailable = "Available"
	statusAttaching = "Attaching"
	statusInUse     = "InUse"
	statusDetaching = "Detaching"
)

type tag struct{ Key, Value string }

// eni is the model of one elastic network interface.
type eni struct {
	id, typ, status string
	instanceID      string // set from attach start to detach end
	vswID, zoneID   string
	name            string
	description     string
	resourceGroupID string
	mac             net.HardwareAddr
	sgs             []string
	ips             []netip.Addr   // primary first
	prefixes        []netip.Prefix // delegated /28s, each one address slot
	ipv6s           []netip.Addr   // assigned IPv6 addresses
	prefixes6       []netip.Prefix // delegated IPv6 /80s, each one IPv6 slot
	tags            []tag
	sourceDestCheck bool
	deviceIndex     int    // valid while InUse or Detaching; a member's is its VLAN ID on the trunk
	trunkID         string // a member: the trunk it is attached through (attach start to detach end)
	created         time.Time
	seq             uint64    // creation order, for stable listing and NextToken
	attachStarted   time.Time // when the current attach began

	timer *time.Timer // pending attach or detach completion
}

// clone copies e for history and answers; the copy has no timer.
func (e *eni) clone() *eni {
	c := *e
	c.mac = slices.Clone(e.mac)
	c.sgs = slices.Clone(e.sgs)
	c.ips = slices.Clone(e.ips)
	c.prefixes = slices.Clone(e.prefixes)
	c.ipv6s = slices.Clone(e.ipv6s)
	c.prefixes6 = slices.Clone(e.prefixes6)
	c.tags = slices.Clone(e.tags)
	c.timer = nil
	return &c
}

// apiType is the ENI's Type as Describe shows it: a Secondary ENI attached
// through a trunk is a Member.
func (e *eni) apiType() string {
	if e.trunkID != "" {
		return eniTypeMember
	}
	return e.typ
}

// slots is how many of the ENI's private IPv4 quota it uses: one per
// address, one per delegated prefix.
func (e *eni) slots() int { return len(e.ips) + len(e.prefixes) }

// slots6 is how many of the ENI's IPv6 quota (EniIpv6AddressQuantity) it
// uses: an address or a delegated /80 takes one each.
func (e *eni) slots6() int { return len(e.ipv6s) + len(e.prefixes6) }

// routed returns every IPv4 the VPC delivers to the ENI and accepts from
// it: its private IPs and every address of each delegated prefix.
func (e *eni) routed() []netip.Addr {
	out := slices.Clone(e.ips)
	for _, p := range e.prefixes {
		for ip := p.Addr(); p.Contains(ip); ip = ip.Next() {
			out = append(out, ip)
		}
	}
	return out
}

// fabricAddrs is what the Fabric routes to the ENI and accepts from it:
// routed() then its IPv6 addresses.
func (e *eni) fabricAddrs() []netip.Addr { return append(e.routed(), e.ipv6s...) }

func (e *eni) hasTags(want []tag) bool {
	for _, w := range want {
		found := false
		for _, t := range e.tags {
			// A filter tag without a value matches any value of the key.
			if t.Key == w.Key && (w.Value == "" || t.Value == w.Value) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// instance is the model of one ECS instance.
type instance struct {
	Instance
	typ InstanceType
}
