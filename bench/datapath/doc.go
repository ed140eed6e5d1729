// Command bench-datapath measures pod-to-pod datapaths for "make bench":
// TCP throughput (iperf3, 1 and 4 streams), request/response latency
// (sockperf ping-pong, p50/p99 of the full round trip) and new TCP
// connections per second (its own connrate client and server: connect,
// 64-byte request, 64-byte response, close).
//
// hack/bench-datapath.sh builds the topologies (a bare veth pair, one
// routed hop, veni's plain and eBPF datapaths on the simulated VPC, and
// the reference bridge plugin) and calls "measure" once per row and
// repetition; "table" then prints the medians, each as a ratio to the bare
// pair, and checks the targets. "firewall" prints the host
// firewall of scenario (b) in iptables-restore format.
//
// Besides the figures, each sample records the packets the node
// namespaces' IP stacks forwarded meanwhile (Ip ForwDatagrams) and, for
// eBPF rows, the change of the fast path's counters: they show whether a
// row's traffic really skipped the node stack, and why not where it did
// not.
//
// Every process it starts runs inside a network namespace the caller names
// by path, so benchmark traffic never leaves namespaces the script created.
// It does not create, change or delete namespaces, links, routes or
// firewall rules itself: the script owns the topology. It reads the fast
// path's pinned maps; only "policy apply" and "policy clear" write BPF
// state: the NetworkPolicy tables and hooks (ebpf/enforce) of the pods
// the fast path already carries on the nodes they are given. Processes it starts are killed, by their process
// group, before "measure" returns.
package main
