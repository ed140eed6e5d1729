package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// NetworkPolicy state. Besides the Kubernetes mirror (mirror.go), the
// daemon keeps here what it read from other policy sources (a folder of
// manifests), each local pod's compiled ruleset and the policy loop's
// state, so that a CNI ADD installs a new pod's policy from one read
// transaction, with no daemon and no API server. Rulesets are opaque JSON
// to this package (package policy's Ruleset; the store must not import
// it): the store checks only that each record's digest is its content's,
// and that the index (digest and flags, read without the ruleset) agrees.

// PolicySource is the objects one non-Kubernetes policy source supplied
// (today "manifests": the policy_manifest_dir folder), as last read.
type PolicySource struct {
	Name       string      `json:"name"`
	Location   string      `json:"location,omitempty"` // the folder
	Pods       []SourcePod `json:"pods,omitempty"`
	Namespaces []Namespace `json:"namespaces,omitempty"`
	Policies   []Policy    `json:"policies,omitempty"` // Raw: networking.k8s.io/v1 JSON
	// PodNetworkings of the folder (Raw: network.alibabacloud.com/v1beta1
	// JSON), for package podnetwork.
	PodNetworkings []PodNetworking `json:"podNetworkings,omitempty"`
	Digest         string          `json:"digest"` // of what was read; unchanged input is not rewritten
	Read           time.Time       `json:"read"`
}

// SourcePod is a pod a manifest describes: any node's (peers of local
// pods) or this node's (endpoints, whose addresses come from allocations).
type SourcePod struct {
	Pod
	Node string       `json:"node,omitempty"`
	IPs  []netip.Addr `json:"ips,omitempty"`
}

// PolicyRecord is a local pod's compiled policy as the daemon last wrote
// it: what an ADD installs, and what "veni policy show" prints.
type PolicyRecord struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Digest is PolicyDigest(Ruleset): equal digests, equal kernel state.
	Digest string `json:"digest"`
	// Generation is the policy loop's pass that wrote it (PolicyState).
	Generation uint64 `json:"generation"`
	// Isolated is true when the ruleset isolates a direction (an ADD
	// then has something to install).
	Isolated bool `json:"isolated,omitempty"`
	// Ruleset is the encoded ruleset (package podpolicy's encoding).
	Ruleset  []byte    `json:"ruleset"`
	Compiled time.Time `json:"compiled"`
	// Table is the ruleset in the kernel's form (package enforce's
	// encoding), opaque here, for a record that isolates: stored apart
	// from the record (PolicyTable) so that an ADD reads only it.
	// PolicyRecord does not fill it.
	Table []byte `json:"-"`
	// Parts are the digests (PolicyDigest) of the shared parts Ruleset
	// refers to, each stored once for every record that has it
	// (PolicyPart). PartData is their bytes, in Parts' order:
	// PutPolicyRecord stores those the store lacks, PolicyRecord fills it.
	Parts    []string `json:"parts,omitempty"`
	PartData [][]byte `json:"-"`
}

// PolicyRecordInfo is a record without its ruleset: what a pass compares
// and an ADD checks before it reads the whole record.
type PolicyRecordInfo struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Digest     string `json:"digest"`
	Generation uint64 `json:"generation"`
	Isolated   bool   `json:"isolated,omitempty"`
}

// Info returns the record's index entry.
func (r PolicyRecord) Info() PolicyRecordInfo {
	return PolicyRecordInfo{Namespace: r.Namespace, Name: r.Name, Digest: r.Digest, Generation: r.Generation, Isolated: r.Isolated}
}

// PolicyState is the daemon's policy loop as it last recorded itself.
type PolicyState struct {
	// Enabled is the node's network_policy switch as the daemon runs it.
	Enabled bool `json:"enabled"`
	// Sources name what the loop reads: "kubernetes", "manifests".
	Sources []string `json:"sources,omitempty"`
	// Synced is true once every source had been read completely (the
	// informers synced, the folder read): before, an unknown pod's
	// selection is unknown and an ADD fails it closed.
	Synced bool `json:"synced"`
	// Node is the node's name as policies see it (pods' spec.nodeName)
	// and NodeIPs its addresses (whose traffic to its pods is allowed).
	Node       string       `json:"node,omitempty"`
	NodeIPs    []netip.Addr `json:"nodeIPs,omitempty"`
	Generation uint64       `json:"generation"`
	Updated    time.Time    `json:"updated"`
	// Error is why the last pass could not compile ("" if none): a
	// manifest that does not parse, a policy that cannot be read.
	Error string `json:"error,omitempty"`
}

