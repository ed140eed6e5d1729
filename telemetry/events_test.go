package telemetry

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/veni-cni/veni/store"
)

// cniTotals is what the CNI metrics of a scrape say.
type cniTotals struct {
	adds, dels       uint64
	addSum, delSum   float64
	failedAdd11      float64
	events, missed   float64
	resets           float64
	allocIPSucceeded float64
}

func cniScrape(t *testing.T, e *Exporter) cniTotals {
	t.Helper()
	fams := scrape(t, e)
	var c cniTotals
	if _, ok := find(fams, "veni_cni_call_duration_seconds", "verb=ADD"); ok {
		c.adds, c.addSum = histogram(t, fams, "veni_cni_call_duration_seconds", "verb=ADD")
	}
	if _, ok := find(fams, "veni_cni_call_duration_seconds", "verb=DEL"); ok {
		c.dels, c.delSum = histogram(t, fams, "veni_cni_call_duration_seconds", "verb=DEL")
	}
	c.failedAdd11 = valueOr0(t, fams, "veni_cni_failures_total", "verb=ADD,code=11")
	for _, m := range fams["veni_events_total"].GetMetric() {
		c.events += m.GetCounter().GetValue()
	}
	c.allocIPSucceeded = valueOr0(t, fams, "veni_events_total", "reason=AllocIPSucceed")
	c.missed = value(t, fams, "veni_event_log_missed_total", "")
	c.resets = value(t, fams, "veni_event_log_resets_total", "")
	return c
}

// Ensure the CNI plugin's call records become ADD and DEL latency
// histograms and failures by code.
func TestExporter_Events_CNIRecords(t *testing.T) {
	db := mustStore(t, 0)
	e, clk := newTestExporter(t, db)
	at := t0().Add(time.Second)
	appendEvents(t, db,
		cniEvent(store.CNIAdd, 0, 5*time.Millisecond, at),
		cniEvent(store.CNIAdd, 0, 15*time.Millisecond, at),
		cniEvent(store.CNIAdd, 11, 2*time.Second, at),
		cniEvent(store.CNIDel, 0, 3*time.Millisecond, at),
		store.Event{Time: at, Reason: "VSwitchExhausted", Object: "vswitch/vsw-1"},
		store.Event{Time: at, Reason: "OwnerGone", Object: "allocation/c9/eth0"},
		store.Event{Time: at, Reason: "NotInValidAttachments", Object: "allocation/c8/eth0"},
		store.Event{Time: at, Reason: "ENILeakDeleted", Object: "eni/eni-x"},
	)
	clk.Add(2 * time.Second)
	fams := scrape(t, e)
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"veni_cni_failures_total", "verb=ADD,code=11", 1},
		{"veni_events_total", "reason=AllocIPSucceed", 2},
		{"veni_events_total", "reason=AllocIPFailed", 1},
		{"veni_events_total", "reason=ReleaseIPSucceed", 1},
		{"veni_pool_backoffs_started_total", "reason=VSwitchExhausted", 1},
		{"veni_gc_releases_total", "reason=OwnerGone", 1},
		{"veni_gc_releases_total", "reason=NotInValidAttachments", 1},
		{"veni_leaked_enis_deleted_total", "", 1},
		{"veni_event_log_missed_total", "", 0},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n, sum := histogram(t, fams, "veni_cni_call_duration_seconds", "verb=ADD"); n != 3 || sum < 2.019 || sum > 2.021 {
		t.Errorf("ADD latency: %d calls, %v s; want 3 calls, 2.02 s", n, sum)
	}
	if n, sum := histogram(t, fams, "veni_cni_call_duration_seconds", "verb=DEL"); n != 1 || sum != 0.003 {
		t.Errorf("DEL latency: %d calls, %v s; want 1 call, 0.003 s", n, sum)
	}
	if _, ok := find(fams, "veni_cni_failures_total", "verb=DEL,code=11"); ok {
		t.Error("a successful DEL counted as a failure")
	}
}

// Ensure every record is counted exactly once however daemon passes and
// scrapes interleave, and that events logged before the exporter started
// are not counted at all.
func TestExporter_Events_NoDoubleCount(t *testing.T) {
	db := mustStore(t, 0)
	appendEvents(t, db, cniEvent(store.CNIAdd, 0, time.Millisecond, t0().Add(-time.Minute))) // before the start
	e, clk := newTestExporter(t, db)
	want := 0
	for round := range 20 {
		n := round % 4 // 0 to 3 records per round
		var evs []store.Event
		for range n {
			evs = append(evs, cniEvent(store.CNIAdd, 0, 10*time.Millisecond, t0().Add(time.Duration(round)*time.Second)))
		}
		if n > 0 {
			appendEvents(t, db, evs...)
		}
		want += n
		switch round % 3 {
		case 0:
			e.PassDone(PassLocal, time.Millisecond)
		case 1:
			clk.Add(2 * time.Second) // a scrape that reads the store
		case 2:
			e.PassDone(PassFull, time.Millisecond)
			e.FollowEvents()
		}
		got := cniScrape(t, e)
		clk.Add(100 * time.Millisecond) // a scrape within the cache: no read
		again := cniScrape(t, e)
		if got.adds != again.adds {
			t.Fatalf("round %d: a cached scrape changed the count: %d then %d", round, got.adds, again.adds)
		}
		// Every round ends with a pass or an uncached scrape: each record
		// logged so far is counted, none twice.
		if got.adds != uint64(want) {
			t.Fatalf("round %d: %d ADDs counted, %d logged since the start", round, got.adds, want)
		}
	}
	clk.Add(2 * time.Second)
	got := cniScrape(t, e)
	if got.adds != uint64(want) || got.events != float64(want) || got.allocIPSucceeded != float64(want) {
		t.Errorf("counted %d ADDs and %v events, want %d of each", got.adds, got.events, want)
	}
	if got.missed != 0 || got.resets != 0 {
		t.Errorf("missed %v, resets %v; want none", got.missed, got.resets)
	}
}

