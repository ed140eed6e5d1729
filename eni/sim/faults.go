package sim

import (
	"cmp"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"net/http"
	"time"
)

// Faults the sim can inject, all settable while it runs: per OpenAPI
// action (latency, throttling, 5xx), attaches that take long or never
// complete, Describe answers that trail writes, and vSwitches that run out
// of addresses. Every injected fault is counted by kind (FaultState).

// Fault kinds, as FaultState.Injected counts them.
const (
	FaultLatency          = "latency"           // a call delayed by Fault.Latency
	FaultThrottle         = "throttle"          // a call answered Throttling.User (or Fault.ThrottleCode)
	FaultServerError      = "server-error"      // a call answered InternalError or ServiceUnavailable (5xx)
	FaultAttachDelayed    = "attach-delayed"    // an attach that took AttachFault.Delay
	FaultAttachHeld       = "attach-held"       // an attach held in Attaching by AttachFault.Never
	FaultDescribeLagged   = "describe-lagged"   // a Describe answered from the lagged view
	FaultVSwitchExhausted = "vswitch-exhausted" // an allocation refused IpNotEnough only because of a VSwitchFault
)

// Fault is injected into the OpenAPI for one action (or every action).
// Faults apply after authentication, so a throttled or failed call was a
// well-formed one.
type Fault struct {
	Latency      time.Duration `json:"latency,omitempty"`      // added before the call is handled
	ThrottleRate float64       `json:"throttleRate,omitempty"` // probability of HTTP 400 ThrottleCode
	ThrottleCode string        `json:"throttleCode,omitempty"` // Throttling.User (the default), Throttling.Api or Throttling
	ErrorRate    float64       `json:"errorRate,omitempty"`    // probability of a server error with ErrorCode
	ErrorCode    string        `json:"errorCode,omitempty"`    // "InternalError" (500, the default) or "ServiceUnavailable" (503)
}

// AttachFault changes how long AttachNetworkInterface takes to complete.
type AttachFault struct {
	// Delay replaces Config.AttachDelay: the ENI stays Attaching this long.
	Delay time.Duration `json:"delay,omitempty"`
	// Never holds every attach in Attaching until the fault is cleared or
	// replaced; then each completes once its normal delay has passed.
	Never bool `json:"never,omitempty"`
}

// VSwitchFault makes a vSwitch run out of addresses: from when it is set,
// the vSwitch hands out at most MaxMore more addresses (net of addresses
// released meanwhile), then answers InvalidVSwitchId.IpNotEnough, and
// DescribeVSwitches reports the capped free count. Clearing it restores
// the real free count.
type VSwitchFault struct {
	MaxMore int `json:"maxMore"`
}

// VSwitchFaultState is a VSwitchFault as set, and how many addresses it
// still allows.
type VSwitchFaultState struct {
	MaxMore int `json:"maxMore"`
	Left    int `json:"left"`
}

// FaultState is every fault in force and the count of faults injected so
// far, by kind (the Fault* constants).
type FaultState struct {
	Actions     map[string]Fault             `json:"actions,omitempty"` // "" is every action without its own
	Attach      AttachFault                  `json:"attach"`
	DescribeLag time.Duration                `json:"describeLag"`
	VSwitches   map[string]VSwitchFaultState `json:"vswitches,omitempty"`
	Injected    map[string]int               `json:"injected"`
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

// SetAttachFault replaces the attach fault; a zero AttachFault removes it.
// Attaches held by a previous Never complete once their normal delay has
// passed (at once if it already has).
func (c *Cloud) SetAttachFault(f AttachFault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attachFault = f
	if !f.Never {
		c.releaseHeldAttachesLocked()
	}
}

// SetDescribeLag makes Describe* answer from the state as it was d ago; 0
// answers from the live state. Turned on while the sim runs, the lagged
// view starts from the state at that moment: changes from then on show up
// d late.
func (c *Cloud) SetDescribeLag(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("describe lag %s: %w (must not be negative)", d, ErrInvalidConfig)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setDescribeLagLocked(d)
	return nil
}

func (c *Cloud) setDescribeLagLocked(d time.Duration) {
	if d > 0 && c.describeLag == 0 {
		c.hist = newHistory(d)
		for _, e := range c.enis {
			c.hist.seedENI(e)
		}
		for _, v := range c.vsws {
			c.hist.seedFree(v.ID, v.free())
		}
	}
	c.describeLag = d
	c.hist.lag = d
}

// SetVSwitchFault caps what the vSwitch still hands out (see VSwitchFault).
// May return an error wrapping ErrUnknownVSwitch or ErrInvalidConfig.
func (c *Cloud) SetVSwitchFault(id string, f VSwitchFault) error {
	if f.MaxMore < 0 {
		return fmt.Errorf("vswitch %s fault: max more %d: %w (must not be negative)", id, f.MaxMore, ErrInvalidConfig)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vsws[id]
	if !ok {
		return fmt.Errorf("vswitch fault: %w: %s", ErrUnknownVSwitch, id)
	}
	v.limit, v.maxMore = len(v.used)+f.MaxMore, f.MaxMore
	c.hist.recordFree(time.Now(), v.ID, v.free())
	return nil
}

// ClearVSwitchFault removes the vSwitch's cap. May return an error
// wrapping ErrUnknownVSwitch.
func (c *Cloud) ClearVSwitchFault(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vsws[id]
	if !ok {
		return fmt.Errorf("vswitch fault: %w: %s", ErrUnknownVSwitch, id)
	}
	v.limit = -1
	c.hist.recordFree(time.Now(), v.ID, v.free())
	return nil
}

// ClearFaults removes every fault: the actions' faults, the attach fault
// (held attaches complete), the vSwitch caps, and a describe lag set at run
// time (back to Config.DescribeLag). The counts of injected faults stay.
func (c *Cloud) ClearFaults() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.faults)
	c.attachFault = AttachFault{}
	c.releaseHeldAttachesLocked()
	for _, v := range c.vsws {
		if v.limit >= 0 {
			v.limit = -1
			c.hist.recordFree(time.Now(), v.ID, v.free())
		}
	}
	c.setDescribeLagLocked(c.cfg.DescribeLag)
}

