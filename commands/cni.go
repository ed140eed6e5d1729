package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/store"
)

// cniVersions are the CNI spec versions veni's plugin speaks. STATUS and GC
// exist from 1.1.0 on; older runtimes simply never send them.
var cniVersions = cniversion.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// defaultAddTimeout bounds one ADD, cold path included. The runtime's own
// deadline is about two minutes (containerd); failing earlier with "try
// again later" lets kubelet retry instead of timing out and skipping DEL.
const defaultAddTimeout = 60 * time.Second

// NetConf is veni's entry in a CNI network configuration list.
type NetConf struct {
	types.NetConf

	// Config is the node configuration file (eni_conf fields plus veni's
	// own). Empty means node.DefaultConfigPath.
	Config string `json:"config,omitempty"`
	// MTU of the pod interface; 0 means the ENI's.
	MTU int `json:"mtu,omitempty"`
	// Timeout bounds one ADD ("60s").
	Timeout string `json:"timeout,omitempty"`

	addTimeout time.Duration
}

// k8sArgs are the CNI_ARGS kubelet's runtimes pass.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive // CNI_ARGS key
}

// runCNI is the CNI plugin role: invoked with CNI_COMMAND set.
func runCNI() error {
	// A plugin run is one short, mostly sequential task: more Ps only buy
	// idle threads and scheduler work.
	runtime.GOMAXPROCS(1)
	defer profileCNI()()
	about := fmt.Sprintf("veni CNI plugin %s", version)
	if err := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		Status: cmdStatus,
		GC:     cmdGC,
	}, cniVersions, about); err != nil {
		if perr := err.Print(); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	return nil
}

// loadNetConf parses and validates the plugin's configuration.
func loadNetConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse network configuration", err.Error())
	}
	if conf.MTU < 0 || (conf.MTU > 0 && conf.MTU < 576) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid mtu %d", conf.MTU), "set mtu to 0 (use the ENI's) or at least 576")
	}
	conf.addTimeout = defaultAddTimeout
	if conf.Timeout != "" {
		d, err := time.ParseDuration(conf.Timeout)
		if err != nil || d <= 0 {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid timeout %q", conf.Timeout), `use a Go duration such as "60s"`)
		}
		conf.addTimeout = d
	}
	return conf, nil
}

// loadVerb parses the NetConf and loads the node configuration it names:
// the first thing every verb but STATUS does.
func loadVerb(stdin []byte) (*NetConf, *node.Env, error) {
	conf, err := loadNetConf(stdin)
	if err != nil {
		return nil, nil, err
	}
	env, err := loadEnv(conf)
	if err != nil {
		return nil, nil, err
	}
	return conf, env, nil
}

// loadEnv reads the node configuration the NetConf names.
func loadEnv(conf *NetConf) (*node.Env, error) {
	env, err := node.Load(conf.Config)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "cannot load veni node configuration", err.Error())
	}
	return env, nil
}

func ownerOf(args *skel.CmdArgs, network string) (ipam.Owner, error) {
	var k8s k8sArgs
	if err := types.LoadArgs(args.Args, &k8s); err != nil {
		return ipam.Owner{}, types.NewError(types.ErrInvalidEnvironmentVariables, "cannot parse CNI_ARGS", err.Error())
	}
	return ipam.Owner{
		ContainerID:  args.ContainerID,
		IfName:       args.IfName,
		Network:      network,
		PodNamespace: string(k8s.K8S_POD_NAMESPACE),
		PodName:      string(k8s.K8S_POD_NAME),
		PodUID:       string(k8s.K8S_POD_UID),
		NetNS:        args.Netns,
	}, nil
}

