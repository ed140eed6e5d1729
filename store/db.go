package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

	// Holder describes this process in leases it takes ("veni daemon").
	// Empty means the program name and its first argument.
	Holder string
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.EventCap <= 0 {
		o.EventCap = DefaultEventCap
	}
	if o.Holder == "" {
		o.Holder = defaultHolder()
	}
	return o
}

func defaultHolder() string {
	if len(os.Args) == 0 {
		return "unknown"
	}
	h := filepath.Base(os.Args[0])
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		h += " " + os.Args[1]
	}
	return h
}

// DB is an open store file. It holds the file's exclusive flock until Close:
// keep it open only for a few short transactions.
type DB struct {
	bolt *bolt.DB
	lock *fileLock
	path string
	opts Options
}

// Open opens (creating it if needed) the store at path, waiting up to
// opts.Timeout for its flock, and migrates its schema forward to the one this
// binary knows. The file is created 0600 and its directory 0700.
//
// May return an error wrapping ErrLocked or ErrSchemaTooNew.
func Open(path string, opts Options) (_ *DB, err error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	lock, err := lockFile(path+".lock", opts.Timeout)
	if errors.Is(err, errLockTimeout) {
		return nil, fmt.Errorf("open store %s: %w (another veni process kept it locked for %s; see fuser %s.lock)", path, ErrLocked, opts.Timeout, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			lock.unlock()
		}
	}()
	// Under the outer lock bbolt's own flock is free; the timeout only
	// guards against a process that opened the file without it.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (a process holds it without %s.lock; see fuser %s)", path, ErrLocked, path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db := &DB{bolt: b, lock: lock, path: path, opts: opts}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	// Most opens find the schema current: check it read-only, so an open
	// costs no write (and no fsync) unless a migration is due.
	if current, err := schemaCurrent(b); err != nil || !current {
		if err := b.Update(migrate); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	return db, nil
}

// Close releases the file and its flock.
func (db *DB) Close() error {
	err := db.bolt.Close()
	if uerr := db.lock.unlock(); err == nil {
		err = uerr
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
// and rolled back if it returns an error or panics. Functions registered
// with OnCommit run after a successful commit, before Update returns.
func (db *DB) Update(fn func(*WriteTx) error) error {
	hooks, err := db.update(fn)
	if err != nil {
		return err
	}
	runHooks(hooks)
	return nil
}

func (db *DB) update(fn func(*WriteTx) error) ([]func(), error) {
	var wtx *WriteTx
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		wtx = &WriteTx{ReadTx: ReadTx{tx: tx, db: db}}
		return fn(wtx)
	})
	if err != nil {
		return nil, err
	}
	return wtx.hooks, nil
}

func runHooks(hooks []func()) {
	for _, h := range hooks {
		h()
	}
}

// File names a store that is opened for every transaction and closed right
// after it, the way veni's roles share it. Its View and Update have the
// same shape as DB's, so code that needs a store can take either.
type File struct {
	Path    string
	Options Options
}

// View opens the store, runs fn in one read-only transaction and closes it.
func (f File) View(fn func(*ReadTx) error) error {
	db, err := Open(f.Path, f.Options)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Update opens the store, runs fn in one read-write transaction and closes
// it. OnCommit functions run after the file is closed and unlocked, so they
// may take their time.
func (f File) Update(fn func(*WriteTx) error) error {
	db, err := Open(f.Path, f.Options)
	if err != nil {
		return err
	}
	hooks, err := db.update(fn)
	cerr := db.Close()
	if err != nil {
		return err
	}
	// The commit happened even if closing failed: its side effects are due.
	runHooks(hooks)
	return cerr
}

// View opens the store at path with default options, runs fn in one
// read-only transaction and closes the store.
func View(path string, fn func(*ReadTx) error) error {
	return File{Path: path}.View(fn)
}

// Update opens the store at path with default options, runs fn in one
// read-write transaction and closes the store. OnCommit functions run after
// the file is closed and unlocked.
func Update(path string, fn func(*WriteTx) error) error {
	return File{Path: path}.Update(fn)
}
