package eni_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

const (
	simKeyID  = "LTAIveniTest"
	simSecret = "veni-test-secret"
)

// simEnv is one simulated region served over HTTP on loopback.
type simEnv struct {
	cloud    *sim.Cloud
	endpoint string // host:port of the OpenAPI
	metaURL  string
	inst     sim.Instance
}

func mustSim(tb testing.TB, mutate func(*sim.Config)) *simEnv {
	tb.Helper()
	cfg := sim.DefaultConfig()
	cfg.AttachDelay = 20 * time.Millisecond
	cfg.DetachDelay = 20 * time.Millisecond
	cfg.Credentials = map[string]string{simKeyID: simSecret}
	env := &simEnv{}
	cfg.IdentifyCaller = func(*http.Request) (string, bool) { return env.inst.ID, env.inst.ID != "" }
	if mutate != nil {
		mutate(&cfg)
	}
	cloud, err := sim.New(cfg)
	if err != nil {
		tb.Fatalf("sim.New: %v", err)
	}
	tb.Cleanup(func() { _ = cloud.Close() })
	env.cloud = cloud
	api := httptest.NewServer(cloud.APIHandler())
	tb.Cleanup(api.Close)
	md := httptest.NewServer(cloud.MetadataHandler())
	tb.Cleanup(md.Close)
	env.endpoint = strings.TrimPrefix(api.URL, "http://")
	env.metaURL = md.URL
	env.inst, err = cloud.AddInstance(sim.InstanceSpec{ID: "i-node1", Type: "ecs.g7.large"})
	if err != nil {
		tb.Fatalf("add instance: %v", err)
	}
	return env
}

// fastOptions talks to the sim with delays small enough for tests.
func (env *simEnv) fastOptions() eni.AlibabaOptions {
	// No node budget in the way: these tests count calls, not pace them.
	fast := make(map[string]eni.RateLimit)
	for action := range eni.DefaultRateLimits() {
		fast[action] = eni.RateLimit{PerSecond: 1000, Burst: 100}
	}
	return eni.AlibabaOptions{
		RegionID:    "cn-hangzhou",
		Endpoint:    env.endpoint,
		Scheme:      "http",
		Credentials: eni.Credentials{AccessKeyID: simKeyID, AccessKeySecret: simSecret},
		Retry:       eni.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		RateLimits:  fast,
		CallTimeout: 5 * time.Second,
	}
}

func mustClient(tb testing.TB, opts eni.AlibabaOptions) *eni.AlibabaClient {
	tb.Helper()
	c, err := eni.NewAlibabaClient(opts)
	if err != nil {
		tb.Fatalf("NewAlibabaClient: %v", err)
	}
	return c
}

func mustCreateENI(tb testing.TB, c eni.Client, opts eni.CreateENIOptions) eni.ENI {
	tb.Helper()
	if opts.VSwitchID == "" {
		opts.VSwitchID = "vsw-sim-a"
	}
	if opts.SecurityGroupIDs == nil {
		opts.SecurityGroupIDs = []string{sim.DefaultSecurityGroupID}
	}
	e, err := c.CreateENI(context.Background(), opts)
	if err != nil {
		tb.Fatalf("create eni: %v", err)
	}
	return e
}