// cmdAdd is the one path of an ADD: claim the attachment, reserve an IP in
// the store (tx1), plumb the pod, attach the eBPF fast path, mark the IP
// bound (tx2). Any failure undoes what came before.
func cmdAdd(args *skel.CmdArgs) (err error) {
	start := time.Now()
	conf, err := loadNetConf(args.StdinData)
	if err != nil {
		return err
	}
	owner, err := ownerOf(args, conf.Name)
	if err != nil {
		return err
	}
	if args.Netns == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is empty", "ADD needs the pod's network namespace path")
	}
	if owner.NetNSID, err = podnet.IdentifyNetNS(args.Netns); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %s is not a usable network namespace", args.Netns), err.Error())
	}
	env, err := loadEnv(conf)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			recordFailure(env, store.CNIAdd, "AllocIPFailed", owner, start, err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), conf.addTimeout)
	defer cancel()

	// Held until the ADD is committed or undone: GC sees the reservation's
	// ADD alive, and a DEL of this attachment waits for it.
	claim, err := podnet.ClaimForAdd(ctx, env.Store, owner.Key(), conf.addTimeout)
	if err != nil {
		return busyError(err)
	}
	defer claim.Release()

	facts, enis, plan, want, err := addPreflight(ctx, env, owner)
	if err != nil {
		return err
	}
	nodeSpec := env.IPAMNode(facts)
	nodeSpec.WaitLink = netplumb.WaitLink
	// Decided once, here: where the pod's network comes from, and
	// whether its ENI is fixed.
	pn, err := decideNetwork(env, nodeSpec, facts, owner, want)
	if err != nil {
		return err
	}
	if pn.route == routeExclusive {
		// Every pod of an exclusive node has an ENI of its own.
		return cmdAddExclusive(ctx, args, conf, env, owner, nodeSpec, facts, pn, start)
	}
	owner.StickFor = want.StickFor

	// A trunk member's reservation is on the trunk (member: its own ENI).
	res, member, err := allocate(ctx, env, nodeSpec, owner, pn)
	if err != nil {
		return allocationError(err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ipam.Release(env.Store, res.Key))
		}
	}()

	mac, err := net.ParseMAC(res.ENI.MAC)
	if err != nil {
		return fmt.Errorf("eni %s has a bad mac in the store: %w", res.ENI.ID, err)
	}
	eniLink, err := netplumb.EnsureENI(ctx, netplumb.ENIConfig{
		MAC:         mac,
		VSwitchCIDR: res.ENI.VSwitchCIDR,
		Gateway:     res.ENI.Gateway,
		PrimaryIP:   res.ENI.PrimaryIP,
		Table:       res.ENI.Table,
		IPv6CIDR:    res.ENI.IPv6CIDR,
		Gateway6:    res.ENI.Gateway6,
	})
	if errors.Is(err, netplumb.ErrInvalidConfig) || errors.Is(err, netplumb.ErrMTU) {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("eni %s cannot be configured as asked", res.ENI.ID), err.Error())
	}
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("eni %s is not usable on this node", res.ENI.ID), err.Error())
	}
	if member != nil {
		// Tagged before the pod's link is up: its first packet leaves
		// the trunk with its VLAN ID.
		if err = datapath.TagMember(facts.InstanceID, eniLink.Index, res.IP, member.VLANID); err != nil {
			return types.NewError(types.ErrInternal, fmt.Sprintf("cannot tag member eni %s (vlan %d) on trunk %s", member.ID, member.VLANID, res.ENI.ID), err.Error())
		}
		defer func() {
			if err != nil {
				err = errors.Join(err, datapath.UntagMember(facts.InstanceID, res.IP))
			}
		}()
	}
	// An IPv6-only pod's one address is res.IP; the datapath takes it by
	// family.
	ip4, ip6 := store.Families(res.IP, res.IP6)
	podCfg := netplumb.PodConfig{
		ContainerID:    args.ContainerID,
		IfName:         args.IfName,
		ContainerNetNS: args.Netns,
		IP:             ip4,
		IP6:            ip6,
		ENI:            eniLink,
		MTU:            conf.MTU,
	}
	// The pod's NetworkPolicy goes in before its link is up, so its first
	// packet meets it; undone if the ADD fails after.
	kernel := addPolicyKernel(plan, env.Config, facts.InstanceID)
	var policyEP *podpolicy.Endpoint
	if kernel != nil {
		podCfg.BeforeUp = func(host netplumb.Interface) error {
			// IP is zero for an IPv6-only pod: the enforcer keys by the veth.
			ep := podpolicy.Endpoint{Ifindex: host.Index, IP: ip4, IP6: ip6}
			if err := plan.Install(kernel, ep); err != nil {
				return err
			}
			policyEP = &ep
			// The pod's traffic leaves by its ENI: Service flows the host
			// DNATs to another node have their egress decided there (only
			// for a pod whose egress is isolated).
			if !plan.IsolatesEgress() {
				return nil
			}
			if err := kernel.AttachENI(eniLink.Index); err != nil {
				return fmt.Errorf("hook policy on eni %s: %w", res.ENI.ID, err)
			}
			return nil
		}
		defer func() {
			if err != nil && policyEP != nil {
				err = errors.Join(err, kernel.RemoveEndpoint(*policyEP))
			}
			kernel.Close()
		}()
	}
	pod, err := netplumb.SetupPod(ctx, podCfg)
	if err != nil {
		switch {
		case errors.Is(err, netplumb.ErrPodInterfaceExists):
			return types.NewError(types.ErrInternal, fmt.Sprintf("interface %s already exists in %s", args.IfName, args.Netns), "the runtime sent ADD twice for one attachment; DEL it first")
		case errors.Is(err, netplumb.ErrMTU), errors.Is(err, netplumb.ErrInvalidConfig):
			return types.NewError(types.ErrInvalidNetworkConfig, "the pod interface cannot be set up as configured", err.Error())
		}
		return fmt.Errorf("set up pod network: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, netplumb.TeardownPod(context.Background(), podCfg))
		}
	}()

	// The fast path only shortens the datapath SetupPod built, so it comes
	// after it; a node without eBPF keeps the plain datapath, and a failed
	// attach undoes itself.
	fast, err := datapath.AttachPod(env.Config, facts, append(enis, res.ENI), ipam.MaxPods(nodeSpec, env.Config), datapath.Pod{IP: ip4, IP6: ip6, Links: pod, ENI: eniLink})
	if err != nil {
		return fmt.Errorf("attach ebpf fast path: %w", err)
	}
	if fast.Fallback {
		fmt.Fprintf(os.Stderr, "veni: pod %s stays on the plain datapath: %s\n", res.IP, fast.Reason)
	}
	if fast.Fast || fast.Fallback {
		defer func() {
			if err != nil {
				err = errors.Join(err, datapath.DetachPod(facts.InstanceID, res.IP, pod.Host.Index))
			}
		}()
	}

	took := time.Since(start)
	note := &store.Event{
		Level: slog.LevelInfo, Reason: "AllocIPSucceed", Object: podObject(owner),
		Message: fmt.Sprintf("alloc ip %s for %s took %s", res.IP, owner.Key(), took.Round(time.Millisecond)),
		CNI:     cniCall(store.CNIAdd, owner, res.IP, took, nil),
	}
	if err = ipam.Commit(env.Store, res.Key, ipam.HostSide{Veth: pod.Host.Name, Ifindex: pod.Host.Index}, note); err != nil {
		return storeError(err, "record the pod's address")
	}
	return types.PrintResult(addResult(pod, ip4, ip6, args.Netns, conf.DNS), conf.CNIVersion)
}

