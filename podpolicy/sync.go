package podpolicy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// SourceManifests names the manifest folder's stored source.
const SourceManifests = "manifests"

// Debounce defaults: a burst of changes costs one pass, and a change is
// in the kernel well within a second (the p99 target).
const (
	DefaultSettle  = 30 * time.Millisecond  // quiet time after a change before the pass
	DefaultMaxWait = 150 * time.Millisecond // longest a change waits for a burst to end
	DefaultResync  = 30 * time.Second       // a pass even when nothing signalled
)

// SyncOptions describe the node's policy loop.
type SyncOptions struct {
	DB store.File
	// Enabled is network_policy. Off, the loop removes every record and
	// the kernel state it applied.
	Enabled bool
	// Kernel applies rulesets. When nil, OpenKernel opens it the first
	// time a pass needs it: needed is true when an endpoint's record
	// isolates something; false asks only for an enforcer the node
	// already uses (to clear what an earlier run left). An error wrapping
	// ErrNoEnforcer keeps records only. Both nil: records only.
	Kernel     Kernel
	OpenKernel func(needed bool) (Kernel, error)
	// ManifestDir, when set, is read on every pass (policy_manifest_dir).
	ManifestDir string
	// Kube is true when the Kubernetes mirror feeds the store; KubeSynced
	// then reports whether the informers have synced and the mirror was
	// rewritten from them.
	Kube       bool
	KubeSynced func() bool
	// Peers, when set, returns pods of other nodes (the Kubernetes peer
	// informer) and whether the list is complete; they join the snapshot
	// as peers of the local pods' selectors.
	Peers func() ([]policy.Pod, bool)
	// Node is the node's name (pods' spec.nodeName), NodeIPs its
	// addresses. NodeAddrs, when set, is asked on every pass for more of
	// them that may change while the loop runs (the node's IPv6, which
	// router advertisements or the cloud may give its NIC after the
	// daemon started); an error leaves them out of that pass.
	Node      string
	NodeIPs   []netip.Addr
	NodeAddrs func() ([]netip.Addr, error)
	Logger    *slog.Logger
	// Settle, MaxWait, Resync tune Run; zero takes the defaults.
	Settle, MaxWait, Resync time.Duration
}

// Syncer is the daemon's policy loop: sources → snapshot → records in the
// store → kernel, only what changed.
type Syncer struct {
	opts SyncOptions
	log  *slog.Logger

	mu     sync.Mutex
	kernel Kernel
	noKern string              // why OpenKernel found no enforcer, logged once
	dirSig string              // the manifest folder's files, sizes and times at its last read
	dirSrc *store.PolicySource // what that read gave
	// cache keeps what the passes read and merged, so that a pass after
	// one ADD's write decodes and merges only what it changed; nil
	// starts over (every Resync: the safety net). noCache reads the
	// whole store every pass (the old path, for tests and benchmarks).
	cache   *storedCache
	noCache bool
	// srcCache keeps the stored sources as the last pass decoded them
	// (noCache).
	srcCache store.SourceCache
	// lastWorld and lastAddrs are the inputs of the last good compile
	// (compileInputs), lastWant its result (read-only once built), and
	// lastDeps the pods whose addresses its directions may hold
	// (policy.Snapshot.CompileAllDeps).
	lastWorld string
	lastAddrs map[policy.PodRef][]netip.Addr
	lastWant  map[string]wanted
	lastDeps  map[policy.PodRef]bool
	// lastEnc is the last compile's encodings by pod, which the next
	// reuses for pods whose ruleset did not change.
	lastEnc map[policy.PodRef]encodedPod
	applied map[Endpoint]string // endpoint → digest this loop put in the kernel
	// tables are kernel tables by the directions they were encoded from
	// (a record's Parts): pods selected alike have one.
	tables map[string][]byte
	gen    uint64
	last   PassReport
}

