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
	ips             []netip.Addr // primary first
	tags            []tag
	sourceDestCheck bool
	deviceIndex     int // valid while InUse or Detaching
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
	c.tags = slices.Clone(e.tags)
	c.timer = nil
	return &c
}

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
