package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustGoodStore writes a store with a few hundred IPs and events at path,
// closes it and returns its bytes.
func mustGoodStore(tb testing.TB, path string) []byte {
	tb.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	addrs := make([]string, 240)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.%d.%d", i/200, i%200+3)
	}
	mustSeed(tb, db, addrs...)
	mustUpdate(tb, db, func(tx *WriteTx) error {
		for i := range 300 {
			if _, err := tx.AppendEvent(Event{Reason: "Test", Message: fmt.Sprintf("event %d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	return mustRead(tb, path)
}

// mustOpenOnce opens the store at path, runs fn on it, checks it and closes
// it.
func mustOpenOnce(tb testing.TB, path string, opts Options, fn func(db *DB)) {
	tb.Helper()
	db, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	}()
	fn(db)
	mustCheck(tb, db)
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustWrite(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// highWater returns the bytes the newest valid meta of a bbolt file needs.
func highWater(tb testing.TB, data []byte) int64 {
	tb.Helper()
	m0, why0 := parseMeta(data)
	m1, why1 := parseMeta(data[m0.pageSize:])
	if why0 != "" || why1 != "" {
		tb.Fatalf("fixture meta pages: %q %q", why0, why1)
	}
	if m1.txid > m0.txid {
		m0 = m1
	}
	return int64(m0.pgid) * int64(m0.pageSize)
}

// setMeta rewrites meta page at off with fn applied to its body, and a
// checksum computed the way bbolt does.
func setMeta(data []byte, off int, fn func(m []byte)) {
	m := data[off+boltPageHeader : off+boltPageHeader+boltMetaSize]
	fn(m)
	h := fnv.New64a()
	h.Write(m[:boltMetaSummed])
	binary.NativeEndian.PutUint64(m[boltMetaSummed:], h.Sum64())
}

// damagedCase builds a damaged file from a good store's bytes.
type damagedCase struct {
	name   string
	build  func(tb testing.TB, good []byte) []byte
	reason string // in the DamagedError's Reason
}

var damagedCases = []damagedCase{
	{"zero length", func(testing.TB, []byte) []byte { return []byte{} }, "empty file"},
	{"truncated to half", func(tb testing.TB, good []byte) []byte {
		if highWater(tb, good) <= int64(len(good)/2) {
			tb.Fatalf("fixture: high-water mark %d fits in half of %d bytes", highWater(tb, good), len(good))
		}
		return bytes.Clone(good[:len(good)/2])
	}, "truncated"},
	{"one page", func(_ testing.TB, good []byte) []byte { return bytes.Clone(good[:os.Getpagesize()]) }, "shorter than two"},
	{"garbage meta", func(_ testing.TB, good []byte) []byte {
		d := bytes.Clone(good)
		for i := range 2 * os.Getpagesize() {
			d[i] = byte(i*7 + 3)
		}
		return d
	}, "no valid meta page"},
	{"newer bbolt version", func(_ testing.TB, good []byte) []byte {
		d := bytes.Clone(good)
		for _, off := range []int{0, os.Getpagesize()} {
			setMeta(d, off, func(m []byte) { binary.NativeEndian.PutUint32(m[4:], 3) })
		}
		return d
	}, "version 3"},
}

// mustKeptAside asserts that exactly one "<path>.damaged-*" file exists and
// holds want, and returns its name.
func mustKeptAside(tb testing.TB, path string, want []byte) string {
	tb.Helper()
	kept := asideFiles(tb, path)
	if len(kept) != 1 {
		tb.Fatalf("kept aside: %v, want one file", kept)
	}
	if got := mustRead(tb, kept[0]); !bytes.Equal(got, want) {
		tb.Fatalf("%s: %d bytes differ from the %d damaged bytes", kept[0], len(got), len(want))
	}
	return kept[0]
}

func asideFiles(tb testing.TB, path string) []string {
	tb.Helper()
	kept, err := filepath.Glob(path + ".damaged-*")
	if err != nil {
		tb.Fatal(err)
	}
	return kept
}

// mustRecorded asserts that the store at path records the replacement of a
// damaged file kept as keptAs, of size bytes, for a reason containing
// reason: the Recovery marker and one StoreDamaged event.
func mustRecorded(tb testing.TB, path, keptAs string, size int, reason string) {
	tb.Helper()
	err := View(path, func(tx *ReadTx) error {
		rec, err := tx.Recovery()
		if err != nil {
			return err
		}
		if rec.KeptAs != keptAs || rec.Size != int64(size) || !strings.Contains(rec.Reason, reason) || time.Since(rec.Time) > time.Minute {
			tb.Errorf("Recovery = %+v, want kept as %s, %d bytes, reason with %q", rec, keptAs, size, reason)
		}
		evs, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		if len(evs) != 1 {
			tb.Fatalf("events = %+v, want one", evs)
		}
		e := evs[0]
		if e.Reason != ReasonStoreDamaged || e.Level.String() != "ERROR" || !strings.Contains(e.Message, keptAs) || !strings.Contains(e.Message, reason) {
			tb.Errorf("event = %+v", e)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("read recovery record: %v", err)
	}
}

// errReaderAt fails every read.
type errReaderAt struct{ err error }

func (r errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, r.err }

// injectOpenError makes opening the store file fail with err for the rest
// of the test.
func injectOpenError(tb testing.TB, err error) {
	tb.Helper()
	saved := openFile
	openFile = func(name string, _ int, _ os.FileMode) (*os.File, error) {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	tb.Cleanup(func() { openFile = saved })
}

func isDamaged(err error) bool {
	var derr *DamagedError
	return errors.As(err, &derr)
}
