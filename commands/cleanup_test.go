package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veni-cni/veni/store"
)

// Ensure cleanup of a node that never pinned anything succeeds and says
// why there was nothing to do, without creating a store.
func TestRunCleanup_NothingPinned(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, storePath string)
		want  string
	}{
		{"no store", func(*testing.T, string) {}, "no store at"},
		{"no node facts", func(t *testing.T, path string) {
			if err := (store.File{Path: path}).Update(func(*store.WriteTx) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}, "names no instance yet"},
		{"no pins", func(t *testing.T, path string) {
			err := (store.File{Path: path}).Update(func(tx *store.WriteTx) error { return tx.PutNode(store.NodeInfo{InstanceID: "i-cleanuptest-nopins"}) })
			if err != nil {
				t.Fatal(err)
			}
		}, "i-cleanuptest-nopins has no fast path pins"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			storePath := filepath.Join(dir, "veni.db")
			config := filepath.Join(dir, "veni.json")
			if err := os.WriteFile(config, []byte(`{"store_path": "`+storePath+`"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, storePath)
			var out bytes.Buffer
			if err := runCleanup(&out, &cleanupOptions{config: config}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Fatalf("output %q, want %q", out.String(), tc.want)
			}
			if tc.name == "no store" {
				if _, err := os.Stat(storePath); err == nil {
					t.Fatal("cleanup created a store")
				}
			}
		})
	}
}
