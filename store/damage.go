package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bbolt's file layout, as go.etcd.io/bbolt v1.5.0 writes it
// (internal/common/page.go and meta.go). Pages 0 and 1 are meta pages; each
// page starts with a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32), and a meta page's body is
//
//	magic uint32, version uint32, pageSize uint32, flags uint32,
//	root {pgid uint64, sequence uint64}, freelist uint64, pgid uint64,
//	txid uint64, checksum uint64
//
// in the machine's byte order, checksum being FNV-64a over the 56 bytes
// before it. pgid is the high-water mark: every page the meta's transaction
// uses lies below it. A commit writes its meta last, alternating pages by
// txid, so one meta stays valid through a crash; bbolt uses the valid one
// with the higher txid.
const (
	boltPageHeader  = 16
	boltMetaSize    = 64
	boltMetaSummed  = 56 // bytes covered by the checksum
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	boltMinPageSize = 1024     // bbolt looks for meta page 1 from 1 KiB ...
	boltMaxPageSize = 16 << 20 // ... to 16 MiB
)

// boltMeta is the part of a meta page the check uses.
type boltMeta struct {
	pageSize uint32
	pgid     uint64 // high-water mark, in pages
	txid     uint64
}

// parseMeta reads the meta body of a page that starts with b. It returns
// why the meta is invalid, or "" when it is valid.
func parseMeta(b []byte) (boltMeta, string) {
	if len(b) < boltPageHeader+boltMetaSize {
		return boltMeta{}, "cut short"
	}
	m := b[boltPageHeader : boltPageHeader+boltMetaSize]
	order := binary.NativeEndian
	switch {
	case order.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, "bad magic"
	case order.Uint32(m[4:]) != boltVersion:
		return boltMeta{}, fmt.Sprintf("version %d", order.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(m[:boltMetaSummed])
	if h.Sum64() != order.Uint64(m[boltMetaSummed:]) {
		return boltMeta{}, "bad checksum"
	}
	meta := boltMeta{pageSize: order.Uint32(m[8:]), pgid: order.Uint64(m[40:]), txid: order.Uint64(m[48:])}
	if meta.pageSize < boltMinPageSize || meta.pageSize > boltMaxPageSize {
		return boltMeta{}, fmt.Sprintf("page size %d", meta.pageSize)
	}
	return meta, ""
}

// readMetaAt reads the meta page at off. A read error is returned as an
// error (it says nothing about the file); an invalid meta as a reason.
func readMetaAt(r io.ReaderAt, size, off int64) (boltMeta, string, error) {
	if off+boltPageHeader+boltMetaSize > size {
		return boltMeta{}, "past the end of the file", nil
	}
	buf := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := r.ReadAt(buf, off); err != nil {
		return boltMeta{}, "", fmt.Errorf("read meta page at %d: %w", off, err)
	}
	m, why := parseMeta(buf)
	return m, why, nil
}

// inspect checks a store file of size bytes before bbolt maps it, the way
// bbolt would read it: a file it would silently re-initialise (empty), or
// whose pages lie past the end (bbolt's mmap then faults with SIGBUS, or
// reads memory that is not the file), or that it would refuse. It returns a
// *DamagedError when the file is damaged, nil when bbolt may open it, and
// any other error when the file could not be read: that says nothing about
// the file and must not get it moved aside.
func inspect(r io.ReaderAt, size int64) error {
	if size == 0 {
		return &DamagedError{Reason: "empty file (0 bytes)"}
	}
	m0, why0, err := readMetaAt(r, size, 0)
	if err != nil {
		return err
	}
	var m1 boltMeta
	why1 := "not found"
	if why0 == "" {
		if m1, why1, err = readMetaAt(r, size, int64(m0.pageSize)); err != nil {
			return err
		}
	} else {
		// Meta page 0 does not say the page size: look for page 1 where
		// bbolt does, at every power of two from 1 KiB to 16 MiB.
		for ps := int64(boltMinPageSize); ps <= boltMaxPageSize && ps < size; ps <<= 1 {
			m, why, err := readMetaAt(r, size, ps)
			if err != nil {
				return err
			}
			if why == "" && int64(m.pageSize) == ps {
				m1, why1 = m, ""
				break
			}
		}
	}
	var best boltMeta
	switch {
	case why0 != "" && why1 != "":
		return &DamagedError{Reason: fmt.Sprintf("no valid meta page (page 0: %s; page 1: %s)", why0, why1)}
	case why0 != "":
		best = m1
	case why1 != "" || m0.txid >= m1.txid:
		best = m0
	default:
		best = m1
	}
	ps := int64(best.pageSize)
	if size < 2*ps {
		return &DamagedError{Reason: fmt.Sprintf("%d bytes, shorter than two %d-byte pages", size, ps)}
	}
	if best.pgid > uint64(size/ps) {
		return &DamagedError{Reason: fmt.Sprintf("truncated: %d bytes, but transaction %d uses %d pages of %d bytes", size, best.txid, best.pgid, ps)}
	}
	return nil
}

// inspectFile runs inspect on an open store file.
func inspectFile(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	return inspect(f, st.Size())
}

// asDamaged turns what bbolt says about a file it cannot use into a
// *DamagedError: its own verdicts on the meta pages, and a panic or memory
// fault while it opened the file. Anything else is returned unchanged.
func asDamaged(err error) error {
	var perr *openPanic
	switch {
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return &DamagedError{Reason: "bbolt refused it: " + err.Error()}
	case errors.As(err, &perr):
		return &DamagedError{Reason: "bbolt failed opening it: " + perr.Error()}
	}
	return err
}

// openPanic is a panic, or a memory fault turned into one, inside
// bolt.Open.
type openPanic struct{ v any }

func (p *openPanic) Error() string { return fmt.Sprint(p.v) }

// boltOpen is bolt.Open, made safe against the files the check cannot see
// through (a broken freelist or branch page): a panic or a fault on the
// mapped file comes back as an *openPanic. bbolt may leave the file open
// and mapped then; that is leaked on purpose, once, rather than crashing.
func boltOpen(path string, opts *bolt.Options) (b *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			b, err = nil, &openPanic{v: v}
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// Recovery records that Open found the store file damaged, kept it aside
// and started this store in its place. The allocations, ENIs and events of
// the old file are not in this store.
type Recovery struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"` // what the check found
	KeptAs string    `json:"keptAs"` // where the damaged file was kept, byte for byte
	Size   int64     `json:"size"`   // its size in bytes
}

// Recovery returns the record of the damaged file this store replaced, or
// an error wrapping ErrNotFound when the store was not started that way.
func (t *ReadTx) Recovery() (Recovery, error) {
	return get[Recovery](t, bucketMeta, keyRecovery, "recovery")
}

// Event reasons written by the store itself.
const (
	// ReasonStoreDamaged: the store file was damaged, kept aside, and a
	// new store started; the message names why and where the file is.
	ReasonStoreDamaged = "StoreDamaged"
)

// recoveringSuffix names the new store while it is built, before it takes
// the damaged file's place.
const recoveringSuffix = ".recovering"

// replaceDamaged keeps the damaged store at path aside, under
// "<path>.damaged-<UTC time>", and puts a new store in its place that
// records why (Recovery and a StoreDamaged event). The caller holds the
// exclusive lock. The new store is built and synced under
// "<path>.recovering" first, so a crash leaves either the damaged file in
// place (the next writer starts over) or the recorded new store beside it
// (adoptRecovering finishes the move); a new store without its record
// never takes the place of a damaged one.
func replaceDamaged(path string, size int64, derr *DamagedError, opts Options) (Recovery, error) {
	now := time.Now().UTC()
	rec := Recovery{Time: now, Reason: derr.Reason, KeptAs: asideName(path, now), Size: size}
	tmp := path + recoveringSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rec, fmt.Errorf("remove %s: %w", tmp, err)
	}
	b, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return rec, fmt.Errorf("create new store %s: %w", tmp, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx); err != nil {
			return err
		}
		wtx := &WriteTx{ReadTx: ReadTx{tx: tx, db: &DB{opts: opts}}}
		if err := put(wtx, bucketMeta, keyRecovery, rec); err != nil {
			return err
		}
		_, err := wtx.AppendEvent(Event{
			Time:    now,
			Level:   slog.LevelError,
			Reason:  ReasonStoreDamaged,
			Message: fmt.Sprintf("store file %s was damaged: %s; kept it as %s and started a new, empty store", path, derr.Reason, rec.KeptAs),
			Object:  "store/" + filepath.Base(path),
		})
		return err
	})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rec, fmt.Errorf("create new store %s: %w", tmp, err)
	}
	if err := os.Rename(path, rec.KeptAs); err != nil {
		return rec, fmt.Errorf("keep damaged store as %s: %w", rec.KeptAs, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return rec, fmt.Errorf("put new store in place: %w", err)
	}
	return rec, syncDir(filepath.Dir(path))
}

// adoptRecovering finishes a replaceDamaged that a crash cut short between
// its two renames: the damaged file is already aside, and the recorded new
// store waits under "<path>.recovering". The caller holds the exclusive lock
// and found nothing at path.
func adoptRecovering(path string) error {
	tmp := path + recoveringSuffix
	f, err := os.Open(tmp)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", tmp, err)
	}
	ierr := inspectFile(f)
	f.Close()
	var derr *DamagedError
	switch {
	case errors.As(ierr, &derr):
		// Left by a crash while it was built: nothing to keep.
		return os.Remove(tmp)
	case ierr != nil:
		return fmt.Errorf("check %s: %w", tmp, ierr)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("put new store in place: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// asideName returns a name beside path, not yet taken, for the damaged file
// found at now: "<path>.damaged-20260701T120000Z", with "-2", "-3"... added
// when the store was damaged more than once in a second.
func asideName(path string, now time.Time) string {
	base := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); err != nil {
			return name // free, or the rename will say why not
		}
		name = base + "-" + strconv.Itoa(i)
	}
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
