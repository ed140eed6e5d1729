// Package metrics is veni's Prometheus exposition: counters, gauges and
// histograms with fixed buckets, with or without labels, written in the
// text format 0.0.4 (HELP and TYPE lines, escaping, +Inf/NaN), served on a
// unix socket by default (DefaultSocket) or on a TCP address when
// configured — never an open port by default.
//
// Why not a library. veni is one binary that is also the CNI plugin, so
// every linked package's init runs in every CNI call; all Kubernetes and
// metrics code together may add at most 0.5 ms. Measured on the
// development machine (GODEBUG=inittrace=1, median of 15 runs of a
// hello-world binary): prometheus/client_golang 2.5 ms, prometheus/common
// expfmt 1.3 ms, github.com/VictoriaMetrics/metrics 0.47 ms for its own
// init plus 0.14 ms for runtime/metrics, which it pulls in and veni does
// not otherwise link (0.6 ms, 262 allocations: over the whole budget by
// itself, before the kubeconfig YAML decoder's ~0.15–0.27 ms). This package
// has no init work at all (TestInit_NoWork checks it): no package-level
// maps, regexps or registries; a Registry is built by the daemon.
//
// Conventions, enforced at registration (a bad name panics, as
// client_golang's MustRegister does, so a test catches it): snake case
// names, counters and only counters end in _total, durations are
// _seconds, nothing ends in _bucket, _count or _sum; label names are
// [a-zA-Z_][a-zA-Z0-9_]* and "le" is reserved for histograms. veni's names
// start with veni_.
//
// The output is checked in tests with Prometheus' own parser
// (github.com/prometheus/common/expfmt, test-only).
//
// Rules: metrics are safe for concurrent use and lock-free on the hot path
// (atomics); a Vec's With takes a read lock to find its series. OnCollect
// hooks run at scrape time on the scraping goroutine: keep them short and
// never call into the store while holding a lock the CNI path needs. This
// package never touches the store, the datapath or the API server: the
// daemon feeds it.
package metrics
