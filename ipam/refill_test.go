package ipam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Ensure the cold path assigns IPs on an owned ENI with room before it
// creates an ENI.
func TestAllocate_AssignsOnENIWithRoom(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	r, err := Allocate(bg, db, cloud, testNode(), testConfig(), owner("c1"))
	wantErr(t, err, nil)
	if r.ENI.ID != "eni-1" || cloud.count("AssignPrivateIPs") != 1 || cloud.count("CreateENI") != 0 {
		t.Errorf("got %+v after %v", r, cloud.calls)
	}
}

// Ensure a new ENI goes to the vSwitch with the most free IPs, carries
// veni's tags, and is used only after WaitLink saw its link.
func TestRefill_CreatesENIOnFreestVSwitch(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 5)
	cloud.addVSwitch("vsw-b", "10.0.1.0/24", 50)
	cloud.addVSwitch("vsw-c", "10.0.2.0/24", 20)
	cloud.attachIn = 2
	cfg := testConfig()
	cfg.VSwitches = map[string][]string{"zone-a": {"vsw-a", "vsw-b", "vsw-c"}}
	cfg.ENITags = map[string]string{"ack.aliyun.com": "c1"}
	node := testNode()
	var linked []string
	node.WaitLink = func(_ context.Context, mac net.HardwareAddr) error {
		// The ENI must not be usable before its link is there.
		err := db.View(func(tx *store.ReadTx) error {
			enis, err := tx.ENIs()
			for _, e := range enis {
				if e.State == store.ENIReady {
					t.Errorf("eni %s ready before its link was seen", e.ID)
				}
			}
			return err
		})
		linked = append(linked, mac.String())
		return err
	}
	wantErr(t, Refill(bg, db, cloud, node, cfg, 3), nil)
	var enis []store.ENI
	_ = db.View(func(tx *store.ReadTx) (err error) { enis, err = tx.ENIs(); return err })
	if len(enis) != 1 || enis[0].VSwitchID != "vsw-b" || enis[0].State != store.ENIReady || !enis[0].Owned {
		t.Fatalf("enis = %+v", enis)
	}
	if len(linked) != 1 || linked[0] != enis[0].MAC {
		t.Errorf("WaitLink saw %v, eni mac %s", linked, enis[0].MAC)
	}
	c := cloud.enis[enis[0].ID]
	if c.Tags[TagCreator] != TagCreatorValue || c.Tags[TagInstance] != testInstance || c.Tags["ack.aliyun.com"] != "c1" {
		t.Errorf("tags = %v", c.Tags)
	}
	if idle, _ := poolCounts(t, db); idle != 3 {
		t.Errorf("idle = %d, want 3", idle)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		evs, _ := tx.Events(0, 0)
		if len(evs) == 0 || evs[len(evs)-1].Reason != "ENICreated" {
			t.Errorf("events = %+v", evs)
		}
		return nil
	})
}

// Ensure the node never has more secondary ENIs than the instance type
// allows (ENIs - 1) or max_eni.
func TestRefill_ENILimit(t *testing.T) {
	cases := []struct {
		name   string
		enis   int // full ENIs already there
		maxENI int
		want   error
	}{
		{"instance limit", 2, 0, ErrPoolExhausted},
		{"max_eni", 1, 1, ErrPoolExhausted},
		{"room for one more", 1, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
			for i := range tc.enis {
				mustENI(t, db, cloud, fmt.Sprintf("eni-%d", i), true, 5, time.Now())
				for j := range 5 {
					mustReserve(t, db, fmt.Sprintf("c-%d-%d", i, j), true)
				}
			}
			cfg := testConfig()
			cfg.MaxENI = tc.maxENI
			err := Refill(bg, db, cloud, testNode(), cfg, 1)
			wantErr(t, err, tc.want)
			if wantCreate := tc.want == nil; (cloud.count("CreateENI") == 1) != wantCreate {
				t.Errorf("CreateENI called %d times", cloud.count("CreateENI"))
			}
		})
	}
}