// Faults returns the faults in force and the injected counts.
func (c *Cloud) Faults() FaultState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faultStateLocked()
}

func (c *Cloud) faultStateLocked() FaultState {
	s := FaultState{
		Actions:     maps.Clone(c.faults),
		Attach:      c.attachFault,
		DescribeLag: c.describeLag,
		Injected:    maps.Clone(c.injected),
	}
	for id, v := range c.vsws {
		if v.limit < 0 {
			continue
		}
		if s.VSwitches == nil {
			s.VSwitches = map[string]VSwitchFaultState{}
		}
		s.VSwitches[id] = VSwitchFaultState{MaxMore: v.maxMore, Left: v.free()}
	}
	return s
}

// admit counts the call and applies the account's quotas (quotas.go); the
// rate-limit headers go on h whatever the answer.
func (c *Cloud) admit(name string, h http.Header) *apiError {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.statsLocked(name)
	st.Calls++
	if c.quotas.admit(name, c.quotasNow(), h) {
		return nil
	}
	st.Throttled++
	st.OverQuota++
	return throttleError(CodeThrottlingUser)
}

// injectFault applies the action's fault, sleeping without holding the
// model lock.
func (c *Cloud) injectFault(r *http.Request, name string) *apiError {
	c.mu.Lock()
	f, ok := c.faults[name]
	if !ok {
		f = c.faults[""]
	}
	st := c.statsLocked(name)
	if f.Latency > 0 {
		c.injected[FaultLatency]++
	}
	c.mu.Unlock()

	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	var aerr *apiError
	switch {
	case f.ThrottleRate > 0 && mathrand.Float64() < f.ThrottleRate:
		aerr = throttleError(cmp.Or(f.ThrottleCode, CodeThrottlingUser))
	case f.ErrorRate > 0 && mathrand.Float64() < f.ErrorRate:
		code, status := f.ErrorCode, http.StatusInternalServerError
		switch code {
		case "":
			code = CodeInternalError
		case CodeServiceUnavailable:
			status = http.StatusServiceUnavailable
		}
		aerr = newAPIError(status, code,
			"The request processing has failed due to some unknown error, exception or failure.")
	default:
		return nil
	}
	c.mu.Lock()
	if _, throttled := throttleMessages[aerr.code]; throttled {
		st.Throttled++
		c.injected[FaultThrottle]++
	} else {
		st.Faulted++
		c.injected[FaultServerError]++
	}
	c.mu.Unlock()
	return aerr
}

// attachDelayLocked is how long an attach takes now: the attach fault's
// delay, or the configured one.
func (c *Cloud) attachDelayLocked() time.Duration {
	if c.attachFault.Delay > 0 {
		return c.attachFault.Delay
	}
	return c.cfg.AttachDelay
}

// startAttachLocked schedules the completion of an attach that just began,
// or holds it when the attach fault says Never.
func (c *Cloud) startAttachLocked(e *eni, now time.Time) {
	e.attachStarted = now
	switch {
	case c.attachFault.Never:
		c.injected[FaultAttachHeld]++
		return
	case c.attachFault.Delay > 0:
		c.injected[FaultAttachDelayed]++
	}
	c.scheduleAttachLocked(e, c.attachDelayLocked())
}

func (c *Cloud) scheduleAttachLocked(e *eni, after time.Duration) {
	if c.closed {
		return
	}
	id := e.id
	e.timer = time.AfterFunc(after, func() { c.completeAttach(id) })
}

// releaseHeldAttachesLocked schedules every attach a Never fault held.
func (c *Cloud) releaseHeldAttachesLocked() {
	now := time.Now()
	for _, e := range c.enis {
		if e.status != statusAttaching || e.timer != nil {
			continue
		}
		c.scheduleAttachLocked(e, max(0, e.attachStarted.Add(c.attachDelayLocked()).Sub(now)))
	}
}

// ipNotEnoughLocked is the answer when vsw cannot give n addresses; it
// counts a vSwitch fault when only the cap stood in the way.
func (c *Cloud) ipNotEnoughLocked(vsw *vswitch, n int) *apiError {
	if vsw.realFree() >= n {
		c.injected[FaultVSwitchExhausted]++
	}
	return errIPNotEnough(vsw.ID)
}
