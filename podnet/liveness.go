package podnet

import (
	"time"

	"github.com/veni-cni/veni/store"
)

// DeadFunc judges an allocation for garbage collection. holding says
// whether the caller holds the attachment's claim (then an ADD of it
// cannot be running).
type DeadFunc func(a store.Allocation, holding bool) bool

// OwnerGone is the daemon's and "veni ipam gc"'s test: a reservation older
// than grace whose ADD no longer holds the attachment's claim (it crashed
// between its two transactions), or a bound allocation whose network
// namespace is gone. An allocation whose namespace cannot be judged from
// here is kept.
func OwnerGone(claimsDir string, grace time.Duration, now time.Time) DeadFunc {
	return func(a store.Allocation, holding bool) bool {
		if a.State == store.IPReserved {
			return now.Sub(a.ReservedAt) >= grace && !adding(claimsDir, a, holding)
		}
		v, _ := judgeNetNS(a)
		return v == netnsGone
	}
}

// NotInValid is the CNI GC verb's test: an attachment of this network that
// the runtime no longer lists in cni.dev/valid-attachments. Another
// network's attachments on the same pod (Multus) are not this call's to
// collect; a reservation younger than grace, or whose ADD still runs, is
// left for the next GC.
func NotInValid(claimsDir, network string, valid []Attachment, grace time.Duration, now time.Time) DeadFunc {
	keep := make(map[store.OwnerKey]bool, len(valid))
	for _, v := range valid {
		keep[store.NewOwnerKey(v.ContainerID, v.IfName)] = true
	}
	return func(a store.Allocation, holding bool) bool {
		switch {
		case keep[a.Key]:
			return false
		case a.Network != "" && a.Network != network:
			return false
		case a.State == store.IPReserved:
			return now.Sub(a.ReservedAt) >= grace && !adding(claimsDir, a, holding)
		}
		return true
	}
}

// adding reports whether an ADD holds a's claim now.
func adding(claimsDir string, a store.Allocation, holding bool) bool {
	if holding {
		return false
	}
	held, err := store.Claimed(store.OwnerClaim(claimsDir, a.Key))
	return held || err != nil // unreadable: assume it runs
}

// Verdict explains liveness for "veni ipam verify" and status.
func Verdict(claimsDir string, a store.Allocation) (alive bool, why string) {
	if a.State == store.IPReserved {
		if adding(claimsDir, a, false) {
			return true, "its ADD is running"
		}
		return false, "no ADD holds its claim (the ADD died between reserve and commit)"
	}
	v, why := judgeNetNS(a)
	if why == "" {
		why = "netns " + a.NetNS + " " + v.String()
	}
	return v != netnsGone, why
}
