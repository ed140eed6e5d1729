package kubesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/store"
)

// DefaultNamespace is where veni's ConfigMaps and its sweeper's Lease live.
const DefaultNamespace = "kube-system"

// Options describe one node's Kubernetes side.
type Options struct {
	// Client talks to the API server for the informers and patches.
	Client *kube.Client
	// Events, when set, is the event recorder's own client, so an event
	// storm cannot use up the informers' request budget.
	Events *kube.Client
	// NodeName is this node's Node object.
	NodeName string
	// Namespace holds the config ConfigMaps and the sweeper's Lease; ""
	// means DefaultNamespace.
	Namespace string
	// Store is the node's store.
	Store store.File
	// ConfigPath is the node's veni.json; cluster.json is written beside
	// it (node.ClusterLayerPath).
	ConfigPath string
	// Config returns the configuration the daemon runs with now.
	Config func() config.Config
	// Apply hands the daemon a configuration to run with (already checked:
	// only live fields differ from Config()).
	Apply func(config.Config)
	// Facts returns the node's facts (instance, limits) once known.
	Facts func() (store.NodeInfo, bool)
	// Cloud is used only by the elected sweeper; nil disables sweeping.
	Cloud eni.Client
	// Logger receives what happens; nil means slog.Default().
	Logger *slog.Logger
	// PeerPods, when set, watches every pod of the cluster (not only this
	// node's) for NetworkPolicy peers, and is called on each change. The
	// pods are kept in memory (PeerPodList), never in the store.
	PeerPods func()
}

// Sync is a running node's Kubernetes side.
type Sync struct {
	opts Options
	log  *slog.Logger
	rec  *kube.Recorder

	node  *kube.Informer[kube.Node]
	pods  *kube.Informer[kube.Pod]
	nss   *kube.Informer[kube.Namespace]
	pols  *kube.Informer[kube.NetworkPolicy]
	pns   *kube.Informer[kube.PodNetworking] // run only while the CRD is served
	cms   *kube.Informer[kube.ConfigMap]
	peers *kube.Informer[kube.Pod] // every pod, when Options.PeerPods is set
	kicks chan struct{}

	mirror *mirror

	mu          sync.Mutex
	conditions  map[string]kube.NodeCondition // as last written by us
	annotations map[string]string             // node annotations as last written by us
	podIPs      map[string]string             // pod key → the annotations it was last patched with (pod-ips, pod-eni, pod-networking)
	layer       []byte                        // the cluster layer as last written
	configErr   string                        // why the last cluster config was refused, "" if none

	sweepAfter, sweepEvery time.Duration // sweepAfter and sweepEvery; tests shorten them
}

// New prepares the node's Kubernetes side; Run starts it.
func New(opts Options) (*Sync, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("kubesync: no kube client")
	case opts.NodeName == "":
		return nil, errors.New("kubesync: no node name (set --node-name or NODE_NAME)")
	case opts.Config == nil || opts.Apply == nil || opts.Facts == nil:
		return nil, errors.New("kubesync: Config, Apply and Facts are required")
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Events == nil {
		opts.Events = opts.Client
	}
	s := &Sync{
		opts: opts, log: opts.Logger.With("component", "kube"),
		kicks:       make(chan struct{}, 1),
		conditions:  make(map[string]kube.NodeCondition),
		annotations: make(map[string]string),
		podIPs:      make(map[string]string),
		sweepAfter:  sweepAfter,
		sweepEvery:  sweepEvery,
	}
	s.rec = kube.NewRecorder(opts.Events, kube.RecorderOptions{Component: "veni", Host: opts.NodeName, Logger: s.log})
	s.mirror = newMirror(opts.Store, s.log)
	s.node = kube.NewInformer(opts.Client, kube.Nodes, kube.InformerOptions[kube.Node]{
		FieldSelector: "metadata.name=" + opts.NodeName, Logger: s.log,
		Handler: kube.EventHandler[kube.Node]{
			OnAdd:    func(*kube.Node, bool) { s.kick() },
			OnUpdate: func(_, _ *kube.Node) { s.kick() },
		},
	})
	s.pods = kube.NewInformer(opts.Client, kube.Pods, kube.InformerOptions[kube.Pod]{
		FieldSelector: "spec.nodeName=" + opts.NodeName, Logger: s.log, Transform: trimPod,
		Handler: kube.EventHandler[kube.Pod]{
			OnAdd:    func(p *kube.Pod, _ bool) { s.mirror.pod(p) },
			OnUpdate: func(_, p *kube.Pod) { s.mirror.pod(p) },
			OnDelete: func(p *kube.Pod) { s.mirror.podGone(p.Namespace, p.Name) },
		},
	})
	s.nss = kube.NewInformer(opts.Client, kube.Namespaces, kube.InformerOptions[kube.Namespace]{
		Logger: s.log, Transform: trimMeta[kube.Namespace],
		Handler: kube.EventHandler[kube.Namespace]{
			OnAdd:    func(n *kube.Namespace, _ bool) { s.mirror.namespace(n) },
			OnUpdate: func(_, n *kube.Namespace) { s.mirror.namespace(n) },
			OnDelete: func(n *kube.Namespace) { s.mirror.namespaceGone(n.Name) },
		},
	})
	s.pols = kube.NewInformer(opts.Client, kube.NetworkPolicies, kube.InformerOptions[kube.NetworkPolicy]{
		Logger: s.log, Transform: trimMeta[kube.NetworkPolicy],
		Handler: kube.EventHandler[kube.NetworkPolicy]{
			OnAdd:    func(p *kube.NetworkPolicy, _ bool) { s.mirror.policy(p) },
			OnUpdate: func(_, p *kube.NetworkPolicy) { s.mirror.policy(p) },
			OnDelete: func(p *kube.NetworkPolicy) { s.mirror.policyGone(p.Namespace, p.Name) },
		},
	})
	s.pns = kube.NewInformer(opts.Client, kube.PodNetworkings, kube.InformerOptions[kube.PodNetworking]{
		Logger: s.log, Transform: trimMeta[kube.PodNetworking],
		Handler: kube.EventHandler[kube.PodNetworking]{
			OnAdd:    func(p *kube.PodNetworking, _ bool) { s.putPodNetworking(p.Name, p) },
			OnUpdate: func(_, p *kube.PodNetworking) { s.putPodNetworking(p.Name, p) },
			OnDelete: func(p *kube.PodNetworking) { s.putPodNetworking(p.Name, nil) },
		},
	})
	if opts.PeerPods != nil {
		changed := func() { opts.PeerPods() }
		s.peers = kube.NewInformer(opts.Client, kube.Pods, kube.InformerOptions[kube.Pod]{
			Logger: s.log, Transform: trimPod,
			Handler: kube.EventHandler[kube.Pod]{
				OnAdd:    func(*kube.Pod, bool) { changed() },
				OnUpdate: func(_, _ *kube.Pod) { changed() },
				OnDelete: func(*kube.Pod) { changed() },
			},
		})
	}
	s.cms = kube.NewInformer(opts.Client, kube.ConfigMaps, kube.InformerOptions[kube.ConfigMap]{
		Namespace: opts.Namespace, Logger: s.log,
		Handler: kube.EventHandler[kube.ConfigMap]{
			OnAdd:    func(*kube.ConfigMap, bool) { s.kick() },
			OnUpdate: func(_, _ *kube.ConfigMap) { s.kick() },
			OnDelete: func(*kube.ConfigMap) { s.kick() },
		},
	})
	return s, nil
}

