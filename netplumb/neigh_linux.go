package netplumb

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The IPv4 neighbour table is one table for the whole kernel: its
// garbage-collection thresholds (net.ipv4.neigh.default.gc_thresh1/2/3,
// 128/512/1024 by default) bound the entries of every namespace together,
// and only the initial namespace shows them. Each pod costs two entries:
// the permanent one for its gateway in its namespace (which GC cannot
// free) and the host's entry for the pod on its veth. Above gc_thresh2 the
// kernel evicts live entries every few seconds; at gc_thresh3 it refuses
// new ones ("neighbour: arp_cache: neighbor table overflow!") and
// connections to new peers fail.

// NeighbourLimits are the IPv4 neighbour table's GC thresholds.
type NeighbourLimits struct {
	Thresh1, Thresh2, Thresh3 int
}

// neighbourHeadroom is room for the host's own peers (other nodes, the
// vSwitch gateways, the API server) beside the pods' entries.
const neighbourHeadroom = 256

// NeighbourEntries is how many IPv4 neighbour entries a node with maxPods
// pods on enis ENIs needs at most.
func NeighbourEntries(maxPods, enis int) int {
	return 2*maxPods + enis + neighbourHeadroom
}

// SuggestedNeighbourLimits are the thresholds veni installs: well above
// what the largest instance type needs (a few thousand entries), the
// values GKE's nodes ship with, raised further for a bigger need.
func SuggestedNeighbourLimits(need int) NeighbourLimits {
	l := NeighbourLimits{Thresh1: 4096, Thresh2: 8192, Thresh3: 16384}
	for l.Thresh2 < 2*need {
		l = NeighbourLimits{2 * l.Thresh1, 2 * l.Thresh2, 2 * l.Thresh3}
	}
	return l
}

// NeighbourShortfall says what is wrong with limits l for need entries, ""
// when nothing is: gc_thresh2 is the soft maximum, beyond which live
// entries are evicted.
func NeighbourShortfall(l NeighbourLimits, need int) string {
	switch {
	case l.Thresh3 < need:
		return fmt.Sprintf("net.ipv4.neigh.default.gc_thresh3 is %d but this node may need %d neighbour entries (2 per pod): pods will lose connectivity (\"neighbor table overflow\")", l.Thresh3, need)
	case l.Thresh2 < need:
		return fmt.Sprintf("net.ipv4.neigh.default.gc_thresh2 is %d but this node may need %d neighbour entries (2 per pod): the kernel will evict live entries", l.Thresh2, need)
	}
	return ""
}

var neighbourKeys = [3]string{"gc_thresh1", "gc_thresh2", "gc_thresh3"}

// neighbourDir is where the thresholds live; a variable for tests.
var neighbourDir = "/proc/sys/net/ipv4/neigh/default"

// ErrNoNeighbourLimits means this namespace does not show the thresholds:
// it is not the initial one (a simulated node).
var ErrNoNeighbourLimits = errors.New("the neighbour table's limits are only visible in the initial network namespace")

// ReadNeighbourLimits reads the current thresholds.
func ReadNeighbourLimits() (NeighbourLimits, error) {
	var v [3]int
	for i, k := range neighbourKeys {
		b, err := os.ReadFile(neighbourDir + "/" + k)
		if errors.Is(err, os.ErrNotExist) {
			return NeighbourLimits{}, ErrNoNeighbourLimits
		}
		if err != nil {
			return NeighbourLimits{}, fmt.Errorf("read %s: %w", k, err)
		}
		if v[i], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return NeighbourLimits{}, fmt.Errorf("read %s: %w", k, err)
		}
	}
	return NeighbourLimits{v[0], v[1], v[2]}, nil
}

// RaiseNeighbourLimits raises each threshold that is below want, never
// lowering one an operator set higher, and returns the limits in force.
// Raised from the top down, so gc_thresh1 ≤ 2 ≤ 3 holds at every step.
func RaiseNeighbourLimits(want NeighbourLimits) (NeighbourLimits, error) {
	cur, err := ReadNeighbourLimits()
	if err != nil {
		return cur, err
	}
	c := [3]*int{&cur.Thresh1, &cur.Thresh2, &cur.Thresh3}
	w := [3]int{want.Thresh1, want.Thresh2, want.Thresh3}
	for i := 2; i >= 0; i-- {
		if *c[i] >= w[i] {
			continue
		}
		if err := os.WriteFile(neighbourDir+"/"+neighbourKeys[i], []byte(strconv.Itoa(w[i])), 0o644); err != nil {
			return cur, fmt.Errorf("raise net.ipv4.neigh.default.%s to %d: %w", neighbourKeys[i], w[i], err)
		}
		*c[i] = w[i]
	}
	return cur, nil
}

// NeighbourSysctlConf is the /etc/sysctl.d drop-in that keeps limits l
// across reboots.
func NeighbourSysctlConf(l NeighbourLimits) string {
	return fmt.Sprintf(`# Written by veni install. The IPv4 neighbour table is shared by every
# network namespace; each pod needs two entries (its gateway, the host's
# entry for it). The kernel's defaults (128/512/1024) overflow on a dense node.
net.ipv4.neigh.default.gc_thresh1 = %d
net.ipv4.neigh.default.gc_thresh2 = %d
net.ipv4.neigh.default.gc_thresh3 = %d
`, l.Thresh1, l.Thresh2, l.Thresh3)
}
