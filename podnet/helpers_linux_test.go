package podnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/store"
)

const testTable = 1001

// mustNetNS creates a throwaway network namespace and returns its path.
func mustNetNS(tb testing.TB) string {
	tb.Helper()
	name, _ := testutil.NewNetNS(tb)
	return filepath.Join("/run/netns", name)
}

// mustStore returns a store with one ready ENI and free addresses
// 10.0.1.10-19, checked for invariants at cleanup.
func mustStore(tb testing.TB) store.File {
	tb.Helper()
	f := store.File{Path: filepath.Join(tb.TempDir(), "veni.db")}
	err := f.Update(func(tx *store.WriteTx) error {
		err := tx.PutENI(store.ENI{
			ID: "eni-1", MAC: "02:00:00:00:01:01", InstanceID: "i-test", VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.253"),
			PrimaryIP: netip.MustParseAddr("10.0.1.5"), Owned: true, State: store.ENIReady, Table: testTable,
		})
		if err != nil {
			return err
		}
		a := netip.MustParseAddr("10.0.1.10")
		for range 10 {
			if err := tx.PutIP(store.IP{Addr: a, ENIID: "eni-1", State: store.IPFree}); err != nil {
				return err
			}
			a = a.Next()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = f.View(func(tx *store.ReadTx) error {
			for _, v := range tx.Check() {
				tb.Errorf("store invariant: %s", v)
			}
			return nil
		})
	})
	return f
}

// pod is an attachment added the way cmdAdd adds one: claim, reserve,
// plumb (in the node namespace), commit.
type pod struct {
	att  Attachment
	res  ipam.Reservation
	host netplumb.Interface
}

func mustAdd(tb testing.TB, db store.File, nodeNS, cid string) pod {
	tb.Helper()
	podNS := mustNetNS(tb)
	att := Attachment{ContainerID: cid, IfName: "eth0", NetNS: podNS}
	claim, err := ClaimForAdd(context.Background(), db, att.Key(), time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer claim.Release()
	id, err := IdentifyNetNS(podNS)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := ipam.Reserve(db, ipam.Owner{ContainerID: cid, IfName: "eth0", Network: "veni", NetNS: podNS, NetNSID: id})
	if err != nil {
		tb.Fatal(err)
	}
	var out netplumb.PodResult
	err = inNS(nodeNS, func() (err error) {
		out, err = netplumb.SetupPod(context.Background(), netplumb.PodConfig{
			ContainerID: cid, IfName: "eth0", ContainerNetNS: podNS, IP: res.IP,
			ENI: netplumb.ENILink{Name: "eni", Index: 1, Table: testTable, MAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, MTU: 1500,
				VSwitchCIDR: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.253")},
		})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ipam.Commit(db, res.Key, ipam.HostSide{Veth: out.Host.Name, Ifindex: out.Host.Index}, nil); err != nil {
		tb.Fatal(err)
	}
	return pod{att: att, res: res, host: out.Host}
}

// inNS runs fn in the network namespace at path on a thread of its own.
func inNS(path string, fn func() error) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error { return fn() })
}

func allocation(tb testing.TB, db store.File, key store.OwnerKey) (store.Allocation, bool) {
	tb.Helper()
	var a store.Allocation
	var found bool
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		a, err = tx.Allocation(key)
		found = err == nil
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a, found
}

// deleteNamedNS unmounts a bind-mounted namespace and removes its file.
func deleteNamedNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
