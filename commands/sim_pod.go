package commands

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simPodOptions struct {
	*simGlobalOptions
	namespace   string
	labels      string
	annotations string
	ports       []string
	sendUDP     string
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
			labels, err := cluster.ParseLabels(o.labels)
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			annotations, err := cluster.ParseAnnotations(o.annotations)
			if err != nil {
				return fmt.Errorf("--annotations: %w", err)
			}
			var ports []cluster.PodPort
			for _, p := range o.ports {
				port, err := cluster.ParsePodPort(p)
				if err != nil {
					return fmt.Errorf("--port: %w", err)
				}
				ports = append(ports, port)
			}
			var to netip.AddrPort
			if o.sendUDP != "" {
				if to, err = netip.ParseAddrPort(o.sendUDP); err != nil || !to.Addr().Is4() {
					return fmt.Errorf("--send-udp %q: want IPv4:port", o.sendUDP)
				}
			}
			spec := cluster.PodSpec{Labels: labels, Annotations: annotations, Ports: ports}
			return cluster.PodAdd(cmd.Context(), cmd.OutOrStdout(), o.dir, args[0], o.namespace, args[1], spec, to)
		},
	}
	add.Flags().StringVar(&o.labels, "labels", "", "the pod's labels, for NetworkPolicy and PodNetworking selectors: app=web,tier=front")
	add.Flags().StringVar(&o.annotations, "annotations", "", "the pod's annotations: k8s.aliyun.com/pod-ip-reservation=true keeps its address for it when it goes (k=v,k2=v2)")
	add.Flags().StringVar(&o.sendUDP, "send-udp", "", "from the first instant the pod's namespace routes (during its ADD), send numbered UDP datagrams to IP:PORT every ms for 1s: tests that NetworkPolicy holds from a pod's first packet")
	add.Flags().StringArrayVar(&o.ports, "port", nil, "a container port, for named ports in policies: http:8080/TCP (repeat for more)")
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
	label := &cobra.Command{
		Use:   "label NODE NAME KEY=VALUE|KEY- ...",
		Short: "Set (k=v) or remove (k-) labels of a sim pod; every node's policy sees the change",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := cluster.PodLabel(o.dir, args[0], o.namespace, args[1], args[2:])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s/%s labels: %v\n", o.namespace, args[1], labels)
			return err
		},
	}
	o.AddFlags(add.Flags())
	o.AddFlags(del.Flags())
	o.AddFlags(label.Flags())
	cmd.AddCommand(add, del, list, label)
	return cmd
}

func newSimPolicyCommand(g *simGlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Apply and delete NetworkPolicies and PodNetworkings on every simulated node (the nodes' manifest folder)",
	}
	apply := &cobra.Command{
		Use:   "apply FILE",
		Short: "Check FILE's NetworkPolicies, PodNetworkings (and Namespaces) and give them to every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := cluster.PolicyApply(g.dir, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "applied %s\n", names)
			return err
		},
	}
	del := &cobra.Command{
		Use:   "delete FILE",
		Short: "Remove what apply FILE gave the nodes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.PolicyDelete(g.dir, args[0])
		},
	}
	cmd.AddCommand(apply, del)
	return cmd
}

func newSimNamespaceCommand(g *simGlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "namespace",
		Short: "Label the sim's Kubernetes namespaces, for NetworkPolicy namespaceSelectors",
	}
	label := &cobra.Command{
		Use:   "label NAMESPACE KEY=VALUE|KEY- ...",
		Short: "Set (k=v) or remove (k-) labels of a namespace; every node's policy sees the change",
		Long: `Set (k=v) or remove (k-) labels of a namespace; every node's policy sees the
change. Do not also give this namespace's labels in a file applied with
"veni sim policy apply": the nodes would read two Namespace objects.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := cluster.NamespaceLabel(g.dir, args[0], args[1:])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "namespace %s labels: %v\n", args[0], labels)
			return err
		},
	}
	cmd.AddCommand(label)
	return cmd
}
