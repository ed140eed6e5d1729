package commands

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simStatusOptions struct {
	*simGlobalOptions
	output string
}

func (o *simStatusOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
}

func newSimStatusCommand(g *simGlobalOptions) *cobra.Command {
	o := &simStatusOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the sim's nodes (ready, daemon, health, datapath), ENIs, vSwitches and OpenAPI calls",
		Long: `Shows every node with whether it is ready for pods (its CNI conflist
exists), its supervised veni daemon (pid, restarts) and its health and
datapath as "veni status -o json" reports them inside the node; then the
cloud's ENIs and vSwitches; then the OpenAPI's calls by action: each
action's quota per minute, this minute's calls, and the calls, throttles
(those over the account's quota apart), faults and errors so far, what is
refused until the next minute, and the last minutes' calls. -o json has
every minute of the last hour.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "text" && o.output != "json" {
				return fmt.Errorf("-o %q: want text or json", o.output)
			}
			return cluster.Status(cmd.Context(), cmd.OutOrStdout(), o.dir, o.output == "json")
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
