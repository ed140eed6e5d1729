package commands

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall_WritesPluginConflistAndConfig(t *testing.T) {
	dir := t.TempDir()
	eniConf := filepath.Join(dir, "eni_conf")
	if err := os.WriteFile(eniConf, []byte(`{"version":"1","max_pool_size":5,"enable_eni_trunking":false,"made_up":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &installOptions{cniBinDir: filepath.Join(dir, "bin"), cniConfDir: filepath.Join(dir, "net.d"), configDir: filepath.Join(dir, "etc"), eniConf: eniConf}
	var out bytes.Buffer
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "made_up") {
		t.Fatalf("unknown field not reported:\n%s", out.String())
	}
	st, err := os.Stat(filepath.Join(o.cniBinDir, "veni"))
	if err != nil || st.Mode().Perm() != 0o755 || st.Size() == 0 {
		t.Fatalf("plugin not installed executable: %v %v", st, err)
	}
	var conflist struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type   string `json:"type"`
			Config string `json:"config"`
		} `json:"plugins"`
	}
	b, err := os.ReadFile(filepath.Join(o.cniConfDir, "10-veni.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &conflist); err != nil {
		t.Fatal(err)
	}
	if conflist.CNIVersion != "1.1.0" || len(conflist.Plugins) != 1 || conflist.Plugins[0].Type != "veni" || conflist.Plugins[0].Config != filepath.Join(o.configDir, "veni.json") {
		t.Fatalf("conflist %s", b)
	}
	if _, err := os.Stat(filepath.Join(o.configDir, "veni.json")); err != nil {
		t.Fatal(err)
	}
}

func TestInstall_Errors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte(`{"max_pool_size":"lots"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    installOptions
		want string
	}{
		{"invalid eni_conf", installOptions{eniConf: bad}, "max_pool_size"},
		{"no config at all", installOptions{}, "--eni-conf"},
		{"bad mtu", installOptions{mtu: 100}, "--mtu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.cniBinDir, o.cniConfDir, o.configDir = filepath.Join(dir, "bin"), filepath.Join(dir, "net.d"), filepath.Join(dir, "etc-"+tc.name)
			err := runInstall(&bytes.Buffer{}, &o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want mention of %q", err, tc.want)
			}
			// A failed install must not leave a conflist pointing at nothing.
			if _, err := os.Stat(filepath.Join(o.cniConfDir, "10-veni.conflist")); err == nil {
				t.Fatal("conflist written despite the error")
			}
		})
	}
}
