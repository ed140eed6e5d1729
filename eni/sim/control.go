package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// The control API is how "veni sim" commands and tests drive a running sim:
// its state and its faults. It changes the cloud behind the OpenAPI, so it
// only answers local, non-browser clients (see ControlHandler).

// FaultRequest is one change of the sim's faults, the body of
// POST /v1/faults. Each part that is set is applied; the first six fields
// are the per-action fault as older sims took them.
type FaultRequest struct {
	Action       string        `json:"action"` // "" means every action without its own fault
	Latency      time.Duration `json:"latency"`
	ThrottleRate float64       `json:"throttleRate"`
	ThrottleCode string        `json:"throttleCode,omitempty"` // of the throttled calls: Throttling.User (default), Throttling.Api or Throttling
	ErrorRate    float64       `json:"errorRate"`
	ErrorCode    string        `json:"errorCode,omitempty"`
	// Clear removes the fault of Action, or of VSwitchID; with neither and
	// nothing else set it removes every fault (ClearFaults).
	Clear bool `json:"clear"`

	Attach         *AttachFault   `json:"attach,omitempty"`         // replaces the attach fault; {} removes it
	DescribeLag    *time.Duration `json:"describeLag,omitempty"`    // sets the describe lag; 0 removes it
	VSwitchID      string         `json:"vswitchId,omitempty"`      // the vSwitch VSwitchMaxMore or Clear is about
	VSwitchMaxMore *int           `json:"vswitchMaxMore,omitempty"` // caps VSwitchID (VSwitchFault)
}

// actionFault is the per-action part of r.
func (r FaultRequest) actionFault() Fault {
	return Fault{Latency: r.Latency, ThrottleRate: r.ThrottleRate, ThrottleCode: r.ThrottleCode, ErrorRate: r.ErrorRate, ErrorCode: r.ErrorCode}
}

// ApplyFault applies r. May return an error wrapping ErrInvalidConfig or
// ErrUnknownVSwitch, and then changes nothing.
func (c *Cloud) ApplyFault(r FaultRequest) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("fault: %s: %w", fmt.Sprintf(format, args...), ErrInvalidConfig)
	}
	f := r.actionFault()
	switch {
	case f.ThrottleRate < 0 || f.ThrottleRate > 1 || f.ErrorRate < 0 || f.ErrorRate > 1:
		return bad("rates must be within 0..1")
	case f.Latency < 0:
		return bad("latency %s is negative", f.Latency)
	case f.ErrorCode != "" && f.ErrorCode != CodeInternalError && f.ErrorCode != CodeServiceUnavailable:
		return bad("error code %q: want %s or %s", f.ErrorCode, CodeInternalError, CodeServiceUnavailable)
	case f.ThrottleCode != "" && throttleMessages[f.ThrottleCode] == "":
		return bad("throttle code %q: want %s, %s or %s", f.ThrottleCode, CodeThrottlingUser, CodeThrottlingAPI, CodeThrottlingPlain)
	case r.Attach != nil && r.Attach.Delay < 0:
		return bad("attach delay %s is negative", r.Attach.Delay)
	case r.DescribeLag != nil && *r.DescribeLag < 0:
		return bad("describe lag %s is negative", *r.DescribeLag)
	case r.VSwitchMaxMore != nil && *r.VSwitchMaxMore < 0:
		return bad("vswitch max more %d is negative", *r.VSwitchMaxMore)
	case r.VSwitchMaxMore != nil && r.VSwitchID == "":
		return bad("vswitch max more needs a vswitch id")
	}
	if r.VSwitchID != "" {
		c.mu.Lock()
		_, ok := c.vsws[r.VSwitchID]
		c.mu.Unlock()
		if !ok {
			return fmt.Errorf("fault: %w: %s", ErrUnknownVSwitch, r.VSwitchID)
		}
	}
	if r.Clear {
		switch {
		case r.VSwitchID != "":
			return c.ClearVSwitchFault(r.VSwitchID)
		case r.Action != "" || f != (Fault{}):
			c.SetFault(r.Action, Fault{})
		case r.Attach == nil && r.DescribeLag == nil:
			c.ClearFaults()
		}
	} else if f != (Fault{}) {
		c.SetFault(r.Action, f)
	}
	if r.Attach != nil {
		c.SetAttachFault(*r.Attach)
	}
	if r.DescribeLag != nil {
		if err := c.SetDescribeLag(*r.DescribeLag); err != nil {
			return err
		}
	}
	if r.VSwitchMaxMore != nil {
		return c.SetVSwitchFault(r.VSwitchID, VSwitchFault{MaxMore: *r.VSwitchMaxMore})
	}
	return nil
}

