// Command cni is the CNI benchmark behind "make bench" (hack/bench.sh cni):
// it measures ADD and DEL latency (p50/p99) and pods per second at
// parallelism 1 and 8 for veni and for Debian's reference plugins
// (ptp + host-local, bridge + host-local), all driven through libcni in one
// run, and prints a table with ratios to ptp + host-local. It also compares
// the start cost of the plugin processes with GODEBUG=inittrace=1, and
// measures exclusive ENI mode on sims of their own (-exclusive-rounds): ADD
// and DEL p50/p99 of a pod whose ENI is warm (taken from the ENI pool) and
// cold (created and attached in the ADD), and the OpenAPI calls per ADD.
//
// Every system under test gets its own "node" network namespace: veni a
// node of a simulated VPC ("veni sim up", daemon running, pool pre-warmed),
// the reference plugins a plain namespace this program creates. Pod
// namespaces are created before, and removed after, the timed region, which
// is exactly one AddNetworkList or DelNetworkList call: what kubelet's
// runtime waits for. Systems are interleaved batch by batch so that drift
// of a shared machine hits them alike.
//
// It needs root. All traffic it causes stays inside namespaces it creates,
// and it removes them, and the sim, on any exit it can see (errors,
// SIGINT, SIGTERM); hack/bench.sh also cleans up after a kill -9.
package main
