package ipam

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/veni-cni/veni/store"
)

// Ensure GC releases what a dead owner left and keeps the rest.
func TestGC(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 10, time.Now())
	now := time.Now()
	netns := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(netns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dead := deadPID(t)
	cases := []struct {
		cid      string
		pid      int
		age      time.Duration
		bound    bool
		netns    string
		released bool
	}{
		{"reserved-dead-old", dead, 5 * time.Minute, false, "", true},
		{"reserved-dead-young", dead, time.Second, false, "", false},
		{"reserved-alive", os.Getpid(), 5 * time.Minute, false, "", false},
		{"bound-netns-gone", dead, time.Hour, true, "/proc/nonexistent/ns/net", true},
		{"bound-netns-there", dead, time.Hour, true, netns, false},
	}
	for _, tc := range cases {
		o := owner(tc.cid)
		o.PID, o.NetNS = tc.pid, tc.netns
		r, err := Reserve(db, o)
		wantErr(t, err, nil)
		if tc.bound {
			wantErr(t, Commit(db, r.Key), nil)
		}
		mustUpdate(t, db, func(tx *store.WriteTx) error { // backdate
			a, err := tx.Allocation(r.Key)
			if err != nil {
				return err
			}
			a.ReservedAt = now.Add(-tc.age)
			return tx.PutAllocation(a)
		})
	}
	got, err := GC(db, OwnerAlive, time.Minute, now)
	wantErr(t, err, nil)
	var keys []string
	for _, a := range got {
		keys = append(keys, a.ContainerID)
	}
	for _, tc := range cases {
		t.Run(tc.cid, func(t *testing.T) {
			if slices.Contains(keys, tc.cid) != tc.released {
				t.Errorf("released = %v, want %v", !tc.released, tc.released)
			}
		})
	}
	if _, used := poolCounts(t, db); used != 3 {
		t.Errorf("used = %d after gc, want 3", used)
	}
}

// Ensure the CNI GC verb releases every attachment the runtime no longer
// lists, and nothing else.
func TestGCValid(t *testing.T) {
	db, cloud := mustStore(t), newFakeCloud()
	cloud.addVSwitch("vsw-a", "10.0.0.0/24", 100)
	mustENI(t, db, cloud, "eni-1", true, 5, time.Now())
	for _, cid := range []string{"a", "b", "c"} {
		mustReserve(t, db, cid, true)
	}
	got, err := GCValid(db, []Attachment{{ContainerID: "b", IfName: "eth0"}, {ContainerID: "zzz", IfName: "eth0"}}, time.Now())
	wantErr(t, err, nil)
	if len(got) != 2 || got[0].ContainerID != "a" || got[1].ContainerID != "c" {
		t.Errorf("released %+v", got)
	}
	if idle, used := poolCounts(t, db); idle != 4 || used != 1 {
		t.Errorf("idle=%d used=%d", idle, used)
	}
}
