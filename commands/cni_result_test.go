package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
)

// Ensure a dual-stack ADD's result carries both addresses and both
// default routes at every spec version veni speaks, the IPv6 behind
// fe80::1, and an IPv4-only result stays as it was.
func TestAddResult_DualStack_Versions(t *testing.T) {
	pod := netplumb.PodResult{
		Host:   netplumb.Interface{Name: "veni0123456789a", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		Pod:    netplumb.Interface{Name: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}},
		Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
	}
	ip, ip6 := netip.MustParseAddr("172.30.1.7"), netip.MustParseAddr("fd00:ac1e:1::12")
	res := addResult(pod, ip, ip6, "/run/netns/p", types.DNS{})
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			conv, err := res.GetAsVersion(v)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(conv)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				IPs []struct {
					Version string `json:"version"`
					Address string `json:"address"`
					Gateway string `json:"gateway"`
				} `json:"ips"`
				Routes []struct {
					Dst string `json:"dst"`
					GW  string `json:"gw"`
				} `json:"routes"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.IPs) != 2 || got.IPs[0].Address != "172.30.1.7/32" || got.IPs[1].Address != "fd00:ac1e:1::12/128" || got.IPs[1].Gateway != "fe80::1" {
				t.Fatalf("ips %+v (%s)", got.IPs, raw)
			}
			if old := strings.HasPrefix(v, "0."); old && (got.IPs[0].Version != "4" || got.IPs[1].Version != "6") {
				t.Fatalf("ip versions %+v at %s", got.IPs, v)
			}
			if len(got.Routes) != 2 || got.Routes[1].Dst != "::/0" || got.Routes[1].GW != "fe80::1" || got.Routes[0].GW != "169.254.1.1" {
				t.Fatalf("routes %+v", got.Routes)
			}
		})
	}
	pod.Routes = pod.Routes[:1]
	if v4 := addResult(pod, ip, netip.Addr{}, "/run/netns/p", types.DNS{}); len(v4.IPs) != 1 || len(v4.Routes) != 1 {
		t.Fatalf("ipv4-only result %+v", v4)
	}
}

// Ensure a node whose stack cannot be had or cannot change gets CNI error
// 7 (retrying cannot help) with what to do, not "try again later".
func TestAllocationError_Stack(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("reserve ip for c/eth0: %w", ipam.ErrStackMismatch),
		fmt.Errorf("grow: %w", eni.ErrIPv6Unsupported),
	} {
		var cniErr *types.Error
		if !errors.As(allocationError(err), &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig {
			t.Fatalf("allocationError(%v) = %v, want code %d", err, allocationError(err), types.ErrInvalidNetworkConfig)
		}
	}
}
