package sim

import (
	"cmp"
	"slices"
	"time"
)

// history keeps timestamped versions of ENIs and vSwitch free counts so that
// Describe* can answer from the past (Config.DescribeLag), the way the
// cloud's read path trails its write path. It is only fed when the lag is
// positive, and it forgets versions nobody can ask for any more.
type history struct {
	lag       time.Duration
	enis      map[string][]eniVersion
	free      map[string][]freeVersion
	lastPrune time.Time
}

type eniVersion struct {
	at time.Time
	e  *eni // nil: deleted at that time
}

type freeVersion struct {
	at   time.Time
	free int
}

func newHistory(lag time.Duration) *history {
	return &history{lag: lag, enis: map[string][]eniVersion{}, free: map[string][]freeVersion{}}
}

// recordENI remembers the state of e (nil e with id: deleted) at now.
func (h *history) recordENI(now time.Time, id string, e *eni) {
	if h.lag <= 0 {
		return
	}
	v := eniVersion{at: now}
	if e != nil {
		v.e = e.clone()
	}
	h.enis[id] = append(h.enis[id], v)
	h.prune(now)
}

// seedENI records e as it is now, valid for any earlier time: the lagged
// view of a lag turned on while the sim runs starts from the present.
func (h *history) seedENI(e *eni) {
	h.enis[e.id] = append(h.enis[e.id], eniVersion{e: e.clone()})
}

// seedFree is seedENI for a vSwitch's free count.
func (h *history) seedFree(vswID string, free int) {
	h.free[vswID] = append(h.free[vswID], freeVersion{free: free})
}

func (h *history) recordFree(now time.Time, vswID string, free int) {
	if h.lag <= 0 {
		return
	}
	h.free[vswID] = append(h.free[vswID], freeVersion{at: now, free: free})
	h.prune(now)
}

// prune forgets what no question can reach any more, at most once per lag
// so that recording stays cheap.
func (h *history) prune(now time.Time) {
	if now.Sub(h.lastPrune) < h.lag {
		return
	}
	h.lastPrune = now
	cutoff := now.Add(-h.lag)
	for id, vs := range h.enis {
		vs = pruneVersions(vs, cutoff, func(v eniVersion) time.Time { return v.at })
		if len(vs) == 1 && vs[0].e == nil && !vs[0].at.After(cutoff) {
			delete(h.enis, id) // deleted longer ago than anyone can look back
			continue
		}
		h.enis[id] = vs
	}
	for id, vs := range h.free {
		h.free[id] = pruneVersions(vs, cutoff, func(v freeVersion) time.Time { return v.at })
	}
}

// pruneVersions drops every version older than the newest one at or before
// cutoff: that one still answers questions about times after cutoff.
func pruneVersions[T any](vs []T, cutoff time.Time, at func(T) time.Time) []T {
	keep := 0
	for i, v := range vs {
		if !at(v).After(cutoff) {
			keep = i
		}
	}
	return slices.Clone(vs[keep:])
}

// enisAt returns copies of the ENIs as they were at t, in creation order.
func (h *history) enisAt(t time.Time) []*eni {
	var out []*eni
	for _, vs := range h.enis {
		var cur *eni
		for _, v := range vs {
			if v.at.After(t) {
				break
			}
			cur = v.e
		}
		if cur != nil {
			out = append(out, cur.clone())
		}
	}
	slices.SortFunc(out, func(a, b *eni) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// freeAt returns the vSwitch's free address count at t, and false when the
// history has no answer (the count has not changed since before t).
func (h *history) freeAt(vswID string, t time.Time) (int, bool) {
	free, ok := 0, false
	for _, v := range h.free[vswID] {
		if v.at.After(t) {
			break
		}
		free, ok = v.free, true
	}
	return free, ok
}