// waitStatus polls ENIs until the ENI has the status, as the daemon does
// after an asynchronous attach or detach.
func waitStatus(tb testing.TB, c eni.Client, id, status string) eni.ENI {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := c.ENIs(context.Background(), eni.ENIFilter{IDs: []string{id}})
		if err != nil {
			tb.Fatalf("list %s: %v", id, err)
		}
		if len(got) == 1 && got[0].Status == status {
			return got[0]
		}
		if time.Now().After(deadline) {
			tb.Fatalf("eni %s never became %s (now %+v)", id, status, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAlibabaClient_Sim_Lifecycle(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()

	limits, err := c.InstanceLimits(ctx, "ecs.g7.large")
	if err != nil {
		t.Fatal(err)
	}
	want := eni.InstanceLimits{InstanceType: "ecs.g7.large", ENIs: 3, IPv4PerENI: 6, IPv6PerENI: 6, TrunkSupported: true, MemberENIs: 6}
	if limits != want {
		t.Fatalf("limits = %+v, want %+v", limits, want)
	}

	vsws, err := c.VSwitches(ctx, "vsw-sim-a", "vsw-sim-b")
	if err != nil {
		t.Fatal(err)
	}
	if len(vsws) != 2 || vsws[0].CIDR != netip.MustParsePrefix("172.30.1.0/24") || vsws[0].ZoneID != "cn-hangzhou-h" ||
		vsws[0].AvailableIPs != 252-1 || vsws[1].AvailableIPs != 252 {
		t.Fatalf("vswitches = %+v", vsws)
	}

	tags := map[string]string{"creator": "veni", "node": "i-node1"}
	created := mustCreateENI(t, c, eni.CreateENIOptions{Tags: tags, SecondaryIPs: 2, Description: "test", ClientToken: "tok-life"})
	if !strings.HasPrefix(created.ID, "eni-") || created.Status != eni.StatusAvailable || created.Type != eni.TypeSecondary ||
		len(created.MAC) != 6 || len(created.PrivateIPs) != 3 || created.PrivateIPs[0] != created.PrimaryIP ||
		created.Tags["creator"] != "veni" || created.VSwitchID != "vsw-sim-a" {
		t.Fatalf("created = %+v", created)
	}

	if err := c.AttachENI(ctx, created.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	inUse := waitStatus(t, c, created.ID, eni.StatusInUse)
	if inUse.InstanceID != env.inst.ID || inUse.MAC.String() != created.MAC.String() {
		t.Fatalf("attached = %+v", inUse)
	}

	ips, err := c.AssignPrivateIPs(ctx, created.ID, 2)
	if err != nil || len(ips) != 2 {
		t.Fatalf("assign = %v, %v", ips, err)
	}
	got := waitStatus(t, c, created.ID, eni.StatusInUse)
	if len(got.PrivateIPs) != 5 || !slices.Contains(got.PrivateIPs, ips[0]) || !slices.Contains(got.PrivateIPs, ips[1]) {
		t.Fatalf("after assign, ips = %v", got.PrivateIPs)
	}
	if err := c.UnassignPrivateIPs(ctx, created.ID, ips); err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(t, c, created.ID, eni.StatusInUse); len(got.PrivateIPs) != 3 || slices.Contains(got.PrivateIPs, ips[0]) {
		t.Fatalf("after unassign, ips = %v", got.PrivateIPs)
	}

	mine, err := c.ENIs(ctx, eni.ENIFilter{InstanceID: env.inst.ID})
	if err != nil || len(mine) != 2 { // primary and the new one
		t.Fatalf("instance enis = %+v, %v", mine, err)
	}

	if err := c.DetachENI(ctx, created.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, created.ID, eni.StatusAvailable)
	if err := c.DeleteENI(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if left, err := c.ENIs(ctx, eni.ENIFilter{IDs: []string{created.ID}}); err != nil || len(left) != 0 {
		t.Fatalf("after delete: %+v, %v", left, err)
	}

	// Instance types never change: the second ask is answered from cache.
	if _, err := c.InstanceLimits(ctx, "ecs.g7.large"); err != nil {
		t.Fatal(err)
	}
	if n := env.cloud.Snapshot().Calls[eni.ActionDescribeInstanceTypes].Calls; n != 1 {
		t.Fatalf("DescribeInstanceTypes called %d times, want 1 (cached)", n)
	}
}

func TestAlibabaClient_Sim_AssignSplitsBatches(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	e := mustCreateENI(t, c, eni.CreateENIOptions{})
	// An unattached ENI may hold up to the cloud-wide 50 addresses.
	ips, err := c.AssignPrivateIPs(context.Background(), e.ID, 23)
	if err != nil || len(ips) != 23 {
		t.Fatalf("assign 23 = %d ips, %v", len(ips), err)
	}
	if n := env.cloud.Snapshot().Calls[eni.ActionAssignPrivateIPAddresses].Calls; n != 3 {
		t.Fatalf("AssignPrivateIpAddresses called %d times, want 3 (10+10+3)", n)
	}
	if err := c.UnassignPrivateIPs(context.Background(), e.ID, ips); err != nil {
		t.Fatal(err)
	}
	if n := env.cloud.Snapshot().Calls[eni.ActionUnassignPrivateIPAddresses].Calls; n != 3 {
		t.Fatalf("UnassignPrivateIpAddresses called %d times, want 3", n)
	}
}

func TestAlibabaClient_Sim_ENIs_Paging(t *testing.T) {
	env := mustSim(t, nil)
	opts := env.fastOptions()
	opts.PageSize = 3
	c := mustClient(t, opts)
	var want []string
	for i := range 8 {
		team := "a"
		if i%2 == 1 {
			team = "b"
		}
		e := mustCreateENI(t, c, eni.CreateENIOptions{Tags: map[string]string{"owner": "veni", "team": team}})
		want = append(want, e.ID)
	}
	cases := []struct {
		name   string
		filter eni.ENIFilter
		want   int
	}{
		{"all tagged", eni.ENIFilter{Tags: map[string]string{"owner": "veni"}}, 8},
		{"tag team a", eni.ENIFilter{Tags: map[string]string{"owner": "veni", "team": "a"}}, 4},
		{"no match", eni.ENIFilter{Tags: map[string]string{"owner": "other"}}, 0},
		{"available in vswitch", eni.ENIFilter{VSwitchID: "vsw-sim-a", Status: eni.StatusAvailable}, 8},
		{"by ids", eni.ENIFilter{IDs: want[2:7]}, 5},
		{"everything", eni.ENIFilter{}, 9}, // the instance's primary too
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := env.cloud.Snapshot().Calls[eni.ActionDescribeNetworkInterfaces].Calls
			got, err := c.ENIs(context.Background(), tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d enis, want %d", len(got), tc.want)
			}
			seen := map[string]bool{}
			for _, e := range got {
				if seen[e.ID] {
					t.Fatalf("eni %s listed twice", e.ID)
				}
				seen[e.ID] = true
			}
			calls := env.cloud.Snapshot().Calls[eni.ActionDescribeNetworkInterfaces].Calls - before
			if tc.want > 3 && calls < 2 {
				t.Fatalf("%d enis in %d call(s) with page size 3: paging not followed", tc.want, calls)
			}
		})
	}
}

func TestAlibabaClient_Sim_CreateENI_ClientToken(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	first := mustCreateENI(t, c, eni.CreateENIOptions{ClientToken: "same"})
	again := mustCreateENI(t, c, eni.CreateENIOptions{ClientToken: "same"})
	other := mustCreateENI(t, c, eni.CreateENIOptions{ClientToken: "other"})
	if again.ID != first.ID {
		t.Fatalf("same token created %s and %s", first.ID, again.ID)
	}
	if other.ID == first.ID {
		t.Fatal("different tokens returned the same eni")
	}
	if n := len(env.cloud.Snapshot().ENIs); n != 3 { // primary + 2
		t.Fatalf("sim holds %d enis, want 3", n)
	}
}

func TestAlibabaClient_Sim_TypedErrors(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) {
		cfg.VSwitches = append(cfg.VSwitches, sim.VSwitchSpec{
			ID: "vsw-sim-tiny", ZoneID: "cn-hangzhou-h", CIDR: netip.MustParsePrefix("172.30.9.0/29"),
		}, sim.VSwitchSpec{
			ID: "vsw-sim-far", ZoneID: "cn-hangzhou-k", CIDR: netip.MustParsePrefix("172.30.10.0/24"),
		})
	})
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	tiny, err := env.cloud.AddInstance(sim.InstanceSpec{ID: "i-tiny", Type: "ecs.sim.tiny", VSwitchID: "vsw-sim-b"})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		run  func() error
		want error
		code string
	}{
		{"vswitch exhausted", func() error {
			// A /29 has 4 usable addresses; 5 ENIs cannot fit.
			for range 5 {
				if _, err := c.CreateENI(ctx, eni.CreateENIOptions{VSwitchID: "vsw-sim-tiny", SecurityGroupIDs: []string{sim.DefaultSecurityGroupID}}); err != nil {
					return err
				}
			}
			return nil
		}, eni.ErrVSwitchExhausted, sim.CodeVSwitchIPNotEnough},
		{"eni quota", func() error {
			// ecs.sim.tiny allows 2 ENIs: its primary and one more.
			for range 2 {
				e := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-b"})
				if err := c.AttachENI(ctx, e.ID, tiny.ID); err != nil {
					return err
				}
			}
			return nil
		}, eni.ErrQuotaExceeded, sim.CodeENIPerInstanceExceeded},
		{"ip quota", func() error {
			e := mustCreateENI(t, c, eni.CreateENIOptions{})
			if err := c.AttachENI(ctx, e.ID, env.inst.ID); err != nil {
				return err
			}
			waitStatus(t, c, e.ID, eni.StatusInUse)
			_, err := c.AssignPrivateIPs(ctx, e.ID, 6) // ecs.g7.large: 6 per ENI, primary included
			return err
		}, eni.ErrQuotaExceeded, sim.CodePrivateIPQuotaExceeded},
		{"not found", func() error { return c.DeleteENI(ctx, "eni-doesnotexist") }, eni.ErrNotFound, sim.CodeENINotFound},
		{"vswitch not found", func() error { _, err := c.VSwitches(ctx, "vsw-nope"); return err }, eni.ErrNotFound, ""},
		{"invalid parameter", func() error {
			_, err := c.CreateENI(ctx, eni.CreateENIOptions{VSwitchID: "vsw-sim-a", SecurityGroupIDs: []string{sim.DefaultSecurityGroupID}, SecondaryIPs: 80})
			return err
		}, eni.ErrInvalidParameter, sim.CodeInvalidParameter},
		{"invalid state", func() error {
			return c.DeleteENI(ctx, env.inst.PrimaryENIID)
		}, eni.ErrInvalidState, ""},
		{"zone mismatch", func() error {
			e := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-far"})
			return c.AttachENI(ctx, e.ID, env.inst.ID)
		}, eni.ErrZoneMismatch, sim.CodeZoneMismatch},
		{"tag unknown eni", func() error {
			return c.TagENI(ctx, "eni-doesnotexist", map[string]string{"k": "v"})
		}, eni.ErrNotFound, sim.CodeResourceNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ae *eni.APIError
			if tc.code != "" && (!errors.As(err, &ae) || ae.Code != tc.code || ae.RequestID == "") {
				t.Fatalf("err = %#v, want an APIError with code %s and a request id", err, tc.code)
			}
		})
	}
	// Permanent errors are not retried: each failing case made one call.
	st := env.cloud.Snapshot().Calls[eni.ActionDeleteNetworkInterface]
	if st.Calls != 2 || st.Errors != 2 {
		t.Fatalf("DeleteNetworkInterface stats = %+v, want 2 calls, 2 errors (no retries)", st)
	}
}

