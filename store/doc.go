// Package store is the node's meeting point: one bbolt file per node
// (default /var/lib/veni/veni.db) that holds the ENIs veni knows, their IPs,
// the allocations of pods, leases, pool targets and back-offs, and an
// append-only event log. veni's roles (CNI plugin, daemon, operator tool)
// never talk to each other over RPC; they share state only through this
// file.
//
// # Rules
//
// Every process opens the file for one short transaction and closes it
// again: use the package-level View and Update, or Open a DB, run a few
// transactions and Close it. The file is guarded by an exclusive flock, so
// nobody may hold a DB open across a netlink call, a cloud call or any other
// wait; collect what you need, close, do the slow work, then open again.
//
// Only managed transactions exist: (*DB).View runs a read-only function
// over a *ReadTx, (*DB).Update a read-write function over a *WriteTx that is
// committed when the function returns nil and rolled back when it returns an
// error or panics. Side effects that must only happen after a commit go in
// (*WriteTx).OnCommit; they run after the commit and, for the package-level
// Update, after the file is closed and unlocked.
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
