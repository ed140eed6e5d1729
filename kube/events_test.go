package kube

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEvents is a minimal events endpoint: it stores created events and
// applies count/lastTimestamp patches, and counts requests.
type fakeEvents struct {
	mu      sync.Mutex
	events  map[string]*Event
	creates int
	patches int
	expire  bool // answer patches with 404, as if the event's TTL passed
}

func (f *fakeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case "POST":
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil || ev.Kind != "Event" || ev.APIVersion != "v1" {
			w.WriteHeader(400)
			return
		}
		f.creates++
		f.events[ev.Name] = &ev
		_ = json.NewEncoder(w).Encode(ev)
	case "PATCH":
		if r.Header.Get("Content-Type") != string(StrategicMergePatch) {
			w.WriteHeader(415)
			return
		}
		name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		ev := f.events[name]
		if ev == nil || f.expire {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
			return
		}
		f.patches++
		_ = json.Unmarshal(b, ev)
		_ = json.NewEncoder(w).Encode(ev)
	}
}

func (f *fakeEvents) snapshot() (map[string]Event, int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Event{}
	for k, v := range f.events {
		out[k] = *v
	}
	return out, f.creates, f.patches
}

func newFakeRecorder(t *testing.T, opts RecorderOptions) (*Recorder, *fakeEvents) {
	t.Helper()
	f := &fakeEvents{events: map[string]*Event{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(&Config{Host: srv.URL, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return NewRecorder(c, opts), f
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRecorder_Event_AggregatesRepeats(t *testing.T) {
	rec, f := newFakeRecorder(t, RecorderOptions{Host: "node-1", FlushInterval: 50 * time.Millisecond})
	node := ObjectReference{Kind: "Node", APIVersion: "v1", Name: "node-1", UID: "n-uid"}
	// Queue before Run: one round folds all of them.
	for range 100 {
		rec.Event(node, EventTypeWarning, "AllocIPFailed", "vSwitch vsw-1 has no free IP")
	}
	for i := range 3 {
		pod := ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "ns", Name: "p" + string(rune('0'+i)), UID: "u"}
		rec.Eventf(pod, EventTypeNormal, "AllocIPSucceed", "took %d ms", 5)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rec.Run(ctx) }()
	waitFor(t, "4 events", 5*time.Second, func() bool { _, c, _ := f.snapshot(); return c == 4 })
	// Later repeats patch the count.
	for range 20 {
		rec.Event(node, EventTypeWarning, "AllocIPFailed", "vSwitch vsw-1 has no free IP")
	}
	var nodeEv Event
	waitFor(t, "count 120", 5*time.Second, func() bool {
		evs, _, _ := f.snapshot()
		for _, e := range evs {
			if e.InvolvedObject.Kind == "Node" {
				nodeEv = e
			}
		}
		return nodeEv.Count == 120
	})
	evs, creates, patches := f.snapshot()
	if creates != 4 || len(evs) != 4 {
		t.Errorf("%d creates, %d events, want 4", creates, len(evs))
	}
	if patches < 1 || patches > 20 {
		t.Errorf("%d patches for 20 repeats, want 1..20", patches)
	}
	if nodeEv.Namespace != "default" || nodeEv.Source.Host != "node-1" || nodeEv.ReportingInstance != "veni-node-1" || nodeEv.Type != EventTypeWarning {
		t.Errorf("node event: %+v", nodeEv)
	}
	st := rec.Stats()
	if st.Aggregated != 119 || st.Created != 4 || st.Dropped != 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRecorder_Event_RateLimited(t *testing.T) {
	rec, f := newFakeRecorder(t, RecorderOptions{Burst: 3, Refill: time.Hour, FlushInterval: 20 * time.Millisecond})
	pod := ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rec.Run(ctx) }()
	for i := range 10 {
		rec.Eventf(pod, EventTypeWarning, "AllocIPFailed", "attempt %d", i) // distinct messages: no aggregation
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, "rate limit", 5*time.Second, func() bool { st := rec.Stats(); return st.Created+st.RateLimited == 10 })
	_, creates, _ := f.snapshot()
	if st := rec.Stats(); creates != 3 || st.Created != 3 || st.RateLimited != 7 {
		t.Errorf("creates %d, stats %+v; want 3 created, 7 rate limited", creates, st)
	}
}

func TestRecorder_Event_NeverBlocks(t *testing.T) {
	rec, _ := newFakeRecorder(t, RecorderOptions{QueueSize: 10})
	ref := ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p"}
	done := make(chan struct{})
	go func() {
		for range 50 {
			rec.Event(ref, EventTypeNormal, "R", "m") // Run not started: the queue fills
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Event blocked on a full queue")
	}
	if st := rec.Stats(); st.Dropped != 40 {
		t.Errorf("dropped %d, want 40", st.Dropped)
	}
}

func TestRecorder_Event_RecreatesExpired(t *testing.T) {
	rec, f := newFakeRecorder(t, RecorderOptions{FlushInterval: 20 * time.Millisecond})
	ref := ObjectReference{Kind: "Node", Name: "n"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rec.Run(ctx) }()
	rec.Event(ref, EventTypeWarning, "ConfigError", "bad eni_conf")
	waitFor(t, "create", 5*time.Second, func() bool { _, c, _ := f.snapshot(); return c == 1 })
	f.mu.Lock()
	f.expire = true
	f.mu.Unlock()
	rec.Event(ref, EventTypeWarning, "ConfigError", "bad eni_conf")
	waitFor(t, "re-create", 5*time.Second, func() bool { _, c, _ := f.snapshot(); return c == 2 })
	evs, _, _ := f.snapshot()
	if len(evs) != 2 {
		t.Fatalf("%d events, want a second one under a new name", len(evs))
	}
	for _, e := range evs {
		if e.Count == 2 {
			return // the new event carries the running count
		}
	}
	t.Errorf("no event with count 2: %+v", evs)
}
