package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

// Files of the sim directory. Every file that may hold a secret (the
// credentials, the token, the spec with its extra node fields, each node's
// veni.json) is written 0600; the directory itself is 0700.
const (
	DefaultDir      = "/run/veni/sim"
	StateFile       = "state.json"
	SpecFile        = "spec.json"
	ProgressFile    = "progress.json"
	TokenFile       = "control.token"
	CredentialsFile = "credentials.json"
	LogFile         = "sim.log"
)

// StateVersion is the format of state.json this package writes and reads.
// Version 1 (no "version" field) had no control token: its server accepts
// anything, and this package's client refuses to talk to it.
const StateVersion = 2

// State is state.json: what the server publishes about the running sim once
// every listener is up. Its presence with a live PID means "ready".
type State struct {
	Version          int               `json:"version"`
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
	Nodes            []Node            `json:"nodes"`
	// Kernel are the kernel's limits the server checked and raised for
	// the sim (kernel.go); they are restored when it stops.
	Kernel []KernelChange `json:"kernel,omitempty"`
}

// Node is one node of the sim as state.json and the control endpoint
// describe it.
type Node struct {
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

// ReadState loads state.json whatever its version (Down must clean up after
// any server). May return an error wrapping ErrNotRunning when there is none.
func ReadState(dir string) (State, error) {
	var st State
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%w in %s", ErrNotRunning, dir)
	}
	if err != nil {
		return st, fmt.Errorf("read sim state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse %s: %w", path, err)
	}
	return st, nil
}

// Running loads the state of a live sim in dir that this veni can talk to.
// May return an error wrapping ErrNotRunning or ErrStateVersion.
func Running(dir string) (State, error) {
	st, err := ReadState(dir)
	if err != nil {
		return st, err
	}
	if !ServerAlive(st.PID) {
		return st, fmt.Errorf("%w in %s (server pid %d is gone; veni sim down cleans up)", ErrNotRunning, dir, st.PID)
	}
	if st.Version != StateVersion {
		return st, fmt.Errorf("%w: sim %s (pid %d, dir %s) has state format %d, this veni reads %d (run veni sim down, then veni sim up with this veni)",
			ErrStateVersion, st.Name, st.PID, dir, max(st.Version, 1), StateVersion)
	}
	return st, nil
}

// FindNode finds a node by name, instance id or namespace name. May return
// an error wrapping ErrNoNode.
func (st State) FindNode(key string) (Node, error) {
	for _, n := range st.Nodes {
		if n.Name == key || n.InstanceID == key || n.NetNS == key {
			return n, nil
		}
	}
	names := make([]string, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	return Node{}, fmt.Errorf("%w %q in sim %s (nodes: %s)", ErrNoNode, key, st.Name, strings.Join(names, ", "))
}

// ServerAlive reports whether pid is a live "veni sim serve" process: a pid
// left in a stale state.json may have been reused by anything else.
func ServerAlive(pid int) bool {
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

// Progress is progress.json: how far the server's start-up got, for Up to
// show while many nodes come up.
type Progress struct {
	Phase string `json:"phase"` // "nodes", then "daemons"
	Done  int    `json:"done"`
	Total int    `json:"total"`
}

func readProgress(dir string) (Progress, error) {
	var p Progress
	b, err := os.ReadFile(filepath.Join(dir, ProgressFile))
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(b, &p)
}

// writeJSONFile writes v as indented JSON through a rename, so readers
// never see half of it.
func writeJSONFile(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), mode)
}

// writeFileAtomic writes a file through a rename so readers never see half
// of it. The mode is applied to a new file and to one that existed.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // WriteFile keeps the mode of a file left by a crash
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // past the umask
		return err
	}
	return os.Rename(tmp, path)
}
