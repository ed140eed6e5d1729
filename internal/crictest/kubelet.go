package crictest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod is what kubelet hands the runtime about a pod: its Pod object's
// namespace, name and uid (containerd passes them to CNI as
// K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID), and which attempt at
// its sandbox this is.
type Pod struct {
	Namespace string
	Name      string
	UID       string
	Attempt   uint32
}

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// Sandbox is a running pod sandbox as the runtime reports it.
type Sandbox struct {
	ID    string
	Pod   Pod
	State runtimeapi.PodSandboxState
	IP    netip.Addr // PodSandboxStatus's network ip: the CNI result's first address
	NetNS string     // path of the sandbox's network namespace; "" once containerd closed it
}

// Kubelet plays kubelet's part for pod sandboxes: it turns a pod into the
// CRI calls kubelet makes when the pod is bound to its node (RunPod) and
// when it is deleted (StopPod, then RemovePod). It is safe for concurrent
// use, as kubelet's pod workers use the runtime.
type Kubelet struct {
	CRI *Client
	// CgroupParent is the cgroup every sandbox goes under (kubelet's
	// kubepods/pod<uid>); "" is the runtime's default.
	CgroupParent string
}

// Label keys kubelet sets on every sandbox.
const (
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
)

// SandboxConfig is the config kubelet would send for p: its metadata and
// labels, a hostname, the pod network (not the host's).
func (k *Kubelet) SandboxConfig(p Pod) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID, Attempt: p.Attempt},
		Hostname: p.Name,
		Labels:   map[string]string{LabelPodName: p.Name, LabelPodNamespace: p.Namespace, LabelPodUID: p.UID},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: k.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD},
			},
		},
	}
}

// RunPod runs p's sandbox and returns its status. A failed RunPodSandbox
// returns the runtime's error (for a network failure it carries the CNI
// plugin's message) and no sandbox; a sandbox that ran but whose status
// cannot be read is returned with its id, so the caller can remove it.
func (k *Kubelet) RunPod(ctx context.Context, p Pod) (Sandbox, error) {
	id, err := k.CRI.RunPodSandbox(ctx, k.SandboxConfig(p))
	if err != nil {
		return Sandbox{}, fmt.Errorf("run sandbox of pod %s: %w", p, err)
	}
	sb, err := k.Sandbox(ctx, id)
	if err != nil {
		return Sandbox{ID: id, Pod: p}, err
	}
	return sb, nil
}

// verboseInfo is the part of containerd's verbose sandbox info read here.
type verboseInfo struct {
	RuntimeSpec struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

// Sandbox returns the sandbox with id as PodSandboxStatus reports it, its
// network namespace's path taken from the runtime's verbose info.
func (k *Kubelet) Sandbox(ctx context.Context, id string) (Sandbox, error) {
	resp, err := k.CRI.PodSandboxStatus(ctx, id, true)
	if err != nil {
		return Sandbox{ID: id}, err
	}
	st := resp.GetStatus()
	m := st.GetMetadata()
	sb := Sandbox{ID: id, State: st.GetState(), Pod: Pod{Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUid(), Attempt: m.GetAttempt()}}
	if ip := st.GetNetwork().GetIp(); ip != "" {
		if sb.IP, err = netip.ParseAddr(ip); err != nil {
			return sb, fmt.Errorf("sandbox %s: network ip %q: %w", id, ip, err)
		}
	}
	if raw, ok := resp.GetInfo()["info"]; ok {
		var info verboseInfo
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return sb, fmt.Errorf("sandbox %s: verbose info: %w", id, err)
		}
		for _, n := range info.RuntimeSpec.Linux.Namespaces {
			if n.Type == "network" {
				sb.NetNS = n.Path
			}
		}
	}
	return sb, nil
}

// StopPod stops the sandbox: its processes end and its network is torn
// down (DEL with the netns).
func (k *Kubelet) StopPod(ctx context.Context, id string) error {
	return k.CRI.StopPodSandbox(ctx, id)
}

// RemovePod removes a stopped sandbox (DEL again, without the netns).
func (k *Kubelet) RemovePod(ctx context.Context, id string) error {
	return k.CRI.RemovePodSandbox(ctx, id)
}

// DeletePod stops and removes the sandbox, as kubelet does when the pod
// object is deleted.
func (k *Kubelet) DeletePod(ctx context.Context, id string) error {
	if err := k.StopPod(ctx, id); err != nil {
		return err
	}
	return k.RemovePod(ctx, id)
}

// Sandboxes lists every sandbox the runtime holds, ready or not.
func (k *Kubelet) Sandboxes(ctx context.Context) ([]*runtimeapi.PodSandbox, error) {
	return k.CRI.ListPodSandbox(ctx, nil)
}

// RemoveAll stops and removes every sandbox of the runtime, going on past
// failures, and returns them joined.
func (k *Kubelet) RemoveAll(ctx context.Context) error {
	items, err := k.Sandboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range items {
		if err := k.DeletePod(ctx, sb.GetId()); err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s of pod %s/%s: %w", sb.GetId(), sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
		}
	}
	return errors.Join(errs...)
}
