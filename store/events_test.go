package store

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
)

func TestWriteTx_AppendEvent_Cap(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{EventCap: 5})
	for i := 1; i <= 12; i++ {
		mustUpdate(t, db, func(tx *WriteTx) error {
			e, err := tx.AppendEvent(Event{Level: slog.LevelWarn, Reason: "Test", Message: fmt.Sprint(i)})
			if err == nil && (e.Seq != uint64(i) || e.Time.IsZero()) {
				t.Errorf("event %d got seq %d time %s", i, e.Seq, e.Time)
			}
			return err
		})
	}
	cases := []struct {
		name         string
		since        uint64
		limit        int
		wantFirst, n int
	}{
		{"all kept", 0, 0, 8, 5},
		{"follow", 10, 0, 11, 2},
		{"limit", 0, 2, 8, 2},
		{"nothing new", 12, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var evs []Event
			_ = db.View(func(tx *ReadTx) (err error) { evs, err = tx.Events(tc.since, tc.limit); return err })
			if len(evs) != tc.n {
				t.Fatalf("got %d events, want %d", len(evs), tc.n)
			}
			for i, e := range evs {
				if e.Seq != uint64(tc.wantFirst+i) || e.Message != fmt.Sprint(e.Seq) || e.Level != slog.LevelWarn {
					t.Errorf("event %d = %+v", i, e)
				}
			}
		})
	}
}
