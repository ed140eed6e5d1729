package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric"
)

// Files of the sim directory.
const (
	simStateFile       = "state.json"
	simCredentialsFile = "credentials.json"
	simLogFile         = "sim.log"
	defaultSimDir      = "/run/veni/sim"
)

var (
	// errSimNotRunning means the sim directory has no live server.
	errSimNotRunning = errors.New("no sim running")
	// errSimRunning means a server already owns the sim directory or name.
	errSimRunning = errors.New("sim already running")
)

// simGlobalOptions locate one sim: its directory and the name its
// namespaces carry.
type simGlobalOptions struct {
	dir  string
	name string
}

func (o *simGlobalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dir, "dir", envOr("VENI_SIM_DIR", defaultSimDir), "sim state directory (env VENI_SIM_DIR)")
	fs.StringVar(&o.name, "name", envOr("VENI_SIM_NAME", fabric.DefaultName), "sim name: prefix of its namespaces (env VENI_SIM_NAME)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newSimCommand() *cobra.Command {
	var g simGlobalOptions
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a simulated Alibaba Cloud VPC on this machine: cloud API, metadata, network fabric and nodes",
		Long: `A simulated VPC: the OpenAPI and metadata services, and a packet fabric of
network namespaces where each node is a namespace and each ENI a veth pair.
Nothing leaves the machine: the fabric has no uplink and the root namespace
blackholes the sim's addresses while it runs. Needs root.`,
	}
	g.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newSimUpCommand(&g),
		newSimServeCommand(&g),
		newSimStatusCommand(&g),
		newSimExecCommand(&g),
		newSimFaultCommand(&g),
		newSimDownCommand(&g),
		newSimPodCommand(&g),
		newSimEnvCommand(&g),
		newSimConnectivityCommand(&g),
	)
	return cmd
}

// simState is state.json: what the server publishes about the running sim.
type simState struct {
	PID              int               `json:"pid"`
	Name             string            `json:"name"`
	Dir              string            `json:"dir"`
	Started          time.Time         `json:"started"`
	Region           string            `json:"region"`
	VPCID            string            `json:"vpcId"`
	VPCCIDR          netip.Prefix      `json:"vpcCidr"`
	VPCNetNS         string            `json:"vpcNetns"`
	VSwitches        []sim.VSwitchSpec `json:"vswitches"`
	APIEndpoint      string            `json:"apiEndpoint"`
	MetadataEndpoint string            `json:"metadataEndpoint"`
	ControlEndpoint  string            `json:"controlEndpoint"`
	Credentials      string            `json:"credentials"`
	Nodes            []simNode         `json:"nodes"`
}

// simNode is one node of the sim as state.json and the control endpoint
// describe it.
type simNode struct {
	Name         string     `json:"name"`
	InstanceID   string     `json:"instanceId"`
	InstanceType string     `json:"instanceType"`
	NetNS        string     `json:"netns"`
	NetNSPath    string     `json:"netnsPath"`
	PrimaryENIID string     `json:"primaryEniId"`
	PrimaryIP    netip.Addr `json:"primaryIp"`
	MAC          string     `json:"mac"`
	VSwitchID    string     `json:"vswitchId"`
}

// simControlState is the control endpoint's GET /v1/state answer.
type simControlState struct {
	Cloud sim.Snapshot `json:"cloud"`
	Nodes []simNode    `json:"nodes"`
}

// simFaultRequest is the control endpoint's POST /v1/faults body.
type simFaultRequest struct {
	Action       string        `json:"action"` // "" means every action
	Latency      time.Duration `json:"latency"`
	ThrottleRate float64       `json:"throttleRate"`
	ErrorRate    float64       `json:"errorRate"`
	ErrorCode    string        `json:"errorCode,omitempty"`
	Clear        bool          `json:"clear"`
}

// readSimState loads state.json. May return an error wrapping
// errSimNotRunning when there is none.
func readSimState(dir string) (simState, error) {
	var st simState
	b, err := os.ReadFile(filepath.Join(dir, simStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%w in %s", errSimNotRunning, dir)
	}
	if err != nil {
		return st, fmt.Errorf("read sim state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse %s: %w", filepath.Join(dir, simStateFile), err)
	}
	return st, nil
}

// writeFileAtomic writes a file through a rename so readers never see half
// of it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// simServerAlive reports whether pid is a live "veni sim serve" process:
// a pid left in a stale state.json may have been reused by anything else.
func simServerAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "sim" && args[i+1] == "serve" {
			return true
		}
	}
	return false
}

// runningSim loads the state of a live sim in dir. May return an error
// wrapping errSimNotRunning.
func runningSim(dir string) (simState, error) {
	st, err := readSimState(dir)
	if err != nil {
		return st, err
	}
	if !simServerAlive(st.PID) {
		return st, fmt.Errorf("%w in %s (server pid %d is gone; veni sim down cleans up)", errSimNotRunning, dir, st.PID)
	}
	return st, nil
}

// simControl calls the control endpoint; out, when not nil, receives the
// JSON answer.
func simControl(ctx context.Context, st simState, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, st.ControlEndpoint+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sim control %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("sim control %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sim control %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("sim control %s %s: decode: %w", method, path, err)
	}
	return nil
}

// findSimNode finds a node by name, instance id or namespace name.
func findSimNode(st simState, key string) (simNode, error) {
	for _, n := range st.Nodes {
		if n.Name == key || n.InstanceID == key || n.NetNS == key {
			return n, nil
		}
	}
	names := make([]string, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	return simNode{}, fmt.Errorf("no node %q in sim %s (nodes: %s)", key, st.Name, strings.Join(names, ", "))
}

// simLockDir holds one lock file per sim name. The server holds its lock
// for its whole life, so a name is provably in use even when its state
// directory is elsewhere: "down" must never clean up a live sim of the same
// name that another directory describes.
const simLockDir = "/run/veni"

func simLockPath(name string) string { return filepath.Join(simLockDir, "sim-"+name+".lock") }

// lockSimName takes the name's lock without waiting. May return an error
// wrapping errSimRunning when a live server holds it.
func lockSimName(name string) (*os.File, error) {
	if err := os.MkdirAll(simLockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock dir: %w", err)
	}
	f, err := os.OpenFile(simLockPath(name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sim lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: a server holds %s", errSimRunning, simLockPath(name))
		}
		return nil, fmt.Errorf("lock %s: %w", simLockPath(name), err)
	}
	return f, nil
}
