package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
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

func ownerOf(args *skel.CmdArgs) (ipam.Owner, error) {
	var k8s k8sArgs
	if err := types.LoadArgs(args.Args, &k8s); err != nil {
		return ipam.Owner{}, types.NewError(types.ErrInvalidEnvironmentVariables, "cannot parse CNI_ARGS", err.Error())
	}
	return ipam.Owner{
		ContainerID:  args.ContainerID,
		IfName:       args.IfName,
		PodNamespace: string(k8s.K8S_POD_NAMESPACE),
		PodName:      string(k8s.K8S_POD_NAME),
		PodUID:       string(k8s.K8S_POD_UID),
		NetNS:        args.Netns,
	}, nil
}

// cmdAdd is the one path of an ADD: reserve an IP in the store (tx1), plumb
// the pod, attach the eBPF fast path, mark the IP bound (tx2). Any failure
// undoes what came before.
func cmdAdd(args *skel.CmdArgs) (err error) {
	conf, err := loadNetConf(args.StdinData)
	if err != nil {
		return err
	}
	owner, err := ownerOf(args)
	if err != nil {
		return err
	}
	if args.Netns == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is empty", "ADD needs the pod's network namespace path")
	}
	if _, err := os.Stat(args.Netns); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("network namespace %s is not usable", args.Netns), err.Error())
	}
	env, err := loadEnv(conf)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.addTimeout)
	defer cancel()

	facts, enis, err := addPreflight(ctx, env, owner.Key())
	if err != nil {
		return err
	}
	nodeSpec := node.IPAMNode(facts)
	nodeSpec.WaitLink = netplumb.WaitLink

	res, err := ipam.Allocate(ctx, env.Store, env.Cloud(), nodeSpec, env.Config, owner)
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
		Table:       netplumb.InterimTable(mac), // until store.ENI.Table
	})
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("eni %s is not usable on this node", res.ENI.ID), err.Error())
	}
	podCfg := netplumb.PodConfig{
		ContainerID:    args.ContainerID,
		IfName:         args.IfName,
		ContainerNetNS: args.Netns,
		IP:             res.IP,
		ENI:            eniLink,
		MTU:            conf.MTU,
	}
	pod, err := netplumb.SetupPod(ctx, podCfg)
	if err != nil {
		if errors.Is(err, netplumb.ErrPodInterfaceExists) {
			return types.NewError(types.ErrInternal, fmt.Sprintf("interface %s already exists in %s", args.IfName, args.Netns), "the runtime sent ADD twice for one attachment; DEL it first")
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
	fast, err := datapath.AttachPod(env.Config, facts, append(enis, res.ENI), datapath.Pod{IP: res.IP, Links: pod, ENI: eniLink})
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

	if err = ipam.Commit(env.Store, res.Key); err != nil {
		return fmt.Errorf("record allocation: %w", err)
	}
	return types.PrintResult(addResult(pod, res.IP, args.Netns), conf.CNIVersion)
}

// addPreflight reads, in the ADD's first store transaction, whether the
// attachment already has a bound address, the node's cached facts and its
// ENIs (whose addresses the fast path keeps on the host stack).
//
// A bound address fails the ADD: the CNI spec requires ADD to fail when the
// interface exists, and releasing that address on the way out would strand
// a pod. Facts the store lacks (a node's first ADD, no daemon yet) are
// discovered through metadata and the OpenAPI.
func addPreflight(ctx context.Context, env *node.Env, key store.OwnerKey) (store.NodeInfo, []store.ENI, error) {
	var (
		facts store.NodeInfo
		enis  []store.ENI
		known bool
	)
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
		facts, err = tx.Node()
		known = err == nil
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil || known {
		return facts, enis, err
	}
	if facts, err = env.Facts(ctx); err != nil {
		return facts, enis, types.NewError(types.ErrTryAgainLater, "cannot learn this node's instance facts", err.Error())
	}
	return facts, enis, nil
}

// allocationError turns ipam's answers into CNI errors that say what to do.
func allocationError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrTryAgainLater), errors.Is(err, ipam.ErrPoolEmpty),
		errors.Is(err, ipam.ErrBackoff), errors.Is(err, context.DeadlineExceeded):
		return types.NewError(types.ErrTryAgainLater, "no free VPC address for the pod yet", err.Error())
	case errors.Is(err, ipam.ErrPoolExhausted):
		return types.NewError(types.ErrTryAgainLater, "this node has no room for another pod address", err.Error()+" (raise max_eni, or schedule fewer pods on this node)")
	case errors.Is(err, config.ErrInvalid):
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid veni configuration", err.Error())
	}
	return fmt.Errorf("allocate address: %w", err)
}

