package enforce

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/policy"
)

// Enforcer is the node's policy enforcement: its programs loaded and its
// maps opened. It holds file descriptors only; Close releases them and
// leaves everything pinned. Writers (AttachEndpoint, SetEndpoint,
// FailClosed, RemoveEndpoint) serialise on the pin directory's lock, with
// each other and with the fast path's writers, in this process and others.
// Methods are safe for concurrent use.
type Enforcer struct {
	pinDir  string
	podHook string
	flows   int
	flows6  int
	objs    policyObjects
}

// linksDir is where TCX links are pinned, as the fast path pins its own.
const linksDir = "links"

// progsDirName names the directory of this build's pinned programs: a
// digest of the embedded object, so an upgraded binary loads and pins its
// own programs instead of attaching an older build's. Computed on use,
// never at package init (the package is linked into the CNI plugin).
func progsDirName() string { return progsDir() }

// progsDir is progsDirName's digest of the object, taken once per
// process: an Open would take it for each of its programs (108 KB each
// time).
var progsDir = sync.OnceValue(func() string {
	sum := sha256.Sum256(_PolicyBytes)
	return "policy-progs-" + hex.EncodeToString(sum[:6])
})

// Open loads the policy programs and opens the node's policy maps under
// opts.PinDir, creating and pinning them on first use (or reusing those the
// fast path created: both objects declare them) and reusing pinned
// programs after. A short-lived CNI process that finds everything pinned
// pays a few system calls, no verifier run.
//
// May return an error wrapping ErrInvalidOptions, fastpath.ErrNotBPFFS, or
// ebpf.ErrMapIncompatible (pins of another veni version: Teardown them).
func Open(opts Options) (_ *Enforcer, err error) {
	if opts.PinDir == "" {
		return nil, fmt.Errorf("%w: no pin dir", ErrInvalidOptions)
	}
	switch opts.PodHook {
	case "":
		opts.PodHook = fastpath.PodHookTC
	case fastpath.PodHookTC, fastpath.PodHookTCX:
	default:
		return nil, fmt.Errorf("%w: pod hook %q (want %q or %q)", ErrInvalidOptions, opts.PodHook, fastpath.PodHookTC, fastpath.PodHookTCX)
	}
	if opts.Flows < 0 || opts.Flows6 < 0 {
		return nil, fmt.Errorf("%w: flows %d, flows6 %d", ErrInvalidOptions, opts.Flows, opts.Flows6)
	}
	if opts.Flows == 0 {
		opts.Flows = DefaultFlows
	}
	if opts.Flows6 == 0 {
		opts.Flows6 = max(opts.Flows/4, 1024)
	}
	pinDir := filepath.Clean(opts.PinDir)
	if err := fastpath.EnsurePinDir(pinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(pinDir, linksDir), 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	unlock, err := fastpath.LockPinDir(pinDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	e := &Enforcer{pinDir: pinDir, podHook: opts.PodHook, flows: opts.Flows, flows6: opts.Flows6}
	ok, err := e.openPinned()
	if err != nil {
		return nil, err
	}
	if ok {
		return e, nil
	}
	spec, err := loadPolicy()
	if err != nil {
		return nil, err
	}
	err = spec.LoadAndAssign(&e.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("load policy programs: %w (pins in %s are from another veni version: tear them down)", err, pinDir)
	}
	if err != nil {
		return nil, fmt.Errorf("load policy programs: %w", err)
	}
	if err := e.pinPrograms(); err != nil {
		e.objs.Close()
		return nil, err
	}
	return e, nil
}

// Close releases the Enforcer's file descriptors. Pinned maps, pinned
// programs and attached hooks stay.
func (e *Enforcer) Close() error { return e.objs.Close() }

// PinDir returns the directory holding the node's pins.
func (e *Enforcer) PinDir() string { return e.pinDir }

func (e *Enforcer) progPath(name string) string {
	return filepath.Join(e.pinDir, progsDirName(), name)
}

func (e *Enforcer) pinnedPrograms() map[string]**ebpf.Program {
	return map[string]**ebpf.Program{
		"pol_from_pod": &e.objs.PolFromPod,
		"pol_to_pod":   &e.objs.PolToPod,
		"pol_to_eni":   &e.objs.PolToEni,
	}
}

func (e *Enforcer) pinnedMaps() map[string]**ebpf.Map {
	return map[string]**ebpf.Map{
		"veni_pol_eps":      &e.objs.VeniPolEps,
		"veni_pol_rules":    &e.objs.VeniPolRules,
		"veni_pol_ct":       &e.objs.VeniPolCt,
		"veni_pol_ct6":      &e.objs.VeniPolCt6,
		"veni_pol_stats":    &e.objs.VeniPolStats,
		"veni_pol_counters": &e.objs.VeniPolCounters,
		"veni_pol_drops":    &e.objs.VeniPolDrops,
		"veni_pol_hooks":    &e.objs.VeniPolHooks,
		"veni_pol_gen":      &e.objs.VeniPolGen,
		"veni_pol_svc":      &e.objs.VeniPolSvc,
		"veni_pol_ips":      &e.objs.VeniPolIps,
		"veni_pol_svc6":     &e.objs.VeniPolSvc6,
		"veni_pol_ips6":     &e.objs.VeniPolIps6,
		"veni_pol_ep_ip6":   &e.objs.VeniPolEpIp6,
	}
}

// openPinned opens every program and map from their pins. It reports false
// (and holds nothing) when one is missing: the caller then loads them.
func (e *Enforcer) openPinned() (bool, error) {
	var err error
	for name, p := range e.pinnedPrograms() {
		if *p, err = ebpf.LoadPinnedProgram(e.progPath(name), nil); err != nil {
			break
		}
	}
	if err == nil {
		for name, m := range e.pinnedMaps() {
			if *m, err = ebpf.LoadPinnedMap(filepath.Join(e.pinDir, name), nil); err != nil {
				break
			}
		}
	}
	if err == nil {
		return true, nil
	}
	e.objs.Close()
	e.objs = policyObjects{}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("open pinned policy programs in %s: %w", e.pinDir, err)
}

func (e *Enforcer) pinPrograms() error {
	if err := os.MkdirAll(filepath.Join(e.pinDir, progsDirName()), 0o700); err != nil {
		return fmt.Errorf("create program pin dir: %w", err)
	}
	for name, p := range e.pinnedPrograms() {
		path := e.progPath(name)
		_ = os.Remove(path) // a stale pin of a crashed Open
		if err := (*p).Pin(path); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	return nil
}

func (k EndpointKey) validate() error {
	if k.Ifindex <= 0 {
		return fmt.Errorf("%w: no host veth ifindex", ErrInvalidEndpoint)
	}
	if k.IP.IsValid() && !k.IP.Unmap().Is4() {
		return fmt.Errorf("%w: %v is not ipv4 (an endpoint is recorded by its ipv4)", ErrInvalidEndpoint, k.IP)
	}
	if k.IP6.IsValid() && (!k.IP6.Is6() || k.IP6.Is4In6()) {
		return fmt.Errorf("%w: %v is not ipv6", ErrInvalidEndpoint, k.IP6)
	}
	return nil
}

// SetEndpoint makes rs the endpoint's policy. When rs isolates a direction,
// its table is written whole under a new generation and the endpoint is
// switched to it with one map update, so every packet sees the old policy
// or the new one; flows allowed under the old one are decided again on
// their next packet (see the package doc). When rs isolates nothing, the
// endpoint's table is removed: its packets pay one lookup and pass. A
// ruleset equal to the installed one (same digest) changes nothing,
// generation included, so a daemon may re-apply every endpoint's ruleset
// at will.
//
// Installing the first table of an endpoint (a CNI ADD's case) creates no
// map and waits for nothing. Replacing or removing a table waits, once,
// until no program can still be reading the old one (an RCU grace period,
// milliseconds), and then deletes it.
//
// It does not attach the programs to the veth (AttachEndpoint does); the
// fast path's ingress check reads the table either way. It is meant for
// the CNI ADD before the pod's link is up as well as for the daemon.
//
// May return an error wrapping ErrInvalidEndpoint or ErrTooManyEndpoints.
func (e *Enforcer) SetEndpoint(ep EndpointKey, rs *policy.Ruleset) error {
	if err := ep.validate(); err != nil {
		return err
	}
	t, err := compileTable(rs) // outside the lock: it is CPU work
	if err != nil {
		return err
	}
	return e.setTable(ep, t)
}

// SetEndpointTable is SetEndpoint for a ruleset already in its kernel form
// (EncodeTable): what a CNI ADD installs from the store, with no ruleset
// to decode and nothing to compile. Bytes this build did not write are
// refused (ErrInvalidTable) before anything changes.
func (e *Enforcer) SetEndpointTable(ep EndpointKey, encoded []byte) error {
	if err := ep.validate(); err != nil {
		return err
	}
	t, err := decodeTable(encoded)
	if err != nil {
		return err
	}
	return e.setTable(ep, t)
}

// setTable makes t the endpoint's table, or removes its table when t is
// nil (a ruleset that isolates nothing).
func (e *Enforcer) setTable(ep EndpointKey, t *table) error {
	unlock, err := fastpath.LockPinDir(e.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	if t == nil {
		return e.deleteTable(ep.Ifindex, true)
	}
	return e.install(ep, t)
}

// FailClosed isolates the endpoint in both directions with nothing
// allowed but what the programs always allow: packets the node itself
// sends into the pod (kubelet probes) and their replies. It is for an ADD
// that cannot know whether a policy selects the pod; the daemon corrects
// it with SetEndpoint. As SetEndpoint, it only writes the table.
func (e *Enforcer) FailClosed(ep EndpointKey) error {
	if err := ep.validate(); err != nil {
		return err
	}
	unlock, err := fastpath.LockPinDir(e.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	return e.install(ep, failClosedTable())
}

// installed is what an endpoint's entry in veni_pol_eps says.
type installed struct {
	gen, flags uint32
	digest     uint64
	ip         netip.Addr
	entries    int
}

// current reads the endpoint's installed table, if any.
func (e *Enforcer) current(ifindex int) (installed, bool, error) {
	var r epRecord
	err := e.objs.VeniPolEps.Lookup(uint32(ifindex), &r)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return installed{}, false, nil
	}
	if err != nil {
		return installed{}, false, fmt.Errorf("read table of ifindex %d: %w", ifindex, err)
	}
	return r.installed(), true, nil
}

// install makes t the endpoint's table, unless the installed one has the
// same content. Call with the pin dir locked.
func (e *Enforcer) install(ep EndpointKey, t *table) (err error) {
	ip := ep.IP.Unmap()
	cur, ok, err := e.current(ep.Ifindex)
	if err != nil {
		return err
	}
	cur6, err := e.ip6(ep.Ifindex)
	if err != nil {
		return err
	}
	if ok && cur.flags == t.flags && cur.digest == t.digest && cur.ip == ip && cur6 == ep.IP6 {
		return nil
	}
	if err := e.ensureFlows(); err != nil {
		return err
	}
	if err := e.ensureStats(ep.Ifindex); err != nil {
		return err
	}
	if ok && cur.ip.IsValid() && cur.ip != ip {
		if err := e.deleteIP(cur.ip, ep.Ifindex); err != nil {
			return err
		}
	}
	if cur6.IsValid() && cur6 != ep.IP6 {
		if err := e.deleteIP6(ep.Ifindex); err != nil {
			return err
		}
	}
	if err := e.putIP(ep); err != nil {
		return err
	}
	gen, err := e.nextGeneration()
	if err != nil {
		return err
	}
	keys, values := t.withGen(gen)
	if _, err := e.objs.VeniPolRules.BatchUpdate(keys, values, nil); err != nil {
		err = fmt.Errorf("write table of %s (%d entries): %w", ep, len(keys), err)
		if errors.Is(err, unix.E2BIG) {
			err = fmt.Errorf("%w: the node's policy trie holds %d entries at most", err, e.objs.VeniPolRules.MaxEntries())
		}
		return errors.Join(err, e.deleteGeneration(gen))
	}
	// The one update that switches the endpoint to its new policy.
	rec := newEPRecord(gen, t.flags, t.digest, ip, len(keys))
	if err := e.objs.VeniPolEps.Put(uint32(ep.Ifindex), rec); err != nil {
		return errors.Join(tooMany("install table of", ep, err), e.deleteGeneration(gen))
	}
	if ok {
		return e.retire(cur.gen)
	}
	return nil
}

func tooMany(what string, ep EndpointKey, err error) error {
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%s %s: %w: %w", what, ep, ErrTooManyEndpoints, err)
	}
	return fmt.Errorf("%s %s: %w", what, ep, err)
}

// deleteTable removes the endpoint's table: it is selected by nothing.
// Unless wait, its entries go at once, without waiting for programs that
// may still read them: for an endpoint that is going away, whose last
// packets' verdicts do not matter. Call with the pin dir locked.
func (e *Enforcer) deleteTable(ifindex int, wait bool) error {
	cur, ok, err := e.current(ifindex)
	if err != nil || !ok {
		return err
	}
	err = e.objs.VeniPolEps.Delete(uint32(ifindex))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete table of ifindex %d: %w", ifindex, err)
	}
	if err := e.deleteIP(cur.ip, ifindex); err != nil {
		return err
	}
	if err := e.deleteIP6(ifindex); err != nil {
		return err
	}
	if wait {
		return e.retire(cur.gen)
	}
	return e.deleteGeneration(cur.gen)
}

// retire deletes generation gen's entries once no endpoint points at it
// any more and no program can still be reading it. Call with the pin dir
// locked.
func (e *Enforcer) retire(gen uint32) error {
	if err := e.waitPrograms(); err != nil {
		return err
	}
	return e.deleteGeneration(gen)
}

// waitPrograms returns once every BPF program that was running when it was
// called has finished. The kernel waits for an RCU grace period after any
// update of a map of maps, so that the caller knows no program still uses
// the element it replaced: putting the node's connection table back in
// its slot is such an update, and changes nothing.
func (e *Enforcer) waitPrograms() error {
	var ct *ebpf.Map
	if err := e.objs.VeniPolCt.Lookup(uint32(0), &ct); err != nil {
		return fmt.Errorf("wait for running policy checks: read connection table: %w", err)
	}
	defer ct.Close()
	if err := e.objs.VeniPolCt.Put(uint32(0), ct); err != nil {
		return fmt.Errorf("wait for running policy checks: %w", err)
	}
	return nil
}

// deleteGeneration deletes generation gen's entries from the node's trie.
// They are contiguous in the trie's order (they share their first 32
// bits), HEAD first, so walking from HEAD finds them all and nothing else.
func (e *Enforcer) deleteGeneration(gen uint32) error {
	head := headKey(gen)
	var v tableValue
	if err := e.objs.VeniPolRules.Lookup(head, &v); errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil // HEAD is written first: nothing of gen was
	} else if err != nil {
		return fmt.Errorf("read policy generation %d: %w", gen, err)
	}
	keys := []tableKey{head}
	var next tableKey
	for k := head; ; k = next {
		err := e.objs.VeniPolRules.NextKey(k, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("list entries of policy generation %d: %w", gen, err)
		}
		if genOf(next) != gen {
			break
		}
		keys = append(keys, next)
	}
	if _, err := e.objs.VeniPolRules.BatchDelete(keys, nil); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %d entries of policy generation %d: %w", len(keys), gen, err)
	}
	return nil
}