// Ensure TagENI adds and replaces an ENI's tags through TagResources, and
// a Describe by tag finds it then.
func TestAlibabaClient_Sim_TagENI(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	e := mustCreateENI(t, c, eni.CreateENIOptions{Tags: map[string]string{"creator": "veni", "veni.io/pod": "ns/db-0"}})
	if err := c.TagENI(ctx, e.ID, map[string]string{"veni.io/fixed": "true", "veni.io/pod": "ns/db-1"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{"creator": "veni", "veni.io/fixed": "true", "veni.io/pod": "ns/db-1"}})
	if err != nil || len(got) != 1 || got[0].ID != e.ID || len(got[0].Tags) != 3 {
		t.Fatalf("by tag: %+v, %v", got, err)
	}
	if got, err := c.ENIs(ctx, eni.ENIFilter{Tags: map[string]string{"veni.io/pod": "ns/db-0"}}); err != nil || len(got) != 0 {
		t.Fatalf("old value still found: %+v, %v", got, err)
	}
}

// clearAfter lets n requests through and then removes the sim's fault on
// action, so a retried call deterministically meets n faults then success.
type clearAfter struct {
	cloud  *sim.Cloud
	action string
	n      int32
	seen   atomic.Int32
}

func (t *clearAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if t.seen.Add(1) == t.n {
		t.cloud.SetFault(t.action, sim.Fault{})
	}
	return resp, err
}

