package commands

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/daemon"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/telemetry"
)

type daemonOptions struct {
	config       string
	syncInterval time.Duration
	logLevel     string
	kubeconfig   string
	nodeName     string
	cniConfDir   string
	mtu          int
}

func (o *daemonOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.config, "config", envOr("VENI_CONFIG", node.DefaultConfigPath), "node configuration file (eni_conf fields plus veni's own) [$VENI_CONFIG]")
	fs.DurationVar(&o.syncInterval, "sync-interval", daemon.DefaultSyncInterval, "how often the pool is reconciled with the cloud when nothing else wakes the daemon")
	fs.StringVar(&o.logLevel, "log-level", envOr("VENI_LOG_LEVEL", "info"), "debug, info, warn or error [$VENI_LOG_LEVEL]")
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster the node belongs to; empty: the in-cluster service account when running in a pod, else no Kubernetes side [$KUBECONFIG]")
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's Node object (default: the host name) [$NODE_NAME]")
	fs.StringVar(&o.cniConfDir, "cni-conf-dir", "", "write 10-veni.conflist here once the daemon is ready (its first pass done), so the runtime sends no pod to veni before (the DaemonSet's order)")
	fs.IntVar(&o.mtu, "mtu", 0, "pod interface MTU written to that conflist (0: the ENI's)")
}

func newDaemonCommand() *cobra.Command {
	o := &daemonOptions{}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node daemon: keep the IP pool warm, reconcile with the cloud, collect leaked addresses",
		Long: `The node daemon keeps idle pod addresses between min_pool_size and
max_pool_size, reclaims addresses idle longer than idle_ip_reclaim_after,
deletes empty ENIs veni created, and releases addresses whose pod is gone.
It wakes on a timer and when the store is written. The CNI plugin does not
need it for a warm ADD. Stop it with SIGTERM; pods keep their addresses.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level, err := parseLevel(o.logLevel)
			if err != nil {
				return err
			}
			return runDaemon(cmd.Context(), o, level)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runDaemon(ctx context.Context, o *daemonOptions, level slog.Level) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	env, err := node.Load(o.config)
	if err != nil {
		return err
	}
	kopts, err := o.kube(log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var ready func()
	if o.cniConfDir != "" {
		ready = func() {
			if err := writeConflist(io.Discard, o.cniConfDir, env.ConfigPath, o.mtu); err != nil {
				log.Error("write the CNI conflist: the runtime will not use veni until it exists", "dir", o.cniConfDir, "err", err)
				return
			}
			log.Info("ready: CNI conflist written", "dir", o.cniConfDir)
		}
	}
	return daemon.New(env, daemon.Options{SyncInterval: o.syncInterval, Logger: log, Kube: kopts, OnReady: ready, NodeName: o.nodeName,
		Build: telemetry.Build{Version: version, Commit: commit}}).Run(ctx)
}

// kube connects the daemon to its cluster: the kubeconfig it was given,
// else the pod's service account when it runs in a cluster, else nothing
// (a standalone node: pods still get addresses).
func (o *daemonOptions) kube(log *slog.Logger) (daemon.KubeOptions, error) {
	var (
		cfg *kube.Config
		err error
	)
	switch {
	case o.kubeconfig != "":
		cfg, err = kube.LoadKubeconfig(o.kubeconfig, "")
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = kube.InClusterConfig()
	default:
		log.Info("no kubeconfig and not in a cluster: the node runs standalone (no pod annotations, events, conditions or cluster config)")
		return daemon.KubeOptions{}, nil
	}
	if err != nil {
		return daemon.KubeOptions{}, fmt.Errorf("kubernetes: %w", err)
	}
	name := o.nodeName
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return daemon.KubeOptions{}, fmt.Errorf("node name: none given (--node-name, NODE_NAME) and no host name: %w", err)
		}
	}
	client, err := kube.New(cfg)
	if err != nil {
		return daemon.KubeOptions{}, fmt.Errorf("kubernetes: %w", err)
	}
	// Events get their own client (and request budget): an event storm
	// must not starve the informers.
	events, err := kube.New(cfg)
	if err != nil {
		return daemon.KubeOptions{}, fmt.Errorf("kubernetes: %w", err)
	}
	log.Info("kubernetes", "server", client.Host(), "node", name)
	return daemon.KubeOptions{Client: client, Events: events, NodeName: name}, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
