package kubesync

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// flushEvery batches the mirror's writes: informer events within it cost
// one store transaction (one fsync), not one each.
const flushEvery = 100 * time.Millisecond

// annotationPrefixes are the pod annotations veni reads (Terway's per-pod
// features and veni's own); the rest are not mirrored.
var annotationPrefixes = []string{"k8s.aliyun.com/", "network.alibabacloud.com/", "veni.io/", "kubernetes.io/ingress-bandwidth", "kubernetes.io/egress-bandwidth"}

// mirror writes what the informers see into the store, batched.
type mirror struct {
	db  store.File
	log *slog.Logger

	mu   sync.Mutex
	pods map[string]*store.Pod // key → record, nil: delete
	nss  map[string]*store.Namespace
	pols map[string]*store.Policy
	wake chan struct{}

	// synced is set once the mirror was rewritten from synced informers:
	// from then on a pod missing from it is not on this node.
	synced atomic.Bool
}

func newMirror(db store.File, log *slog.Logger) *mirror {
	return &mirror{
		db: db, log: log, wake: make(chan struct{}, 1),
		pods: make(map[string]*store.Pod), nss: make(map[string]*store.Namespace), pols: make(map[string]*store.Policy),
	}
}

func (m *mirror) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mirror) pod(p *kube.Pod) {
	rec := podRecord(p)
	m.mu.Lock()
	m.pods[store.PodKey(p.Namespace, p.Name)] = &rec
	m.mu.Unlock()
	m.poke()
}

func (m *mirror) podGone(namespace, name string) {
	m.mu.Lock()
	m.pods[store.PodKey(namespace, name)] = nil
	m.mu.Unlock()
	m.poke()
}

func (m *mirror) namespace(n *kube.Namespace) {
	rec := store.Namespace{Name: n.Name, Labels: n.Labels}
	m.mu.Lock()
	m.nss[n.Name] = &rec
	m.mu.Unlock()
	m.poke()
}

func (m *mirror) namespaceGone(name string) {
	m.mu.Lock()
	m.nss[name] = nil
	m.mu.Unlock()
	m.poke()
}

func (m *mirror) policy(p *kube.NetworkPolicy) {
	raw, err := json.Marshal(p)
	if err != nil {
		m.log.Warn("mirror network policy", "policy", p.Key(), "err", err)
		return
	}
	rec := store.Policy{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Raw: raw}
	m.mu.Lock()
	m.pols[store.PodKey(p.Namespace, p.Name)] = &rec
	m.mu.Unlock()
	m.poke()
}

func (m *mirror) policyGone(namespace, name string) {
	m.mu.Lock()
	m.pols[store.PodKey(namespace, name)] = nil
	m.mu.Unlock()
	m.poke()
}

// run flushes pending changes every flushEvery. Once all three informers
// have synced it rewrites the whole mirror from their caches, so records
// of objects deleted while the daemon was down go too.
func (m *mirror) run(ctx context.Context, podsSynced, nssSynced, polsSynced func() bool,
	snapshot func() ([]*kube.Pod, []*kube.Namespace, []*kube.NetworkPolicy)) error {
	rewritten := false
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-t.C:
		}
		if !rewritten && podsSynced() && nssSynced() && polsSynced() {
			pods, nss, pols := snapshot()
			if err := m.replace(pods, nss, pols); err != nil {
				m.log.Warn("rewrite the kubernetes mirror", "err", err)
				continue
			}
			rewritten = true
			m.synced.Store(true)
			continue
		}
		if err := m.flush(); err != nil {
			m.log.Warn("write the kubernetes mirror", "err", err)
		}
		// Batch what arrives next.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(flushEvery):
		}
	}
}

