package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// veniBin is the veni binary under test. The sim learns about a node's
// veni only as an operator would, from what these commands print; it never
// reads veni's store or pins itself.
type veniBin string

// nodeCommandTimeout bounds one veni command the sim runs on a node.
const nodeCommandTimeout = 20 * time.Second

// output runs "veni ARGS" (inside the network namespace at netns, when not
// "") and returns its stdout; a failure carries its stderr.
func (v veniBin) output(ctx context.Context, netns string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, nodeCommandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, string(v), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := cmd.Start
	if netns != "" {
		start = func() error { return ns.WithNetNSPath(netns, func(ns.NetNS) error { return cmd.Start() }) }
	}
	err := start()
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return nil, fmt.Errorf("veni %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// NodeHealth is what "veni status -o json", run inside the node, says about
// it.
type NodeHealth struct {
	Healthy        bool     `json:"healthy"`                  // veni status ran and named no problem
	Datapath       string   `json:"datapath,omitempty"`       // active datapath: ebpf or plain
	DatapathReason string   `json:"datapathReason,omitempty"` // why
	Daemon         string   `json:"daemon,omitempty"`         // veni status' verdict on the node's daemon
	Problems       []string `json:"problems,omitempty"`
	Error          string   `json:"error,omitempty"` // veni status could not run or answer
}

// health runs "veni status -o json" in the node, as an operator would.
func (v veniBin) health(ctx context.Context, n Node, p NodePaths) NodeHealth {
	out, err := v.output(ctx, n.NetNSPath, "status", "-o", "json", "--config", p.Config)
	if err != nil {
		return NodeHealth{Error: err.Error()}
	}
	var rep struct {
		Datapath struct {
			Active string `json:"active"`
			Reason string `json:"reason"`
		} `json:"datapath"`
		Daemon struct {
			Verdict string `json:"verdict"`
		} `json:"daemon"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return NodeHealth{Error: fmt.Sprintf("veni status -o json: %v", err)}
	}
	return NodeHealth{
		Healthy:        len(rep.Problems) == 0,
		Datapath:       rep.Datapath.Active,
		DatapathReason: rep.Datapath.Reason,
		Daemon:         rep.Daemon.Verdict,
		Problems:       rep.Problems,
	}
}

// podENIs maps each bound pod address of the node to its ENI and vSwitch,
// from "veni ipam list -o json" (the store is a file: no namespace needed).
func (v veniBin) podENIs(ctx context.Context, p NodePaths) (map[string][2]string, error) {
	out, err := v.output(ctx, "", "ipam", "list", "-o", "json", "--config", p.Config)
	if err != nil {
		return nil, err
	}
	var l struct {
		ENIs []struct {
			ID        string `json:"id"`
			VSwitchID string `json:"vswitchID"`
		} `json:"enis"`
		Allocations []struct {
			IP    string `json:"ip"`
			ENIID string `json:"eniID"`
		} `json:"allocations"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("veni ipam list -o json: %w", err)
	}
	vsw := make(map[string]string, len(l.ENIs))
	for _, e := range l.ENIs {
		vsw[e.ID] = e.VSwitchID
	}
	byIP := make(map[string][2]string, len(l.Allocations))
	for _, a := range l.Allocations {
		byIP[a.IP] = [2]string{a.ENIID, vsw[a.ENIID]}
	}
	return byIP, nil
}

// cleanup runs "veni cleanup" for the node: veni removes what it left in
// the kernel that outlives its processes (the fast path's pins).
func (v veniBin) cleanup(ctx context.Context, p NodePaths) error {
	_, err := v.output(ctx, "", "cleanup", "--config", p.Config)
	return err
}
