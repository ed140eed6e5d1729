package podnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/store"
)

// Attachment names one CNI attachment: what a runtime's DEL or GC carries.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
	NetNS       string `json:"netns,omitempty"` // may be empty (containerd's last DEL)
}

// Key is the attachment's store key.
func (a Attachment) Key() store.OwnerKey { return store.NewOwnerKey(a.ContainerID, a.IfName) }

// Store is the node's store as podnet uses it (store.File in production).
type Store interface {
	ipam.Store
}

// Node is what a release needs to know about the node.
type Node struct {
	Store Store
	// InstanceID locates the fast path's pins. Empty means the store's
	// cached node facts say (none: no ADD got as far as the fast path).
	InstanceID string
	// Policy is the node's NetworkPolicy enforcer; nil opens it
	// (podpolicy.OpenNodeKernel) when a release needs it.
	Policy podpolicy.Kernel
}

// testHookTornDown, set by tests, runs between the teardown and the store
// release: the window in which the address must still be held.
var testHookTornDown func(store.Allocation)

// ErrBusy means another process is adding, deleting or collecting the
// same attachment right now.
var ErrBusy = errors.New("attachment busy")

// ReleaseOptions tune Release for who asks.
type ReleaseOptions struct {
	// Wait is how long to wait for another process working on the same
	// attachment (CNI DEL waits for a running ADD); zero does not wait
	// (GC skips busy attachments).
	Wait time.Duration
	// Dead, when set, is asked again under the claim, and the attachment
	// is left alone unless it still says dead (GC). Nil releases whatever
	// the attachment holds (DEL, the operator's release).
	Dead DeadFunc
	// Reason, when set, is the reason of the store event logged for the
	// release ("OwnerGone").
	Reason string
	// Note, when set, builds the event logged for the release instead,
	// from the allocation about to be freed (CNI DEL's call record).
	Note func(store.Allocation) *store.Event
	// Now is the time of the decision; zero means time.Now().
	Now time.Time
}

