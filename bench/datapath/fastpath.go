package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/veni-cni/veni/ebpf/fastpath"
)

// fastpathCounters reads the eBPF fast path's counters of the nodes pinned
// at pinDirs and flattens them, summed over the nodes, into
// "Hook.Counter" keys ("FromPod.RedirectPeer"). They show which packets
// the fast path took and why it left the others to the host stack.
func fastpathCounters(pinDirs []string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, dir := range pinDirs {
		// Open creates a missing pin dir; a typo must not give a node an
		// empty fast path that counts nothing.
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("fast path pins: %w", err)
		}
		dp, err := fastpath.Open(fastpath.Options{PinDir: dir})
		if err != nil {
			return nil, fmt.Errorf("fast path %s: %w", dir, err)
		}
		c, err := dp.Counters()
		err = errors.Join(err, dp.Close())
		if err != nil {
			return nil, fmt.Errorf("fast path counters %s: %w", dir, err)
		}
		addCounters(out, c)
	}
	return out, nil
}

// addCounters adds every uint64 field of c's hooks to m.
func addCounters(m map[string]uint64, c fastpath.Counters) {
	cv := reflect.ValueOf(c)
	for i := range cv.NumField() {
		hook := cv.Type().Field(i).Name
		hv := cv.Field(i)
		for j := range hv.NumField() {
			if f := hv.Field(j); f.Kind() == reflect.Uint64 {
				m[hook+"."+hv.Type().Field(j).Name] += f.Uint()
			}
		}
	}
}

// counterDelta is after minus before, keeping only what changed.
func counterDelta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		if v > before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// fastShare is the share of the packets the fast path's ingress programs
// saw (leaving pods, arriving on ENIs) that they redirected, skipping the
// node's IP stack. ok is false when they saw nothing.
func fastShare(d map[string]uint64) (share float64, ok bool) {
	seen := d["FromPod.Packets"] + d["FromENI.Packets"]
	if seen == 0 {
		return 0, false
	}
	redirected := d["FromPod.RedirectPeer"] + d["FromPod.RedirectNeigh"] + d["FromENI.RedirectPeer"] + d["FromENI.RedirectNeigh"]
	return float64(redirected) / float64(seen), true
}
