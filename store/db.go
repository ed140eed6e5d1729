package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultPath is where a node keeps its store.
const DefaultPath = "/var/lib/veni/veni.db"

// Defaults for Options fields left zero.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultEventCap = 1000
)

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for the file's flock before failing
	// with ErrLocked. Zero means DefaultTimeout; negative means fail at
	// once if the file is locked.
	Timeout time.Duration

	// EventCap is how many events the log keeps; older ones are dropped as
	// new ones are appended. Zero means DefaultEventCap.
	EventCap int

	// ReadOnly opens the store for View only, under a shared flock: readers
	// do not wait for each other, only for a writer. See Open. File.View
	// sets it for its own open; File.Update refuses to run with it.
	ReadOnly bool

	// legacy makes every open behave as before readers shared the file:
	// File.View opens it as a writer, and a writer takes the exclusive
	// flock alone, with no writer queue and no gate. Only the benchmark sets
	// it, to measure both behaviours in one run.
	legacy bool
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.EventCap <= 0 {
		o.EventCap = DefaultEventCap
	}
	return o
}

// DB is an open store file. Opened for writing it holds the file's
// exclusive flock until Close, opened with Options.ReadOnly a shared one:
// keep it open only for a few short transactions.
type DB struct {
	bolt     *bolt.DB
	lock     *fileLock // nil for a reader of a store that does not exist (no lock file)
	path     string
	opts     Options
	readOnly bool
}

// Open opens the store at path, waiting up to opts.Timeout for its flock.
//
// Opened for writing (the default), it creates the file (0600, in a 0700
// directory) when missing, and migrates its schema forward to the one this
// binary knows. Before bbolt maps an existing file, Open checks it (see
// inspect); a damaged file is renamed to "<path>.damaged-<UTC time>", never
// deleted, and a new store takes its place, recording what happened in
// (*ReadTx).Recovery and a StoreDamaged event.
//
// Opened with opts.ReadOnly, it shares the file with other readers and
// never writes, creates, migrates or moves it: a missing store reads as an
// empty one, a store of an older schema reads as a migrated in-memory copy,
// and a damaged one is an error.
//
// May return an error wrapping ErrLocked, ErrSchemaTooNew or, for a reader,
// ErrDamaged.
func Open(path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if opts.ReadOnly && !opts.legacy {
		return openReader(path, opts)
	}
	return openWriter(path, opts)
}

func openWriter(path string, opts Options) (_ *DB, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	mode := lockWrite
	if opts.legacy {
		mode = lockLegacy
	}
	lock, err := lockFile(path+".lock", mode, true, opts.Timeout)
	if err != nil {
		return nil, lockError(path, opts, err)
	}
	defer func() {
		if err != nil {
			lock.unlock()
		}
	}()
	b, err := openWriteFile(path, opts)
	if err != nil {
		return nil, boltError(path, err)
	}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	// Most opens find the schema current: check it read-only, so an open
	// costs no write (and no fsync) unless a migration is due.
	if have, err := readSchema(b); err != nil || have != SchemaVersion() {
		if err := b.Update(migrate); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	return &DB{bolt: b, lock: lock, path: path, opts: opts}, nil
}

// openWriteFile opens the store file read-write under the exclusive lock,
// creating it when missing and replacing it when damaged.
func openWriteFile(path string, opts Options) (*bolt.DB, error) {
	replaced := false
	for {
		b, size, err := openCheckedFile(path, false)
		var derr *DamagedError
		if !errors.As(err, &derr) || replaced {
			return b, err
		}
		if _, err := replaceDamaged(path, size, derr, opts); err != nil {
			return nil, fmt.Errorf("%w; could not replace it: %w", derr, err)
		}
		replaced = true
	}
}

// openFile opens the store file; tests replace it to inject errors.
var openFile = os.OpenFile

// openCheckedFile opens the store file, checks it unless it was just
// created, and hands it to bbolt. It returns the file's size, and a
// *DamagedError when the check or bbolt found it damaged. A reader gets
// os.ErrNotExist for a missing file.
func openCheckedFile(path string, readOnly bool) (*bolt.DB, int64, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := openFile(path, flag, 0)
	created := false
	if !readOnly && errors.Is(err, os.ErrNotExist) {
		if err := adoptRecovering(path); err != nil {
			return nil, 0, err
		}
		if f, err = openFile(path, flag, 0); errors.Is(err, os.ErrNotExist) {
			f, err = openFile(path, flag|os.O_CREATE|os.O_EXCL, 0o600)
			created = true
		}
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat: %w", err)
	}
	if !created {
		if err := inspect(f, st.Size()); err != nil {
			f.Close()
			return nil, st.Size(), err
		}
	}
	b, err := boltOpen(path, &bolt.Options{
		ReadOnly: readOnly,
		// Under the outer lock bbolt's own flock is free; the timeout
		// only guards against a process that opened the file without it.
		Timeout:  time.Second,
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
	})
	if err != nil {
		return nil, st.Size(), asDamaged(err)
	}
	return b, st.Size(), nil
}

func openReader(path string, opts Options) (_ *DB, err error) {
	db := &DB{path: path, opts: opts, readOnly: true}
	lock, err := lockFile(path+".lock", lockRead, false, opts.Timeout)
	if errors.Is(err, os.ErrNotExist) {
		// A writer creates the lock file before the store: without one
		// there is no store yet (or a writer is about to create it, and
		// this read comes first). Read it as an empty store and create
		// nothing. A store without its lock file gets one.
		if _, serr := os.Lstat(path); errors.Is(serr, os.ErrNotExist) {
			return openEmpty(db)
		}
		lock, err = lockFile(path+".lock", lockRead, true, opts.Timeout)
	}
	if err != nil {
		return nil, lockError(path, opts, err)
	}
	db.lock = lock
	defer func() {
		if err != nil {
			lock.unlock()
		}
	}()
	b, _, err := openCheckedFile(path, true)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return openEmpty(db)
	case errors.Is(err, ErrDamaged):
		return nil, fmt.Errorf("open store %s: %w (left in place: the next writer keeps it aside and starts a new store)", path, err)
	case err != nil:
		return nil, boltError(path, err)
	}
	have, err := readSchema(b)
	switch {
	case err != nil:
	case have > SchemaVersion():
		err = errSchemaTooNew(have)
	case have < SchemaVersion():
		// Only a writer migrates the file: read a migrated copy.
		var s *bolt.DB
		if s, err = snapshot(b); err == nil {
			b.Close()
			b = s
		}
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.bolt = b
	return db, nil
}

// openEmpty gives a reader of a store that does not exist an empty one.
func openEmpty(db *DB) (*DB, error) {
	b, err := snapshot(nil)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.path, err)
	}
	db.bolt = b
	return db, nil
}

