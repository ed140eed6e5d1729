package commands

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

func TestSummarizePool(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := ipamListing{
		ENIs: []store.ENI{{ID: "eni-a", State: store.ENIReady}, {ID: "eni-b", State: store.ENIDraining}},
		IPs: []store.IP{
			{ENIID: "eni-a", State: store.IPFree}, {ENIID: "eni-a", State: store.IPBound},
			{ENIID: "eni-a", State: store.IPReserved}, {ENIID: "eni-b", State: store.IPBound},
		},
		Pool: store.PoolState{MinIdle: 2, MaxIdle: 5, Backoffs: map[string]store.Backoff{
			"vswitch/vsw-x": {Until: now.Add(time.Minute), Reason: "InvalidVSwitchId.IpNotEnough"},
			"eni-quota":     {Until: now.Add(-time.Minute), Reason: "over"},
		}},
		Lease:     &store.Lease{Name: store.LeaseAllocator, HolderPID: 42, Expires: now.Add(time.Second)},
		LeaseHeld: true,
	}
	p := summarizePool(l, now)
	checks := []struct {
		name string
		ok   bool
	}{
		{"totals", p.Free == 1 && p.Reserved == 1 && p.Bound == 2},
		{"per eni", len(p.ENIs) == 2 && p.ENIs[0].Free == 1 && p.ENIs[0].Bound == 1 && p.ENIs[1].Bound == 1 && p.ENIs[1].State == "draining"},
		{"only active back-offs", len(p.Backoffs) == 1 && p.Backoffs[0].Scope == "vswitch/vsw-x"},
		{"lease live", p.LeaseLive && p.Lease.HolderPID == 42},
		{"targets", p.MinIdle == 2 && p.MaxIdle == 5},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("summary %+v", p)
			}
		})
	}
}

func TestDaemonVerdict(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name    string
		running bool
		updated time.Time
		want    string
	}{
		{"not running", false, now.Add(-time.Second), "not running"},
		{"no pass yet", true, time.Time{}, "no pool pass recorded yet"},
		{"recent pass", true, now.Add(-20 * time.Second), "running, last pool pass 20s ago"},
		{"stale pass", true, now.Add(-time.Hour), "last pool pass was 1h0m0s ago (stuck"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := daemonVerdict(tc.running, tc.updated, now); !strings.Contains(got, tc.want) {
				t.Errorf("daemonVerdict = %q, want it to contain %q", got, tc.want)
			}
		})
	}
	if got := gatherDaemon("/nonexistent/veni.json", now, now); len(got.PIDs) != 0 || got.Verdict != "not running" {
		t.Errorf("gatherDaemon for a config no daemon serves = %+v", got)
	}
}

func TestIsDaemonCommand(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{[]string{"/usr/bin/veni", "daemon", "--config", "/etc/veni/veni.json"}, true},
		{[]string{"/usr/bin/veni-daemon"}, true},
		{[]string{"/tmp/veni-e2e-1/veni", "daemon"}, true},
		{[]string{"/usr/bin/veni", "status"}, false},
		{[]string{"/usr/sbin/sshd", "daemon"}, false},
		{[]string{"/usr/bin/veni"}, false},
	}
	for _, tc := range cases {
		if got := isDaemonCommand(tc.args); got != tc.want {
			t.Errorf("isDaemonCommand(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestNonZeroCounters(t *testing.T) {
	cases := []struct {
		name string
		hc   fastpath.HookCounters
		want string
	}{
		{"idle", fastpath.HookCounters{}, "packets 0, redirect_peer 0, redirect_neigh 0"},
		{"reasons only when seen", fastpath.HookCounters{Packets: 9, RedirectNeigh: 5, PassService: 3, FIBDrop: 1},
			"packets 9, redirect_peer 0, redirect_neigh 5, pass_service 3, fib_drop 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nonZeroCounters(tc.hc); got != tc.want {
				t.Errorf("nonZeroCounters = %q, want %q", got, tc.want)
			}
		})
	}
}

// A node with a store but no pins, on plain: status still answers, in text
// and JSON, and names what is wrong.
func TestGatherStatus_PlainNode(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Datapath = config.DatapathPlain
	env := &node.Env{ConfigPath: "/nonexistent/veni.json", Config: cfg, Store: store.File{Path: filepath.Join(t.TempDir(), "veni.db")}}
	info := store.NodeInfo{InstanceID: "i-statustest", InstanceType: "ecs.g7.xlarge", PrimaryIP: netip.MustParseAddr("172.30.1.9"), ENIs: 4, IPv4PerENI: 15}
	if err := env.Store.Update(func(tx *store.WriteTx) error { return tx.PutNode(info) }); err != nil {
		t.Fatal(err)
	}
	rep := gatherStatus(env, time.Now())
	if rep.Node == nil || rep.Node.InstanceID != info.InstanceID {
		t.Fatalf("node = %+v", rep.Node)
	}
	if rep.Datapath.Active != config.DatapathPlain || rep.Datapath.Reason != "configured plain" || rep.Datapath.Pinned {
		t.Errorf("datapath = %+v", rep.Datapath)
	}
	var text bytes.Buffer
	if err := printStatus(&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node      i-statustest", "datapath  plain (configured plain)", "daemon    not running", "PROBLEM   no veni daemon"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := writeJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if dp, _ := back["datapath"].(map[string]any); dp["active"] != "plain" || dp["configured"] != "plain" {
		t.Errorf("json datapath = %v", back["datapath"])
	}
}

// Ensure the IPv6-only Service note looks for an IPv6 prefix in a
// service_cidr list, as dual-stack clusters write it.
func TestHasIPv6Prefix(t *testing.T) {
	for _, tc := range []struct {
		list string
		want bool
	}{
		{"10.96.0.0/12", false},
		{"10.96.0.0/12,fd00:10:96::/108", true},
		{" fd00:10:96::/108 ", true},
		{"not-a-cidr,10.0.0.0/8", false},
		{"", false},
	} {
		if got := hasIPv6Prefix(tc.list); got != tc.want {
			t.Errorf("hasIPv6Prefix(%q) = %v, want %v", tc.list, got, tc.want)
		}
	}
}
