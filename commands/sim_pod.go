package commands

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simPodOptions struct {
	*simGlobalOptions
	namespace string
}

func (o *simPodOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.namespace, "namespace", "n", "default", "the pod's Kubernetes namespace")
}

func newSimPodCommand(g *simGlobalOptions) *cobra.Command {
	o := &simPodOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "pod",
		Short: "Add, delete and list pods on simulated nodes (through libcni, as containerd does)",
	}
	add := &cobra.Command{
		Use:   "add NODE NAME",
		Short: "Create a pod network namespace on NODE and run CNI ADD for it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.PodAdd(cmd.Context(), cmd.OutOrStdout(), o.dir, args[0], o.namespace, args[1])
		},
	}
	del := &cobra.Command{
		Use:   "del NODE NAME",
		Short: "Run CNI DEL for a pod and remove its network namespace",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.PodDel(cmd.Context(), o.dir, args[0], o.namespace, args[1])
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the sim's pods: node, IP, ENI, vSwitch, ADD latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cluster.PodList(cmd.Context(), cmd.OutOrStdout(), o.dir)
		},
	}
	o.AddFlags(add.Flags())
	o.AddFlags(del.Flags())
	cmd.AddCommand(add, del, list)
	return cmd
}
