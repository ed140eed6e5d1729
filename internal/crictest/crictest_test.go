package crictest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veni-cni/veni/internal/testutil"
)

// readTar returns a tar's regular files by name.
func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = data
		}
	}
}

// Ensure the pause archive is what "ctr images import" reads as a docker
// archive: a manifest naming the tag, a config whose diff_ids is the
// layer's sha256, and a layer holding an executable /pause; and that it is
// the same bytes every build.
func TestDockerArchive_Layout(t *testing.T) {
	bin := []byte("\x7fELF not really")
	archive, err := dockerArchive(PauseImage, "amd64", bin)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := dockerArchive(PauseImage, "amd64", bin)
	if !bytes.Equal(archive, again) {
		t.Error("two builds of the archive differ: the image digest would change every run")
	}
	files := readTar(t, archive)
	var manifest []archiveManifest
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != PauseImage || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest %+v", manifest)
	}
	layer, cfgRaw := files[manifest[0].Layers[0]], files[manifest[0].Config]
	if layer == nil || cfgRaw == nil {
		t.Fatalf("manifest names files the archive lacks: %+v", manifest[0])
	}
	if sum := sha256.Sum256(cfgRaw); manifest[0].Config != hex.EncodeToString(sum[:])+".json" {
		t.Errorf("config file %s is not named by its digest", manifest[0].Config)
	}
	var cfg imageConfig
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(layer)
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("config %+v does not describe the layer (sha256:%x)", cfg, sum)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/pause" {
		t.Errorf("entrypoint %v", cfg.Config.Entrypoint)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	h, err := tr.Next()
	if err != nil || h.Name != "pause" || h.Mode != 0o755 || h.Size != int64(len(bin)) {
		t.Fatalf("layer's first entry %+v, %v: want pause, 0755", h, err)
	}
}

// Ensure the config gives containerd only paths of its own directory and
// the settings this machine needs.
func TestConfigTOML_Settings(t *testing.T) {
	l := layout{dir: "/tmp/veni-crictest-1"}
	got := configTOML(l, "/sim/cni-bin", "/sim/nodes/node-1/net.d")
	for _, want := range []string{
		`root = "/tmp/veni-crictest-1/root"`,
		`state = "/tmp/veni-crictest-1/state"`,
		`address = "/tmp/veni-crictest-1/c.sock"`,
		`address = "/tmp/veni-crictest-1/c.sock.ttrpc"`,
		`path = "/tmp/veni-crictest-1/opt"`,
		`sandbox_image = "localhost/pause:1"`,
		`restrict_oom_score_adj = true`,
		`bin_dir = "/sim/cni-bin"`,
		`conf_dir = "/sim/nodes/node-1/net.d"`,
		`max_conf_num = 1`,
		`runtime_type = "io.containerd.runc.v2"`,
		`SystemdCgroup = false`,
		`Root = "/tmp/veni-crictest-1/runc"`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("config lacks %s", want)
		}
	}
	if p := l.cgroupParent(); p != "/veni-crictest-1" {
		t.Errorf("cgroup parent %q", p)
	}
}

func TestQuantile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	cases := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(5), 0.5, 5 * time.Millisecond},
		{ms(9, 1, 5), 0.5, 5 * time.Millisecond},
		{ms(4, 3, 2, 1), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := Quantile(tc.in, tc.q); got != tc.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.want)
		}
	}
}

// Ensure a sandbox carries what kubelet gives the runtime: the pod's
// metadata (CNI_ARGS comes from it), kubelet's labels, the pod network.
func TestKubelet_SandboxConfig_Pod(t *testing.T) {
	k := &Kubelet{CgroupParent: "/veni-crictest-x"}
	cfg := k.SandboxConfig(Pod{Namespace: "ns", Name: "web", UID: "u-1", Attempt: 2})
	m := cfg.GetMetadata()
	if m.GetNamespace() != "ns" || m.GetName() != "web" || m.GetUid() != "u-1" || m.GetAttempt() != 2 {
		t.Errorf("metadata %v", m)
	}
	if cfg.GetLabels()[LabelPodUID] != "u-1" || cfg.GetLabels()[LabelPodNamespace] != "ns" {
		t.Errorf("labels %v", cfg.GetLabels())
	}
	if cfg.GetLinux().GetCgroupParent() != "/veni-crictest-x" || cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_POD {
		t.Errorf("linux %v", cfg.GetLinux())
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/c`); got != "/tmp/a b/c" {
		t.Errorf("got %q", got)
	}
	if got := unescapeMount(`/plain`); got != "/plain" {
		t.Errorf("got %q", got)
	}
}

// Ensure the veni binary never links the CRI API (or gRPC) or internal/'s
// test helpers: every linked package's init runs in every CNI call, and
// they are for tests. (internal/atomicfile is the binary's own.)
func TestVeniBinary_Deps_NoCRI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/veni-cni/veni").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/cri-api") || strings.HasPrefix(pkg, "google.golang.org/grpc") ||
			(strings.HasPrefix(pkg, "github.com/veni-cni/veni/internal/") && pkg != "github.com/veni-cni/veni/internal/atomicfile") {
			t.Errorf("the veni binary links %s", pkg)
		}
	}
}

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the test, so the skip rule itself can be tested.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped += fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed += fmt.Sprintf(format, args...) }

// Ensure a machine without containerd skips the CRI tests for a developer,
// naming what is missing and how to get it, and fails them in CI.
func TestRequireContainerd_Missing(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing on it
	for _, env := range []string{"", "1"} {
		t.Run("VENI_REQUIRE_PRIVILEGED="+env, func(t *testing.T) {
			t.Setenv(testutil.RequirePrivilegedEnv, env)
			r := &recorder{TB: t}
			RequireContainerd(r)
			got, other := r.skipped, r.failed
			if env == "1" {
				got, other = r.failed, r.skipped
			}
			if other != "" || !strings.Contains(got, "containerd") || !strings.Contains(got, "hack/deps.sh test") {
				t.Fatalf("skipped %q, failed %q; want only a %s naming containerd and hack/deps.sh", r.skipped, r.failed, map[string]string{"": "skip", "1": "failure"}[env])
			}
		})
	}
}