// addResult describes the attachment: the host veth, the pod interface and
// the pod's address behind the link-local gateway.
func addResult(pod netplumb.PodResult, ip netip.Addr, netns string) *types100.Result {
	podIndex := 1
	gw := net.IP(netplumb.PodGateway.AsSlice())
	return &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: pod.Host.Name, Mac: pod.Host.MAC.String()},
			{Name: pod.Pod.Name, Mac: pod.Pod.MAC.String(), Sandbox: netns},
		},
		IPs: []*types100.IPConfig{{
			Interface: &podIndex,
			Address:   net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)},
			Gateway:   gw,
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw}},
	}
}

// cmdDel undoes an ADD. It never fails on "already gone": containerd sends
// DEL twice (the second time with no netns), and a DEL can follow an ADD
// that failed half way. The spec requires DEL to succeed in all of these.
func cmdDel(args *skel.CmdArgs) error {
	conf, env, err := loadVerb(args.StdinData)
	if err != nil {
		return err
	}
	key := store.NewOwnerKey(args.ContainerID, args.IfName)
	var (
		ip         netip.Addr
		instanceID string
	)
	err = env.Store.View(func(tx *store.ReadTx) error {
		// No facts means no ADD got as far as the fast path.
		if info, err := tx.Node(); err == nil {
			instanceID = info.InstanceID
		}
		a, err := tx.Allocation(key)
		if err == nil {
			ip = a.IP
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot read the veni store", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.addTimeout)
	defer cancel()
	// The pod's links go first: an address must never be free in the store
	// while a pod still uses it. Deleting the veth takes its tc filters
	// along, so the fast path is left with only its map entry to drop.
	if err := netplumb.TeardownPod(ctx, netplumb.PodConfig{
		ContainerID:    args.ContainerID,
		IfName:         args.IfName,
		ContainerNetNS: args.Netns,
		IP:             ip,
	}); err != nil {
		return fmt.Errorf("tear down pod network: %w", err)
	}
	// The veth is gone: DetachPod removes the endpoint only if it was on
	// a veth that no longer exists, never a new owner's of the address.
	if err := datapath.DetachPod(instanceID, ip, 0); err != nil {
		return fmt.Errorf("detach ebpf fast path: %w", err)
	}
	if err := ipam.Release(env.Store, key); err != nil {
		return types.NewError(types.ErrIOFailure, "cannot release the pod's address", err.Error())
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
		facts, _ = tx.Node()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("no address recorded for %s", key), "the attachment was never added or was deleted")
	}
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot read the veni store", err.Error())
	}
	if alloc.State != store.IPBound {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("address %s of %s is %s, not bound", alloc.IP, key, alloc.State), "an ADD is still in progress")
	}
	mac, err := net.ParseMAC(eniRec.MAC)
	if err != nil {
		return fmt.Errorf("eni %s has a bad mac in the store: %w", eniRec.ID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eniLink, err := netplumb.LookupENI(ctx, netplumb.ENIConfig{MAC: mac, VSwitchCIDR: eniRec.VSwitchCIDR, Gateway: eniRec.Gateway, Table: netplumb.InterimTable(mac)})
	if err != nil {
		return fmt.Errorf("eni %s: %w", eniRec.ID, err)
	}
	if err := netplumb.CheckPod(ctx, netplumb.PodConfig{
		ContainerID:    args.ContainerID,
		IfName:         args.IfName,
		ContainerNetNS: args.Netns,
		IP:             alloc.IP,
		ENI:            eniLink,
		MTU:            conf.MTU,
	}); err != nil {
		return err
	}
	return datapath.CheckPod(env.Config, facts.InstanceID, datapath.Pod{IP: alloc.IP, ENI: eniLink})
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

// cmdGC releases every address whose attachment the runtime no longer
// lists (cni.dev/valid-attachments), and removes those pods' host links.
func cmdGC(args *skel.CmdArgs) error {
	conf, env, err := loadVerb(args.StdinData)
	if err != nil {
		return err
	}
	valid := make([]ipam.Attachment, 0, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid = append(valid, ipam.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	released, err := ipam.GCValid(env.Store, valid, time.Now())
	if err != nil {
		return types.NewError(types.ErrIOFailure, "garbage collection failed", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), conf.addTimeout)
	defer cancel()
	var errs []error
	instanceID := ""
	if len(released) > 0 {
		instanceID = datapath.StoredInstanceID(env.Store)
	}
	for _, a := range released {
		// Links first: with the veth gone, DetachPod knows the endpoint
		// was this pod's.
		errs = append(errs, netplumb.TeardownPod(ctx, netplumb.PodConfig{ContainerID: a.ContainerID, IfName: a.IfName, ContainerNetNS: a.NetNS, IP: a.IP}))
		errs = append(errs, datapath.DetachPod(instanceID, a.IP, 0))
	}
	return errors.Join(errs...)
}