// ControlHandler serves the control API:
//
//	GET  /v1/faults  the FaultState
//	POST /v1/faults  apply a FaultRequest (JSON); answers the new FaultState
//	GET  /v1/cloud   the Snapshot
//	GET  /v1/quotas  the ThrottlingState
//	POST /v1/quotas  replace the Quotas (JSON); answers the new ThrottlingState
//	POST /v1/api     run one OpenAPI action for the operator (an APICall,
//	                 JSON); answers the action's JSON answer, or 400 with
//	                 its error code and message
//
// It does not check who asks: mount it only behind a guard that answers
// local command-line clients alone, as the sim's control endpoint
// (package cluster) does.
func (c *Cloud) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, c.Faults())
	})
	mux.HandleFunc("POST /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		var req FaultRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "decode fault request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.ApplyFault(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.log.Info("fault", "request", req)
		writeControlJSON(w, c.Faults())
	})
	mux.HandleFunc("POST /v1/api", func(w http.ResponseWriter, r *http.Request) {
		var call APICall
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&call); err != nil {
			http.Error(w, "decode api call: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := c.Call(call)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.log.Info("operator api call", "action", call.Action)
		writeControlJSON(w, resp)
	})
	mux.HandleFunc("GET /v1/cloud", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, c.Snapshot())
	})
	mux.HandleFunc("GET /v1/quotas", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, c.Throttling())
	})
	mux.HandleFunc("POST /v1/quotas", func(w http.ResponseWriter, r *http.Request) {
		var q Quotas
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			http.Error(w, "decode quotas: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.SetQuotas(q); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.log.Info("quotas", "quotas", q)
		writeControlJSON(w, c.Throttling())
	})
	return mux
}

func writeControlJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ActionStats counts the authenticated calls of one action.
type ActionStats struct {
	Calls     int // every call, throttled, faulted or not
	Throttled int // answered a Throttling code, by the quotas or by a fault
	OverQuota int // of Throttled, those the account's quotas refused (Quotas)
	Faulted   int // answered a server error by a fault
	Errors    int // answered an error by the model (ENI quota, state, ...)
}

// Snapshot is a JSON-able copy of the live model (not lagged).
type Snapshot struct {
	Instances    []InstanceSnapshot     `json:"instances"`
	ENIs         []ENISnapshot          `json:"enis"`
	VSwitches    []VSwitchSnapshot      `json:"vswitches"`
	Calls        map[string]ActionStats `json:"calls"`
	Faults       FaultState             `json:"faults"`
	Throttling   ThrottlingState        `json:"throttling"`
	STSIssued    int                    `json:"stsIssued"`              // RAM role credentials handed out by metadata
	AuthFailures map[string]int         `json:"authFailures,omitempty"` // requests refused by authentication, by code
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
	RAMRole         string     `json:"ramRole,omitempty"`
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
	Prefixes         []netip.Prefix    `json:"prefixes,omitempty"` // delegated IPv4 /28s
	IPv6s            []netip.Addr      `json:"ipv6s,omitempty"`
	IPv6Prefixes     []netip.Prefix    `json:"ipv6Prefixes,omitempty"` // delegated IPv6 /80s
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
	s := Snapshot{Calls: map[string]ActionStats{}, Faults: c.faultStateLocked(), STSIssued: c.stsIssued,
		AuthFailures: maps.Clone(c.authFailures),
		FabricErrors: c.fabricErrors, LastFabric: c.lastFabric, Throttling: c.quotas.state(c.quotasNow())}
	for _, id := range c.instOrder {
		i := c.instances[id]
		s.Instances = append(s.Instances, InstanceSnapshot{
			ID: i.ID, Hostname: i.Hostname, Type: i.Type, ZoneID: i.ZoneID, VSwitchID: i.VSwitchID,
			SecurityGroupID: i.SecurityGroupID, PrimaryENIID: i.PrimaryENIID, PrimaryIP: i.PrimaryIP,
			RAMRole: i.RAMRole,
		})
	}
	for _, e := range c.liveENIsLocked() {
		es := ENISnapshot{
			ID: e.id, Type: e.apiType(), Status: e.status, InstanceID: e.instanceID, DeviceIndex: e.deviceIndex,
			MAC: e.mac.String(), VSwitchID: e.vswID, SecurityGroupIDs: slices.Clone(e.sgs),
			IPs: slices.Clone(e.ips), Prefixes: slices.Clone(e.prefixes), IPv6s: slices.Clone(e.ipv6s), IPv6Prefixes: slices.Clone(e.prefixes6),
			CreationTime: e.created,
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
