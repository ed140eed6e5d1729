package sim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// quotaClock is a clock the tests move; the cloud's quota windows follow it.
type quotaClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *quotaClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *quotaClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newQuotaAPI is newTestAPI with quotas q and a clock at 10:00:20 UTC
// (request signatures are checked against the real time, so the clock
// only moves the quota windows: auth keeps its own).
func newQuotaAPI(t *testing.T, q Quotas) (*Cloud, *quotaClock, *ecs.Client) {
	t.Helper()
	c, _, _, client := newTestAPI(t, func(cfg *Config) { cfg.Quotas = q })
	clock := &quotaClock{now: time.Date(2026, 3, 1, 10, 0, 20, 0, time.UTC)}
	c.mu.Lock()
	c.quotasNow = clock.Now
	c.mu.Unlock()
	return c, clock, client
}

func describeNICs(client *ecs.Client) (http.Header, error) {
	resp, err := client.DescribeNetworkInterfaces(ecs.CreateDescribeNetworkInterfacesRequest())
	if err != nil {
		return respHeaders(err), err
	}
	return http.Header(resp.GetHttpHeaders()), nil
}

// respHeaders are the headers of an error answer, as the SDK keeps them.
func respHeaders(err error) http.Header {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return http.Header(se.RespHeaders)
	}
	return nil
}

func wantHeader(tb testing.TB, h http.Header, name, want string) {
	tb.Helper()
	if got := h.Get(name); got != want {
		tb.Fatalf("%s = %q, want %q", name, got, want)
	}
}

// Ensure an API over its quota is refused with Throttling.User and the
// rate-limit headers until the next minute begins, while other APIs go on.
func TestCloud_Quotas_RefusedUntilNextWindow(t *testing.T) {
	c, clock, client := newQuotaAPI(t, Quotas{PerAPI: map[string]int{"DescribeNetworkInterfaces": 3, "DescribeInstanceTypes": 5}})
	reset := time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC).Unix()
	for i := range 3 {
		h, err := describeNICs(client)
		if err != nil {
			t.Fatalf("call %d within the quota: %v", i+1, err)
		}
		wantHeader(t, h, HeaderRateLimitUserAPI, fmt.Sprintf("Limit:3,Remain:%d,TimeLeft:40000,Reset:%d", 2-i, reset))
		wantHeader(t, h, HeaderRateLimitUser, fmt.Sprintf("Limit:8,Remain:%d,TimeLeft:40000,Reset:%d", 7-i, reset))
	}
	_, err := describeNICs(client)
	wantCode(t, err, CodeThrottlingUser, http.StatusBadRequest)
	h := respHeaders(err)
	wantHeader(t, h, HeaderRateLimitUserAPI, fmt.Sprintf("Limit:3,Remain:0,TimeLeft:40000,Reset:%d", reset))
	if _, err := client.DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest()); err != nil {
		t.Fatalf("another API is throttled with this one: %v", err)
	}

	clock.Set(time.Date(2026, 3, 1, 10, 0, 59, 900e6, time.UTC))
	_, err = describeNICs(client)
	wantCode(t, err, CodeThrottlingUser, http.StatusBadRequest)
	wantHeader(t, respHeaders(err), HeaderRateLimitUserAPI, fmt.Sprintf("Limit:3,Remain:0,TimeLeft:100,Reset:%d", reset))
	if b := c.Throttling().Blocked; !b["DescribeNetworkInterfaces"].Equal(time.Unix(reset, 0)) || len(b) != 1 {
		t.Fatalf("blocked = %v, want DescribeNetworkInterfaces until %v", b, time.Unix(reset, 0).UTC())
	}

	clock.Set(time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC))
	h, err = describeNICs(client)
	if err != nil {
		t.Fatalf("minute T+1: %v", err)
	}
	wantHeader(t, h, HeaderRateLimitUserAPI, fmt.Sprintf("Limit:3,Remain:2,TimeLeft:60000,Reset:%d", reset+60))

	st := c.Snapshot()
	if got := st.Calls["DescribeNetworkInterfaces"]; got.Calls != 6 || got.Throttled != 2 || got.OverQuota != 2 {
		t.Fatalf("stats = %+v, want 6 calls, 2 throttled over quota", got)
	}
	w := st.Throttling.Windows
	if len(w) != 2 || w[0].Calls["DescribeNetworkInterfaces"] != 5 || w[0].Throttled["DescribeNetworkInterfaces"] != 2 ||
		w[1].Calls["DescribeNetworkInterfaces"] != 1 || w[1].Throttled != nil || !w[1].Start.Equal(time.Unix(reset, 0)) {
		t.Fatalf("windows = %+v", w)
	}
	if len(st.Throttling.Blocked) != 0 {
		t.Fatalf("still blocked in the next window: %v", st.Throttling.Blocked)
	}
}