// flush writes the pending changes in one transaction. On failure they stay
// pending (a newer change of the same object replaces its entry).
func (m *mirror) flush() error {
	m.mu.Lock()
	pods, nss, pols := m.pods, m.nss, m.pols
	m.pods, m.nss, m.pols = make(map[string]*store.Pod), make(map[string]*store.Namespace), make(map[string]*store.Policy)
	m.mu.Unlock()
	if len(pods)+len(nss)+len(pols) == 0 {
		return nil
	}
	now := time.Now()
	err := m.db.Update(func(tx *store.WriteTx) error {
		for key, p := range pods {
			ns, name, _ := strings.Cut(key, "/")
			if p == nil {
				if err := tx.DeleteMirrorPod(ns, name); err != nil {
					return err
				}
				continue
			}
			p.Mirrored = now
			if err := tx.PutMirrorPod(*p); err != nil {
				return err
			}
		}
		for name, n := range nss {
			if n == nil {
				if err := tx.DeleteMirrorNamespace(name); err != nil {
					return err
				}
				continue
			}
			if err := tx.PutMirrorNamespace(*n); err != nil {
				return err
			}
		}
		for key, p := range pols {
			ns, name, _ := strings.Cut(key, "/")
			if p == nil {
				if err := tx.DeleteMirrorPolicy(ns, name); err != nil {
					return err
				}
				continue
			}
			if err := tx.PutMirrorPolicy(*p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.requeue(pods, nss, pols)
	}
	return err
}

// requeue puts back changes a failed flush did not write, unless a newer
// change of the same object arrived meanwhile.
func (m *mirror) requeue(pods map[string]*store.Pod, nss map[string]*store.Namespace, pols map[string]*store.Policy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range pods {
		if _, ok := m.pods[k]; !ok {
			m.pods[k] = v
		}
	}
	for k, v := range nss {
		if _, ok := m.nss[k]; !ok {
			m.nss[k] = v
		}
	}
	for k, v := range pols {
		if _, ok := m.pols[k]; !ok {
			m.pols[k] = v
		}
	}
}

// replace makes the mirror exactly the informers' caches, in one
// transaction, and drops what was pending (the caches include it).
func (m *mirror) replace(pods []*kube.Pod, nss []*kube.Namespace, pols []*kube.NetworkPolicy) error {
	m.mu.Lock()
	m.pods, m.nss, m.pols = make(map[string]*store.Pod), make(map[string]*store.Namespace), make(map[string]*store.Policy)
	m.mu.Unlock()
	now := time.Now()
	return m.db.Update(func(tx *store.WriteTx) error {
		keepPods := make(map[string]bool, len(pods))
		for _, p := range pods {
			rec := podRecord(p)
			rec.Mirrored = now
			keepPods[store.PodKey(p.Namespace, p.Name)] = true
			if err := tx.PutMirrorPod(rec); err != nil {
				return err
			}
		}
		old, err := tx.MirrorPods()
		if err != nil {
			return err
		}
		for _, p := range old {
			if !keepPods[store.PodKey(p.Namespace, p.Name)] {
				if err := tx.DeleteMirrorPod(p.Namespace, p.Name); err != nil {
					return err
				}
			}
		}
		keepNS := make(map[string]bool, len(nss))
		for _, n := range nss {
			keepNS[n.Name] = true
			if err := tx.PutMirrorNamespace(store.Namespace{Name: n.Name, Labels: n.Labels}); err != nil {
				return err
			}
		}
		oldNS, err := tx.MirrorNamespaces()
		if err != nil {
			return err
		}
		for _, n := range oldNS {
			if !keepNS[n.Name] {
				if err := tx.DeleteMirrorNamespace(n.Name); err != nil {
					return err
				}
			}
		}
		keepPol := make(map[string]bool, len(pols))
		for _, p := range pols {
			raw, err := json.Marshal(p)
			if err != nil {
				return err
			}
			keepPol[store.PodKey(p.Namespace, p.Name)] = true
			if err := tx.PutMirrorPolicy(store.Policy{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Raw: raw}); err != nil {
				return err
			}
		}
		oldPol, err := tx.MirrorPolicies()
		if err != nil {
			return err
		}
		for _, p := range oldPol {
			if !keepPol[store.PodKey(p.Namespace, p.Name)] {
				if err := tx.DeleteMirrorPolicy(p.Namespace, p.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// podRecord is what the mirror keeps of a pod.
func podRecord(p *kube.Pod) store.Pod {
	rec := store.Pod{
		Namespace: p.Namespace, Name: p.Name, UID: p.UID, Labels: p.Labels,
		HostNetwork: p.Spec.HostNetwork, Phase: p.Status.Phase, Created: p.CreationTimestamp.Time,
		Stateful: slices.ContainsFunc(p.OwnerReferences, func(o kube.OwnerReference) bool { return o.Kind == "StatefulSet" }),
	}
	for k, v := range p.Annotations {
		for _, prefix := range annotationPrefixes {
			if strings.HasPrefix(k, prefix) {
				if rec.Annotations == nil {
					rec.Annotations = make(map[string]string)
				}
				rec.Annotations[k] = v
				break
			}
		}
	}
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			proto := port.Protocol
			if proto == "" {
				proto = "TCP"
			}
			rec.Ports = append(rec.Ports, store.PodPort{Name: port.Name, Port: port.ContainerPort, Protocol: proto})
		}
	}
	return rec
}

// trimPod drops what neither the mirror nor the reporter reads before the
// informer caches the pod.
func trimPod(p *kube.Pod) {
	delete(p.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	// Only whether a StatefulSet owns it is read (podRecord).
	p.OwnerReferences = slices.DeleteFunc(p.OwnerReferences, func(o kube.OwnerReference) bool { return o.Kind != "StatefulSet" })
	p.Finalizers = nil
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Image = ""
	}
}

// trimMeta drops the kubectl copy of a whole object from any cached object.
func trimMeta[T any](obj *T) {
	if m, ok := any(obj).(interface{ Meta() *kube.ObjectMeta }); ok {
		delete(m.Meta().Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	}
}
