package ipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

// HostPod is a pod the node's links say veni plumbed: the host end of its
// veth, who it belongs to (from the link's owner record) and the addresses
// routed to it. It is how the pool learns which addresses running pods use
// when the store does not know (it was lost, damaged or replaced).
type HostPod struct {
	ContainerID string // empty when the link carries no readable owner record
	IfName      string
	NetNS       string
	HostVeth    string
	HostIfindex int
	IPs         []netip.Addr
}

// hostView asks Node.HostPods at most once per Reconcile, and only when an
// address the store does not know is about to be recorded.
type hostView struct {
	node   Node
	loaded bool
	byIP   map[netip.Addr]HostPod
	err    error
}

// owner returns the pod on the host using addr, if any. An error means the
// host could not be read: then no unknown address may be taken as free.
func (h *hostView) owner(ctx context.Context, addr netip.Addr) (HostPod, bool, error) {
	if h == nil {
		return HostPod{}, false, nil
	}
	if err := h.load(ctx); err != nil {
		return HostPod{}, false, err
	}
	p, ok := h.byIP[addr]
	return p, ok, nil
}

// usedIn returns the addresses pods on the host use inside prefixes (an
// ENI's /80s, whose addresses cannot be listed from the cloud), sorted;
// none when h is nil or prefixes empty.
func (h *hostView) usedIn(ctx context.Context, prefixes []netip.Prefix) ([]netip.Addr, error) {
	if h == nil || len(prefixes) == 0 {
		return nil, nil
	}
	if err := h.load(ctx); err != nil {
		return nil, err
	}
	var out []netip.Addr
	for a := range h.byIP {
		if inPrefixes(prefixes, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// load reads the host's pods once.
func (h *hostView) load(ctx context.Context) error {
	if !h.loaded {
		h.loaded = true
		if h.node.HostPods == nil {
			h.err = fmt.Errorf("no way to list the host's pods (Node.HostPods unset)")
		} else {
			pods, err := h.node.HostPods(ctx)
			h.err = err
			h.byIP = make(map[netip.Addr]HostPod)
			for _, p := range pods {
				for _, a := range p.IPs {
					h.byIP[a] = p
				}
			}
		}
	}
	if h.err != nil {
		return fmt.Errorf("list the host's pods: %w", h.err)
	}
	return nil
}

// recorded is what recordCloudIPs wrote.
type recorded struct {
	free      int
	freeAddrs []netip.Addr
	recovered []netip.Addr
}

// recordCloudIPs records addresses the cloud assigns to an ENI and the
// store lacks: bound to the pod when one on the host uses it (an
// allocation marked Recovered), free otherwise. When host is nil (a new
// ENI) every address is free. When the host cannot be read nothing is
// recorded: a running pod's address must never be handed out again.
//
// Addresses inside one of prefixes (the ENI's delegated /28s, prefix mode)
// are tagged with it, and the prefixes are recorded on the ENI in the same
// transaction, so no address is ever in the store without its prefix.
func recordCloudIPs(ctx context.Context, db Store, eniID string, addrs []netip.Addr, prefixes []netip.Prefix, now time.Time, host *hostView) (recorded, error) {
	var out recorded
	pods := make(map[netip.Addr]HostPod)
	for _, a := range addrs {
		p, ok, err := host.owner(ctx, a)
		if err != nil {
			return out, fmt.Errorf("record addresses of eni %s: %w", eniID, err)
		}
		if ok {
			pods[a] = p
		}
	}
	err := db.Update(func(tx *store.WriteTx) error {
		out = recorded{}
		if err := notePrefixes(tx, eniID, prefixes); err != nil {
			return err
		}
		stack, err := stackOf(&tx.ReadTx)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if _, err := tx.IP(a); err == nil {
				continue
			}
			pfx := prefixOf(prefixes, a)
			p, used := pods[a]
			if !used {
				if err := tx.PutIP(store.IP{Addr: a, ENIID: eniID, State: store.IPFree, AddedAt: now, Prefix: pfx}); err != nil {
					return err
				}
				out.free++
				out.freeAddrs = append(out.freeAddrs, a)
				continue
			}
			if a.Is6() && stack != config.IPStackV6 {
				// An IPv6-only pod's address is its allocation's IP
				// (below); a dual-stack pod's rejoins its IPv4.
				ok, err := recoverIPv6(tx, p, a, eniID, now, pfx)
				if err != nil {
					return err
				}
				if ok {
					out.recovered = append(out.recovered, a)
				}
				continue
			}
			a := recoveredAllocation(p, a, eniID, now)
			if _, err := tx.Allocation(a.Key); err == nil {
				// The pod's attachment already holds another address
				// (a pod with several): keep this one under its own key.
				a.ContainerID = "recovered-" + a.IP.String()
				a.Key = store.NewOwnerKey(a.ContainerID, a.IfName)
			}
			if err := tx.PutIP(store.IP{Addr: a.IP, ENIID: eniID, State: store.IPBound, Owner: a.Key, AddedAt: now, Prefix: pfx}); err != nil {
				return err
			}
			if err := tx.PutAllocation(a); err != nil {
				return err
			}
			out.recovered = append(out.recovered, a.IP)
			if _, err := tx.AppendEvent(store.Event{
				Time: now, Level: slog.LevelWarn, Reason: "AllocationRecovered", Object: "allocation/" + string(a.Key),
				Message: fmt.Sprintf("%s on eni %s is used by host link %s (netns %q) but was not in the store; recorded as bound", a.IP, eniID, p.HostVeth, p.NetNS),
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// recoveredAllocation is the bound allocation of an address a host pod
// uses. A link without a readable owner record gets a key named after the
// link, so the operator can see and release it.
func recoveredAllocation(p HostPod, ip netip.Addr, eniID string, now time.Time) store.Allocation {
	cid, ifname := p.ContainerID, p.IfName
	if cid == "" || ifname == "" {
		cid, ifname = "recovered-"+p.HostVeth, "eth0"
	}
	return store.Allocation{
		Key: store.NewOwnerKey(cid, ifname), ContainerID: cid, IfName: ifname, NetNS: p.NetNS,
		IP: ip, ENIID: eniID, State: store.IPBound, ReservedAt: now, BoundAt: now,
		HostVeth: p.HostVeth, HostIfindex: p.HostIfindex, Recovered: true,
	}
}

// recoverIPv6 records an IPv6 a host pod uses as the IP6 of that pod's
// allocation, bound with it. An allocation is an IPv4's: when the pod has
// none on this ENI, or one that already holds another IPv6, the address is
// left out of the store (never recorded free: a pod uses it) and an event
// says so; the next sync tries again.
func recoverIPv6(tx *store.WriteTx, p HostPod, addr netip.Addr, eniID string, now time.Time, pfx netip.Prefix) (bool, error) {
	key := recoveredAllocation(p, addr, eniID, now).Key
	a, err := tx.Allocation(key)
	if err == nil && !a.IP6.IsValid() && a.ENIID == eniID {
		if err := tx.PutIP(store.IP{Addr: addr, ENIID: eniID, State: a.State, Owner: a.Key, AddedAt: now, Prefix: pfx}); err != nil {
			return false, err
		}
		a.IP6 = addr
		return true, tx.PutAllocation(a)
	}
	_, err = tx.AppendEvent(store.Event{
		Time: now, Level: slog.LevelWarn, Reason: "AllocationNotRecovered", Object: "ip/" + addr.String(),
		Message: fmt.Sprintf("%s on eni %s is used by host link %s (netns %q) but no IPv4 allocation of that pod on the eni can take it; left out of the pool", addr, eniID, p.HostVeth, p.NetNS),
	})
	return false, err
}
