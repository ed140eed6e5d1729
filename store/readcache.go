package store

import "bytes"

// ReadCache keeps what a long-lived reader (the daemon's policy loop)
// decoded from a few buckets, each record with its stored bytes, so that
// reading them again decodes only the records whose bytes changed and
// says which keys changed: bench-cni's policy world spent ~5 ms of every
// pass decoding allocations and record indexes that one ADD's write left
// as they were. Comparing bytes, not a counter, makes it exact (a value
// written back unchanged is no change). The zero value is ready; not safe
// for concurrent use. What the Cached accessors return shares memory with
// the cache: read-only.
type ReadCache struct {
	buckets map[string]*bucketCache
}

type bucketCache struct {
	raw map[string][]byte
	val map[string]any
}

// Changes is what a cached read found different from the read before:
// the keys added, changed or deleted. All is set when there was no read
// before (everything is new).
type Changes struct {
	All  bool
	Keys []string
}

// Any reports whether anything changed.
func (c Changes) Any() bool { return c.All || len(c.Keys) > 0 }

// Reset forgets everything: the next read decodes every record.
func (c *ReadCache) Reset() { c.buckets = nil }

func listCached[T any](t *ReadTx, c *ReadCache, bucket []byte) ([]T, Changes, error) {
	if c.buckets == nil {
		c.buckets = make(map[string]*bucketCache)
	}
	bc, ok := c.buckets[string(bucket)]
	if !ok {
		bc = &bucketCache{raw: make(map[string][]byte), val: make(map[string]any)}
		c.buckets[string(bucket)] = bc
	}
	ch := Changes{All: !ok}
	out := make([]T, 0, len(bc.raw))
	seen := make(map[string]bool, len(bc.raw))
	err := t.tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		key := string(k)
		seen[key] = true
		if old, ok := bc.raw[key]; !ok || !bytes.Equal(old, v) {
			rec, err := decode[T](k, v)
			if err != nil {
				return err
			}
			bc.raw[key], bc.val[key] = bytes.Clone(v), rec
			ch.Keys = append(ch.Keys, key)
		}
		out = append(out, bc.val[key].(T))
		return nil
	})
	if err != nil {
		delete(c.buckets, string(bucket)) // half read: start over
		return nil, Changes{}, err
	}
	for key := range bc.raw {
		if !seen[key] {
			delete(bc.raw, key)
			delete(bc.val, key)
			ch.Keys = append(ch.Keys, key)
		}
	}
	if len(out) == 0 {
		out = nil // as list returns it
	}
	if ch.All {
		ch.Keys = nil
	}
	return out, ch, nil
}

// AllocationsCached is Allocations through c, with what changed.
func (t *ReadTx) AllocationsCached(c *ReadCache) ([]Allocation, Changes, error) {
	return listCached[Allocation](t, c, bucketAllocs)
}

// MirrorPodsCached is MirrorPods through c, with what changed.
func (t *ReadTx) MirrorPodsCached(c *ReadCache) ([]Pod, Changes, error) {
	return listCached[Pod](t, c, bucketPods)
}

// MirrorNamespacesCached is MirrorNamespaces through c, with what changed.
func (t *ReadTx) MirrorNamespacesCached(c *ReadCache) ([]Namespace, Changes, error) {
	return listCached[Namespace](t, c, bucketNS)
}

// MirrorPoliciesCached is MirrorPolicies through c, with what changed.
func (t *ReadTx) MirrorPoliciesCached(c *ReadCache) ([]Policy, Changes, error) {
	return listCached[Policy](t, c, bucketPolicy)
}

// PolicyRecordInfosCached is PolicyRecordInfos through c, with what
// changed.
func (t *ReadTx) PolicyRecordInfosCached(c *ReadCache) ([]PolicyRecordInfo, Changes, error) {
	return listCached[PolicyRecordInfo](t, c, bucketPolicyIndex)
}
