package ipam

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

const testInstance = "i-test"

// mustStore returns a store opened per transaction, the way veni's roles
// use it, and checks the store's invariants at cleanup.
func mustStore(tb testing.TB) store.File {
	tb.Helper()
	f := store.File{Path: filepath.Join(tb.TempDir(), "veni.db")}
	tb.Cleanup(func() {
		err := f.View(func(tx *store.ReadTx) error {
			for _, v := range tx.Check() {
				tb.Errorf("store invariant: %s", v)
			}
			return nil
		})
		if err != nil {
			tb.Errorf("check store: %v", err)
		}
	})
	return f
}

func testNode() Node {
	return Node{
		InstanceID:   testInstance,
		Limits:       eni.InstanceLimits{InstanceType: "ecs.g7.large", ENIs: 3, IPv4PerENI: 6},
		ZoneID:       "zone-a",
		PrimaryENIID: "eni-primary",
		VSwitchID:    "vsw-a",
		HostPods:     func(context.Context) ([]HostPod, error) { return nil, nil },
	}
}

func testConfig() config.Config {
	c := config.DefaultConfig()
	c.SecurityGroups = []string{"sg-1"}
	c.VSwitches = map[string][]string{"zone-a": {"vsw-a"}}
	c.VSwitchPolicy = config.VSwitchOrdered
	c.PollInterval = config.Duration(5 * time.Millisecond)
	c.AllocWait = config.Duration(3 * time.Second)
	c.AttachTimeout = config.Duration(2 * time.Second)
	c.LeaseTTL = config.Duration(10 * time.Second)
	return c
}

func mustUpdate(tb testing.TB, db Store, fn func(*store.WriteTx) error) {
	tb.Helper()
	if err := db.Update(fn); err != nil {
		tb.Fatalf("update store: %v", err)
	}
}

// mustENI creates an ENI attached to the test instance in the cloud with
// ips secondary IPs, and records it ready in the store with the IPs free
// since freeSince.
func mustENI(tb testing.TB, db Store, cloud *fakeCloud, id string, owned bool, ips int, freeSince time.Time) []netip.Addr {
	tb.Helper()
	cloud.mu.Lock()
	primary, err := cloud.takeIP("vsw-a")
	if err != nil {
		tb.Fatal(err)
	}
	e := &eni.ENI{
		ID: id, Type: eni.TypeSecondary, Status: eni.StatusInUse, InstanceID: testInstance, VSwitchID: "vsw-a",
		MAC: net.HardwareAddr{2, 0, 0, 0, 9, byte(len(cloud.enis))}, PrimaryIP: primary, PrivateIPs: []netip.Addr{primary},
	}
	if owned {
		e.Tags = map[string]string{TagCreator: TagCreatorValue, TagInstance: testInstance}
	}
	for range ips {
		a, err := cloud.takeIP("vsw-a")
		if err != nil {
			tb.Fatal(err)
		}
		e.PrivateIPs = append(e.PrivateIPs, a)
	}
	cloud.enis[id] = e
	cloud.mu.Unlock()
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		err := tx.PutENI(store.ENI{
			ID: id, MAC: e.MAC.String(), InstanceID: testInstance, VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.253"),
			PrimaryIP: primary, Owned: owned, State: store.ENIReady, CreatedAt: freeSince,
		})
		if err != nil {
			return err
		}
		for _, a := range e.PrivateIPs[1:] {
			if err := tx.PutIP(store.IP{Addr: a, ENIID: id, State: store.IPFree, AddedAt: freeSince, FreeSince: freeSince}); err != nil {
				return err
			}
		}
		return nil
	})
	return e.PrivateIPs[1:]
}

func owner(cid string) Owner {
	return Owner{ContainerID: cid, IfName: "eth0", PodNamespace: "default", PodName: "pod-" + cid}
}

func mustReserve(tb testing.TB, db Store, cid string, bind bool) Reservation {
	tb.Helper()
	r, err := Reserve(db, owner(cid))
	if err != nil {
		tb.Fatalf("reserve %s: %v", cid, err)
	}
	if bind {
		if err := Commit(db, r.Key, HostSide{}, nil); err != nil {
			tb.Fatalf("commit %s: %v", cid, err)
		}
	}
	return r
}

func wantErr(tb testing.TB, err, want error) {
	tb.Helper()
	switch {
	case want == nil && err != nil:
		tb.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		tb.Fatalf("error = %v, want %v", err, want)
	}
}

func poolCounts(tb testing.TB, db Store) (idle, used int) {
	tb.Helper()
	var p pool
	var err error
	if p, err = snapshot(db); err != nil {
		tb.Fatal(err)
	}
	return countPool(p)
}

var bg = context.Background()

// mustHoldAllocator holds the node's allocator claim, as another live
// process would, until the test ends.
func mustHoldAllocator(tb testing.TB, db Store) {
	tb.Helper()
	c, err := store.TryClaim(store.AllocatorClaim(db.ClaimsDir()), false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Release() })
}
