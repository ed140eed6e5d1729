package commands

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

func newSimExecCommand(g *simGlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE -- CMD [ARG...]",
		Short: "Run a command inside a node's network namespace (the node's view of the VPC)",
		Long: `Run CMD in the network namespace of NODE (a node name such as node-1, its
instance id or its namespace name), with the environment kept and /sys
showing the node's interfaces, like "ip netns exec". The command replaces
veni, so its exit code is the exit code.`,
		Example: "  veni sim exec node-1 -- ip -br addr\n  veni sim exec node-1 -- veni eni list --endpoint 100.100.0.10 --scheme http",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash != 1 {
				return errors.New("usage: veni sim exec NODE -- CMD [ARG...]")
			}
			return cluster.Exec(g.dir, args[0], args[1:])
		},
	}
}
