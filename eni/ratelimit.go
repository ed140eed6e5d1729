package eni

import (
	"sync"

	"golang.org/x/time/rate"
)

// OpenAPI action names, as the rate limits and metrics label them.
const (
	ActionCreateNetworkInterface     = "CreateNetworkInterface"
	ActionAttachNetworkInterface     = "AttachNetworkInterface"
	ActionDetachNetworkInterface     = "DetachNetworkInterface"
	ActionDeleteNetworkInterface     = "DeleteNetworkInterface"
	ActionDescribeNetworkInterfaces  = "DescribeNetworkInterfaces"
	ActionAssignPrivateIPAddresses   = "AssignPrivateIpAddresses"
	ActionUnassignPrivateIPAddresses = "UnassignPrivateIpAddresses"
	ActionAssignIPv6Addresses        = "AssignIpv6Addresses"
	ActionUnassignIPv6Addresses      = "UnassignIpv6Addresses"
	ActionDescribeInstanceTypes      = "DescribeInstanceTypes"
	ActionDescribeVSwitches          = "DescribeVSwitches"
	ActionTagResources               = "TagResources"
)

// RateLimit is a token bucket for one action.
type RateLimit struct {
	PerSecond rate.Limit // sustained calls per second
	Burst     int        // calls allowed at once after a quiet period
}

// PerMinute returns a RateLimit of n calls a minute whose burst is a tenth
// of that (at least 1), so a burst never spends more than six seconds' worth
// of the account's quota.
func PerMinute(n int) RateLimit {
	return RateLimit{PerSecond: rate.Limit(float64(n) / 60), Burst: max(1, n/10)}
}

// DefaultRateLimits are one node's budget per action. The cloud's quota is
// per API, per region and per account, shared by every node of every
// cluster in it (scale.md: Terway assumes 400–800 calls a minute per API);
// a node's steady state makes no call (it reads instance metadata) and its
// bursts are batched (10 addresses per Assign), so a node needs little,
// and a thousand booting at once must not each be allowed the account's
// whole minute. Override with rate_limit {action: calls per minute}.
func DefaultRateLimits() map[string]RateLimit {
	return map[string]RateLimit{
		ActionCreateNetworkInterface:     {PerSecond: rate.Limit(20.0 / 60), Burst: 4},
		ActionAttachNetworkInterface:     {PerSecond: rate.Limit(20.0 / 60), Burst: 4},
		ActionDetachNetworkInterface:     {PerSecond: rate.Limit(20.0 / 60), Burst: 4},
		ActionDeleteNetworkInterface:     {PerSecond: rate.Limit(20.0 / 60), Burst: 4},
		ActionDescribeNetworkInterfaces:  {PerSecond: rate.Limit(60.0 / 60), Burst: 10},
		ActionAssignPrivateIPAddresses:   {PerSecond: rate.Limit(60.0 / 60), Burst: 10},
		ActionUnassignPrivateIPAddresses: {PerSecond: rate.Limit(60.0 / 60), Burst: 10},
		ActionAssignIPv6Addresses:        {PerSecond: rate.Limit(60.0 / 60), Burst: 10},
		ActionUnassignIPv6Addresses:      {PerSecond: rate.Limit(60.0 / 60), Burst: 10},
		ActionDescribeInstanceTypes:      {PerSecond: rate.Limit(6.0 / 60), Burst: 2},
		ActionDescribeVSwitches:          {PerSecond: rate.Limit(20.0 / 60), Burst: 4},
		ActionTagResources:               {PerSecond: rate.Limit(20.0 / 60), Burst: 4},
	}
}

// defaultActionLimit applies to actions missing from the configured map.
var defaultActionLimit = RateLimit{PerSecond: rate.Limit(20.0 / 60), Burst: 4}

// limiters hands out one token bucket per action, created on first use.
type limiters struct {
	mu      sync.Mutex
	limits  map[string]RateLimit
	buckets map[string]*rate.Limiter
}

func newLimiters(limits map[string]RateLimit) *limiters {
	merged := DefaultRateLimits()
	for k, v := range limits {
		merged[k] = v
	}
	return &limiters{limits: merged, buckets: make(map[string]*rate.Limiter)}
}

func (l *limiters) get(action string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[action]; ok {
		return b
	}
	lim, ok := l.limits[action]
	if !ok {
		lim = defaultActionLimit
	}
	b := rate.NewLimiter(lim.PerSecond, max(1, lim.Burst))
	l.buckets[action] = b
	return b
}
