package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// Ensure a node's veni.json is 0600 (it names credentials and may hold
// keys), carries the spec's fields, and its conflist is one libcni reads
// with cniVersion 1.0.0 for runtimes that predate spec 1.1.
func TestWriteNodeFiles(t *testing.T) {
	dir := t.TempDir()
	st := testState(dir)
	spec := DefaultSpec()
	spec.Datapath = "plain"
	spec.NodeConfig = map[string]any{"access_key_id": "LTAIxxx", "min_pool_size": float64(7)}
	// A looser file left by an earlier sim must not keep its mode.
	old := st.Paths("node-1")
	if err := os.MkdirAll(old.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old.Config, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := writeNodeFiles(st, st.Nodes[0], spec)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p.Config)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("veni.json mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(p.Config)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"endpoint": "100.100.0.10", "scheme": "http", "metadata_url": "http://100.100.100.200", "credential_path": st.Credentials,
		"region_id": "cn-hangzhou", "store_path": p.Store, "min_pool_size": float64(7), "max_pool_size": float64(5),
		"datapath": "plain", "access_key_id": "LTAIxxx", "service_cidr": "100.100.0.0/16",
	}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("veni.json %s = %v, want %v", k, cfg[k], v)
		}
	}

	list, err := libcni.NetworkConfFromFile(filepath.Join(p.ConfDir, conflist))
	if err != nil {
		t.Fatal(err)
	}
	// A libcni that knows cniVersions picks the highest it supports.
	if list.CNIVersion != "1.1.0" {
		t.Errorf("libcni picked cniVersion %q, want 1.1.0", list.CNIVersion)
	}
	// One that predates it reads cniVersion alone.
	var raw struct {
		CNIVersion  string   `json:"cniVersion"`
		CNIVersions []string `json:"cniVersions"`
		Plugins     []struct {
			Type   string `json:"type"`
			Config string `json:"config"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.CNIVersion != "1.0.0" {
		t.Errorf("conflist cniVersion %q, want 1.0.0", raw.CNIVersion)
	}
	if !slices.Equal(raw.CNIVersions, []string{"1.0.0", "1.1.0"}) {
		t.Errorf("cniVersions %q, want [1.0.0 1.1.0]", raw.CNIVersions)
	}
	if len(raw.Plugins) != 1 || raw.Plugins[0].Type != "veni" || raw.Plugins[0].Config != p.Config {
		t.Errorf("plugins %+v", raw.Plugins)
	}
}

// Ensure the CNI bin dir holds veni and loopback, both the veni binary,
// and that linking again (a new sim in the same dir) replaces them.
func TestLinkCNIBin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), CNIBinDir)
	for _, bin := range []string{"/old/veni", "/usr/local/bin/veni"} {
		if err := linkCNIBin(dir, bin); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"veni", "loopback"} {
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || target != "/usr/local/bin/veni" {
			t.Errorf("%s -> %q (%v), want /usr/local/bin/veni", name, target, err)
		}
	}
}
