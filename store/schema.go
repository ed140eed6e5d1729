package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Bucket names. They are part of the file format: never rename one, add a
// migration instead.
var (
	bucketMeta   = []byte("meta")
	bucketENIs   = []byte("enis")
	bucketIPs    = []byte("ips")
	bucketAllocs = []byte("allocations")
	bucketLeases = []byte("leases")
	bucketPool   = []byte("pool")
	bucketEvents = []byte("events")
	bucketPods   = []byte("pods")       // mirrored from Kubernetes by the daemon
	bucketNS     = []byte("namespaces") // mirrored from Kubernetes by the daemon
	bucketPolicy = []byte("policies")   // mirrored from Kubernetes by the daemon

	bucketPolicySources = []byte("policy_sources") // policy objects from manifests, by source
	bucketPolicyRecords = []byte("policy_records") // local pods' compiled policy, by namespace/name
	bucketPolicyIndex   = []byte("policy_index")   // each record's digest and flags, read without its ruleset
	bucketPolicyTables  = []byte("policy_tables")  // each isolating record's kernel table, raw, read by ADD
	bucketPolicyParts   = []byte("policy_parts")   // parts records share (a direction pods have alike), raw, by digest

	bucketPodNetworkings = []byte("podnetworkings") // PodNetworking objects mirrored from Kubernetes by the daemon
	bucketSourceIndex    = []byte("source_index")   // what an ADD looks up in the policy sources, by key (sourceindex.go)

	bucketFixed = []byte("fixed_enis") // fixed ENIs this node attaches or parked, by id (fixed.go)
)

// Keys in bucketMeta and bucketPool.
var (
	keySchema    = []byte("schema")
	keyRecovery  = []byte("recovery")
	keyPoolState = []byte("state")
)

// migrations[i] moves a file from schema i to schema i+1; schema 0 is a new,
// empty file. Migrations only go forward: append, never edit or remove one
// that has shipped. Each runs in the same transaction as the schema bump, so
// a crash leaves the file at the old or the new schema, never between.
var migrations = []func(tx *bolt.Tx) error{
	// 0 → 1: the initial layout.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketENIs, bucketIPs, bucketAllocs, bucketLeases, bucketPool, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 1 → 2: every ENI gets a stable routing table. Earlier binaries
	// derived it from the link's ifindex, which changes when an ENI is
	// re-attached; number the known ENIs in id order.
	func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketENIs)
		var enis []ENI
		err := b.ForEach(func(k, v []byte) error {
			e, err := decode[ENI](k, v)
			enis = append(enis, e)
			return err
		})
		if err != nil {
			return err
		}
		for i, e := range enis {
			e.Table = FirstENITable + i
			enc, err := encode(e)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(e.ID), enc); err != nil {
				return err
			}
		}
		return nil
	},
	// 2 → 3: the Kubernetes mirror (pods of this node, namespaces, network
	// policies), written by the daemon so a CNI ADD never needs the API
	// server.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPods, bucketNS, bucketPolicy} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 3 → 4: NetworkPolicy enforcement: objects of non-Kubernetes policy
	// sources (a manifest folder) and each local pod's compiled policy,
	// written by the daemon, read by CNI ADD (policy.go).
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPolicySources, bucketPolicyRecords, bucketPolicyIndex} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 4 → 5: each isolating record's ruleset also in the enforcer's kernel
	// form, raw bytes beside the record, so that an ADD copies it into the
	// kernel without decoding or compiling the ruleset. Records written
	// before have none: their ADD decodes the ruleset, as before, until
	// the daemon's next pass rewrites them.
	func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketPolicyTables); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketPolicyTables, err)
		}
		return nil
	},
	// 5 → 6: what records share is stored once, by digest (PolicyPart):
	// pods selected alike have equal directions, and a record holding
	// its own copy made the bench world's store 1.2 GB (632 pods × 1.9 MB
	// of JSON), every pass's write of one record 1.9 MB. Records written
	// before hold their whole ruleset and no parts: still read as before.
	func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketPolicyParts); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketPolicyParts, err)
		}
		return nil
	},
	// 6 → 7: PodNetworkings (network.alibabacloud.com/v1beta1), mirrored
	// like network policies, so an ADD can tell whether its pod asks for
	// a dedicated ENI without the API server; and an index of the policy
	// sources so it finds one pod of a manifest folder without decoding
	// the folder whole.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPodNetworkings, bucketSourceIndex} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return indexAllSources(tx)
	},
	// 7 → 8: fixed IPs (PodNetworking allocationType Fixed): the fixed
	// ENIs this node is attaching or has parked in the cloud for their
	// pods' next node. ENI records gain an optional Fixed, which older
	// records simply lack.
	func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketFixed); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketFixed, err)
		}
		return nil
	},
}

// SchemaVersion is the schema this binary writes.
func SchemaVersion() int { return len(migrations) }

// schemaOf returns the schema of the file open in tx: 0 for a file without
// one (new, or from before schemas existed).
//
// May return an error wrapping ErrCorrupt.
func schemaOf(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchema)
	if v == nil {
		return 0, nil
	}
	have, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("schema version %q: %w", v, ErrCorrupt)
	}
	return have, nil
}

// readSchema returns the schema of b's file, without writing.
func readSchema(b *bolt.DB) (int, error) {
	var have int
	err := b.View(func(tx *bolt.Tx) (err error) {
		have, err = schemaOf(tx)
		return err
	})
	return have, err
}

// errSchemaTooNew is what a file from a newer binary gets, writer or reader.
func errSchemaTooNew(have int) error {
	return fmt.Errorf("file has schema %d, this binary knows up to %d: %w (upgrade veni on this node)", have, SchemaVersion(), ErrSchemaTooNew)
}

// migrate brings the file to SchemaVersion, refusing files from the future.
func migrate(tx *bolt.Tx) error {
	have, err := schemaOf(tx)
	if err != nil {
		return err
	}
	want := SchemaVersion()
	if have > want {
		return errSchemaTooNew(have)
	}
	if have == want {
		return nil
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	for v := have; v < want; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
		}
	}
	return meta.Put(keySchema, []byte(strconv.Itoa(want)))
}

// recordVersion is the version stamped on every value this binary writes.
// Bump it (with a migration rewriting old values when needed) when a record
// changes meaning; adding an optional field does not need a bump.
const recordVersion = 1

// envelope is how every value is stored: the record and its version.
type envelope[T any] struct {
	V    int `json:"v"`
	Data T   `json:"d"`
}

func encode[T any](rec T) ([]byte, error) {
	b, err := json.Marshal(envelope[T]{V: recordVersion, Data: rec})
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", rec, err)
	}
	return b, nil
}

// decode returns a fresh copy of the record in b: nothing it returns aliases
// bbolt's memory, which is only valid inside the transaction.
func decode[T any](key, b []byte) (T, error) {
	var env envelope[T]
	if err := json.Unmarshal(b, &env); err != nil {
		return env.Data, fmt.Errorf("decode %q: %w: %w", key, ErrCorrupt, err)
	}
	if env.V > recordVersion {
		return env.Data, fmt.Errorf("decode %q: record version %d, this binary knows %d: %w", key, env.V, recordVersion, ErrCorrupt)
	}
	return env.Data, nil
}
