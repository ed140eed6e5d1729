#!/usr/bin/env bash
# Installs what veni's make targets need beyond Go, on Debian 12 with apt.
#
#   hack/deps.sh [GROUP ...]     (default: test)
#
#   test      make test: iproute2, nftables (tests build NAT rules), iperf3 and
#             sockperf (bench/datapath's measured hop), gcc and libc6-dev
#             (go test -race needs cgo), containerd and runc (e2e drives veni
#             through containerd's CRI; Debian's containerd ships ctr)
#   demo      make demo: iproute2, iperf3
#   bench     make bench: iproute2, iperf3, sockperf, iptables, jq, and
#             Debian's reference plugins (containernetworking-plugins)
#   generate  make generate / check-generated: clang-14, llvm-14, libbpf-dev
#   ci        all of the above, plus git and make
#
# It checks first (command -v, or the file a package provides) and is silent
# when nothing is missing: a machine that has everything makes no apt call.
# Not root, or no apt-get: it names what is missing and how to get it, and
# exits 0, so "make test" still runs the unprivileged tests.
set -euo pipefail

missing=()
# want_cmd CMD PKG: PKG is missing when CMD is not on PATH.
want_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
# want_file PATH PKG: PKG is missing when PATH does not exist.
want_file() { [[ -e $1 ]] || missing+=("$2"); }

group() {
	case $1 in
	test)
		want_cmd ip iproute2
		want_cmd nft nftables
		want_cmd iperf3 iperf3
		want_cmd sockperf sockperf
		want_cmd gcc gcc
		want_file /usr/include/stdlib.h libc6-dev
		want_cmd containerd containerd
		want_cmd ctr containerd
		want_cmd runc runc
		# The real Kubernetes control plane of the tests: Debian's etcd, and
		# kube-apiserver built by hack/k8s-bins.sh (make k8s-bins).
		want_cmd etcd etcd-server
		;;
	demo)
		want_cmd ip iproute2
		want_cmd iperf3 iperf3
		;;
	bench)
		want_cmd ip iproute2
		want_cmd iperf3 iperf3
		want_cmd sockperf sockperf
		want_cmd iptables-restore iptables
		want_cmd jq jq
		want_file /usr/lib/cni/bridge containernetworking-plugins
		;;
	generate)
		want_cmd clang-14 clang-14
		want_cmd llvm-strip-14 llvm-14
		want_file /usr/include/bpf/bpf_helpers.h libbpf-dev
		;;
	ci)
		group test
		group demo
		group bench
		group generate
		want_cmd git git
		want_cmd make make
		;;
	*)
		echo "deps.sh: unknown group $1 (test, demo, bench, generate, ci)" >&2
		exit 2
		;;
	esac
}

for g in "${@:-test}"; do
	group "$g"
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing ${missing[*]}; tests that need them fail or skip." >&2
	echo "deps.sh: as root on Debian: apt-get install -y ${missing[*]} (or run hack/deps.sh ${*:-test} as root)" >&2
	exit 0
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Another apt run (another worktree's make test) may hold the lock: wait.
apt_opts=(-qq -o DPkg::Lock::Timeout=300)
# apt's own chatter (debconf notes) is shown only when it fails.
if ! out=$(apt-get "${apt_opts[@]}" update 2>&1 && apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" 2>&1); then
	echo "$out" >&2
	echo "deps.sh: apt-get install ${missing[*]} failed" >&2
	exit 1
fi