var keyPolicyState = []byte("policy")

// PolicyDigest is the digest of a compiled ruleset's JSON.
func PolicyDigest(ruleset []byte) string {
	sum := sha256.Sum256(ruleset)
	return hex.EncodeToString(sum[:16])
}

func (r PolicyRecord) validate() error {
	switch {
	case r.Name == "" || r.Namespace == "":
		return errors.New("policy record without a pod namespace and name")
	case len(r.Ruleset) == 0:
		return fmt.Errorf("policy record %s: no ruleset", PodKey(r.Namespace, r.Name))
	case r.Digest != PolicyDigest(r.Ruleset):
		return fmt.Errorf("policy record %s: digest %q is not its ruleset's %q", PodKey(r.Namespace, r.Name), r.Digest, PolicyDigest(r.Ruleset))
	}
	return nil
}

// PolicyRecord returns the compiled policy of pod namespace/name, its
// PartData filled, or an error wrapping ErrNotFound (or ErrCorrupt for a
// part the store lacks).
func (t *ReadTx) PolicyRecord(namespace, name string) (PolicyRecord, error) {
	r, err := get[PolicyRecord](t, bucketPolicyRecords, []byte(PodKey(namespace, name)), "policy record")
	if err != nil {
		return r, err
	}
	parts := t.tx.Bucket(bucketPolicyParts)
	r.PartData = make([][]byte, len(r.Parts))
	for i, d := range r.Parts {
		v := parts.Get([]byte(d))
		if v == nil {
			return r, fmt.Errorf("policy record %s: part %s: %w", PodKey(namespace, name), d, ErrCorrupt)
		}
		r.PartData[i] = bytes.Clone(v)
	}
	return r, nil
}

// PolicyRecords returns every compiled record, ordered by namespace/name.
func (t *ReadTx) PolicyRecords() ([]PolicyRecord, error) {
	return list[PolicyRecord](t, bucketPolicyRecords)
}

// PutPolicyRecord records r; its Digest must be PolicyDigest(r.Ruleset).
// r.Table, when given, replaces the record's kernel table; without one
// the record has none.
func (t *WriteTx) PutPolicyRecord(r PolicyRecord) error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("put policy record: %w", err)
	}
	key := []byte(PodKey(r.Namespace, r.Name))
	if err := put(t, bucketPolicyIndex, key, r.Info()); err != nil {
		return err
	}
	parts := t.tx.Bucket(bucketPolicyParts)
	for i, d := range r.Parts {
		if parts.Get([]byte(d)) != nil {
			continue // stored once, for every record that has it
		}
		if i >= len(r.PartData) || PolicyDigest(r.PartData[i]) != d {
			return fmt.Errorf("put policy record %s: part %s: %w", PodKey(r.Namespace, r.Name), d, ErrNotFound)
		}
		if err := parts.Put([]byte(d), r.PartData[i]); err != nil {
			return err
		}
	}
	tables := t.tx.Bucket(bucketPolicyTables)
	if len(r.Table) == 0 {
		if err := tables.Delete(key); err != nil {
			return err
		}
	} else if err := tables.Put(key, append([]byte(r.Digest), r.Table...)); err != nil {
		return err
	}
	return put(t, bucketPolicyRecords, key, r)
}

// PolicyTable returns the kernel table of pod namespace/name's record
// (a copy, valid after the transaction) and the digest of the record it
// was written with, or an error wrapping ErrNotFound when the record has
// none.
func (t *ReadTx) PolicyTable(namespace, name string) (digest string, table []byte, err error) {
	v := t.tx.Bucket(bucketPolicyTables).Get([]byte(PodKey(namespace, name)))
	if v == nil {
		return "", nil, fmt.Errorf("policy table %s: %w", PodKey(namespace, name), ErrNotFound)
	}
	if len(v) < policyDigestLen {
		return "", nil, fmt.Errorf("policy table %s: %d bytes: %w", PodKey(namespace, name), len(v), ErrCorrupt)
	}
	return string(v[:policyDigestLen]), bytes.Clone(v[policyDigestLen:]), nil
}

// policyDigestLen is the length of a PolicyDigest.
const policyDigestLen = 32

