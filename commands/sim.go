package commands

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/eni/sim/fabric"
)

// simGlobalOptions locate one sim: its directory and the name its
// namespaces carry.
type simGlobalOptions struct {
	dir  string
	name string
}

func (o *simGlobalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dir, "dir", envOr("VENI_SIM_DIR", cluster.DefaultDir), "sim state directory (env VENI_SIM_DIR)")
	fs.StringVar(&o.name, "name", envOr("VENI_SIM_NAME", fabric.DefaultName), "sim name: prefix of its namespaces (env VENI_SIM_NAME)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newSimCommand() *cobra.Command {
	var g simGlobalOptions
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a simulated Alibaba Cloud VPC on this machine: cloud API, metadata, network fabric and nodes",
		Long: `A simulated VPC: the OpenAPI and metadata services, and a packet fabric of
network namespaces where each node is a namespace and each ENI a veth pair.
Nothing leaves the machine: the fabric has no uplink and the root namespace
blackholes the sim's addresses while it runs. Needs root.`,
	}
	g.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newSimUpCommand(&g),
		newSimServeCommand(&g),
		newSimStatusCommand(&g),
		newSimExecCommand(&g),
		newSimFaultCommand(&g),
		newSimQuotaCommand(&g),
		newSimDownCommand(&g),
		newSimPodCommand(&g),
		newSimPolicyCommand(&g),
		newSimNamespaceCommand(&g),
		newSimEnvCommand(&g),
		newSimConnectivityCommand(&g),
		newSimSGCommand(&g),
	)
	return cmd
}
