package kubesync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/store"
)

// Names veni writes on Kubernetes objects.
const (
	// AnnotationPodIPs is Terway's pod annotation listing the pod's
	// addresses ("10.0.1.5" or "10.0.1.5,fd00::5"); other tools read it.
	AnnotationPodIPs = "k8s.aliyun.com/pod-ips"
	// AnnotationInstance is the node annotation with what veni found about
	// the instance: type, ENI and address limits, how many pods fit.
	AnnotationInstance = "veni.io/instance"
	// ConditionSufficientIP is Terway's node condition: False when the
	// node's pool is empty and cannot grow (a vSwitch out of addresses, a
	// quota).
	ConditionSufficientIP = "SufficientIP"
	// ConditionConfig is False while the cluster's eni_conf for this node
	// is refused.
	ConditionConfig = "VeniConfig"
)

// maxRelay bounds the events relayed per pass; the rest wait for the next.
const maxRelay = 500

// relayEvents turns new entries of the store's event log into Kubernetes
// events: the CNI plugin's call records become pod events with Terway's
// reasons (AllocIPSucceed "took N ms", AllocIPFailed), the pool's events
// (ENI created or deleted, vSwitch exhausted, back-offs) node events. It
// returns the new cursor.
func (s *Sync) relayEvents(ctx context.Context, since uint64) uint64 {
	var evs []store.Event
	err := s.opts.Store.View(func(tx *store.ReadTx) error {
		var err error
		evs, err = tx.Events(since, maxRelay)
		return err
	})
	if err != nil {
		s.log.Warn("read the event log", "err", err)
		return since
	}
	for _, e := range evs {
		since = e.Seq
		typ := kube.EventTypeNormal
		if e.Level >= slog.LevelWarn {
			typ = kube.EventTypeWarning
		}
		ref, ok := s.refOf(e)
		if !ok {
			continue
		}
		s.rec.Event(ref, typ, e.Reason, e.Message)
	}
	if len(evs) == maxRelay {
		s.kick()
	}
	return since
}

// refOf is the object an event of the store's log is about: its pod
// (known to the pod informer, or named by a CNI record) or this node.
func (s *Sync) refOf(e store.Event) (kube.ObjectReference, bool) {
	rest, isPod := strings.CutPrefix(e.Object, "pod/")
	if !isPod {
		return s.nodeRef(), true
	}
	ns, name, _ := strings.Cut(rest, "/")
	ref := kube.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: name}
	if p, ok := s.pods.Get(ns, name); ok {
		ref.UID = p.UID
	} else if e.CNI != nil && e.CNI.PodUID != "" {
		ref.UID = e.CNI.PodUID
	} else if e.CNI == nil {
		// A pod collected after it left (GC): tell the node.
		return s.nodeRef(), true
	}
	return ref, true
}

