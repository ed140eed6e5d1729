package netplumb

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestHostVethName_Derive(t *testing.T) {
	tests := []struct {
		name         string
		id, ifName   string
		otherID      string
		otherIfName  string
		wantSameName bool
	}{
		{name: "same attachment", id: "abc", ifName: "eth0", otherID: "abc", otherIfName: "eth0", wantSameName: true},
		{name: "other container", id: "abc", ifName: "eth0", otherID: "abd", otherIfName: "eth0"},
		{name: "other ifname", id: "abc", ifName: "eth0", otherID: "abc", otherIfName: "eth1"},
		{name: "long id", id: strings.Repeat("f", 64), ifName: "eth0", otherID: strings.Repeat("f", 63), otherIfName: "eth0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := HostVethName(tt.id, tt.ifName)
			b := HostVethName(tt.otherID, tt.otherIfName)
			if len(a) != 15 || !strings.HasPrefix(a, HostVethPrefix) {
				t.Fatalf("HostVethName = %q, want %q + 11 characters", a, HostVethPrefix)
			}
			if (a == b) != tt.wantSameName {
				t.Fatalf("names %q and %q: same = %v, want %v", a, b, a == b, tt.wantSameName)
			}
		})
	}
}

func TestENIConfig_Validate(t *testing.T) {
	good := ENIConfig{
		MAC:         net.HardwareAddr{2, 0, 0, 0, 1, 1},
		VSwitchCIDR: netip.MustParsePrefix("10.0.1.0/24"),
		Gateway:     netip.MustParseAddr("10.0.1.253"),
		Table:       1001,
	}
	tests := []struct {
		name   string
		mutate func(*ENIConfig)
		ok     bool
	}{
		{name: "no table", mutate: func(c *ENIConfig) { c.Table = 0 }},
		{name: "kernel table", mutate: func(c *ENIConfig) { c.Table = 255 }},
		{name: "small table", mutate: func(c *ENIConfig) { c.Table = 7 }, ok: true},
		{name: "good", mutate: func(*ENIConfig) {}, ok: true},
		{name: "no mac", mutate: func(c *ENIConfig) { c.MAC = nil }},
		{name: "no cidr", mutate: func(c *ENIConfig) { c.VSwitchCIDR = netip.Prefix{} }},
		{name: "ipv6 cidr", mutate: func(c *ENIConfig) { c.VSwitchCIDR = netip.MustParsePrefix("fd00::/64") }},
		{name: "gateway outside", mutate: func(c *ENIConfig) { c.Gateway = netip.MustParseAddr("10.0.2.1") }},
		{name: "negative mtu", mutate: func(c *ENIConfig) { c.MTU = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			err := c.validate()
			if tt.ok != (err == nil) {
				t.Fatalf("validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestPodConfig_ValidateSetup(t *testing.T) {
	good := PodConfig{
		ContainerID: "abc", IfName: "eth0", ContainerNetNS: "/run/netns/x",
		IP:  netip.MustParseAddr("10.0.1.10"),
		ENI: ENILink{Name: "eth1", Index: 3, Table: 1003, VSwitchCIDR: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.253")},
	}
	tests := []struct {
		name   string
		mutate func(*PodConfig)
		ok     bool
	}{
		{name: "good", mutate: func(*PodConfig) {}, ok: true},
		{name: "no container id", mutate: func(c *PodConfig) { c.ContainerID = "" }},
		{name: "no netns", mutate: func(c *PodConfig) { c.ContainerNetNS = "" }},
		{name: "no ip", mutate: func(c *PodConfig) { c.IP = netip.Addr{} }},
		{name: "eni not ensured", mutate: func(c *PodConfig) { c.ENI = ENILink{Name: "eth1"} }},
		{name: "long ifname", mutate: func(c *PodConfig) { c.IfName = "eth0123456789012" }},
		{name: "eni without subnet", mutate: func(c *PodConfig) { c.ENI.VSwitchCIDR = netip.Prefix{} }},
		{name: "tiny mtu", mutate: func(c *PodConfig) { c.MTU = 68 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			err := c.validateSetup()
			if tt.ok != (err == nil) {
				t.Fatalf("validateSetup() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("validateSetup() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
