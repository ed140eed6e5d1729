package eni

import (
	"strconv"
	"strings"
	"time"
)

// Alibaba's OpenAPI tells a throttled caller how long the window stays
// closed in x-ratelimit-user-api (this API for this account) and
// x-ratelimit-user (all APIs of the account), each
// "Limit:N,Remain:N,TimeLeft:ms,Reset:...". The SDK turns them into a
// RetryAfter (darabonba-openapi's GetThrottlingTimeLeft); veni reads them
// from the response headers.
var throttleHeaders = [...]string{"x-ratelimit-user-api", "x-ratelimit-user"}

// throttleTimeLeft returns the longest TimeLeft of the rate-limit headers
// whose Remain is 0, or zero when none says so.
func throttleTimeLeft(h map[string][]string) time.Duration {
	var left time.Duration
	for _, name := range throttleHeaders {
		for k, vs := range h {
			if !strings.EqualFold(k, name) {
				continue
			}
			for _, v := range vs {
				if d, ok := timeLeft(v); ok && d > left {
					left = d
				}
			}
		}
	}
	return left
}

// timeLeft reads one header value; ok is false unless Remain is 0 and
// TimeLeft a number of milliseconds.
func timeLeft(v string) (time.Duration, bool) {
	var remain, left string
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), ":")
		switch strings.ToLower(k) {
		case "remain":
			remain = val
		case "timeleft":
			left = val
		}
	}
	ms, err := strconv.ParseInt(left, 10, 64)
	if err != nil || ms <= 0 || strings.TrimSpace(remain) != "0" {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}