// syncPodIPs writes k8s.aliyun.com/pod-ips on every pod of this node the
// store holds an address for, where the pod says otherwise; on a pod with
// an ENI of its own (exclusive or trunk member) also Terway's
// k8s.aliyun.com/pod-eni "true" and, when a PodNetworking selects it,
// k8s.aliyun.com/pod-networking. The plugin never talks to the API server;
// a pod bound while the daemon was down gets its annotations on the next
// pass.
func (s *Sync) syncPodIPs(ctx context.Context) {
	if !s.pods.HasSynced() {
		return
	}
	// A pod deleted while its ADD ran, and one of the same name created
	// since (a StatefulSet's), must not get the old pod's address: an
	// allocation that names a UID only annotates the pod with that UID.
	want := make(map[string]map[string]string)
	err := s.opts.Store.View(func(tx *store.ReadTx) error {
		allocs, err := tx.Allocations()
		if err != nil {
			return err
		}
		enis, err := tx.ENIs()
		if err != nil {
			return err
		}
		dedicated := make(map[string]bool)
		for _, e := range enis {
			dedicated[e.ID] = e.Dedicated()
		}
		ips := make(map[string][]string)
		for _, a := range allocs {
			if a.State != store.IPBound || a.PodName == "" {
				continue
			}
			key := store.PodKey(a.PodNamespace, a.PodName)
			if a.PodUID != "" {
				if p, ok := s.pods.Get(a.PodNamespace, a.PodName); ok && p.UID != a.PodUID {
					continue
				}
			}
			if want[key] == nil {
				want[key] = make(map[string]string)
			}
			ips[key] = append(ips[key], a.IP.String())
			if !dedicated[a.ENIID] {
				continue
			}
			want[key][podnetwork.AnnotationPodENI] = "true"
			if r, err := podnetwork.Resolve(tx, a.PodNamespace, a.PodName); err == nil && r.Networking != "" {
				want[key][podnetwork.AnnotationPodNetworking] = r.Networking
			}
		}
		for key, list := range ips {
			slices.Sort(list)
			want[key][AnnotationPodIPs] = strings.Join(list, ",")
		}
		return nil
	})
	if err != nil {
		s.log.Warn("read allocations", "err", err)
		return
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		ns, name, _ := strings.Cut(key, "/")
		p, ok := s.pods.Get(ns, name)
		if !ok {
			continue
		}
		diff := make(map[string]string)
		for k, v := range want[key] {
			if p.Annotations[k] != v {
				diff[k] = v
			}
		}
		if len(diff) == 0 {
			continue
		}
		value := fmt.Sprint(diff)
		s.mu.Lock()
		sent := s.podIPs[key] == value+"@"+p.UID
		s.mu.Unlock()
		if sent {
			continue // patched; the informer has not seen it yet
		}
		// The UID makes the patch conditional: the API server refuses it
		// (409) if the pod was replaced after the cache saw it.
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": p.UID, "annotations": diff}})
		if _, err := kube.Patch(ctx, s.opts.Client, kube.Pods, ns, name, kube.MergePatch, patch, kube.WriteOptions{}); err != nil {
			if !kube.IsNotFound(err) && !kube.IsConflict(err) {
				s.log.Warn("annotate pod", "pod", key, "err", err)
			}
			continue
		}
		s.mu.Lock()
		s.podIPs[key] = value + "@" + p.UID
		s.mu.Unlock()
	}
}

// instanceInfo is the node annotation's value.
type instanceInfo struct {
	InstanceID   string `json:"instanceID"`
	InstanceType string `json:"instanceType"`
	ENIs         int    `json:"enis"`       // secondary ENIs veni may use
	IPv4PerENI   int    `json:"ipv4PerENI"` // addresses per ENI for pods
	MaxPods      int    `json:"maxPods"`    // shared-ENI pods that fit
	Mode         string `json:"mode,omitempty"`
}

// syncNode writes the node's conditions and instance annotation when they
// changed.
func (s *Sync) syncNode(ctx context.Context) {
	n, ok := s.node.Get("", s.opts.NodeName)
	if !ok {
		return
	}
	now := time.Now()
	conds := []kube.NodeCondition{s.ipCondition(now), s.configCondition()}
	var changed []kube.NodeCondition
	for _, c := range conds {
		cur := findCondition(n.Status.Conditions, c.Type)
		if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
			continue
		}
		c.LastHeartbeatTime = kube.Time{Time: now}
		c.LastTransitionTime = kube.Time{Time: now}
		if cur != nil && cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		changed = append(changed, c)
	}
	if len(changed) > 0 {
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": changed}})
		if _, err := kube.Patch(ctx, s.opts.Client, kube.Nodes, "", s.opts.NodeName, kube.StrategicMergePatch, patch, kube.WriteOptions{Subresource: "status"}); err != nil {
			s.log.Warn("node conditions", "err", err)
		} else {
			for _, c := range changed {
				s.log.Info("node condition", "type", c.Type, "status", c.Status, "reason", c.Reason, "message", c.Message)
			}
		}
	}
	s.syncInstanceAnnotation(ctx, n)
	s.syncTrunkAnnotations(ctx, n)
}

