package ipam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// Store is the node's store as ipam uses it: store.File, which opens the
// file for each transaction (what veni's roles use), or an open *store.DB.
// Every ipam function runs short transactions and never keeps one open
// across a cloud call or a wait.
type Store interface {
	View(fn func(*store.ReadTx) error) error
	Update(fn func(*store.WriteTx) error) error
	// ClaimsDir is where the store's claims live (store.ClaimsDir).
	ClaimsDir() string
}

// Node is what ipam needs to know about the node it runs on.
type Node struct {
	InstanceID       string
	Limits           eni.InstanceLimits // of the instance type
	ZoneID           string
	PrimaryENIID     string       // the instance's eth0: never used for pods, never deleted
	VSwitchID        string       // the primary ENI's vSwitch: used when eni_conf lists none for ZoneID
	VSwitchCIDR      netip.Prefix // VSwitchID's, from metadata: a new ENI there needs no DescribeVSwitches
	SecurityGroupIDs []string     // the primary ENI's: used when eni_conf names none

	// PID and Holder describe the process acting, in lease records and
	// reservations, for humans ("veni daemon", pid 4711). Zero and empty
	// mean os.Getpid() and the program's name.
	PID    int
	Holder string

	// WaitLink, when set, blocks until the node sees a link with this MAC
	// (a newly attached ENI). An ENI only becomes ready, and its IPs
	// usable, after it returns nil.
	WaitLink func(ctx context.Context, mac net.HardwareAddr) error

	// AttachedENIs, when set, lists the ENIs instance metadata says are
	// attached to this instance, with their addresses. Reconcile compares
	// it with the store and describes the ENIs through the OpenAPI only
	// when the two disagree or cloud_sync_interval passed: a node's steady
	// state makes no API call. Nil means always describing.
	AttachedENIs func(ctx context.Context) ([]eni.MetadataENI, error)

	// HostPods lists the pods veni plumbed on the node (from its links).
	// Reconcile asks it before recording as free any address the cloud
	// lists and the store does not know; without it such addresses are
	// not recorded at all.
	HostPods func(ctx context.Context) ([]HostPod, error)
}

func (n Node) pid() int {
	if n.PID != 0 {
		return n.PID
	}
	return os.Getpid()
}

func (n Node) holder() string {
	if n.Holder != "" {
		return n.Holder
	}
	if len(os.Args) == 0 {
		return "unknown"
	}
	h := filepath.Base(os.Args[0])
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		h += " " + os.Args[1]
	}
	return h
}

// Owner is who asks for an IP: the CNI attachment and, for humans and GC,
// the pod.
type Owner struct {
	ContainerID  string
	IfName       string
	Network      string // the CNI network name (the conflist's "name")
	PodNamespace string
	PodName      string
	PodUID       string
	NetNS        string        // netns path; GC releases bound IPs whose netns is gone
	NetNSID      store.NetNSID // what the path named at ADD
	PID          int           // the reserving process; zero means os.Getpid()
	// StickFor keeps the pod's addresses for it this long once released
	// (podnetwork.Request.StickFor); zero: straight back to the pool.
	StickFor time.Duration
}

// podKey is the owner's pod, "namespace/name", as addresses stick to it;
// "" when the runtime did not name the pod.
func (o Owner) podKey() string {
	if o.PodName == "" {
		return ""
	}
	return store.PodKey(o.PodNamespace, o.PodName)
}

// Key is the owner's store key.
func (o Owner) Key() store.OwnerKey { return store.NewOwnerKey(o.ContainerID, o.IfName) }

// Reservation is an IP held for an owner, with what the datapath needs to
// plumb it.
type Reservation struct {
	Key   store.OwnerKey
	IP    netip.Addr
	IP6   netip.Addr    // the pod's IPv6 on the same ENI (dual stack); zero otherwise
	State store.IPState // store.IPReserved until Commit, then store.IPBound
	ENI   store.ENI     // MAC, vSwitch CIDR and gateway for routing
}

// Reserve is transaction 1 of a CNI ADD: it holds a free IP on a ready ENI
// for owner, preferring the IP that has been free the longest so that an
// address is not handed to a new pod right after its previous pod left. It
// makes no cloud call. Reserving again for the same ContainerID and IfName
// returns the existing reservation.
//
// The caller holds the attachment's claim (store.OwnerClaim) from before
// Reserve until after Commit or Release: that is what tells GC the
// reservation's ADD is alive.
//
// May return an error wrapping ErrPoolEmpty, whose message also names any
// active back-off that keeps the pool from growing.
func Reserve(db Store, owner Owner) (Reservation, error) {
	return reserve(db, owner, nil)
}

