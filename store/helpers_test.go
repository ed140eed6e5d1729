package store

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// mustOpen opens the store at path and, at cleanup, fails the test if the
// store breaks an invariant, then closes it.
func mustOpen(tb testing.TB, path string, opts Options) *DB {
	tb.Helper()
	db, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		mustCheck(tb, db)
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

// mustCreateDB opens a new store in a temporary directory.
func mustCreateDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpen(tb, filepath.Join(tb.TempDir(), "veni.db"), Options{})
}

func mustCheck(tb testing.TB, db *DB) {
	tb.Helper()
	err := db.View(func(tx *ReadTx) error {
		for _, v := range tx.Check() {
			tb.Errorf("store invariant: %s", v)
		}
		return nil
	})
	if err != nil {
		tb.Errorf("check: %v", err)
	}
}

func mustUpdate(tb testing.TB, db *DB, fn func(*WriteTx) error) {
	tb.Helper()
	if err := db.Update(fn); err != nil {
		tb.Fatalf("update: %v", err)
	}
}

func mustAddr(tb testing.TB, s string) netip.Addr {
	tb.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func testENI(id string, primary string) ENI {
	return ENI{
		ID: id, MAC: "02:00:00:00:00:01", InstanceID: "i-test", VSwitchID: "vsw-a",
		VSwitchCIDR: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.253"),
		PrimaryIP: netip.MustParseAddr(primary), Owned: true, State: ENIReady, CreatedAt: t0,
	}
}

// mustSeed writes one ready ENI "eni-a" (primary 10.0.0.2) with free IPs.
func mustSeed(tb testing.TB, db *DB, addrs ...string) {
	tb.Helper()
	mustUpdate(tb, db, func(tx *WriteTx) error {
		if err := tx.PutENI(testENI("eni-a", "10.0.0.2")); err != nil {
			return err
		}
		for _, a := range addrs {
			if err := tx.PutIP(IP{Addr: mustAddr(tb, a), ENIID: "eni-a", State: IPFree, AddedAt: t0, FreeSince: t0}); err != nil {
				return err
			}
		}
		return nil
	})
}

// reserve holds addr for key, the way ipam does: IP first, then allocation.
func reserve(tx *WriteTx, addr netip.Addr, key OwnerKey) error {
	ip, err := tx.IP(addr)
	if err != nil {
		return err
	}
	ip.State, ip.Owner = IPReserved, key
	if err := tx.PutIP(ip); err != nil {
		return err
	}
	cid, ifn, _ := strings.Cut(string(key), "/")
	return tx.PutAllocation(Allocation{ContainerID: cid, IfName: ifn, IP: addr, ENIID: ip.ENIID, State: IPReserved, ReservedBy: 1, ReservedAt: t0})
}

// rawPut writes a record bypassing validation, to build broken stores.
func rawPut[T any](tb testing.TB, db *DB, bucket []byte, key string, rec T) {
	tb.Helper()
	mustUpdate(tb, db, func(tx *WriteTx) error {
		return put(tx, bucket, []byte(key), rec)
	})
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
