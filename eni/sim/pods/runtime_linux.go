package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Node is where pods are added: a network namespace with a CNI
// configuration directory, like a kubelet host.
type Node struct {
	Name     string
	NetNS    string   // path of the node's network namespace ("" is the caller's)
	ConfDir  string   // directory holding the node's .conflist (NETCONFPATH)
	CNIPath  []string // directories holding plugins (CNI_PATH)
	CacheDir string   // libcni's result cache; "" means ConfDir/../cni-cache
}

// Pod is one sandbox's network attachment.
type Pod struct {
	Namespace   string
	Name        string
	UID         string
	ContainerID string
	NetNS       string // path of the pod's network namespace
	IfName      string // "eth0" when empty
}

func (p Pod) ifName() string {
	if p.IfName == "" {
		return "eth0"
	}
	return p.IfName
}

// Runtime adds and deletes pods on one node through libcni.
type Runtime struct {
	node Node
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

// NewRuntime loads the node's network configuration list (the first
// .conflist in ConfDir by name, as kubelet runtimes pick it).
func NewRuntime(n Node) (*Runtime, error) {
	files, err := libcni.ConfFiles(n.ConfDir, []string{".conflist"})
	if err != nil {
		return nil, fmt.Errorf("node %s: read %s: %w", n.Name, n.ConfDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("node %s: no .conflist in %s", n.Name, n.ConfDir)
	}
	slices.Sort(files)
	list, err := libcni.NetworkConfFromFile(files[0])
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	cache := n.CacheDir
	if cache == "" {
		cache = filepath.Join(filepath.Dir(n.ConfDir), "cni-cache")
	}
	return &Runtime{node: n, list: list, cni: libcni.NewCNIConfigWithCacheDir(n.CNIPath, cache, nil)}, nil
}

func (r *Runtime) runtimeConf(p Pod) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       p.NetNS,
		IfName:      p.ifName(),
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID},
			{"K8S_POD_UID", p.UID},
		},
	}
}

// inNode runs fn with the calling thread in the node's namespace, so the
// plugins libcni executes start there, as on a real node.
func (r *Runtime) inNode(fn func() error) error {
	if r.node.NetNS == "" {
		return fn()
	}
	return ns.WithNetNSPath(r.node.NetNS, func(ns.NetNS) error { return fn() })
}

// AtVersion returns a runtime on the same node whose network list is
// declared at spec version v alone (its cniVersions dropped), as a runtime
// whose libcni knows no newer spec sends it: the plugins answer at v.
func (r *Runtime) AtVersion(v string) (*Runtime, error) {
	conf := make(map[string]any)
	if err := json.Unmarshal(r.list.Bytes, &conf); err != nil {
		return nil, fmt.Errorf("node %s: network list: %w", r.node.Name, err)
	}
	conf["cniVersion"] = v
	delete(conf, "cniVersions")
	raw, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("node %s: network list at %s: %w", r.node.Name, v, err)
	}
	out := *r
	out.list = list
	return &out, nil
}

// AddRaw runs CNI ADD for the pod and returns the result as libcni
// parsed it, at the list's spec version (a *types040.Result at 0.4.0).
func (r *Runtime) AddRaw(ctx context.Context, p Pod) (types.Result, time.Duration, error) {
	var (
		res  types.Result
		took time.Duration
	)
	err := r.inNode(func() error {
		start := time.Now()
		var err error
		res, err = r.cni.AddNetworkList(ctx, r.list, r.runtimeConf(p))
		took = time.Since(start)
		return err
	})
	return res, took, err
}

// Add runs CNI ADD for the pod and returns the result and how long the
// plugin chain took.
func (r *Runtime) Add(ctx context.Context, p Pod) (*types100.Result, time.Duration, error) {
	res, took, err := r.AddRaw(ctx, p)
	if err != nil {
		// The code says what a kubelet would do (11: retry later).
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			return nil, took, fmt.Errorf("add %s/%s on %s: %w (CNI error code %d)", p.Namespace, p.Name, r.node.Name, err, cniErr.Code)
		}
		return nil, took, fmt.Errorf("add %s/%s on %s: %w", p.Namespace, p.Name, r.node.Name, err)
	}
	out, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, took, fmt.Errorf("add %s/%s: result: %w", p.Namespace, p.Name, err)
	}
	return out, took, nil
}

// Del runs CNI DEL for the pod; netns may be "" (containerd's second DEL).
func (r *Runtime) Del(ctx context.Context, p Pod) (time.Duration, error) {
	var took time.Duration
	err := r.inNode(func() error {
		start := time.Now()
		err := r.cni.DelNetworkList(ctx, r.list, r.runtimeConf(p))
		took = time.Since(start)
		return err
	})
	if err != nil {
		return took, fmt.Errorf("del %s/%s on %s: %w", p.Namespace, p.Name, r.node.Name, err)
	}
	return took, nil
}

// Check runs CNI CHECK for the pod.
func (r *Runtime) Check(ctx context.Context, p Pod) error {
	return r.inNode(func() error { return r.cni.CheckNetworkList(ctx, r.list, r.runtimeConf(p)) })
}

// Status runs CNI STATUS.
func (r *Runtime) Status(ctx context.Context) error {
	return r.inNode(func() error { return r.cni.GetStatusNetworkList(ctx, r.list) })
}

// GC runs CNI GC with the given pods as the valid attachments.
func (r *Runtime) GC(ctx context.Context, valid []Pod) error {
	args := &libcni.GCArgs{}
	for _, p := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: p.ContainerID, IfName: p.ifName()})
	}
	return r.inNode(func() error { return r.cni.GCNetworkList(ctx, r.list, args) })
}

// PodIP returns the pod's address in an ADD result: its first IPv4, or
// for a pod with no IPv4 (an IPv6-only node) its first IPv6.
func PodIP(res *types100.Result) (string, error) {
	for _, ip := range res.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.String(), nil
		}
	}
	for _, ip := range res.IPs {
		if ip.Address.IP.To16() != nil {
			return ip.Address.IP.String(), nil
		}
	}
	return "", errors.New("result has no address")
}
