package telemetry

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// Ensure a stream of cloud observations (as eni.AlibabaOptions.Observe
// delivers them, from many goroutines) becomes calls by action and result,
// a latency histogram by action and a throttled counter.
func TestExporter_ObserveCloud_Stream(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	type obs struct {
		action, code string
		took         time.Duration
		times        int
	}
	stream := []obs{
		{"CreateNetworkInterface", "OK", 300 * time.Millisecond, 3},
		{"AssignPrivateIpAddresses", "OK", 100 * time.Millisecond, 10},
		{"AssignPrivateIpAddresses", "Throttling.User", 20 * time.Millisecond, 4},
		{"AssignPrivateIpAddresses", "ServiceUnavailable", 20 * time.Millisecond, 1},
		{"AssignPrivateIpAddresses", "InvalidVSwitchId.IpNotEnough", 50 * time.Millisecond, 2},
		{"DescribeNetworkInterfaces", "Timeout", 10 * time.Second, 1},
	}
	var wg sync.WaitGroup
	for _, o := range stream {
		for range o.times {
			wg.Go(func() { e.ObserveCloud(o.action, o.code, o.took) })
		}
	}
	wg.Wait()
	fams := scrape(t, e)
	for _, o := range stream {
		if got := value(t, fams, "veni_cloud_api_calls_total", "action="+o.action+",result="+o.code); got != float64(o.times) {
			t.Errorf("calls %s %s = %v, want %d", o.action, o.code, got, o.times)
		}
	}
	for _, c := range []struct {
		action string
		n      uint64
		sum    float64
	}{
		{"CreateNetworkInterface", 3, 0.9},
		{"AssignPrivateIpAddresses", 17, 1 + 0.1 + 0.1},
		{"DescribeNetworkInterfaces", 1, 10},
	} {
		n, sum := histogram(t, fams, "veni_cloud_api_call_duration_seconds", "action="+c.action)
		if n != c.n || sum < c.sum-1e-9 || sum > c.sum+1e-9 {
			t.Errorf("latency %s: %d attempts, %v s; want %d, %v s", c.action, n, sum, c.n, c.sum)
		}
	}
	if got := value(t, fams, "veni_cloud_api_throttled_total", "action=AssignPrivateIpAddresses"); got != 5 {
		t.Errorf("throttled = %v, want 5 (Throttling.User and ServiceUnavailable)", got)
	}
	if _, ok := find(fams, "veni_cloud_api_throttled_total", "action=CreateNetworkInterface"); ok {
		t.Error("an action never throttled has a throttled series")
	}
}

// Ensure an API answering with ever new error codes cannot grow the
// series without bound.
func TestExporter_ObserveCloud_BoundedCodes(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	for i := range maxLabelValues + 5 {
		e.ObserveCloud("DescribeNetworkInterfaces", fmt.Sprintf("Weird.%d", i), time.Millisecond)
	}
	fams := scrape(t, e)
	if got := value(t, fams, "veni_cloud_api_calls_total", "action=DescribeNetworkInterfaces,result=other"); got != 5 {
		t.Errorf("other = %v, want 5", got)
	}
}

// Ensure reconcile reports become results, durations, the blocked gauge
// and the address and ENI changes.
func TestExporter_Reconciled(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	ip := netip.MustParseAddr("10.0.0.1")
	e.Reconciled(ipam.Report{AddedIPs: 4, AdoptedENIs: []string{"eni-1"}, Took: 2 * time.Second}, nil)
	e.Reconciled(ipam.Report{ReleasedIPs: []netip.Addr{ip, ip}, DeletedENIs: []string{"eni-2"}, Took: time.Second,
		Blocked: errors.New("back-off"), Errors: []error{errors.New("step")}}, nil)
	e.Reconciled(ipam.Report{LeaseHeld: true}, nil)
	e.Reconciled(ipam.Report{}, fmt.Errorf("reconcile: %w", store.ErrLocked))
	fams := scrape(t, e)
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"veni_reconciles_total", "result=ok", 1},
		{"veni_reconciles_total", "result=partial", 1},
		{"veni_reconciles_total", "result=lease_held", 1},
		{"veni_reconciles_total", "result=failed", 1},
		{"veni_pool_blocked", "", 1},
		{"veni_pool_ip_changes_total", "change=added", 4},
		{"veni_pool_ip_changes_total", "change=released", 2},
		{"veni_pool_eni_changes_total", "change=adopted", 1},
		{"veni_pool_eni_changes_total", "change=deleted", 1},
		{"veni_store_errors_total", "reason=locked", 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n, sum := histogram(t, fams, "veni_reconcile_duration_seconds", ""); n != 2 || sum != 3 {
		t.Errorf("reconcile durations: %d, %v s; want 2 runs, 3 s (not the skipped or failed ones)", n, sum)
	}
}

