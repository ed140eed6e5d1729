package cluster

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"

	"github.com/veni-cni/veni/eni/sim/fabric"
)

// A simulated node is set up like a real one after "veni install": a veni
// configuration, a CNI conflist naming the veni plugin, a plugin directory
// holding veni and loopback, and (unless the sim runs without daemons) a
// "veni daemon" whose network namespace is the node's.
const (
	CNIBinDir   = "cni-bin"
	NodesDir    = "nodes"
	nodeConfig  = "veni.json"
	nodeStore   = "veni.db"
	nodeConfDir = "net.d"
	nodeCache   = "cni-cache"
	nodePods    = "pods"
	conflist    = "10-veni.conflist"
	daemonLog   = "daemon.log"
)

// Conflist versions. cniVersion is what runtimes whose libcni predates spec
// 1.1 (containerd 1.6) read: they ignore cniVersions and cannot parse a
// 1.1.0 result. Newer runtimes pick the highest of cniVersions they know.
const (
	ConflistVersion = "1.0.0"
)

// ConflistVersions is the conflist's cniVersions.
var ConflistVersions = []string{"1.0.0", "1.1.0"}

// CNIBinNames are the plugins the node's CNI bin dir provides, each a link
// to the veni binary: veni acts as the loopback plugin when invoked by that
// name, as a busybox does.
var CNIBinNames = []string{"veni", "loopback"}

// NodePaths are where one node's files live in the sim directory.
type NodePaths struct {
	Dir      string `json:"dir"`
	Config   string `json:"config"`   // veni.json, 0600
	Store    string `json:"store"`    // veni's store_path
	ConfDir  string `json:"confDir"`  // NETCONFPATH
	CacheDir string `json:"cacheDir"` // libcni's result cache
	PodsDir  string `json:"podsDir"`  // the sim's pod records
	Log      string `json:"daemonLog"`
}

// Paths returns where node's files live in the sim directory dir.
func Paths(dir, node string) NodePaths {
	d := filepath.Join(dir, NodesDir, node)
	return NodePaths{
		Dir:      d,
		Config:   filepath.Join(d, nodeConfig),
		Store:    filepath.Join(d, nodeStore),
		ConfDir:  filepath.Join(d, nodeConfDir),
		CacheDir: filepath.Join(d, nodeCache),
		PodsDir:  filepath.Join(d, nodePods),
		Log:      filepath.Join(d, daemonLog),
	}
}

// Paths returns where node's files live in this sim's directory.
func (st State) Paths(node string) NodePaths { return Paths(st.Dir, node) }

// CNIBin is the sim's plugin directory (CNI_PATH of every node).
func (st State) CNIBin() string { return filepath.Join(st.Dir, CNIBinDir) }

// nodeVeniConfig is the node's veni.json, with the eni_conf field names an
// operator would write. It names the credentials file, and spec.NodeConfig
// may add keys: it is written 0600.
func nodeVeniConfig(st State, p NodePaths, spec Spec) (map[string]any, error) {
	api, err := url.Parse(st.APIEndpoint)
	if err != nil {
		return nil, fmt.Errorf("sim api endpoint %q: %w", st.APIEndpoint, err)
	}
	cfg := map[string]any{
		"endpoint":        api.Host,
		"scheme":          "http",
		"metadata_url":    st.MetadataEndpoint,
		"credential_path": st.Credentials,
		"region_id":       st.Region,
		"store_path":      p.Store,
		"min_pool_size":   spec.MinPoolSize,
		"max_pool_size":   spec.MaxPoolSize,
		"service_cidr":    fabric.ServiceCIDR.String(), // pods reach the sim's services through the node's host stack, as kube-proxy's Services
	}
	if spec.Datapath != "" {
		cfg["datapath"] = spec.Datapath
	}
	manifests, err := manifestsDir(st.Dir)
	if err != nil {
		return nil, err
	}
	cfg["policy_manifest_dir"] = manifests
	maps.Copy(cfg, spec.NodeConfig)
	return cfg, nil
}

// nodeConflist is the node's 10-veni.conflist.
func nodeConflist(p NodePaths) map[string]any {
	return map[string]any{
		"cniVersion":  ConflistVersion,
		"cniVersions": ConflistVersions,
		"name":        "veni",
		"plugins":     []any{map[string]any{"type": "veni", "config": p.Config}},
	}
}

// writeNodeFiles writes the node's veni.json (0600) and conflist.
func writeNodeFiles(st State, node Node, spec Spec) (NodePaths, error) {
	p := st.Paths(node.Name)
	// A node directory left by an earlier sim describes other instances.
	if err := os.RemoveAll(p.Dir); err != nil {
		return p, err
	}
	if err := os.MkdirAll(p.ConfDir, 0o755); err != nil {
		return p, err
	}
	cfg, err := nodeVeniConfig(st, p, spec)
	if err != nil {
		return p, err
	}
	if err := writeJSONFile(p.Config, cfg, 0o600); err != nil {
		return p, fmt.Errorf("node %s config: %w", node.Name, err)
	}
	if spec.DaemonConflist {
		return p, nil // the daemon writes it once ready
	}
	if err := writeJSONFile(filepath.Join(p.ConfDir, conflist), nodeConflist(p), 0o644); err != nil {
		return p, fmt.Errorf("node %s conflist: %w", node.Name, err)
	}
	return p, nil
}

// nodeReady reports whether the node's runtime would send it pods: its CNI
// conflist exists.
func nodeReady(p NodePaths) bool {
	_, err := os.Stat(filepath.Join(p.ConfDir, conflist))
	return err == nil
}

// linkCNIBin makes the sim's plugin directory: every CNIBinNames entry a
// link to bin, as "veni install" puts veni in /opt/cni/bin.
func linkCNIBin(dir, bin string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range CNIBinNames {
		link := filepath.Join(dir, name)
		_ = os.Remove(link)
		if err := os.Symlink(bin, link); err != nil {
			return fmt.Errorf("link plugin %s: %w", name, err)
		}
	}
	return nil
}
