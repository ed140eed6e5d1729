#!/usr/bin/env bash
# Benchmarks behind "make bench". Each section is one function; pick them by
# name, default all:
#
#   hack/bench.sh [all|cni|SECTION ...] [-- extra flags for a single section]
#
#   cni       veni vs Debian's ptp/bridge + host-local: CNI ADD/DEL latency
#             and pods/s through libcni, and plugin process start (bench/cni)
#   datapath  pod-to-pod throughput, latency and connection rate, IPv4
#             and IPv6 (dual-stack sims) side by side, eBPF / plain ratios
#             per family (hack/bench-datapath.sh, tuned by its BENCH_*
#             variables)
#   policy    NetworkPolicy on the eBPF datapath: TCP throughput, TCP_RR
#             p50 and new connections/s with 100 policies / 1,000 rules selecting the
#             pods vs none, same node and cross node, as ratios in one run
#             (hack/bench-datapath.sh row ebpf-policy; BENCH_POLICIES,
#             BENCH_POLICY_RULES, BENCH_POLICY_SCENARIOS="a"); then the
#             peer lag: p50/p99 from a pod's add on one node to another
#             node's policy letting it in, n=25 (e2e TestSim_PolicyPeerLag)
#   store     a CNI DEL's read of the store while 8 ADDs write: readers
#             sharing the file vs the old exclusive lock (go test -bench)
#   daemon    the node daemon's memory with 100 pods and 1,000
#             NetworkPolicies in its caches vs an empty cluster (real
#             kube-apiserver, go test -bench)
#   calls     cloud calls per 100 pods once an ENI is attached, IP mode vs
#             prefix mode (enable_ip_prefix), IP mode with ip_stack dual
#             and ipv6 (IPv6 addresses), and prefix mode with ip_stack dual
#             and ipv6 (one IPv6 /80 per ENI), with Terway's default pool
#             (max_pool_size 5) and a burst-sized one (64); goal: prefix
#             mode <= 2 (e2e TestCNI_Prefix_CloudCallsPer100Pods; rows in
#             bin/bench-calls.json)
#   scale     100 and 200 nodes booting at once with an empty pool, 10 pods
#             each added in parallel under the sim's account API quotas:
#             time to ready, cloud calls by action (boot, per 100 pods,
#             idle), throttled share, daemon RSS, the sim server's CPU and
#             memory (e2e TestScale_ColdStart; BENCH_SCALE_NODES="100 200",
#             BENCH_SCALE_IDLE=120s)
#
# Needs root and bin/veni (make build). Everything runs inside network
# namespaces the sections create; each section removes them on any exit,
# kill -9 of its driver included.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
GO=${GO:-go}
VENI=${VENI:-$ROOT/bin/veni}

die() { echo "bench: $*" >&2; exit 1; }

# bench_cni runs the CNI driver. The trap removes what a killed driver may
# have left: its sim (by name) and its reference namespaces (by prefix).
bench_cni() {
	[ -x "$VENI" ] || die "$VENI missing (make build)"
	local name="vbn$$" dir
	dir=$(mktemp -d /tmp/veni-bench-cni.XXXXXX)
	# shellcheck disable=SC2064 # expand now: the names are fixed for this run
	trap "cleanup_cni '$name' '$dir'" EXIT
	CGO_ENABLED=0 "$GO" build -o "$ROOT/bin/bench-cni" ./bench/cni
	"$ROOT/bin/bench-cni" -veni "$VENI" -name "$name" -dir "$dir" "$@"
	cleanup_cni "$name" "$dir"
	trap - EXIT
}

# The driver names veni's sim $name in $dir/sim, and one more per extra
# datapath X: $name-X in $dir/sim-X. --name is always given: without it
# "sim down" would pick the default sim, someone else's.
cleanup_cni() {
	local name=$1 dir=$2 ns d
	if [ -e "$dir/sim" ] || ip netns list | grep -q "^$name-node-"; then
		"$VENI" sim down --dir "$dir/sim" --name "$name" >/dev/null 2>&1 || true
	fi
	for d in "$dir"/sim-*; do
		[ -d "$d" ] || continue
		"$VENI" sim down --dir "$d" --name "$name-${d##*/sim-}" >/dev/null 2>&1 || true
	done
	for ns in $(ip netns list | awk -v p="${name}r-" 'index($1, p) == 1 {print $1}'); do
		ip netns delete "$ns" || true
	done
	rm -rf "$dir"
}

# bench_datapath runs the datapath section's own script, which cleans up
# after itself.
bench_datapath() {
	VENI=$VENI "$ROOT/hack/bench-datapath.sh" "$@"
}

