package sim

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The account's API budgets, as Alibaba Cloud throttles its OpenAPI (the
// "API throttling" page of ECS, and the VPC quota table keyed by
// regionId, API and ParentUid):
//
//   - every API (action) has its own quota of calls per minute, per region,
//     per account; every caller of the account shares it (RAM users, instance
//     roles, the console, every cluster). The sim serves one region of one
//     account, so its quota is per action and counts every authenticated
//     call;
//   - the minute is a fixed window: an API throttled in minute T is refused
//     until minute T+1 begins, whoever asks. Windows start on the minute
//     (on multiples of Quotas.Window since the Unix epoch);
//   - an optional account-wide budget bounds all actions together;
//   - a refused call is answered HTTP 400 with code Throttling.User ("user
//     flow control": a user's budget on one API, or on all of them). The
//     cloud also answers Throttling.Api (the API's own limit over all
//     accounts) and Throttling (request throttling); the sim has a single
//     account, so those two come only from an injected fault
//     (Fault.ThrottleCode);
//   - every answer, success or not, carries x-ratelimit-user-api (the
//     action's budget) and x-ratelimit-user (the account's) as
//     "Limit:N,Remain:N,TimeLeft:MS,Reset:UNIX": Remain counts what the
//     window still admits after this call, TimeLeft is the milliseconds to
//     the window's end (what the SDKs read as the retry-after of a
//     throttled call), and Reset is that end as Unix seconds (the sim's
//     choice: the published SDKs read only TimeLeft).
//
// Calls refused by a quota are counted apart from those an injected fault
// throttled (ActionStats), and per window (QuotaWindow).

// Header names of the rate-limit state on every OpenAPI answer.
const (
	HeaderRateLimitUserAPI = "x-ratelimit-user-api"
	HeaderRateLimitUser    = "x-ratelimit-user"
)

// Throttling codes: Alibaba's SDKs treat all three as throttling.
const (
	CodeThrottlingPlain = "Throttling"
	CodeThrottlingUser  = "Throttling.User"
	CodeThrottlingAPI   = "Throttling.Api"
)

// throttleMessages are the cloud's texts for the three codes.
var throttleMessages = map[string]string{
	CodeThrottlingPlain: "Request was denied due to request throttling.",
	CodeThrottlingUser:  "Request was denied due to user flow control.",
	CodeThrottlingAPI:   "Request was denied due to api flow control.",
}

// DefaultQuotaWindow is the throttling window: Alibaba's minute.
const DefaultQuotaWindow = time.Minute

// quotaHistory is how many windows a Snapshot reports (an hour of minutes).
const quotaHistory = 60

// Quotas are the account's API budgets in the sim's region. The zero value
// throttles nothing.
type Quotas struct {
	// PerAPI is the calls each action may take per window. An action not
	// listed (or listed with 0) is not limited by its own budget.
	PerAPI map[string]int `json:"perApi,omitempty"`
	// Account bounds the calls of every action together per window; 0
	// leaves them unbounded (the x-ratelimit-user header then reports the
	// sum of PerAPI, which the account can never exceed).
	Account int `json:"account,omitempty"`
	// Window is the length of a window; 0 is DefaultQuotaWindow. Tests
	// shorten it.
	Window time.Duration `json:"window,omitempty"`
}

// DefaultQuotas returns budgets near what Terway's client assumes for an
// account (its pkg/aliyun/client/ratelimit.go, calls per minute), since
// Alibaba publishes no per-API numbers for ECS: Describe 800,
// Create/Attach/Delete 500, Detach and Assign/Unassign 400, DescribeVSwitches,
// DescribeInstanceTypes and TagResources (ENI tags) 300.
func DefaultQuotas() Quotas {
	return Quotas{PerAPI: map[string]int{
		"DescribeNetworkInterfaces":  800,
		"CreateNetworkInterface":     500,
		"AttachNetworkInterface":     500,
		"DeleteNetworkInterface":     500,
		"DetachNetworkInterface":     400,
		"AssignPrivateIpAddresses":   400,
		"UnassignPrivateIpAddresses": 400,
		"AssignIpv6Addresses":        400,
		"UnassignIpv6Addresses":      400,
		"DescribeVSwitches":          300,
		"DescribeInstanceTypes":      300,
		"TagResources":               300,
	}}
}

// On reports whether q throttles anything.
func (q Quotas) On() bool {
	if q.Account > 0 {
		return true
	}
	for _, n := range q.PerAPI {
		if n > 0 {
			return true
		}
	}
	return false
}

func (q Quotas) window() time.Duration {
	if q.Window > 0 {
		return q.Window
	}
	return DefaultQuotaWindow
}

// accountLimit is the account's budget, or the sum of the actions' when
// unbounded (0 when nothing is limited).
func (q Quotas) accountLimit() int {
	if q.Account > 0 {
		return q.Account
	}
	sum := 0
	for _, n := range q.PerAPI {
		sum += max(n, 0)
	}
	return sum
}

// Validate checks q: known actions, no negative budget or window. May
// return an error wrapping ErrInvalidConfig.
func (q Quotas) Validate() error {
	if q.Window < 0 {
		return fmt.Errorf("quota window %s: %w (must not be negative)", q.Window, ErrInvalidConfig)
	}
	if q.Account < 0 {
		return fmt.Errorf("account quota %d: %w (must not be negative)", q.Account, ErrInvalidConfig)
	}
	for a, n := range q.PerAPI {
		if _, ok := actions[a]; !ok {
			return fmt.Errorf("quota of %q: %w (not an action the sim serves)", a, ErrInvalidConfig)
		}
		if n < 0 {
			return fmt.Errorf("quota of %s %d: %w (must not be negative)", a, n, ErrInvalidConfig)
		}
	}
	return nil
}

