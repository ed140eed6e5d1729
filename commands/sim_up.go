package commands

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/cluster"
)

// simTopologyOptions are the flags that describe the sim to build; "up"
// and "serve" share them.
type simTopologyOptions struct {
	spec       cluster.Spec
	vswitches  string
	nodeConfig []string
	kubeconfig string
}

func (o *simTopologyOptions) AddFlags(fs *pflag.FlagSet) {
	d := cluster.DefaultSpec()
	fs.IntVar(&o.spec.Nodes, "nodes", d.Nodes, "number of nodes (ECS instances), named node-1 … node-N")
	fs.StringVar(&o.spec.InstanceType, "instance-type", d.InstanceType, "instance type of every node (sets its ENI and IP quotas)")
	fs.StringVar(&o.vswitches, "vswitches", "", "vSwitches as id=cidr[@zone],... inside 172.30.0.0/16 (default vsw-sim-a=172.30.1.0/24,vsw-sim-b=172.30.2.0/24); nodes go round-robin over them")
	fs.DurationVar(&o.spec.AttachDelay, "attach-delay", d.AttachDelay, "how long an ENI stays Attaching")
	fs.IntVar(&o.spec.MinPoolSize, "min-pool-size", d.MinPoolSize, "min_pool_size of every node's veni config: idle addresses the daemon keeps")
	fs.IntVar(&o.spec.MaxPoolSize, "max-pool-size", d.MaxPoolSize, "max_pool_size of every node's veni config: idle addresses above it are reclaimed")
	fs.BoolVar(&o.spec.Daemons, "daemons", d.Daemons, "run a veni daemon in every node (false: the CNI plugin alone, cold path included)")
	fs.StringVar(&o.spec.Datapath, "datapath", "", "datapath of every node's veni config (default: veni's default)")
	fs.StringArrayVar(&o.nodeConfig, "node-config", nil, "extra field of every node's veni config as key=value (value parsed as JSON when it is JSON), e.g. idle_ip_reclaim_after=30s; repeatable")
	fs.DurationVar(&o.spec.DaemonSyncInterval, "daemon-sync-interval", d.DaemonSyncInterval, "the node daemons' --sync-interval")
	fs.IntVar(&o.spec.StartConcurrency, "start-concurrency", cluster.DefaultStartConcurrency, "how many nodes are set up at once")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "a Kubernetes API server the nodes' daemons join (server, CA and bearer token of its current context), reached from inside the VPC through a relay; each node is the Node named after it")
}

// toSpec validates the flags and returns the spec they describe.
func (o *simTopologyOptions) toSpec() (cluster.Spec, error) {
	s := o.spec
	if o.vswitches != "" {
		vsws, err := cluster.ParseVSwitches(o.vswitches, sim.DefaultConfig().VSwitches[0].ZoneID)
		if err != nil {
			return s, err
		}
		s.VSwitches = vsws
	}
	extra, err := cluster.ParseNodeConfig(o.nodeConfig)
	if err != nil {
		return s, err
	}
	s.NodeConfig = extra
	if o.kubeconfig != "" {
		k, err := cluster.ParseKubeconfig(o.kubeconfig)
		if err != nil {
			return s, err
		}
		s.Kube = &k
	}
	return s, s.Validate()
}

type simUpOptions struct {
	*simGlobalOptions
	topo    simTopologyOptions
	timeout time.Duration
}

func (o *simUpOptions) AddFlags(fs *pflag.FlagSet) {
	o.topo.AddFlags(fs)
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "how long to wait for the sim to be ready")
}

func newSimUpCommand(g *simGlobalOptions) *cobra.Command {
	o := &simUpOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the simulated VPC in the background and print how to use it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := o.topo.toSpec()
			if err != nil {
				return err
			}
			return cluster.Up(cmd.Context(), cmd.OutOrStdout(), cluster.UpOptions{
				Dir: o.dir, Name: o.name, Spec: spec, Timeout: o.timeout, Progress: cmd.ErrOrStderr(),
			})
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
