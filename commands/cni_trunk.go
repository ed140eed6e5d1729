package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/store"
)

// allocate is the ADD's reservation (tx1, and the cold path's cloud calls
// when needed): a trunk member ENI for a pod that asks for a network of
// its own on a trunk node (a PodNetworking of eniType Trunk, or Default
// where the node has a trunk), else an address of the node's shared pool.
// For a member, the reservation's ENI is the trunk (what the pod is
// plumbed on) and member is the pod's own ENI; it is nil otherwise.
func allocate(ctx context.Context, env *node.Env, spec ipam.Node, owner ipam.Owner, want podnetwork.Request) (res ipam.Reservation, member *store.ENI, err error) {
	if !wantsMember(spec, env, want) {
		res, err = ipam.Allocate(ctx, env.Store, env.Cloud(), spec, env.Config, owner)
		return res, nil, err
	}
	if want.Fixed {
		return res, nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("PodNetworking %q asks for a fixed address (allocationType Fixed)", want.Networking),
			"fixed addresses are not implemented for trunk members; use allocationType Elastic")
	}
	m, err := ipam.AllocateMember(ctx, env.Store, env.Cloud(), spec, env.Config, owner, ipam.MemberRequest{
		SecurityGroupIDs: want.SecurityGroupIDs,
		VSwitchIDs:       want.VSwitchIDs,
	})
	if err != nil {
		return res, nil, err
	}
	return m.Reservation, &m.Member, nil
}

// wantsMember reports whether the pod gets a trunk member.
func wantsMember(spec ipam.Node, env *node.Env, want podnetwork.Request) bool {
	switch want.Kind {
	case podnetwork.Member:
		return true // on a node without a trunk, AllocateMember says why not
	case podnetwork.NodeDefault:
		return ipam.TrunkEnabled(spec, env.Config)
	}
	return false
}

// memberAllocationError is allocationError's answer for member ENIs, or
// nil when err is none of theirs.
func memberAllocationError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrMemberLimit):
		// Another pod's member going frees one: kubelet's retry may work.
		return types.NewError(types.ErrTryAgainLater, "the node's trunk has no room for another member ENI", err.Error()+" (schedule fewer trunk pods on this node, or use a larger instance type)")
	case errors.Is(err, ipam.ErrNoTrunk):
		return types.NewError(types.ErrInvalidNetworkConfig, "the pod asks for a trunk member ENI and this node has no trunk", err.Error()+" (set enable_eni_trunking on nodes of an instance type with EniTrunkSupported, or change the PodNetworking)")
	}
	return nil
}
