package daemon

import (
	"context"
	"sync"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/kubesync"
	"github.com/veni-cni/veni/store"
)

// KubeOptions connect the daemon to its cluster. The zero value runs the
// node standalone (no Kubernetes side: pods still get addresses).
type KubeOptions struct {
	Client   *kube.Client // informers and writes
	Events   *kube.Client // the event recorder's own client; nil: Client
	NodeName string
}

// kubeSide is the daemon's hold on its Kubernetes side.
type kubeSide struct {
	sync    *kubesync.Sync
	configs chan config.Config // cluster configurations to run with, from kubesync

	peers bool // kubesync watches every pod for NetworkPolicy peers

	mu    sync.Mutex
	cfg   config.Config // what the loop runs with, for kubesync's goroutines
	facts store.NodeInfo
	known bool
}

// startKube starts the Kubernetes side when the daemon has a cluster. It
// runs beside the loops and reaches them only through the store (what it
// reads) and the configs channel (live configuration).
func (d *Daemon) startKube(ctx context.Context, facts store.NodeInfo) {
	k := &d.kube
	k.configs = make(chan config.Config, 1)
	k.cfg, k.facts, k.known = d.env.Config, facts, true
	if d.opts.Kube.Client == nil {
		return
	}
	var peers func()
	if d.env.Config.PolicyEnabled() {
		peers = func() {
			select {
			case d.policyWake <- struct{}{}:
			default:
			}
		}
	}
	s, err := kubesync.New(kubesync.Options{
		PeerPods: peers,
		Client:   d.opts.Kube.Client, Events: d.opts.Kube.Events, NodeName: d.opts.Kube.NodeName,
		Store: d.env.Store, ConfigPath: d.env.ConfigPath, Cloud: d.env.Cloud(), Logger: d.log,
		Config: k.config,
		Apply: func(c config.Config) {
			select {
			case <-k.configs: // a newer one replaces one not yet taken
			default:
			}
			k.configs <- c
		},
		Facts: func() (store.NodeInfo, bool) {
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.facts, k.known
		},
	})
	if err != nil {
		d.log.Error("kubernetes side disabled", "err", err)
		return
	}
	k.sync = s
	k.peers = peers != nil
	for resource, stats := range s.Informers() {
		d.tel.RegisterInformer(resource, stats)
	}
	go func() { _ = s.Run(ctx) }()
}

func (k *kubeSide) config() config.Config {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cfg
}

// applyConfig runs on the loop: from the next pass on, the pool follows c.
func (d *Daemon) applyConfig(c config.Config) {
	changed := config.Changed(d.env.Config, c)
	d.env.Config = c
	d.kube.mu.Lock()
	d.kube.cfg = c
	d.kube.mu.Unlock()
	d.log.Info("config applied without a restart", "changed", changed)
}

// notifyKube tells the Kubernetes side the store changed.
func (d *Daemon) notifyKube() {
	if d.kube.sync != nil {
		d.kube.sync.Notify()
	}
}

// Informers returns the Kubernetes informers' statistics by resource, for
// metrics; empty on a standalone node.
func (d *Daemon) Informers() map[string]func() kube.InformerStats {
	if d.kube.sync == nil {
		return nil
	}
	return d.kube.sync.Informers()
}
