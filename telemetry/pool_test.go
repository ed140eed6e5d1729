package telemetry

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// testIP is one address of the test pool: on eni, in state, held by owner.
type testIP struct {
	addr, eni string
	state     store.IPState
	owner     string // container id; empty when free
}

// mustPool writes a node's pool into db: ENIs on two vSwitches in every
// state, addresses free, reserved and bound, targets and back-offs.
func mustPool(tb testing.TB, db store.File) {
	tb.Helper()
	enis := []store.ENI{
		{ID: "eni-a", VSwitchID: "vsw-1", State: store.ENIReady, Owned: true},
		{ID: "eni-b", VSwitchID: "vsw-1", State: store.ENIDraining, Owned: true},
		{ID: "eni-c", VSwitchID: "vsw-2", State: store.ENIAttaching, Owned: true},
		{ID: "eni-d", VSwitchID: "vsw-2", State: store.ENIReady, MissingSince: t0().Add(-time.Hour), MissingConfirmed: t0().Add(-time.Minute)},
		{ID: "eni-e", VSwitchID: "vsw-2", State: store.ENIReady},
	}
	ips := []testIP{
		{"10.0.1.10", "eni-a", store.IPFree, ""},
		{"10.0.1.11", "eni-a", store.IPFree, ""},
		{"10.0.1.12", "eni-a", store.IPReserved, "c-r"},
		{"10.0.1.13", "eni-a", store.IPBound, "c-b"},
		{"10.0.1.20", "eni-b", store.IPFree, ""},
		{"10.0.1.21", "eni-b", store.IPBound, "c-b2"},
		{"10.0.2.30", "eni-c", store.IPFree, ""},
		{"10.0.2.40", "eni-d", store.IPFree, ""},
	}
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		for _, e := range enis {
			e.MAC = fmt.Sprintf("02:00:00:00:00:%02x", len(e.ID)+int(e.ID[4]))
			e.CreatedAt = t0().Add(-time.Hour)
			if err := tx.PutENI(e); err != nil {
				return err
			}
		}
		for _, ip := range ips {
			if err := putIP(tx, ip); err != nil {
				return err
			}
		}
		return tx.PutPoolState(store.PoolState{
			MinIdle: 2, MaxIdle: 5,
			Backoffs: map[string]store.Backoff{
				store.VSwitchScope("vsw-2"): {Since: t0().Add(-time.Minute), Until: t0().Add(10 * time.Minute), Reason: "vswitch vsw-2 has no free address"},
				store.ENIScope("eni-a"):     {Since: t0().Add(-time.Minute), Until: t0().Add(time.Minute), Reason: "QuotaExceeded"},
				store.ScopeENIQuota:         {Since: t0().Add(-time.Hour), Until: t0().Add(-time.Minute), Reason: "ended"},
			},
		})
	})
}

func putIP(tx *store.WriteTx, ip testIP) error {
	addr := netip.MustParseAddr(ip.addr)
	rec := store.IP{Addr: addr, ENIID: ip.eni, State: ip.state, AddedAt: t0()}
	if ip.owner == "" {
		rec.FreeSince = t0()
		return tx.PutIP(rec)
	}
	rec.Owner = store.NewOwnerKey(ip.owner, "eth0")
	if err := tx.PutIP(rec); err != nil {
		return err
	}
	return tx.PutAllocation(store.Allocation{
		ContainerID: ip.owner, IfName: "eth0", IP: addr, ENIID: ip.eni, State: ip.state, ReservedAt: t0(),
	})
}

// storeCounts is what the store holds, counted straight from its records.
type storeCounts struct {
	byENI     map[[3]string]int // eni, vswitch, state
	byVSwitch map[[2]string]int // vswitch, state
	enis      map[string]int    // by state, "gone" first
}

