package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/store"
)

// crashPointEnv names a point of the exclusive ADD at which the plugin
// kills itself with SIGKILL, for crash tests (e2e TestSim_Exclusive_Crash):
// "reserved" (the ENI names its pod, nothing is plumbed) or "moved" (the
// ENI is in the pod's namespace, the ADD not committed). Unset in
// production.
const crashPointEnv = "VENI_TEST_CRASH_AT"

func crashPoint(name string) {
	if os.Getenv(crashPointEnv) == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// cmdAddExclusive is cmdAdd on a node in exclusive ENI mode, under the
// attachment's claim: with what the pod asks for (pn: its PodNetworking's
// security groups and vSwitches, else the node's; a fixed ENI, kept here
// or from the cloud, when it asks for one), its own ENI reserved in the store
// with the pod as owner (tx1, ipam.AllocateExclusive: a warm ENI, or a new
// one created and attached), the ENI moved into the pod with a veth to the
// node (netplumb.SetupExclusive), then bound (tx2). Any failure undoes what
// came before; the release of an added pod is podnet.Release's, which
// gives the ENI back to the node.
func cmdAddExclusive(ctx context.Context, args *skel.CmdArgs, conf *NetConf, env *node.Env, owner ipam.Owner, nodeSpec ipam.Node, facts store.NodeInfo, pn podNet, start time.Time) (err error) {
	if args.IfName != netplumb.PrimaryIfName {
		// The ENI brings the pod's default route: a second network's
		// interface would take it from the first.
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("interface %s: an exclusive ENI is the pod's primary interface (%s) only", args.IfName, netplumb.PrimaryIfName),
			"attach veni as the pod's first network on an exclusive node")
	}
	pod := owner.PodNamespace + "/" + owner.PodName
	if owner.PodName == "" {
		pod = string(owner.Key())
	}
	req := pn.want
	// IP stick: the pod's ENI waits for it as its address would.
	owner.StickFor = req.StickFor
	res, err := ipam.AllocateExclusive(ctx, env.Store, env.Cloud(), nodeSpec, env.Config, owner, ipam.ExclusiveRequest{
		Pod: pod, SecurityGroupIDs: req.SecurityGroupIDs, VSwitchIDs: req.VSwitchIDs, Fixed: pn.fixed,
	})
	if err != nil {
		return allocationError(err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ipam.Release(env.Store, res.Key))
		}
	}()
	crashPoint("reserved")

	mac, err := net.ParseMAC(res.ENI.MAC)
	if err != nil {
		return fmt.Errorf("eni %s has a bad mac in the store: %w", res.ENI.ID, err)
	}
	xcfg := netplumb.ExclusiveConfig{
		ContainerID: args.ContainerID, IfName: args.IfName, ContainerNetNS: args.Netns,
		Pin: podnet.ExclusivePin(env.Store, res.Key), MAC: mac,
		IP: res.IP, VSwitchCIDR: res.ENI.VSwitchCIDR, Gateway: res.ENI.Gateway, MTU: conf.MTU,
		HostRoutes: exclusiveHostRoutes(env, facts),
	}
	links, err := netplumb.SetupExclusive(ctx, xcfg)
	if err != nil {
		switch {
		case errors.Is(err, netplumb.ErrPodInterfaceExists):
			return types.NewError(types.ErrInternal, fmt.Sprintf("interface %s already exists in %s", args.IfName, args.Netns), "the runtime sent ADD twice for one attachment; DEL it first")
		case errors.Is(err, netplumb.ErrMTU), errors.Is(err, netplumb.ErrInvalidConfig):
			return types.NewError(types.ErrInvalidNetworkConfig, "the pod's ENI cannot be set up as configured", err.Error())
		case errors.Is(err, netplumb.ErrLinkNotFound):
			// The node cannot plumb this ENI: no other pod may get it.
			err = errors.Join(err, ipam.RetireExclusive(env.Store, res.ENI.ID, err.Error()))
			return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("eni %s has no link on this node; it is retired and the next ADD gets another", res.ENI.ID), err.Error())
		}
		return fmt.Errorf("set up exclusive eni: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, netplumb.TeardownExclusive(context.Background(), xcfg))
		}
	}()
	crashPoint("moved")

	took := time.Since(start)
	note := &store.Event{
		Level: slog.LevelInfo, Reason: "AllocIPSucceed", Object: podObject(owner),
		Message: fmt.Sprintf("alloc exclusive eni %s (%s) for %s took %s", res.ENI.ID, res.IP, owner.Key(), took.Round(time.Millisecond)),
		CNI:     cniCall(store.CNIAdd, owner, res.IP, took, nil),
	}
	if err = ipam.Commit(env.Store, res.Key, ipam.HostSide{Veth: links.Host.Name, Ifindex: links.Host.Index}, note); err != nil {
		return storeError(err, "record the pod's ENI")
	}
	return types.PrintResult(exclusiveResult(links, res, args.Netns, conf.DNS), conf.CNIVersion)
}

// exclusiveHostRoutes are the destinations an exclusive pod reaches
// through the node: Service CIDRs, host_stack_cidrs and the node's primary
// address.
func exclusiveHostRoutes(env *node.Env, facts store.NodeInfo) []netip.Prefix {
	out := append(env.Config.ServicePrefixes(), env.Config.HostStackPrefixes()...)
	if facts.PrimaryIP.IsValid() {
		out = append(out, netip.PrefixFrom(facts.PrimaryIP, 32))
	}
	return out
}

// exclusiveResult describes an exclusive attachment: the host veth, the ENI
// as the pod's interface with its address in the vSwitch's prefix, and the
// default route via the vSwitch gateway.
func exclusiveResult(links netplumb.PodResult, res ipam.Reservation, netns string, dns types.DNS) *types100.Result {
	podIndex := 1
	gw := net.IP(res.ENI.Gateway.AsSlice())
	return &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: links.Host.Name, Mac: links.Host.MAC.String()},
			{Name: links.Pod.Name, Mac: links.Pod.MAC.String(), Sandbox: netns},
		},
		IPs: []*types100.IPConfig{{
			Interface: &podIndex,
			Address:   net.IPNet{IP: res.IP.AsSlice(), Mask: net.CIDRMask(res.ENI.VSwitchCIDR.Bits(), 32)},
			Gateway:   gw,
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw}},
		DNS:    dns,
	}
}

// checkExclusive is cmdCheck for a pod that holds its own ENI.
func checkExclusive(ctx context.Context, args *skel.CmdArgs, conf *NetConf, env *node.Env, alloc store.Allocation, e store.ENI, mac net.HardwareAddr) error {
	return netplumb.CheckExclusive(ctx, netplumb.ExclusiveConfig{
		ContainerID: args.ContainerID, IfName: args.IfName, ContainerNetNS: args.Netns,
		Pin: podnet.ExclusivePin(env.Store, alloc.Key), MAC: mac,
		IP: alloc.IP, VSwitchCIDR: e.VSwitchCIDR, Gateway: e.Gateway, MTU: conf.MTU,
	})
}

// sharedAllocations drops the allocations of pods on their own ENI.
func sharedAllocations(enis []store.ENI, allocs []store.Allocation) []store.Allocation {
	own := make(map[string]bool)
	for _, e := range enis {
		own[e.ID] = e.Kind == store.ENIExclusive
	}
	out := make([]store.Allocation, 0, len(allocs))
	for _, a := range allocs {
		if !own[a.ENIID] {
			out = append(out, a)
		}
	}
	return out
}
