package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Ensure the check finds what bbolt would re-create or crash on, and passes
// what bbolt opens correctly, torn meta pages included.
func TestInspect(t *testing.T) {
	good := mustGoodStore(t, filepath.Join(t.TempDir(), "veni.db"))
	ps := os.Getpagesize()
	cases := []damagedCase{
		{"good", func(testing.TB, []byte) []byte { return good }, ""},
		{"meta 0 torn", func(_ testing.TB, g []byte) []byte {
			d := bytes.Clone(g)
			d[boltPageHeader+boltMetaSummed] ^= 0xff
			return d
		}, ""},
		{"meta 1 torn", func(_ testing.TB, g []byte) []byte {
			d := bytes.Clone(g)
			d[ps+boltPageHeader] ^= 0xff
			return d
		}, ""},
		{"cut just after the high-water mark", func(tb testing.TB, g []byte) []byte { return g[:highWater(tb, g)] }, ""},
		{"cut a page before the high-water mark", func(tb testing.TB, g []byte) []byte { return g[:highWater(tb, g)-int64(ps)] }, "truncated"},
		{"bad checksums", func(_ testing.TB, g []byte) []byte {
			d := bytes.Clone(g)
			d[boltPageHeader+8] ^= 1
			d[ps+boltPageHeader+8] ^= 1
			return d
		}, "bad checksum"},
		{"bad magic", func(_ testing.TB, g []byte) []byte {
			d := bytes.Clone(g)
			d[boltPageHeader] ^= 1
			d[ps+boltPageHeader] ^= 1
			return d
		}, "bad magic"},
		{"page size zero", func(_ testing.TB, g []byte) []byte {
			d := bytes.Clone(g)
			for _, off := range []int{0, ps} {
				setMeta(d, off, func(m []byte) { binary.NativeEndian.PutUint32(m[8:], 0) })
			}
			return d
		}, "page size 0"},
	}
	for _, tc := range append(cases, damagedCases...) {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.build(t, good)
			err := inspect(bytes.NewReader(data), int64(len(data)))
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("inspect = %v, want a sound file", err)
			case tc.reason == "":
			case !isDamaged(err) || !errors.Is(err, ErrDamaged):
				t.Fatalf("inspect = %v, want a *DamagedError", err)
			case !strings.Contains(err.Error(), tc.reason):
				t.Errorf("inspect = %v, want the reason to say %q", err, tc.reason)
			}
		})
	}
}

// Ensure a file that cannot be read is not called damaged.
func TestInspect_ReadError(t *testing.T) {
	err := inspect(errReaderAt{syscall.EIO}, 1<<20)
	if err == nil || isDamaged(err) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("inspect = %v, want the EIO and no damage", err)
	}
}

// Ensure a writer keeps a damaged file aside byte for byte, starts a new
// store in its place and records why in the store.
func TestOpen_Damaged(t *testing.T) {
	good := mustGoodStore(t, filepath.Join(t.TempDir(), "veni.db"))
	for _, tc := range damagedCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "veni.db")
			data := tc.build(t, good)
			mustWrite(t, path, data)
			// The new store works, and says what happened to the old one.
			mustOpenOnce(t, path, Options{}, func(db *DB) { mustSeed(t, db, "10.0.0.10") })
			kept := mustKeptAside(t, path, data)
			if !strings.HasPrefix(filepath.Base(kept), "veni.db.damaged-") || !strings.HasSuffix(kept, "Z") {
				t.Errorf("kept as %s, want veni.db.damaged-<UTC time>", kept)
			}
			if _, err := os.Stat(path + recoveringSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind: %v", recoveringSuffix, err)
			}
			mustRecorded(t, path, kept, len(data), tc.reason)
		})
	}
}

// Ensure a good file is opened as it is: not moved, not rewritten, no
// recovery record.
func TestOpen_Good(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	good := mustGoodStore(t, path)
	for _, opts := range []Options{{}, {ReadOnly: true}} {
		mustOpenOnce(t, path, opts, func(db *DB) {
			err := db.View(func(tx *ReadTx) error { _, err := tx.Recovery(); return err })
			wantErr(t, err, ErrNotFound)
		})
	}
	if got := mustRead(t, path); !bytes.Equal(got, good) {
		t.Error("a good store was rewritten by opening it")
	}
	if kept := asideFiles(t, path); len(kept) != 0 {
		t.Errorf("a good store was kept aside as %v", kept)
	}
}

