package commands

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simServeOptions struct {
	*simGlobalOptions
	topo simTopologyOptions
	spec string
}

func (o *simServeOptions) AddFlags(fs *pflag.FlagSet) {
	o.topo.AddFlags(fs)
	fs.StringVar(&o.spec, "spec", "", "spec.json written by veni sim up (overrides the topology flags)")
}

// newSimServeCommand is the long-running server behind "veni sim up";
// users start it through "up", which detaches it and waits for it.
func newSimServeCommand(g *simGlobalOptions) *cobra.Command {
	o := &simServeOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run the simulated VPC in the foreground (started by veni sim up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := o.topo.toSpec()
			if o.spec != "" {
				spec, err = cluster.ReadSpec(o.spec)
			}
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("sim", o.name)
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return cluster.Serve(ctx, cluster.ServeOptions{Dir: o.dir, Name: o.name, Spec: spec, Log: log})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