# bench_policy runs the datapath script's policy row alone: the eBPF sim's
# pods measured without and with policy, interleaved, and their ratios.
bench_policy() {
	VENI=$VENI BENCH_ROWS=ebpf-policy BENCH_SCENARIOS=${BENCH_POLICY_SCENARIOS:-a} \
		"$ROOT/hack/bench-datapath.sh" "$@"
	echo "== policy: peer lag (pod added on node-1 -> node-2's policy lets it in)"
	VENI_BIN=$VENI "$GO" test -count=1 -timeout 10m -run '^TestSim_PolicyPeerLag$' -v ./e2e/ |
		grep -E 'POLICY_PEER_LAG|policy peer lag|FAIL|^ok' || true
}

# bench_store runs the store's side-by-side read-under-writers benchmark.
bench_store() {
	"$GO" test -run '^$' -bench 'View_UnderWriters' -benchtime 2000x -count "${BENCH_STORE_COUNT:-3}" ./store/ "$@"
}

# bench_daemon measures the daemon's memory against a real kube-apiserver
# (hack/k8s-bins.sh builds it once).
bench_daemon() {
	[ -x "$VENI" ] || die "$VENI missing (make build)"
	GO=$GO "$ROOT/hack/k8s-bins.sh" >/dev/null
	VENI_BIN=$VENI "$GO" test -run '^$' -bench 'Kube_DaemonRSS' -benchtime 1x ./e2e/ "$@"
}

# bench_calls counts the sim's API calls while 100 pods are added to one
# node, in each pool mode. The e2e test downs its sims itself.
bench_calls() {
	[ -x "$VENI" ] || die "$VENI missing (make build)"
	VENI_BIN=$VENI VENI_BENCH_CALLS_REPORT="$ROOT/bin/bench-calls.json" VENI_BENCH_CALLS_IPV6=1 \
		"$GO" test -count=1 -timeout 30m -run '^TestCNI_Prefix_CloudCallsPer100Pods$' -v ./e2e/ "$@"
}

# bench_scale runs the scale e2e at each size. The trap downs the run's sim
# by its name and directory if the test is killed before its own cleanup.
bench_scale() {
	[ -x "$VENI" ] || die "$VENI missing (make build)"
	local n name dir
	for n in ${BENCH_SCALE_NODES:-100 200}; do
		name="vbs$$-$n"
		dir=$(mktemp -d /tmp/veni-bench-scale.XXXXXX)
		# shellcheck disable=SC2064 # expand now: the names are fixed for this run
		trap "cleanup_scale '$name' '$dir'" EXIT
		echo "== scale: $n nodes x ${BENCH_SCALE_PODS:-10} pods"
		VENI_BIN=$VENI VENI_SCALE_NODES=$n VENI_SCALE_PODS=${BENCH_SCALE_PODS:-10} \
			VENI_SCALE_IDLE=${BENCH_SCALE_IDLE:-120s} VENI_SCALE_PARALLEL=${BENCH_SCALE_PARALLEL:-16} \
			VENI_SCALE_REPORT="$dir/report.json" VENI_SCALE_SIM_NAME="$name" VENI_SCALE_SIM_DIR="$dir/sim" \
			"$GO" test -count=1 -timeout 90m -run '^TestScale_ColdStart$' -v ./e2e/ "$@"
		[ -f "$dir/report.json" ] && cp "$dir/report.json" "$ROOT/bin/bench-scale-$n.json"
		cleanup_scale "$name" "$dir"
		trap - EXIT
	done
}

cleanup_scale() {
	local name=$1 dir=$2
	"$VENI" sim down --dir "$dir/sim" --name "$name" >/dev/null 2>&1 || true
	rm -rf "$dir"
}

run_section() {
	case "$1" in
	cni) shift; bench_cni "$@" ;;
	datapath) shift; bench_datapath "$@" ;;
	policy) shift; bench_policy "$@" ;;
	store) shift; bench_store "$@" ;;
	daemon) shift; bench_daemon "$@" ;;
	calls) shift; bench_calls "$@" ;;
	scale) shift; bench_scale "$@" ;;
	*) die "unknown section $1 (known: cni, datapath, policy, store, daemon, calls, scale)" ;;
	esac
}

main() {
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
	if [ $# -eq 0 ] || [ "$1" = all ]; then
		run_section cni
		run_section datapath
		run_section policy
		run_section store
		run_section daemon
		run_section calls
		run_section scale
		return
	fi
	# One section may take the driver's own flags after "--".
	if [ $# -ge 2 ] && [ "$2" = -- ]; then
		run_section "$1" "${@:3}"
		return
	fi
	for s in "$@"; do run_section "$s"; done
}

main "$@"
