package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The source index: what a CNI ADD looks up in the manifest folders (one
// pod's labels and annotations, a namespace's labels, the PodNetworkings)
// without decoding every source whole — a folder describing 632 pods cost
// an ADD 5.7 ms that way. PutPolicySource and DeletePolicySource keep it
// in step, in their transaction. Keys:
//
//	pod/<namespace>/<name>/<source>  → Pod
//	ns/<name>/<source>               → Namespace
//	pn/<name>/<source>               → PodNetworking

const (
	idxPod = "pod/"
	idxNS  = "ns/"
	idxPN  = "pn/"
)

// SourcePod returns pod namespace/name as the first manifest folder that
// describes it does, or an error wrapping ErrNotFound.
func (t *ReadTx) SourcePod(namespace, name string) (Pod, error) {
	c := t.tx.Bucket(bucketSourceIndex).Cursor()
	prefix := []byte(idxPod + namespace + "/" + name + "/")
	k, v := c.Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return Pod{}, fmt.Errorf("source pod %s: %w", PodKey(namespace, name), ErrNotFound)
	}
	return decode[Pod](k, v)
}

// SourceNamespaces returns the namespaces the manifest folders describe.
func (t *ReadTx) SourceNamespaces() ([]Namespace, error) {
	return indexed[Namespace](t, idxNS)
}

// SourcePodNetworkings returns the PodNetworkings of the manifest folders.
func (t *ReadTx) SourcePodNetworkings() ([]PodNetworking, error) {
	return indexed[PodNetworking](t, idxPN)
}

func indexed[T any](t *ReadTx, prefix string) ([]T, error) {
	var out []T
	c := t.tx.Bucket(bucketSourceIndex).Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
		rec, err := decode[T](k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// indexSource replaces source s.Name's entries of the index with s's
// (nil s: removes them).
func indexSource(tx *bolt.Tx, name string, s *PolicySource) error {
	b := tx.Bucket(bucketSourceIndex)
	var stale [][]byte
	suffix := "/" + name
	err := b.ForEach(func(k, _ []byte) error {
		if strings.HasSuffix(string(k), suffix) {
			stale = append(stale, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	if s == nil {
		return nil
	}
	putIdx := func(key string, rec any) error {
		v, err := encode(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(key+suffix), v)
	}
	for _, p := range s.Pods {
		if err := putIdx(idxPod+p.Namespace+"/"+p.Name, Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Annotations: p.Annotations, Stateful: p.Stateful, HostNetwork: p.HostNetwork}); err != nil {
			return err
		}
	}
	for _, n := range s.Namespaces {
		if err := putIdx(idxNS+n.Name, n); err != nil {
			return err
		}
	}
	for _, pn := range s.PodNetworkings {
		if err := putIdx(idxPN+pn.Name, pn); err != nil {
			return err
		}
	}
	return nil
}

// indexAllSources builds the index from every stored source (the
// migration that brought it).
func indexAllSources(tx *bolt.Tx) error {
	var srcs []PolicySource
	err := tx.Bucket(bucketPolicySources).ForEach(func(k, v []byte) error {
		s, err := decode[PolicySource](k, v)
		srcs = append(srcs, s)
		return err
	})
	if err != nil {
		return err
	}
	for i := range srcs {
		if err := indexSource(tx, srcs[i].Name, &srcs[i]); err != nil {
			return errors.Join(errors.New("index policy source "+srcs[i].Name), err)
		}
	}
	return nil
}