// attempts counts Observe calls per action and code.
type attempts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (a *attempts) observe(action, code string, _ time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = make(map[string]uint64)
	}
	a.n[action+"/"+code]++
}

func (a *attempts) count(action, code string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[action+"/"+code]
}

func TestAlibabaClient_Sim_Retry(t *testing.T) {
	cases := []struct {
		name      string
		fault     sim.Fault
		clearAt   int32 // requests before the fault is removed; 0 never
		wantErr   error
		wantCalls int
		code      string
	}{
		{"throttled then ok", sim.Fault{ThrottleRate: 1}, 2, nil, 3, sim.CodeThrottling},
		{"throttled out", sim.Fault{ThrottleRate: 1}, 0, eni.ErrThrottled, 4, sim.CodeThrottling},
		{"internal error then ok", sim.Fault{ErrorRate: 1}, 3, nil, 4, sim.CodeInternalError},
		{"service unavailable", sim.Fault{ErrorRate: 1, ErrorCode: "ServiceUnavailable"}, 1, nil, 2, "ServiceUnavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := mustSim(t, nil)
			var seen attempts
			opts := env.fastOptions()
			opts.Observe = seen.observe
			if tc.clearAt > 0 {
				opts.Transport = &clearAfter{cloud: env.cloud, action: eni.ActionDescribeInstanceTypes, n: tc.clearAt}
			}
			c := mustClient(t, opts)
			env.cloud.SetFault(eni.ActionDescribeInstanceTypes, tc.fault)
			_, err := c.InstanceLimits(context.Background(), "ecs.g7.large")
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			st := env.cloud.Snapshot().Calls[eni.ActionDescribeInstanceTypes]
			if st.Calls != tc.wantCalls {
				t.Fatalf("sim saw %d calls (%+v), want %d", st.Calls, st, tc.wantCalls)
			}
			faulted := uint64(tc.wantCalls)
			if tc.wantErr == nil {
				faulted--
				if got := seen.count(eni.ActionDescribeInstanceTypes, "OK"); got != 1 {
					t.Fatalf("metrics: %d OK attempts, want 1", got)
				}
			}
			if got := seen.count(eni.ActionDescribeInstanceTypes, tc.code); got != faulted {
				t.Fatalf("metrics: %d %s attempts, want %d", got, tc.code, faulted)
			}
		})
	}
}