// podObject names the pod in an event: "pod/ns/name", or the attachment
// when the runtime passed no pod name.
func podObject(o ipam.Owner) string {
	if o.PodName == "" {
		return "allocation/" + string(o.Key())
	}
	return "pod/" + o.PodNamespace + "/" + o.PodName
}

// cniCall is the record of one CNI call for the event log: the daemon
// exports these as metrics and Kubernetes events.
func cniCall(verb string, o ipam.Owner, ip netip.Addr, took time.Duration, err error) *store.CNICall {
	c := &store.CNICall{Verb: verb, Took: took, Key: o.Key(), PodNamespace: o.PodNamespace, PodName: o.PodName, PodUID: o.PodUID, IP: ip}
	if err != nil {
		c.Code = types.ErrInternal
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			c.Code = cniErr.Code
		}
	}
	return c
}

// recordFailure leaves a failed call's record in the event log, for the
// daemon's AllocIPFailed / ReleaseIPFailed events and failure metrics. It is best
// effort and quick: a store too busy to take it within a moment is not
// worth holding the runtime's call for (and a DEL failing for a busy store
// could not write it anyway).
func recordFailure(env *node.Env, verb, reason string, o ipam.Owner, start time.Time, err error) {
	db := env.Store
	db.Options.Timeout = 200 * time.Millisecond
	msg := err.Error()
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		msg = cniErr.Msg
		if cniErr.Details != "" {
			msg += ": " + cniErr.Details
		}
	}
	_ = db.Update(func(tx *store.WriteTx) error {
		_, err := tx.AppendEvent(store.Event{
			Level: slog.LevelWarn, Reason: reason, Object: podObject(o), Message: msg,
			CNI: cniCall(verb, o, netip.Addr{}, time.Since(start), err),
		})
		return err
	})
}

