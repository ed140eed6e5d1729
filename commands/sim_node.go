package commands

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/eni/sim/fabric"
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
	extra            []string // key=value fields added to every node's config
	syncInterval     time.Duration
}

// extraFields parses --node-config key=value pairs; a value that is valid
// JSON (a number, true, a list) is taken as such, anything else as a string.
func (o simPoolOptions) extraFields() (map[string]any, error) {
	out := make(map[string]any, len(o.extra))
	for _, kv := range o.extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--node-config %q: want key=value", kv)
		}
		var parsed any
		if err := json.Unmarshal([]byte(v), &parsed); err != nil {
			parsed = v
		}
		out[k] = parsed
	}
	return out, nil
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
	api, err := url.Parse(st.APIEndpoint)
	if err != nil {
		return p, fmt.Errorf("sim api endpoint %q: %w", st.APIEndpoint, err)
	}
	cfg := map[string]any{
		"endpoint":        api.Host,
		"scheme":          "http",
		"metadata_url":    st.MetadataEndpoint,
		"credential_path": st.Credentials,
		"region_id":       st.Region,
		"store_path":      p.Store,
		"min_pool_size":   pool.minPool,
		"max_pool_size":   pool.maxPool,
		"service_cidr":    fabric.ServiceCIDR.String(), // pods reach the sim's services through the node's host stack, as kube-proxy's Services
	}
	if pool.datapath != "" {
		cfg["datapath"] = pool.datapath
	}
	extra, err := pool.extraFields()
	if err != nil {
		return p, err
	}
	maps.Copy(cfg, extra)
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
func startSimDaemon(node simNode, p simNodePaths, syncInterval time.Duration) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "daemon", "--config", p.Config, "--sync-interval", syncInterval.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = ns.WithNetNSPath(node.NetNSPath, func(ns.NetNS) error { return cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("start daemon on %s: %w", node.Name, err)
	}
	return cmd, nil
}

// simDaemon supervises one node's daemon the way systemd's Restart=always
// does on a real node: a daemon that dies (a crash, a kill -9 in a test) is
// started again after a second.
type simDaemon struct {
	node     simNode
	paths    simNodePaths
	interval time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	done     chan struct{}
}

// superviseSimDaemon starts the node's daemon and keeps it running until
// stop. Only the first start's failure is returned.
func superviseSimDaemon(node simNode, p simNodePaths, interval time.Duration, log *slog.Logger) (*simDaemon, error) {
	d := &simDaemon{node: node, paths: p, interval: interval, log: log, done: make(chan struct{})}
	cmd, err := startSimDaemon(node, p, interval)
	if err != nil {
		return nil, err
	}
	d.cmd = cmd
	go d.loop()
	return d, nil
}

func (d *simDaemon) loop() {
	defer close(d.done)
	for {
		d.mu.Lock()
		cmd := d.cmd
		d.mu.Unlock()
		err := cmd.Wait()
		d.mu.Lock()
		if d.stopping {
			d.mu.Unlock()
			return
		}
		d.log.Warn("daemon exited; restarting", "node", d.node.Name, "pid", cmd.Process.Pid, "err", err)
		d.mu.Unlock()
		time.Sleep(time.Second)
		d.mu.Lock()
		if d.stopping {
			d.mu.Unlock()
			return
		}
		next, err := startSimDaemon(d.node, d.paths, d.interval)
		if err != nil {
			d.log.Error("restart daemon", "node", d.node.Name, "err", err)
			d.mu.Unlock()
			return
		}
		d.cmd = next
		d.mu.Unlock()
	}
}

// pid is the running daemon's pid.
func (d *simDaemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}

// stop sends SIGTERM and waits, then kills the daemon if it lingers.
func (d *simDaemon) stop() error {
	d.mu.Lock()
	d.stopping = true
	cmd := d.cmd
	d.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("daemon of %s (pid %d) did not stop on SIGTERM", d.node.Name, cmd.Process.Pid)
	}
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
