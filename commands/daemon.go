package commands

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/daemon"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/telemetry"
)

type daemonOptions struct {
	config       string
	syncInterval time.Duration
	logLevel     string
}

func (o *daemonOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.config, "config", envOr("VENI_CONFIG", node.DefaultConfigPath), "node configuration file (eni_conf fields plus veni's own) [$VENI_CONFIG]")
	fs.DurationVar(&o.syncInterval, "sync-interval", daemon.DefaultSyncInterval, "how often the pool is reconciled with the cloud when nothing else wakes the daemon")
	fs.StringVar(&o.logLevel, "log-level", envOr("VENI_LOG_LEVEL", "info"), "debug, info, warn or error [$VENI_LOG_LEVEL]")
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
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return daemon.New(env, daemon.Options{SyncInterval: o.syncInterval, Logger: log, Build: telemetry.Build{Version: version, Commit: commit}}).Run(ctx)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