// Ensure passes are counted by kind with their duration.
func TestExporter_PassDone(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	e.PassDone(PassFull, 2*time.Second)
	e.PassDone(PassLocal, 10*time.Millisecond)
	e.PassDone(PassLocal, 30*time.Millisecond)
	fams := scrape(t, e)
	if n, sum := histogram(t, fams, "veni_daemon_pass_duration_seconds", "kind=local"); n != 2 || sum < 0.0399 || sum > 0.0401 {
		t.Errorf("local passes: %d, %v s", n, sum)
	}
	if got := value(t, fams, "veni_daemon_passes_total", "kind=full"); got != 1 {
		t.Errorf("full passes = %v", got)
	}
}

// Ensure the hooks do nothing on a nil exporter (metrics off).
func TestExporter_Hooks_NilSafe(t *testing.T) {
	var e *Exporter
	e.ObserveCloud("A", "OK", time.Second)
	e.Reconciled(ipam.Report{}, nil)
	e.PassDone(PassFull, time.Second)
	e.FollowEvents()
	e.SetFastPath(FastPath{})
	e.StoreError(store.ErrLocked)
	e.RegisterInformer("pods", func() kube.InformerStats { return kube.InformerStats{} })
}

// Ensure fast-path samples become per-hook counters, every counter of
// fastpath.HookCounters is exported, and counts that went down (maps
// recreated) restart the series instead of panicking.
func TestExporter_SetFastPath(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	var c fastpath.Counters
	c.FromPod.Packets, c.FromPod.RedirectNeigh, c.FromPod.PassService = 100, 90, 10
	c.FromENI.Packets, c.FromENI.RedirectPeer = 50, 49
	c.IPv6.FromENI.Packets, c.IPv6.FromENI.RedirectPeer = 20, 19
	e.SetFastPath(FastPath{Active: "ebpf", Configured: "auto", Running: true, Counters: c, Endpoints: 7})
	fams := scrape(t, e)
	for _, x := range []struct {
		name, labels string
		want         float64
	}{
		{"veni_datapath_info", "active=ebpf,configured=auto", 1},
		{"veni_fastpath_packets_total", "hook=from_pod", 100},
		{"veni_fastpath_packets_total", "hook=from_eni", 50},
		{"veni_fastpath_decisions_total", "hook=from_pod,decision=redirect_neigh", 90},
		{"veni_fastpath_decisions_total", "hook=from_pod,decision=pass_service", 10},
		{"veni_fastpath_decisions_total", "hook=from_eni,decision=redirect_peer", 49},
		{"veni_fastpath_decisions_total", "hook=to_pod,decision=drop_spoofed", 0},
		{"veni_fastpath_packets_total", "hook=from_eni6", 20},
		{"veni_fastpath_decisions_total", "hook=from_eni6,decision=redirect_peer", 19},
		{"veni_fastpath_endpoints", "", 7},
		{"veni_fastpath_sample_timestamp_seconds", "", float64(t0().Unix())},
	} {
		if got := value(t, fams, x.name, x.labels); got != x.want {
			t.Errorf("%s{%s} = %v, want %v", x.name, x.labels, got, x.want)
		}
	}
	var fields int
	forEachCounter(&c.ToPod, func(string, uint64) { fields++ })
	if n := len(fams["veni_fastpath_decisions_total"].GetMetric()); n != 6*(fields-1) {
		t.Errorf("%d decision series, want %d (6 hooks, 3 per family, × %d counters besides packets)", n, 6*(fields-1), fields-1)
	}

	c.FromPod.Packets = 5 // the maps were recreated
	e.SetFastPath(FastPath{Active: "ebpf", Configured: "auto", Running: true, Counters: c, Endpoints: 1})
	e.SetFastPath(FastPath{Active: "plain", Configured: "auto", Err: errors.New("read counter")})
	fams = scrape(t, e)
	if got := value(t, fams, "veni_fastpath_packets_total", "hook=from_pod"); got != 5 {
		t.Errorf("after a reset: packets = %v, want 5", got)
	}
	if _, ok := find(fams, "veni_datapath_info", "active=ebpf,configured=auto"); ok {
		t.Error("the old datapath decision is still reported")
	}
	if got := value(t, fams, "veni_fastpath_sample_errors_total", ""); got != 1 {
		t.Errorf("sample errors = %v, want 1", got)
	}
}

