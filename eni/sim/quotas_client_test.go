package sim_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// headerRecorder keeps the rate-limit headers of every answer the client
// got, as they crossed the wire.
type headerRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []http.Header
}

func (r *headerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, resp.Header.Clone())
		r.mu.Unlock()
	}
	return resp, err
}

func (r *headerRecorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

// Ensure veni's own client (eni.AlibabaClient over the unchanged SDK) sees
// a call over the account's quota as throttling, with the code and the
// rate-limit headers the cloud sends.
func TestCloud_Quotas_ThroughAlibabaClient(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Credentials = map[string]string{"LTAIquota": "quota-secret"}
	cfg.Quotas = sim.Quotas{PerAPI: map[string]int{"DescribeNetworkInterfaces": 2}, Window: time.Hour}
	cloud, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	srv := httptest.NewServer(cloud.APIHandler())
	t.Cleanup(srv.Close)
	rec := &headerRecorder{next: &http.Transport{Proxy: nil}}
	client, err := eni.NewAlibabaClient(eni.AlibabaOptions{
		RegionID:    cfg.RegionID,
		Endpoint:    strings.TrimPrefix(srv.URL, "http://"),
		Scheme:      "http",
		Credentials: eni.Credentials{AccessKeyID: "LTAIquota", AccessKeySecret: "quota-secret"},
		Retry:       eni.RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond},
		Transport:   rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if _, err := client.ENIs(ctx, eni.ENIFilter{}); err != nil {
			t.Fatalf("within the quota: %v", err)
		}
	}
	_, err = client.ENIs(ctx, eni.ENIFilter{})
	var ae *eni.APIError
	if !errors.Is(err, eni.ErrThrottled) || !errors.As(err, &ae) || ae.Code != sim.CodeThrottlingUser || ae.HTTPStatus != http.StatusBadRequest {
		t.Fatalf("over the quota: %v, want ErrThrottled with %s (http 400)", err, sim.CodeThrottlingUser)
	}
	h := rec.last()
	if got := h.Get(sim.HeaderRateLimitUserAPI); !strings.HasPrefix(got, "Limit:2,Remain:0,TimeLeft:") {
		t.Fatalf("%s = %q", sim.HeaderRateLimitUserAPI, got)
	}
	if got := h.Get(sim.HeaderRateLimitUser); !strings.HasPrefix(got, "Limit:2,Remain:0,TimeLeft:") {
		t.Fatalf("%s = %q", sim.HeaderRateLimitUser, got)
	}
}
