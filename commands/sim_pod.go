package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/eni/sim/pods"
	"github.com/veni-cni/veni/store"
)

// simPod is a pod the sim's runtime added, as recorded in the node's pods
// directory so that "pod del" and "pod list" work from any later command.
type simPod struct {
	Node    string        `json:"node"`
	Pod     pods.Pod      `json:"pod"`
	IP      netip.Addr    `json:"ip"`
	AddTook time.Duration `json:"addTook"`
	ENI     string        `json:"eni,omitempty"`     // from the node's store, when listed
	VSwitch string        `json:"vswitch,omitempty"` // from the node's store, when listed
}

func simPodsDir(simDir, node string) string {
	return filepath.Join(simNodeFiles(simDir, node).Dir, "pods")
}

func simPodFile(simDir, node, namespace, name string) string {
	return filepath.Join(simPodsDir(simDir, node), namespace+"_"+name+".json")
}

// simPodNetNS names a pod's namespace after its node's, so "sim down" (which
// removes the node's namespaces by prefix) removes pods as well.
func simPodNetNS(st simState, node simNode, namespace, name string) string {
	return fabric.NodeNetNSName(st.Name, node.Name) + "-pod-" + namespace + "-" + name
}

func newSimPodCommand(g *simGlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pod",
		Short: "Add, delete and list pods on simulated nodes (through libcni, as containerd does)",
	}
	var namespace string
	add := &cobra.Command{
		Use:   "add NODE NAME",
		Short: "Create a pod network namespace on NODE and run CNI ADD for it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := runningSim(g.dir)
			if err != nil {
				return err
			}
			p, err := addSimPod(cmd.Context(), st, args[0], namespace, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s on %s: %s (netns %s, ADD %s)\n", namespace, args[1], p.Node, p.IP, p.Pod.NetNS, p.AddTook.Round(time.Millisecond))
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "del NODE NAME",
		Short: "Run CNI DEL for a pod and remove its network namespace",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := runningSim(g.dir)
			if err != nil {
				return err
			}
			return delSimPod(cmd.Context(), st, args[0], namespace, args[1])
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the sim's pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := runningSim(g.dir)
			if err != nil {
				return err
			}
			all, err := listSimPods(st)
			if err != nil {
				return err
			}
			return printSimPods(cmd.OutOrStdout(), all)
		},
	}
	for _, c := range []*cobra.Command{add, del} {
		c.Flags().StringVarP(&namespace, "namespace", "n", "default", "the pod's Kubernetes namespace")
	}
	cmd.AddCommand(add, del, list)
	return cmd
}

// addSimPod creates the pod's namespace and adds it through libcni.
func addSimPod(ctx context.Context, st simState, nodeName, namespace, name string) (simPod, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	node, err := findSimNode(st, nodeName)
	if err != nil {
		return simPod{}, err
	}
	if _, err := os.Stat(simPodFile(st.Dir, node.Name, namespace, name)); err == nil {
		return simPod{}, fmt.Errorf("pod %s/%s already exists on %s", namespace, name, node.Name)
	}
	rt, err := simRuntime(st, node)
	if err != nil {
		return simPod{}, err
	}
	nsName := simPodNetNS(st, node, namespace, name)
	nsPath, err := pods.CreateNetNS(nsName)
	if err != nil {
		return simPod{}, err
	}
	pod := pods.Pod{
		Namespace:   namespace,
		Name:        name,
		UID:         sim.RandomID(8) + "-" + sim.RandomID(4),
		ContainerID: sim.RandomID(32),
		NetNS:       nsPath,
	}
	res, took, err := rt.Add(ctx, pod)
	if err != nil {
		return simPod{}, errors.Join(err, pods.DeleteNetNS(nsName))
	}
	ip, err := pods.PodIP(res)
	if err != nil {
		return simPod{}, err
	}
	p := simPod{Node: node.Name, Pod: pod, IP: netip.MustParseAddr(ip), AddTook: took}
	if err := os.MkdirAll(simPodsDir(st.Dir, node.Name), 0o755); err != nil {
		return p, err
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	return p, writeFileAtomic(simPodFile(st.Dir, node.Name, namespace, name), append(b, '\n'), 0o644)
}

// delSimPod runs DEL, as containerd does on StopPodSandbox, then removes the
// namespace and the record.
func delSimPod(ctx context.Context, st simState, nodeName, namespace, name string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	node, err := findSimNode(st, nodeName)
	if err != nil {
		return err
	}
	file := simPodFile(st.Dir, node.Name, namespace, name)
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("pod %s/%s on %s: %w", namespace, name, node.Name, err)
	}
	var p simPod
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	rt, err := simRuntime(st, node)
	if err != nil {
		return err
	}
	if _, err := rt.Del(ctx, p.Pod); err != nil {
		return err
	}
	if err := pods.DeleteNetNS(filepath.Base(p.Pod.NetNS)); err != nil {
		return err
	}
	return os.Remove(file)
}

func listSimPods(st simState) ([]simPod, error) {
	var all []simPod
	for _, n := range st.Nodes {
		onNode, err := readNodePods(st, n)
		if err != nil {
			return nil, err
		}
		if err := annotateFromStore(simNodeFiles(st.Dir, n.Name).Store, onNode); err != nil {
			return nil, err
		}
		all = append(all, onNode...)
	}
	slices.SortFunc(all, func(a, b simPod) int { return strings.Compare(a.Node+"/"+a.Pod.Name, b.Node+"/"+b.Pod.Name) })
	return all, nil
}

// readNodePods reads the pod records of one node.
func readNodePods(st simState, node simNode) ([]simPod, error) {
	files, err := filepath.Glob(filepath.Join(simPodsDir(st.Dir, node.Name), "*.json"))
	if err != nil {
		return nil, err
	}
	out := make([]simPod, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var p simPod
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// annotateFromStore fills in each pod's ENI and vSwitch from its node's
// store, where the CNI plugin recorded them.
func annotateFromStore(path string, all []simPod) error {
	if _, err := os.Stat(path); err != nil {
		return nil // no ADD ran on that node yet
	}
	return store.View(path, func(tx *store.ReadTx) error {
		for i := range all {
			a, err := tx.AllocationByIP(all[i].IP)
			if err != nil {
				continue
			}
			e, err := tx.ENI(a.ENIID)
			if err != nil {
				continue
			}
			all[i].ENI, all[i].VSwitch = e.ID, e.VSwitchID
		}
		return nil
	})
}

func printSimPods(w io.Writer, all []simPod) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tIP\tENI\tVSWITCH\tADD")
	for _, p := range all {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", p.Pod.Namespace, p.Pod.Name, p.Node, p.IP, p.ENI, p.VSwitch, p.AddTook.Round(time.Millisecond))
	}
	return tw.Flush()
}

// deleteSimPods removes the node's pod namespaces and records without
// running DEL: the sim is going away with everything it routed.
func deleteSimPods(st simState, node simNode) error {
	onNode, err := readNodePods(st, node)
	errs := []error{err}
	for _, p := range onNode {
		if p.Pod.NetNS != "" {
			errs = append(errs, pods.DeleteNetNS(filepath.Base(p.Pod.NetNS)))
		}
	}
	return errors.Join(append(errs, os.RemoveAll(simPodsDir(st.Dir, node.Name)))...)
}
