package store

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func fixedMember(id, primary, pod string) ENI {
	e := testENI(id, primary)
	e.Kind, e.TrunkID, e.VLANID, e.Pod = ENIMember, "eni-trunk", 3, pod
	e.Fixed = &Fixed{Networking: "db", ReleaseAfter: 5 * time.Minute}
	return e
}

// Ensure a fixed ENI record round-trips with its policy, and that Fixed is
// refused on an ENI that belongs to no pod.
func TestPutENI_Fixed(t *testing.T) {
	db := mustCreateDB(t)
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.PutENI(testENI("eni-trunk", "10.0.0.2")); err != nil {
			return err
		}
		m := fixedMember("eni-m", "10.0.0.9", "ns/db-0")
		m.Fixed.PodGoneAt = t0
		return tx.PutENI(m)
	})
	_ = db.View(func(tx *ReadTx) error {
		e, err := tx.ENI("eni-m")
		if err != nil || e.Fixed == nil || e.Fixed.ReleaseAfter != 5*time.Minute || !e.Kept() || !e.Fixed.PodGoneAt.Equal(t0) {
			t.Errorf("read back %+v (fixed %+v), %v", e, e.Fixed, err)
		}
		return nil
	})
	for name, e := range map[string]ENI{
		"shared": func() ENI { e := testENI("eni-s", "10.0.0.3"); e.Fixed = &Fixed{}; return e }(),
		"no pod": func() ENI { e := fixedMember("eni-n", "10.0.0.4", ""); return e }(),
	} {
		err := db.Update(func(tx *WriteTx) error { return tx.PutENI(e) })
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: put = %v, want ErrInvalid", name, err)
		}
	}
}

// Ensure fixed ENI records are validated, listed, deleted, and never
// written for an ENI the node holds; Check reports one that is.
func TestFixedENIs(t *testing.T) {
	db := mustCreateDB(t)
	parked := FixedENI{ID: "eni-p", Pod: "ns/db-0", IP: mustAddr(t, "10.0.0.9"), ZoneID: "z", State: FixedParked, Since: t0,
		Fixed: Fixed{ReleaseAfter: time.Minute, PodGoneAt: t0}, ReleaseAt: t0.Add(time.Minute)}
	attaching := FixedENI{ID: "eni-a", Pod: "ns/db-1", State: FixedAttaching, Since: t0}
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.PutFixedENI(parked); err != nil {
			return err
		}
		return tx.PutFixedENI(attaching)
	})
	_ = db.View(func(tx *ReadTx) error {
		all, err := tx.FixedENIs()
		if err != nil || len(all) != 2 || all[0].ID != "eni-a" || all[1].ID != "eni-p" || !all[1].ReleaseAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("list %+v, %v", all, err)
		}
		if _, err := tx.FixedENI("eni-x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown: %v", err)
		}
		return nil
	})
	for name, f := range map[string]FixedENI{
		"no id":          {Pod: "ns/p", State: FixedAttaching},
		"no pod":         {ID: "eni-1", State: FixedAttaching},
		"bad state":      {ID: "eni-1", Pod: "ns/p", State: "lost"},
		"parked no time": {ID: "eni-1", Pod: "ns/p", State: FixedParked},
	} {
		if err := db.Update(func(tx *WriteTx) error { return tx.PutFixedENI(f) }); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: put = %v, want ErrInvalid", name, err)
		}
	}
	mustSeed(t, db)
	err := db.Update(func(tx *WriteTx) error {
		return tx.PutFixedENI(FixedENI{ID: "eni-a", Pod: "ns/p", State: FixedAttaching})
	})
	if !errors.Is(err, ErrInvariant) {
		t.Errorf("fixed record of an ENI the node holds: %v, want ErrInvariant", err)
	}
	// Written behind PutFixedENI's back: Check says so.
	rawPut(t, db, bucketFixed, "eni-a", FixedENI{ID: "eni-a", Pod: "ns/p", State: FixedAttaching})
	var got []Violation
	_ = db.View(func(tx *ReadTx) error { got = tx.Check(); return nil })
	if len(got) != 1 || got[0].Kind != ViolationFixed {
		t.Errorf("check: %v, want one %s", got, ViolationFixed)
	}
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.DeleteFixedENI("eni-a"); err != nil {
			return err
		}
		return tx.DeleteFixedENI("eni-unknown")
	})
}

// Ensure a schema-7 file (no fixed ENI bucket, ENI records without Fixed)
// opens migrated: its ENIs kept, the bucket there, fixed records
// writable; and a reader of the unmigrated file sees no fixed records.
func TestOpen_MigratesFixedBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, m := range migrations[:7] {
			if err := m(tx); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketFixed) != nil {
			t.Fatal("schema 7 has the fixed bucket")
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(7))); err != nil {
			return err
		}
		e := testENI("eni-m", "10.0.0.9")
		e.Kind, e.TrunkID, e.VLANID, e.Pod, e.Table = ENIMember, "eni-t", 2, "ns/p", FirstENITable
		v, err := encode(e)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketENIs).Put([]byte(e.ID), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err = View(path, func(tx *ReadTx) error {
		all, err := tx.FixedENIs()
		if err != nil || len(all) != 0 {
			t.Errorf("reader of schema 7: %+v, %v", all, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path, Options{})
	mustUpdate(t, db, func(tx *WriteTx) error {
		e, err := tx.ENI("eni-m")
		if err != nil || e.Fixed != nil || e.Pod != "ns/p" {
			t.Errorf("migrated eni %+v, %v", e, err)
		}
		return tx.PutFixedENI(FixedENI{ID: "eni-p", Pod: "ns/q", State: FixedAttaching, Since: t0})
	})
	_ = db.View(func(tx *ReadTx) error {
		if got, _ := schemaOf(tx.tx); got != SchemaVersion() || got != 8 {
			t.Errorf("schema %d, want 8", got)
		}
		return nil
	})
}