// Ensure a registered informer's statistics are exported at every scrape,
// and registering the name again replaces the source.
func TestExporter_RegisterInformer_FakeStats(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	var (
		mu sync.Mutex
		st = kube.InformerStats{Synced: true, Objects: 12, Lists: 2, Relists410: 1, WatchesOpened: 3, WatchErrors: 1,
			Events: 40, Bookmarks: 5, LastEvent: t0(), AddLag: 1500 * time.Millisecond}
	)
	stats := func() kube.InformerStats {
		mu.Lock()
		defer mu.Unlock()
		return st
	}
	e.RegisterInformer("pods", stats)
	e.RegisterInformer("networkpolicies", func() kube.InformerStats { return kube.InformerStats{} })
	check := func(want map[string]float64) {
		t.Helper()
		fams := scrape(t, e)
		for name, v := range want {
			if got := value(t, fams, name, "resource=pods"); got != v {
				t.Errorf("%s{resource=pods} = %v, want %v", name, got, v)
			}
		}
		if got := value(t, fams, "veni_informer_synced", "resource=networkpolicies"); got != 0 {
			t.Errorf("networkpolicies synced = %v", got)
		}
	}
	check(map[string]float64{
		"veni_informer_synced": 1, "veni_informer_objects": 12, "veni_informer_lists_total": 2,
		"veni_informer_relists_total": 1, "veni_informer_watches_total": 3, "veni_informer_watch_errors_total": 1,
		"veni_informer_events_total": 40, "veni_informer_bookmarks_total": 5, "veni_informer_add_lag_seconds": 1.5,
		"veni_informer_last_event_timestamp_seconds": float64(t0().Unix()),
	})
	mu.Lock()
	st.Events, st.Relists410, st.Objects = 45, 2, 11
	mu.Unlock()
	check(map[string]float64{"veni_informer_events_total": 45, "veni_informer_relists_total": 2, "veni_informer_objects": 11})

	e.RegisterInformer("pods", func() kube.InformerStats { return kube.InformerStats{Synced: true, Lists: 1} })
	check(map[string]float64{"veni_informer_lists_total": 1, "veni_informer_events_total": 0})
}

// Ensure build information is exported.
func TestExporter_BuildInfo(t *testing.T) {
	e, _ := newTestExporter(t, mustStore(t, 0))
	fams := scrape(t, e)
	m := fams["veni_build_info"].GetMetric()
	if len(m) != 1 || labelsOf(m[0])["version"] != "v-test" || labelsOf(m[0])["commit"] != "abc123" || labelsOf(m[0])["go_version"] == "" || m[0].GetGauge().GetValue() != 1 {
		t.Errorf("build info: %s", seriesOf(fams, "veni_build_info"))
	}
	if got := value(t, fams, "veni_daemon_start_time_seconds", ""); got != float64(t0().Unix()) {
		t.Errorf("start time = %v", got)
	}
}
