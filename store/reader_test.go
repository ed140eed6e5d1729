package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ensure readers share the store: a second reader gets in at once while
// the first is still open, and neither takes the lock a writer needs.
func TestOpen_ReadOnly_Shared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	mustOpenOnce(t, path, Options{}, func(db *DB) { mustSeed(t, db, "10.0.0.10") })
	first := mustOpen(t, path, Options{ReadOnly: true})
	// Timeout -1: fail at once if the lock is not free for a reader.
	second := mustOpen(t, path, Options{ReadOnly: true, Timeout: -1})
	for _, db := range []*DB{first, second} {
		err := db.View(func(tx *ReadTx) error { _, err := tx.IP(mustAddr(t, "10.0.0.10")); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	// While readers are in, a writer waits; the file is theirs.
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	wantErr(t, err, ErrLocked)
}

// Ensure a reader waits for a writer (it never sees a transaction being
// written), with the same timeout and error as a writer.
func TestOpen_ReadOnly_WaitsForWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	mustOpen(t, path, Options{})
	_, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	wantErr(t, err, ErrLocked)
}

// Ensure a reader of a store that does not exist yet sees an empty store,
// and creates nothing: not the file, not its directory.
func TestFile_View_Missing(t *testing.T) {
	cases := []struct {
		name string
		path func(dir string) string
	}{
		{"no directory", func(dir string) string { return filepath.Join(dir, "lib", "veni", "veni.db") }},
		{"no file", func(dir string) string { return filepath.Join(dir, "veni.db") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.path(dir)
			err := View(path, func(tx *ReadTx) error {
				ips, err := tx.IPs()
				if err != nil || len(ips) != 0 {
					t.Errorf("IPs = %v, %v; want none", ips, err)
				}
				if _, err := tx.Node(); !errors.Is(err, ErrNotFound) {
					t.Errorf("Node: %v, want ErrNotFound", err)
				}
				for _, v := range tx.Check() {
					t.Errorf("empty store: %s", v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("a reader created %s", entries[0].Name())
			}
		})
	}
}

// Ensure a reader of a store written by an older binary reads it as
// migrated, without migrating (or otherwise changing) the file.
func TestFile_View_OlderSchema(t *testing.T) {
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	path := filepath.Join(t.TempDir(), "veni.db")
	mustOpenOnce(t, path, Options{}, func(db *DB) { mustSeed(t, db, "10.0.0.10") })
	before := mustRead(t, path)

	migrations = append(append([]func(*bolt.Tx) error(nil), saved...), func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("v2-marker"))
		return err
	})
	for range 2 {
		err := View(path, func(tx *ReadTx) error {
			if tx.tx.Bucket([]byte("v2-marker")) == nil {
				t.Error("reader did not see the migration")
			}
			if got, _ := schemaOf(tx.tx); got != len(migrations) {
				t.Errorf("reader sees schema %d, want %d", got, len(migrations))
			}
			_, err := tx.IP(mustAddr(t, "10.0.0.10"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(mustRead(t, path), before) {
		t.Error("a reader wrote the file")
	}
	// A writer then migrates it for real.
	mustOpenOnce(t, path, Options{}, func(*DB) {})
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if have, err := readSchema(b); err != nil || have != len(migrations) {
		t.Errorf("after a writer: schema %d, %v", have, err)
	}
}

// Ensure a reader refuses a file from a newer binary, as a writer does.
func TestFile_View_SchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	writeSchema(t, path, SchemaVersion()+1)
	err := View(path, func(*ReadTx) error { return nil })
	wantErr(t, err, ErrSchemaTooNew)
}

// Ensure a store opened for reading refuses to write.
func TestDB_Update_ReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	db := mustOpen(t, path, Options{ReadOnly: true})
	wantErr(t, db.Update(func(*WriteTx) error { return nil }), ErrReadOnly)
	f := File{Path: path, Options: Options{ReadOnly: true}}
	wantErr(t, f.Update(func(*WriteTx) error { return nil }), ErrReadOnly)
	wantErr(t, f.View(func(*ReadTx) error { return nil }), nil)
}

// Ensure a stream of overlapping readers, which alone would hold the
// shared flock forever, does not keep a writer out: the writer gets in
// well within its timeout, and readers carry on after it.
func TestOpen_WriterNotStarved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	mustOpenOnce(t, path, Options{}, func(db *DB) { mustSeed(t, db, "10.0.0.10") })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	reads, readErr := 0, error(nil)
	// Each read holds the file 40 ms and readers start 10 ms apart, so
	// from the first on, some reader always holds the shared lock.
	for i := range 4 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := File{Path: path, Options: Options{Timeout: 10 * time.Second}}.View(func(*ReadTx) error {
					time.Sleep(40 * time.Millisecond)
					return nil
				})
				mu.Lock()
				reads++
				readErr = errors.Join(readErr, err)
				mu.Unlock()
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	err := File{Path: path, Options: Options{Timeout: 2 * time.Second}}.Update(func(tx *WriteTx) error {
		_, err := tx.AppendEvent(Event{Reason: "Test", Message: "writer got in"})
		return err
	})
	waited := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("writer starved by readers: %v", err)
	}
	if readErr != nil {
		t.Fatalf("readers: %v", readErr)
	}
	t.Logf("writer waited %s; %d reads", waited, reads)
}

// Ensure concurrent readers and writers, each with its own open like
// separate processes, see only committed states, in order: a counter that
// every writer increments never goes back for any reader, and nothing is
// lost. Run it with -race.
func TestFile_ConcurrentReadersWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	const writers, readers, writes = 4, 4, 25
	f := File{Path: path, Options: Options{Timeout: 30 * time.Second}}
	// The counter is the newest event's Seq: each write appends one.
	count := func(tx *ReadTx) (int, error) {
		evs, err := tx.Events(0, 0)
		if err != nil || len(evs) == 0 {
			return 0, err
		}
		return int(evs[len(evs)-1].Seq), nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for range writers {
		wg.Go(func() {
			for range writes {
				err := f.Update(func(tx *WriteTx) error {
					_, err := tx.AppendEvent(Event{Reason: "Count"})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			last := 0
			for {
				var n int
				err := f.View(func(tx *ReadTx) (err error) { n, err = count(tx); return err })
				if err != nil {
					errs <- err
					return
				}
				if n < last {
					errs <- errors.New("counter went back from " + strconv.Itoa(last) + " to " + strconv.Itoa(n))
					return
				}
				last = n
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	err := f.View(func(tx *ReadTx) error {
		n, err := count(tx)
		if n != writers*writes {
			t.Errorf("counter = %d, want %d", n, writers*writes)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
