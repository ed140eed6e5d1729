// Package telemetry is the node daemon's Prometheus metrics: what they are
// named and labelled, where their numbers come from, and where they are
// served.
//
// Sources. Everything the CNI plugin and the pool do is already in the
// store, so most metrics are read from it, never from an RPC:
//   - the pool (addresses per ENI and vSwitch by state, ENIs by state,
//     targets, back-offs) in one short read-only transaction per scrape,
//     reused for a second when scrapes come faster;
//   - the event log, followed by Seq: every CNI ADD and DEL leaves a
//     store.CNICall record there (latency, error code), and the pool logs
//     its back-offs, GC releases and leaked-ENI sweeps. New events are
//     read at scrape time and after every daemon pass, under one cursor:
//     each event is counted once. Events dropped by the log's cap before
//     they were read are counted as missed, and a store replaced under the
//     daemon (its sequence restarts) as a reset. Events logged before the
//     exporter started are not counted: they were, or will never be, in a
//     previous process's counters.
//
// The daemon feeds the rest: cloud API attempts (ObserveCloud, wired as
// eni.AlibabaOptions.Observe through node.Env), reconcile reports, its
// passes, fast-path counters sampled on its own goroutine (the datapath's
// handles are not shared with the scraper), and informer statistics
// (RegisterInformer).
//
// Served on a unix socket beside the store (SocketName, mode 0600) unless
// metrics_address says otherwise; a TCP port is opened only when
// configured.
//
// Rules: nothing here runs at package init (no package-level maps,
// regexps or registries; New builds everything), since the CNI plugin
// links this package too (TestInit_NoWork). Store access is read-only and
// one short transaction at a time; no lock of this package is held by, or
// needed on, the CNI path. This package must not write the store, call the
// cloud, or touch links, eBPF maps or the API server: it only reads what
// it is given.
package telemetry
