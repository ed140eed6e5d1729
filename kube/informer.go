package kube

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// EventHandler receives an informer's changes. Nil funcs are skipped. They
// run on the informer's goroutine, one at a time, after the cache has
// changed; objects are shared with the cache and read-only.
type EventHandler[T any] struct {
	// OnAdd is called for an object new to the cache; initialList is true
	// while the first list is being delivered.
	OnAdd func(obj *T, initialList bool)
	// OnUpdate is called when an object's resourceVersion changed.
	OnUpdate func(oldObj, newObj *T)
	// OnDelete is called with the object's last state: the one in the
	// DELETED event, or the cached one when a relist found it gone.
	OnDelete func(obj *T)
}

// InformerOptions configure an Informer.
type InformerOptions[T any] struct {
	// Namespace to watch; "" for all namespaces (or a cluster-scoped
	// resource).
	Namespace string
	// LabelSelector and FieldSelector narrow what is listed and watched,
	// e.g. FieldSelector "spec.nodeName=node-1" for this node's pods.
	LabelSelector string
	FieldSelector string
	// PageSize is the list page size. Zero means 500.
	PageSize int64
	// WatchTimeout is the server-side length of one watch. Zero means a
	// random 5–10 minutes per watch (client-go's spread, so a fleet of
	// daemons does not reconnect in step).
	WatchTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential back-off
	// after list or watch failures. Zero means 800 ms and 30 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Handler receives changes.
	Handler EventHandler[T]
	// Transform, if set, edits each object as it arrives, before it is
	// cached or handed to Handler: drop what the caller does not need
	// (e.g. the kubectl last-applied-configuration annotation, a copy of
	// the whole object) to keep the cache small. It must not change the
	// namespace, name or resourceVersion.
	Transform func(obj *T)
	// Logger receives reconnects and relists; nil means slog.Default().
	Logger *slog.Logger
}

// InformerStats describe an informer's health, for metrics and status.
type InformerStats struct {
	Synced          bool      // the first list has completed
	ResourceVersion string    // last seen, from a list, event or bookmark
	Objects         int       // objects in the cache
	Lists           uint64    // successful lists (1 + relists)
	Relists410      uint64    // lists forced by 410 Gone / Expired
	WatchesOpened   uint64    // watch streams opened
	WatchErrors     uint64    // lists or watches that failed (back-off followed)
	Events          uint64    // ADDED, MODIFIED and DELETED events applied
	Bookmarks       uint64    // BOOKMARK events
	LastEvent       time.Time // arrival of the last event or bookmark
	LastList        time.Time // completion of the last list
	// AddLag is the last ADDED event's arrival minus the object's
	// creationTimestamp: the watch delay plus up to one second, the
	// timestamp's precision. Zero until an ADDED event arrives.
	AddLag time.Duration
}

// Informer keeps a cache of one resource in step with the server: it
// lists, then watches from the list's resourceVersion; bookmarks advance
// the resourceVersion; 410 Gone relists; connection failures reconnect with
// jittered exponential back-off. Only decoded typed objects are kept.
type Informer[T any] struct {
	c    *Client
	r    Resource[T]
	opts InformerOptions[T]
	log  *slog.Logger
	now  func() time.Time

	mu    sync.RWMutex
	items map[string]*T
	rv    string
	st    InformerStats

	synced   atomic.Bool
	syncedCh chan struct{}
}

// NewInformer returns an informer for r; Run starts it.
func NewInformer[T any](c *Client, r Resource[T], opts InformerOptions[T]) *Informer[T] {
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 800 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Informer[T]{
		c: c, r: r, opts: opts, now: time.Now,
		log:      log.With("resource", r.Name),
		items:    map[string]*T{},
		syncedCh: make(chan struct{}),
	}
}

// HasSynced reports whether the first list has been loaded into the cache.
func (i *Informer[T]) HasSynced() bool { return i.synced.Load() }

