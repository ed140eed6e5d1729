package telemetry

import (
	"strconv"
	"time"

	"github.com/veni-cni/veni/store"
)

// eventBatchSize is how many events one Events call decodes; a read loops
// until the log is exhausted, all in the caller's transaction.
const eventBatchSize = 512

// follower is the exporter's cursor in the store's event log. The log is
// the contiguous range of sequence numbers [first, last]: appends are
// serialised by the store's write lock and a rolled-back transaction
// rolls its sequence number back too, and only the oldest events are ever
// dropped (Options.EventCap). So an event is new exactly when its Seq is
// above the cursor, and a first Seq above cursor+1 means the cap dropped
// events before they were read.
//
// A replaced store (a damaged file moved aside, a restore) starts its
// sequence over. The follower notices when the log holds nothing at or
// after its cursor, or when the event at its cursor is not the one it read
// (another time), and reads the new log from its start. A new log that
// already grew past the cursor by more than its cap cannot be told from
// dropped events, and is counted as missed: never as events read twice.
type follower struct {
	start      time.Time // events logged before it are not counted
	cursor     uint64    // Seq of the last event read; 0 before the first
	cursorTime time.Time // Time of that event, to recognise it
}

// eventBatch is what one read of the log found.
type eventBatch struct {
	events []store.Event // new events logged since start, oldest first
	missed uint64        // events dropped by the log's cap before they were read
	reset  bool          // the log started over since the last read

	// The cursor after this batch, committed only when the transaction
	// succeeded (commit): a failed read is simply redone.
	cursor     uint64
	cursorTime time.Time
}

// next reads the events after the cursor in tx. The cursor moves only when
// the caller commits the batch.
func (f *follower) next(tx *store.ReadTx) (eventBatch, error) {
	b := eventBatch{cursor: f.cursor, cursorTime: f.cursorTime}
	if f.cursor > 0 {
		// The event at the cursor, or the first one after it.
		first, err := tx.Events(f.cursor-1, 1)
		if err != nil {
			return b, err
		}
		switch {
		case len(first) == 0, // the log never empties: it started over
			first[0].Seq == f.cursor && !first[0].Time.Equal(f.cursorTime):
			b.reset = true
			b.cursor, b.cursorTime = 0, time.Time{}
		case first[0].Seq > f.cursor+1:
			b.missed = first[0].Seq - f.cursor - 1
		}
	}
	for {
		evs, err := tx.Events(b.cursor, eventBatchSize)
		if err != nil {
			return b, err
		}
		for _, ev := range evs {
			b.cursor, b.cursorTime = ev.Seq, ev.Time
			if ev.Time.Before(f.start) {
				continue
			}
			b.events = append(b.events, ev)
		}
		if len(evs) < eventBatchSize {
			return b, nil
		}
	}
}

// commit moves the cursor past b.
func (f *follower) commit(b eventBatch) {
	f.cursor, f.cursorTime = b.cursor, b.cursorTime
}

// Event reasons the exporter turns into metrics of their own. They are
// the reasons ipam and podnet log; an event of any reason is also counted
// in veni_events_total.
const (
	reasonVSwitchExhausted = "VSwitchExhausted"
	reasonIPQuota          = "IPQuotaExceeded"
	reasonENIQuota         = "ENIQuotaExceeded"
	reasonOwnerGone        = "OwnerGone"             // daemon GC, veni ipam gc
	reasonNotInAttachments = "NotInValidAttachments" // CNI GC
	reasonLeakDeleted      = "ENILeakDeleted"
)

// countEvents commits a batch and counts its events. Called under e.mu.
func (e *Exporter) countEvents(b eventBatch) {
	e.events.commit(b)
	if b.reset {
		e.m.eventLogResets.Inc()
	}
	if b.missed > 0 {
		e.m.eventsMissed.Add(float64(b.missed))
	}
	for _, ev := range b.events {
		e.m.events.With(e.labelLimits.value("veni_events_total", ev.Reason)).Inc()
		switch ev.Reason {
		case reasonVSwitchExhausted, reasonIPQuota, reasonENIQuota:
			e.m.backoffsStarted.With(ev.Reason).Inc()
		case reasonOwnerGone, reasonNotInAttachments:
			e.m.gcReleases.With(ev.Reason).Inc()
		case reasonLeakDeleted:
			e.m.leakedENIs.Inc()
		}
		if c := ev.CNI; c != nil {
			verb := e.labelLimits.value("cni_verb", c.Verb)
			e.m.cniDuration.With(verb).Observe(c.Took.Seconds())
			if c.Code != 0 {
				code := e.labelLimits.value("veni_cni_failures_total", strconv.FormatUint(uint64(c.Code), 10))
				e.m.cniFailures.With(verb, code).Inc()
			}
		}
	}
}
