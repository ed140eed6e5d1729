package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/veni-cni/veni/kube"
	"sigs.k8s.io/yaml"
)

// LoadDir reads a folder of manifests (ReadDir) and builds a snapshot:
// the source of standalone nodes and of the simulated VPC. May return an
// error wrapping ErrManifest, or what New returns.
func LoadDir(dir string) (*Snapshot, error) {
	in, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return New(in)
}

// ReadDir reads every .yaml, .yml and .json file under dir, recursively
// and in lexical order, as ParseManifests does, and merges them. The same
// object twice is an error naming both places. May return an error
// wrapping ErrManifest.
func ReadDir(dir string) (Input, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return Input{}, fmt.Errorf("%w: read %s: %w", ErrManifest, dir, err)
	}
	var all Input
	where := make(map[string]string) // "Kind ns/name" → its location
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return Input{}, fmt.Errorf("%w: %w", ErrManifest, err)
		}
		in, locs, err := parse(f, data)
		if err != nil {
			return Input{}, err
		}
		for key, loc := range locs {
			if prev, dup := where[key]; dup {
				return Input{}, fmt.Errorf("%w %s: %s already defined at %s", ErrManifest, loc, key, prev)
			}
			where[key] = loc
		}
		all.Policies = append(all.Policies, in.Policies...)
		all.Pods = append(all.Pods, in.Pods...)
		all.Namespaces = append(all.Namespaces, in.Namespaces...)
		all.Nodes = append(all.Nodes, in.Nodes...)
		all.PodNetworkings = append(all.PodNetworkings, in.PodNetworkings...)
	}
	return all, nil
}

// ParseManifests reads one stream of YAML or JSON documents separated by
// "---" lines; name is how errors call it. Documents may be Lists
// (kubectl get -o yaml). It keeps:
//   - NetworkPolicy (networking.k8s.io/v1), validated as the API server
//     would, its spec read strictly so a misspelt field is an error;
//   - Pod (v1): labels, spec.nodeName, spec.hostNetwork, containers'
//     ports, addresses from status.podIPs, status.podIP or the
//     AnnotationPodIPs annotation;
//   - Namespace (v1): labels;
//   - Node (v1): InternalIP addresses.
//
// Other kinds are skipped, except other policy kinds (Calico's or
// Cilium's NetworkPolicy, AdminNetworkPolicy, ...), which are an error:
// silently ignoring a policy would leave open what it closes. Objects
// without a namespace are in "default". May return an error wrapping
// ErrManifest that names the document and its first line.
func ParseManifests(name string, data []byte) (Input, error) {
	in, _, err := parse(name, data)
	return in, err
}

// parse returns the objects and where each was ("Kind ns/name" → place).
func parse(name string, data []byte) (Input, map[string]string, error) {
	var in Input
	locs := make(map[string]string)
	docs, lines := splitDocuments(data)
	for i, doc := range docs {
		loc := fmt.Sprintf("%s document %d (line %d)", name, i+1, lines[i])
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return Input{}, nil, fmt.Errorf("%w %s: %w", ErrManifest, loc, err)
		}
		if err := addObject(&in, locs, loc, js); err != nil {
			return Input{}, nil, err
		}
	}
	return in, locs, nil
}

// splitDocuments cuts a YAML stream at lines that start with "---" and
// hold nothing else but a comment, as kubectl does. It returns the
// documents holding more than comments and blank lines, and the line
// each starts on.
func splitDocuments(data []byte) ([][]byte, []int) {
	var docs [][]byte
	var starts []int
	var cur bytes.Buffer
	start, n, content := 1, 0, false
	flush := func() {
		if content {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			starts = append(starts, start)
		}
		cur.Reset()
		content = false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		n++
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "---"); ok {
			if r := strings.TrimSpace(rest); r == "" || r[0] == '#' {
				flush()
				start = n + 1
				continue
			}
		}
		if t := strings.TrimSpace(line); t != "" && t[0] != '#' && !content {
			content = true
			start = n
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs, starts
}

type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   kube.ObjectMeta   `json:"metadata"`
	Items      []json.RawMessage `json:"items"`
	Spec       json.RawMessage   `json:"spec"`
}

