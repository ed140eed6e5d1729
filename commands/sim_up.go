package commands

import (
	"errors"
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
	quotasOn   bool
	quotas     []string
}

func (o *simTopologyOptions) AddFlags(fs *pflag.FlagSet) {
	d := cluster.DefaultSpec()
	fs.IntVar(&o.spec.Nodes, "nodes", d.Nodes, "number of nodes (ECS instances), named node-1 … node-N")
	fs.StringVar(&o.spec.InstanceType, "instance-type", d.InstanceType, "instance type of every node (sets its ENI and IP quotas)")
	fs.StringVar(&o.vswitches, "vswitches", "", "vSwitches as id=cidr[+ipv6/64][@zone],... inside 172.30.0.0/16 (default vsw-sim-a=172.30.1.0/24+fd00:ac1e:1::/64,vsw-sim-b=172.30.2.0/24); a +ipv6 /64 turns IPv6 on (ip_stack dual); nodes go round-robin over them")
	fs.DurationVar(&o.spec.AttachDelay, "attach-delay", d.AttachDelay, "how long an ENI stays Attaching")
	fs.IntVar(&o.spec.MinPoolSize, "min-pool-size", d.MinPoolSize, "min_pool_size of every node's veni config: idle addresses the daemon keeps")
	fs.IntVar(&o.spec.MaxPoolSize, "max-pool-size", d.MaxPoolSize, "max_pool_size of every node's veni config: idle addresses above it are reclaimed")
	fs.BoolVar(&o.spec.Daemons, "daemons", d.Daemons, "run a veni daemon in every node (false: the CNI plugin alone, cold path included)")
	fs.StringVar(&o.spec.Datapath, "datapath", "", "datapath of every node's veni config (default: veni's default)")
	fs.StringArrayVar(&o.spec.SecurityGroups, "security-group", nil, "another normal security group of the VPC (id sg-...), besides sg-sim-default which every node's primary ENI is in, for --node-config security_groups to name; repeatable")
	fs.StringArrayVar(&o.nodeConfig, "node-config", nil, "extra field of every node's veni config as key=value (value parsed as JSON when it is JSON), e.g. idle_ip_reclaim_after=30s; repeatable")
	fs.BoolVar(&o.spec.DaemonConflist, "daemon-conflist", false, "each node's daemon writes its CNI conflist once its first pass is done (veni daemon --cni-conf-dir), as veni's DaemonSet does, instead of the sim writing it at start-up; a node is READY once it exists")
	fs.DurationVar(&o.spec.DaemonSyncInterval, "daemon-sync-interval", d.DaemonSyncInterval, "the node daemons' --sync-interval")
	fs.IntVar(&o.spec.StartConcurrency, "start-concurrency", cluster.DefaultStartConcurrency, "how many nodes are set up at once")
	fs.BoolVar(&o.quotasOn, "api-quotas", true, "throttle the OpenAPI as Alibaba does: a budget per action per minute for the whole account, Throttling.User until the next minute once spent (false: never throttle)")
	fs.StringArrayVar(&o.quotas, "api-quota", nil, "budget of one action as ACTION=N calls per window, over the defaults (DescribeNetworkInterfaces 800, Create/Attach/DeleteNetworkInterface 500, DetachNetworkInterface and Assign/UnassignPrivateIpAddresses 400, DescribeVSwitches, DescribeInstanceTypes and TagResources 300); N=0 lifts it; repeatable")
	fs.IntVar(&o.spec.Quotas.Account, "api-quota-account", 0, "budget of every action together per window (0: none beyond the actions' own)")
	fs.DurationVar(&o.spec.Quotas.Window, "api-quota-window", sim.DefaultQuotaWindow, "length of a throttling window (Alibaba's is a minute)")
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
	if o.quotasOn {
		q := sim.DefaultQuotas()
		q.Account, q.Window = s.Quotas.Account, s.Quotas.Window
		q, err := cluster.ParseQuotas(q, o.quotas)
		if err != nil {
			return s, err
		}
		s.Quotas = q
	} else {
		if len(o.quotas) > 0 || s.Quotas.Account > 0 {
			return s, errors.New("--api-quota and --api-quota-account need --api-quotas")
		}
		s.Quotas = sim.Quotas{}
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
