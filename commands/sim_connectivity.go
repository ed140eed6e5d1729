package commands

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simConnectivityOptions struct {
	*simGlobalOptions
	timeout time.Duration
}

func (o *simConnectivityOptions) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.timeout, "timeout", 3*time.Second, "per connection")
}

func newSimConnectivityCommand(g *simGlobalOptions) *cobra.Command {
	o := &simConnectivityOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "connectivity",
		Short: "Open a TCP connection between every pair of the sim's pods and print the matrix; exit 1 if one fails",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", o.timeout)
			}
			return cluster.Connectivity(cmd.Context(), cmd.OutOrStdout(), o.dir, o.timeout)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