// addPreflight reads, in the ADD's first store transaction, whether the
// attachment already has a bound address, the node's cached facts, its
// ENIs (whose addresses the fast path keeps on the host stack) and the
// pod's NetworkPolicy plan (podpolicy.PlanForAdd).
//
// A bound address fails the ADD: the CNI spec requires ADD to fail when the
// interface exists, and releasing that address on the way out would strand
// a pod. Facts the store lacks (a node's first ADD, no daemon yet) are
// discovered through metadata and the OpenAPI.
func addPreflight(ctx context.Context, env *node.Env, owner ipam.Owner) (store.NodeInfo, []store.ENI, podpolicy.Plan, podnetwork.Request, error) {
	var (
		facts store.NodeInfo
		enis  []store.ENI
		plan  podpolicy.Plan
		want  podnetwork.Request
		known bool
	)
	key := owner.Key()
	err := env.Store.View(func(tx *store.ReadTx) error {
		a, err := tx.Allocation(key)
		switch {
		case err == nil && a.State == store.IPBound:
			return types.NewError(types.ErrInternal, fmt.Sprintf("attachment %s already has address %s", key, a.IP), "the runtime sent ADD twice for one attachment; DEL it first")
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if enis, err = tx.ENIs(); err != nil {
			return err
		}
		if plan, err = podpolicy.PlanForAdd(tx, env.Config.PolicyEnabled(), owner.PodNamespace, owner.PodName); err != nil {
			return err
		}
		if owner.PodName != "" {
			if want, err = podnetwork.Resolve(tx, owner.PodNamespace, owner.PodName); err != nil {
				return err
			}
		}
		facts, err = tx.Node()
		known = err == nil
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	switch {
	case errors.Is(err, podnetwork.ErrPodUnknown):
		return facts, enis, plan, want, types.NewError(types.ErrTryAgainLater, "cannot tell yet which network the pod asks for", err.Error()+"; the node's daemon mirrors it shortly")
	case errors.Is(err, podnetwork.ErrInvalid):
		return facts, enis, plan, want, types.NewError(types.ErrInvalidNetworkConfig, "the pod's network cannot be decided", err.Error())
	case err != nil:
		return facts, enis, plan, want, storeError(err, "read the node's store")
	}
	if known {
		return facts, enis, plan, want, nil
	}
	if facts, err = env.Facts(ctx); err != nil {
		return facts, enis, plan, want, types.NewError(types.ErrTryAgainLater, "cannot learn this node's instance facts", err.Error())
	}
	return facts, enis, plan, want, nil
}

// podRoute is where a pod's network comes from on this node.
type podRoute int

const (
	routeShared    podRoute = iota // an address of the node's shared ENIs
	routeMember                    // a trunk member ENI of its own
	routeExclusive                 // an exclusive ENI moved into the pod
)

// podNet is what an ADD decided, once, from what the pod asks for
// (podnetwork.Resolve) and what the node serves: the route, and the fixed
// policy of a pod whose ENI outlives it (nil for the others).
type podNet struct {
	want  podnetwork.Request
	route podRoute
	fixed *store.Fixed
}

// decideNetwork decides the pod's route and fixed policy, or refuses a
// pod that asks for what this node does not serve (CNI error 7).
func decideNetwork(env *node.Env, spec ipam.Node, facts store.NodeInfo, owner ipam.Owner, want podnetwork.Request) (podNet, error) {
	pn := podNet{want: want, fixed: want.FixedPolicy()}
	switch {
	case env.Config.ExclusiveENI():
		if want.Kind == podnetwork.Member {
			return pn, types.NewError(types.ErrInvalidNetworkConfig,
				fmt.Sprintf("pod %s/%s asks for a trunk member ENI (PodNetworking %s, eniType Trunk) but this node is in exclusive ENI mode", owner.PodNamespace, owner.PodName, want.Networking),
				"schedule the pod on a trunk node, or change the PodNetworking's eniType to ENI or Default")
		}
		pn.route = routeExclusive
	case want.Kind == podnetwork.Member:
		pn.route = routeMember // on a node without a trunk, AllocateMember says why not
	case want.Kind == podnetwork.NodeDefault && ipam.TrunkEnabled(spec, env.Config):
		pn.route = routeMember
	case want.Dedicated():
		return pn, addDedicated(want, facts)
	}
	return pn, nil
}

// addDedicated answers a pod that asks for an ENI of its own (a
// PodNetworking selects it) of a kind this node does not serve (trunk
// members are served by allocate): a clear error instead of a shared
// address its PodNetworking says it must not have.
func addDedicated(want podnetwork.Request, facts store.NodeInfo) error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("PodNetworking %s asks for a dedicated ENI (eniType %s) and this node serves only shared ENIs", want.Networking, want.Kind),
		fmt.Sprintf("instance %s: exclusive ENIs need a node labelled k8s.aliyun.com/exclusive-mode-eni-type=eniOnly (exclusive_eni_type: eniOnly), and trunk members need enable_eni_trunking on an instance type with trunking; remove the pod from the PodNetworking's selectors or schedule it on a node that serves them", facts.InstanceID))
}

// addPolicyKernel returns the enforcer an ADD installs plan with, nil when
// the pod needs nothing at birth (no policy isolates it) or the node has
// no enforcer (then the pod starts unenforced, and says so on stderr,
// which the runtime logs).
func addPolicyKernel(plan podpolicy.Plan, cfg config.Config, instanceID string) podpolicy.NodeKernel {
	if !plan.NeedsKernel() {
		return nil
	}
	k, err := podpolicy.OpenNodeKernel(cfg, instanceID)
	if err != nil {
		fmt.Fprintf(os.Stderr, "veni: pod %s: NetworkPolicy not enforced: %v\n", plan.Pod, err)
		return nil
	}
	return k
}

// allocationError turns ipam's answers into CNI errors that say what to do.
func allocationError(err error) error {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return err
	}
	if merr := memberAllocationError(err); merr != nil {
		return merr
	}
	if ferr := fixedAllocationError(err); ferr != nil {
		return ferr
	}
	switch {
	case errors.Is(err, ipam.ErrTryAgainLater), errors.Is(err, ipam.ErrPoolEmpty),
		errors.Is(err, ipam.ErrBackoff), errors.Is(err, context.DeadlineExceeded):
		return types.NewError(types.ErrTryAgainLater, "no free VPC address for the pod yet", err.Error())
	case errors.Is(err, ipam.ErrPoolExhausted):
		return types.NewError(types.ErrTryAgainLater, "this node has no room for another pod address", err.Error()+" (raise max_eni, or schedule fewer pods on this node)")
	case errors.Is(err, config.ErrInvalid):
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid veni configuration", err.Error())
	case errors.Is(err, ipam.ErrModeMismatch):
		// Retrying cannot help: the node's configuration must change.
		return types.NewError(types.ErrInvalidNetworkConfig, "veni configuration asks for another pool mode than this node's", err.Error())
	case errors.Is(err, ipam.ErrStackMismatch):
		return types.NewError(types.ErrInvalidNetworkConfig, "veni configuration asks for another ip stack than this node's", err.Error())
	case errors.Is(err, eni.ErrIPv6Unsupported):
		return types.NewError(types.ErrInvalidNetworkConfig, "ip_stack dual, but this node cannot get IPv6", err.Error()+" (turn IPv6 on for the vSwitches, use an instance type with IPv6, or set ip_stack ipv4 on a new node)")
	case isStoreError(err):
		return storeError(err, "allocate an address")
	}
	// The cold path's cloud calls failed (throttled, unreachable, no
	// credentials on this host, ...): the daemon or a later ADD may
	// succeed, and the details say what failed.
	return types.NewError(types.ErrTryAgainLater, "cannot grow the node's address pool now", err.Error())
}

