#!/usr/bin/env bash
# Benchmarks behind "make bench". Each section is one function; pick them by
# name, default all:
#
#   hack/bench.sh [all|cni|SECTION ...] [-- extra flags for a single section]
#
#   cni       veni vs Debian's ptp/bridge + host-local: CNI ADD/DEL latency
#             and pods/s through libcni, and plugin process start (bench/cni)
#   datapath  pod-to-pod throughput, latency and connection rate
#             (hack/bench-datapath.sh, tuned by its BENCH_* variables)
#   store     a CNI DEL's read of the store while 8 ADDs write: readers
#             sharing the file vs the old exclusive lock (go test -bench)
#   daemon    the node daemon's memory with 100 pods and 1,000
#             NetworkPolicies in its caches vs an empty cluster (real
#             kube-apiserver, go test -bench)
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

run_section() {
	case "$1" in
	cni) shift; bench_cni "$@" ;;
	datapath) shift; bench_datapath "$@" ;;
	store) shift; bench_store "$@" ;;
	daemon) shift; bench_daemon "$@" ;;
	*) die "unknown section $1 (known: cni, datapath, store, daemon)" ;;
	esac
}

main() {
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
	if [ $# -eq 0 ] || [ "$1" = all ]; then
		run_section cni
		run_section datapath
		run_section store
		run_section daemon
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
