package datapath

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/store"
)

func TestDecide(t *testing.T) {
	missing := func() error {
		return errors.Join(fastpath.ErrNotSupported, errors.New("kernel lacks tcx links (Linux 6.6)"))
	}
	ok := func() error { return nil }
	cases := []struct {
		name       string
		mode       string
		probe      func() error
		wantActive string
		wantReason string
	}{
		{"auto on a capable kernel", config.DatapathAuto, ok, config.DatapathEBPF, "supports"},
		{"auto on an old kernel", config.DatapathAuto, missing, config.DatapathPlain, "tcx links"},
		{"ebpf on a capable kernel", config.DatapathEBPF, ok, config.DatapathEBPF, "configured ebpf"},
		{"ebpf on an old kernel falls back", config.DatapathEBPF, missing, config.DatapathPlain, "tcx links"},
		{"plain never probes", config.DatapathPlain, func() error { t.Error("probe called for plain"); return nil }, config.DatapathPlain, "configured plain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.mode, tc.probe)
			if d.Active != tc.wantActive || d.EBPF() != (tc.wantActive == config.DatapathEBPF) {
				t.Errorf("Decide(%s) = %+v, want active %s", tc.mode, d, tc.wantActive)
			}
			if d.Configured != tc.mode || !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("Decide(%s) = %+v, want configured %s and a reason with %q", tc.mode, d, tc.mode, tc.wantReason)
			}
		})
	}
}

func TestMissing(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{fastpath.ErrNotSupported, true},
		{errors.Join(errors.New("open"), fastpath.ErrNotBPFFS), true},
		{fastpath.ErrInvalidEndpoint, false},
		{errors.New("permission denied"), false},
		{nil, false},
	}
	for _, tc := range cases {
		if got := Missing(tc.err); got != tc.want {
			t.Errorf("Missing(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestPinDirUnder(t *testing.T) {
	cases := []struct {
		id, want string
		wantErr  bool
	}{
		{"i-abc123", "/sys/fs/bpf/veni/i-abc123", false},
		{"", "", true},
		{"..", "", true},
		{"../etc", "", true},
		{"a/b", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			got, err := PinDirUnder(fastpath.DefaultPinRoot, tc.id)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("PinDirUnder(%q) = %q, %v; want %q, error %v", tc.id, got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := PinDir(""); !errors.Is(err, ErrNoInstance) {
		t.Errorf("PinDir(\"\") = %v, want ErrNoInstance", err)
	}
}

func TestHostStack(t *testing.T) {
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	cfg, _, err := config.Parse([]byte(`{"service_cidr": "192.168.0.0/16,fd00::/108", "host_stack_cidrs": ["169.254.20.10/32"]}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		node  store.NodeInfo
		enis  []store.ENI
		nodes []netip.Addr
	}{
		{"no facts yet", store.NodeInfo{}, nil, nil},
		{"primary and eni addresses, sorted and unique", store.NodeInfo{PrimaryIP: a("172.30.1.20")},
			[]store.ENI{{PrimaryIP: a("172.30.1.9")}, {PrimaryIP: a("172.30.1.20")}, {}},
			[]netip.Addr{a("172.30.1.9"), a("172.30.1.20")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := HostStack(cfg, tc.node, tc.enis)
			if want := []netip.Prefix{p("192.168.0.0/16"), p("fd00::/108")}; !slices.Equal(hs.ServiceCIDRs, want) {
				t.Errorf("ServiceCIDRs = %v, want %v", hs.ServiceCIDRs, want)
			}
			if want := []netip.Prefix{p("169.254.20.10/32")}; !slices.Equal(hs.CIDRs, want) {
				t.Errorf("CIDRs = %v, want %v", hs.CIDRs, want)
			}
			if !slices.Equal(hs.NodeAddrs, tc.nodes) {
				t.Errorf("NodeAddrs = %v, want %v", hs.NodeAddrs, tc.nodes)
			}
			if !SameHostStack(hs, HostStack(cfg, tc.node, tc.enis)) {
				t.Error("SameHostStack of two equal host stacks is false")
			}
		})
	}
	one := HostStack(cfg, store.NodeInfo{PrimaryIP: a("172.30.1.20")}, nil)
	two := HostStack(cfg, store.NodeInfo{PrimaryIP: a("172.30.1.21")}, nil)
	if SameHostStack(one, two) {
		t.Error("SameHostStack ignores a changed node address")
	}
}

func TestLoadHostStack(t *testing.T) {
	db := store.File{Path: t.TempDir() + "/veni.db"}
	node := store.NodeInfo{InstanceID: "i-1", PrimaryIP: netip.MustParseAddr("172.30.1.20")}
	if err := db.Update(func(tx *store.WriteTx) error { return tx.PutNode(node) }); err != nil {
		t.Fatal(err)
	}
	hs, err := LoadHostStack(db, config.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hs.NodeAddrs, []netip.Addr{node.PrimaryIP}) || hs.ServiceCIDRs != nil {
		t.Errorf("LoadHostStack = %+v, want only the node's primary ip", hs)
	}
}