func findCondition(cs []kube.NodeCondition, typ string) *kube.NodeCondition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

// ipCondition is SufficientIP from the pool: False while no address is free
// and back-offs stop the pool from growing, naming what ran out and what to
// do.
func (s *Sync) ipCondition(now time.Time) kube.NodeCondition {
	h, err := ipam.PoolHealth(s.opts.Store, now)
	switch {
	case err != nil:
		return kube.NodeCondition{Type: ConditionSufficientIP, Status: kube.ConditionUnknown, Reason: "StoreUnreadable", Message: err.Error()}
	case h.Free == 0 && len(h.Blocked) > 0:
		return kube.NodeCondition{Type: ConditionSufficientIP, Status: kube.ConditionFalse, Reason: "InsufficientIP",
			Message: fmt.Sprintf("no free pod address and the pool cannot grow: %s (add vSwitches with free addresses to eni_conf vswitches, or raise the quota)", strings.Join(h.Blocked, "; "))}
	}
	return kube.NodeCondition{Type: ConditionSufficientIP, Status: kube.ConditionTrue, Reason: "SufficientIP", Message: fmt.Sprintf("%d free pod addresses", h.Free)}
}

func (s *Sync) configCondition() kube.NodeCondition {
	s.mu.Lock()
	why := s.configErr
	s.mu.Unlock()
	if why != "" {
		return kube.NodeCondition{Type: ConditionConfig, Status: kube.ConditionFalse, Reason: "ConfigError", Message: why}
	}
	return kube.NodeCondition{Type: ConditionConfig, Status: kube.ConditionTrue, Reason: "ConfigApplied", Message: "the cluster's eni_conf is applied"}
}

// syncInstanceAnnotation writes AnnotationInstance when it changed, so
// "kubectl describe node" answers how many pods fit.
func (s *Sync) syncInstanceAnnotation(ctx context.Context, n *kube.Node) {
	facts, ok := s.opts.Facts()
	if !ok {
		return
	}
	cfg := s.opts.Config()
	enis := max(facts.ENIs-1, 0)
	if cfg.MaxENI > 0 {
		enis = min(enis, cfg.MaxENI)
	}
	info := instanceInfo{
		InstanceID: facts.InstanceID, InstanceType: facts.InstanceType,
		ENIs: enis, IPv4PerENI: max(facts.IPv4PerENI-1, 0), MaxPods: ipam.MaxPods(node.IPAMNode(facts), cfg),
	}
	switch {
	case cfg.ExclusiveENI():
		info.Mode = "exclusive-eni (one ENI per pod; maxPods is the ENIs besides the primary)"
	case n.Labels[LabelExclusiveENI] != "":
		info.Mode = "exclusive-eni (label " + LabelExclusiveENI + "=" + n.Labels[LabelExclusiveENI] + " not applied: only " + config.ExclusiveENIOnly + " is known)"
	case n.Labels[LabelLingjun] != "":
		info.Mode = "lingjun (label " + LabelLingjun + "; not implemented: pods use shared ENIs)"
	}
	b, _ := json.Marshal(info)
	value := string(b)
	if n.Annotations[AnnotationInstance] == value {
		return
	}
	s.mu.Lock()
	sent := s.annotations[AnnotationInstance] == value
	s.mu.Unlock()
	if sent {
		return
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{AnnotationInstance: value}}})
	if _, err := kube.Patch(ctx, s.opts.Client, kube.Nodes, "", s.opts.NodeName, kube.MergePatch, patch, kube.WriteOptions{}); err != nil {
		s.log.Warn("annotate node", "err", err)
		return
	}
	if info.Mode != "" {
		s.nodeWarning("NodeModeNotImplemented", "node pool mode %s", info.Mode)
	}
	s.mu.Lock()
	s.annotations[AnnotationInstance] = value
	s.mu.Unlock()
}
