package sim

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNew_Validate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"no region", func(c *Config) { c.RegionID = "" }, "region"},
		{"bad vpc id", func(c *Config) { c.VPCID = "net-1" }, "vpc id"},
		{"unmasked vpc cidr", func(c *Config) { c.VPCCIDR = netip.MustParsePrefix("172.30.0.1/16") }, "vpc cidr"},
		{"no vswitches", func(c *Config) { c.VSwitches = nil }, "no vswitches"},
		{"duplicate vswitch", func(c *Config) { c.VSwitches[1].ID = c.VSwitches[0].ID }, "twice"},
		{"vswitch outside vpc", func(c *Config) { c.VSwitches[0].CIDR = netip.MustParsePrefix("10.0.0.0/24") }, "outside"},
		{"overlap", func(c *Config) { c.VSwitches[1].CIDR = netip.MustParsePrefix("172.30.1.0/25") }, "overlaps"},
		{"too small", func(c *Config) { c.VSwitches[0].CIDR = netip.MustParsePrefix("172.30.1.0/30") }, "/29"},
		{"no zone", func(c *Config) { c.VSwitches[0].ZoneID = "" }, "zone"},
		{"bad type", func(c *Config) { c.InstanceTypes = []InstanceType{{ID: "ecs.x", ENIs: 0, IPv4PerENI: 1}} }, "ecs.x"},
		{"bad sg", func(c *Config) { c.SecurityGroups = []string{"default"} }, "security group"},
		{"negative delay", func(c *Config) { c.AttachDelay = -1 }, "negative"},
		{"empty secret", func(c *Config) { c.Credentials = map[string]string{"ak": ""} }, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			c, err := New(cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = c.Close()
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCloud_AddInstance(t *testing.T) {
	c, _ := mustCloud(t, func(cfg *Config) {
		cfg.VSwitches = append(cfg.VSwitches, VSwitchSpec{ID: "vsw-sim-full", ZoneID: "z", CIDR: netip.MustParsePrefix("172.30.8.0/29")})
	})
	inst := mustInstance(t, c, InstanceSpec{})
	if !strings.HasPrefix(inst.ID, "i-") || inst.Hostname != inst.ID || inst.Type != "ecs.g7.large" ||
		inst.VSwitchID != "vsw-sim-a" || inst.SecurityGroupID != DefaultSecurityGroupID || inst.ZoneID != "cn-hangzhou-h" ||
		inst.PrimaryIP != netip.MustParseAddr("172.30.1.1") || inst.Gateway != netip.MustParseAddr("172.30.1.253") ||
		!strings.HasPrefix(inst.PrimaryENIID, "eni-") || inst.PrimaryMAC[0] != 0 || inst.PrimaryMAC[1] != 0x16 || inst.PrimaryMAC[2] != 0x3e {
		t.Fatalf("defaults: %+v", inst)
	}
	for range 4 { // a /29 has 4 usable addresses
		mustInstance(t, c, InstanceSpec{VSwitchID: "vsw-sim-full"})
	}
	tests := []struct {
		name string
		spec InstanceSpec
		want error
	}{
		{"duplicate", InstanceSpec{ID: inst.ID}, ErrInstanceExists},
		{"unknown type", InstanceSpec{Type: "ecs.nope"}, ErrUnknownInstanceType},
		{"unknown vswitch", InstanceSpec{VSwitchID: "vsw-nope"}, ErrUnknownVSwitch},
		{"unknown security group", InstanceSpec{SecurityGroupID: "sg-nope"}, ErrUnknownSecurityGroup},
		{"full vswitch", InstanceSpec{VSwitchID: "vsw-sim-full"}, ErrVSwitchFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.AddInstance(tt.spec); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	_ = c.Close()
	if _, err := c.AddInstance(InstanceSpec{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestVSwitch_Addresses(t *testing.T) {
	tests := []struct {
		cidr                 string
		total                int
		first, last, gateway string
		netmask              string
	}{
		{"172.30.1.0/24", 252, "172.30.1.1", "172.30.1.252", "172.30.1.253", "255.255.255.0"},
		{"172.30.9.0/28", 12, "172.30.9.1", "172.30.9.12", "172.30.9.13", "255.255.255.240"},
		{"10.0.0.0/16", 65532, "10.0.0.1", "10.0.255.252", "10.0.255.253", "255.255.0.0"},
		{"10.1.0.0/29", 4, "10.1.0.1", "10.1.0.4", "10.1.0.5", "255.255.255.248"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			v := newVSwitch(VSwitchSpec{ID: "vsw-x", ZoneID: "z", CIDR: netip.MustParsePrefix(tt.cidr)})
			if v.total != tt.total || v.first.String() != tt.first || v.last.String() != tt.last ||
				v.gateway.String() != tt.gateway || v.netmask() != tt.netmask {
				t.Fatalf("total %d first %s last %s gateway %s netmask %s", v.total, v.first, v.last, v.gateway, v.netmask())
			}
			if v.usable(v.gateway) || v.usable(v.CIDR.Addr()) {
				t.Fatal("reserved address usable")
			}
		})
	}
	t.Run("exhaust and release", func(t *testing.T) {
		v := newVSwitch(VSwitchSpec{ID: "vsw-x", ZoneID: "z", CIDR: netip.MustParsePrefix("10.1.0.0/29")})
		got, ok := v.allocate(4)
		if !ok || len(got) != 4 || v.free() != 0 {
			t.Fatalf("allocate 4: %v %v free %d", got, ok, v.free())
		}
		if _, ok := v.allocate(1); ok {
			t.Fatal("allocated from a full vswitch")
		}
		v.release(got[2])
		if again, ok := v.allocate(1); !ok || again[0] != got[2] {
			t.Fatalf("reallocated %v", again)
		}
	})
}
