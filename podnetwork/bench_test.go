package podnetwork

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/veni-cni/veni/store"
)

// BenchmarkResolve is what an ADD pays for Resolve on a node whose
// manifest folder describes 632 pods (the policy bench's world) and no
// PodNetworking: the common case, which must stay cheap.
func BenchmarkResolve(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "veni.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	src := store.PolicySource{Name: "manifests"}
	for i := range 632 {
		src.Pods = append(src.Pods, store.SourcePod{Pod: store.Pod{Namespace: fmt.Sprintf("ns-%d", i%20), Name: fmt.Sprintf("pod-%d", i),
			Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%50), "tier": "web", "pod-template-hash": "5d8c7b9f6d"},
			Ports:  []store.PodPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}, Node: "node-1"})
	}
	if err := db.Update(func(tx *store.WriteTx) error { return tx.PutPolicySource(src) }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		err := db.View(func(tx *store.ReadTx) error {
			_, err := Resolve(tx, "ns-3", "pod-3")
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