func TestAlibabaClient_Sim_Auth(t *testing.T) {
	cases := []struct {
		name string
		cred eni.Credentials
		code string
	}{
		{"bad signature", eni.Credentials{AccessKeyID: simKeyID, AccessKeySecret: "wrong"}, sim.CodeSignatureDoesNotMatch},
		{"unknown key", eni.Credentials{AccessKeyID: "LTAInobody", AccessKeySecret: simSecret}, sim.CodeInvalidAccessKeyID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := mustSim(t, nil)
			opts := env.fastOptions()
			opts.Credentials = tc.cred
			c := mustClient(t, opts)
			_, err := c.ENIs(context.Background(), eni.ENIFilter{})
			var ae *eni.APIError
			if !errors.Is(err, eni.ErrAuth) || !errors.As(err, &ae) || ae.Code != tc.code {
				t.Fatalf("err = %v, want ErrAuth with code %s", err, tc.code)
			}
			if errors.Is(err, eni.ErrNotFound) {
				t.Fatal("an unknown key must read as an auth failure, not a missing resource")
			}
		})
	}
}

func TestAlibabaClient_Sim_ContextCancel(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	env.cloud.SetFault(eni.ActionDescribeVSwitches, sim.Fault{Latency: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.VSwitches(ctx, "vsw-sim-a")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("cancelled call returned after %v: the context does not reach the HTTP exchange", el)
	}
}

func TestAlibabaClient_Sim_CallTimeoutRetried(t *testing.T) {
	env := mustSim(t, nil)
	opts := env.fastOptions()
	opts.CallTimeout = 100 * time.Millisecond
	opts.Transport = &clearAfter{cloud: env.cloud, action: eni.ActionDescribeVSwitches, n: 1}
	c := mustClient(t, opts)
	env.cloud.SetFault(eni.ActionDescribeVSwitches, sim.Fault{Latency: 2 * time.Second})
	if _, err := c.VSwitches(context.Background(), "vsw-sim-a"); err != nil {
		t.Fatalf("a timed-out attempt was not retried: %v", err)
	}
}

func TestMetadata_Sim(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	e := mustCreateENI(t, c, eni.CreateENIOptions{SecondaryIPs: 1})
	if err := c.AttachENI(ctx, e.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, e.ID, eni.StatusInUse)

	m := eni.NewMetadata(env.metaURL, nil)
	for _, tc := range []struct {
		name string
		get  func(context.Context) (string, error)
		want string
	}{
		{"instance", m.InstanceID, env.inst.ID},
		{"region", m.RegionID, "cn-hangzhou"},
		{"zone", m.ZoneID, env.inst.ZoneID},
		{"vpc", m.VPCID, "vpc-sim-main"},
		{"vswitch", m.VSwitchID, env.inst.VSwitchID},
		{"type", m.InstanceType, "ecs.g7.large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.get(ctx); err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	primary, err := m.PrimaryMAC(ctx)
	if err != nil || primary.String() != env.inst.PrimaryMAC.String() {
		t.Fatalf("primary mac = %v, %v", primary, err)
	}
	macs, err := m.MACs(ctx)
	if err != nil || len(macs) != 2 {
		t.Fatalf("macs = %v, %v", macs, err)
	}
	got, err := m.ENI(ctx, e.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || got.PrimaryIP != e.PrimaryIP || !slices.Equal(got.PrivateIPs, e.PrivateIPs) ||
		got.VSwitchCIDR != netip.MustParsePrefix("172.30.1.0/24") || got.Gateway != netip.MustParseAddr("172.30.1.253") {
		t.Fatalf("metadata eni = %+v, api eni = %+v", got, e)
	}
}

func ExampleNewAlibabaClient() {
	creds, err := eni.LoadCredentials("") // ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := eni.NewAlibabaClient(eni.AlibabaOptions{RegionID: "cn-hangzhou", Credentials: creds})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = c // c.CreateENI, c.AttachENI, ...
}

func TestMetadata_Sim_IPv6(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	v6 := mustCreateENI(t, c, eni.CreateENIOptions{IPv6s: 2})
	v4 := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-b"})
	for _, e := range []eni.ENI{v6, v4} {
		if err := c.AttachENI(ctx, e.ID, env.inst.ID); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, e.ID, eni.StatusInUse)
	}
	m := eni.NewMetadata(env.metaURL, nil)
	got, err := m.IPv6(ctx, v6.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.IPs, v6.IPv6s) || got.VSwitchCIDR != netip.MustParsePrefix("fd00:ac1e:1::/64") ||
		got.Gateway != netip.MustParseAddr("fd00:ac1e:1:0:ffff:ffff:ffff:fffd") {
		t.Fatalf("metadata ipv6 = %+v, api ipv6s = %v", got, v6.IPv6s)
	}
	if _, err := m.IPv6(ctx, v4.MAC); !errors.Is(err, eni.ErrNotFound) {
		t.Fatalf("ipv6 of an eni on a vswitch without ipv6: %v, want ErrNotFound", err)
	}
}

// Ensure the client creates an ENI in every group eni_conf names
// (security_group plus security_groups, as SecurityGroupIds.N) and that
// the sim's group errors reach the caller with their codes.
func TestAlibabaClient_Sim_CreateENI_SecurityGroups(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) {
		cfg.SecurityGroups = []string{sim.DefaultSecurityGroupID, "sg-sim-web", "sg-sim-db", "sg-sim-c", "sg-sim-d", "sg-sim-e"}
	})
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	groups := []string{"sg-sim-web", "sg-sim-db"}
	e := mustCreateENI(t, c, eni.CreateENIOptions{SecurityGroupIDs: groups})
	got, err := c.ENIs(ctx, eni.ENIFilter{IDs: []string{e.ID}})
	if err != nil || len(got) != 1 {
		t.Fatalf("describe %s: %v, %v", e.ID, got, err)
	}
	if !slices.Equal(got[0].SecurityGroupIDs, groups) || !slices.Equal(e.SecurityGroupIDs, groups) {
		t.Errorf("eni groups: created %v, described %v; want %v", e.SecurityGroupIDs, got[0].SecurityGroupIDs, groups)
	}
	for _, tc := range []struct {
		name   string
		groups []string
		code   string
	}{
		{"unknown group", []string{"sg-sim-nope"}, sim.CodeSecurityGroupNotFound},
		{"six groups", []string{sim.DefaultSecurityGroupID, "sg-sim-web", "sg-sim-db", "sg-sim-c", "sg-sim-d", "sg-sim-e"}, sim.CodeJoinedGroupLimitExceed},
	} {
		_, err := c.CreateENI(ctx, eni.CreateENIOptions{VSwitchID: "vsw-sim-a", SecurityGroupIDs: tc.groups})
		if err == nil || !strings.Contains(err.Error(), tc.code) {
			t.Errorf("%s: err %v, want code %s", tc.name, err, tc.code)
		}
	}
}
