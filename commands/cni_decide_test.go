package commands

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/store"
)

// Ensure an ADD decides its pod's route and fixed policy in one place:
// a member where the pod asks for Trunk (or Default on a trunk node), an
// exclusive ENI on an exclusive node, the shared pool otherwise; a fixed
// policy exactly when the PodNetworking is Fixed, whatever the route; and
// CNI error 7 for what the node does not serve.
func TestDecideNetwork(t *testing.T) {
	shared, trunk, exclusive := config.DefaultConfig(), config.DefaultConfig(), config.DefaultConfig()
	trunk.EnableENITrunking = true
	exclusive.ExclusiveENIType = config.ExclusiveENIOnly
	spec := ipam.Node{Limits: eni.InstanceLimits{TrunkSupported: true, MemberENIs: 6}}
	owner := ipam.Owner{PodNamespace: "ns", PodName: "db-0"}
	fixed := podnetwork.Request{Networking: "db", Kind: podnetwork.NodeDefault, Fixed: true, ReleaseAfter: time.Minute}
	for _, tc := range []struct {
		name  string
		cfg   config.Config
		want  podnetwork.Request
		route podRoute
		fixed bool
		code  uint
	}{
		{"shared pod", shared, podnetwork.Request{}, routeShared, false, 0},
		{"trunk, Default", trunk, podnetwork.Request{Kind: podnetwork.NodeDefault}, routeMember, false, 0},
		{"trunk, Default, Fixed", trunk, fixed, routeMember, true, 0},
		{"shared node, Trunk", shared, podnetwork.Request{Kind: podnetwork.Member}, routeMember, false, 0},
		{"exclusive, no PodNetworking", exclusive, podnetwork.Request{}, routeExclusive, false, 0},
		{"exclusive, Fixed", exclusive, fixed, routeExclusive, true, 0},
		{"exclusive, Trunk", exclusive, podnetwork.Request{Kind: podnetwork.Member}, 0, false, types.ErrInvalidNetworkConfig},
		{"shared node, Default", shared, fixed, 0, true, types.ErrInvalidNetworkConfig},
		{"trunk node, ENI", trunk, podnetwork.Request{Kind: podnetwork.Exclusive}, 0, false, types.ErrInvalidNetworkConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pn, err := decideNetwork(&node.Env{Config: tc.cfg}, spec, store.NodeInfo{InstanceID: "i-1"}, owner, tc.want)
			var cniErr *types.Error
			switch {
			case tc.code != 0:
				if !errors.As(err, &cniErr) || cniErr.Code != tc.code {
					t.Fatalf("err %v, want CNI error %d", err, tc.code)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if pn.route != tc.route || (pn.fixed != nil) != tc.fixed {
				t.Fatalf("route %d fixed %+v, want route %d fixed %t", pn.route, pn.fixed, tc.route, tc.fixed)
			}
			if tc.fixed && (pn.fixed.ReleaseAfter != time.Minute || pn.fixed.Networking != "db") {
				t.Fatalf("fixed policy %+v", pn.fixed)
			}
		})
	}
}

// Ensure a fixed ENI's troubles reach the runtime as CNI errors that say
// what is wrong and what to do: still on its old node, 11 and retry;
// another zone, 7, both zones and how out of it.
func TestFixedAllocationError(t *testing.T) {
	busy := &ipam.FixedError{Pod: "ns/db-0", ENI: "eni-x", IP: "10.0.0.9", Status: "InUse", Instance: "i-old", Err: ipam.ErrFixedElsewhere}
	zone := &ipam.FixedError{Pod: "ns/db-0", ENI: "eni-x", IP: "10.0.0.9", Zone: "zone-a", NodeZone: "zone-b", Err: ipam.ErrFixedZone, Cause: eni.ErrZoneMismatch}
	for _, tc := range []struct {
		err  error
		code uint
		want []string
	}{
		{busy, types.ErrTryAgainLater, []string{"fixed ENI eni-x", "still attached to instance i-old; retry"}},
		{zone, types.ErrInvalidNetworkConfig, []string{"zone zone-a", "zone zone-b", "cannot leave its zone", "veni ipam fixed release ns/db-0"}},
	} {
		var cniErr *types.Error
		if err := allocationError(tc.err); !errors.As(err, &cniErr) || cniErr.Code != tc.code {
			t.Fatalf("%v: %v, want code %d", tc.err, err, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(cniErr.Msg+" "+cniErr.Details, w) {
				t.Errorf("%v: %q does not say %q", tc.err, cniErr.Msg+" "+cniErr.Details, w)
			}
		}
	}
}