func addObject(in *Input, locs map[string]string, loc string, js []byte) error {
	if len(bytes.TrimSpace(js)) == 0 || string(js) == "null" {
		return nil
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return fmt.Errorf("%w %s: %w", ErrManifest, loc, hintBool(err))
	}
	if h.Kind == "" {
		return fmt.Errorf("%w %s: no kind", ErrManifest, loc)
	}
	if strings.HasSuffix(h.Kind, "List") && h.Items != nil {
		for i, item := range h.Items {
			if err := addObject(in, locs, fmt.Sprintf("%s item %d", loc, i+1), item); err != nil {
				return err
			}
		}
		return nil
	}
	ns := h.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	key := h.Kind + " " + ns + "/" + h.Metadata.Name
	fail := func(err error) error {
		return fmt.Errorf("%w %s: %s %s/%s: %w", ErrManifest, loc, h.Kind, ns, h.Metadata.Name, hintBool(err))
	}
	if h.Metadata.Name == "" {
		return fail(errors.New("no metadata.name"))
	}
	decode := func(v any) error { return json.Unmarshal(js, v) }
	switch {
	case h.Kind == "NetworkPolicy" && h.APIVersion == "networking.k8s.io/v1":
		var np kube.NetworkPolicy
		if err := decode(&np); err != nil {
			return fail(err)
		}
		dec := json.NewDecoder(bytes.NewReader(h.Spec))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&np.Spec); err != nil && len(h.Spec) > 0 {
			return fail(fmt.Errorf("spec: %w", err))
		}
		np.Namespace = ns
		if _, err := parsePolicy(&np); err != nil {
			return fail(err)
		}
		in.Policies = append(in.Policies, np)
	case h.Kind == "Pod" && h.APIVersion == "v1":
		var p kube.Pod
		if err := decode(&p); err != nil {
			return fail(err)
		}
		pod, err := PodFromKube(&p)
		if err != nil {
			return fail(err)
		}
		in.Pods = append(in.Pods, pod)
	case h.Kind == "Namespace" && h.APIVersion == "v1":
		key = "Namespace " + h.Metadata.Name
		in.Namespaces = append(in.Namespaces, Namespace{Name: h.Metadata.Name, Labels: h.Metadata.Labels})
	case h.Kind == "Node" && h.APIVersion == "v1":
		key = "Node " + h.Metadata.Name
		var n kube.Node
		if err := decode(&n); err != nil {
			return fail(err)
		}
		node, err := NodeFromKube(&n)
		if err != nil {
			return fail(err)
		}
		in.Nodes = append(in.Nodes, node)
	case h.Kind == "PodNetworking" && h.APIVersion == kube.PodNetworkings.APIVersion():
		// Cluster-scoped: a namespace in its metadata means nothing.
		key = "PodNetworking " + h.Metadata.Name
		var pn kube.PodNetworking
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pn); err != nil {
			return fail(err)
		}
		pn.Namespace = ""
		in.PodNetworkings = append(in.PodNetworkings, pn)
	case h.Kind == "PodNetworking":
		return fail(fmt.Errorf("PodNetworking of %s: veni reads %s", h.APIVersion, kube.PodNetworkings.APIVersion()))
	case strings.Contains(h.Kind, "NetworkPolicy"):
		return fail(fmt.Errorf("%s of %s: not supported (veni enforces networking.k8s.io/v1 NetworkPolicy only; a policy ignored would leave open what it closes)", h.Kind, h.APIVersion))
	default:
		return nil
	}
	if prev, dup := locs[key]; dup {
		return fmt.Errorf("%w %s: %s already defined at %s", ErrManifest, loc, key, prev)
	}
	locs[key] = loc
	return nil
}

// hintBool explains the YAML 1.1 trap: a bare y, n, yes, no, on or off is
// a boolean, so a label value written so fails to decode as a string.
func hintBool(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Value == "bool" {
		return fmt.Errorf("%w (a bare y, n, yes, no, on, off, true or false is a YAML boolean: quote it)", err)
	}
	return err
}
