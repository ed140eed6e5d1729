package commands

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/pods"
)

type simConnectivityOptions struct {
	*simGlobalOptions
	timeout   time.Duration
	protos    string
	ports     []int
	fromNodes bool
	output    string
}

func (o *simConnectivityOptions) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.timeout, "timeout", 3*time.Second, "per probe")
	fs.StringVar(&o.protos, "proto", "tcp", "protocols to probe, comma-separated: tcp, udp, sctp")
	fs.IntSliceVar(&o.ports, "port", []int{pods.ProbePort}, "ports to probe (repeat or comma-separate for more)")
	fs.BoolVar(&o.fromNodes, "from-nodes", false, "probe from each node's own network namespace to every pod too")
	fs.StringVarP(&o.output, "output", "o", "table", "table or json (a matrix for programs: sources, targets, probes, one result per probe)")
}

func newSimConnectivityCommand(g *simGlobalOptions) *cobra.Command {
	o := &simConnectivityOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "connectivity",
		Short: "Probe every pod from every other pod (and node) and print the matrix; exit 1 if a probe fails",
		Long: `Probe every pod from every other pod (with --from-nodes, from every node
too) over each --proto to each --port, and print the matrix; exit 1 if a
probe fails.

tcp and udp send a line to an echo server the command starts in each pod
and check the echo. sctp is probed with raw IP sockets (protocol 132)
inside the namespaces, because kernels without the sctp module (like the
sim's usual host) have no SCTP sockets: the prober sends an INIT chunk
(with its CRC32c) and a pod's raw-socket server answers it with an ABORT;
an INIT-ACK or ABORT back from the pod means reached.

The probes are real packets through the simulated VPC, so its security
groups apply: a flow the pods' ENIs' groups do not allow shows as failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", o.timeout)
			}
			protos, err := pods.ParseProtocols(o.protos)
			if err != nil {
				return fmt.Errorf("--proto: %w", err)
			}
			for _, p := range o.ports {
				if p < 1 || p > 65535 {
					return fmt.Errorf("--port %d: want 1-65535", p)
				}
			}
			if o.output != "table" && o.output != "json" {
				return fmt.Errorf("--output %q: want table or json", o.output)
			}
			po := cluster.ProbeOptions{Timeout: o.timeout, Protocols: protos, Ports: o.ports, FromNodes: o.fromNodes}
			return cluster.Connectivity(cmd.Context(), cmd.OutOrStdout(), o.dir, po, o.output == "json")
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
