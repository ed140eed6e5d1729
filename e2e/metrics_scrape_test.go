package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veni-cni/veni/telemetry"
)

// scrapeMetrics reads a sim node's daemon metrics from its default unix
// socket (beside the node's store), as a sidecar scraper would, parsed by
// Prometheus' own text parser. Keys are metric names; each sample's labels
// are kept.
func (c *cluster) scrapeMetrics(tb testing.TB, node string) map[string][]*model.Sample {
	tb.Helper()
	raw, err := os.ReadFile(c.nodes[node].config)
	if err != nil {
		tb.Fatal(err)
	}
	var cfg struct {
		StorePath string `json:"store_path"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.StorePath == "" {
		tb.Fatalf("store_path of %s: %v", node, err)
	}
	sock := filepath.Join(filepath.Dir(cfg.StorePath), telemetry.SocketName)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://veni/metrics")
	if err != nil {
		tb.Fatalf("scrape %s's metrics at %s: %v", node, sock, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("parse %s's metrics: %v", node, err)
	}
	out := make(map[string][]*model.Sample)
	for name, f := range fams {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, f)
		if err != nil {
			tb.Fatal(err)
		}
		out[name] = vec
	}
	return out
}

// sumWhere adds the samples of a metric whose labels include want.
func sumWhere(samples []*model.Sample, want map[string]string) float64 {
	var n float64
next:
	for _, s := range samples {
		for k, v := range want {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		n += float64(s.Value)
	}
	return n
}

// metricsAgreeWithStore says how a node's scraped pool metrics differ from
// its store ("veni ipam list"), "" when they agree.
func (c *cluster) metricsAgreeWithStore(tb testing.TB, node string) string {
	m := c.scrapeMetrics(tb, node)
	l := c.ipamList(tb, node)
	byState := map[string]int{}
	for _, ip := range l.IPs {
		byState[ip.State]++
	}
	for _, state := range []string{"free", "reserved", "bound"} {
		got := sumWhere(m["veni_pool_ips"], map[string]string{"state": state})
		if int(got) != byState[state] {
			return fmt.Sprintf("veni_pool_ips{state=%q} sums to %v, the store holds %d", state, got, byState[state])
		}
	}
	return ""
}
