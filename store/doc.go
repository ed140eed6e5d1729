// Package store is the node's meeting point: one bbolt file per node
// (default /var/lib/veni/veni.db) that holds the ENIs veni knows, their IPs,
// the allocations of pods, leases, pool targets and back-offs, the fixed-IP
// ENIs the node is attaching or has parked (fixed.go), and an append-only
// event log. veni's roles (CNI plugin, daemon, operator tool)
// never talk to each other over RPC; they share state only through this
// file.
//
// # Rules
//
// Every process opens the file for one short transaction and closes it
// again: use the package-level View and Update, or Open a DB, run a few
// transactions and Close it. Nobody may hold a DB open across a netlink
// call, a cloud call or any other wait; collect what you need, close, do
// the slow work, then open again.
//
// Readers share the file, a writer has it alone. Update (and Open for
// writing) takes an exclusive flock on "<file>.lock"; View (and Open with
// Options.ReadOnly) takes a shared one and opens bbolt read-only, so a CNI
// DEL's lookup waits only for a writer's transaction, never for other
// readers. The outer flock is also what makes bbolt's read-only mapping
// safe across processes: bbolt reuses freed pages in place and only tracks
// the readers of its own process, but no writer can have the file open
// while any reader does, and a reader maps only pages below the high-water
// mark of the transaction it reads, all within the file. A waiting writer
// passes a gate that new readers queue behind, so a stream of readers
// cannot starve it (see fileLock). Nested opens in one goroutine can
// deadlock against a waiting writer: finish one transaction before the
// next.
//
// A reader never creates, migrates or moves the file: a store that does
// not exist reads as an empty one, a store of an older schema as an
// in-memory copy migrated the way a writer would, and one from a newer
// binary is refused with ErrSchemaTooNew.
//
// Before bbolt maps a file, Open checks it: empty, shorter than two pages,
// no valid meta page, or shorter than the high-water mark of its newest
// valid transaction. bbolt would silently re-create the first and crash on
// the others (SIGBUS on the mapping). A writer renames such a file to
// "<file>.damaged-<UTC time>", never deletes it, and starts a new store
// that says what happened: (*ReadTx).Recovery and a StoreDamaged event. A
// reader leaves it in place and returns an error wrapping ErrDamaged. A
// file that cannot be read (permissions, I/O errors, a lock timeout) is
// never taken for damaged.
//
// Only managed transactions exist: (*DB).View runs a read-only function
// over a *ReadTx, (*DB).Update a read-write function over a *WriteTx that is
// committed when the function returns nil and rolled back when it returns an
// error or panics. Side effects that must follow a commit go after Update
// returns nil.
//
// Values are JSON-encoded, versioned records. Every accessor returns a copy
// decoded from the file: it stays valid after the transaction ends, and
// changing it changes nothing until it is written back with a Put method.
//
// The write accessors enforce the cheap invariants (an allocation points at
// an IP reserved or bound to it, an IP belongs to an ENI that exists, an IP
// or ENI still in use cannot be deleted); (*ReadTx).Check verifies all of
// them and is what tests run at cleanup.
//
// This package must not touch the network or the cloud, and holds no
// allocation policy: choosing which IP to hand out is package ipam's job.
package store