// isStoreError reports whether err came from the store itself rather than
// from what a transaction's caller decided.
func isStoreError(err error) bool {
	for _, target := range []error{store.ErrLocked, store.ErrDamaged, store.ErrCorrupt, store.ErrSchemaTooNew, store.ErrInvariant, store.ErrInvalid, store.ErrReadOnly} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// storeError says "try again later" (11) when the store was busy: another
// veni process kept it locked past the timeout, which passes. Anything
// else the store says is an I/O failure (5).
func storeError(err error, what string) error {
	var cniErr *types.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cniErr):
		return err
	case errors.Is(err, store.ErrLocked):
		return types.NewError(types.ErrTryAgainLater, "cannot "+what+": the veni store is busy", err.Error())
	}
	return types.NewError(types.ErrIOFailure, "cannot "+what, err.Error())
}

// busyError is the answer when another process works on the same
// attachment (an ADD still running when its DEL comes, or GC releasing it).
func busyError(err error) error {
	if errors.Is(err, podnet.ErrBusy) {
		return types.NewError(types.ErrTryAgainLater, "another operation on this attachment is still running", err.Error())
	}
	return storeError(err, "claim the attachment")
}

// addResult describes the attachment: the host veth, the pod interface and
// the pod's address behind the link-local gateway, and the DNS settings the
// network configuration carries.
//
// A dual-stack pod (ip6 valid) lists its IPv6 second, behind fe80::1, with
// the IPv6 routes; every spec version veni speaks carries both (0.3.x and
// 0.4.0 name each IP's version, which libcni derives from the address).
func addResult(pod netplumb.PodResult, ip, ip6 netip.Addr, netns string, dns types.DNS) *types100.Result {
	podIndex := 1
	gw := net.IP(netplumb.PodGateway.AsSlice())
	gw6 := net.IP(netplumb.PodGateway6.AsSlice())
	// The default route only on the pod's first interface; a second one
	// (another network on the same pod) routes its vSwitch.
	routes := make([]*types.Route, 0, len(pod.Routes))
	for _, r := range pod.Routes {
		via := gw
		if r.Addr().Is6() {
			via = gw6
		}
		routes = append(routes, &types.Route{Dst: net.IPNet{IP: r.Addr().AsSlice(), Mask: net.CIDRMask(r.Bits(), r.Addr().BitLen())}, GW: via})
	}
	var ips []*types100.IPConfig
	if ip.IsValid() { // zero for an IPv6-only pod
		ips = append(ips, &types100.IPConfig{
			Interface: &podIndex,
			Address:   net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)},
			Gateway:   gw,
		})
	}
	if ip6.IsValid() {
		ips = append(ips, &types100.IPConfig{
			Interface: &podIndex,
			Address:   net.IPNet{IP: ip6.AsSlice(), Mask: net.CIDRMask(128, 128)},
			Gateway:   gw6,
		})
	}
	return &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: pod.Host.Name, Mac: pod.Host.MAC.String()},
			{Name: pod.Pod.Name, Mac: pod.Pod.MAC.String(), Sandbox: netns},
		},
		IPs:    ips,
		Routes: routes,
		DNS:    dns,
	}
}

