package store

import (
	"encoding/binary"
	"time"
)

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// AppendEvent adds e to the event log and returns it with its Seq (and its
// Time, when e had none) filled in. When the log holds more than
// Options.EventCap events the oldest are dropped.
func (t *WriteTx) AppendEvent(e Event) (Event, error) {
	b := t.tx.Bucket(bucketEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return Event{}, err
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := put(t, bucketEvents, seqKey(seq), e); err != nil {
		return Event{}, err
	}
	// Keys are big-endian sequence numbers only ever dropped from the
	// front, so the log is the contiguous range [first, seq].
	c := b.Cursor()
	for k, _ := c.First(); k != nil && seq-binary.BigEndian.Uint64(k)+1 > uint64(t.db.opts.EventCap); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return Event{}, err
		}
	}
	return e, nil
}

// Events returns up to limit events with Seq greater than since, oldest
// first. A limit of zero or less means no limit. Pass the last Seq you saw
// as since to follow the log.
func (t *ReadTx) Events(since uint64, limit int) ([]Event, error) {
	var out []Event
	c := t.tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(seqKey(since + 1)); k != nil; k, v = c.Next() {
		if limit > 0 && len(out) >= limit {
			break
		}
		e, err := decode[Event](k, v)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// LastEventSeq returns the Seq of the newest event, 0 when the log is
// empty: where a reader that wants only what comes next starts.
func (t *ReadTx) LastEventSeq() (uint64, error) {
	k, _ := t.tx.Bucket(bucketEvents).Cursor().Last()
	if k == nil {
		return 0, nil
	}
	return binary.BigEndian.Uint64(k), nil
}
