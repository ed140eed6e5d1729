package store

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// snapshot returns a private copy of src in memory (of an empty store when
// src is nil), migrated to SchemaVersion. It is how a reader, who must not
// create or migrate the file, reads a store that does not exist yet or was
// written by an older binary: it sees what a writer would see, and nothing
// it does reaches the disk. The copy lives in a memfd (an unlinked file in
// the temporary directory where memfd_create is refused) and is freed by
// Close.
func snapshot(src *bolt.DB) (*bolt.DB, error) {
	f, err := memFile()
	if err != nil {
		return nil, fmt.Errorf("in-memory copy: %w", err)
	}
	if src != nil {
		// WriteTo reuses the reader's file handle: it copies the file the
		// transaction saw, under the shared lock the caller holds.
		if err := src.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(f); return err }); err != nil {
			f.Close()
			return nil, fmt.Errorf("in-memory copy: %w", err)
		}
	}
	b, err := bolt.Open(f.Name(), 0o600, &bolt.Options{
		NoSync:   true, // nothing here outlives the process
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
	})
	if err != nil {
		return nil, fmt.Errorf("in-memory copy: %w", err)
	}
	if err := b.Update(migrate); err != nil {
		b.Close()
		return nil, fmt.Errorf("in-memory copy: %w", err)
	}
	return b, nil
}

func memFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("veni-store", unix.MFD_CLOEXEC)
	if err == nil {
		return os.NewFile(uintptr(fd), "memfd:veni-store"), nil
	}
	f, err := os.CreateTemp("", "veni-store-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
