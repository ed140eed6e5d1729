package store

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func testPolicyRecord(ns, name string) PolicyRecord {
	rs := []byte(`{"pod":"` + ns + `/` + name + `","ingress":{"isolated":true},"egress":{"isolated":false}}`)
	return PolicyRecord{Namespace: ns, Name: name, Ruleset: rs, Digest: PolicyDigest(rs), Generation: 3, Compiled: time.Now().UTC()}
}

// Ensure a record whose digest is not its ruleset's is refused at Put: an
// ADD trusts the digest to know whether the kernel already holds it.
func TestWriteTx_PutPolicyRecord(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{})
	bad := testPolicyRecord("default", "web")
	bad.Digest = PolicyDigest([]byte("other"))
	if err := db.Update(func(tx *WriteTx) error { return tx.PutPolicyRecord(bad) }); err == nil {
		t.Fatal("a record with a wrong digest was accepted")
	}
	good := testPolicyRecord("default", "web")
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(good) })
	_ = db.View(func(tx *ReadTx) error {
		got, err := tx.PolicyRecord("default", "web")
		if err != nil || got.Digest != good.Digest || string(got.Ruleset) != string(good.Ruleset) || got.Generation != 3 {
			t.Errorf("PolicyRecord = %+v, %v", got, err)
		}
		if _, err := tx.PolicyRecord("default", "db"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown pod: %v, want ErrNotFound", err)
		}
		return nil
	})
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeletePolicyRecord("default", "web") })
	_ = db.View(func(tx *ReadTx) error {
		if recs, err := tx.PolicyRecords(); err != nil || len(recs) != 0 {
			t.Errorf("after delete: %+v, %v", recs, err)
		}
		return nil
	})
}

// Ensure a record's kernel table is stored apart, read as a copy with the
// digest of the record it came with, replaced or removed with the record.
func TestWriteTx_PolicyTable(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{})
	r := testPolicyRecord("default", "web")
	r.Isolated, r.Table = true, []byte{9, 8, 7}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(r) })
	var table []byte
	_ = db.View(func(tx *ReadTx) error {
		digest, b, err := tx.PolicyTable("default", "web")
		if err != nil || digest != r.Digest || string(b) != string(r.Table) {
			t.Errorf("PolicyTable = %q, %v, %v", digest, b, err)
		}
		table = b
		rec, err := tx.PolicyRecord("default", "web")
		if err != nil || rec.Table != nil {
			t.Errorf("PolicyRecord read the table too: %v, %v", rec.Table, err)
		}
		return nil
	})
	table[0] = 0 // a copy: the file is not changed through it
	_ = db.View(func(tx *ReadTx) error {
		if _, b, _ := tx.PolicyTable("default", "web"); len(b) != 3 || b[0] != 9 {
			t.Errorf("table after the caller changed its copy: %v", b)
		}
		return nil
	})
	// Rewritten without a table (the pod no longer isolated): none.
	open := testPolicyRecord("default", "web")
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(open) })
	_ = db.View(func(tx *ReadTx) error {
		if _, _, err := tx.PolicyTable("default", "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("table of a record written without one: %v, want ErrNotFound", err)
		}
		return nil
	})
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(r) })
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeletePolicyRecord("default", "web") })
	_ = db.View(func(tx *ReadTx) error {
		if _, _, err := tx.PolicyTable("default", "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("table after the record's delete: %v, want ErrNotFound", err)
		}
		return nil
	})
}

