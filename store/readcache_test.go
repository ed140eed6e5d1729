package store

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// Ensure a cached read returns what the plain read does and names exactly
// the keys added, changed and deleted since the read before; a write of
// the same bytes is no change.
func TestReadTx_MirrorPodsCached(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "veni.db"), Options{})
	var c ReadCache
	check := func(step string, all bool, keys ...string) {
		t.Helper()
		_ = db.View(func(tx *ReadTx) error {
			got, ch, err := tx.MirrorPodsCached(&c)
			plain, perr := tx.MirrorPods()
			if err != nil || perr != nil {
				t.Fatalf("%s: %v, %v", step, err, perr)
			}
			if len(got) != len(plain) || len(got) > 0 && !reflect.DeepEqual(got, plain) {
				t.Errorf("%s: cached %+v, plain %+v", step, got, plain)
			}
			slices.Sort(ch.Keys)
			if ch.All != all || !slices.Equal(ch.Keys, keys) {
				t.Errorf("%s: changes %+v, want all=%v keys %v", step, ch, all, keys)
			}
			return nil
		})
	}
	put := func(name, label string) {
		mustUpdate(t, db, func(tx *WriteTx) error {
			return tx.PutMirrorPod(Pod{Namespace: "default", Name: name, Labels: map[string]string{"app": label}})
		})
	}
	check("empty, first read", true)
	check("empty again", false)
	put("a", "x")
	put("b", "x")
	check("two added", false, "default/a", "default/b")
	check("unchanged", false)
	put("a", "x")
	check("same bytes written", false)
	put("a", "y")
	check("relabelled", false, "default/a")
	mustUpdate(t, db, func(tx *WriteTx) error { return tx.DeleteMirrorPod("default", "b") })
	check("deleted", false, "default/b")
	c.Reset()
	check("reset", true)
}
