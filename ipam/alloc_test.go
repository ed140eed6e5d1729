package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/store"
)

func TestReserve_CommitRelease(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 2, time.Now())

	r := mustReserve(t, db, "c1", false)
	if r.State != store.IPReserved || r.ENI.ID != "eni-1" || r.ENI.Gateway != netip.MustParseAddr("10.0.0.253") {
		t.Fatalf("reservation = %+v", r)
	}
	wantErr(t, Commit(db, r.Key, HostSide{}, nil), nil)
	wantErr(t, Commit(db, r.Key, HostSide{}, nil), nil) // again: no-op
	_ = db.View(func(tx *store.ReadTx) error {
		ip, err := tx.IP(r.IP)
		if err != nil || ip.State != store.IPBound || ip.Owner != r.Key {
			t.Errorf("after commit ip = %+v, %v", ip, err)
		}
		return nil
	})
	for range 2 { // DEL twice
		wantErr(t, Release(db, r.Key), nil)
	}
	wantErr(t, Commit(db, r.Key, HostSide{}, nil), store.ErrNotFound)
	if idle, used := poolCounts(t, db); idle != 2 || used != 0 {
		t.Errorf("after release idle=%d used=%d", idle, used)
	}
}

// Ensure ADD retried for the same attachment gets the same IP, and another
// interface of the same container a different one.
func TestReserve_Idempotent(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 3, time.Now())
	a := mustReserve(t, db, "c1", false)
	b := mustReserve(t, db, "c1", false)
	if a.IP != b.IP {
		t.Errorf("second reserve got %s, first %s", b.IP, a.IP)
	}
	c, err := Reserve(db, Owner{ContainerID: "c1", IfName: "eth1"})
	wantErr(t, err, nil)
	if c.IP == a.IP {
		t.Errorf("eth1 got eth0's ip %s", c.IP)
	}
}

// Ensure the IP free the longest goes first, so a released IP is not handed
// to the next pod at once.
func TestReserve_LeastRecentlyFreed(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	ips := mustENI(t, db, cloud, "eni-1", true, 3, time.Now().Add(-time.Hour))
	first := mustReserve(t, db, "c1", true)
	wantErr(t, Release(db, first.Key), nil)
	for i, cid := range []string{"c2", "c3", "c4"} {
		got := mustReserve(t, db, cid, true)
		want := ips[(i+1)%3]
		if i == 2 {
			want = first.IP
		}
		if got.IP != want {
			t.Errorf("reserve %d got %s, want %s", i, got.IP, want)
		}
	}
}

// Ensure an empty pool says so, and says why it is not growing.
func TestReserve_PoolEmpty(t *testing.T) {
	cases := []struct {
		name    string
		backoff bool
		want    string
	}{
		{"plain", false, "no free ip"},
		{"backed off", true, "vswitch/vsw-a: InvalidVSwitchId.IpNotEnough (backing off until"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
			mustENI(t, db, cloud, "eni-1", true, 0, time.Now())
			if tc.backoff {
				mustUpdate(t, db, func(tx *store.WriteTx) error {
					var p store.PoolState
					p.SetBackoff(store.VSwitchScope("vsw-a"), store.Backoff{Until: time.Now().Add(time.Hour), Reason: "InvalidVSwitchId.IpNotEnough"})
					return tx.PutPoolState(p)
				})
			}
			_, err := Reserve(db, owner("c1"))
			wantErr(t, err, ErrPoolEmpty)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// Ensure concurrent ADDs, each opening the store for its own transactions,
// never get the same IP.
func TestReserve_Concurrent(t *testing.T) {
	cases := []struct {
		name      string
		ips, pods int
	}{
		{"enough", 60, 50},
		{"short", 40, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, cloud := mustStore(t), newFakeCloud()
			cloud.addVSwitch("vsw-a", "10.0.0.0/24", 200)
			for i := 0; i < tc.ips; i += 20 {
				mustENI(t, db, cloud, fmt.Sprintf("eni-%d", i), true, min(20, tc.ips-i), time.Now())
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			got := make(map[netip.Addr]string)
			empty := 0
			for i := range tc.pods {
				wg.Go(func() {
					cid := fmt.Sprintf("c%d", i)
					r, err := Reserve(db, owner(cid))
					if err == nil {
						err = Commit(db, r.Key, HostSide{}, nil)
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						if prev, dup := got[r.IP]; dup {
							t.Errorf("%s given to %s and %s", r.IP, prev, cid)
						}
						got[r.IP] = cid
					case strings.Contains(err.Error(), ErrPoolEmpty.Error()):
						empty++
					default:
						t.Errorf("%s: %v", cid, err)
					}
				})
			}
			wg.Wait()
			if want := min(tc.ips, tc.pods); len(got) != want || empty != tc.pods-want {
				t.Errorf("%d pods got ips, %d found the pool empty; want %d and %d", len(got), empty, want, tc.pods-want)
			}
		})
	}
}