// cmdDel undoes an ADD through the one release path (podnet.Release). It
// never fails on "already gone": containerd sends DEL twice (the second
// time with no netns), and a DEL can follow an ADD that failed half way.
// The spec requires DEL to succeed in all of these. A DEL that arrives
// while the same attachment's ADD still runs waits for it.
func cmdDel(args *skel.CmdArgs) error {
	conf, env, err := loadVerb(args.StdinData)
	if err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), conf.addTimeout)
	defer cancel()
	att := podnet.Attachment{ContainerID: args.ContainerID, IfName: args.IfName, NetNS: args.Netns}
	note := func(a store.Allocation) *store.Event {
		o := ipam.Owner{ContainerID: a.ContainerID, IfName: a.IfName, PodNamespace: a.PodNamespace, PodName: a.PodName, PodUID: a.PodUID}
		took := time.Since(start)
		return &store.Event{
			Level: slog.LevelInfo, Reason: "ReleaseIPSucceed", Object: podObject(o),
			Message: fmt.Sprintf("released ip %s of %s in %s", a.IP, a.Key, took.Round(time.Millisecond)),
			CNI:     cniCall(store.CNIDel, o, a.IP, took, nil),
		}
	}
	_, err = podnet.Release(ctx, podnet.Node{Store: env.Store}, att, podnet.ReleaseOptions{Wait: conf.addTimeout, Note: note})
	if err != nil {
		if errors.Is(err, podnet.ErrBusy) {
			err = busyError(err)
		} else {
			err = storeError(err, "release the pod")
		}
		// The runtime retries a failed DEL; the record makes the failures
		// visible (ReleaseIPFailed events, veni_cni_failures_total).
		o, oerr := ownerOf(args, "")
		if oerr != nil {
			o = ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}
		}
		recordFailure(env, store.CNIDel, "ReleaseIPFailed", o, start, err)
		return err
	}
	return nil
}