// Ensure a schema-3 file (mirror, no policy buckets) opens with them, its
// mirror kept, and readers of an unmigrated file see empty policy state.
func TestOpen_MigratesPolicyBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, m := range migrations[:3] {
			if err := m(tx); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(3))); err != nil {
			return err
		}
		v, err := encode(Policy{Namespace: "default", Name: "deny", Raw: []byte(`{}`)})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPolicy).Put([]byte("default/deny"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A reader sees the old file migrated in memory.
	err = View(path, func(tx *ReadTx) error {
		recs, err := tx.PolicyRecords()
		if err != nil || len(recs) != 0 {
			t.Errorf("reader: records %+v, %v", recs, err)
		}
		if _, err := tx.PolicyState(); !errors.Is(err, ErrNotFound) {
			t.Errorf("reader: policy state %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path, Options{})
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.PutPolicySource(PolicySource{Name: "manifests", Digest: "d"}); err != nil {
			return err
		}
		return tx.PutPolicyRecord(testPolicyRecord("default", "web"))
	})
	_ = db.View(func(tx *ReadTx) error {
		pols, err := tx.MirrorPolicies()
		if err != nil || len(pols) != 1 {
			t.Errorf("mirror after migration: %+v, %v", pols, err)
		}
		srcs, err := tx.PolicySources()
		if err != nil || len(srcs) != 1 || srcs[0].Name != "manifests" {
			t.Errorf("sources: %+v, %v", srcs, err)
		}
		if v := tx.Check(); len(v) != 0 {
			t.Errorf("Check: %v", v)
		}
		return nil
	})
}

// Ensure a part records share is stored once, filled in on read, required
// (a record refers to no part the store lacks), kept while a record refers
// to it and pruned after, and that Check sees a part gone or altered.
func TestWriteTx_PolicyParts(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{})
	part := []byte("a direction many pods have alike")
	d := PolicyDigest(part)
	withPart := func(name string, data bool) PolicyRecord {
		r := testPolicyRecord("default", name)
		r.Parts = []string{d}
		if data {
			r.PartData = [][]byte{part}
		}
		return r
	}
	if err := db.Update(func(tx *WriteTx) error { return tx.PutPolicyRecord(withPart("web", false)) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a record referring to a part the store lacks, without its bytes: %v, want ErrNotFound", err)
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(withPart("web", true)) })
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(withPart("db", false)) }) // stored: no bytes needed
	_ = db.View(func(tx *ReadTx) error {
		for _, name := range []string{"web", "db"} {
			r, err := tx.PolicyRecord("default", name)
			if err != nil || len(r.PartData) != 1 || string(r.PartData[0]) != string(part) {
				t.Errorf("record %s: parts %q, %v", name, r.PartData, err)
			}
		}
		if n := tx.tx.Bucket(bucketPolicyParts).Stats().KeyN; n != 1 {
			t.Errorf("%d parts stored, want the shared one once", n)
		}
		if v := tx.Check(); len(v) != 0 {
			t.Errorf("check: %v", v)
		}
		return nil
	})
	pruned := func() int {
		var n int
		mustUpdate(t, db, func(tx *WriteTx) (err error) { n, err = tx.PrunePolicyParts(); return err })
		return n
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeletePolicyRecord("default", "web") })
	if n := pruned(); n != 0 {
		t.Errorf("pruned %d parts while db still refers to one", n)
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(testPolicyRecord("default", "db")) }) // db without parts
	if n := pruned(); n != 1 {
		t.Errorf("pruned %d parts, want the one no record refers to", n)
	}

	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(withPart("web", true)) })
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.tx.Bucket(bucketPolicyParts).Put([]byte(d), []byte("altered")) })
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicyRecord(withPart("api", false)) })
	_ = db.View(func(tx *ReadTx) error {
		if v := tx.Check(); len(v) != 1 {
			t.Errorf("check of an altered part: %v, want one violation", v)
		}
		return nil
	})
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.tx.Bucket(bucketPolicyParts).Delete([]byte(d)) })
	_ = db.View(func(tx *ReadTx) error {
		if _, err := tx.PolicyRecord("default", "web"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("reading a record whose part is gone: %v, want ErrCorrupt", err)
		}
		if v := tx.Check(); len(v) != 2 {
			t.Errorf("check with a part gone: %v, want web's and api's violations", v)
		}
		return nil
	})
	mustUpdate(t, db, func(tx *WriteTx) error { // for the cleanup's check
		return errors.Join(tx.DeletePolicyRecord("default", "web"), tx.DeletePolicyRecord("default", "api"))
	})
}

// Ensure PolicySourcesCached gives what PolicySources gives, through
// changes and deletions, decoding again only a source whose bytes
// changed.
func TestReadTx_PolicySourcesCached(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{})
	var c SourceCache
	check := func(step string, want ...string) {
		t.Helper()
		_ = db.View(func(tx *ReadTx) error {
			got, err := tx.PolicySourcesCached(&c)
			plain, perr := tx.PolicySources()
			if err != nil || perr != nil || len(got) != len(plain) || len(got) != len(want) {
				t.Fatalf("%s: cached %+v (%v), plain %+v (%v), want %v", step, got, err, plain, perr, want)
			}
			for i := range got {
				if got[i].Name != plain[i].Name || got[i].Digest != want[i] || got[i].Digest != plain[i].Digest && want[i] != "stale" {
					t.Errorf("%s: source %d is %s@%s cached, %s@%s plain, want digest %s", step, i, got[i].Name, got[i].Digest, plain[i].Name, plain[i].Digest, want[i])
				}
			}
			return nil
		})
	}
	put := func(name, digest string) {
		mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicySource(PolicySource{Name: name, Digest: digest}) })
	}
	put("manifests", "d1")
	check("first read", "d1")
	check("unchanged", "d1")
	src := c.src["manifests"]
	src.Digest = "stale" // what the cache holds is what a read of unchanged bytes returns
	c.src["manifests"] = src
	check("unchanged, cache marked", "stale")
	put("manifests", "d2")
	check("changed", "d2")
	put("other", "o1")
	check("two", "d2", "o1")
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeletePolicySource("manifests") })
	check("deleted", "o1")
	if _, ok := c.raw["manifests"]; ok {
		t.Error("the cache keeps a deleted source")
	}
}
