package commands

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veni-cni/veni/netplumb"
)

// mustENIConf writes an eni_conf for install to read.
func mustENIConf(tb testing.TB, dir, body string) string {
	tb.Helper()
	p := filepath.Join(dir, "eni_conf")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// testInstallOptions installs into dir only: no drop-in directory exists
// unless a test makes one.
func testInstallOptions(dir, eniConf string) *installOptions {
	return &installOptions{
		cniBinDir: filepath.Join(dir, "bin"), cniConfDir: filepath.Join(dir, "net.d"), configDir: filepath.Join(dir, "etc"), eniConf: eniConf,
		nmConfDir: filepath.Join(dir, "NetworkManager", "conf.d"), networkdDir: filepath.Join(dir, "systemd", "network"),
		unmanageENIs: true, primaryLink: "eth0",
	}
}

func TestInstall_WritesPluginConflistAndConfig(t *testing.T) {
	dir := t.TempDir()
	o := testInstallOptions(dir, mustENIConf(t, dir, `{"version":"1","max_pool_size":5,"access_key":"AK","access_secret":"SK","enable_eni_trunking":false,"made_up":1}`))
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
		CNIVersion  string   `json:"cniVersion"`
		CNIVersions []string `json:"cniVersions"`
		Plugins     []struct {
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
	// A libcni older than spec 1.1.0 reads cniVersion only and must get
	// a result it can parse; newer ones pick 1.1.0 from cniVersions.
	if conflist.CNIVersion != "1.0.0" || !slices.Contains(conflist.CNIVersions, "1.1.0") || len(conflist.Plugins) != 1 ||
		conflist.Plugins[0].Type != "veni" || conflist.Plugins[0].Config != filepath.Join(o.configDir, "veni.json") {
		t.Fatalf("conflist %s", b)
	}
	// veni.json may hold an access key.
	if st, err := os.Stat(filepath.Join(o.configDir, "veni.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("veni.json: %v, mode %v; want 0600", err, st.Mode())
	}
	if target, err := os.Readlink(filepath.Join(o.cniBinDir, "loopback")); err != nil || target != "veni" {
		t.Fatalf("loopback link: %q, %v; want -> veni", target, err)
	}
}

// Ensure a loopback plugin already in the bin dir (Debian's reference one)
// is never replaced, and an install over an earlier one keeps its link.
func TestInstall_Loopback_KeepsExisting(t *testing.T) {
	dir := t.TempDir()
	o := testInstallOptions(dir, mustENIConf(t, dir, `{}`))
	if err := os.MkdirAll(o.cniBinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(o.cniBinDir, "loopback")
	if err := os.WriteFile(ref, []byte("reference loopback"), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var out bytes.Buffer
		if err := runInstall(&out, o); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "kept "+ref) {
			t.Fatalf("output does not say the loopback plugin was kept:\n%s", out.String())
		}
		if b, err := os.ReadFile(ref); err != nil || string(b) != "reference loopback" {
			t.Fatalf("existing loopback plugin changed: %q, %v", b, err)
		}
	}
}

// Ensure an install that keeps an existing veni.json makes it 0600.
func TestInstall_TightensExistingConfig(t *testing.T) {
	dir := t.TempDir()
	o := testInstallOptions(dir, "")
	cfg := filepath.Join(o.configDir, "veni.json")
	if err := os.MkdirAll(o.configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(`{"access_key":"AK"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("veni.json mode %v, %v; want 0600", st.Mode(), err)
	}
	if !strings.Contains(out.String(), "now 0600") {
		t.Fatalf("no note about the mode:\n%s", out.String())
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

// dropInMatches reports which of names the drop-ins in o's directories
// make NetworkManager and systemd-networkd leave alone, by the globs they
// hold (both tools' globs are path.Match's for these patterns).
func dropInMatches(tb testing.TB, o *installOptions, names []string) (nm, networkd []string) {
	tb.Helper()
	var nmGlobs, ndGlobs []string
	if b, err := os.ReadFile(filepath.Join(o.nmConfDir, "veni.conf")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "unmanaged-devices+="); ok {
				for _, spec := range strings.Split(v, ";") {
					g, ok := strings.CutPrefix(spec, "interface-name:")
					if !ok {
						tb.Fatalf("unexpected NetworkManager spec %q", spec)
					}
					nmGlobs = append(nmGlobs, g)
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(o.networkdDir, "05-veni.network")); err == nil {
		if !strings.Contains(string(b), "\n[Link]\nUnmanaged=yes\n") {
			tb.Fatalf("05-veni.network does not make its links unmanaged:\n%s", b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Name="); ok {
				ndGlobs = append(ndGlobs, strings.Fields(v)...)
			}
		}
	}
	match := func(globs []string, name string) bool {
		return slices.ContainsFunc(globs, func(g string) bool {
			ok, err := path.Match(g, name)
			if err != nil {
				tb.Fatalf("bad glob %q: %v", g, err)
			}
			return ok
		})
	}
	for _, n := range names {
		if match(nmGlobs, n) {
			nm = append(nm, n)
		}
		if match(ndGlobs, n) {
			networkd = append(networkd, n)
		}
	}
	return nm, networkd
}

// Ensure the drop-ins match veni's veths and, only when the primary is
// eth0 and ENIs are asked for, every ethN but eth0; and that they are
// written only where the tool's directory exists.
func TestInstall_NetworkDropIns(t *testing.T) {
	links := []string{"eth0", "eth1", "eth9", "eth10", "eth17", "ens5", "veni0123456789a", "lo", "docker0"}
	veth := []string{"veni0123456789a"}
	vethAndENIs := []string{"eth1", "eth9", "eth10", "eth17", "veni0123456789a"}
	cases := []struct {
		name         string
		dirs         []string // which tools' parent directories exist
		primary      string
		unmanageENIs bool
		wantNM       []string
		wantNetworkd []string
		wantNote     string
	}{
		{"no network manager", nil, "eth0", true, nil, nil, ""},
		{"both, primary eth0", []string{"NetworkManager", "systemd"}, "eth0", true, vethAndENIs, vethAndENIs, ""},
		{"networkmanager only", []string{"NetworkManager"}, "eth0", true, vethAndENIs, nil, ""},
		{"networkd only", []string{"systemd"}, "eth0", true, nil, vethAndENIs, ""},
		{"primary not eth0", []string{"NetworkManager", "systemd"}, "ens5", true, veth, veth, "primary interface is ens5"},
		{"enis not asked for", []string{"NetworkManager", "systemd"}, "eth0", false, veth, veth, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testInstallOptions(dir, mustENIConf(t, dir, `{}`))
			o.primaryLink, o.unmanageENIs = tc.primary, tc.unmanageENIs
			for _, d := range tc.dirs {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			if err := runInstall(&out, o); err != nil {
				t.Fatal(err)
			}
			nm, networkd := dropInMatches(t, o, links)
			if !slices.Equal(nm, tc.wantNM) || !slices.Equal(networkd, tc.wantNetworkd) {
				t.Fatalf("NetworkManager leaves %v alone (want %v), systemd-networkd %v (want %v)", nm, tc.wantNM, networkd, tc.wantNetworkd)
			}
			_, errLink := os.Stat(filepath.Join(o.networkdDir, "05-veni.link"))
			if (errLink == nil) != slices.Contains(tc.dirs, "systemd") {
				t.Fatalf("05-veni.link present: %v, want it exactly when /etc/systemd exists", errLink == nil)
			}
			if tc.wantNote != "" && !strings.Contains(out.String(), tc.wantNote) {
				t.Fatalf("output lacks %q:\n%s", tc.wantNote, out.String())
			}
		})
	}
}

// Ensure a second install changes nothing (same bytes, same mtime), a
// drop-in of an older veni is replaced, and a user's file of the same
// name is never touched.
func TestInstall_NetworkDropIns_Ownership(t *testing.T) {
	dir := t.TempDir()
	o := testInstallOptions(dir, mustENIConf(t, dir, `{}`))
	for _, d := range []string{o.nmConfDir, o.networkdDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := []byte("[Match]\nName=veni*\n[Network]\nDHCP=yes\n")
	userFile := filepath.Join(o.networkdDir, "05-veni.network")
	if err := os.WriteFile(userFile, user, 0o644); err != nil {
		t.Fatal(err)
	}
	older := []byte(dropInMarker + "\n[keyfile]\nunmanaged-devices+=interface-name:old*\n")
	nmFile := filepath.Join(o.nmConfDir, "veni.conf")
	if err := os.WriteFile(nmFile, older, 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(userFile); !bytes.Equal(b, user) {
		t.Fatalf("the user's %s was changed:\n%s", userFile, b)
	}
	if !strings.Contains(out.String(), userFile+" is not veni's") {
		t.Fatalf("no note about the user's file:\n%s", out.String())
	}
	first, err := os.ReadFile(nmFile)
	if err != nil || bytes.Equal(first, older) || !bytes.Contains(first, []byte("interface-name:veni*")) {
		t.Fatalf("older veni drop-in not replaced: %s, %v", first, err)
	}
	before, err := os.Stat(nmFile)
	if err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(nmFile)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) || after.Mode() != before.Mode() || !os.SameFile(before, after) {
		t.Fatalf("second install rewrote %s", nmFile)
	}
	if !strings.Contains(out.String(), "unchanged "+nmFile) {
		t.Fatalf("second install does not say unchanged:\n%s", out.String())
	}
	if entries, _ := os.ReadDir(o.nmConfDir); len(entries) != 1 {
		t.Fatalf("leftovers in %s: %v", o.nmConfDir, entries)
	}
}

func TestParseDefaultRouteLink(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	cases := []struct {
		name, table, want string
	}{
		{"one default", header +
			"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric wins", header +
			"eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
			"ens5\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "ens5"},
		{"no default", header +
			"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", ""},
		{"empty", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDefaultRouteLink(strings.NewReader(tc.table))
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// Ensure install raises the neighbour table limits a dense node needs,
// never lowers ones set higher, and keeps them in a sysctl.d drop-in that
// a second install leaves unchanged and a user's file of that name wins.
func TestInstall_NeighbourLimits(t *testing.T) {
	dir := t.TempDir()
	o := testInstallOptions(dir, mustENIConf(t, dir, `{}`))
	o.sysctlDir = filepath.Join(dir, "sysctl.d")
	kernel := netplumb.NeighbourLimits{Thresh1: 128, Thresh2: 512, Thresh3: 32768} // an operator raised gc_thresh3
	o.raiseNeighbour = func(want netplumb.NeighbourLimits) (netplumb.NeighbourLimits, error) {
		kernel = netplumb.NeighbourLimits{Thresh1: max(kernel.Thresh1, want.Thresh1), Thresh2: max(kernel.Thresh2, want.Thresh2), Thresh3: max(kernel.Thresh3, want.Thresh3)}
		return kernel, nil
	}
	var out bytes.Buffer
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if kernel != (netplumb.NeighbourLimits{Thresh1: 4096, Thresh2: 8192, Thresh3: 32768}) {
		t.Errorf("kernel limits now %+v", kernel)
	}
	conf := filepath.Join(o.sysctlDir, "90-veni.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"net.ipv4.neigh.default.gc_thresh1 = 4096\n", "net.ipv4.neigh.default.gc_thresh3 = 16384\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("90-veni.conf lacks %q:\n%s", want, b)
		}
	}
	out.Reset()
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "unchanged "+conf) {
		t.Errorf("second install:\n%s", out.String())
	}
	if err := os.WriteFile(conf, []byte("net.ipv4.neigh.default.gc_thresh3 = 99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(conf); string(b) != "net.ipv4.neigh.default.gc_thresh3 = 99999\n" || !strings.Contains(out.String(), "is not veni's") {
		t.Errorf("user's file replaced, or no note:\n%s", out.String())
	}

	// Outside the node's namespace the kernel's limits are not visible:
	// the drop-in is still written, with a note.
	o.raiseNeighbour = func(netplumb.NeighbourLimits) (netplumb.NeighbourLimits, error) {
		return netplumb.NeighbourLimits{}, netplumb.ErrNoNeighbourLimits
	}
	o.sysctlDir = filepath.Join(dir, "sysctl2.d")
	out.Reset()
	if err := runInstall(&out, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.sysctlDir, "90-veni.conf")); err != nil || !strings.Contains(out.String(), "hostNetwork") {
		t.Errorf("no drop-in (%v) or note:\n%s", err, out.String())
	}
}
