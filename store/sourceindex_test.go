package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// Ensure the source index follows PutPolicySource and DeletePolicySource:
// a pod a folder describes is found by name, one it no longer describes is
// not, and a source's entries never shadow another's going.
func TestSourceIndex(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{})
	src := func(name string, pods ...string) PolicySource {
		s := PolicySource{Name: name, Namespaces: []Namespace{{Name: "shop", Labels: map[string]string{"env": name}}},
			PodNetworkings: []PodNetworking{{Name: "pn-" + name, Raw: []byte(`{}`)}}}
		for _, p := range pods {
			s.Pods = append(s.Pods, SourcePod{Pod: Pod{Namespace: "shop", Name: p, Labels: map[string]string{"app": p},
				Annotations: map[string]string{"k8s.aliyun.com/pod-ip-reservation": "true"}}})
		}
		return s
	}
	mustUpdate(t, db, func(tx *WriteTx) error {
		if err := tx.PutPolicySource(src("a", "web", "db")); err != nil {
			return err
		}
		return tx.PutPolicySource(src("b", "cart"))
	})
	want := func(what string, pods map[string]bool, pns int) {
		t.Helper()
		_ = db.View(func(tx *ReadTx) error {
			for name, ok := range pods {
				p, err := tx.SourcePod("shop", name)
				switch {
				case ok && (err != nil || p.Labels["app"] != name || p.Annotations["k8s.aliyun.com/pod-ip-reservation"] != "true"):
					t.Errorf("%s: pod %s: %+v, %v", what, name, p, err)
				case !ok && !errors.Is(err, ErrNotFound):
					t.Errorf("%s: pod %s still found: %v", what, name, err)
				}
			}
			got, err := tx.SourcePodNetworkings()
			if err != nil || len(got) != pns {
				t.Errorf("%s: %d PodNetworkings (%v), want %d", what, len(got), err, pns)
			}
			nss, err := tx.SourceNamespaces()
			if err != nil || len(nss) != pns {
				t.Errorf("%s: %d namespaces (%v), want %d", what, len(nss), err, pns)
			}
			return nil
		})
	}
	want("both", map[string]bool{"web": true, "db": true, "cart": true, "gone": false}, 2)
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.PutPolicySource(src("a", "web")) })
	want("a without db", map[string]bool{"web": true, "db": false, "cart": true}, 2)
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeletePolicySource("b") })
	want("b deleted", map[string]bool{"web": true, "cart": false}, 1)
}
