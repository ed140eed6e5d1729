package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/eni/sim/pods"
)

// A simulated node is set up like a real one after "veni install": a veni
// configuration, a CNI conflist naming the veni plugin, a plugin directory,
// and (unless the sim runs without daemons) a "veni daemon" whose network
// namespace is the node's.
const (
	simCNIBinDir   = "cni-bin"
	simNodesDir    = "nodes"
	simNodeConfig  = "veni.json"
	simNodeStore   = "veni.db"
	simNodeConfDir = "net.d"
	simConflist    = "10-veni.conflist"
	simDaemonLog   = "daemon.log"
)

// simNodePaths are where one node's files live in the sim directory.
type simNodePaths struct {
	Dir      string `json:"dir"`
	Config   string `json:"config"`
	Store    string `json:"store"`
	ConfDir  string `json:"confDir"`
	CacheDir string `json:"cacheDir"`
	Log      string `json:"daemonLog"`
}

func simNodeFiles(simDir, node string) simNodePaths {
	d := filepath.Join(simDir, simNodesDir, node)
	return simNodePaths{
		Dir:      d,
		Config:   filepath.Join(d, simNodeConfig),
		Store:    filepath.Join(d, simNodeStore),
		ConfDir:  filepath.Join(d, simNodeConfDir),
		CacheDir: filepath.Join(d, "cni-cache"),
		Log:      filepath.Join(d, simDaemonLog),
	}
}

// simPoolOptions are the eni_conf pool fields every simulated node gets.
type simPoolOptions struct {
	minPool, maxPool int
	daemons          bool
	datapath         string
}

// writeSimNodeFiles writes the node's veni configuration and conflist. The
// configuration uses the eni_conf field names an operator would write.
func writeSimNodeFiles(st simState, node simNode, pool simPoolOptions) (simNodePaths, error) {
	p := simNodeFiles(st.Dir, node.Name)
	// A node directory left by an earlier sim describes other instances.
	if err := os.RemoveAll(p.Dir); err != nil {
		return p, err
	}
	if err := os.MkdirAll(p.ConfDir, 0o755); err != nil {
		return p, err
	}
	cfg := map[string]any{
		"endpoint":        hostOf(st.APIEndpoint),
		"scheme":          "http",
		"metadata_url":    st.MetadataEndpoint,
		"credential_path": st.Credentials,
		"region_id":       st.Region,
		"store_path":      p.Store,
		"min_pool_size":   pool.minPool,
		"max_pool_size":   pool.maxPool,
	}
	if pool.datapath != "" {
		cfg["datapath"] = pool.datapath
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := writeFileAtomic(p.Config, append(b, '\n'), 0o644); err != nil {
		return p, fmt.Errorf("node %s config: %w", node.Name, err)
	}
	conflist := map[string]any{
		"cniVersion":  "1.1.0",
		"cniVersions": []string{"0.4.0", "1.0.0", "1.1.0"},
		"name":        "veni",
		"plugins":     []any{map[string]any{"type": "veni", "config": p.Config}},
	}
	b, _ = json.MarshalIndent(conflist, "", "  ")
	if err := writeFileAtomic(filepath.Join(p.ConfDir, simConflist), append(b, '\n'), 0o644); err != nil {
		return p, fmt.Errorf("node %s conflist: %w", node.Name, err)
	}
	return p, nil
}

func hostOf(url string) string {
	for _, prefix := range []string{"http://", "https://"} {
		if len(url) > len(prefix) && url[:len(prefix)] == prefix {
			return url[len(prefix):]
		}
	}
	return url
}

// linkSimCNIBin makes the sim's plugin directory: "veni" pointing at this
// binary, as "veni install" puts it in /opt/cni/bin.
func linkSimCNIBin(simDir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own binary: %w", err)
	}
	dir := filepath.Join(simDir, simCNIBinDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	link := filepath.Join(dir, "veni")
	_ = os.Remove(link)
	if err := os.Symlink(self, link); err != nil {
		return "", fmt.Errorf("link plugin: %w", err)
	}
	return dir, nil
}

// startSimDaemon starts "veni daemon" for the node inside the node's
// network namespace: the child is forked from a thread switched into it.
func startSimDaemon(node simNode, p simNodePaths) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "daemon", "--config", p.Config, "--sync-interval", "10s")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = ns.WithNetNSPath(node.NetNSPath, func(ns.NetNS) error { return cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("start daemon on %s: %w", node.Name, err)
	}
	return cmd, nil
}

// stopSimDaemons sends SIGTERM and waits, then kills what is left.
func stopSimDaemons(cmds []*exec.Cmd) error {
	var errs []error
	for _, c := range cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range cmds {
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			errs = append(errs, fmt.Errorf("daemon pid %d did not stop on SIGTERM", c.Process.Pid))
			<-done
		}
	}
	return errors.Join(errs...)
}

// simRuntime returns a libcni runtime for the node, as the sim sets it up.
func simRuntime(st simState, node simNode) (*pods.Runtime, error) {
	p := simNodeFiles(st.Dir, node.Name)
	return pods.NewRuntime(pods.Node{
		Name:     node.Name,
		NetNS:    node.NetNSPath,
		ConfDir:  p.ConfDir,
		CNIPath:  []string{filepath.Join(st.Dir, simCNIBinDir)},
		CacheDir: p.CacheDir,
	})
}
