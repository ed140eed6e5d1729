package telemetry

import "github.com/veni-cni/veni/metrics"

// families are the exporter's metrics. README.md ("Metrics") documents each
// one; TestREADME_ListsEveryMetric keeps the two in step.
type families struct {
	// Build and daemon.
	buildInfo    *metrics.GaugeVec
	startTime    *metrics.Gauge
	passes       *metrics.CounterVec
	passDuration *metrics.HistogramVec
	reconciles   *metrics.CounterVec
	reconcileDur *metrics.Histogram
	poolBlocked  *metrics.Gauge
	ipChanges    *metrics.CounterVec
	eniChanges   *metrics.CounterVec
	storeErrors  *metrics.CounterVec

	// Pool, from the store at scrape time.
	poolIPs       *metrics.GaugeVec
	vswitchIPs    *metrics.GaugeVec
	idleIPs       *metrics.Gauge
	enis          *metrics.GaugeVec
	minIdle       *metrics.Gauge
	maxIdle       *metrics.Gauge
	backoffActive *metrics.GaugeVec
	backoffUntil  *metrics.GaugeVec
	eniReady      *metrics.Histogram

	// The event log.
	events          *metrics.CounterVec
	eventsMissed    *metrics.Counter
	eventLogResets  *metrics.Counter
	backoffsStarted *metrics.CounterVec
	gcReleases      *metrics.CounterVec
	leakedENIs      *metrics.Counter
	cniDuration     *metrics.HistogramVec
	cniFailures     *metrics.CounterVec

	// Cloud API.
	cloudCalls     *metrics.CounterVec
	cloudDuration  *metrics.HistogramVec
	cloudThrottled *metrics.CounterVec

	// Fast path.
	datapathInfo      *metrics.GaugeVec
	fastPackets       *metrics.CounterVec
	fastDecisions     *metrics.CounterVec
	fastEndpoints     *metrics.Gauge
	fastSampleTime    *metrics.Gauge
	fastSampleFailure *metrics.Counter

	// Informers.
	infSynced      *metrics.GaugeVec
	infObjects     *metrics.GaugeVec
	infLists       *metrics.CounterVec
	infRelists     *metrics.CounterVec
	infWatches     *metrics.CounterVec
	infWatchErrors *metrics.CounterVec
	infEvents      *metrics.CounterVec
	infBookmarks   *metrics.CounterVec
	infAddLag      *metrics.GaugeVec
	infLastEvent   *metrics.GaugeVec
}

// Latency buckets, in seconds. A warm CNI ADD takes milliseconds, a cold
// one waits up to alloc_wait (20 s by default) for the pool to grow.
func cniBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40}
}

// A cloud attempt is bounded by the client's CallTimeout (10 s).
func cloudBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
}

// A daemon pass or a reconcile may create and attach an ENI (attach_timeout
// is 60 s by default).
func passBuckets() []float64 {
	return []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
}

