package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/kube"
	"github.com/veni-cni/veni/policy"
)

// policyOptions say which nodes' pods the policy section selects.
type policyOptions struct {
	// Nodes are "pin-dir=netns-path" pairs: each node's fast path pins and
	// its network namespace (where the pods' host veths are).
	Nodes    []string
	Policies int    // how many policies, each selecting every pod
	Rules    int    // rules per policy, half ingress, half egress
	PodHook  string // the fast path's pod hook ("tc" or "tcx")
}

func newPolicyCommand() *cobra.Command {
	o := policyOptions{}
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Install or remove NetworkPolicy enforcement on every fast-path pod of the given nodes",
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Compile --policies policies of --rules rules selecting every pod, install and hook them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, entries, err := applyPolicy(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy: %d endpoints selected by %d policies of %d rules, %d table entries\n", n, o.Policies, o.Rules, entries)
			return nil
		},
	}
	clear := &cobra.Command{
		Use:   "clear",
		Short: "Remove the policy of every pod of the given nodes",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return clearPolicy(o) },
	}
	for _, c := range []*cobra.Command{apply, clear} {
		c.Flags().StringSliceVar(&o.Nodes, "node", nil, "pin-dir=netns-path of a node (repeat)")
		c.Flags().StringVar(&o.PodHook, "pod-hook", fastpath.PodHookTC, "the fast path's pod hook: tc or tcx")
	}
	apply.Flags().IntVar(&o.Policies, "policies", 100, "policies, each selecting every pod")
	apply.Flags().IntVar(&o.Rules, "rules", 10, "rules per policy (half ingress, half egress)")
	cmd.AddCommand(apply, clear)
	return cmd
}

type benchNode struct {
	pinDir, netns string
	pods          []fastpath.Endpoint
}

// benchNodes reads each node's fast-path endpoints: the pods to select.
func benchNodes(specs []string) ([]benchNode, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: no --node", errUsage)
	}
	var out []benchNode
	for _, s := range specs {
		pin, nsPath, ok := strings.Cut(s, "=")
		if !ok || pin == "" || nsPath == "" {
			return nil, fmt.Errorf("%w: --node %q: want pin-dir=netns-path", errUsage, s)
		}
		dp, err := fastpath.Open(fastpath.Options{PinDir: pin})
		if err != nil {
			return nil, fmt.Errorf("fast path %s: %w", pin, err)
		}
		eps, err := dp.Endpoints()
		err = errors.Join(err, dp.Close())
		if err != nil {
			return nil, fmt.Errorf("fast path endpoints %s: %w", pin, err)
		}
		out = append(out, benchNode{pinDir: pin, netns: nsPath, pods: eps})
	}
	return out, nil
}

// policyWorld is the section's cluster: every pod of the nodes in
// namespace "bench", and n policies there of r rules each, every one
// selecting every pod (a pod's table holds all their rules). Rules mix
// what real policies hold: ipBlocks with excepts, port ranges, two
// protocols on one port, podSelector peers; the first policy allows the
// pods to talk to each other on any port, so the benchmark's traffic
// passes, decided by a full table.
func policyWorld(nodes []benchNode, n, r int) policy.Input {
	in := policy.Input{Namespaces: []policy.Namespace{{Name: "bench"}}}
	for i, node := range nodes {
		for _, ep := range node.pods {
			in.Pods = append(in.Pods, policy.Pod{Namespace: "bench", Name: "pod-" + ep.IP.String(),
				Node: fmt.Sprintf("node-%d", i+1), IPs: []netip.Addr{ep.IP}, Labels: map[string]string{"app": "bench"}})
		}
	}
	port := func(p int32) *kube.IntOrString { v := kube.FromInt(p); return &v }
	udp := "UDP"
	allPods := &kube.LabelSelector{}
	for j := range n {
		np := kube.NetworkPolicy{ObjectMeta: kube.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("np%d", j)}}
		np.Spec.PolicyTypes = []string{"Ingress", "Egress"}
		a, b := byte(j%250), byte((j/250)%250)
		end := int32(8100 + j)
		for k := range r {
			half := k / 2
			var peer kube.NetworkPolicyPeer
			var ports []kube.NetworkPolicyPort
			switch half % 5 {
			case 0:
				peer.IPBlock = &kube.IPBlock{CIDR: fmt.Sprintf("10.%d.%d.0/24", 100+int(b), a), Except: []string{fmt.Sprintf("10.%d.%d.%d/28", 100+int(b), a, 16*(half%16))}}
				ports = []kube.NetworkPolicyPort{{Port: port(443)}}
			case 1:
				peer.IPBlock = &kube.IPBlock{CIDR: fmt.Sprintf("172.16.%d.%d/30", a, 4*(half%64))}
				ports = []kube.NetworkPolicyPort{{Port: port(9000 + int32(half))}, {Port: port(9000 + int32(half)), Protocol: &udp}}
			case 2:
				peer.IPBlock = &kube.IPBlock{CIDR: fmt.Sprintf("192.168.%d.%d/32", a, half)}
				ports = []kube.NetworkPolicyPort{{Port: port(8000), EndPort: &end}}
			case 3:
				peer.PodSelector = allPods
				ports = []kube.NetworkPolicyPort{{Port: port(3000 + int32(j))}}
			case 4:
				peer.IPBlock = &kube.IPBlock{CIDR: fmt.Sprintf("100.64.%d.%d/32", a, half)}
				ports = []kube.NetworkPolicyPort{{Port: port(5432)}, {Port: port(6379)}}
			}
			if j == 0 && k < 2 {
				peer = kube.NetworkPolicyPeer{PodSelector: allPods}
				ports = nil // the benchmark's own traffic, any port
			}
			if k%2 == 0 {
				np.Spec.Ingress = append(np.Spec.Ingress, kube.NetworkPolicyIngressRule{From: []kube.NetworkPolicyPeer{peer}, Ports: ports})
			} else {
				np.Spec.Egress = append(np.Spec.Egress, kube.NetworkPolicyEgressRule{To: []kube.NetworkPolicyPeer{peer}, Ports: ports})
			}
		}
		in.Policies = append(in.Policies, np)
	}
	return in
}

