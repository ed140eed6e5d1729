package kubesync

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/internal/atomicfile"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/node"
)

// Cluster configuration, Terway's way: kube-system/eni-config holds the
// cluster's eni_conf; a node label names a ConfigMap whose eni_conf is
// merged over it for that node's pool.
const (
	ClusterConfigMap = "eni-config" // in Options.Namespace
	ConfigKey        = "eni_conf"
	// LabelTerwayConfig and LabelVeniConfig name a node pool's ConfigMap;
	// veni's label wins when both are set.
	LabelTerwayConfig = "terway-config"
	LabelVeniConfig   = "veni-config"
	// LabelExclusiveENI=eniOnly puts the node in exclusive ENI mode
	// (config exclusive_eni_type); LabelLingjun selects Lingjun/EFLO
	// nodes, which later versions implement: read and reported now.
	LabelExclusiveENI = "k8s.aliyun.com/exclusive-mode-eni-type"
	LabelLingjun      = "alibabacloud.com/lingjun-worker"
)

// clusterLayer merges the cluster's eni_conf and the node pool's into one
// merge patch, and names its sources for messages.
func (s *Sync) clusterLayer() (layer []byte, sources []string, err error) {
	layer = []byte(`{}`)
	add := func(cmName string) error {
		cm, ok := s.cms.Get(s.opts.Namespace, cmName)
		if !ok {
			return nil
		}
		conf, ok := cm.Data[ConfigKey]
		if !ok {
			return nil
		}
		merged, err := config.MergePatch(layer, []byte(conf))
		if err != nil {
			return fmt.Errorf("configmap %s/%s key %s: %w", s.opts.Namespace, cmName, ConfigKey, err)
		}
		layer = merged
		sources = append(sources, s.opts.Namespace+"/"+cmName)
		return nil
	}
	if err := add(ClusterConfigMap); err != nil {
		return nil, sources, err
	}
	if pool := s.poolConfigMap(); pool != "" && pool != ClusterConfigMap {
		if err := add(pool); err != nil {
			return nil, sources, err
		}
	}
	// The exclusive ENI label is Terway's node-pool switch; the store keeps
	// the mode the node was set up in (ipam refuses another).
	if n, ok := s.node.Get("", s.opts.NodeName); ok && n.Labels[LabelExclusiveENI] == config.ExclusiveENIOnly {
		merged, err := config.MergePatch(layer, []byte(`{"exclusive_eni_type":"`+config.ExclusiveENIOnly+`"}`))
		if err != nil {
			return nil, sources, err
		}
		layer = merged
		sources = append(sources, "label "+LabelExclusiveENI)
	}
	return layer, sources, nil
}

// poolConfigMap is the ConfigMap this node's labels name, "" when none.
func (s *Sync) poolConfigMap() string {
	n, ok := s.node.Get("", s.opts.NodeName)
	if !ok {
		return ""
	}
	if v := n.Labels[LabelVeniConfig]; v != "" {
		return v
	}
	return n.Labels[LabelTerwayConfig]
}

// syncConfig recomputes the cluster's layer and, when it changed, checks
// it over the node's file: a layer that does not parse or validate is
// refused (event, VeniConfig condition False, the last good configuration
// stays); fields that cannot change on a running node keep their values
// (event, and pinned in the file the plugin reads); the rest is written to
// cluster.json and handed to the daemon.
func (s *Sync) syncConfig(ctx context.Context) {
	if !s.cms.HasSynced() {
		return
	}
	layer, sources, err := s.clusterLayer()
	if err == nil {
		err = s.applyLayer(layer, sources)
	}
	s.mu.Lock()
	prev := s.configErr
	s.configErr = ""
	if err != nil {
		s.configErr = err.Error()
	}
	s.mu.Unlock()
	if err != nil && err.Error() != prev {
		s.nodeWarning("ConfigError", "%v; the node keeps its last good configuration", err)
	}
}

// applyLayer is syncConfig for a layer that merged.
func (s *Sync) applyLayer(layer []byte, sources []string) error {
	s.mu.Lock()
	same := bytes.Equal(layer, s.layer)
	s.mu.Unlock()
	if same {
		return nil
	}
	base, err := os.ReadFile(s.opts.ConfigPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.opts.ConfigPath, err)
	}
	merged, err := config.MergePatch(base, layer)
	if err != nil {
		return err
	}
	next, notes, err := config.Parse(merged)
	if err != nil {
		return fmt.Errorf("eni_conf from %s: %w", strings.Join(sources, " over "), err)
	}
	for _, n := range notes {
		s.log.Warn("cluster config", "from", sources, "note", n)
	}
	cur := s.opts.Config()
	kept, refused := config.KeepUnlive(cur, next)
	written := layer
	if len(refused) > 0 {
		s.nodeWarning("ConfigError", "eni_conf from %s changes %s, which a running node cannot change: kept as they are (restart veni on the node to take them)",
			strings.Join(sources, " over "), strings.Join(refused, ", "))
		if written, err = config.Pin(layer, cur, refused); err != nil {
			return err
		}
	}
	if err := writeLayer(node.ClusterLayerPath(s.opts.ConfigPath), written); err != nil {
		return err
	}
	s.mu.Lock()
	s.layer = layer
	s.mu.Unlock()
	if changed := config.Changed(cur, kept); len(changed) > 0 {
		s.log.Info("cluster config applied", "from", sources, "changed", changed)
		s.rec.Eventf(s.nodeRef(), kube.EventTypeNormal, "ConfigApplied", "eni_conf from %s applied: %s", strings.Join(sources, " over "), strings.Join(changed, ", "))
		s.opts.Apply(kept)
	}
	return nil
}

// writeLayer replaces the layer file atomically, 0600 (an eni_conf may hold
// an AccessKey).
func writeLayer(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data, 0o600)
}
