package commands

import (
	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

func newSimEnvCommand(g *simGlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "env NODE",
		Short: "Print the exports a libcni client needs to add pods on NODE",
		Long: `Prints CNI_PATH, NETCONFPATH and VENI_CONFIG for the node, so that

  eval "$(veni sim env node-1)"
  veni sim exec node-1 -- cnitool add veni /run/netns/mypod

adds a pod on node-1 with any libcni client (cnitool, containerd).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.Env(cmd.OutOrStdout(), g.dir, args[0])
		},
	}
}