// applyPolicy compiles the world and installs every pod's ruleset on its
// node, then hooks the policy programs to its host veth. It returns the
// endpoints selected and the total of their table entries.
func applyPolicy(o policyOptions) (int, int, error) {
	if o.Policies < 1 || o.Rules < 2 {
		return 0, 0, fmt.Errorf("%w: --policies %d --rules %d: want at least 1 and 2", errUsage, o.Policies, o.Rules)
	}
	nodes, err := benchNodes(o.Nodes)
	if err != nil {
		return 0, 0, err
	}
	snap, err := policy.New(policyWorld(nodes, o.Policies, o.Rules))
	if err != nil {
		return 0, 0, fmt.Errorf("policy world: %w", err)
	}
	var selected, total int
	for _, node := range nodes {
		e, err := enforce.Open(enforce.Options{PinDir: node.pinDir, PodHook: o.PodHook})
		if err != nil {
			return 0, 0, fmt.Errorf("enforcer %s: %w", node.pinDir, err)
		}
		err = ns.WithNetNSPath(node.netns, func(ns.NetNS) error {
			for _, ep := range node.pods {
				rs, err := snap.Compile(policy.PodRef{Namespace: "bench", Name: "pod-" + ep.IP.String()})
				if err != nil {
					return err
				}
				key := enforce.EndpointKey{Ifindex: ep.HostIfindex, IP: ep.IP}
				if err := e.SetEndpoint(key, rs); err != nil {
					return err
				}
				if err := e.AttachEndpoint(key); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			var eps []enforce.Endpoint
			eps, err = e.Endpoints()
			for _, ep := range eps {
				if ep.Selected {
					selected++
					total += ep.Entries
				}
			}
		}
		if err := errors.Join(err, e.Close()); err != nil {
			return 0, 0, fmt.Errorf("install policy on %s: %w", node.pinDir, err)
		}
	}
	return selected, total, nil
}

// clearPolicy removes every pod's policy and hooks.
func clearPolicy(o policyOptions) error {
	nodes, err := benchNodes(o.Nodes)
	if err != nil {
		return err
	}
	for _, node := range nodes {
		e, err := enforce.Open(enforce.Options{PinDir: node.pinDir, PodHook: o.PodHook})
		if err != nil {
			return fmt.Errorf("enforcer %s: %w", node.pinDir, err)
		}
		err = ns.WithNetNSPath(node.netns, func(ns.NetNS) error {
			eps, err := e.Endpoints()
			if err != nil {
				return err
			}
			var errs []error
			for _, ep := range eps {
				errs = append(errs, e.RemoveEndpoint(ep.EndpointKey))
			}
			return errors.Join(errs...)
		})
		if err := errors.Join(err, e.Close()); err != nil {
			return fmt.Errorf("remove policy on %s: %w", node.pinDir, err)
		}
	}
	return nil
}