func lockError(path string, opts Options, err error) error {
	switch {
	case errors.Is(err, errLockTimeout) && opts.Timeout < 0:
		return fmt.Errorf("open store %s: %w (another veni process holds it; see fuser %s.lock)", path, ErrLocked, path)
	case errors.Is(err, errLockTimeout):
		return fmt.Errorf("open store %s: %w (another veni process kept it locked for %s; see fuser %s.lock)", path, ErrLocked, opts.Timeout, path)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

func boltError(path string, err error) error {
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("open store %s: %w (a process holds it without %s.lock; see fuser %s)", path, ErrLocked, path, path)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// Close releases the file and its flock.
func (db *DB) Close() error {
	err := db.bolt.Close()
	if db.lock != nil {
		if uerr := db.lock.unlock(); err == nil {
			err = uerr
		}
	}
	if err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// Path returns the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// View runs fn in a read-only transaction. The error fn returns is returned.
func (db *DB) View(fn func(*ReadTx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		return fn(&ReadTx{tx: tx, db: db})
	})
}

// Update runs fn in a read-write transaction, committed if fn returns nil
// and rolled back if it returns an error or panics.
//
// May return an error wrapping ErrReadOnly.
func (db *DB) Update(fn func(*WriteTx) error) error {
	if db.readOnly {
		return fmt.Errorf("update store %s: %w (open it without Options.ReadOnly to write)", db.path, ErrReadOnly)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return fn(&WriteTx{ReadTx: ReadTx{tx: tx, db: db}})
	})
}

// File names a store that is opened for every transaction and closed right
// after it, the way veni's roles share it. Its View and Update have the
// same shape as DB's, so code that needs a store can take either.
type File struct {
	Path    string
	Options Options
}

// View opens the store for reading, sharing it with other readers, runs fn
// in one read-only transaction and closes it. See Open for what a reader
// sees of a missing, older or damaged store.
//
// May return an error wrapping ErrLocked, ErrSchemaTooNew or ErrDamaged.
func (f File) View(fn func(*ReadTx) error) error {
	opts := f.Options
	opts.ReadOnly = !opts.legacy
	db, err := Open(f.Path, opts)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Update opens the store for writing, runs fn in one read-write
// transaction and closes it.
//
// May return an error wrapping ErrLocked, ErrSchemaTooNew or, when
// f.Options.ReadOnly is set, ErrReadOnly.
func (f File) Update(fn func(*WriteTx) error) error {
	if f.Options.ReadOnly {
		return fmt.Errorf("update store %s: %w (File.Options.ReadOnly is set)", f.Path, ErrReadOnly)
	}
	db, err := Open(f.Path, f.Options)
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// View opens the store at path for reading with default options, runs fn in
// one read-only transaction and closes the store.
func View(path string, fn func(*ReadTx) error) error {
	return File{Path: path}.View(fn)
}

// Update opens the store at path with default options, runs fn in one
// read-write transaction and closes the store.
func Update(path string, fn func(*WriteTx) error) error {
	return File{Path: path}.Update(fn)
}
