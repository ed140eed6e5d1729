package fastpath

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

func TestSupported_ThisKernel(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.SkipOnOldKernel(t, "6.8", "bpf_fib_lookup with a table id")
	if err := Supported(); err != nil {
		t.Fatalf("Supported() = %v on a kernel that has everything", err)
	}
}

func TestOpen_Errors(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name string
		dir  string
		want error
	}{
		{"no pin dir", "", ErrInvalidOptions},
		{"not bpffs", t.TempDir(), ErrNotBPFFS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(Options{PinDir: tc.dir})
			if err == nil {
				d.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open(%q) = %v, want %v", tc.dir, err, tc.want)
			}
		})
	}
}

func TestTeardown_Refuses(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name string
		dir  string
		want error
	}{
		{"empty", "", ErrInvalidOptions},
		{"not bpffs", t.TempDir(), ErrNotBPFFS},
		{"bpffs root", bpffsMount, ErrInvalidOptions},
	}
	mustOpen(t, Options{PinDir: mustPinDir(t)})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Teardown(tc.dir); !errors.Is(err, tc.want) {
				t.Fatalf("Teardown(%q) = %v, want %v", tc.dir, err, tc.want)
			}
		})
	}
	if err := Teardown(filepath.Join(testPinRoot, "never-created")); err != nil {
		t.Errorf("Teardown of a missing dir = %v, want nil", err)
	}
}

// A second Open (the next CNI invocation) sees what the first wrote.
func TestOpen_ReusesPinnedMaps(t *testing.T) {
	testutil.RequireRoot(t)
	dir := mustPinDir(t)
	first := mustOpen(t, Options{PinDir: dir, HostStack: &HostStack{
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
	}})
	ep := Endpoint{
		IP: netip.MustParseAddr("10.0.0.5"), HostIfindex: 1,
		HostMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, PodMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		ENIIfindex: 1, ENITable: 1001,
	}
	key := ep.IP.As4()
	var val fastpathEndpoint
	val.HostIfindex, val.EniIfindex, val.EniTable = 1, 1, 1001
	copy(val.HostMac[:], ep.HostMAC)
	copy(val.PodMac[:], ep.PodMAC)
	if err := first.objs.VeniEndpoints.Put(key, val); err != nil {
		t.Fatal(err)
	}

	second := mustOpen(t, Options{PinDir: dir}) // nil HostStack keeps it
	got, ok, err := second.Endpoint(ep.IP)
	if err != nil || !ok {
		t.Fatalf("Endpoint via second Open: ok=%v err=%v", ok, err)
	}
	if got.ENITable != ep.ENITable || got.PodMAC.String() != ep.PodMAC.String() || got.HostMAC.String() != ep.HostMAC.String() {
		t.Errorf("Endpoint = %+v, want %+v", got, ep)
	}
	prefixes, err := second.HostStackPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	if prefixes[netip.MustParsePrefix("10.96.0.0/12")] != "service" {
		t.Errorf("host stack after reopen = %v", prefixes)
	}
}

func TestDatapath_SetHostStack_Replaces(t *testing.T) {
	testutil.RequireRoot(t)
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	p := netip.MustParsePrefix
	steps := []struct {
		name string
		hs   HostStack
		want []string
	}{
		{"initial", HostStack{
			ServiceCIDRs: []netip.Prefix{p("10.96.0.0/12")},
			CIDRs:        []netip.Prefix{p("169.254.20.10/32")},
			NodeAddrs:    []netip.Addr{netip.MustParseAddr("10.99.0.10")},
		}, []string{"10.96.0.0/12 service", "10.99.0.10/32 node", "169.254.20.10/32 cidr"}},
		{"service moved, dns dropped", HostStack{
			ServiceCIDRs: []netip.Prefix{p("172.16.0.0/16")},
			NodeAddrs:    []netip.Addr{netip.MustParseAddr("10.99.0.10")},
		}, []string{"10.99.0.10/32 node", "172.16.0.0/16 service"}},
		{"cleared", HostStack{}, nil},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if err := d.SetHostStack(step.hs); err != nil {
				t.Fatal(err)
			}
			m, err := d.HostStackPrefixes()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for pfx, why := range m {
				got = append(got, pfx.String()+" "+why)
			}
			slices.Sort(got)
			if !slices.Equal(got, step.want) {
				t.Errorf("host stack = %v, want %v", got, step.want)
			}
		})
	}
}

func TestDatapath_AttachPod_Invalid(t *testing.T) {
	testutil.RequireRoot(t)
	d := mustOpen(t, Options{PinDir: mustPinDir(t)})
	err := d.AttachPod(Endpoint{IP: netip.MustParseAddr("10.0.0.5")})
	if !errors.Is(err, ErrInvalidEndpoint) {
		t.Fatalf("AttachPod(incomplete) = %v, want ErrInvalidEndpoint", err)
	}
	if err := d.DetachPod(netip.MustParseAddr("10.0.0.5")); err != nil {
		t.Errorf("DetachPod of an unknown pod = %v, want nil", err)
	}
	if err := d.DetachENI(12345); err != nil {
		t.Errorf("DetachENI of an unattached ENI = %v, want nil", err)
	}
}

// Ensure a second Open takes the programs from their pins instead of
// loading (and verifying) them again, and that Teardown removes those pins.
func TestOpen_ReusesPinnedPrograms(t *testing.T) {
	testutil.RequireRoot(t)
	dir := mustPinDir(t)
	first := mustOpen(t, Options{PinDir: dir})
	second := mustOpen(t, Options{PinDir: dir})
	for name, p := range first.pinnedPrograms() {
		a, err := (*p).Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := (*second.pinnedPrograms()[name]).Info()
		if err != nil {
			t.Fatal(err)
		}
		idA, _ := a.ID()
		idB, _ := b.ID()
		if idA != idB {
			t.Errorf("program %s: second Open has id %d, first %d (loaded again instead of reusing the pin)", name, idB, idA)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, progsDirName)); err != nil {
		t.Fatalf("program pins: %v", err)
	}
	first.Close()
	second.Close()
	if err := Teardown(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("pin dir after Teardown: %v", err)
	}
}
