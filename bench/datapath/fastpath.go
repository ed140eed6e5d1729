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

// addCounters adds every uint64 field of c's hooks to m: IPv4 ones as
// "FromPod.RedirectPeer", IPv6 ones as "IPv6.FromPod.RedirectPeer".
func addCounters(m map[string]uint64, c fastpath.Counters) {
	addFields(m, "", reflect.ValueOf(c))
}

func addFields(m map[string]uint64, prefix string, v reflect.Value) {
	for i := range v.NumField() {
		name := prefix + v.Type().Field(i).Name
		switch f := v.Field(i); f.Kind() {
		case reflect.Uint64:
			m[name] += f.Uint()
		case reflect.Struct:
			addFields(m, name+".", f)
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
// saw (leaving pods, arriving on ENIs; both families) that they
// redirected, skipping the node's IP stack. ok is false when they saw
// nothing.
func fastShare(d map[string]uint64) (share float64, ok bool) {
	var seen, redirected uint64
	for _, fam := range []string{"", "IPv6."} {
		seen += d[fam+"FromPod.Packets"] + d[fam+"FromENI.Packets"]
		redirected += d[fam+"FromPod.RedirectPeer"] + d[fam+"FromPod.RedirectNeigh"] + d[fam+"FromENI.RedirectPeer"] + d[fam+"FromENI.RedirectNeigh"]
	}
	if seen == 0 {
		return 0, false
	}
	return float64(redirected) / float64(seen), true
}
