package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/eni/sim/pods"
)

// PodRecord is a pod the sim's runtime added, as recorded in the node's
// pods directory so that "pod del" and "pod list" work from any later
// command.
type PodRecord struct {
	Node    string        `json:"node"`
	Pod     pods.Pod      `json:"pod"`
	IP      netip.Addr    `json:"ip"`
	AddTook time.Duration `json:"addTook"`
	ENI     string        `json:"eni,omitempty"`     // from veni ipam list, when listed with ENIs
	VSwitch string        `json:"vswitch,omitempty"` // from veni ipam list, when listed with ENIs
}

func podFile(p NodePaths, namespace, name string) string {
	return filepath.Join(p.PodsDir, namespace+"_"+name+".json")
}

// PodNetNS names a pod's namespace after its node's, so that Down (which
// removes the node's namespaces by prefix) removes pods as well.
func (st State) PodNetNS(node Node, namespace, name string) string {
	return fabric.NodeNetNSName(st.Name, node.Name) + "-pod-" + namespace + "-" + name
}

// Runtime returns a libcni runtime for the node, set up as the sim sets up
// its nodes: what containerd on that node would use.
func (st State) Runtime(node Node) (*pods.Runtime, error) {
	p := st.Paths(node.Name)
	return pods.NewRuntime(pods.Node{
		Name:     node.Name,
		NetNS:    node.NetNSPath,
		ConfDir:  p.ConfDir,
		CNIPath:  []string{st.CNIBin()},
		CacheDir: p.CacheDir,
	})
}

// AddPod creates the pod's namespace on the node (by name, instance id or
// namespace) and adds it through libcni. May return an error wrapping
// ErrNoNode or ErrPodExists.
func AddPod(ctx context.Context, st State, nodeName, namespace, name string) (PodRecord, error) {
	return AddPodWith(ctx, st, nodeName, namespace, name, nil, nil)
}

// AddPodWith is AddPod for a pod with labels and container ports: the sim
// describes it in its manifest folder before the ADD (so the node can
// compile its NetworkPolicy at birth) and adds its address after (so the
// other nodes' policies know it).
func AddPodWith(ctx context.Context, st State, nodeName, namespace, name string, labels map[string]string, ports []PodPort) (PodRecord, error) {
	return addPod(ctx, st, nodeName, namespace, name, PodSpec{Labels: labels, Ports: ports}, nil)
}

// PodSpec is what the sim's manifest says of a pod besides its name.
type PodSpec struct {
	Labels      map[string]string
	Annotations map[string]string // e.g. k8s.aliyun.com/pod-ip-reservation
	Ports       []PodPort
}

// AddPodSpec is AddPodWith for a pod with annotations too.
func AddPodSpec(ctx context.Context, st State, nodeName, namespace, name string, spec PodSpec) (PodRecord, error) {
	return addPod(ctx, st, nodeName, namespace, name, spec, nil)
}

// addPod is AddPodWith; born, when set, is called with the pod's namespace
// once it exists, before the ADD.
func addPod(ctx context.Context, st State, nodeName, namespace, name string, spec PodSpec, born func(netns string)) (PodRecord, error) {
	node, err := st.FindNode(nodeName)
	if err != nil {
		return PodRecord{}, err
	}
	paths := st.Paths(node.Name)
	file := podFile(paths, namespace, name)
	if _, err := os.Stat(file); err == nil {
		return PodRecord{}, fmt.Errorf("%w: %s/%s on %s", ErrPodExists, namespace, name, node.Name)
	}
	rt, err := st.Runtime(node)
	if err != nil {
		return PodRecord{}, err
	}
	if err := writePodManifest(st.Dir, node.Name, namespace, name, spec, ""); err != nil {
		return PodRecord{}, fmt.Errorf("describe pod %s/%s: %w", namespace, name, err)
	}
	// As a kubelet's ADD follows the API server's pod, which the node's
	// informer has usually seen: wait (briefly) for the node's daemon to
	// compile the pod, so it is born with its policy rather than closed.
	if daemons(st.Dir) {
		waitPolicyRecord(ctx, filepath.Join(st.CNIBin(), "veni"), paths.Config, namespace, name, 2*time.Second)
	}
	nsName := st.PodNetNS(node, namespace, name)
	nsPath, err := pods.CreateNetNS(nsName)
	if err != nil {
		return PodRecord{}, err
	}
	if born != nil {
		born(nsPath)
	}
	pod := pods.Pod{
		Namespace:   namespace,
		Name:        name,
		UID:         sim.RandomID(8) + "-" + sim.RandomID(4),
		ContainerID: sim.RandomID(32),
		NetNS:       nsPath,
	}
	res, took, err := addRetrying(ctx, rt, pod)
	if err != nil {
		return PodRecord{}, errors.Join(err, pods.DeleteNetNS(nsName), os.Remove(podManifestFile(st.Dir, node.Name, namespace, name)))
	}
	ip, err := pods.PodIP(res)
	if err != nil {
		return PodRecord{}, err
	}
	if err := writePodManifest(st.Dir, node.Name, namespace, name, spec, ip); err != nil {
		return PodRecord{}, fmt.Errorf("describe pod %s/%s: %w", namespace, name, err)
	}
	rec := PodRecord{Node: node.Name, Pod: pod, IP: netip.MustParseAddr(ip), AddTook: took}
	if err := os.MkdirAll(paths.PodsDir, 0o755); err != nil {
		return rec, err
	}
	return rec, writeJSONFile(file, rec, 0o644)
}