// reserve is Reserve; with cfg set it first checks, in the same
// transaction, that the store's pool mode and ip stack are cfg's
// (ErrModeMismatch, ErrStackMismatch). A dual-stack node (cfg's stack, or
// without cfg the store's) reserves an IPv4 and an IPv6 of one ENI
// together.
func reserve(db Store, owner Owner, cfg *config.Config) (Reservation, error) {
	key := owner.Key()
	if owner.ContainerID == "" || owner.IfName == "" {
		return Reservation{}, fmt.Errorf("reserve ip: empty container id or ifname")
	}
	var res Reservation
	err := db.Update(func(tx *store.WriteTx) error {
		var stack string
		if cfg != nil {
			if err := checkForLife(&tx.ReadTx, *cfg); err != nil {
				return err
			}
			stack = cfg.IPStack
		} else {
			var err error
			if stack, err = stackOf(&tx.ReadTx); err != nil {
				return err
			}
		}
		dual, v6only := stack == config.IPStackDual, stack == config.IPStackV6
		if a, err := tx.Allocation(key); err == nil {
			e, err := tx.ENI(a.ENIID)
			res = Reservation{Key: key, IP: a.IP, IP6: a.IP6, State: a.State, ENI: e}
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		now := time.Now()
		ip, ip6, e, ok, err := pickStuck(&tx.ReadTx, owner.podKey(), stack, now)
		switch {
		case err != nil:
			return err
		case ok:
		case dual:
			ip, ip6, e, err = pickFreePair(&tx.ReadTx)
		default:
			// An IPv6-only pod's one address is its IP.
			ip, e, err = pickFree(&tx.ReadTx, v6only)
		}
		if err != nil {
			return err
		}
		ip.StickTo, ip.StickUntil, ip6.StickTo, ip6.StickUntil = "", time.Time{}, "", time.Time{}
		ip.State, ip.Owner = store.IPReserved, key
		if err := tx.PutIP(ip); err != nil {
			return err
		}
		if dual {
			ip6.State, ip6.Owner = store.IPReserved, key
			if err := tx.PutIP(ip6); err != nil {
				return err
			}
		}
		pid := owner.PID
		if pid == 0 {
			pid = os.Getpid()
		}
		a := store.Allocation{
			Key: key, ContainerID: owner.ContainerID, IfName: owner.IfName, Network: owner.Network,
			PodNamespace: owner.PodNamespace, PodName: owner.PodName, PodUID: owner.PodUID,
			NetNS: owner.NetNS, NetNSID: owner.NetNSID,
			IP: ip.Addr, IP6: ip6.Addr, ENIID: ip.ENIID, State: store.IPReserved, ReservedBy: pid, ReservedAt: now,
			StickFor: owner.StickFor,
		}
		if err := tx.PutAllocation(a); err != nil {
			return err
		}
		res = Reservation{Key: key, IP: ip.Addr, IP6: ip6.Addr, State: store.IPReserved, ENI: e}
		return nil
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve ip for %s: %w", key, err)
	}
	return res, nil
}

// pickFree returns the free IPv4 (with six, IPv6) on a ready ENI that has
// been free the longest, or an error wrapping ErrPoolEmpty. Of an ENI's
// /80 records (IPv6 only in prefix mode) it returns that ENI's lowest free
// one.
func pickFree(tx *store.ReadTx, six bool) (store.IP, store.ENI, error) {
	enis, err := readyENIs(tx)
	if err != nil {
		return store.IP{}, store.ENI{}, err
	}
	ips, err := tx.IPs()
	if err != nil {
		return store.IP{}, store.ENI{}, err
	}
	now := time.Now()
	var best *store.IP
	for i, ip := range ips {
		if _, ok := enis[ip.ENIID]; !ok || !ip.Open(now) || ip.Addr.Is6() != six {
			continue
		}
		if best == nil || ip.FreeSince.Before(best.FreeSince) {
			best = &ips[i]
		}
	}
	if best == nil {
		return store.IP{}, store.ENI{}, emptyError(tx, now)
	}
	e := enis[best.ENIID]
	if six && best.Prefix.IsValid() {
		// An IPv6-only prefix pool (prefix6.go): the lowest free address
		// of the ENI's /80s.
		for i, ip := range ips {
			if ip.ENIID == e.ID && ip.Open(now) && ip.Addr.Is6() && ip.Prefix.IsValid() && ip.Addr.Less(best.Addr) {
				best = &ips[i]
			}
		}
	}
	return *best, e, nil
}

// pickStuck returns the addresses kept for pod (IP.StickTo) on a usable
// ENI, when there are: an IPv4, and on a dual-stack node the IPv6 kept
// with it on the same ENI; on an IPv6-only node (stack "ipv6") an IPv6 as
// v4, the allocation's IP. ok is false when pod is "" or nothing usable
// is kept for it (then its addresses wait out their time or were taken
// back with their ENI).
func pickStuck(tx *store.ReadTx, pod string, stack string, now time.Time) (v4, v6 store.IP, e store.ENI, ok bool, err error) {
	dual := stack == config.IPStackDual
	if pod == "" {
		return v4, v6, e, false, nil
	}
	enis, err := readyENIs(tx)
	if err != nil {
		return v4, v6, e, false, err
	}
	ips, err := tx.IPs()
	if err != nil {
		return v4, v6, e, false, err
	}
	var four, six []store.IP
	for _, ip := range ips {
		if _, usable := enis[ip.ENIID]; !usable || ip.StickTo != pod || !ip.Sticking(now) {
			continue
		}
		if ip.Addr.Is4() {
			four = append(four, ip)
		} else {
			six = append(six, ip)
		}
	}
	if stack == config.IPStackV6 {
		four, six = six, nil
	}
	for _, a := range four {
		if !dual {
			return a, v6, enis[a.ENIID], true, nil
		}
		for _, b := range six {
			if b.ENIID == a.ENIID {
				return a, b, enis[a.ENIID], true, nil
			}
		}
	}
	return v4, v6, e, false, nil
}

// usable reports whether an ENI's free IPs may be handed out to any pod: it
// is ready, not gone from the cloud (see noteMissing), and not dedicated to
// one pod (an exclusive or member ENI: its address is its pod's).
func usable(e store.ENI) bool { return ready(e) && !e.Dedicated() }

// ready reports whether an ENI is attached and seen by the node, and not
// gone from the cloud.
func ready(e store.ENI) bool { return e.State == store.ENIReady && !e.Gone() }

// releaseDedicated makes a pod's own ENI (exclusive or trunk member) idle
// once the allocation that held it is dropped, in the same transaction: it
// names no pod any more, and its pool may give it to the next pod of its
// groups. Any other ENI is left alone.
func releaseDedicated(tx *store.WriteTx, eniID string, now time.Time) error {
	e, err := tx.ENI(eniID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (!e.Dedicated() || e.Pod == "")) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.Fixed != nil {
		// A fixed ENI stays its pod's: kept here for fixed_eni_hold,
		// then parked in the cloud by the daemon (tendFixed).
		e.Fixed.PodGoneAt = now
		return tx.PutENI(e)
	}
	e.Pod = ""
	return tx.PutENI(e)
}

// readyENIs returns the usable ENIs by id.
func readyENIs(tx *store.ReadTx) (map[string]store.ENI, error) {
	enis, err := tx.ENIs()
	out := make(map[string]store.ENI, len(enis))
	for _, e := range enis {
		if usable(e) {
			out[e.ID] = e
		}
	}
	return out, err
}

// emptyError is ErrPoolEmpty, saying which back-offs keep the pool from
// growing, so "no IP" comes with its reason.
func emptyError(tx *store.ReadTx, now time.Time) error {
	ps, err := tx.PoolState()
	if err != nil {
		return err
	}
	var why []string
	for _, b := range ps.ActiveBackoffs(now) {
		why = append(why, (&BackoffError{Scope: b.Scope, Backoff: b.Backoff}).Error())
	}
	if len(why) == 0 {
		return ErrPoolEmpty
	}
	return fmt.Errorf("%w (%s)", ErrPoolEmpty, strings.Join(why, "; "))
}

// HostSide is the host end of a plumbed pod, recorded at Commit so that a
// release detaches exactly this pod's datapath state.
type HostSide struct {
	Veth    string
	Ifindex int
}

// Commit is transaction 2 of a CNI ADD: the pod is plumbed (its host end is
// host), its IP is bound. When note is set it is appended to the event log
// in the same transaction (the ADD's record: no extra write). Committing a
// bound allocation again does nothing.
//
// May return an error wrapping store.ErrNotFound when the reservation is
// gone (released by GC).
func Commit(db Store, key store.OwnerKey, host HostSide, note *store.Event) error {
	err := db.Update(func(tx *store.WriteTx) error {
		a, err := tx.Allocation(key)
		if err != nil {
			return err
		}
		if a.State == store.IPBound {
			return nil
		}
		ip, err := tx.IP(a.IP)
		if err != nil {
			return err
		}
		a.HostVeth, a.HostIfindex = host.Veth, host.Ifindex
		ip.State, a.State, a.BoundAt = store.IPBound, store.IPBound, time.Now()
		if err := tx.PutIP(ip); err != nil {
			return err
		}
		if a.IP6.IsValid() {
			// Bound with its IPv4 in this one transaction: a pod is
			// never half committed.
			ip6, err := tx.IP(a.IP6)
			if err != nil {
				return err
			}
			ip6.State = store.IPBound
			if err := tx.PutIP(ip6); err != nil {
				return err
			}
		}
		if err := tx.PutAllocation(a); err != nil {
			return err
		}
		if note == nil {
			return nil
		}
		_, err = tx.AppendEvent(*note)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit ip for %s: %w", key, err)
	}
	return nil
}

// Release frees the IP held by key and drops its allocation, whatever it
// is. It is the undo of a failed ADD, which holds the attachment's claim and
// has already torn down what it built; a pod that was added is released by
// podnet.Release, which tears down first and then calls ReleaseAllocation.
// Releasing an unknown key does nothing.
func Release(db Store, key store.OwnerKey) error {
	err := db.Update(func(tx *store.WriteTx) error {
		_, err := release(tx, key, time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("release ip of %s: %w", key, err)
	}
	return nil
}

// release frees key's IP in tx and returns the dropped allocation; found is
// false when key held nothing.
func release(tx *store.WriteTx, key store.OwnerKey, now time.Time) (found bool, err error) {
	a, err := tx.Allocation(key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := tx.DeleteAllocation(key); err != nil {
		return false, err
	}
	// Both families go back in this one transaction: no leaked half.
	for _, addr := range []netip.Addr{a.IP, a.IP6} {
		if !addr.IsValid() {
			continue
		}
		ip, err := tx.IP(addr)
		if errors.Is(err, store.ErrNotFound) || (err == nil && ip.Owner != key) {
			continue
		}
		if err != nil {
			return false, err
		}
		ip.State, ip.Owner, ip.FreeSince = store.IPFree, "", now
		if a.StickFor > 0 && a.PodName != "" {
			ip.StickTo, ip.StickUntil = store.PodKey(a.PodNamespace, a.PodName), now.Add(a.StickFor)
		}
		if err := tx.PutIP(ip); err != nil {
			return false, err
		}
	}
	// A pod's own ENI (exclusive or member) goes back to its warm pool
	// with its address, or, a fixed one, stays kept for the pod.
	return true, releaseDedicated(tx, a.ENIID, now)
}

// coldBatch is how many addresses one cold-path refill asks for: as many as
// one AssignPrivateIpAddresses may (10, Terway's batch too), so a burst of
// pods on an empty pool costs one cloud call per ten pods, not one per pod
// (calls per pod is what the account's throttling punishes). What is left
// above max_pool_size goes back, batched, once idle_ip_reclaim_after passed.
//
// In prefix mode one call brings up to ten /28s: a refill asks for
// max_pool_size addresses at least one prefix, so a pool sized for a burst
// fills in one call.
func coldBatch(cfg config.Config) int {
	if cfg.PrefixMode() {
		return max(PrefixSize, min(cfg.MaxPoolSize, perCall(cfg)))
	}
	return eni.MaxIPsPerAssign
}

// perCall is how many addresses one assign call brings at most.
func perCall(cfg config.Config) int {
	if cfg.PrefixMode() {
		return eni.MaxPrefixesPerAssign * PrefixSize
	}
	return eni.MaxIPsPerAssign
}

// Allocate is the CNI ADD's way to get an IP: Reserve, and when the pool is
// empty, Refill (calling the cloud under the allocator lease, or waiting for
// the process that holds it) and Reserve again, until cfg.AllocWait passes.
//
// May return an error wrapping ErrTryAgainLater, ErrBackoff or
// ErrPoolExhausted.
func Allocate(ctx context.Context, db Store, cloud eni.Client, node Node, cfg config.Config, owner Owner) (Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.AllocWait))
	defer cancel()
	for {
		res, err := reserve(db, owner, &cfg)
		if !errors.Is(err, ErrPoolEmpty) {
			return res, err
		}
		if err := Refill(ctx, db, cloud, node, cfg, coldBatch(cfg)); err != nil {
			return Reservation{}, fmt.Errorf("reserve ip for %s: %w", owner.Key(), err)
		}
		if ctx.Err() != nil {
			return Reservation{}, fmt.Errorf("reserve ip for %s: %w", owner.Key(), ErrTryAgainLater)
		}
	}
}