// PassReport is what one pass did.
type PassReport struct {
	Generation uint64 `json:"generation"`
	Local      int    `json:"local"`     // pods compiled
	Written    int    `json:"written"`   // records written (changed)
	Deleted    int    `json:"deleted"`   // records of pods no longer here
	Applied    int    `json:"applied"`   // endpoints set in the kernel
	Endpoints  int    `json:"endpoints"` // bound endpoints seen
	Reused     bool   `json:"reused"`    // inputs unchanged: the last compile was reused
	// Readdressed counts the pods whose rulesets only took new addresses
	// of their own: no other pod's ruleset could change, nothing was
	// compiled (0 when the pass compiled or reused).
	Readdressed int           `json:"readdressed,omitempty"`
	Took        time.Duration `json:"took"`
	Err         string        `json:"error,omitempty"`
}

// NewSyncer prepares the loop.
func NewSyncer(opts SyncOptions) *Syncer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	return &Syncer{opts: opts, log: opts.Logger.With("component", "policy"), applied: make(map[Endpoint]string), kernel: opts.Kernel}
}

// Run makes a pass now, then after every burst of signals on wake (store
// writes, manifest folder changes) and every Resync, until ctx ends.
func (s *Syncer) Run(ctx context.Context, wake <-chan struct{}) {
	resync := time.NewTicker(s.opts.Resync)
	defer resync.Stop()
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("policy pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			s.dropCache()
			continue
		case <-wake:
		}
		// Debounce: wait for Settle of quiet, at most MaxWait.
		deadline := time.NewTimer(s.opts.MaxWait)
	settle:
		for {
			select {
			case <-ctx.Done():
				deadline.Stop()
				return
			case <-wake:
				continue
			case <-deadline.C:
				break settle
			case <-time.After(s.opts.Settle):
				break settle
			}
		}
		deadline.Stop()
	}
}

// dropCache makes the next pass read and merge the whole store, as the
// first one did: whatever the caches missed, a Resync corrects.
func (s *Syncer) dropCache() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache = nil
}

// Last returns the last pass's report.
func (s *Syncer) Last() PassReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Pass reads the sources and the store, writes the records that changed
// and applies to the kernel the endpoints whose record it has not applied.
// A source that cannot be read keeps what the store has of it.
func (s *Syncer) Pass(ctx context.Context) (PassReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	rep, err := s.pass(ctx)
	rep.Took = time.Since(start)
	if err != nil {
		rep.Err = err.Error()
		s.cache = nil
	}
	s.last = rep
	return rep, err
}

