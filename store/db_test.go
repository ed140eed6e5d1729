package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ensure a new store gets a private file in a private directory and the
// current schema.
func TestOpen_NewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lib", "veni", "veni.db")
	mustOpen(t, path, Options{})
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{{path, 0o600}, {filepath.Dir(path), 0o700}} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tc.mode {
			t.Errorf("%s mode %o, want %o", tc.path, got, tc.mode)
		}
	}
}

// Ensure a second handle on a locked file fails with ErrLocked naming the
// file, after roughly the configured timeout.
func TestOpen_ErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	mustOpen(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	wantErr(t, err, ErrLocked)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
}

// Ensure the flock is released by Close, so the next process gets in.
func TestDB_Close_ReleasesLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, Options{Timeout: -1})
}

func writeSchema(tb testing.TB, path string, v int) {
	tb.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return m.Put(keySchema, []byte(strconv.Itoa(v)))
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// Ensure a file from a newer binary is refused, and left untouched.
func TestOpen_ErrSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	writeSchema(t, path, SchemaVersion()+1)
	_, err := Open(path, Options{})
	wantErr(t, err, ErrSchemaTooNew)
	// The failed open must not have held on to the lock.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.View(func(tx *bolt.Tx) error {
		if got := string(tx.Bucket(bucketMeta).Get(keySchema)); got != strconv.Itoa(SchemaVersion()+1) {
			t.Errorf("schema rewritten to %s", got)
		}
		return nil
	})
}

// Ensure migrations run forward once each, in order, from the file's schema.
func TestOpen_Migrate(t *testing.T) {
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	path := filepath.Join(t.TempDir(), "veni.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutENI(testENI("eni-a", "10.0.0.2")) })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	runs := 0
	migrations = append(append([]func(*bolt.Tx) error(nil), saved...), func(tx *bolt.Tx) error {
		runs++
		_, err := tx.CreateBucket([]byte("v2-marker"))
		return err
	})
	for range 2 {
		db, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustCheck(t, db)
		if err := db.bolt.View(func(tx *bolt.Tx) error {
			if tx.Bucket([]byte("v2-marker")) == nil {
				return errors.New("migration 1→2 did not run")
			}
			if got := string(tx.Bucket(bucketMeta).Get(keySchema)); got != strconv.Itoa(len(saved)+1) {
				return errors.New("schema is " + got)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := func() (ENI, error) {
			var e ENI
			err := db.View(func(tx *ReadTx) (err error) { e, err = tx.ENI("eni-a"); return err })
			return e, err
		}(); err != nil {
			t.Fatalf("data lost by migration: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if runs != 1 {
		t.Errorf("migration ran %d times, want 1", runs)
	}
}

// Ensure a failing function rolls back everything it wrote, and that a panic
// does the same.
func TestDB_Update_Rollback(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name  string
		fail  func() error
		want  error
		panic bool
	}{
		{name: "error", fail: func() error { return errBoom }, want: errBoom},
		{name: "panic", fail: func() error { panic("boom") }, panic: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := mustCreateDB(t)
			var err error
			func() {
				defer func() {
					if r := recover(); (r != nil) != tc.panic {
						t.Errorf("recover() = %v", r)
					}
				}()
				err = db.Update(func(tx *WriteTx) error {
					if err := tx.PutENI(testENI("eni-a", "10.0.0.2")); err != nil {
						return err
					}
					return tc.fail()
				})
			}()
			if !tc.panic {
				wantErr(t, err, tc.want)
			}
			err = db.View(func(tx *ReadTx) error { _, err := tx.ENI("eni-a"); return err })
			wantErr(t, err, ErrNotFound)
		})
	}
}
