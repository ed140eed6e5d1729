package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

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
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value (several separated by commas)", kv)
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
func writePodManifest(dir, node, namespace, name string, labels map[string]string, ports []PodPort, ip string) error {
	if _, err := manifestsDir(dir); err != nil {
		return err
	}
	var cports []map[string]any
	for _, p := range ports {
		cp := map[string]any{"containerPort": p.Port, "protocol": p.Protocol}
		if p.Name != "" {
			cp["name"] = p.Name
		}
		cports = append(cports, cp)
	}
	meta := map[string]any{"name": name, "namespace": namespace, "labels": labels}
	if ip != "" {
		meta["annotations"] = map[string]string{policy.AnnotationPodIPs: ip}
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
	if len(in.Policies)+len(in.Namespaces) == 0 {
		return "", fmt.Errorf("%s holds no NetworkPolicy or Namespace (pods are added with veni sim pod add)", file)
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
