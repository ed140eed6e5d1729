package telemetry

import (
	"time"

	"github.com/veni-cni/veni/store"
)

// poolSnapshot is what a scrape reads of the pool, in one transaction.
type poolSnapshot struct {
	enis  []store.ENI
	ips   []store.IP
	state store.PoolState
}

func (s *poolSnapshot) read(tx *store.ReadTx) error {
	var err error
	if s.enis, err = tx.ENIs(); err != nil {
		return err
	}
	if s.ips, err = tx.IPs(); err != nil {
		return err
	}
	s.state, err = tx.PoolState()
	return err
}

// ipStates are the IP states in the order they are reported (a function,
// not a package-level variable: nothing here may run at init).
func ipStates() [3]store.IPState {
	return [3]store.IPState{store.IPFree, store.IPReserved, store.IPBound}
}

// eniState is the "state" label of veni_pool_enis: the store's state, or
// "gone" once veni decided the cloud no longer has it attached.
func eniState(e store.ENI) string {
	if e.Gone() {
		return "gone"
	}
	return string(e.State)
}

// usable mirrors ipam's rule for an ENI a warm ADD may take addresses from
// (TestExporter_Scrape_PoolMatchesStore checks it against ipam.PoolHealth).
func usable(e store.ENI) bool { return e.State == store.ENIReady && !e.Gone() }

// setPool sets the pool gauges from a snapshot. Called under e.mu.
func (e *Exporter) setPool(s poolSnapshot, now time.Time) {
	type counts [3]int
	byENI := make(map[string]*counts, len(s.enis))
	byVSwitch := make(map[string]*counts)
	eniByID := make(map[string]store.ENI, len(s.enis))
	enisByState := map[string]int{
		string(store.ENIAttaching): 0, string(store.ENIReady): 0, string(store.ENIDraining): 0, "gone": 0,
	}
	for _, en := range s.enis {
		eniByID[en.ID] = en
		byENI[en.ID] = &counts{}
		if byVSwitch[en.VSwitchID] == nil {
			byVSwitch[en.VSwitchID] = &counts{}
		}
		enisByState[eniState(en)]++
	}
	idle := 0
	for _, ip := range s.ips {
		i := stateIndex(ip.State)
		en, ok := eniByID[ip.ENIID]
		if i < 0 || !ok { // the store's invariants rule both out
			continue
		}
		byENI[en.ID][i]++
		byVSwitch[en.VSwitchID][i]++
		if ip.State == store.IPFree && usable(en) {
			idle++
		}
	}

	var pool, vsw, enis []sample
	for _, en := range s.enis {
		for i, st := range ipStates() {
			pool = append(pool, sample{[]string{en.ID, en.VSwitchID, string(st)}, float64(byENI[en.ID][i])})
		}
	}
	for id, c := range byVSwitch {
		for i, st := range ipStates() {
			vsw = append(vsw, sample{[]string{id, string(st)}, float64(c[i])})
		}
	}
	for st, n := range enisByState {
		enis = append(enis, sample{[]string{st}, float64(n)})
	}
	e.poolSeries.replace(pool)
	e.vswSeries.replace(vsw)
	e.eniSeries.replace(enis)
	e.m.idleIPs.Set(float64(idle))
	e.m.minIdle.Set(float64(s.state.MinIdle))
	e.m.maxIdle.Set(float64(s.state.MaxIdle))

	var active, until []sample
	for _, b := range s.state.ActiveBackoffs(now) {
		active = append(active, sample{[]string{b.Scope}, 1})
		until = append(until, sample{[]string{b.Scope}, float64(b.Until.UnixNano()) / 1e9})
	}
	e.boSeries.replace(active)
	e.boUntil.replace(until)

	e.observeReady(s.enis)
}

func stateIndex(s store.IPState) int {
	for i, st := range ipStates() {
		if st == s {
			return i
		}
	}
	return -1
}

// observeReady records, once per ENI, how long an ENI veni created took to
// become ready, for ENIs that became ready after the exporter started
// (Terway's terway_eni_attach_duration_seconds). Called under e.mu.
func (e *Exporter) observeReady(enis []store.ENI) {
	present := make(map[string]bool, len(enis))
	for _, en := range enis {
		present[en.ID] = true
		if e.readySeen[en.ID] || !en.Owned || en.State != store.ENIReady || en.ReadyAt.IsZero() ||
			en.CreatedAt.IsZero() || en.ReadyAt.Before(e.start) {
			continue
		}
		e.readySeen[en.ID] = true
		e.m.eniReady.Observe(en.ReadyAt.Sub(en.CreatedAt).Seconds())
	}
	for id := range e.readySeen {
		if !present[id] {
			delete(e.readySeen, id)
		}
	}
}
