package store

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
)

// Ensure Check reports each kind of broken store, and only that kind.
func TestReadTx_Check(t *testing.T) {
	a10, a11 := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	alloc := func(cid string, ip netip.Addr, st IPState) Allocation {
		return Allocation{Key: NewOwnerKey(cid, "eth0"), ContainerID: cid, IfName: "eth0", IP: ip, ENIID: "eni-a", State: st}
	}
	cases := []struct {
		name    string
		breakIt func(tb testing.TB, db *DB)
		want    []ViolationKind
	}{
		{"consistent", func(testing.TB, *DB) {}, nil},
		{"ip without eni", func(tb testing.TB, db *DB) {
			rawPut(tb, db, bucketIPs, "10.0.1.5", IP{Addr: netip.MustParseAddr("10.0.1.5"), ENIID: "eni-gone", State: IPFree})
		}, []ViolationKind{ViolationIPWithoutENI}},
		{"ip on two enis", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutENI(testENI("eni-b", "10.0.0.11")) })
		}, []ViolationKind{ViolationIPOnTwoENIs}},
		{"two enis one primary", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutENI(testENI("eni-b", "10.0.0.2")) })
		}, []ViolationKind{ViolationIPOnTwoENIs}},
		{"allocation without ip", func(tb testing.TB, db *DB) {
			rawPut(tb, db, bucketAllocs, "c9/eth0", alloc("c9", netip.MustParseAddr("10.0.0.99"), IPBound))
		}, []ViolationKind{ViolationAllocationWithoutIP}},
		{"allocation on free ip", func(tb testing.TB, db *DB) {
			rawPut(tb, db, bucketAllocs, "c9/eth0", alloc("c9", a11, IPBound))
		}, []ViolationKind{ViolationAllocationIPMismatch}},
		{"ip bound to two owners", func(tb testing.TB, db *DB) {
			rawPut(tb, db, bucketAllocs, "c2/eth0", alloc("c2", a10, IPReserved))
		}, []ViolationKind{ViolationIPTwoOwners, ViolationAllocationIPMismatch}},
		{"owner without allocation", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.DeleteAllocation("c1/eth0") })
		}, []ViolationKind{ViolationOwnerWithoutAllocation}},
		{"bad record", func(tb testing.TB, db *DB) {
			rawPut(tb, db, bucketIPs, a11.String(), IP{Addr: a11, ENIID: "eni-a", State: IPFree, Owner: "x/eth0"})
		}, []ViolationKind{ViolationBadRecord, ViolationOwnerWithoutAllocation}},
		{"consistent policy record", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(testPolicyRecord("default", "web")) })
		}, nil},
		{"policy record digest is not its ruleset's", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(testPolicyRecord("default", "web")) })
			r := testPolicyRecord("default", "web")
			r.Ruleset = []byte(`{"pod":"default/web","ingress":{"isolated":false}}`)
			rawPut(tb, db, bucketPolicyRecords, "default/web", r)
		}, []ViolationKind{ViolationPolicyRecord}},
		{"policy record under another pod's key", func(tb testing.TB, db *DB) {
			r := testPolicyRecord("default", "web")
			rawPut(tb, db, bucketPolicyIndex, "default/db", r.Info())
			rawPut(tb, db, bucketPolicyRecords, "default/db", r)
		}, []ViolationKind{ViolationPolicyRecord}},
		{"policy record the index disagrees with", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(testPolicyRecord("default", "web")) })
			info := testPolicyRecord("default", "web").Info()
			info.Digest = "0000"
			rawPut(tb, db, bucketPolicyIndex, "default/web", info)
		}, []ViolationKind{ViolationPolicyRecord}},
		{"policy record with its kernel table", func(tb testing.TB, db *DB) {
			r := testPolicyRecord("default", "web")
			r.Isolated, r.Table = true, []byte{1, 2, 3}
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(r) })
		}, nil},
		{"kernel table of another ruleset", func(tb testing.TB, db *DB) {
			r := testPolicyRecord("default", "web")
			r.Isolated, r.Table = true, []byte{1, 2, 3}
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(r) })
			mustUpdate(tb, db, func(tx *WriteTx) error {
				return tx.tx.Bucket(bucketPolicyTables).Put([]byte("default/web"), append([]byte(PolicyDigest([]byte("old"))), 1, 2, 3))
			})
		}, []ViolationKind{ViolationPolicyRecord}},
		{"kernel table without a record", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error {
				return tx.tx.Bucket(bucketPolicyTables).Put([]byte("default/web"), append([]byte(PolicyDigest([]byte("x"))), 1))
			})
		}, []ViolationKind{ViolationPolicyRecord}},
		{"policy index entry without record", func(tb testing.TB, db *DB) {
			rawPut(tb, db, bucketPolicyIndex, "default/web", testPolicyRecord("default", "web").Info())
		}, []ViolationKind{ViolationPolicyRecord}},
		{"corrupt policy record", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error {
				if err := tx.PutPolicyRecord(testPolicyRecord("default", "web")); err != nil {
					return err
				}
				return tx.tx.Bucket(bucketPolicyRecords).Put([]byte("default/web"), []byte("{"))
			})
		}, []ViolationKind{ViolationCorrupt}},
		{"corrupt", func(tb testing.TB, db *DB) {
			mustUpdate(tb, db, func(tx *WriteTx) error { return tx.tx.Bucket(bucketENIs).Put([]byte("eni-z"), []byte("{")) })
		}, []ViolationKind{ViolationCorrupt}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not mustOpen: this store is broken on purpose.
			db, err := Open(filepath.Join(t.TempDir(), "veni.db"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			mustSeed(t, db, "10.0.0.10", "10.0.0.11")
			mustUpdate(t, db, func(tx *WriteTx) error { return reserve(tx, a10, "c1/eth0") })
			tc.breakIt(t, db)
			var got []ViolationKind
			_ = db.View(func(tx *ReadTx) error {
				for _, v := range tx.Check() {
					got = append(got, v.Kind)
				}
				return nil
			})
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Check() = %v, want %v", got, want)
			}
		})
	}
}

func TestCheck_PrefixNotOnENI(t *testing.T) {
	db := mustCreateDB(t)
	p := netip.MustParsePrefix("10.0.0.32/28")
	err := db.Update(func(tx *WriteTx) error {
		e1 := testENI("eni-1", "10.0.0.11")
		e1.Prefixes = []netip.Prefix{p}
		if err := tx.PutENI(e1); err != nil {
			return err
		}
		if err := tx.PutENI(testENI("eni-2", "10.0.0.12")); err != nil {
			return err
		}
		if err := tx.PutIP(IP{Addr: netip.MustParseAddr("10.0.0.33"), ENIID: "eni-1", State: IPFree, Prefix: p}); err != nil {
			return err
		}
		return tx.PutIP(IP{Addr: netip.MustParseAddr("10.0.0.34"), ENIID: "eni-2", State: IPFree, Prefix: p})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []Violation
	_ = db.View(func(tx *ReadTx) error { got = tx.Check(); return nil })
	if len(got) != 1 || got[0].Kind != ViolationPrefix || got[0].Object != "ip/10.0.0.34" {
		t.Errorf("Check() = %v, want one %s on ip/10.0.0.34", got, ViolationPrefix)
	}
	err = db.Update(func(tx *WriteTx) error {
		return tx.PutIP(IP{Addr: netip.MustParseAddr("10.0.0.99"), ENIID: "eni-1", State: IPFree, Prefix: p})
	})
	wantErr(t, err, ErrInvalid)
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeleteIP(netip.MustParseAddr("10.0.0.34")) })
}