// Release tears the attachment down and then gives its address back: the
// one way an added pod is released, whoever asks. Under the attachment's
// claim it reads the allocation, removes the pod's veth, routes, rules and
// fast-path endpoint (matched by address and host interface), and frees
// the address if the store still holds the allocation it read. It returns
// the allocation it released, or nil when there was none (DEL is
// idempotent), or when Dead said it lives.
//
// May return an error wrapping ErrBusy.
func Release(ctx context.Context, n Node, att Attachment, opts ReleaseOptions) (*store.Allocation, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	key := att.Key()
	claim, err := takeClaim(ctx, n.Store, key, opts.Wait)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := claim.Release(); err != nil {
			slog.Warn("release attachment claim", "attachment", key, "err", err)
		}
	}()

	var (
		a      store.Allocation
		found  bool
		own    *store.ENI // the pod's own ENI (exclusive mode), if it has one
		member bool       // a trunk member's: its VLAN tag goes with it
	)
	err = n.Store.View(func(tx *store.ReadTx) error {
		if n.InstanceID == "" {
			if facts, err := tx.Node(); err == nil {
				n.InstanceID = facts.InstanceID
			}
		}
		var err error
		a, err = tx.Allocation(key)
		found = err == nil
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if e, err := tx.ENI(a.ENIID); err == nil {
			if e.Kind == store.ENIExclusive {
				own = &e
			}
			member = e.Kind == store.ENIMember
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("release %s: read store: %w", key, err)
	}
	if opts.Dead != nil && (!found || !opts.Dead(a, true)) {
		return nil, nil
	}
	netns := att.NetNS
	if netns == "" && found {
		netns = a.NetNS
	}
	pod := netplumb.PodConfig{ContainerID: att.ContainerID, IfName: att.IfName, ContainerNetNS: netns}
	if found {
		// With the address still held, rules and routes for it are this
		// pod's; without an allocation, TeardownPod only removes what the
		// attachment's own veth carries.
		pod.IP, pod.IP6 = a.Families()
	}
	if own != nil {
		if err := releaseExclusive(ctx, n, pod, *own); err != nil {
			return nil, fmt.Errorf("release %s: %w", key, err)
		}
	} else if err := netplumb.TeardownPod(ctx, pod); err != nil {
		return nil, fmt.Errorf("release %s: %w", key, err)
	}
	if !found {
		return nil, nil
	}
	// The veth is gone: DetachPod removes the endpoint only if it is on
	// that veth (or on one that no longer exists).
	if err := datapath.DetachPod(n.InstanceID, a.IP, a.HostIfindex); err != nil {
		return nil, fmt.Errorf("release %s: detach fast path: %w", key, err)
	}
	if member {
		// Before the address is free: the member may go to another pod
		// (tagged again by its ADD) or back to the cloud.
		if err := datapath.UntagMember(n.InstanceID, a.IP); err != nil {
			return nil, fmt.Errorf("release %s: %w", key, err)
		}
	}
	// Its policy goes with its veth: a later pod on this address and a
	// new veth is a new endpoint.
	ip4, ip6 := a.Families() // IPv4 zero for an IPv6-only pod
	if err := n.removePolicy(podpolicy.Endpoint{Ifindex: a.HostIfindex, IP: ip4, IP6: ip6}); err != nil {
		return nil, fmt.Errorf("release %s: %w", key, err)
	}
	if testHookTornDown != nil {
		testHookTornDown(a)
	}
	var note *store.Event
	switch {
	case opts.Note != nil:
		note = opts.Note(a)
	case opts.Reason != "":
		note = &store.Event{Level: slog.LevelInfo, Reason: opts.Reason}
	}
	released, err := ipam.ReleaseAllocation(n.Store, a, note, opts.Now)
	if err != nil || !released {
		return nil, err
	}
	return &a, nil
}

// removePolicy forgets the endpoint's policy in the kernel, if the node
// enforces any.
func (n Node) removePolicy(ep podpolicy.Endpoint) error {
	if ep.Ifindex <= 0 {
		return nil // never plumbed: no endpoint
	}
	k := n.Policy
	if k == nil {
		nk, err := podpolicy.OpenNodeKernelIfUsed(config.Config{}, n.InstanceID)
		if errors.Is(err, podpolicy.ErrNoEnforcer) {
			return nil
		} else if err != nil {
			return err
		}
		defer nk.Close()
		k = nk
	}
	if err := k.RemoveEndpoint(ep); err != nil {
		return fmt.Errorf("remove policy endpoint %s: %w", ep, err)
	}
	return nil
}

// takeClaim takes the attachment's claim, waiting up to wait.
func takeClaim(ctx context.Context, db Store, key store.OwnerKey, wait time.Duration) (*store.Claim, error) {
	path := store.OwnerClaim(db.ClaimsDir(), key)
	var (
		c   *store.Claim
		err error
	)
	if wait <= 0 {
		c, err = store.TryClaim(path, true)
	} else {
		wctx, cancel := context.WithTimeout(ctx, wait)
		c, err = store.WaitClaim(wctx, path, true)
		cancel()
	}
	if errors.Is(err, store.ErrClaimed) {
		return nil, fmt.Errorf("attachment %s: %w (another ADD, DEL or GC of it is running)", key, ErrBusy)
	}
	return c, err
}

// ClaimForAdd takes the attachment's claim for a CNI ADD, waiting up to
// wait, and returns it: the ADD holds it until after its commit (or its
// undo), so GC knows its reservation lives, and a DEL of the same
// attachment waits for it to finish.
//
// May return an error wrapping ErrBusy.
func ClaimForAdd(ctx context.Context, db Store, key store.OwnerKey, wait time.Duration) (*store.Claim, error) {
	return takeClaim(ctx, db, key, wait)
}

// GC releases, through Release, every allocation dead says is dead,
// logging reason as each one's event, and returns those it released.
// Attachments another process is working on are skipped (the next GC
// looks again).
func GC(ctx context.Context, n Node, dead DeadFunc, reason string) ([]store.Allocation, error) {
	now := time.Now()
	cands, err := ipam.Candidates(n.Store, func(a store.Allocation) bool { return dead(a, false) })
	if err != nil {
		return nil, err
	}
	var (
		out  []store.Allocation
		errs []error
	)
	for _, c := range cands {
		att := Attachment{ContainerID: c.ContainerID, IfName: c.IfName, NetNS: c.NetNS}
		a, err := Release(ctx, n, att, ReleaseOptions{Dead: dead, Reason: reason, Now: now})
		switch {
		case errors.Is(err, ErrBusy):
		case err != nil:
			errs = append(errs, err)
		case a != nil:
			out = append(out, *a)
		}
	}
	return out, errors.Join(errs...)
}
