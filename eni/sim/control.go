package sim

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Fault is injected into the OpenAPI for one action (or every action).
// Faults apply after authentication, so a throttled or failed call was a
// well-formed one.
type Fault struct {
	Latency      time.Duration // added before the call is handled
	ThrottleRate float64       // probability of HTTP 400 Throttling.User
	ErrorRate    float64       // probability of HTTP 500 with ErrorCode
	ErrorCode    string        // default "InternalError"
}

// SetFault sets the fault for action ("" applies to every action that has
// no fault of its own). A zero Fault removes it.
func (c *Cloud) SetFault(action string, f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == (Fault{}) {
		delete(c.faults, action)
		return
	}
	c.faults[action] = f
}

// ClearFaults removes every fault.
func (c *Cloud) ClearFaults() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.faults)
}

// ActionStats counts the authenticated calls of one action.
type ActionStats struct {
	Calls     int // every call, faulted or not
	Throttled int // answered Throttling.User by a fault
	Faulted   int // answered a server error by a fault
	Errors    int // answered an error by the model (quota, state, ...)
}

// Snapshot is a JSON-able copy of the live model (not lagged).
type Snapshot struct {
	Instances    []InstanceSnapshot     `json:"instances"`
	ENIs         []ENISnapshot          `json:"enis"`
	VSwitches    []VSwitchSnapshot      `json:"vswitches"`
	Calls        map[string]ActionStats `json:"calls"`
	FabricErrors int                    `json:"fabricErrors"`
	LastFabric   string                 `json:"lastFabricError,omitempty"`
}

// InstanceSnapshot is one instance in a Snapshot.
type InstanceSnapshot struct {
	ID              string     `json:"id"`
	Hostname        string     `json:"hostname"`
	Type            string     `json:"type"`
	ZoneID          string     `json:"zoneId"`
	VSwitchID       string     `json:"vswitchId"`
	SecurityGroupID string     `json:"securityGroupId"`
	PrimaryENIID    string     `json:"primaryEniId"`
	PrimaryIP       netip.Addr `json:"primaryIp"`
}

// ENISnapshot is one ENI in a Snapshot.
type ENISnapshot struct {
	ID               string            `json:"id"`
	Type             string            `json:"type"`
	Status           string            `json:"status"`
	InstanceID       string            `json:"instanceId,omitempty"`
	DeviceIndex      int               `json:"deviceIndex"`
	MAC              string            `json:"mac"`
	VSwitchID        string            `json:"vswitchId"`
	SecurityGroupIDs []string          `json:"securityGroupIds"`
	IPs              []netip.Addr      `json:"ips"`
	Tags             map[string]string `json:"tags,omitempty"`
	CreationTime     time.Time         `json:"creationTime"`
}

// VSwitchSnapshot is one vSwitch in a Snapshot.
type VSwitchSnapshot struct {
	ID      string       `json:"id"`
	ZoneID  string       `json:"zoneId"`
	CIDR    netip.Prefix `json:"cidr"`
	Gateway netip.Addr   `json:"gateway"`
	Free    int          `json:"free"`
	Total   int          `json:"total"`
}

// Snapshot copies the live state of the region.
func (c *Cloud) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Calls: map[string]ActionStats{}, FabricErrors: c.fabricErrors, LastFabric: c.lastFabric}
	for _, id := range c.instOrder {
		i := c.instances[id]
		s.Instances = append(s.Instances, InstanceSnapshot{
			ID: i.ID, Hostname: i.Hostname, Type: i.Type, ZoneID: i.ZoneID, VSwitchID: i.VSwitchID,
			SecurityGroupID: i.SecurityGroupID, PrimaryENIID: i.PrimaryENIID, PrimaryIP: i.PrimaryIP,
		})
	}
	for _, e := range c.liveENIsLocked() {
		es := ENISnapshot{
			ID: e.id, Type: e.typ, Status: e.status, InstanceID: e.instanceID, DeviceIndex: e.deviceIndex,
			MAC: e.mac.String(), VSwitchID: e.vswID, SecurityGroupIDs: slices.Clone(e.sgs),
			IPs: slices.Clone(e.ips), CreationTime: e.created,
		}
		if len(e.tags) > 0 {
			es.Tags = map[string]string{}
			for _, t := range e.tags {
				es.Tags[t.Key] = t.Value
			}
		}
		s.ENIs = append(s.ENIs, es)
	}
	for _, spec := range c.cfg.VSwitches {
		v := c.vsws[spec.ID]
		s.VSwitches = append(s.VSwitches, VSwitchSnapshot{
			ID: v.ID, ZoneID: v.ZoneID, CIDR: v.CIDR, Gateway: v.gateway, Free: v.free(), Total: v.total,
		})
	}
	for action, st := range c.stats {
		s.Calls[action] = *st
	}
	return s
}

// liveENIsLocked returns the live ENIs (not copies) in creation order.
func (c *Cloud) liveENIsLocked() []*eni {
	out := slices.Collect(maps.Values(c.enis))
	slices.SortFunc(out, func(a, b *eni) int { return cmp.Compare(a.seq, b.seq) })
	return out
}
