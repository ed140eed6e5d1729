package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RecorderOptions configure a Recorder. Zero values take client-go's
// record package defaults where it has one.
type RecorderOptions struct {
	// Component is source.component and reportingComponent, e.g. "veni".
	Component string
	// Host is source.host, normally the node name.
	Host string
	// Instance is reportingInstance. Zero means Component-Host.
	Instance string
	// QueueSize bounds the events waiting to be sent; when full, Event
	// drops and counts. Zero means 1000.
	QueueSize int
	// AggregateWindow: an event with the same object, type, reason and
	// message as one sent less than this ago increments that event's count
	// (one PATCH) instead of creating another. Zero means 10 minutes.
	AggregateWindow time.Duration
	// Burst and Refill are the per-object token bucket on writes (creates
	// and patches): Burst at once, then one per Refill. Zero means 25 and
	// 5 minutes (client-go's spam filter). A repeat that finds no token
	// waits, counted, for the next one; a new event that finds none is
	// dropped and counted in RateLimited.
	Burst  int
	Refill time.Duration
	// FlushInterval is how often repeats waiting for a token are retried.
	// Zero means 1 s.
	FlushInterval time.Duration
	// MaxKeys bounds the aggregation and rate-limit memory. Zero means
	// 4096 (client-go's LRU size).
	MaxKeys int
	// Logger receives send failures; nil means slog.Default().
	Logger *slog.Logger
}

// RecorderStats count what a Recorder did with the events it was given.
type RecorderStats struct {
	Dropped     uint64 // queue full: never sent
	RateLimited uint64 // new events over their object's budget: never sent
	Aggregated  uint64 // repeats folded into an existing event's count
	Created     uint64 // Event objects created
	Patched     uint64 // count/lastTimestamp patches sent
	Failed      uint64 // create or patch requests that failed
}

type eventItem struct {
	ref                  ObjectReference
	typ, reason, message string
	at                   time.Time
}

// aggregate is one Event object on the server and what is pending for it.
type aggregate struct {
	objKey  string    // rate limit key: the involved object
	ev      Event     // as last written (name, namespace, count)
	last    time.Time // last occurrence
	pending bool      // count changed since last written
	created bool      // ev exists on the server
}

// Recorder sends core/v1 Events without ever blocking its caller: Event
// queues, and Run sends. Identical events (same object, type, reason and
// message) within AggregateWindow become one Event whose count grows by
// PATCH; a burst of identical events costs one create and at most one
// patch per send round, and the count stays exact. Each object has its own
// rate budget for writes, so a storm costs the API server a bounded
// number of requests.
type Recorder struct {
	c    *Client
	opts RecorderOptions
	log  *slog.Logger
	now  func() time.Time
	q    chan eventItem

	mu    sync.Mutex
	st    RecorderStats
	aggs  map[string]*aggregate    // by object+type+reason+message
	limit map[string]*rate.Limiter // by object
	seen  map[string]time.Time     // last use of a limit entry, for eviction
}

// NewRecorder returns a recorder; Run sends its events. Give it a Client
// of its own (its own QPS budget), so that an event storm cannot starve
// the informers and status writes sharing a client.
func NewRecorder(c *Client, opts RecorderOptions) *Recorder {
	if opts.Component == "" {
		opts.Component = "veni"
	}
	if opts.Instance == "" {
		opts.Instance = opts.Component
		if opts.Host != "" {
			opts.Instance += "-" + opts.Host
		}
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.AggregateWindow <= 0 {
		opts.AggregateWindow = 10 * time.Minute
	}
	if opts.Burst <= 0 {
		opts.Burst = 25
	}
	if opts.Refill <= 0 {
		opts.Refill = 5 * time.Minute
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 4096
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{
		c: c, opts: opts, log: log, now: time.Now,
		q:     make(chan eventItem, opts.QueueSize),
		aggs:  map[string]*aggregate{},
		limit: map[string]*rate.Limiter{},
		seen:  map[string]time.Time{},
	}
}

// RefOf returns the reference of obj for Event.
func RefOf[T any](r Resource[T], obj *T) ObjectReference {
	m := metaOf(obj)
	ns := m.Namespace
	if !r.Namespaced {
		ns = ""
	}
	return ObjectReference{Kind: r.Kind, APIVersion: r.APIVersion(), Namespace: ns, Name: m.Name, UID: m.UID}
}

// Event queues an event about ref; eventType is EventTypeNormal or
// EventTypeWarning, reason a CamelCase word (Terway's, e.g.
// "AllocIPFailed"). It never blocks: when the queue is full the event is
// dropped and counted in Stats().Dropped.
func (r *Recorder) Event(ref ObjectReference, eventType, reason, message string) {
	select {
	case r.q <- eventItem{ref: ref, typ: eventType, reason: reason, message: message, at: r.now()}:
	default:
		r.mu.Lock()
		r.st.Dropped++
		r.mu.Unlock()
	}
}

// Eventf is Event with a formatted message.
func (r *Recorder) Eventf(ref ObjectReference, eventType, reason, format string, args ...any) {
	r.Event(ref, eventType, reason, fmt.Sprintf(format, args...))
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// Run sends queued events until ctx ends. Each round takes every event
// already queued, folds them into aggregates, then writes each changed
// aggregate once; every FlushInterval it retries repeats that were waiting
// for a token.
func (r *Recorder) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case it := <-r.q:
			r.take(it)
		}
	drain:
		for {
			select {
			case it := <-r.q:
				r.take(it)
			default:
				break drain
			}
		}
		r.flush(ctx)
	}
}

func objectKey(ref ObjectReference) string {
	return ref.Kind + "\x00" + ref.Namespace + "\x00" + ref.Name + "\x00" + ref.UID
}

