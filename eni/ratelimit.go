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
	ActionDescribeInstanceTypes      = "DescribeInstanceTypes"
	ActionDescribeVSwitches          = "DescribeVSwitches"
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

// DefaultRateLimits are sized like Terway's per-API buckets
// (pkg/aliyun/client/ratelimit.go): well under the account-wide OpenAPI
// quotas, which every node of a cluster shares.
func DefaultRateLimits() map[string]RateLimit {
	return map[string]RateLimit{
		ActionCreateNetworkInterface:     PerMinute(500),
		ActionAttachNetworkInterface:     PerMinute(500),
		ActionDetachNetworkInterface:     PerMinute(500),
		ActionDeleteNetworkInterface:     PerMinute(500),
		ActionDescribeNetworkInterfaces:  PerMinute(800),
		ActionAssignPrivateIPAddresses:   PerMinute(400),
		ActionUnassignPrivateIPAddresses: PerMinute(400),
		ActionDescribeInstanceTypes:      PerMinute(300),
		ActionDescribeVSwitches:          PerMinute(300),
	}
}

// defaultActionLimit applies to actions missing from the configured map.
var defaultActionLimit = PerMinute(300)

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
