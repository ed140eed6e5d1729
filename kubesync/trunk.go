package kubesync

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// Node annotations of a trunk node, under Terway's names, so that what
// reads them for Terway (its webhook, operators' scripts) reads veni's.
const (
	// AnnotationTrunkOn is the node's trunk ENI id.
	AnnotationTrunkOn = "k8s.aliyun.com/trunk-on"
	// AnnotationMaxMemberENI is how many member ENIs the trunk carries at
	// most (the instance type's EniTotalQuantity − EniQuantity).
	AnnotationMaxMemberENI = "k8s.aliyun.com/max-member-eni-ip"
)

// syncTrunkAnnotations writes AnnotationTrunkOn and AnnotationMaxMemberENI
// once the node uses trunking and its trunk is ready, when they changed.
func (s *Sync) syncTrunkAnnotations(ctx context.Context, n *kube.Node) {
	facts, ok := s.opts.Facts()
	if !ok || !ipam.TrunkEnabled(node.IPAMNode(facts), s.opts.Config()) {
		return
	}
	trunk := ""
	err := s.opts.Store.View(func(tx *store.ReadTx) error {
		enis, err := tx.ENIs()
		for _, e := range enis {
			if e.Kind == store.ENITrunk && e.State == store.ENIReady {
				trunk = e.ID
			}
		}
		return err
	})
	if err != nil || trunk == "" {
		return
	}
	want := map[string]string{AnnotationTrunkOn: trunk, AnnotationMaxMemberENI: strconv.Itoa(facts.MemberENIs)}
	s.mu.Lock()
	sent := s.annotations[AnnotationTrunkOn] == trunk && s.annotations[AnnotationMaxMemberENI] == want[AnnotationMaxMemberENI]
	s.mu.Unlock()
	if sent || (n.Annotations[AnnotationTrunkOn] == trunk && n.Annotations[AnnotationMaxMemberENI] == want[AnnotationMaxMemberENI]) {
		return
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
	if _, err := kube.Patch(ctx, s.opts.Client, kube.Nodes, "", s.opts.NodeName, kube.MergePatch, patch, kube.WriteOptions{}); err != nil {
		s.log.Warn("annotate trunk node", "err", err)
		return
	}
	s.mu.Lock()
	for k, v := range want {
		s.annotations[k] = v
	}
	s.mu.Unlock()
}