// notKnownYet is how an ADD says its node's daemon has not yet read the
// pod (PodNetworkings exist, so the pod's network depends on its labels).
const notKnownYet = "cannot tell yet which network the pod asks for"

// addRetrying runs the ADD, and runs it again while it fails only because
// the node's daemon has not read the pod's manifest yet, as a kubelet
// retries a sandbox whose ADD said "try again later" (for 10 s at most).
func addRetrying(ctx context.Context, rt *pods.Runtime, pod pods.Pod) (*types100.Result, time.Duration, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, took, err := rt.Add(ctx, pod)
		var cniErr *types.Error
		if err == nil || !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater ||
			cniErr.Msg != notKnownYet || time.Now().After(deadline) {
			return res, took, err
		}
		select {
		case <-ctx.Done():
			return res, took, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// daemons reports whether the sim in dir runs node daemons.
func daemons(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return false
	}
	var spec Spec
	return json.Unmarshal(b, &spec) == nil && spec.Daemons
}

// waitPolicyRecord waits until the node's daemon has compiled the pod
// ("veni policy show" answers from its record), at most wait; it does not
// wait on a node whose daemon has never run its policy loop.
func waitPolicyRecord(ctx context.Context, veni, config, namespace, name string, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, veni, "policy", "show", namespace+"/"+name, "--config", config, "-o", "json")
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "CNI_") })
		out, _ := cmd.Output()
		var r struct {
			From  string          `json:"from"`
			State json.RawMessage `json:"state"`
		}
		if json.Unmarshal(out, &r) == nil && (r.From == "record" || r.From == "off" || len(r.State) == 0) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DelPod runs DEL, as containerd does on StopPodSandbox, then removes the
// namespace and the record. May return an error wrapping ErrNoNode or
// ErrNoPod.
func DelPod(ctx context.Context, st State, nodeName, namespace, name string) error {
	node, err := st.FindNode(nodeName)
	if err != nil {
		return err
	}
	file := podFile(st.Paths(node.Name), namespace, name)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s/%s on %s", ErrNoPod, namespace, name, node.Name)
	}
	if err != nil {
		return fmt.Errorf("pod %s/%s on %s: %w", namespace, name, node.Name, err)
	}
	var rec PodRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	rt, err := st.Runtime(node)
	if err != nil {
		return err
	}
	if _, err := rt.Del(ctx, rec.Pod); err != nil {
		return err
	}
	if err := pods.DeleteNetNS(filepath.Base(rec.Pod.NetNS)); err != nil {
		return err
	}
	if err := os.Remove(podManifestFile(st.Dir, node.Name, namespace, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(file)
}

// ListPods returns the sim's pods sorted by node and name. With enis it
// fills in each pod's ENI and vSwitch from "veni ipam list" on its node,
// run through bin ("" is this program).
func ListPods(ctx context.Context, st State, enis bool, bin string) ([]PodRecord, error) {
	var (
		v   veniBin
		err error
	)
	if enis {
		if v, err = binary(bin); err != nil {
			return nil, err
		}
	}
	var all []PodRecord
	for _, n := range st.Nodes {
		p := st.Paths(n.Name)
		onNode, err := readNodePods(p)
		if err != nil {
			return nil, err
		}
		if enis && len(onNode) > 0 {
			byIP, err := v.podENIs(ctx, p)
			if err != nil {
				return nil, fmt.Errorf("pods of %s: %w", n.Name, err)
			}
			for i := range onNode {
				e := byIP[onNode[i].IP.String()]
				onNode[i].ENI, onNode[i].VSwitch = e[0], e[1]
			}
		}
		all = append(all, onNode...)
	}
	slices.SortFunc(all, func(a, b PodRecord) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Pod.Name, b.Pod.Name))
	})
	return all, nil
}

// readNodePods reads the pod records of one node.
func readNodePods(p NodePaths) ([]PodRecord, error) {
	files, err := filepath.Glob(filepath.Join(p.PodsDir, "*.json"))
	if err != nil {
		return nil, err
	}
	out := make([]PodRecord, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rec PodRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// deleteNodePods removes the node's pod namespaces and records without
// running DEL: the sim is going away with everything it routed.
func deleteNodePods(p NodePaths) error {
	onNode, err := readNodePods(p)
	errs := []error{err}
	for _, rec := range onNode {
		if rec.Pod.NetNS != "" {
			errs = append(errs, pods.DeleteNetNS(filepath.Base(rec.Pod.NetNS)))
		}
	}
	return errors.Join(append(errs, os.RemoveAll(p.PodsDir))...)
}
