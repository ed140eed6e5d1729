package enforce

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ebpf/tc"
)

// sharedMaps are the maps veni_policy.h declares: the fast path's programs
// use them too. veni_pol_tables is an older build's (per-endpoint tables
// in a map of maps), removed with the rest.
var sharedMapNames = [...]string{"veni_pol_eps", "veni_pol_rules", "veni_pol_ct", "veni_pol_stats", "veni_pol_counters", "veni_pol_drops", "veni_pol_svc", "veni_pol_ips", "veni_pol_tables"}

// Teardown removes the node's policy enforcement: the programs from every
// recorded endpoint's veth (in the caller's network namespace), every
// endpoint's table (so that the fast path's ingress check passes
// everything), and the pins of the policy programs and of the maps only
// they use. The maps the fast path shares stay pinned while the fast
// path's programs are pinned in pinDir (fastpath.Teardown removes the
// directory afterwards); without them, they go too. Call it before
// fastpath.Teardown: that removes the pins, not the policy programs'
// filters. A missing pinDir is not an error.
func Teardown(pinDir string) error {
	if pinDir == "" {
		return fmt.Errorf("%w: no pin dir", ErrInvalidOptions)
	}
	pinDir = filepath.Clean(pinDir)
	if _, err := os.Stat(pinDir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	unlock, err := fastpath.LockPinDir(pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	if hooks, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "veni_pol_hooks"), nil); err == nil {
		var (
			key uint32
			val policyPolHook
		)
		e := &Enforcer{pinDir: pinDir}
		iter := hooks.Iterate()
		for iter.Next(&key, &val) {
			errs = append(errs, e.detach(int(key), append(net.HardwareAddr(nil), val.Mac[:]...)))
		}
		errs = append(errs, iter.Err())
		hooks.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, detachENIs())
	// TCX links of endpoints whose record is gone.
	links, _ := filepath.Glob(filepath.Join(pinDir, linksDir, "pol-*"))
	for _, l := range links {
		errs = append(errs, unpinLink(l))
	}
	errs = append(errs, clearMap[uint32, epRecord](pinDir, "veni_pol_eps"))
	errs = append(errs, clearMap[tableKey, tableValue](pinDir, "veni_pol_rules"))
	errs = append(errs, clearMap[uint32, uint32](pinDir, "veni_pol_ips"))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown policy in %s: %w", pinDir, err)
	}
	progs, _ := filepath.Glob(filepath.Join(pinDir, "policy-progs-*"))
	pins := append(progs, filepath.Join(pinDir, "veni_pol_hooks"), filepath.Join(pinDir, "veni_pol_gen"), filepath.Join(pinDir, "veni_pol_ct6"),
		filepath.Join(pinDir, "veni_pol_svc6"), filepath.Join(pinDir, "veni_pol_ips6"), filepath.Join(pinDir, "veni_pol_ep_ip6"))
	if !fastPathPinned(pinDir) {
		for _, m := range sharedMapNames {
			pins = append(pins, filepath.Join(pinDir, m))
		}
	}
	for _, p := range pins {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown policy in %s: %w", pinDir, err)
	}
	return nil
}

// fastPathPinned reports whether any build of the fast path pinned its
// programs in pinDir (they hold the shared maps).
func fastPathPinned(pinDir string) bool {
	entries, err := os.ReadDir(pinDir)
	if err != nil {
		return true // when in doubt, keep the shared maps
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "progs-") {
			return true
		}
	}
	return false
}

// clearMap deletes every entry of the pinned map name, if it exists.
func clearMap[K, V any](pinDir, name string) error {
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.Close()
	var (
		k    K
		v    V
		keys []K
	)
	iter := m.Iterate()
	for iter.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("list %s: %w", name, err)
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear %s: %w", name, err)
		}
	}
	return nil
}

// detachENIs removes pol_to_eni from every link of the caller's namespace
// that carries it: ENIs are not recorded (their filters go with their
// links), and teardown is rare enough to list every link.
func detachENIs() error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		errs = append(errs, tc.Detach(l.Attrs().Index, nil, tcFilterPrefix+"to_eni"))
	}
	return errors.Join(errs...)
}
