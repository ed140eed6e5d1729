package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ReadTx is a read-only view of the store, valid only inside the function
// passed to View or Update. Every record it returns is a copy.
type ReadTx struct {
	tx *bolt.Tx
	db *DB
}

// WriteTx is a read-write transaction, valid only inside the function passed
// to Update. Its reads see its own writes.
type WriteTx struct {
	ReadTx
}

func ipKey(a netip.Addr) []byte { return []byte(a.String()) }

func get[T any](t *ReadTx, bucket, key []byte, what string) (T, error) {
	var zero T
	v := t.tx.Bucket(bucket).Get(key)
	if v == nil {
		return zero, fmt.Errorf("%s %s: %w", what, key, ErrNotFound)
	}
	return decode[T](key, v)
}

func list[T any](t *ReadTx, bucket []byte) ([]T, error) {
	var out []T
	err := t.tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		rec, err := decode[T](k, v)
		if err != nil {
			return err
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

func put[T any](t *WriteTx, bucket, key []byte, rec T) error {
	v, err := encode(rec)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucket).Put(key, v)
}

// ENI returns the ENI with the given id, or an error wrapping ErrNotFound.
func (t *ReadTx) ENI(id string) (ENI, error) {
	return get[ENI](t, bucketENIs, []byte(id), "eni")
}

// ENIs returns every ENI, ordered by id.
func (t *ReadTx) ENIs() ([]ENI, error) {
	return list[ENI](t, bucketENIs)
}

// IP returns the record of addr, or an error wrapping ErrNotFound.
func (t *ReadTx) IP(addr netip.Addr) (IP, error) {
	return get[IP](t, bucketIPs, ipKey(addr), "ip")
}

// IPs returns every IP, ordered by address.
func (t *ReadTx) IPs() ([]IP, error) {
	ips, err := list[IP](t, bucketIPs)
	slices.SortFunc(ips, func(a, b IP) int { return a.Addr.Compare(b.Addr) })
	return ips, err
}

// Allocation returns the allocation of key, or an error wrapping
// ErrNotFound.
func (t *ReadTx) Allocation(key OwnerKey) (Allocation, error) {
	return get[Allocation](t, bucketAllocs, []byte(key), "allocation")
}

// Allocations returns every allocation, ordered by key.
func (t *ReadTx) Allocations() ([]Allocation, error) {
	return list[Allocation](t, bucketAllocs)
}

// AllocationByIP returns the allocation holding addr, or an error wrapping
// ErrNotFound when the IP is unknown or free.
func (t *ReadTx) AllocationByIP(addr netip.Addr) (Allocation, error) {
	ip, err := t.IP(addr)
	if err != nil {
		return Allocation{}, err
	}
	if ip.Owner == "" {
		return Allocation{}, fmt.Errorf("allocation of %s: ip is free: %w", addr, ErrNotFound)
	}
	return t.Allocation(ip.Owner)
}

// PutENI creates or replaces an ENI record. A zero Table keeps the table
// the ENI already has, or assigns the lowest one no other ENI uses (from
// FirstENITable up); a Table another ENI uses is refused.
//
// May return an error wrapping ErrInvalid or ErrInvariant.
func (t *WriteTx) PutENI(e ENI) error {
	if err := e.validate(); err != nil {
		return err
	}
	e.MAC = strings.ToLower(e.MAC)
	enis, err := t.ENIs()
	if err != nil {
		return err
	}
	used := make(map[int]string, len(enis))
	for _, o := range enis {
		if o.ID == e.ID {
			if e.Table == 0 {
				e.Table = o.Table
			}
			continue
		}
		used[o.Table] = o.ID
	}
	if other, ok := used[e.Table]; ok && e.Table != 0 {
		return fmt.Errorf("put eni %s: table %d belongs to %s: %w", e.ID, e.Table, other, ErrInvariant)
	}
	for t := FirstENITable; e.Table == 0; t++ {
		if _, ok := used[t]; !ok {
			e.Table = t
		}
	}
	return put(t, bucketENIs, []byte(e.ID), e)
}

// FirstENITable is the lowest routing table PutENI assigns to an ENI. Like
// Terway's tables (1000 + ifindex) it sits far above the kernel's own
// (local 255, main 254, default 253).
const FirstENITable = 1001

// DeleteENI removes an ENI and its free IPs. Deleting an unknown ENI does
// nothing.
//
// May return an error wrapping ErrInUse when one of its IPs is reserved or
// bound.
func (t *WriteTx) DeleteENI(id string) error {
	ips, err := t.IPs()
	if err != nil {
		return err
	}
	var drop [][]byte
	for _, ip := range ips {
		if ip.ENIID != id {
			continue
		}
		if ip.State != IPFree {
			return fmt.Errorf("delete eni %s: ip %s is %s by %s: %w", id, ip.Addr, ip.State, ip.Owner, ErrInUse)
		}
		drop = append(drop, ipKey(ip.Addr))
	}
	b := t.tx.Bucket(bucketIPs)
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return t.tx.Bucket(bucketENIs).Delete([]byte(id))
}

// PutIP creates or replaces an IP record. The IP's ENI must exist, and an IP
// held by one owner cannot pass straight to another or to another ENI: free
// it first.
//
// May return an error wrapping ErrInvalid or ErrInvariant.
func (t *WriteTx) PutIP(ip IP) error {
	if err := ip.validate(); err != nil {
		return err
	}
	if _, err := t.ENI(ip.ENIID); err != nil {
		return fmt.Errorf("put ip %s: eni %s: %w", ip.Addr, ip.ENIID, ErrInvariant)
	}
	old, err := t.IP(ip.Addr)
	switch {
	case err == nil && old.State != IPFree && old.Owner != ip.Owner && ip.Owner != "":
		return fmt.Errorf("put ip %s for %s: held by %s: %w", ip.Addr, ip.Owner, old.Owner, ErrInvariant)
	case err == nil && old.State != IPFree && old.ENIID != ip.ENIID:
		return fmt.Errorf("put ip %s on eni %s: %s on eni %s: %w", ip.Addr, ip.ENIID, old.State, old.ENIID, ErrInvariant)
	case err != nil && !isNotFound(err):
		return err
	}
	return put(t, bucketIPs, ipKey(ip.Addr), ip)
}

// DeleteIP removes a free IP. Deleting an unknown IP does nothing.
//
// May return an error wrapping ErrInUse when the IP is reserved or bound.
func (t *WriteTx) DeleteIP(addr netip.Addr) error {
	ip, err := t.IP(addr)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ip.State != IPFree {
		return fmt.Errorf("delete ip %s: %s by %s: %w", addr, ip.State, ip.Owner, ErrInUse)
	}
	return t.tx.Bucket(bucketIPs).Delete(ipKey(addr))
}

// PutAllocation creates or replaces an allocation. An empty Key is filled in
// from ContainerID and IfName. The allocation's IP must already be in the
// same state, owned by this key, on the same ENI: write the IP first.
//
// May return an error wrapping ErrInvalid or ErrInvariant.
func (t *WriteTx) PutAllocation(a Allocation) error {
	if a.Key == "" {
		a.Key = NewOwnerKey(a.ContainerID, a.IfName)
	}
	if err := a.validate(); err != nil {
		return err
	}
	ip, err := t.IP(a.IP)
	if err != nil {
		return fmt.Errorf("put allocation %s: ip %s: %w: %w", a.Key, a.IP, ErrInvariant, err)
	}
	if ip.Owner != a.Key || ip.State != a.State || ip.ENIID != a.ENIID {
		return fmt.Errorf("put allocation %s (%s on %s): ip is %s by %q on %s: %w", a.Key, a.State, a.ENIID, ip.State, ip.Owner, ip.ENIID, ErrInvariant)
	}
	if a.IP6.IsValid() {
		ip6, err := t.IP(a.IP6)
		if err != nil {
			return fmt.Errorf("put allocation %s: ip6 %s: %w: %w", a.Key, a.IP6, ErrInvariant, err)
		}
		if ip6.Owner != a.Key || ip6.State != a.State || ip6.ENIID != a.ENIID {
			return fmt.Errorf("put allocation %s (%s on %s): ip6 is %s by %q on %s: %w", a.Key, a.State, a.ENIID, ip6.State, ip6.Owner, ip6.ENIID, ErrInvariant)
		}
	}
	return put(t, bucketAllocs, []byte(a.Key), a)
}

// DeleteAllocation removes an allocation. Deleting an unknown key does
// nothing. It does not free the IP: do that in the same transaction.
func (t *WriteTx) DeleteAllocation(key OwnerKey) error {
	return t.tx.Bucket(bucketAllocs).Delete([]byte(key))
}

// PoolState returns the node's pool state; the zero value if none was ever
// written.
func (t *ReadTx) PoolState() (PoolState, error) {
	p, err := get[PoolState](t, bucketPool, keyPoolState, "pool state")
	if isNotFound(err) {
		return PoolState{}, nil
	}
	return p, err
}

// PutPoolState replaces the node's pool state.
func (t *WriteTx) PutPoolState(p PoolState) error {
	return put(t, bucketPool, keyPoolState, p)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