func countStore(tb testing.TB, db store.File) storeCounts {
	tb.Helper()
	c := storeCounts{byENI: map[[3]string]int{}, byVSwitch: map[[2]string]int{}, enis: map[string]int{}}
	err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		vsw := map[string]string{}
		for _, e := range enis {
			vsw[e.ID] = e.VSwitchID
			st := string(e.State)
			if e.Gone() {
				st = "gone"
			}
			c.enis[st]++
			for _, s := range []store.IPState{store.IPFree, store.IPReserved, store.IPBound} {
				c.byENI[[3]string{e.ID, e.VSwitchID, string(s)}] += 0
				c.byVSwitch[[2]string{e.VSwitchID, string(s)}] += 0
			}
		}
		ips, err := tx.IPs()
		for _, ip := range ips {
			c.byENI[[3]string{ip.ENIID, vsw[ip.ENIID], string(ip.State)}]++
			c.byVSwitch[[2]string{vsw[ip.ENIID], string(ip.State)}]++
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// checkPool asserts that a scrape shows exactly what the store holds.
func checkPool(t *testing.T, e *Exporter, db store.File, now time.Time) {
	t.Helper()
	fams := scrape(t, e)
	want := countStore(t, db)
	if got := len(fams["veni_pool_ips"].GetMetric()); got != len(want.byENI) {
		t.Errorf("veni_pool_ips has %d series, the store %d (eni, state) pairs: %s", got, len(want.byENI), seriesOf(fams, "veni_pool_ips"))
	}
	for k, n := range want.byENI {
		if got := value(t, fams, "veni_pool_ips", "eni="+k[0]+",vswitch="+k[1]+",state="+k[2]); got != float64(n) {
			t.Errorf("veni_pool_ips %v = %v, store %d", k, got, n)
		}
	}
	if got := len(fams["veni_pool_vswitch_ips"].GetMetric()); got != len(want.byVSwitch) {
		t.Errorf("veni_pool_vswitch_ips has %d series, want %d", got, len(want.byVSwitch))
	}
	for k, n := range want.byVSwitch {
		if got := value(t, fams, "veni_pool_vswitch_ips", "vswitch="+k[0]+",state="+k[1]); got != float64(n) {
			t.Errorf("veni_pool_vswitch_ips %v = %v, store %d", k, got, n)
		}
	}
	for _, st := range []string{"attaching", "ready", "draining", "gone"} {
		if got := value(t, fams, "veni_pool_enis", "state="+st); got != float64(want.enis[st]) {
			t.Errorf("veni_pool_enis{state=%s} = %v, store %d", st, got, want.enis[st])
		}
	}
	h, err := ipam.PoolHealth(db, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := value(t, fams, "veni_pool_idle_ips", ""); got != float64(h.Free) {
		t.Errorf("veni_pool_idle_ips = %v, ipam.PoolHealth says %d", got, h.Free)
	}
	var ps store.PoolState
	_ = db.View(func(tx *store.ReadTx) (err error) { ps, err = tx.PoolState(); return err })
	if got := value(t, fams, "veni_pool_min_idle_ips", ""); got != float64(ps.MinIdle) {
		t.Errorf("veni_pool_min_idle_ips = %v, store %d", got, ps.MinIdle)
	}
	if got := value(t, fams, "veni_pool_max_idle_ips", ""); got != float64(ps.MaxIdle) {
		t.Errorf("veni_pool_max_idle_ips = %v, store %d", got, ps.MaxIdle)
	}
	active := ps.ActiveBackoffs(now)
	if got := len(fams["veni_pool_backoff_active"].GetMetric()); got != len(active) {
		t.Errorf("veni_pool_backoff_active has %d series, the store %d active back-offs: %s", got, len(active), seriesOf(fams, "veni_pool_backoff_active"))
	}
	for _, b := range active {
		if got := value(t, fams, "veni_pool_backoff_active", "scope="+b.Scope); got != 1 {
			t.Errorf("veni_pool_backoff_active{scope=%s} = %v", b.Scope, got)
		}
		if got := value(t, fams, "veni_pool_backoff_until_timestamp_seconds", "scope="+b.Scope); got != float64(b.Until.Unix()) {
			t.Errorf("back-off %s until %v, store %v", b.Scope, got, b.Until.Unix())
		}
	}
}

// Ensure a scrape shows the numbers the store holds (issue 12): addresses
// per ENI and per vSwitch by state, ENIs by state, the idle addresses a
// warm ADD can take, the targets and the back-offs in force.
func TestExporter_Scrape_PoolMatchesStore(t *testing.T) {
	db := mustStore(t, 0)
	mustPool(t, db)
	e, clk := newTestExporter(t, db)
	checkPool(t, e, db, clk.Now())

	// Spot checks against the fixture itself, so countStore cannot be
	// wrong in the same way as the exporter.
	fams := scrape(t, e)
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"veni_pool_ips", "eni=eni-a,vswitch=vsw-1,state=free", 2},
		{"veni_pool_ips", "eni=eni-a,vswitch=vsw-1,state=reserved", 1},
		{"veni_pool_ips", "eni=eni-a,vswitch=vsw-1,state=bound", 1},
		{"veni_pool_ips", "eni=eni-e,vswitch=vsw-2,state=free", 0},
		{"veni_pool_vswitch_ips", "vswitch=vsw-1,state=free", 3},
		{"veni_pool_vswitch_ips", "vswitch=vsw-1,state=bound", 2},
		{"veni_pool_vswitch_ips", "vswitch=vsw-2,state=free", 2},
		{"veni_pool_enis", "state=ready", 2},
		{"veni_pool_enis", "state=gone", 1},
		{"veni_pool_idle_ips", "", 2}, // eni-a's two; not the draining, attaching or gone ENIs'
		{"veni_pool_min_idle_ips", "", 2},
		{"veni_pool_max_idle_ips", "", 5},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := find(fams, "veni_pool_backoff_active", "scope=eni-quota"); ok {
		t.Error("an ended back-off is reported in force")
	}

	// The pool changes: an ENI goes, an address is bound, a back-off ends.
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		if err := tx.DeleteENI("eni-e"); err != nil {
			return err
		}
		if err := tx.DeleteIP(netip.MustParseAddr("10.0.1.10")); err != nil {
			return err
		}
		return putIP(tx, testIP{"10.0.1.10", "eni-a", store.IPBound, "c-new"})
	})
	clk.Add(2 * time.Minute) // past the cache and eni/eni-a's back-off
	checkPool(t, e, db, clk.Now())
	fams = scrape(t, e)
	if _, ok := find(fams, "veni_pool_ips", "eni=eni-e,vswitch=vsw-2,state=free"); ok {
		t.Error("a deleted ENI still has series")
	}
	if _, ok := find(fams, "veni_pool_backoff_active", "scope=eni/eni-a"); ok {
		t.Error("a back-off that ended is still reported")
	}
}

