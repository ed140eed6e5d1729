package podnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/store"
)

// ExclusivePin is where an exclusive pod's network namespace is pinned
// (netplumb.ExclusiveConfig.Pin) while its ENI may be inside: beside the
// store's claims, named by the attachment, so ADD and every release find
// it from the attachment alone.
func ExclusivePin(db Store, key store.OwnerKey) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(pinDir(db), hex.EncodeToString(sum[:12]))
}

func pinDir(db Store) string { return filepath.Join(filepath.Dir(db.ClaimsDir()), "netns") }

// UnpinAll removes every exclusive pod's namespace pin of the node ("veni
// cleanup", taking veni off a node or a simulated node going away) and
// returns how many it removed. A pod that still runs keeps its namespace
// (the runtime's mount holds it), but its ENI is no longer safe from the
// namespace's end.
func UnpinAll(db Store) (int, error) { return netplumb.UnpinAll(pinDir(db)) }

// releaseExclusive is Release's teardown of a pod that holds its own ENI:
// the ENI goes back to the node (netplumb.TeardownExclusive) before its
// address is freed, which makes it a warm ENI. When its link is nowhere to
// be found the ENI is retired instead (ipam.RetireExclusive): no other pod
// may be given an ENI the node cannot plumb, and the daemon deletes it.
func releaseExclusive(ctx context.Context, n Node, pod netplumb.PodConfig, e store.ENI) error {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return fmt.Errorf("eni %s has a bad mac in the store: %w", e.ID, err)
	}
	err = netplumb.TeardownExclusive(ctx, netplumb.ExclusiveConfig{
		ContainerID: pod.ContainerID, IfName: pod.IfName, ContainerNetNS: pod.ContainerNetNS,
		Pin: ExclusivePin(n.Store, store.NewOwnerKey(pod.ContainerID, pod.IfName)), MAC: mac,
	})
	if !errors.Is(err, netplumb.ErrLinkNotFound) {
		return err
	}
	slog.Warn("exclusive eni lost from the node: retiring it", "eni", e.ID, "err", err)
	return ipam.RetireExclusive(n.Store, e.ID, err.Error())
}
