package store

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Ensure a schema-1 file, whose ENIs had no table (it was derived from the
// ifindex), opens with a distinct stable table on every ENI.
func TestOpen_MigratesENITables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		if err := migrations[0](tx); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte("1")); err != nil {
			return err
		}
		for _, e := range []ENI{testENI("eni-b", "10.0.0.3"), testENI("eni-a", "10.0.0.2")} {
			v, err := encode(e)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketENIs).Put([]byte(e.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path, Options{})
	_ = db.View(func(tx *ReadTx) error {
		enis, err := tx.ENIs()
		if err != nil || len(enis) != 2 || enis[0].Table != FirstENITable || enis[1].Table != FirstENITable+1 {
			t.Errorf("after migration: %+v, %v", enis, err)
		}
		return nil
	})
}
