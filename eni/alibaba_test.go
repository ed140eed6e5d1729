package eni

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI answers every OpenAPI call with code (HTTP status) for the first
// fail calls and with an empty success afterwards. It does not check
// signatures: the sim tests do.
type fakeAPI struct {
	code   string
	status int
	fail   int32
	calls  atomic.Int32
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	if n <= f.fail {
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"RequestId":"req-%d","Code":%q,"Message":"injected"}`, n, f.code)
		return
	}
	fmt.Fprintf(w, `{"RequestId":"req-%d","VSwitches":{"VSwitch":[{"VSwitchId":"vsw-1","CidrBlock":"10.0.0.0/24","AvailableIpAddressCount":7}]}}`, n)
}

func mustFakeClient(tb testing.TB, f *fakeAPI, mutate func(*AlibabaOptions)) *AlibabaClient {
	tb.Helper()
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	opts := AlibabaOptions{
		RegionID:    "cn-hangzhou",
		Endpoint:    strings.TrimPrefix(srv.URL, "http://"),
		Scheme:      "http",
		Credentials: Credentials{AccessKeyID: "id", AccessKeySecret: "secret"},
	}
	if mutate != nil {
		mutate(&opts)
	}
	c, err := NewAlibabaClient(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestNewAlibabaClient_Validation(t *testing.T) {
	good := AlibabaOptions{RegionID: "cn-hangzhou", Credentials: Credentials{AccessKeyID: "a", AccessKeySecret: "b"}}
	cases := []struct {
		name    string
		mutate  func(*AlibabaOptions)
		wantErr string
	}{
		{"ok", func(*AlibabaOptions) {}, ""},
		{"http", func(o *AlibabaOptions) { o.Scheme = "HTTP" }, ""},
		{"no region", func(o *AlibabaOptions) { o.RegionID = "" }, "region"},
		{"odd region", func(o *AlibabaOptions) { o.RegionID = "cn hangzhou" }, "region"},
		{"no secret", func(o *AlibabaOptions) { o.Credentials.AccessKeySecret = "" }, "missing AccessKeySecret"},
		{"bad scheme", func(o *AlibabaOptions) { o.Scheme = "ftp" }, "scheme"},
		{"endpoint with scheme", func(o *AlibabaOptions) { o.Endpoint = "http://x:1" }, "host[:port]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mutate(&o)
			_, err := NewAlibabaClient(o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// The delays between tries follow RetryPolicy.Backoff; a fake sleep
// records them instead of waiting.
func TestAlibabaClient_Call_BackoffSchedule(t *testing.T) {
	f := &fakeAPI{code: "Throttling.User", status: 400, fail: 3}
	c := mustFakeClient(t, f, nil)
	var delays []time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error { delays = append(delays, d); return nil }
	c.rnd = func() float64 { return 0 }
	vs, err := c.VSwitches(context.Background(), "vsw-1")
	if err != nil || len(vs) != 1 || vs[0].AvailableIPs != 7 {
		t.Fatalf("VSwitches = %+v, %v", vs, err)
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Fatalf("delays = %v, want %v", delays, want)
	}
}

func TestAlibabaClient_Call_Exhausted(t *testing.T) {
	cases := []struct {
		name      string
		code      string
		status    int
		wantCalls int32
		wantIs    error
	}{
		{"throttled", "Throttling", 400, 5, ErrThrottled},
		{"internal", "InternalError", 500, 5, nil},
		{"permanent", "InvalidVSwitchId.IpNotEnough", 403, 1, ErrVSwitchExhausted},
		{"auth", "SignatureDoesNotMatch", 400, 1, ErrAuth},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPI{code: tc.code, status: tc.status, fail: 100}
			c := mustFakeClient(t, f, nil)
			c.sleep = func(context.Context, time.Duration) error { return nil }
			_, err := c.VSwitches(context.Background(), "vsw-1")
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != tc.code || ae.HTTPStatus != tc.status || !strings.HasPrefix(ae.RequestID, "req-") {
				t.Fatalf("err = %v, want an APIError %s/%d with request id", err, tc.code, tc.status)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("err = %v, want %v", err, tc.wantIs)
			}
			if got := f.calls.Load(); got != tc.wantCalls {
				t.Fatalf("server saw %d calls, want %d", got, tc.wantCalls)
			}
		})
	}
}

func TestAlibabaClient_Call_CancelDuringBackoff(t *testing.T) {
	f := &fakeAPI{code: "Throttling", status: 400, fail: 100}
	c := mustFakeClient(t, f, func(o *AlibabaOptions) {
		o.Retry = RetryPolicy{MaxAttempts: 10, BaseDelay: time.Hour, MaxDelay: time.Hour}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.VSwitches(ctx, "vsw-1")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrThrottled) {
		t.Fatalf("err = %v, want both the deadline and the last throttling", err)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("server saw %d calls, want 1", f.calls.Load())
	}
}

func TestAlibabaClient_Call_RateLimited(t *testing.T) {
	f := &fakeAPI{}
	c := mustFakeClient(t, f, func(o *AlibabaOptions) {
		o.RateLimits = map[string]RateLimit{ActionDescribeVSwitches: {PerSecond: 0.1, Burst: 1}}
	})
	if _, err := c.VSwitches(context.Background(), "vsw-1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.VSwitches(ctx, "vsw-1")
	if err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("err = %v, want the bucket to hold the second call back", err)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("server saw %d calls, want 1", f.calls.Load())
	}
}

func TestAlibabaClient_Observe(t *testing.T) {
	var mu sync.Mutex
	var got []string
	observe := func(action, code string, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if took < 0 {
			t.Errorf("negative duration %v", took)
		}
		got = append(got, action+"/"+code)
	}
	f := &fakeAPI{}
	a := mustFakeClient(t, f, func(o *AlibabaOptions) { o.Observe = observe })
	b := mustFakeClient(t, f, func(o *AlibabaOptions) { o.Observe = observe })
	for _, c := range []*AlibabaClient{a, b} {
		if _, err := c.VSwitches(context.Background(), "vsw-1"); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{ActionDescribeVSwitches + "/OK", ActionDescribeVSwitches + "/OK"}
	if !slices.Equal(got, want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}

// recordHost answers every request itself, so nothing leaves the machine,
// and remembers where the SDK meant to send it.
type recordHost struct{ hosts []string }

func (r *recordHost) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Scheme+"://"+req.URL.Host)
	rec := httptest.NewRecorder()
	rec.WriteString(`{"RequestId":"r","VSwitches":{"VSwitch":[{"VSwitchId":"vsw-1","CidrBlock":"10.0.0.0/24"}]},"InstanceTypes":{"InstanceType":[{"InstanceTypeId":"t"}]}}`)
	return rec.Result(), nil
}

func TestAlibabaClient_RegionalEndpoints(t *testing.T) {
	cases := []struct {
		region, ecs, vpc string
	}{
		{"cn-hangzhou", "https://ecs-cn-hangzhou.aliyuncs.com", "https://vpc.aliyuncs.com"},
		{"ap-southeast-1", "https://ecs.ap-southeast-1.aliyuncs.com", "https://vpc.ap-southeast-1.aliyuncs.com"},
	}
	for _, tc := range cases {
		t.Run(tc.region, func(t *testing.T) {
			rec := &recordHost{}
			c, err := NewAlibabaClient(AlibabaOptions{
				RegionID: tc.region, Transport: rec,
				Credentials: Credentials{AccessKeyID: "a", AccessKeySecret: "b"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.InstanceLimits(context.Background(), "t"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.VSwitches(context.Background(), "vsw-1"); err != nil {
				t.Fatal(err)
			}
			if len(rec.hosts) != 2 || rec.hosts[0] != tc.ecs || rec.hosts[1] != tc.vpc {
				t.Fatalf("requests went to %v, want [%s %s]", rec.hosts, tc.ecs, tc.vpc)
			}
		})
	}
}
