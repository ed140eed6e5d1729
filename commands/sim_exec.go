package commands

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
)

type simExecOptions struct {
	*simGlobalOptions
}

func newSimExecCommand(g *simGlobalOptions) *cobra.Command {
	o := &simExecOptions{simGlobalOptions: g}
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
			return runSimExec(cmd.ErrOrStderr(), o, args[0], args[1:])
		},
	}
}

func runSimExec(_ io.Writer, o *simExecOptions, node string, argv []string) error {
	st, err := runningSim(o.dir)
	if err != nil {
		return err
	}
	n, err := findSimNode(st, node)
	if err != nil {
		return err
	}
	return execInNetNS(n.NetNSPath, argv)
}
