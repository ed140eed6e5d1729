package podnet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/store"
)

// Ensure a bound allocation's namespace is judged by the namespace itself:
// an nsfs mount of the recorded inode lives; a missing path, an empty file
// left where a namespace was unmounted (containerd 1.6 after a failed
// sandbox set-up), another kind of namespace, and a path that now names a
// new namespace are gone; a /proc path recorded in another PID namespace
// cannot be judged from here and is kept.
func TestJudgeNetNS(t *testing.T) {
	testutil.RequireRoot(t)
	live := mustNetNS(t)
	liveID, err := IdentifyNetNS(live)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "cni-0000")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	reused := mustNetNS(t)
	self := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	selfID, err := IdentifyNetNS(self)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		path  string
		id    store.NetNSID
		want  netnsVerdict
		setup func()
	}{
		{"mounted", live, liveID, netnsAlive, nil},
		{"recorded before ids existed", live, store.NetNSID{}, netnsAlive, nil},
		{"missing", filepath.Join(t.TempDir(), "gone"), liveID, netnsGone, nil},
		{"empty file left behind", empty, liveID, netnsGone, nil},
		{"pid namespace, not net", "/proc/self/ns/pid", liveID, netnsGone, nil},
		{"path names a newer namespace", reused, liveID, netnsGone, nil},
		{"own process", self, selfID, netnsAlive, nil},
		{"proc path from another pid namespace", "/proc/1/ns/net", store.NetNSID{Inode: 1, PIDNS: 1}, netnsUnknown, nil},
		{"no path", "", liveID, netnsUnknown, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := store.Allocation{State: store.IPBound, NetNS: tc.path, NetNSID: tc.id}
			if got, why := judgeNetNS(a); got != tc.want {
				t.Errorf("judgeNetNS = %s (%s), want %s", got, why, tc.want)
			}
		})
	}
}

// Ensure a reservation lives exactly while its ADD holds the attachment's
// claim (a PID would not do: the daemon may not see the plugin's), and a
// young one is left alone either way.
func TestOwnerGone_Reservation(t *testing.T) {
	claims := t.TempDir()
	now := time.Now()
	a := store.Allocation{Key: store.NewOwnerKey("c1", "eth0"), State: store.IPReserved, ReservedAt: now.Add(-time.Hour), ReservedBy: 1}
	dead := OwnerGone(claims, time.Minute, now)
	if !dead(a, false) {
		t.Error("an old reservation whose ADD holds no claim is alive")
	}
	c, err := store.TryClaim(store.OwnerClaim(claims, a.Key), true)
	if err != nil {
		t.Fatal(err)
	}
	if dead(a, false) {
		t.Error("a reservation whose ADD holds the claim is dead")
	}
	if !dead(a, true) {
		t.Error("the claim's own holder must judge the reservation dead")
	}
	c.Release()
	young := a
	young.ReservedAt = now.Add(-time.Second)
	if dead(young, false) {
		t.Error("a reservation younger than the grace period is dead")
	}
}

// Ensure the CNI GC verb leaves another network's attachments alone (a
// second network on the same pod, as Multus adds), and what the runtime
// still lists.
func TestNotInValid(t *testing.T) {
	claims := t.TempDir()
	now := time.Now()
	old := now.Add(-time.Hour)
	dead := NotInValid(claims, "veni", []Attachment{{ContainerID: "kept", IfName: "eth0"}}, time.Minute, now)
	for _, tc := range []struct {
		name string
		a    store.Allocation
		want bool
	}{
		{"listed", store.Allocation{Key: "kept/eth0", Network: "veni", State: store.IPBound}, false},
		{"not listed", store.Allocation{Key: "gone/eth0", Network: "veni", State: store.IPBound}, true},
		{"other network", store.Allocation{Key: "gone/net1", Network: "veni-2", State: store.IPBound}, false},
		{"recorded before networks were", store.Allocation{Key: "gone/eth1", State: store.IPBound}, true},
		{"young reservation", store.Allocation{Key: "new/eth0", Network: "veni", State: store.IPReserved, ReservedAt: now}, false},
		{"old reservation", store.Allocation{Key: "old/eth0", Network: "veni", State: store.IPReserved, ReservedAt: old}, true},
	} {
		if got := dead(tc.a, false); got != tc.want {
			t.Errorf("%s: dead = %v, want %v", tc.name, got, tc.want)
		}
	}
}