// Ensure events the log's cap dropped before the daemon read them are
// counted as missed, and those still there are counted once.
func TestExporter_Events_GapWhenLogRotated(t *testing.T) {
	db := mustStore(t, 5) // the log keeps 5 events
	e, clk := newTestExporter(t, db)
	at := t0().Add(time.Second)
	appendEvents(t, db, cniEvent(store.CNIAdd, 0, time.Millisecond, at), cniEvent(store.CNIAdd, 0, time.Millisecond, at))
	e.FollowEvents()
	for range 12 { // 12 more: the log now holds seq 10 to 14; 3 to 9 are gone unread
		appendEvents(t, db, cniEvent(store.CNIAdd, 0, time.Millisecond, at))
	}
	clk.Add(2 * time.Second)
	got := cniScrape(t, e)
	if got.missed != 7 || got.adds != 2+5 {
		t.Errorf("missed %v and counted %d ADDs; want 7 missed, 7 counted", got.missed, got.adds)
	}
	// Nothing new: a later read finds no gap and counts nothing.
	e.FollowEvents()
	clk.Add(2 * time.Second)
	if again := cniScrape(t, e); again.missed != 7 || again.adds != 7 {
		t.Errorf("a read with nothing new changed the counts: %+v", again)
	}
	// Exactly the cap's worth logged between reads: no gap.
	for range 5 {
		appendEvents(t, db, cniEvent(store.CNIAdd, 0, time.Millisecond, at))
	}
	e.FollowEvents()
	if got := cniScrape(t, e); got.missed != 7 || got.adds != 12 {
		t.Errorf("after 5 more: missed %v, counted %d; want 7 and 12", got.missed, got.adds)
	}
}

// Ensure a store replaced under the daemon (its sequence starts over) is
// noticed, whether the new log is shorter than the cursor or already
// longer, and its events are counted once.
func TestExporter_Events_StoreReplaced(t *testing.T) {
	for _, tc := range []struct {
		name     string
		newCount int // events in the new log before the exporter reads it
	}{
		{"shorter", 2},
		{"longer", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustStore(t, 0)
			e, clk := newTestExporter(t, db)
			var old []store.Event
			for i := range 4 {
				old = append(old, cniEvent(store.CNIAdd, 0, time.Millisecond, t0().Add(time.Duration(i+1)*time.Second)))
			}
			appendEvents(t, db, old...)
			e.FollowEvents() // cursor at seq 4
			if err := os.Remove(db.Path); err != nil {
				t.Fatal(err)
			}
			var evs []store.Event
			for i := range tc.newCount {
				evs = append(evs, cniEvent(store.CNIDel, 0, time.Millisecond, t0().Add(time.Minute+time.Duration(i)*time.Second)))
			}
			appendEvents(t, db, evs...)
			clk.Add(2 * time.Second)
			got := cniScrape(t, e)
			if got.resets != 1 || got.adds != 4 || got.dels != uint64(tc.newCount) || got.missed != 0 {
				t.Errorf("resets %v, ADDs %d, DELs %d, missed %v; want 1, 4, %d, 0", got.resets, got.adds, got.dels, got.missed, tc.newCount)
			}
			appendEvents(t, db, cniEvent(store.CNIDel, 0, time.Millisecond, t0().Add(2*time.Minute)))
			clk.Add(2 * time.Second)
			if got := cniScrape(t, e); got.resets != 1 || got.dels != uint64(tc.newCount+1) {
				t.Errorf("after one more DEL: resets %v, DELs %d; want 1, %d", got.resets, got.dels, tc.newCount+1)
			}
		})
	}
}

// Ensure a flood of distinct reasons cannot grow the series without
// bound: past maxLabelValues they are counted as "other".
func TestExporter_Events_BoundedReasons(t *testing.T) {
	db := mustStore(t, 0)
	e, clk := newTestExporter(t, db)
	var evs []store.Event
	for i := range maxLabelValues + 20 {
		evs = append(evs, store.Event{Time: t0().Add(time.Second), Reason: fmt.Sprintf("Reason%d", i)})
	}
	appendEvents(t, db, evs...)
	clk.Add(2 * time.Second)
	fams := scrape(t, e)
	if n := len(fams["veni_events_total"].GetMetric()); n != maxLabelValues+1 {
		t.Errorf("%d series, want %d", n, maxLabelValues+1)
	}
	if got := value(t, fams, "veni_events_total", "reason=other"); got != 20 {
		t.Errorf("other = %v, want 20", got)
	}
}
