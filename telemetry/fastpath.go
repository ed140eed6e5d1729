package telemetry

import (
	"reflect"
	"strings"

	"github.com/veni-cni/veni/ebpf/fastpath"
)

// FastPath is one sample of the node's datapath, taken by the daemon on
// its own goroutine (it alone holds the fast path's handles).
type FastPath struct {
	Active     string // the datapath pods get: "ebpf" or "plain"
	Configured string // what the configuration asked for: "auto", "ebpf" or "plain"

	// Running is set when the fast path is open and the sample below was
	// read; Err says why a read failed.
	Running   bool
	Err       error
	Counters  fastpath.Counters
	Endpoints int
}

// SetFastPath records a sample of the datapath.
func (e *Exporter) SetFastPath(s FastPath) {
	if e == nil {
		return
	}
	e.fastMu.Lock()
	defer e.fastMu.Unlock()
	e.fastDP.replace([]sample{{[]string{s.Active, s.Configured}, 1}})
	if s.Err != nil {
		e.m.fastSampleFailure.Inc()
		return
	}
	if !s.Running {
		return
	}
	for _, h := range []struct {
		name string
		c    *fastpath.HookCounters
	}{
		{"from_pod", &s.Counters.FromPod}, {"to_pod", &s.Counters.ToPod}, {"from_eni", &s.Counters.FromENI},
		// IPv6, as veni status names its hooks.
		{"from_pod6", &s.Counters.IPv6.FromPod}, {"to_pod6", &s.Counters.IPv6.ToPod}, {"from_eni6", &s.Counters.IPv6.FromENI},
	} {
		forEachCounter(h.c, func(name string, v uint64) {
			if name == "packets" {
				setCounter(e.m.fastPackets, float64(v), h.name)
			} else {
				setCounter(e.m.fastDecisions, float64(v), h.name, name)
			}
		})
	}
	e.m.fastEndpoints.Set(float64(s.Endpoints))
	e.m.fastSampleTime.SetToTime(e.now())
}

// forEachCounter calls f with the JSON name and value of every counter of
// hc: a counter the fast path adds later is exported without a change here.
func forEachCounter(hc *fastpath.HookCounters, f func(name string, v uint64)) {
	v := reflect.ValueOf(hc).Elem()
	t := v.Type()
	for i := range t.NumField() {
		fld := t.Field(i)
		name, _, _ := strings.Cut(fld.Tag.Get("json"), ",")
		if name == "" || name == "-" || fld.Type.Kind() != reflect.Uint64 {
			continue
		}
		f(name, v.Field(i).Uint())
	}
}
