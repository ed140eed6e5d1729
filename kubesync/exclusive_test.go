package kubesync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veni-cni/veni/config"
)

// Ensure the node label k8s.aliyun.com/exclusive-mode-eni-type=eniOnly is a
// layer of the node's configuration: exclusive_eni_type reaches the daemon
// and cluster.json (what the plugin reads). Whether the node may still take
// it is the store's to say (ipam refuses a node set up in the other mode).
func TestSync_ExclusiveENILabel(t *testing.T) {
	h := startHarness(t, `{"max_pool_size": 5, "min_pool_size": 0}`, nil, nil)
	h.patchNodeLabels(t, map[string]string{LabelExclusiveENI: config.ExclusiveENIOnly})
	h.wantApplied(t, "exclusive ENI mode from the label", func(c config.Config) bool { return c.ExclusiveENI() })
	layer, err := os.ReadFile(filepath.Join(filepath.Dir(h.cfgPath), "cluster.json"))
	if err != nil || !strings.Contains(string(layer), `"exclusive_eni_type":"eniOnly"`) {
		t.Fatalf("cluster.json %s, %v", layer, err)
	}
}
