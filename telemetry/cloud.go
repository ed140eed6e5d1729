package telemetry

import (
	"strings"
	"time"
)

// ObserveCloud records one cloud API attempt: its action, its result code
// and how long it took. Its signature is eni.AlibabaOptions.Observe's; the
// daemon wires it through node.Env.ObserveCloud. Safe for concurrent use.
func (e *Exporter) ObserveCloud(action, code string, took time.Duration) {
	if e == nil {
		return
	}
	e.cloudMu.Lock()
	action = e.cloudLimits.value("action", action)
	code = e.cloudLimits.value("result/"+action, code)
	e.cloudMu.Unlock()
	e.m.cloudCalls.With(action, code).Inc()
	e.m.cloudDuration.With(action).Observe(took.Seconds())
	if throttled(code) {
		e.m.cloudThrottled.With(action).Inc()
	}
}

// throttled reports whether an API error code means the call was refused
// by flow control. It mirrors package eni's classification (kindOf:
// ErrThrottled), which is not exported by code.
func throttled(code string) bool {
	return strings.HasPrefix(code, "Throttling") || code == "ServiceUnavailable"
}
