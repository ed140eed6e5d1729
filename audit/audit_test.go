package audit

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// fakeCloud answers ENIs from a fixed list; the audit calls nothing else.
type fakeCloud struct {
	eni.Client
	enis []eni.ENI
}

func (f *fakeCloud) ENIs(_ context.Context, filter eni.ENIFilter) ([]eni.ENI, error) {
	var out []eni.ENI
	for _, e := range f.enis {
		if filter.InstanceID != "" && e.InstanceID != filter.InstanceID {
			continue
		}
		match := true
		for k, v := range filter.Tags {
			if e.Tags[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, e)
		}
	}
	return out, nil
}

const instance = "i-audit"

var (
	eniA   = "eni-a"
	addrA1 = netip.MustParseAddr("172.30.1.10")
	addrA2 = netip.MustParseAddr("172.30.1.11")
)

// mustNode writes a node with one ready ENI, a bound and a free IP, and
// returns the store and a cloud that agrees with it.
func mustNode(tb testing.TB) (store.File, *fakeCloud) {
	tb.Helper()
	db := store.File{Path: filepath.Join(tb.TempDir(), "veni.db")}
	now := time.Now()
	err := db.Update(func(tx *store.WriteTx) error {
		if err := tx.PutENI(store.ENI{
			ID: eniA, MAC: "00:16:3e:00:00:0a", InstanceID: instance, VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("172.30.1.0/24"), Gateway: netip.MustParseAddr("172.30.1.253"),
			PrimaryIP: netip.MustParseAddr("172.30.1.2"), Owned: true, State: store.ENIReady, CreatedAt: now,
		}); err != nil {
			return err
		}
		key := store.NewOwnerKey("c1", "eth0")
		if err := tx.PutIP(store.IP{Addr: addrA1, ENIID: eniA, State: store.IPBound, Owner: key, AddedAt: now}); err != nil {
			return err
		}
		if err := tx.PutIP(store.IP{Addr: addrA2, ENIID: eniA, State: store.IPFree, AddedAt: now, FreeSince: now}); err != nil {
			return err
		}
		return tx.PutAllocation(store.Allocation{ContainerID: "c1", IfName: "eth0", IP: addrA1, ENIID: eniA,
			State: store.IPBound, ReservedBy: 1, ReservedAt: now, BoundAt: now, NetNS: "/proc/self/ns/net"})
	})
	if err != nil {
		tb.Fatal(err)
	}
	mac, _ := net.ParseMAC("00:16:3e:00:00:0a")
	return db, &fakeCloud{enis: []eni.ENI{
		{ID: "eni-primary", Type: eni.TypePrimary, Status: eni.StatusInUse, InstanceID: instance, PrivateIPs: []netip.Addr{netip.MustParseAddr("172.30.1.1")}},
		{ID: eniA, Type: eni.TypeSecondary, Status: eni.StatusInUse, InstanceID: instance, MAC: mac,
			PrivateIPs: []netip.Addr{netip.MustParseAddr("172.30.1.2"), addrA1, addrA2},
			Tags:       map[string]string{ipam.TagCreator: ipam.TagCreatorValue, ipam.TagInstance: instance}},
	}}
}

func kinds(r Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Kind)
	}
	slices.Sort(out)
	return out
}

func TestRun_Cloud(t *testing.T) {
	node := store.NodeInfo{InstanceID: instance, PrimaryENIID: "eni-primary"}
	cases := []struct {
		name   string
		mutate func(*fakeCloud)
		want   []string
	}{
		{"consistent", func(*fakeCloud) {}, nil},
		{"bound ip unassigned in cloud", func(c *fakeCloud) {
			c.enis[1].PrivateIPs = slices.DeleteFunc(c.enis[1].PrivateIPs, func(a netip.Addr) bool { return a == addrA1 })
		}, []string{KindCloudIP}},
		{"free ip unassigned in cloud is fine", func(c *fakeCloud) {
			c.enis[1].PrivateIPs = slices.DeleteFunc(c.enis[1].PrivateIPs, func(a netip.Addr) bool { return a == addrA2 })
		}, nil},
		{"eni detached in cloud", func(c *fakeCloud) {
			c.enis[1].Status, c.enis[1].InstanceID = eni.StatusAvailable, ""
		}, []string{KindCloudENI}},
		{"leaked veni eni", func(c *fakeCloud) {
			c.enis = append(c.enis, eni.ENI{ID: "eni-leak", Status: eni.StatusAvailable,
				Tags: map[string]string{ipam.TagCreator: ipam.TagCreatorValue, ipam.TagInstance: instance}})
		}, []string{KindLeakedENI}},
		{"foreign eni is not ours", func(c *fakeCloud) {
			c.enis = append(c.enis, eni.ENI{ID: "eni-other", Status: eni.StatusInUse, InstanceID: instance})
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustNode(t)
			tc.mutate(cloud)
			rep, err := Run(context.Background(), db, Options{Cloud: cloud, Node: node})
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(rep); !slices.Equal(got, tc.want) {
				t.Fatalf("problems %v, want %v:\n%v", got, tc.want, rep.Problems)
			}
			if rep.OK() != (len(tc.want) == 0) {
				t.Fatalf("OK() = %v with problems %v", rep.OK(), rep.Problems)
			}
		})
	}
}

func TestRun_OwnerGone(t *testing.T) {
	db, _ := mustNode(t)
	rep, err := Run(context.Background(), db, Options{OwnerAlive: func(store.Allocation) (bool, string) { return false, "test" }})
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(rep); !slices.Equal(got, []string{KindOwnerGone}) {
		t.Fatalf("problems %v, want owner-gone", rep.Problems)
	}
	if rep.ENIs != 1 || rep.IPs != 2 || rep.Allocations != 1 {
		t.Fatalf("counts %+v", rep)
	}
}