// take folds an event into its aggregate.
func (r *Recorder) take(it eventItem) {
	ok := objectKey(it.ref)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := ok + "\x00" + it.typ + "\x00" + it.reason + "\x00" + it.message
	if a := r.aggs[key]; a != nil && it.at.Sub(a.last) < r.opts.AggregateWindow {
		a.ev.Count++
		a.last, a.pending = it.at, true
		r.st.Aggregated++
		return
	}
	ns := it.ref.Namespace
	if ns == "" {
		ns = "default" // cluster-scoped objects' events live in default
	}
	t := NewTime(it.at)
	r.aggs[key] = &aggregate{
		objKey: ok, last: it.at, pending: true,
		ev: Event{
			ObjectMeta:         ObjectMeta{Namespace: ns, Name: eventName(it.ref.Name, it.at)},
			InvolvedObject:     it.ref,
			Reason:             it.reason,
			Message:            it.message,
			Type:               it.typ,
			Source:             EventSource{Component: r.opts.Component, Host: r.opts.Host},
			FirstTimestamp:     t,
			LastTimestamp:      t,
			Count:              1,
			ReportingComponent: r.opts.Component,
			ReportingInstance:  r.opts.Instance,
		},
	}
	r.evictLocked(it.at)
}

// eventName is client-go's: object name, a dot, the time in hex nanos.
func eventName(obj string, at time.Time) string {
	return obj + "." + strconv.FormatInt(at.UnixNano(), 16)
}

// evictLocked forgets aggregates past their window and rate limiters that
// are full again, then the oldest entries beyond MaxKeys.
func (r *Recorder) evictLocked(now time.Time) {
	if len(r.aggs) <= r.opts.MaxKeys && len(r.limit) <= r.opts.MaxKeys {
		return
	}
	full := r.opts.Refill * time.Duration(r.opts.Burst)
	for k, a := range r.aggs {
		if !a.pending && now.Sub(a.last) >= r.opts.AggregateWindow {
			delete(r.aggs, k)
		}
	}
	for k, t := range r.seen {
		if now.Sub(t) >= full {
			delete(r.limit, k)
			delete(r.seen, k)
		}
	}
	for len(r.aggs) > r.opts.MaxKeys {
		var oldest string
		var ot time.Time
		for k, a := range r.aggs {
			if !a.pending && (oldest == "" || a.last.Before(ot)) {
				oldest, ot = k, a.last
			}
		}
		if oldest == "" {
			break
		}
		delete(r.aggs, oldest)
	}
	for len(r.limit) > r.opts.MaxKeys {
		var oldest string
		var ot time.Time
		for k, t := range r.seen {
			if oldest == "" || t.Before(ot) {
				oldest, ot = k, t
			}
		}
		delete(r.limit, oldest)
		delete(r.seen, oldest)
	}
}

// limiterLocked returns the write budget of an object.
func (r *Recorder) limiterLocked(objKey string, now time.Time) *rate.Limiter {
	lim := r.limit[objKey]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(r.opts.Refill), r.opts.Burst)
		r.limit[objKey] = lim
	}
	r.seen[objKey] = now
	return lim
}

// flush writes every pending aggregate that has a token: a create for a
// new one, a patch of count and lastTimestamp for a repeat; a patch whose
// event has expired on the server (NotFound) becomes a create under a new
// name. A new aggregate without a token is dropped; a repeat without one
// stays pending.
func (r *Recorder) flush(ctx context.Context) {
	now := r.now()
	r.mu.Lock()
	var todo []*aggregate
	var snap []Event
	var created []bool
	for key, a := range r.aggs {
		if !a.pending {
			continue
		}
		if !r.limiterLocked(a.objKey, now).AllowN(now, 1) {
			if !a.created {
				delete(r.aggs, key)
				r.st.RateLimited += uint64(a.ev.Count)
			}
			continue
		}
		a.pending = false
		a.ev.LastTimestamp = NewTime(a.last)
		todo = append(todo, a)
		snap = append(snap, a.ev)
		created = append(created, a.created)
	}
	r.evictLocked(now)
	r.mu.Unlock()

	for k, ev := range snap {
		if ctx.Err() != nil {
			return
		}
		ok, wasCreate := r.write(ctx, &ev, created[k])
		r.mu.Lock()
		switch {
		case !ok:
			r.st.Failed++
		case wasCreate:
			r.st.Created++
			todo[k].created = true
			todo[k].ev.Name = ev.Name
		default:
			r.st.Patched++
		}
		r.mu.Unlock()
	}
}

// write sends ev; it reports success and whether it created.
func (r *Recorder) write(ctx context.Context, ev *Event, exists bool) (ok, created bool) {
	if exists {
		patch, _ := json.Marshal(map[string]any{"count": ev.Count, "lastTimestamp": ev.LastTimestamp, "message": ev.Message})
		_, err := Patch(ctx, r.c, Events, ev.Namespace, ev.Name, StrategicMergePatch, patch, WriteOptions{})
		if err == nil {
			return true, false
		}
		if !IsNotFound(err) {
			r.log.Warn("patch event", "event", Key(ev.Namespace, ev.Name), "reason", ev.Reason, "err", err)
			return false, false
		}
		// Expired on the server (events have a TTL): start a new one.
		ev.Name = eventName(ev.InvolvedObject.Name, r.now())
		ev.ResourceVersion = ""
	}
	if _, err := Create(ctx, r.c, Events, ev, WriteOptions{}); err != nil {
		r.log.Warn("create event", "event", Key(ev.Namespace, ev.Name), "reason", ev.Reason, "err", err)
		return false, false
	}
	return true, true
}