// Ensure a reader of a damaged file gets ErrDamaged with the reason, and
// leaves the file where it is for a writer to deal with.
func TestFile_View_Damaged(t *testing.T) {
	good := mustGoodStore(t, filepath.Join(t.TempDir(), "veni.db"))
	for _, tc := range damagedCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "veni.db")
			data := tc.build(t, good)
			mustWrite(t, path, data)
			err := View(path, func(*ReadTx) error { return nil })
			var derr *DamagedError
			if !errors.Is(err, ErrDamaged) || !errors.As(err, &derr) || !strings.Contains(derr.Reason, tc.reason) {
				t.Fatalf("View = %v, want ErrDamaged saying %q", err, tc.reason)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if got := mustRead(t, path); !bytes.Equal(got, data) {
				t.Error("a reader changed the damaged file")
			}
			if kept := asideFiles(t, path); len(kept) != 0 {
				t.Errorf("a reader moved the file aside: %v", kept)
			}
		})
	}
}

// Ensure errors that say nothing about the file (it cannot be opened, the
// lock is busy) never get even a damaged file moved aside.
func TestOpen_TransientErrors(t *testing.T) {
	cases := []struct {
		name   string
		inject func(tb testing.TB, path string)
		opts   Options
		want   error
	}{
		{"EIO on open", func(tb testing.TB, _ string) { injectOpenError(tb, syscall.EIO) }, Options{}, syscall.EIO},
		{"EACCES on open", func(tb testing.TB, _ string) { injectOpenError(tb, syscall.EACCES) }, Options{}, syscall.EACCES},
		{"EIO on open, reader", func(tb testing.TB, _ string) { injectOpenError(tb, syscall.EIO) }, Options{ReadOnly: true}, syscall.EIO},
		{"lock timeout", func(tb testing.TB, path string) {
			l, err := lockFile(path+".lock", lockWrite, true, -1)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { l.unlock() })
		}, Options{Timeout: 100 * time.Millisecond}, ErrLocked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "veni.db")
			mustWrite(t, path, nil)
			tc.inject(t, path)
			_, err := Open(path, tc.opts)
			wantErr(t, err, tc.want)
			if errors.Is(err, ErrDamaged) {
				t.Errorf("Open = %v, took a transient error for damage", err)
			}
			if st, err := os.Stat(path); err != nil || st.Size() != 0 {
				t.Errorf("the file was touched: %v, %v", st, err)
			}
			if kept := asideFiles(t, path); len(kept) != 0 {
				t.Errorf("moved aside on a transient error: %v", kept)
			}
		})
	}
}

// Ensure bbolt's own verdicts on a file, and a panic or fault while it opens
// one, count as damage, and nothing else does.
func TestAsDamaged(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{bolterrors.ErrInvalid, true},
		{bolterrors.ErrVersionMismatch, true},
		{bolterrors.ErrChecksum, true},
		{&openPanic{v: "invalid freelist page"}, true},
		{bolterrors.ErrTimeout, false},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.EIO}, false},
		{syscall.EACCES, false},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := isDamaged(asDamaged(tc.err)); got != tc.want {
				t.Errorf("asDamaged(%v) damaged = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// Ensure that, should a file get past the check, bbolt faulting on its
// mapping (SIGBUS past the end of a truncated file) comes back as an error
// instead of killing the process.
func TestBoltOpen_Fault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.db")
	good := mustGoodStore(t, path)
	mustWrite(t, path, good[:len(good)/2])
	// Map well past the end of the file, so the freelist page is mapped
	// but not backed: reading it raises SIGBUS, every time.
	b, err := boltOpen(path, &bolt.Options{Timeout: time.Second, InitialMmapSize: 4 * len(good)})
	if err == nil {
		b.Close()
		t.Fatal("bbolt opened a truncated file")
	}
	if !isDamaged(asDamaged(err)) {
		t.Fatalf("boltOpen = %v, want it taken for damage", err)
	}
	t.Logf("boltOpen: %v", err)
}

// Ensure a replacement cut short by a crash between its two renames is
// finished by the next writer, record included, and that a half-built new
// store is thrown away.
func TestOpen_AdoptRecovering(t *testing.T) {
	t.Run("damaged file already aside", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "veni.db")
		mustWrite(t, path, nil)
		if _, err := replaceDamaged(path, 0, &DamagedError{Reason: "empty file (0 bytes)"}, Options{}.withDefaults()); err != nil {
			t.Fatal(err)
		}
		// Undo the last rename: the crash came just before it.
		if err := os.Rename(path, path+recoveringSuffix); err != nil {
			t.Fatal(err)
		}
		mustOpenOnce(t, path, Options{}, func(*DB) {})
		mustRecorded(t, path, mustKeptAside(t, path, nil), 0, "empty file")
	})
	t.Run("new store half built", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "veni.db")
		mustWrite(t, path, nil)
		mustWrite(t, path+recoveringSuffix, []byte("half"))
		mustOpenOnce(t, path, Options{}, func(*DB) {})
		mustRecorded(t, path, mustKeptAside(t, path, nil), 0, "empty file")
		if _, err := os.Stat(path + recoveringSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", recoveringSuffix, err)
		}
	})
}