// PolicyRecordInfos returns every record's index entry, ordered by
// namespace/name, without reading the rulesets.
func (t *ReadTx) PolicyRecordInfos() ([]PolicyRecordInfo, error) {
	return list[PolicyRecordInfo](t, bucketPolicyIndex)
}

// PolicyRecordInfo returns pod namespace/name's index entry, or an error
// wrapping ErrNotFound.
func (t *ReadTx) PolicyRecordInfo(namespace, name string) (PolicyRecordInfo, error) {
	return get[PolicyRecordInfo](t, bucketPolicyIndex, []byte(PodKey(namespace, name)), "policy record")
}

// DeletePolicyRecord forgets a pod's compiled policy; none is no error.
func (t *WriteTx) DeletePolicyRecord(namespace, name string) error {
	key := []byte(PodKey(namespace, name))
	for _, b := range [][]byte{bucketPolicyIndex, bucketPolicyTables, bucketPolicyRecords} {
		if err := t.tx.Bucket(b).Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// PrunePolicyParts deletes the parts no record refers to, and returns how
// many. The daemon calls it in the transaction that replaces or deletes
// records.
func (t *WriteTx) PrunePolicyParts() (int, error) {
	used := make(map[string]bool)
	err := t.tx.Bucket(bucketPolicyRecords).ForEach(func(k, v []byte) error {
		r, err := decode[PolicyRecord](k, v)
		if err != nil {
			return err
		}
		for _, d := range r.Parts {
			used[d] = true
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var gone [][]byte
	parts := t.tx.Bucket(bucketPolicyParts)
	_ = parts.ForEach(func(k, _ []byte) error {
		if !used[string(k)] {
			gone = append(gone, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range gone {
		if err := parts.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// PolicySources returns every stored policy source, ordered by name.
func (t *ReadTx) PolicySources() ([]PolicySource, error) {
	return list[PolicySource](t, bucketPolicySources)
}

// SourceCache keeps the policy sources a reader decoded, with their
// stored bytes, so that a reader reading them again and again (the
// daemon's passes) decodes a source only when its bytes changed: the
// bench world's manifest source is ~10 ms of JSON, read by every pass.
// The zero value is ready; not safe for concurrent use.
type SourceCache struct {
	raw map[string][]byte
	src map[string]PolicySource
}

// PolicySourcesCached is PolicySources, taking from c the sources whose
// bytes did not change since c got them. What it returns shares its
// slices with c: read-only.
func (t *ReadTx) PolicySourcesCached(c *SourceCache) ([]PolicySource, error) {
	if c.raw == nil {
		c.raw, c.src = make(map[string][]byte), make(map[string]PolicySource)
	}
	var out []PolicySource
	seen := make(map[string]bool)
	err := t.tx.Bucket(bucketPolicySources).ForEach(func(k, v []byte) error {
		name := string(k)
		seen[name] = true
		if old, ok := c.raw[name]; ok && bytes.Equal(old, v) {
			out = append(out, c.src[name])
			return nil
		}
		s, err := decode[PolicySource](k, v)
		if err != nil {
			return err
		}
		c.raw[name], c.src[name] = bytes.Clone(v), s
		out = append(out, s)
		return nil
	})
	for name := range c.raw {
		if !seen[name] {
			delete(c.raw, name)
			delete(c.src, name)
		}
	}
	return out, err
}

// PutPolicySource records what source s.Name supplied.
func (t *WriteTx) PutPolicySource(s PolicySource) error {
	if s.Name == "" {
		return errors.New("put policy source: no name")
	}
	if err := put(t, bucketPolicySources, []byte(s.Name), s); err != nil {
		return err
	}
	return indexSource(t.tx, s.Name, &s)
}

// DeletePolicySource forgets a source (its folder is no longer configured).
func (t *WriteTx) DeletePolicySource(name string) error {
	if err := t.tx.Bucket(bucketPolicySources).Delete([]byte(name)); err != nil {
		return err
	}
	return indexSource(t.tx, name, nil)
}

// PolicyState returns the policy loop's state, or an error wrapping
// ErrNotFound when no daemon has run it on this store.
func (t *ReadTx) PolicyState() (PolicyState, error) {
	return get[PolicyState](t, bucketMeta, keyPolicyState, "policy state")
}

// PutPolicyState records the policy loop's state.
func (t *WriteTx) PutPolicyState(s PolicyState) error {
	return put(t, bucketMeta, keyPolicyState, s)
}