// Ensure the account's budget bounds every API together.
func TestCloud_Quotas_Account(t *testing.T) {
	_, _, client := newQuotaAPI(t, Quotas{Account: 2})
	if _, err := describeNICs(client); err != nil {
		t.Fatal(err)
	}
	resp, err := client.DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest())
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header(resp.GetHttpHeaders())
	wantHeader(t, h, HeaderRateLimitUser, "Limit:2,Remain:0,TimeLeft:40000,Reset:1772359260")
	if got := h.Get(HeaderRateLimitUserAPI); got != "" {
		t.Fatalf("%s = %q for an API without a budget of its own", HeaderRateLimitUserAPI, got)
	}
	_, err = describeNICs(client)
	wantCode(t, err, CodeThrottlingUser, http.StatusBadRequest)
}

// Ensure a cloud without quotas throttles nothing and sends no rate-limit
// headers.
func TestCloud_Quotas_Off(t *testing.T) {
	_, _, client := newQuotaAPI(t, Quotas{})
	for range 20 {
		h, err := describeNICs(client)
		if err != nil {
			t.Fatal(err)
		}
		if h.Get(HeaderRateLimitUserAPI) != "" || h.Get(HeaderRateLimitUser) != "" {
			t.Fatalf("rate-limit headers without quotas: %v", h)
		}
	}
}

// Ensure concurrent callers share one budget: exactly the quota gets
// through in a window, whoever calls (eight clients, as eight nodes).
func TestCloud_Quotas_SharedByCallers(t *testing.T) {
	c, _, _ := newQuotaAPI(t, Quotas{PerAPI: map[string]int{"DescribeNetworkInterfaces": 25}})
	host := mustServeAPI(t, c)
	var ok, throttled atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		// One SDK client each: the SDK's client is not safe for
		// concurrent calls (it sets its timeouts per call).
		client := mustECS(t, host, testKeyID, testSecret)
		wg.Go(func() {
			for range 10 {
				_, err := describeNICs(client)
				switch code, _ := codeOf(err); {
				case err == nil:
					ok.Add(1)
				case code == CodeThrottlingUser:
					throttled.Add(1)
				default:
					t.Errorf("describe: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 25 || throttled.Load() != 55 {
		t.Fatalf("%d admitted, %d throttled; want 25 and 55", ok.Load(), throttled.Load())
	}
	if got := c.Snapshot().Calls["DescribeNetworkInterfaces"]; got.Calls != 80 || got.OverQuota != 55 {
		t.Fatalf("stats = %+v", got)
	}
}

// Ensure quotas can be changed at run time and are validated.
func TestCloud_SetQuotas(t *testing.T) {
	c, _, client := newQuotaAPI(t, Quotas{})
	if _, err := describeNICs(client); err != nil {
		t.Fatal(err)
	}
	if err := c.SetQuotas(Quotas{PerAPI: map[string]int{"DescribeNetworkInterfaces": 1}}); err != nil {
		t.Fatal(err)
	}
	// The call before counts: the window's counts survive the change.
	_, err := describeNICs(client)
	wantCode(t, err, CodeThrottlingUser, http.StatusBadRequest)
	for _, bad := range []Quotas{
		{PerAPI: map[string]int{"RunInstances": 1}},
		{PerAPI: map[string]int{"DescribeNetworkInterfaces": -1}},
		{Account: -1},
		{Window: -time.Second},
	} {
		if err := c.SetQuotas(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("SetQuotas(%+v) = %v, want ErrInvalidConfig", bad, err)
		}
	}
}

// Ensure a throttle fault answers the code it names, and only the three
// throttling codes.
func TestCloud_ApplyFault_ThrottleCode(t *testing.T) {
	c, _, client := newQuotaAPI(t, DefaultQuotas())
	for _, code := range []string{CodeThrottlingAPI, CodeThrottlingPlain, CodeThrottlingUser} {
		if err := c.ApplyFault(FaultRequest{Action: "DescribeNetworkInterfaces", ThrottleRate: 1, ThrottleCode: code}); err != nil {
			t.Fatal(err)
		}
		_, err := describeNICs(client)
		wantCode(t, err, code, http.StatusBadRequest)
		// A fault is not the quota: the headers say the budget is not spent.
		if h := respHeaders(err).Get(HeaderRateLimitUserAPI); !strings.HasPrefix(h, "Limit:800,Remain:") || strings.HasPrefix(h, "Limit:800,Remain:0,") {
			t.Fatalf("%s = %q under a fault", HeaderRateLimitUserAPI, h)
		}
	}
	st := c.Snapshot().Calls["DescribeNetworkInterfaces"]
	if st.Throttled != 3 || st.OverQuota != 0 {
		t.Fatalf("stats = %+v, want 3 throttled by the fault, none over quota", st)
	}
	if err := c.ApplyFault(FaultRequest{ThrottleRate: 1, ThrottleCode: "Throttling.Whatever"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown throttle code: %v", err)
	}
}
