package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
	"github.com/veni-cni/veni/telemetry"
)

// scrapeURL GETs url (over the unix socket sock when set) and parses the
// answer with Prometheus' parser.
func scrapeURL(t *testing.T, sock, url string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	if sock != "" {
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v\n%s", resp.StatusCode, err, raw)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("expfmt rejects the daemon's metrics: %v\n%s", err, raw)
	}
	return fams
}

// metric returns the value of name's series whose labels include want
// ("k=v,..."): a counter's or gauge's value, a histogram's count. ok is
// false when there is no such series.
func metric(fams map[string]*dto.MetricFamily, name, want string) (v float64, ok bool) {
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range strings.Split(want, ",") {
			if k, val, _ := strings.Cut(kv, "="); kv != "" && have[k] != val {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// poolMismatch compares a scrape's per-ENI address counts and idle count
// with the store, and says what differs ("" when they agree).
func poolMismatch(t *testing.T, db store.File, fams map[string]*dto.MetricFamily) string {
	t.Helper()
	want := map[string]float64{}
	err := db.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, e := range enis {
			ready[e.ID] = e.State == store.ENIReady && !e.Gone()
			for _, st := range []store.IPState{store.IPFree, store.IPReserved, store.IPBound} {
				want["eni="+e.ID+",vswitch="+e.VSwitchID+",state="+string(st)] += 0
			}
		}
		ips, err := tx.IPs()
		for _, ip := range ips {
			e, _ := tx.ENI(ip.ENIID)
			want["eni="+ip.ENIID+",vswitch="+e.VSwitchID+",state="+string(ip.State)]++
			if ip.State == store.IPFree && ready[ip.ENIID] {
				want["idle"]++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	if got, _ := metric(fams, "veni_pool_idle_ips", ""); got != want["idle"] {
		diffs = append(diffs, fmt.Sprintf("idle %v, store %v", got, want["idle"]))
	}
	delete(want, "idle")
	if n := len(fams["veni_pool_ips"].GetMetric()); n != len(want) {
		diffs = append(diffs, fmt.Sprintf("%d veni_pool_ips series, store %d", n, len(want)))
	}
	for ls, n := range want {
		if got, ok := metric(fams, "veni_pool_ips", ls); !ok || got != n {
			diffs = append(diffs, fmt.Sprintf("%s: %v (present %v), store %v", ls, got, ok, n))
		}
	}
	return strings.Join(diffs, "; ")
}

// cniNote is the event a CNI call leaves, as commands/cni.go writes it.
func cniNote(verb, reason string, code uint, took time.Duration) *store.Event {
	return &store.Event{Level: slog.LevelInfo, Reason: reason, Object: "pod/default/web",
		CNI: &store.CNICall{Verb: verb, Code: code, Took: took}}
}

// Ensure the live daemon serves its metrics on a 0600 socket beside the
// store, opens no TCP port, and that after a few pool operations a scrape
// shows the numbers the store holds, the cloud calls the pool made and
// the CNI calls' records.
func TestDaemon_Metrics_ScrapeSocket(t *testing.T) {
	n := startLoopNode(t, `, "min_pool_size": 2, "max_pool_size": 5, "gc_grace": "1h"`)
	sock := filepath.Join(filepath.Dir(n.env.Store.Path), telemetry.SocketName)
	eventually(t, "the pool to fill and the socket to appear", func() bool {
		f, _ := n.pool(t)
		_, err := os.Stat(sock)
		return f >= 2 && err == nil
	})
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %s, want a 0600 socket", sock, fi.Mode())
	}

	// The only TCP listeners of this process are the simulated cloud's.
	var simPorts []string
	for _, u := range []string{"http://" + n.env.Config.Endpoint, n.env.Config.MetadataURL} {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p.Port())
		simPorts = append(simPorts, strconv.Itoa(port))
	}
	var ports []string
	for _, l := range testutil.TCPListeners(t) {
		ports = append(ports, l[strings.LastIndex(l, ":")+1:])
	}
	slices.Sort(simPorts)
	if !slices.Equal(ports, simPorts) {
		t.Errorf("TCP listeners on ports %q, want only the sim's %q", ports, simPorts)
	}

	// Two ADDs (the records ride in their commits), one failed ADD, one DEL.
	netns := fmt.Sprintf("/proc/%d/ns/net", os.Getpid()) // alive as long as the test
	db := n.env.Store
	var held []ipam.Reservation
	for _, cid := range []string{"a", "b"} {
		r, err := ipam.Reserve(db, ipam.Owner{ContainerID: cid, IfName: "eth0", NetNS: netns})
		if err != nil {
			t.Fatal(err)
		}
		if err := ipam.Commit(db, r.Key, ipam.HostSide{}, cniNote(store.CNIAdd, "AllocIPSucceed", 0, 4*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	err = db.Update(func(tx *store.WriteTx) error {
		_, err := tx.AppendEvent(*cniNote(store.CNIAdd, "AllocIPFailed", 11, 20*time.Second))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var a store.Allocation
	if err := db.View(func(tx *store.ReadTx) (err error) { a, err = tx.Allocation(held[0].Key); return err }); err != nil {
		t.Fatal(err)
	}
	if ok, err := ipam.ReleaseAllocation(db, a, cniNote(store.CNIDel, "ReleaseIPSucceed", 0, 2*time.Millisecond), time.Now()); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}

	// The daemon tops the pool up again; once it settles, a scrape agrees
	// with the store.
	var fams map[string]*dto.MetricFamily
	mismatch := ""
	eventually(t, "a scrape that agrees with the store", func() bool {
		defer func() {
			if mismatch != "" {
				t.Logf("scrape and store differ: %s", mismatch)
			}
		}()
		fams = scrapeURL(t, sock, "http://veni/metrics")
		mismatch = poolMismatch(t, db, fams)
		adds, _ := metric(fams, "veni_cni_call_duration_seconds", "verb=ADD")
		dels, _ := metric(fams, "veni_cni_call_duration_seconds", "verb=DEL")
		local, _ := metric(fams, "veni_daemon_passes_total", "kind=local") // woken by the writes
		return mismatch == "" && adds == 3 && dels == 1 && local >= 1
	})
	for _, c := range []struct {
		name, labels string
		min, max     float64
	}{
		{"veni_cni_failures_total", "verb=ADD,code=11", 1, 1},
		{"veni_events_total", "reason=AllocIPSucceed", 2, 2},
		{"veni_cloud_api_calls_total", "action=CreateNetworkInterface,result=OK", 1, 1e9},
		{"veni_cloud_api_calls_total", "action=DescribeNetworkInterfaces,result=OK", 1, 1e9},
		{"veni_cloud_api_call_duration_seconds", "action=CreateNetworkInterface", 1, 1e9},
		{"veni_daemon_passes_total", "kind=full", 1, 1e9},
		{"veni_reconciles_total", "result=ok", 1, 1e9},
		{"veni_pool_ip_changes_total", "change=added", 2, 1e9},
		{"veni_pool_enis", "state=ready", 1, 1e9},
		{"veni_pool_min_idle_ips", "", 2, 2},
		{"veni_pool_max_idle_ips", "", 5, 5},
		{"veni_datapath_info", "active=plain,configured=plain", 1, 1},
		{"veni_build_info", "version=dev", 1, 1},
		{"veni_event_log_missed_total", "", 0, 0},
	} {
		if got, ok := metric(fams, c.name, c.labels); !ok || got < c.min || got > c.max {
			t.Errorf("%s{%s} = %v (present %v), want %v to %v", c.name, c.labels, got, ok, c.min, c.max)
		}
	}
	// Every attempt the cloud saw is counted once, with its latency.
	var calls, timed float64
	for _, m := range fams["veni_cloud_api_calls_total"].GetMetric() {
		calls += m.GetCounter().GetValue()
	}
	for _, m := range fams["veni_cloud_api_call_duration_seconds"].GetMetric() {
		timed += float64(m.GetHistogram().GetSampleCount())
	}
	if calls == 0 || calls != timed {
		t.Errorf("%v cloud calls counted, %v timed", calls, timed)
	}

	n.stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the daemon left its metrics socket behind: %v", err)
	}
}

// Ensure metrics_address moves the metrics to TCP (and then no socket is
// made), and "off" serves none at all.
func TestDaemon_Metrics_Address(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := startLoopNode(t, fmt.Sprintf(`, "min_pool_size": 1, "max_pool_size": 5, "metrics_address": %q`, addr))
	var fams map[string]*dto.MetricFamily
	eventually(t, "metrics over TCP to show the pool", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		fams = scrapeURL(t, "", "http://"+addr+"/metrics")
		v, _ := metric(fams, "veni_pool_idle_ips", "")
		return v >= 1
	})
	sock := filepath.Join(filepath.Dir(n.env.Store.Path), telemetry.SocketName)
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a socket was made although metrics_address names TCP: %v", err)
	}
	n.stop()

	off := startLoopNode(t, `, "min_pool_size": 1, "max_pool_size": 5, "metrics_address": "off"`)
	eventually(t, "the pool to fill", func() bool { f, _ := off.pool(t); return f >= 1 })
	if _, err := os.Lstat(filepath.Join(filepath.Dir(off.env.Store.Path), telemetry.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("metrics off, yet a socket: %v", err)
	}
}