// ensureFlows makes the node's connection tables (IPv4 and IPv6), the
// first time a table is installed: nodes without policy pay no memory for
// them. Each goes into its map of maps with an update the kernel follows
// with an RCU grace period: the two run at once, so the first install
// (a CNI ADD, the daemon's first pass) waits for one period, not two.
func (e *Enforcer) ensureFlows() error {
	done := make(chan error, 1)
	go func() { done <- ensureFlowTable(e.objs.VeniPolCt6, "veni_pol_flows6", ct6KeySize, e.flows6) }()
	err := ensureFlowTable(e.objs.VeniPolCt, "veni_pol_flows", ctKeySize, e.flows)
	return errors.Join(err, <-done)
}

// The connection tables' key and value sizes (struct ct_key, ct6_key,
// ct_value).
const (
	ctKeySize   = 16
	ct6KeySize  = 28
	ctValueSize = 8
)

// ensureFlowTable puts an LRU of n flows in slot 0 of outer unless one is
// there.
func ensureFlowTable(outer *ebpf.Map, name string, keySize uint32, n int) error {
	var id ebpf.MapID
	err := outer.Lookup(uint32(0), &id)
	if err == nil && id != 0 {
		return nil
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("read connection table %s: %w", name, err)
	}
	ct, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       name,
		Type:       ebpf.LRUHash,
		KeySize:    keySize,
		ValueSize:  ctValueSize,
		MaxEntries: uint32(n),
	})
	if err != nil {
		return fmt.Errorf("create connection table %s of %d flows: %w", name, n, err)
	}
	defer ct.Close()
	if err := outer.Put(uint32(0), ct); err != nil {
		return fmt.Errorf("install connection table %s: %w", name, err)
	}
	return nil
}

