package commands

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simDownOptions struct {
	*simGlobalOptions
	grace time.Duration
}

func (o *simDownOptions) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.grace, "grace", 15*time.Second, "how long the server may take to stop before it is killed")
}

func newSimDownCommand(g *simGlobalOptions) *cobra.Command {
	o := &simDownOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the sim and remove everything it left (also after a crash); succeeds when nothing runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cluster.Down(cmd.Context(), cmd.OutOrStdout(), cluster.DownOptions{Dir: o.dir, Name: o.name, Grace: o.grace})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
