package telemetry

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/veni-cni/veni/metrics"
	"github.com/veni-cni/veni/store"
)

// Options configure New.
type Options struct {
	// Store is the node's store. The exporter only reads it, one short
	// transaction at a time, waiting at most StoreTimeout for its lock.
	Store store.File
	// Build says which veni runs, for veni_build_info.
	Build Build
	// CacheFor is how long one store read serves scrapes; zero means one
	// second, so a burst of scrapes costs one transaction.
	CacheFor time.Duration
	// StoreTimeout bounds the wait for the store's lock at a scrape; zero
	// means one second (a scrape must not hang behind a long writer).
	StoreTimeout time.Duration
	// Logger receives a debug line per failed store read; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Build identifies the running binary: what the Makefile stamps into
// "veni version".
type Build struct {
	Version string // "dev" when empty
	Commit  string // empty: the go command's VCS stamp, if any
}

// Exporter holds the daemon's metrics and serves them. It is safe for
// concurrent use; its hook methods do nothing on a nil *Exporter, so the
// daemon's code calls them without checking whether metrics are on.
type Exporter struct {
	reg   *metrics.Registry
	store store.File
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	start time.Time

	// mu serialises store reads and everything they update: the event
	// cursor, the pool gauges, the series bookkeeping below.
	mu          sync.Mutex
	lastRead    time.Time // of the last successful pool read
	events      follower
	readySeen   map[string]bool // ENIs whose ready duration was observed
	poolSeries  gaugeSet        // veni_pool_ips
	vswSeries   gaugeSet        // veni_pool_vswitch_ips
	eniSeries   gaugeSet        // veni_pool_enis
	boSeries    gaugeSet        // veni_pool_backoff_active
	boUntil     gaugeSet        // veni_pool_backoff_until_timestamp_seconds
	labelLimits labelLimiter    // for label values that come from outside (reasons, codes)

	informersMu sync.Mutex
	informers   []informer

	cloudMu     sync.Mutex   // for cloudLimits
	cloudLimits labelLimiter // ObserveCloud's actions and codes

	fastMu sync.Mutex // SetFastPath's series bookkeeping
	fastDP gaugeSet   // veni_datapath_info

	m families
}

// New builds an exporter and registers every metric. It touches neither
// the store nor the network; Serve and the hooks do that.
func New(opts Options) *Exporter {
	if opts.CacheFor <= 0 {
		opts.CacheFor = time.Second
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Build.Version == "" {
		opts.Build.Version = "dev"
	}
	if opts.Build.Commit == "" {
		opts.Build.Commit = vcsRevision()
	}
	e := &Exporter{
		reg:         metrics.NewRegistry(),
		store:       opts.Store,
		opts:        opts,
		log:         opts.Logger,
		now:         opts.Now,
		readySeen:   make(map[string]bool),
		labelLimits: newLabelLimiter(),
		cloudLimits: newLabelLimiter(),
	}
	e.store.Options.Timeout = opts.StoreTimeout
	e.store.Options.ReadOnly = true
	e.start = e.now()
	e.events.start = e.start
	e.m = newFamilies(e.reg)
	e.poolSeries.vec = e.m.poolIPs
	e.vswSeries.vec = e.m.vswitchIPs
	e.eniSeries.vec = e.m.enis
	e.boSeries.vec = e.m.backoffActive
	e.boUntil.vec = e.m.backoffUntil
	e.fastDP.vec = e.m.datapathInfo

	e.m.buildInfo.With(opts.Build.Version, opts.Build.Commit, runtime.Version()).Set(1)
	e.m.startTime.SetToTime(e.start)
	e.reg.OnCollect(e.collect)
	return e
}

// Handler serves the metrics in the Prometheus text format.
func (e *Exporter) Handler() http.Handler { return e.reg.Handler() }

// vcsRevision is the commit the binary was built from, as the go command
// stamped it ("unknown" without VCS information, as in tests).
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && rev != "unknown" {
		rev += "-dirty"
	}
	return rev
}

// collect runs before every scrape: it reads the store (at most once per
// CacheFor) and the informers' statistics.
func (e *Exporter) collect() {
	e.collectInformers()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if !e.lastRead.IsZero() && now.Sub(e.lastRead) < e.opts.CacheFor && now.After(e.lastRead) {
		return
	}
	var (
		snap  poolSnapshot
		batch eventBatch
	)
	err := e.store.View(func(tx *store.ReadTx) error {
		if err := snap.read(tx); err != nil {
			return err
		}
		var err error
		batch, err = e.events.next(tx)
		return err
	})
	if err != nil {
		e.storeError("scrape", err)
		return
	}
	e.lastRead = now
	e.setPool(snap, now)
	e.countEvents(batch)
}

// FollowEvents counts the events logged since the last read (the CNI
// plugin's call records among them). The daemon calls it after every pass,
// so counts stay current between scrapes; a scrape reading the store at
// that moment does the same work, and this call then returns at once.
func (e *Exporter) FollowEvents() {
	if e == nil || !e.mu.TryLock() {
		return
	}
	defer e.mu.Unlock()
	var batch eventBatch
	err := e.store.View(func(tx *store.ReadTx) error {
		var err error
		batch, err = e.events.next(tx)
		return err
	})
	if err != nil {
		e.storeError("follow events", err)
		return
	}
	e.countEvents(batch)
}

// storeError counts a failed store access by what went wrong.
func (e *Exporter) storeError(what string, err error) {
	e.m.storeErrors.With(storeErrorReason(err)).Inc()
	e.log.Debug("metrics: read store", "what", what, "err", err)
}

// storeErrorReason is the "reason" label of veni_store_errors_total.
func storeErrorReason(err error) string {
	switch {
	case errors.Is(err, store.ErrLocked):
		return "locked"
	case errors.Is(err, store.ErrDamaged):
		return "damaged"
	case errors.Is(err, store.ErrSchemaTooNew):
		return "schema_too_new"
	case errors.Is(err, store.ErrCorrupt):
		return "corrupt"
	}
	return "other"
}

// StoreError counts a store access of the daemon's that failed (a
// reconcile that could not open the store). Errors that are not about the
// store are ignored.
func (e *Exporter) StoreError(err error) {
	if e == nil || err == nil {
		return
	}
	for _, s := range []error{store.ErrLocked, store.ErrDamaged, store.ErrSchemaTooNew, store.ErrCorrupt} {
		if errors.Is(err, s) {
			e.m.storeErrors.With(storeErrorReason(err)).Inc()
			return
		}
	}
}
