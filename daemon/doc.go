// Package daemon is veni's node daemon: it keeps the node's IP pool within
// its targets, keeps the store, the links and the cloud in agreement, and
// garbage-collects addresses whose owner is gone.
//
// The daemon is not on the CNI's path: a warm ADD works while it is
// stopped. It talks to the other roles only through the store, and wakes on
// a timer and when the store file is written (inotify), never on an RPC.
//
// It must not hold the store open across a netlink or a cloud call: every
// store access is one short transaction (ipam's functions are built so).
package daemon
