package cluster

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/veni-cni/veni/podnetwork"
	"github.com/veni-cni/veni/policy"
)

// ManifestsDir is the sim's NetworkPolicy source: one folder every node's
// veni.json names as policy_manifest_dir. "veni sim policy apply" copies
// policies into it, and every pod the sim adds is described there (labels,
// ports, node, address), so each node knows its peers.
const ManifestsDir = "manifests"

// PodPort is a named container port of a sim pod ("http:8080/TCP").
type PodPort struct {
	Name     string
	Port     int32
	Protocol string
}

// ParsePodPort reads "name:number/proto", "name:number" (TCP) or
// "number/proto".
func ParsePodPort(s string) (PodPort, error) {
	var p PodPort
	rest := s
	if name, after, ok := strings.Cut(s, ":"); ok {
		p.Name, rest = name, after
	}
	num, proto, ok := strings.Cut(rest, "/")
	if !ok {
		proto = "TCP"
	}
	var n int
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n < 1 || n > 65535 || fmt.Sprint(n) != num {
		return p, fmt.Errorf("port %q: want name:number/protocol, like http:8080/TCP", s)
	}
	pr, err := policy.ParseProtocol(strings.ToUpper(proto))
	if err != nil || !pr.HasPorts() {
		return p, fmt.Errorf("port %q: protocol %q is not TCP, UDP or SCTP", s, proto)
	}
	p.Port, p.Protocol = int32(n), pr.String()
	return p, nil
}

// ParseLabels reads "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) { return parseKV(s, "label") }

// ParseAnnotations parses "k=v,k2=v2" as ParseLabels does.
func ParseAnnotations(s string) (map[string]string, error) { return parseKV(s, "annotation") }

func parseKV(s, what string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want key=value (several separated by commas)", what, kv)
		}
		out[k] = v
	}
	return out, nil
}

// manifestsDir returns the sim's manifest folder, made if missing.
func manifestsDir(dir string) (string, error) {
	d, err := filepath.Abs(filepath.Join(dir, ManifestsDir))
	if err != nil {
		return "", err
	}
	return d, os.MkdirAll(d, 0o755)
}

func podManifestFile(dir, node, namespace, name string) string {
	return filepath.Join(dir, ManifestsDir, fmt.Sprintf("pod.%s.%s.%s.yaml", node, namespace, name))
}

// writePodManifest describes a sim pod to every node's policy source.
func writePodManifest(dir, node, namespace, name string, spec PodSpec, ip string) error {
	if _, err := manifestsDir(dir); err != nil {
		return err
	}
	var cports []map[string]any
	for _, p := range spec.Ports {
		cp := map[string]any{"containerPort": p.Port, "protocol": p.Protocol}
		if p.Name != "" {
			cp["name"] = p.Name
		}
		cports = append(cports, cp)
	}
	meta := map[string]any{"name": name, "namespace": namespace, "labels": spec.Labels}
	annotations := maps.Clone(spec.Annotations)
	if ip != "" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[policy.AnnotationPodIPs] = ip
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	obj := map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": meta,
		"spec": map[string]any{"nodeName": node, "containers": []any{map[string]any{"name": "c", "ports": cports}}},
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	return writeFileAtomic(podManifestFile(dir, node, namespace, name), b, 0o644)
}

// PolicyApply is "veni sim policy apply FILE": the file is checked as the
// nodes will read it, then copied into the sim's manifest folder (an
// earlier file of the same name is replaced).
func PolicyApply(dir, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	in, err := policy.ParseManifests(file, b)
	if err != nil {
		return "", err
	}
	if len(in.Policies)+len(in.Namespaces)+len(in.PodNetworkings) == 0 {
		return "", fmt.Errorf("%s holds no NetworkPolicy, PodNetworking or Namespace (pods are added with veni sim pod add)", file)
	}
	for i := range in.PodNetworkings {
		if err := podnetwork.Validate(&in.PodNetworkings[i]); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(in.Pods) > 0 {
		return "", fmt.Errorf("%s holds pods: add pods with veni sim pod add --labels --port", file)
	}
	if _, err := policy.New(in); err != nil {
		return "", err
	}
	d, err := manifestsDir(dir)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(d, "applied."+filepath.Base(file))
	if err := writeFileAtomic(dst, b, 0o644); err != nil {
		return "", err
	}
	var names []string
	for _, p := range in.Policies {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	for _, p := range in.PodNetworkings {
		names = append(names, "podnetworking/"+p.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", "), nil
}

// PolicyDelete is "veni sim policy delete FILE": what apply copied from a
// file of that name goes.
func PolicyDelete(dir, file string) error {
	dst := filepath.Join(dir, ManifestsDir, "applied."+filepath.Base(file))
	if err := os.Remove(dst); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no policy file %s was applied (veni sim policy apply)", filepath.Base(file))
	} else if err != nil {
		return err
	}
	return nil
}

// ApplyLabels returns labels changed by edits "k=v" (set) and "k-"
// (remove), as kubectl label reads them.
func ApplyLabels(labels map[string]string, edits []string) (map[string]string, error) {
	out := make(map[string]string, len(labels)+len(edits))
	for k, v := range labels {
		out[k] = v
	}
	for _, e := range edits {
		if k, ok := strings.CutSuffix(e, "-"); ok && !strings.Contains(e, "=") && k != "" {
			delete(out, k)
			continue
		}
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value, or key- to remove it", e)
		}
		out[k] = v
	}
	return out, nil
}

// PodLabel is "veni sim pod label": the pod's manifest gets the edited
// labels, which every node's policy source then reads (the daemons see the
// change as they see any manifest change).
func PodLabel(dir, node, namespace, name string, edits []string) (map[string]string, error) {
	st, err := Running(dir)
	if err != nil {
		return nil, err
	}
	n, err := st.FindNode(node)
	if err != nil {
		return nil, err
	}
	file := podManifestFile(dir, n.Name, namespace, name)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s/%s on %s", ErrNoPod, namespace, name, n.Name)
	}
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		return nil, fmt.Errorf("%s: no metadata", file)
	}
	old := map[string]string{}
	if l, ok := meta["labels"].(map[string]any); ok {
		for k, v := range l {
			old[k] = fmt.Sprint(v)
		}
	}
	labels, err := ApplyLabels(old, edits)
	if err != nil {
		return nil, err
	}
	meta["labels"] = labels
	if b, err = yaml.Marshal(obj); err != nil {
		return nil, err
	}
	return labels, writeFileAtomic(file, b, 0o644)
}

// NamespaceLabel is "veni sim namespace label": the Namespace's labels in
// the manifest folder, edited ("k=v", "k-"). A Namespace no command has
// labelled has only its kubernetes.io/metadata.name label.
func NamespaceLabel(dir, namespace string, edits []string) (map[string]string, error) {
	if _, err := Running(dir); err != nil {
		return nil, err
	}
	d, err := manifestsDir(dir)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(d, "namespace."+namespace+".yaml")
	var obj struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if b, err := os.ReadFile(file); err == nil {
		if err := yaml.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	labels, err := ApplyLabels(obj.Metadata.Labels, edits)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": namespace, "labels": labels},
	})
	if err != nil {
		return nil, err
	}
	return labels, writeFileAtomic(file, b, 0o644)
}