// Ensure "vSwitch out of addresses" backs the pool off visibly: recorded in
// the pool state and the event log, and no further cloud call until it ends.
func TestRefill_VSwitchExhausted(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 1)
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now()) // takes the last address
	node, cfg := testNode(), testConfig()
	err := Refill(bg, db, cloud, node, cfg, 1)
	wantErr(t, err, ErrBackoff)
	var be *BackoffError
	if !errors.As(err, &be) || be.Scope != store.VSwitchScope("vsw-a") {
		t.Fatalf("error %v is not a vswitch back-off", err)
	}
	calls := cloud.total()
	for range 5 {
		wantErr(t, Refill(bg, db, cloud, node, cfg, 1), ErrBackoff)
		_, err := Allocate(bg, db, cloud, node, cfg, owner("c1"))
		wantErr(t, err, ErrBackoff)
	}
	if n := cloud.total(); n != calls {
		t.Errorf("%d cloud calls while backed off", n-calls)
	}
	_, err = Reserve(db, owner("c1"))
	if err == nil || !strings.Contains(err.Error(), "vswitch/vsw-a") || !strings.Contains(err.Error(), "backing off until") ||
		!strings.Contains(err.Error(), "vswitch vsw-a has no free address") {
		t.Errorf("Reserve error %v does not say why", err)
	}
	_ = db.View(func(tx *store.ReadTx) error {
		ps, _ := tx.PoolState()
		if _, ok := ps.ActiveBackoff(store.VSwitchScope("vsw-a"), time.Now()); !ok {
			t.Errorf("pool state %+v has no vswitch back-off", ps)
		}
		evs, _ := tx.Events(0, 0)
		if len(evs) != 1 || evs[0].Reason != "VSwitchExhausted" {
			t.Errorf("events = %+v", evs)
		}
		return nil
	})
}

// Ensure a quota answer on create backs ENI creation off.
func TestRefill_ENIQuota(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	cloud.setErr("CreateENI", &eni.APIError{Code: "EniPerInstanceLimitExceeded", Kind: eni.ErrQuotaExceeded})
	err := Refill(bg, db, cloud, testNode(), testConfig(), 1)
	var be *BackoffError
	if !errors.As(err, &be) || be.Scope != store.ScopeENIQuota {
		t.Fatalf("error %v is not an eni-quota back-off", err)
	}
	wantErr(t, Refill(bg, db, cloud, testNode(), testConfig(), 1), ErrBackoff)
	if n := cloud.count("CreateENI"); n != 1 {
		t.Errorf("CreateENI called %d times", n)
	}
}

// Ensure two processes refilling at once never call the cloud at the same
// time: one holds the lease, the other waits on the store.
func TestRefill_OneCaller(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	cloud.delay = 50 * time.Millisecond
	mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
	var wg sync.WaitGroup
	for i, pid := range []int{os.Getpid(), os.Getppid()} {
		wg.Go(func() {
			node := testNode()
			node.PID = pid
			o := owner(fmt.Sprint("c", i))
			o.PID = pid
			if _, err := Allocate(bg, db, cloud, node, testConfig(), o); err != nil {
				t.Errorf("allocate %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if cloud.maxInFlight != 1 {
		t.Errorf("%d cloud calls overlapped", cloud.maxInFlight)
	}
	if idle, used := poolCounts(t, db); used != 2 {
		t.Errorf("idle=%d used=%d, want 2 used", idle, used)
	}
}

// Ensure the allocator lease is decided by its claim, not by the record's
// PID: a record whose PID looks alive (the holder may be in another PID
// namespace, or the PID reused) does not block when nobody holds the claim,
// and a held claim makes others give up with ErrTryAgainLater after the
// deadline without calling the cloud.
func TestRefill_Lease(t *testing.T) {
	cases := []struct {
		name   string
		hold   bool
		record bool // a stale record naming pid 1, which is alive
		want   error
	}{
		{"free", false, false, nil},
		{"stale record of a live-looking pid", false, true, nil},
		{"claim held", true, false, ErrTryAgainLater},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
			mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
			if tc.record {
				mustUpdate(t, db, func(tx *store.WriteTx) error {
					return tx.PutLease(store.Lease{Name: store.LeaseAllocator, Token: "old", HolderPID: 1, Holder: "veni daemon", Expires: time.Now().Add(time.Hour)})
				})
			}
			if tc.hold {
				mustHoldAllocator(t, db)
			}
			cfg := testConfig()
			cfg.AllocWait = config.Duration(300 * time.Millisecond)
			start := time.Now()
			_, err := Allocate(bg, db, cloud, testNode(), cfg, owner("c1"))
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if d := time.Since(start); d < 250*time.Millisecond {
					t.Errorf("gave up after %s, before the deadline", d)
				}
				if cloud.total() != 0 {
					t.Errorf("called the cloud without the lease: %v", cloud.calls)
				}
				return
			}
			_ = db.View(func(tx *store.ReadTx) error {
				if l, err := tx.Lease(store.LeaseAllocator); err == nil {
					t.Errorf("lease record left after refill: %+v", l)
				}
				return nil
			})
		})
	}
}