// cmdCheck verifies that what ADD built is still there.
func cmdCheck(args *skel.CmdArgs) error {
	conf, env, err := loadVerb(args.StdinData)
	if err != nil {
		return err
	}
	key := store.NewOwnerKey(args.ContainerID, args.IfName)
	var (
		alloc  store.Allocation
		eniRec store.ENI
		member store.ENI      // a trunk member's own ENI (then eniRec is its trunk)
		facts  store.NodeInfo // zero when none were cached: no ADD got that far
	)
	err = env.Store.View(func(tx *store.ReadTx) error {
		var err error
		if alloc, err = tx.Allocation(key); err != nil {
			return err
		}
		if eniRec, err = tx.ENI(alloc.ENIID); err != nil {
			return err
		}
		if eniRec.Kind == store.ENIMember {
			member = eniRec
			if eniRec, err = tx.ENI(member.TrunkID); err != nil {
				return err
			}
		}
		facts, _ = tx.Node()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("no address recorded for %s", key), "the attachment was never added or was deleted")
	}
	if err != nil {
		return storeError(err, "read the veni store")
	}
	if alloc.State != store.IPBound {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("address %s of %s is %s, not bound", alloc.IP, key, alloc.State), "an ADD is still in progress")
	}
	if err := checkPrevResult(conf, args, alloc); err != nil {
		return err
	}
	mac, err := net.ParseMAC(eniRec.MAC)
	if err != nil {
		return fmt.Errorf("eni %s has a bad mac in the store: %w", eniRec.ID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if eniRec.Kind == store.ENIExclusive {
		return checkExclusive(ctx, args, conf, env, alloc, eniRec, mac)
	}
	eniLink, err := netplumb.LookupENI(ctx, netplumb.ENIConfig{MAC: mac, VSwitchCIDR: eniRec.VSwitchCIDR, Gateway: eniRec.Gateway, Table: eniRec.Table, IPv6CIDR: eniRec.IPv6CIDR, Gateway6: eniRec.Gateway6})
	if err != nil {
		return fmt.Errorf("eni %s: %w", eniRec.ID, err)
	}
	ip4, ip6 := alloc.Families()
	if err := netplumb.CheckPod(ctx, netplumb.PodConfig{
		ContainerID:    args.ContainerID,
		IfName:         args.IfName,
		ContainerNetNS: args.Netns,
		IP:             ip4,
		IP6:            ip6,
		ENI:            eniLink,
		MTU:            conf.MTU,
	}); err != nil {
		return err
	}
	if member.ID != "" {
		if err := datapath.CheckMember(facts.InstanceID, alloc.IP, member.VLANID); err != nil {
			return err
		}
	}
	return datapath.CheckPod(env.Config, facts.InstanceID, datapath.Pod{IP: ip4, IP6: ip6, ENI: eniLink})
}

// checkPrevResult compares what the runtime says ADD returned with what
// veni recorded: the pod's address, the sandbox interface and the host
// veth. A CHECK without a prevResult (an older runtime) checks the node
// alone.
func checkPrevResult(conf *NetConf, args *skel.CmdArgs, alloc store.Allocation) error {
	if conf.RawPrevResult == nil {
		return nil
	}
	if err := cniversion.ParsePrevResult(&conf.NetConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot parse prevResult", err.Error())
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
	}
	mismatch := func(format string, a ...any) error {
		return types.NewError(types.ErrInternal, "prevResult does not match the attachment", fmt.Sprintf(format, a...)+" (DEL and ADD the pod again)")
	}
	ips := make([]string, 0, len(prev.IPs))
	found, found6 := false, !alloc.IP6.IsValid()
	for _, ip := range prev.IPs {
		ips = append(ips, ip.Address.String())
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		found = found || (ok && a.Unmap() == alloc.IP)
		found6 = found6 || (ok && a == alloc.IP6)
	}
	if !found {
		return mismatch("prevResult has addresses %v, veni bound %s to %s", ips, alloc.IP, alloc.Key)
	}
	if !found6 {
		return mismatch("prevResult has addresses %v, veni bound ipv6 %s to %s too", ips, alloc.IP6, alloc.Key)
	}
	var sandbox, host bool
	for _, i := range prev.Interfaces {
		switch {
		case i.Sandbox != "" && i.Name == args.IfName:
			sandbox = true
		case i.Sandbox == "" && (alloc.HostVeth == "" || i.Name == alloc.HostVeth):
			host = true
		}
	}
	if !sandbox || !host {
		return mismatch("prevResult lists interfaces %v, want %s in the sandbox and host veth %s", interfaceNames(prev.Interfaces), args.IfName, alloc.HostVeth)
	}
	return nil
}

func interfaceNames(ifs []*types100.Interface) []string {
	out := make([]string, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	return out
}

// cmdStatus answers whether the plugin can take an ADD now. It is
// informational (CNI 1.1.0): 50 means no ADD can succeed until an operator
// or the cloud changes something.
func cmdStatus(args *skel.CmdArgs) error {
	conf, err := loadNetConf(args.StdinData)
	if err != nil {
		return err
	}
	env, err := loadEnv(conf)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "veni node configuration is unusable", err.Error())
	}
	health, err := ipam.PoolHealth(env.Store, time.Now())
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "cannot read the veni store", err.Error())
	}
	if health.Free == 0 && len(health.Blocked) > 0 {
		return types.NewError(types.ErrPluginNotAvailable, "no free pod address and the pool cannot grow", strings.Join(health.Blocked, "; "))
	}
	return nil
}

// cmdGC releases, through the one release path, every attachment of this
// network the runtime no longer lists (cni.dev/valid-attachments).
// Attachments of other networks on the same pods, reservations younger
// than gc_grace and attachments whose ADD still runs are left alone.
func cmdGC(args *skel.CmdArgs) error {
	conf, env, err := loadVerb(args.StdinData)
	if err != nil {
		return err
	}
	valid := make([]podnet.Attachment, 0, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid = append(valid, podnet.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.addTimeout)
	defer cancel()
	dead := podnet.NotInValid(env.Store.ClaimsDir(), conf.Name, valid, time.Duration(env.Config.GCGrace), time.Now())
	if _, err := podnet.GC(ctx, podnet.Node{Store: env.Store}, dead, "NotInValidAttachments"); err != nil {
		return storeError(err, "garbage-collect attachments")
	}
	return nil
}