// ensureStats gives the endpoint its counters, keeping those it has.
func (e *Enforcer) ensureStats(ifindex int) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	zero := make([]policyPolStats, n)
	err = e.objs.VeniPolStats.Update(uint32(ifindex), zero, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("create counters of ifindex %d: %w", ifindex, err)
	}
	return nil
}

// nextGeneration takes the node's next generation. Call with the pin dir
// locked.
func (e *Enforcer) nextGeneration() (uint32, error) {
	var g uint32
	if err := e.objs.VeniPolGen.Lookup(uint32(0), &g); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	g++
	if g == 0 { // 0 is never a table's generation
		g = 1
	}
	if err := e.objs.VeniPolGen.Put(uint32(0), g); err != nil {
		return 0, fmt.Errorf("write generation: %w", err)
	}
	return g, nil
}

// RemoveEndpoint removes everything of the endpoint: its table, counters,
// hook record, and the programs from its host veth (if it still exists).
// What is recorded for the ifindex under another address is left alone: a
// new pod's. Connection entries are left to age out of the LRU table (a
// new table's generation would not trust them). An endpoint that is gone
// already is not an error. Call it in the node's network namespace.
func (e *Enforcer) RemoveEndpoint(ep EndpointKey) error {
	if err := ep.validate(); err != nil {
		return err
	}
	unlock, err := fastpath.LockPinDir(e.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	ip := ep.IP.Unmap()
	hook, hooked, err := e.hook(ep.Ifindex)
	if err != nil {
		return err
	}
	if hooked && ip.IsValid() && hook.ip.IsValid() && hook.ip != ip {
		return nil
	}
	cur, ok, err := e.current(ep.Ifindex)
	if err != nil {
		return err
	}
	if ok && ip.IsValid() && cur.ip.IsValid() && cur.ip != ip {
		return nil
	}
	var errs []error
	if hooked {
		errs = append(errs, e.detach(ep.Ifindex, hook.mac))
	}
	errs = append(errs, e.deleteTable(ep.Ifindex, false))
	for _, m := range []*ebpf.Map{e.objs.VeniPolStats, e.objs.VeniPolHooks} {
		if err := m.Delete(uint32(ep.Ifindex)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove %s of %s: %w", m.String(), ep, err))
		}
	}
	return errors.Join(errs...)
}

// Endpoints lists every endpoint the kernel holds something for (a hook
// record or a table), sorted by ifindex: for status, and for a daemon
// reconciling what is loaded with what should be.
func (e *Enforcer) Endpoints() ([]Endpoint, error) {
	byIf := make(map[int]*Endpoint)
	get := func(ifindex int) *Endpoint {
		ep, ok := byIf[ifindex]
		if !ok {
			ep = &Endpoint{EndpointKey: EndpointKey{Ifindex: ifindex}}
			byIf[ifindex] = ep
		}
		return ep
	}
	var (
		key  uint32
		hook policyPolHook
	)
	iter := e.objs.VeniPolHooks.Iterate()
	for iter.Next(&key, &hook) {
		ep := get(int(key))
		ep.Hooked = true
		ep.IP = ipOf(hook.Ip)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list hooked endpoints: %w", err)
	}
	var rec epRecord
	iter = e.objs.VeniPolEps.Iterate()
	for iter.Next(&key, &rec) {
		in := rec.installed()
		ep := get(int(key))
		ep.Selected = true
		ep.IngressIsolated = in.flags&flagIsolatedIn != 0
		ep.EgressIsolated = in.flags&flagIsolatedOut != 0
		ep.FailClosed = in.flags&flagFailClosed != 0
		ep.Generation = in.gen
		ep.Digest = in.digest
		ep.Entries = in.entries
		if !ep.IP.IsValid() {
			ep.IP = in.ip
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list endpoint tables: %w", err)
	}
	out := make([]Endpoint, 0, len(byIf))
	for _, ep := range byIf {
		ip6, err := e.ip6(ep.Ifindex)
		if err != nil {
			return nil, err
		}
		ep.IP6 = ip6
		out = append(out, *ep)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.Ifindex - b.Ifindex })
	return out, nil
}

// ipOf reads an address stored in network order (zero: none).
func ipOf(be uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], be)
	a := netip.AddrFrom4(b)
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
