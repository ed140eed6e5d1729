package sim

import (
	"testing"
	"time"
)

func TestHistory_ENIsAt(t *testing.T) {
	h := newHistory(time.Second)
	t0 := time.Now()
	h.lastPrune = t0 // no pruning until the lag has passed
	e := &eni{id: "eni-a", status: statusAvailable, seq: 1}
	h.recordENI(t0, e.id, e)
	e.status = statusAttaching
	h.recordENI(t0.Add(100*time.Millisecond), e.id, e)
	h.recordENI(t0.Add(200*time.Millisecond), e.id, nil)

	tests := []struct {
		name string
		at   time.Time
		want string // status, "" = invisible
	}{
		{"before creation", t0.Add(-time.Millisecond), ""},
		{"created", t0, statusAvailable},
		{"attaching", t0.Add(150 * time.Millisecond), statusAttaching},
		{"deleted", t0.Add(250 * time.Millisecond), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.enisAt(tt.at)
			status := ""
			if len(got) == 1 {
				status = got[0].status
			}
			if status != tt.want || len(got) > 1 {
				t.Fatalf("got %d enis status %q, want %q", len(got), status, tt.want)
			}
		})
	}
	// Once the deletion is older than the lag nobody can see the ENI: the
	// history forgets it.
	h.recordENI(t0.Add(2*time.Second), "eni-b", &eni{id: "eni-b", seq: 2})
	if _, ok := h.enis["eni-a"]; ok {
		t.Fatal("deleted eni kept past the lag")
	}
	if vs := h.enis["eni-b"]; len(vs) != 1 {
		t.Fatalf("eni-b versions %d", len(vs))
	}
}

func TestHistory_Disabled(t *testing.T) {
	h := newHistory(0)
	h.recordENI(time.Now(), "eni-a", &eni{id: "eni-a"})
	h.recordFree(time.Now(), "vsw-a", 3)
	if len(h.enis) != 0 || len(h.free) != 0 {
		t.Fatal("history recorded without a lag")
	}
}