// WaitForSync blocks until HasSynced or ctx ends (returning ctx's error).
func (i *Informer[T]) WaitForSync(ctx context.Context) error {
	select {
	case <-i.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the cached object namespace/name (namespace "" for
// cluster-scoped resources). The object is shared: do not change it.
func (i *Informer[T]) Get(namespace, name string) (*T, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.items[Key(namespace, name)]
	return o, ok
}

// List returns every cached object, in no particular order. The objects
// are shared: do not change them.
func (i *Informer[T]) List() []*T {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]*T, 0, len(i.items))
	for _, o := range i.items {
		out = append(out, o)
	}
	return out
}

// Stats returns a snapshot of the informer's counters.
func (i *Informer[T]) Stats() InformerStats {
	i.mu.RLock()
	defer i.mu.RUnlock()
	st := i.st
	st.Synced, st.ResourceVersion, st.Objects = i.synced.Load(), i.rv, len(i.items)
	return st
}

// Run lists and watches until ctx ends, then returns ctx's error. Failures
// never end it: they are logged, counted in Stats and retried. Call Run
// once per informer.
func (i *Informer[T]) Run(ctx context.Context) error {
	bo := backoff{min: i.opts.MinBackoff, max: i.opts.MaxBackoff}
	needList := true
	for ctx.Err() == nil {
		if needList {
			if err := i.list(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				i.count(func(st *InformerStats) { st.WatchErrors++ })
				d := bo.next()
				i.log.Warn("kube list failed, retrying", "err", err, "in", d)
				Sleep(ctx, d)
				continue
			}
			needList = false
		}
		start := i.now()
		events, err := i.watch(ctx)
		if ctx.Err() != nil {
			break
		}
		switch {
		case IsGone(err):
			// The resourceVersion fell out of the server's window:
			// relist now, as client-go does, without back-off.
			i.count(func(st *InformerStats) { st.Relists410++ })
			i.log.Info("kube watch expired, relisting", "err", err)
			needList = true
		case errors.Is(err, ErrWatchClosed) && (events > 0 || i.now().Sub(start) > time.Second):
			// Server timeout or a drop after a healthy stream: resume
			// from the last resourceVersion at once.
			bo.reset()
		default:
			i.count(func(st *InformerStats) { st.WatchErrors++ })
			d := bo.next()
			i.log.Warn("kube watch failed, reconnecting", "err", err, "in", d)
			Sleep(ctx, d)
		}
	}
	return ctx.Err()
}

func (i *Informer[T]) count(f func(*InformerStats)) {
	i.mu.Lock()
	f(&i.st)
	i.mu.Unlock()
}

// list loads a full list and replaces the cache with it, delivering the
// difference to the handler.
//
// The first list asks for resourceVersion "0": the API server answers from
// its watch cache (indexed by spec.nodeName for pods) instead of a quorum
// read from etcd, which matters when thousands of daemons start at once;
// the watch that follows brings the cache up to date. Later lists (after
// 410 Gone) ask for "", the latest state, because the cached state may be
// exactly what just expired (client-go's reflector does the same).
func (i *Informer[T]) list(ctx context.Context) error {
	rv := ""
	if !i.synced.Load() {
		rv = "0"
	}
	// Stream the list into a fresh map: each object arrives in its own
	// allocation and is transformed before the next is decoded.
	fresh := map[string]*T{}
	lm, err := listEach(ctx, i.c, i.r, i.opts.Namespace, ListOptions{
		LabelSelector:   i.opts.LabelSelector,
		FieldSelector:   i.opts.FieldSelector,
		Limit:           i.opts.PageSize,
		ResourceVersion: rv,
	}, func(o *T) {
		if i.opts.Transform != nil {
			i.opts.Transform(o)
		}
		fresh[metaOf(o).Key()] = o
	}, func() { clear(fresh) })
	if err != nil {
		return err
	}
	initial := !i.synced.Load()
	type change struct{ old, new *T }
	var changes []change
	i.mu.Lock()
	for key, o := range fresh {
		old, ok := i.items[key]
		switch {
		case !ok:
			changes = append(changes, change{nil, o})
		case metaOf(old).ResourceVersion != metaOf(o).ResourceVersion:
			changes = append(changes, change{old, o})
		default:
			fresh[key] = old // unchanged: keep the cached copy, drop the new one
		}
	}
	for key, old := range i.items {
		if _, ok := fresh[key]; !ok {
			changes = append(changes, change{old, nil})
		}
	}
	i.items, i.rv = fresh, lm.ResourceVersion
	i.st.Lists++
	i.st.LastList = i.now()
	i.mu.Unlock()

	h := i.opts.Handler
	for _, c := range changes {
		switch {
		case c.old == nil && h.OnAdd != nil:
			h.OnAdd(c.new, initial)
		case c.new == nil && h.OnDelete != nil:
			h.OnDelete(c.old)
		case c.old != nil && c.new != nil && h.OnUpdate != nil:
			h.OnUpdate(c.old, c.new)
		}
	}
	if initial {
		i.synced.Store(true)
		close(i.syncedCh)
	}
	return nil
}

// watch opens one watch from the current resourceVersion and applies its
// events until it ends; it returns how many events it applied and why it
// ended.
func (i *Informer[T]) watch(ctx context.Context) (int, error) {
	timeout := i.opts.WatchTimeout
	if timeout <= 0 {
		timeout = 5*time.Minute + rand.N(5*time.Minute)
	}
	i.mu.RLock()
	rv := i.rv
	i.mu.RUnlock()
	w, err := Watch(ctx, i.c, i.r, i.opts.Namespace, ListOptions{
		LabelSelector:       i.opts.LabelSelector,
		FieldSelector:       i.opts.FieldSelector,
		ResourceVersion:     rv,
		TimeoutSeconds:      int64(timeout / time.Second),
		AllowWatchBookmarks: true,
	})
	if err != nil {
		return 0, err
	}
	defer w.Close()
	i.count(func(st *InformerStats) { st.WatchesOpened++ })
	n := 0
	for {
		ev, err := w.Next()
		if err != nil {
			return n, err
		}
		i.apply(ev)
		n++
	}
}

// apply updates the cache with one event and calls the handler.
func (i *Informer[T]) apply(ev WatchEvent[T]) {
	now := i.now()
	if ev.Type != Bookmark && i.opts.Transform != nil {
		i.opts.Transform(ev.Object)
	}
	m := metaOf(ev.Object)
	key := m.Key()
	i.mu.Lock()
	if m.ResourceVersion != "" {
		i.rv = m.ResourceVersion
	}
	i.st.LastEvent = now
	var old *T
	var known bool
	switch ev.Type {
	case Bookmark:
		i.st.Bookmarks++
		i.mu.Unlock()
		return
	case Added, Modified:
		old, known = i.items[key]
		i.items[key] = ev.Object
		if ev.Type == Added && !m.CreationTimestamp.IsZero() {
			i.st.AddLag = now.Sub(m.CreationTimestamp.Time)
		}
	case Deleted:
		old, known = i.items[key]
		delete(i.items, key)
	}
	i.st.Events++
	i.mu.Unlock()

	h := i.opts.Handler
	switch {
	case ev.Type == Deleted:
		if known && h.OnDelete != nil {
			h.OnDelete(ev.Object)
		}
	case known:
		if h.OnUpdate != nil {
			h.OnUpdate(old, ev.Object)
		}
	default:
		if h.OnAdd != nil {
			h.OnAdd(ev.Object, false)
		}
	}
}

// backoff is a jittered exponential back-off: each wait is the current
// step plus up to 100% jitter, and the step doubles up to max (client-go's
// reflector uses the same 800 ms, 30 s, factor 2, jitter 1.0).
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	d := b.cur + rand.N(b.cur+1)
	if d > b.max {
		d = b.max
	}
	b.cur *= 2
	if b.cur > b.max {
		b.cur = b.max
	}
	return d
}

func (b *backoff) reset() { b.cur = 0 }

// Sleep waits d or until ctx ends: the pause between retries of a watch,
// a lease or a probe, for every loop that talks to the API server.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
