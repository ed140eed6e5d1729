package daemon

import (
	"context"
	"time"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/telemetry"
)

// The daemon's metrics (package telemetry). Everything the daemon does for
// them is here; daemon.go calls in with one line per hook: Run starts the
// exporter, fullPass and localPass report their end, reconcile its report,
// startKube registers the Kubernetes informers.
//
// d.tel is set once, at the top of Run, before Run starts any goroutine;
// it stays nil when metrics are off or could not be served, and every
// hook is a no-op on nil.

// startTelemetry builds the exporter, lets it observe the cloud client,
// and serves it where metrics_address says (by default a 0600 unix socket
// beside the store). It returns what stops it. Metrics that cannot be
// served are logged, never fatal: the pool matters more.
func (d *Daemon) startTelemetry(ctx context.Context) (stop func()) {
	network, addr := telemetry.Address(d.env.Config.MetricsAddress, d.env.Store.Path)
	if network == "" {
		d.log.Info("metrics off", "metrics_address", d.env.Config.MetricsAddress)
		return func() {}
	}
	l, err := telemetry.Listen(network, addr)
	if err != nil {
		d.log.Error("metrics not served", "err", err)
		return func() {}
	}
	d.tel = telemetry.New(telemetry.Options{Store: d.env.Store, Build: d.opts.Build, Logger: d.log})
	d.env.ObserveCloud(d.tel.ObserveCloud)
	d.log.Info("metrics", "network", network, "address", addr)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.tel.Serve(ctx, l); err != nil {
			d.log.Error("metrics", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
		d.env.ObserveCloud(nil)
	}
}

// passDone ends a pass for the metrics: it samples the fast path (only the
// daemon's goroutine touches its handles) and reports the pass, which also
// counts the events logged meanwhile (the CNI plugin's call records).
func (d *Daemon) passDone(kind string, start time.Time) {
	if d.tel == nil {
		return
	}
	d.sampleFastPath()
	d.tel.PassDone(kind, time.Since(start))
}

func (d *Daemon) sampleFastPath() {
	s := telemetry.FastPath{Active: d.fast.decision.Active, Configured: d.fast.decision.Configured}
	if dp := d.fast.dp; dp != nil {
		s.Counters, s.Err = dp.Counters()
		if s.Err == nil {
			var eps []fastpath.Endpoint
			eps, s.Err = dp.Endpoints()
			s.Endpoints = len(eps)
		}
		s.Running = s.Err == nil
	}
	d.tel.SetFastPath(s)
}