// QuotaWindow counts the calls of one window, by action.
type QuotaWindow struct {
	Start     time.Time      `json:"start"`
	Calls     map[string]int `json:"calls"`               // every authenticated call
	Throttled map[string]int `json:"throttled,omitempty"` // refused by a quota
}

// ThrottlingState is the quotas in force and how the recent windows went.
type ThrottlingState struct {
	Quotas Quotas `json:"quotas"`
	// Blocked are the actions refused until the current window ends, with
	// that end.
	Blocked map[string]time.Time `json:"blocked,omitempty"`
	// Windows are the recent windows, oldest first, the current one last
	// (at most an hour of them at the default window).
	Windows []QuotaWindow `json:"windows,omitempty"`
}

// quotaBook is the Cloud's throttling state; the Cloud's mutex guards it.
type quotaBook struct {
	q       Quotas
	index   int64          // the current window's number since the epoch
	used    map[string]int // admitted calls in the current window
	total   int            // admitted calls of every action in it
	blocked map[string]bool
	windows []QuotaWindow // newest last, the current one included
}

func newQuotaBook(q Quotas) *quotaBook {
	return &quotaBook{q: q, index: -1, used: map[string]int{}, blocked: map[string]bool{}}
}

// roll moves to the window holding now.
func (b *quotaBook) roll(now time.Time) {
	w := b.q.window()
	idx := now.UnixNano() / int64(w)
	if idx == b.index {
		return
	}
	b.index = idx
	clear(b.used)
	clear(b.blocked)
	b.total = 0
	b.windows = append(b.windows, QuotaWindow{Start: time.Unix(0, idx*int64(w)).UTC(), Calls: map[string]int{}})
	if len(b.windows) > quotaHistory {
		b.windows = slices.Delete(b.windows, 0, len(b.windows)-quotaHistory)
	}
}

// end is when the current window ends.
func (b *quotaBook) end() time.Time {
	w := b.q.window()
	return time.Unix(0, (b.index+1)*int64(w))
}

// admit counts one call of action at now and tells whether the quotas let
// it through; it writes the rate-limit headers either way.
func (b *quotaBook) admit(action string, now time.Time, h http.Header) bool {
	b.roll(now)
	cur := &b.windows[len(b.windows)-1]
	cur.Calls[action]++
	limit, acct := b.q.PerAPI[action], b.q.accountLimit()
	ok := !b.blocked[action] && (limit <= 0 || b.used[action] < limit) && (b.q.Account <= 0 || b.total < b.q.Account)
	if ok {
		b.used[action]++
		b.total++
	} else {
		b.blocked[action] = true // refused until T+1, whoever asks
		if cur.Throttled == nil {
			cur.Throttled = map[string]int{}
		}
		cur.Throttled[action]++
	}
	end := b.end()
	left := max(end.Sub(now), 0)
	if limit > 0 {
		h.Set(HeaderRateLimitUserAPI, rateLimitValue(limit, limit-b.used[action], left, end))
	}
	if acct > 0 {
		h.Set(HeaderRateLimitUser, rateLimitValue(acct, acct-b.total, left, end))
	}
	return ok
}

// rateLimitValue formats one x-ratelimit-* header.
func rateLimitValue(limit, remain int, left time.Duration, end time.Time) string {
	return "Limit:" + strconv.Itoa(limit) + ",Remain:" + strconv.Itoa(max(remain, 0)) +
		",TimeLeft:" + strconv.FormatInt(left.Milliseconds(), 10) + ",Reset:" + strconv.FormatInt(end.Unix(), 10)
}

// state copies the book for a Snapshot.
func (b *quotaBook) state(now time.Time) ThrottlingState {
	s := ThrottlingState{Quotas: cloneQuotas(b.q)}
	if b.index == now.UnixNano()/int64(b.q.window()) && len(b.blocked) > 0 {
		s.Blocked = map[string]time.Time{}
		for a := range b.blocked {
			s.Blocked[a] = b.end().UTC()
		}
	}
	for _, w := range b.windows {
		s.Windows = append(s.Windows, QuotaWindow{Start: w.Start, Calls: maps.Clone(w.Calls), Throttled: maps.Clone(w.Throttled)})
	}
	return s
}

func cloneQuotas(q Quotas) Quotas {
	q.PerAPI = maps.Clone(q.PerAPI)
	return q
}

// SetQuotas replaces the quotas at run time; the current window's counts
// stay, so a lowered quota may refuse at once. May return an error wrapping
// ErrInvalidConfig.
func (c *Cloud) SetQuotas(q Quotas) error {
	if err := q.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.quotas
	c.quotas = newQuotaBook(cloneQuotas(q))
	if old.q.window() == q.window() {
		c.quotas.index, c.quotas.used, c.quotas.total, c.quotas.windows = old.index, old.used, old.total, old.windows
	}
	return nil
}

// Throttling returns the quotas in force and the recent windows' counts.
func (c *Cloud) Throttling() ThrottlingState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.quotas.state(c.quotasNow())
}

// throttleError is the answer to a throttled call.
func throttleError(code string) *apiError {
	return newAPIError(http.StatusBadRequest, code, "%s", throttleMessages[code])
}