func newFamilies(r *metrics.Registry) families {
	return families{
		buildInfo:    r.NewGaugeVec("veni_build_info", "Always 1; the labels say which veni runs.", "version", "commit", "go_version"),
		startTime:    r.NewGauge("veni_daemon_start_time_seconds", "When the daemon started, in Unix seconds."),
		passes:       r.NewCounterVec("veni_daemon_passes_total", "Daemon passes: full (timer: GC, fast-path sync, reconcile with the cloud) and local (store writes: GC, reconcile only when the pool fell below min_pool_size).", "kind"),
		passDuration: r.NewHistogramVec("veni_daemon_pass_duration_seconds", "Wall time of a daemon pass.", passBuckets(), "kind"),
		reconciles:   r.NewCounterVec("veni_reconciles_total", "Pool reconciles by result: ok, partial (some steps failed), failed, lease_held (another process held the allocator lease).", "result"),
		reconcileDur: r.NewHistogram("veni_reconcile_duration_seconds", "Wall time of a pool reconcile that ran.", passBuckets()),
		poolBlocked:  r.NewGauge("veni_pool_blocked", "1 when the last reconcile could not grow the pool (back-off, quota, exhausted vSwitch), else 0."),
		ipChanges:    r.NewCounterVec("veni_pool_ip_changes_total", "Addresses changed by reconciles: added (assigned by the cloud), released (idle, returned to the cloud), synced, recovered, dropped, lost.", "change"),
		eniChanges:   r.NewCounterVec("veni_pool_eni_changes_total", "ENIs changed by reconciles: adopted (attached, tagged by veni, unknown to the store), deleted (empty, above need).", "change"),
		storeErrors:  r.NewCounterVec("veni_store_errors_total", "Store accesses of the daemon that failed, by reason: locked, damaged, schema_too_new, corrupt, other.", "reason"),

		poolIPs:       r.NewGaugeVec("veni_pool_ips", "Secondary addresses per ENI by state (free, reserved, bound); their sum is the ENI's total.", "eni", "vswitch", "state"),
		vswitchIPs:    r.NewGaugeVec("veni_pool_vswitch_ips", "Secondary addresses of the node's ENIs per vSwitch by state (free, reserved, bound).", "vswitch", "state"),
		idleIPs:       r.NewGauge("veni_pool_idle_ips", "Free addresses on ready ENIs: what a warm CNI ADD can take."),
		enis:          r.NewGaugeVec("veni_pool_enis", "The node's secondary ENIs by state: attaching, ready, draining, gone (the cloud no longer lists it attached).", "state"),
		minIdle:       r.NewGauge("veni_pool_min_idle_ips", "The pool's lower target of free addresses (min_pool_size) as the store holds it."),
		maxIdle:       r.NewGauge("veni_pool_max_idle_ips", "The pool's upper target of free addresses (max_pool_size) as the store holds it."),
		backoffActive: r.NewGaugeVec("veni_pool_backoff_active", "1 for each back-off in force, by scope (eni-quota, vswitch/<id>, eni/<id>).", "scope"),
		backoffUntil:  r.NewGaugeVec("veni_pool_backoff_until_timestamp_seconds", "When each back-off in force ends, in Unix seconds.", "scope"),
		eniReady:      r.NewHistogram("veni_eni_ready_duration_seconds", "From creating an ENI to its link being ready on the node (create, attach, link seen), for ENIs that became ready while the daemon ran.", passBuckets()),

		events:          r.NewCounterVec("veni_events_total", "Events appended to the store's event log since the daemon started, by reason.", "reason"),
		eventsMissed:    r.NewCounter("veni_event_log_missed_total", "Events the log dropped (its cap) before the daemon read them: their CNI records are not in the histograms."),
		eventLogResets:  r.NewCounter("veni_event_log_resets_total", "Times the event log started over under the daemon (the store was replaced)."),
		backoffsStarted: r.NewCounterVec("veni_pool_backoffs_started_total", "Back-offs the pool started, by reason: VSwitchExhausted, IPQuotaExceeded, ENIQuotaExceeded.", "reason"),
		gcReleases:      r.NewCounterVec("veni_gc_releases_total", "Addresses released because their owner is gone, by reason: OwnerGone (daemon or veni ipam gc), NotInValidAttachments (CNI GC).", "reason"),
		leakedENIs:      r.NewCounter("veni_leaked_enis_deleted_total", "ENIs veni created for this node, never recorded, and deleted by the leak sweep."),
		cniDuration:     r.NewHistogramVec("veni_cni_call_duration_seconds", "CNI plugin calls by verb (ADD, DEL), successful or not, from their records in the event log.", cniBuckets(), "verb"),
		cniFailures:     r.NewCounterVec("veni_cni_failures_total", "Failed CNI plugin calls by verb and CNI error code (11: try again later, 999: internal).", "verb", "code"),

		cloudCalls:     r.NewCounterVec("veni_cloud_api_calls_total", "Cloud API attempts (each retry counts) by action and result: OK, the API's error code, or Timeout, Canceled, NoCredentials, NetworkError.", "action", "result"),
		cloudDuration:  r.NewHistogramVec("veni_cloud_api_call_duration_seconds", "Cloud API attempt latency by action.", cloudBuckets(), "action"),
		cloudThrottled: r.NewCounterVec("veni_cloud_api_throttled_total", "Cloud API attempts refused by throttling (Throttling*, ServiceUnavailable), by action.", "action"),

		datapathInfo:      r.NewGaugeVec("veni_datapath_info", "Always 1; active is the datapath pods get (ebpf or plain), configured what the config asked for.", "active", "configured"),
		fastPackets:       r.NewCounterVec("veni_fastpath_packets_total", "Packets the fast path's programs saw, by hook (from_pod, to_pod, from_eni); sampled after every daemon pass.", "hook"),
		fastDecisions:     r.NewCounterVec("veni_fastpath_decisions_total", "What the fast path's programs did with packets, by hook and decision (redirect_peer, redirect_neigh, pass_*, fib_*, ...); sampled after every daemon pass.", "hook", "decision"),
		fastEndpoints:     r.NewGauge("veni_fastpath_endpoints", "Pods with a fast-path endpoint on this node."),
		fastSampleTime:    r.NewGauge("veni_fastpath_sample_timestamp_seconds", "When the fast-path counters were last sampled, in Unix seconds."),
		fastSampleFailure: r.NewCounter("veni_fastpath_sample_errors_total", "Fast-path counter samples that failed."),

		infSynced:      r.NewGaugeVec("veni_informer_synced", "1 once the informer's first list completed.", "resource"),
		infObjects:     r.NewGaugeVec("veni_informer_objects", "Objects in the informer's cache.", "resource"),
		infLists:       r.NewCounterVec("veni_informer_lists_total", "Successful lists (the first one and every relist).", "resource"),
		infRelists:     r.NewCounterVec("veni_informer_relists_total", "Lists forced by 410 Gone (the watch's resourceVersion expired).", "resource"),
		infWatches:     r.NewCounterVec("veni_informer_watches_total", "Watch streams opened.", "resource"),
		infWatchErrors: r.NewCounterVec("veni_informer_watch_errors_total", "Lists or watches that failed (a back-off followed).", "resource"),
		infEvents:      r.NewCounterVec("veni_informer_events_total", "ADDED, MODIFIED and DELETED events applied to the cache.", "resource"),
		infBookmarks:   r.NewCounterVec("veni_informer_bookmarks_total", "BOOKMARK events received.", "resource"),
		infAddLag:      r.NewGaugeVec("veni_informer_add_lag_seconds", "The last ADDED event's arrival minus the object's creationTimestamp (watch delay, +1 s precision).", "resource"),
		infLastEvent:   r.NewGaugeVec("veni_informer_last_event_timestamp_seconds", "Arrival of the informer's last event or bookmark, in Unix seconds.", "resource"),
	}
}