// Informers returns each informer's statistics by resource, for metrics.
func (s *Sync) Informers() map[string]func() kube.InformerStats {
	return map[string]func() kube.InformerStats{
		"nodes": s.node.Stats, "pods": s.pods.Stats, "namespaces": s.nss.Stats,
		"networkpolicies": s.pols.Stats, "configmaps": s.cms.Stats, "podnetworkings": s.pns.Stats,
	}
}

// PeerPodList returns every pod of the cluster as the peer informer last
// saw it, and whether it has synced; nil, false without Options.PeerPods.
func (s *Sync) PeerPodList() ([]*kube.Pod, bool) {
	if s.peers == nil {
		return nil, false
	}
	return s.peers.List(), s.peers.HasSynced()
}

// MirrorSynced reports whether the store's Kubernetes mirror has been
// rewritten from synced pod, namespace and network policy informers.
func (s *Sync) MirrorSynced() bool { return s.mirror.synced.Load() }

// Notify tells the Kubernetes side the store changed (an ADD, a pool
// pass): it reports what is new. It never blocks.
func (s *Sync) Notify() { s.kick() }

func (s *Sync) kick() {
	select {
	case s.kicks <- struct{}{}:
	default:
	}
}

// Run runs the informers, the mirror and the reporter until ctx ends.
// The API server being down does not stop it: informers retry with
// back-off and the node keeps working from the store.
func (s *Sync) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("stopped", "part", name, "err", err)
			}
		})
	}
	run("recorder", s.rec.Run)
	run("node informer", s.node.Run)
	run("pod informer", s.pods.Run)
	run("namespace informer", s.nss.Run)
	run("networkpolicy informer", s.pols.Run)
	run("configmap informer", s.cms.Run)
	run("podnetworking informer", s.runPodNetworkings)
	if s.peers != nil {
		run("peer pod informer", s.peers.Run)
	}
	run("mirror", func(ctx context.Context) error {
		return s.mirror.run(ctx, s.pods.HasSynced, s.nss.HasSynced, s.pols.HasSynced, s.snapshot)
	})
	run("reporter", s.report)
	run("sweeper", s.campaign)
	wg.Wait()
	return nil
}

// snapshot is what the informers hold, for the mirror's full rewrite once
// they have synced.
func (s *Sync) snapshot() ([]*kube.Pod, []*kube.Namespace, []*kube.NetworkPolicy) {
	return s.pods.List(), s.nss.List(), s.pols.List()
}

// report runs on every kick (store writes, informer changes) and every 30
// s: config layers, pod-ips annotations, events from the store's log, node
// conditions and annotations.
func (s *Sync) report(ctx context.Context) error {
	cursor, err := lastSeq(s.opts.Store)
	if err != nil {
		s.log.Warn("read the event log; reporting from its start", "err", err)
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kicks:
		case <-tick.C:
		}
		if !s.node.HasSynced() {
			continue
		}
		s.syncConfig(ctx)
		cursor = s.relayEvents(ctx, cursor)
		s.syncPodIPs(ctx)
		s.syncNode(ctx)
	}
}

// nodeRef is this node as events name it.
func (s *Sync) nodeRef() kube.ObjectReference {
	ref := kube.ObjectReference{Kind: "Node", Name: s.opts.NodeName, APIVersion: "v1"}
	if n, ok := s.node.Get("", s.opts.NodeName); ok {
		ref.UID = n.UID
	}
	return ref
}

func lastSeq(db store.File) (uint64, error) {
	var seq uint64
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		seq, err = tx.LastEventSeq()
		return err
	})
	return seq, err
}

// errorf logs and records a warning event on the node.
func (s *Sync) nodeWarning(reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn(msg, "reason", reason)
	s.rec.Event(s.nodeRef(), kube.EventTypeWarning, reason, msg)
}