func (s *Syncer) pass(ctx context.Context) (PassReport, error) {
	var rep PassReport
	var srcErr error
	var src *store.PolicySource
	if s.opts.Enabled && s.opts.ManifestDir != "" {
		// Parsing is the expensive part (0.4 s for the bench world's
		// 1,100 objects) and most passes follow store writes: parse
		// only when a file changed.
		sig := dirSignature(s.opts.ManifestDir)
		if sig != "" && sig == s.dirSig && s.dirSrc != nil {
			src = s.dirSrc
		} else {
			in, err := policy.ReadDir(s.opts.ManifestDir)
			if err == nil {
				var v store.PolicySource
				v, err = SourceFromInput(SourceManifests, s.opts.ManifestDir, in)
				src = &v
			}
			if err != nil {
				src, srcErr = nil, fmt.Errorf("manifest folder %s: %w (its last good read stays enforced)", s.opts.ManifestDir, err)
				sig = ""
			}
			s.dirSig, s.dirSrc = sig, src
		}
	}
	var st *Stored
	if s.cache == nil && !s.noCache {
		s.cache = &storedCache{}
	}
	err := s.opts.DB.View(func(tx *store.ReadTx) error {
		var err error
		if s.noCache {
			st, err = readStored(tx, &s.srcCache)
		} else {
			st, err = readStoredCached(tx, s.cache)
		}
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("read store: %w", err)
	}
	// This loop names the node; compile the folder as just read and
	// write it when it changed.
	prev, hadState := st.State, st.HasState
	nodeIPs := s.nodeIPs()
	st.State.Node, st.State.NodeIPs = s.opts.Node, nodeIPs
	srcs := st.sources
	if src != nil {
		for _, o := range st.sources {
			if o.Name == src.Name && o.Digest == src.Digest {
				src = nil // unchanged
				break
			}
		}
		if src != nil {
			srcs = append(slices.DeleteFunc(slices.Clone(st.sources), func(o store.PolicySource) bool { return o.Name == src.Name }), *src)
		}
	}
	switch {
	case !s.opts.Enabled:
		st = st.withSources(nil)
	case src != nil || s.noCache:
		st = st.withSources(srcs)
	}
	peersSynced := true
	if s.opts.Peers != nil && s.opts.Enabled {
		var peers []policy.Pod
		peers, peersSynced = s.opts.Peers()
		st.addPeers(peers)
	}
	next := store.PolicyState{
		Enabled: s.opts.Enabled, Node: s.opts.Node, NodeIPs: nodeIPs,
		Synced: (!s.opts.Kube || s.opts.KubeSynced != nil && s.opts.KubeSynced()) && srcErr == nil && peersSynced,
	}
	if s.opts.Kube {
		next.Sources = append(next.Sources, "kubernetes")
	}
	if s.opts.ManifestDir != "" {
		next.Sources = append(next.Sources, SourceManifests)
	}

	want := make(map[string]wanted)
	var compileErr error
	in := st.compileInputs()
	var moved []policy.PodRef
	same := s.opts.Enabled && in.world != "" && in.world == s.lastWorld && s.lastWant != nil
	if same {
		moved = in.moved(s.lastAddrs)
	}
	switch {
	case same && len(moved) == 0:
		// Nothing a ruleset depends on changed (the write was a bind, an
		// event, the pool): reuse the last compile.
		want = s.lastWant
		rep.Reused = true
	case same && s.onlyOwn(moved):
		// Only addresses changed, of pods no rule holds (a new pod's
		// reservation, a release): their own rulesets take the new
		// addresses, every direction stays as compiled.
		var n int
		if want, n, compileErr = s.readdress(st, moved); compileErr == nil {
			s.lastAddrs, s.lastWant = in.addrs, want
			rep.Readdressed = n
			break
		}
		s.log.Warn("policy: readdress failed, compiling", "err", compileErr)
		want, compileErr = s.compileAll(st, in)
	case s.opts.Enabled:
		want, compileErr = s.compileAll(st, in)
	}
	rep.Local = len(want)
	if compileErr != nil {
		// Keep the records the store has: enforcing the last good
		// compilation beats opening or closing every pod. (The kernel
		// keeps what it has: apply needs rulesets this pass lacks.)
		want = make(map[string]wanted, len(st.Records))
		for key, info := range st.Records {
			want[key] = wanted{rec: store.PolicyRecord{Namespace: info.Namespace, Name: info.Name, Digest: info.Digest, Isolated: info.Isolated}}
		}
	}
	var changed []store.PolicyRecord
	var gone []store.PolicyRecordInfo
	for key, w := range want {
		if old, ok := st.Records[key]; !ok || old.Digest != w.rec.Digest {
			r := w.rec
			if r.Isolated && w.rs != nil {
				// The kernel form, so that the pod's ADD copies it in.
				// Without one (an error), the ADD decodes the ruleset.
				if t, err := s.table(r, w.rs); err != nil {
					s.log.Warn("policy record without its kernel table", "pod", key, "err", err)
				} else {
					r.Table = t
				}
			}
			changed = append(changed, r)
		}
	}
	for key, old := range st.Records {
		if _, ok := want[key]; !ok {
			gone = append(gone, old)
		}
	}
	next.Error = errorString(errors.Join(srcErr, compileErr))
	stateChanged := !hadState || !sameState(prev, next)
	if len(changed) > 0 || len(gone) > 0 || src != nil || stateChanged {
		s.gen = max(s.gen, prev.Generation) + 1
		next.Generation, next.Updated = s.gen, time.Now().UTC()
		err := s.opts.DB.Update(func(tx *store.WriteTx) error {
			for _, r := range changed {
				r.Generation, r.Compiled = s.gen, next.Updated
				if err := tx.PutPolicyRecord(r); err != nil {
					return err
				}
			}
			for _, r := range gone {
				if err := tx.DeletePolicyRecord(r.Namespace, r.Name); err != nil {
					return err
				}
			}
			// A readdressed record keeps its parts: only a compile or a
			// deletion can leave one unused.
			if len(changed) > 0 && rep.Readdressed == 0 || len(gone) > 0 {
				if _, err := tx.PrunePolicyParts(); err != nil {
					return err
				}
			}
			if src != nil {
				src.Read = next.Updated
				if err := tx.PutPolicySource(*src); err != nil {
					return err
				}
			}
			if s.opts.ManifestDir == "" || !s.opts.Enabled {
				if err := tx.DeletePolicySource(SourceManifests); err != nil {
					return err
				}
			}
			return tx.PutPolicyState(next)
		})
		if err != nil {
			return rep, fmt.Errorf("write policy records: %w", err)
		}
		rep.Written, rep.Deleted = len(changed), len(gone)
	}
	rep.Generation = max(s.gen, prev.Generation)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if len(s.tables) > 2*len(want) {
		s.tables = nil // what pods no longer have: start over
	}
	applied, seen, err := s.apply(st.Allocations, want, s.unknownPods(st, next.Synced && compileErr == nil))
	rep.Applied, rep.Endpoints = applied, seen
	return rep, errors.Join(srcErr, compileErr, err)
}

// compileAll compiles every local pod of st and encodes its record,
// remembering the result for the next passes.
func (s *Syncer) compileAll(st *Stored, in compileInputs) (map[string]wanted, error) {
	s.lastWorld, s.lastWant = "", nil
	snap, err := st.Snapshot()
	if err != nil {
		return nil, err
	}
	if w := snap.Warnings(); len(w) > 0 {
		s.log.Warn("policy snapshot", "warnings", w)
	}
	all, deps, compileErr := snap.CompileAllDeps(st.Local)
	want := make(map[string]wanted, len(all))
	enc := newPassEncoder(s.lastEnc)
	for _, c := range all {
		rs := c.Ruleset
		e, err := enc.encode(c)
		if err != nil {
			compileErr = errors.Join(compileErr, err)
			continue
		}
		key := store.PodKey(rs.Pod.Namespace, rs.Pod.Name)
		want[key] = wanted{rec: e.record(rs), rs: rs}
	}
	s.lastEnc = enc.next
	if compileErr == nil {
		s.lastWorld, s.lastAddrs, s.lastWant, s.lastDeps = in.world, in.addrs, want, deps
	}
	return want, compileErr
}

// table returns the kernel form of rs, record r's ruleset: the one
// encoded for an earlier record with the same directions (the table does
// not depend on the pod's own part), or a new one.
func (s *Syncer) table(r store.PolicyRecord, rs *policy.Ruleset) ([]byte, error) {
	key := strings.Join(r.Parts, "+")
	if t, ok := s.tables[key]; ok && key != "" {
		return t, nil
	}
	t, err := enforce.EncodeTable(rs)
	if err != nil {
		return nil, err
	}
	if s.tables == nil {
		s.tables = make(map[string][]byte)
	}
	s.tables[key] = t
	return t, nil
}

// onlyOwn reports whether no direction of the last compile can hold an
// address of the pods moved.
func (s *Syncer) onlyOwn(moved []policy.PodRef) bool {
	for _, ref := range moved {
		if s.lastDeps[ref] {
			return false
		}
	}
	return true
}

// readdress is a pass's compile when, since the last one, only the
// addresses of pods moved changed and no direction holds them
// (onlyOwn): the last compile's rulesets, those of the pods moved with
// their new addresses (as a snapshot of st would give them,
// policy.Mirror.PodIPs) and their directions' bytes reused. It returns the wanted records and how many
// changed.
func (s *Syncer) readdress(st *Stored, moved []policy.PodRef) (map[string]wanted, int, error) {
	want := maps.Clone(s.lastWant)
	enc := maps.Clone(s.lastEnc)
	n := 0
	for _, ref := range moved {
		key := store.PodKey(ref.Namespace, ref.Name)
		w, ok := want[key]
		if !ok || w.rs == nil {
			continue // not compiled here: no local pod of the sources
		}
		ips, ok, err := st.Mirror.PodIPs(ref)
		old, encoded := enc[ref]
		switch {
		case err != nil:
			return nil, 0, fmt.Errorf("readdress %s: %w", ref, err)
		case !ok || !encoded:
			return nil, 0, fmt.Errorf("readdress %s: not in the mirror or the last encoding", ref)
		}
		rs := *w.rs
		rs.IPs = ips
		e, err := old.withHead(&rs)
		if err != nil {
			return nil, 0, err
		}
		enc[ref] = e
		w.rs, w.rec = &rs, e.record(&rs)
		want[key] = w
		n++
	}
	s.lastEnc = enc
	return want, n, nil
}

// tabledKernel is a Kernel that takes a ruleset along with its kernel
// form (the enforcer): the pass has the table of every record it wrote
// (Syncer.table), and compiling it again for each endpoint cost the
// daemon 5 ms per new pod of bench-cni's world.
type tabledKernel interface {
	// SetEndpointRuleset is SetEndpoint(ep, rs), table being rs's
	// kernel form (enforce.EncodeTable) of record digest.
	SetEndpointRuleset(ep Endpoint, rs *policy.Ruleset, digest string, table []byte) error
}

// apply puts in the kernel the record of every bound endpoint whose digest
// differs from what this loop last applied to it (first sight included:
// whatever its ADD installed is replaced), and forgets endpoints gone.
// wanted is a pod's record as this pass compiled it, and its ruleset (nil
// when the pass could not compile: the kernel then keeps what it has).
type wanted struct {
	rec    store.PolicyRecord
	rs     *policy.Ruleset
	closed bool // fail closed: the pod's selection cannot be known (unknownPods)
}

// unknownPods decides, for a bound pod the sources do not know (its labels
// and ports: no record is compiled for it), what its ADD would decide now
// (Stored.plan): once the sources are read through (synced), a pod of a
// namespace without policies is selected by none, whatever its labels;
// one of a namespace with policies stays closed. Without this, a pod whose
// ADD ran before the daemon's first pass (and so failed closed: "not read
// through yet") kept that until its labels reached the store, which on a
// node fed by a manifest folder without the pod is never.
func (s *Syncer) unknownPods(st *Stored, synced bool) func(namespace, name string) (wanted, bool) {
	var snap *policy.Snapshot
	var snapErr error
	built := false
	return func(namespace, name string) (wanted, bool) {
		if !s.opts.Enabled || !synced {
			return wanted{}, false
		}
		if st.PoliciesIn(namespace) > 0 {
			return wanted{rec: store.PolicyRecord{Digest: FromFailClosed, Isolated: true}, closed: true}, true
		}
		if !built {
			snap, snapErr = st.Snapshot()
			built = true
		}
		if snapErr != nil {
			return wanted{}, false
		}
		rs := snap.CompilePod(policy.Pod{Namespace: namespace, Name: name, Node: st.Mirror.Node.Name})
		e, err := encodeRuleset(rs)
		if err != nil {
			return wanted{}, false
		}
		return wanted{rec: store.PolicyRecord{Digest: e.digest, Isolated: isolated(rs)}, rs: rs}, true
	}
}

func (s *Syncer) apply(allocs []store.Allocation, want map[string]wanted, unknown func(namespace, name string) (wanted, bool)) (applied, seen int, err error) {
	if s.kernel == nil && !s.openKernel(allocs, want) {
		return 0, 0, nil
	}
	live := make(map[Endpoint]bool)
	var errs []error
	for _, a := range allocs {
		if a.State != store.IPBound || a.HostIfindex <= 0 || a.PodName == "" || !a.IP.IsValid() {
			continue
		}
		ip4, ip6 := a.Families() // IPv4 zero for an IPv6-only pod
		ep := Endpoint{Ifindex: a.HostIfindex, IP: ip4, IP6: ip6}
		live[ep] = true
		seen++
		var rs *policy.Ruleset
		var table []byte
		digest := "off"
		closed := false
		if s.opts.Enabled {
			w, ok := want[store.PodKey(a.PodNamespace, a.PodName)]
			if !ok && unknown != nil {
				w, ok = unknown(a.PodNamespace, a.PodName)
			}
			if !ok || w.rs == nil && !w.closed {
				continue // not compiled (a pod the sources do not know yet)
			}
			rs, digest, closed = w.rs, w.rec.Digest, w.closed
			if w.rec.Isolated && len(w.rec.Parts) > 0 {
				table = s.tables[strings.Join(w.rec.Parts, "+")]
			}
		} else {
			// Off: an unisolated ruleset removes the endpoint's tables.
			rs = &policy.Ruleset{Pod: policy.PodRef{Namespace: a.PodNamespace, Name: a.PodName}}
		}
		old, had := s.applied[ep]
		if had && old == digest {
			continue
		}
		var err error
		switch tk, tabled := s.kernel.(tabledKernel); {
		case closed:
			err = s.kernel.FailClosed(ep)
		case tabled && table != nil:
			err = tk.SetEndpointRuleset(ep, rs, digest, table)
		default:
			err = s.kernel.SetEndpoint(ep, rs)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s of %s: %w", ep, store.PodKey(a.PodNamespace, a.PodName), err))
			continue
		}
		if !had {
			// An endpoint this daemon has not seen: its ADD attached the
			// programs, unless it ran before policy was on.
			if err := s.kernel.AttachEndpoint(ep); err != nil {
				errs = append(errs, fmt.Errorf("attach endpoint %s: %w", ep, err))
				continue
			}
		}
		s.applied[ep] = digest
		applied++
	}
	for ep := range s.applied {
		if !live[ep] {
			delete(s.applied, ep) // released: Release removed it from the kernel
		}
	}
	return applied, seen, errors.Join(errs...)
}

// openKernel opens the enforcer when a bound endpoint's record isolates
// something, or when the node already has one (an earlier run's tables
// to clear); a node without policies never loads the programs.
func (s *Syncer) openKernel(allocs []store.Allocation, want map[string]wanted) bool {
	if s.opts.OpenKernel == nil {
		return false
	}
	needed := false
	for _, a := range allocs {
		if a.State != store.IPBound || a.PodName == "" {
			continue
		}
		if w, ok := want[store.PodKey(a.PodNamespace, a.PodName)]; ok && w.rec.Isolated {
			needed = true
			break
		}
	}
	k, err := s.opts.OpenKernel(needed)
	if err != nil {
		if why := err.Error(); why != s.noKern && (needed || !errors.Is(err, ErrNoEnforcer)) {
			s.noKern = why
			s.log.Warn("policy not enforced in the kernel", "err", err)
		}
		return false
	}
	s.kernel = k
	s.log.Info("policy enforcer open")
	return true
}

// dirSignature names every manifest file under dir with its size and
// modification time; "" when the folder cannot be walked.
func dirSignature(dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", path, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return ""
	}
	return b.String()
}

// nodeIPs is NodeIPs and what NodeAddrs adds, sorted, each once.
func (s *Syncer) nodeIPs() []netip.Addr {
	if s.opts.NodeAddrs == nil {
		return s.opts.NodeIPs
	}
	more, err := s.opts.NodeAddrs()
	if err != nil {
		s.log.Warn("policy: node addresses", "err", err)
		return s.opts.NodeIPs
	}
	ips := append(slices.Clone(s.opts.NodeIPs), more...)
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips)
}

// withSources returns st with srcs instead of the stored sources.
func (st *Stored) withSources(srcs []store.PolicySource) *Stored {
	n := &Stored{State: st.State, HasState: st.HasState, Facts: st.Facts, Allocations: st.Allocations, Records: st.Records,
		policies: make(map[string]int), sources: srcs, kube: st.kube}
	n.merge(st.kube.pods, st.kube.nss, st.kube.pols, srcs)
	return n
}

func sameState(a, b store.PolicyState) bool {
	return a.Enabled == b.Enabled && a.Synced == b.Synced && a.Node == b.Node && a.Error == b.Error &&
		slices.Equal(a.Sources, b.Sources) && slices.Equal(a.NodeIPs, b.NodeIPs)
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