// Ensure scrapes closer together than CacheFor share one store read, and
// a later one reads again.
func TestExporter_Scrape_Cached(t *testing.T) {
	db := mustStore(t, 0)
	mustPool(t, db)
	e, clk := newTestExporter(t, db)
	if got := value(t, scrape(t, e), "veni_pool_min_idle_ips", ""); got != 2 {
		t.Fatalf("min idle = %v", got)
	}
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		ps, err := tx.PoolState()
		ps.MinIdle = 3
		if err != nil {
			return err
		}
		return tx.PutPoolState(ps)
	})
	clk.Add(500 * time.Millisecond)
	if got := value(t, scrape(t, e), "veni_pool_min_idle_ips", ""); got != 2 {
		t.Errorf("within the cache: min idle = %v, want the cached 2", got)
	}
	clk.Add(600 * time.Millisecond)
	if got := value(t, scrape(t, e), "veni_pool_min_idle_ips", ""); got != 3 {
		t.Errorf("after the cache: min idle = %v, want 3", got)
	}
}

// Ensure a store that cannot be read is counted by reason and leaves the
// last numbers in place.
func TestExporter_Scrape_StoreError(t *testing.T) {
	db := mustStore(t, 0)
	mustPool(t, db)
	e, clk := newTestExporter(t, db)
	scrape(t, e)
	// Hold the store's write lock past the exporter's StoreTimeout.
	held, err := store.Open(db.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.store.Options.Timeout = 50 * time.Millisecond
	clk.Add(2 * time.Second)
	fams := scrape(t, e)
	held.Close()
	if got := value(t, fams, "veni_store_errors_total", "reason=locked"); got != 1 {
		t.Errorf("veni_store_errors_total{reason=locked} = %v, want 1", got)
	}
	if got := value(t, fams, "veni_pool_idle_ips", ""); got != 2 {
		t.Errorf("veni_pool_idle_ips = %v after a failed read, want the last 2", got)
	}
}

// Ensure the time an ENI veni created took to become ready is observed
// once, and only for ENIs that became ready while the exporter ran.
func TestExporter_Scrape_ENIReadyDuration(t *testing.T) {
	db := mustStore(t, 0)
	e, clk := newTestExporter(t, db)
	put := func(id string, created, ready time.Time, owned bool) {
		mustUpdate(t, db, func(tx *store.WriteTx) error {
			return tx.PutENI(store.ENI{ID: id, MAC: "02:00:00:00:01:0" + id[len(id)-1:], VSwitchID: "vsw-1", State: store.ENIReady,
				Owned: owned, CreatedAt: created, ReadyAt: ready})
		})
	}
	put("eni-1", t0().Add(-time.Hour), t0().Add(-time.Hour+time.Second), true) // ready before the start
	put("eni-2", t0(), t0().Add(3*time.Second), true)
	put("eni-3", t0(), t0().Add(time.Second), false) // adopted, not created here
	scrape(t, e)
	clk.Add(2 * time.Second)
	put("eni-4", t0().Add(time.Second), t0().Add(2*time.Second), true)
	count, sum := histogram(t, scrape(t, e), "veni_eni_ready_duration_seconds", "")
	if count != 2 || sum != 4 {
		t.Errorf("ready durations: count %d sum %v, want 2 and 4 s (eni-2 3 s, eni-4 1 s)", count, sum)
	}
}
