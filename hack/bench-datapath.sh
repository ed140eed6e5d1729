#!/usr/bin/env bash
# Datapath benchmark of the "eBPF datapath" issue, the "datapath" part of
# make bench. In one run on this machine it measures, pod to pod:
#
#   1  bare       a veth pair between two namespaces (the floor)
#   1h hop        one routed hop, client -> router namespace -> server
#   2  plain      veni's plain datapath on the sim, same node and cross node
#   3  ebpf       veni's eBPF datapath on the sim, same node and cross node
#   2/3 plain6, ebpf6  the same two over IPv6: dual-stack sims (ip_stack
#                 dual), the server's IPv6; after the table, each family's
#                 eBPF / plain ratios side by side. sockperf 3.7 takes no
#                 IPv6: these rows' RR figures come from "bench-datapath
#                 pingpong" (one connection, 64-byte ping-pong, full round
#                 trip), so compare them with each other, not with sockperf's
#   4  bridge     Debian's bridge plugin (+ host-local), same node
#   3p ebpf-policy  veni's eBPF datapath with and without NetworkPolicy
#                 (BENCH_POLICIES policies of BENCH_POLICY_RULES rules, all
#                 selecting every pod, enforced by ebpf/enforce), same node
#                 and cross node: the policy is installed before each
#                 "+policy" measurement and removed after it, on the same
#                 pods, and the with/without ratios are printed after the
#                 table (hack/bench.sh policy runs only this row)
#
# TCP throughput (iperf3, 1 and 4 streams), request/response latency
# (sockperf TCP ping-pong, full round trip p50/p99) and new connections per
# second (bench/datapath connrate), in two scenarios: (a) a clean node and
# (b) a node carrying a large cluster's host firewall: 10,000 nat
# PREROUTING + 1,000 filter FORWARD rules with conntrack (iptables, IPv4:
# the IPv6 rows do not cross them), loaded in the namespaces that forward (the router, the sim nodes, the bridge node;
# never the root namespace, never pods, never the sim's VPC). A bare pair
# has no node, so its (b) row is the same pair measured again.
#
# Repetitions interleave the rows (rep 1 of every row, then rep 2, ...) so
# that load from other work on the machine spreads over all rows alike; the
# table shows medians and their spread.
#
# Usage: hack/bench-datapath.sh   (root; make build first, or VENI=path)
# Env:   BENCH_DURATION (4s per figure), BENCH_REPS (3),
#        BENCH_SCENARIOS ("a b"), BENCH_ROWS ("bare hop plain ebpf plain6
#        ebpf6 bridge"; also ebpf-policy), BENCH_POLICIES (100), BENCH_POLICY_RULES (10),
#        BENCH_RR_CPU (last CPU; -1 = unbound),
#        BENCH_OUT (directory kept with results.jsonl and table.txt)
#
# All traffic stays inside namespaces this script creates; it removes them,
# its sims, their pinned BPF objects and its processes on any exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
GO=${GO:-go}
VENI=${VENI:-$ROOT/bin/veni}
BENCH=$ROOT/bin/bench-datapath
DURATION=${BENCH_DURATION:-4s}
REPS=${BENCH_REPS:-3}
SCENARIOS=${BENCH_SCENARIOS:-a b} # (b) after (a): its firewall stays loaded
ROWS=${BENCH_ROWS:-bare hop plain ebpf plain6 ebpf6 bridge}
NAT_RULES=${BENCH_NAT_RULES:-10000}
FORWARD_RULES=${BENCH_FORWARD_RULES:-1000}
POLICIES=${BENCH_POLICIES:-100}
POLICY_RULES=${BENCH_POLICY_RULES:-10}
# sockperf and connrate, both ends, on one CPU: unbound, their latency is
# bimodal on a VM (waking the other vCPU costs ~70 µs, more than any
# datapath). -1 leaves them to the scheduler.
RR_CPU=${BENCH_RR_CPU:-$(($(nproc) - 1))}
PFX=vbd$$ # namespaces and sims of this run
OUT=${BENCH_OUT:-}
CNI_BIN=/usr/lib/cni

die() {
	echo "bench-datapath: $*" >&2
	exit 1
}
log() { printf '%s bench-datapath: %s\n' "$(date +%T)" "$*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (network namespaces)"
[[ -x $VENI ]] || die "$VENI missing (make build)"
for tool in iperf3 sockperf iptables-restore jq ip; do
	command -v "$tool" >/dev/null || die "$tool missing (apt-get install -y iperf3 sockperf iptables jq iproute2)"
done
[[ -x $CNI_BIN/bridge && -x $CNI_BIN/host-local ]] || die "$CNI_BIN/bridge missing (apt-get install -y containernetworking-plugins)"

WORK=$(mktemp -d /tmp/veni-bench-datapath.XXXXXX)
[[ -n $OUT ]] || OUT=$WORK
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

# --- cleanup ---------------------------------------------------------------

SIMS=()
cleanup() {
	local rc=$? sim ns id
	trap - EXIT INT TERM
	for sim in "${SIMS[@]}"; do
		# The CNI plugin pins the fast path per instance; sim down leaves it.
		for id in $(jq -r '.nodes[].instanceId' "$WORK/$sim/state.json" 2>/dev/null); do
			rm -rf "/sys/fs/bpf/veni/$id"
		done
		"$VENI" sim down --dir "$WORK/$sim" --name "$sim" >/dev/null 2>&1 || log "sim down $sim failed"
	done
	for ns in $(ip netns list | awk -v p="$PFX-" 'index($1, p) == 1 { print $1 }'); do
		ip netns delete "$ns" 2>/dev/null || log "cannot delete namespace $ns"
	done
	if [[ $OUT != "$WORK" ]]; then
		rm -rf "$WORK"
	else
		log "results kept in $WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- topologies --------------------------------------------------------------
# Each setup_* sets ROW_<key>="client-netns-path server-netns-path server-ip
# node-netns-paths(comma-separated, may be empty)" and lists the namespaces
# that forward in FWD_<row> for the firewall of scenario (b).

nsp() { echo "/run/netns/$1"; }
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}
mkns() {
	ip netns add "$1"
	in_ns "$1" ip link set lo up
}

declare -A ROW FWD LABEL PIN
POLICY_NODES=() # --node pin=netns of the ebpf sim's nodes, for "policy apply"

setup_bare() {
	local c=$PFX-bare-c s=$PFX-bare-s
	mkns "$c"
	mkns "$s"
	ip -n "$c" link add eth0 type veth peer name eth0 netns "$s"
	ip -n "$c" addr add 10.199.1.1/24 dev eth0
	ip -n "$s" addr add 10.199.1.2/24 dev eth0
	ip -n "$c" link set eth0 up
	ip -n "$s" link set eth0 up
	ROW[bare]="$(nsp "$c") $(nsp "$s") 10.199.1.2 -"
	FWD[bare]=""
	LABEL[bare]="1  bare veth pair"
}

setup_hop() {
	local c=$PFX-hop-c r=$PFX-hop-r s=$PFX-hop-s
	mkns "$c"
	mkns "$r"
	mkns "$s"
	ip -n "$c" link add eth0 type veth peer name to-c netns "$r"
	ip -n "$s" link add eth0 type veth peer name to-s netns "$r"
	ip -n "$c" addr add 10.199.2.2/24 dev eth0
	ip -n "$r" addr add 10.199.2.1/24 dev to-c
	ip -n "$r" addr add 10.199.3.1/24 dev to-s
	ip -n "$s" addr add 10.199.3.2/24 dev eth0
	ip -n "$c" link set eth0 up
	ip -n "$r" link set to-c up
	ip -n "$r" link set to-s up
	ip -n "$s" link set eth0 up
	ip -n "$c" route add default via 10.199.2.1
	ip -n "$s" route add default via 10.199.3.1
	in_ns "$r" sysctl -qw net.ipv4.ip_forward=1
	ROW[hop]="$(nsp "$c") $(nsp "$s") 10.199.3.2 $(nsp "$r")"
	FWD[hop]="$r"
	LABEL[hop]="1h one routed hop"
}

# bridge_add runs Debian's bridge plugin for one pod, inside the node
# namespace as a runtime would, and prints the pod's address.
bridge_add() {
	local node=$1 pod=$2
	mkns "$pod"
	CNI_COMMAND=ADD CNI_CONTAINERID="$pod" CNI_NETNS="$(nsp "$pod")" CNI_IFNAME=eth0 CNI_PATH=$CNI_BIN \
		in_ns "$node" "$CNI_BIN/bridge" <"$WORK/bridge.conf" >"$WORK/$pod.json"
	jq -r '.ips[0].address | split("/")[0]' "$WORK/$pod.json"
}

setup_bridge() {
	local node=$PFX-br-node p1 p2 ip2
	p1=$PFX-br-p1 p2=$PFX-br-p2
	mkns "$node"
	cat >"$WORK/bridge.conf" <<-EOF
		{"cniVersion": "1.0.0", "name": "$PFX-bridge", "type": "bridge", "bridge": "vbd0",
		 "isGateway": true, "ipMasq": false,
		 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.199.4.0/24"}]], "dataDir": "$WORK/host-local"}}
	EOF
	bridge_add "$node" "$p1" >/dev/null
	ip2=$(bridge_add "$node" "$p2")
	ROW[bridge]="$(nsp "$p1") $(nsp "$p2") $ip2 $(nsp "$node")"
	FWD[bridge]="$node"
	LABEL[bridge]="4  bridge plugin, same node"
}

# sim_pod adds a pod through veni sim (libcni, as containerd) and prints
# "netns-path ip".
sim_pod() {
	local sim=$1 node=$2 pod=$3 out
	out=$("$VENI" sim --dir "$WORK/$sim" --name "$sim" pod add "$node" "$pod")
	# default/p1 on node-1: 172.30.1.3 (netns /run/netns/..., ADD 21ms)
	sed -E 's/^.*: ([0-9.]+) \(netns ([^,]+),.*$/\2 \1/' <<<"$out"
}

# pod_ip6 prints the global IPv6 of the pod whose namespace is at path.
pod_ip6() {
	ip -n "${1#/run/netns/}" -6 -o addr show dev eth0 scope global | awk '{ split($4, a, "/"); print a[1]; exit }'
}

# setup_sim ROW builds a two-node sim whose nodes run datapath ROW (plain,
# ebpf; plain6 and ebpf6 are those datapaths on dual-stack nodes, measured
# over IPv6), with two pods on node-1 and one on node-2.
setup_sim() {
	local row=$1 dp=${1%6} sim=$PFX-$1 n1 n2 p1 p2 p3 ip2 ip3 num fam="" dual=()
	if [[ $row == *6 ]]; then
		fam=" IPv6,"
		dual=(--vswitches "vsw-sim-a=172.30.1.0/24+fd00:ac1e:1::/64,vsw-sim-b=172.30.2.0/24+fd00:ac1e:2::/64" --node-config ip_stack=dual)
	fi
	SIMS+=("$sim")
	"$VENI" sim --dir "$WORK/$sim" --name "$sim" up --nodes 2 --datapath "$dp" "${dual[@]}" >/dev/null
	n1=$(nsp "$sim-node-1")
	n2=$(nsp "$sim-node-2")
	read -r p1 _ <<<"$(sim_pod "$sim" node-1 p1)"
	read -r p2 ip2 <<<"$(sim_pod "$sim" node-1 p2)"
	read -r p3 ip3 <<<"$(sim_pod "$sim" node-2 p3)"
	if [[ -n $fam ]]; then
		ip2=$(pod_ip6 "$p2")
		ip3=$(pod_ip6 "$p3")
		[[ -n $ip2 && -n $ip3 ]] || die "row $row: the dual-stack pods have no IPv6"
	fi
	num=2
	[[ $dp == ebpf ]] && num=3
	ROW[$row-same]="$p1 $p2 $ip2 $n1"
	ROW[$row-cross]="$p1 $p3 $ip3 $n1,$n2"
	FWD[$row-same]="$sim-node-1"
	FWD[$row-cross]="$sim-node-1 $sim-node-2"
	LABEL[$row-same]="$num  veni $dp,$fam same node"
	LABEL[$row-cross]="$num  veni $dp,$fam cross node"
	if [[ $dp == ebpf ]]; then
		# The plugin pins each node's fast path under its instance id;
		# measure reads its counters to show which packets it carried.
		local pin1 pin2
		pin1=/sys/fs/bpf/veni/$(jq -r '.nodes[] | select(.name == "node-1") | .instanceId' "$WORK/$sim/state.json")
		pin2=/sys/fs/bpf/veni/$(jq -r '.nodes[] | select(.name == "node-2") | .instanceId' "$WORK/$sim/state.json")
		if [[ -d $pin1 && -d $pin2 ]]; then
			PIN[$row-same]=$pin1
			PIN[$row-cross]=$pin1,$pin2
			[[ -n $fam ]] || POLICY_NODES=(--node "$pin1=$n1" --node "$pin2=$n2")
		else
			log "WARNING: the ebpf sim pinned no fast path ($pin1): its pods run the plain datapath"
		fi
	fi
}

# --- scenario (b) ----------------------------------------------------------

# firewall_on loads the host firewall into every forwarding namespace of
# the rows measured. iptables-restore replaces the nat and filter tables.
firewall_on() {
	local ns
	"$BENCH" firewall --nat-rules "$NAT_RULES" --forward-rules "$FORWARD_RULES" >"$WORK/firewall.rules"
	for ns in $(printf '%s\n' "${FWD[@]}" | tr ' ' '\n' | sort -u); do
		[[ -n $ns ]] || continue
		in_ns "$ns" iptables-restore <"$WORK/firewall.rules"
		log "firewall in $ns: $(in_ns "$ns" iptables-save | grep -c '^-A') rules"
	done
}

# --- policy ratios -----------------------------------------------------------

# policy_ratios prints, per scenario and row, the median TCP throughput
# (1 and 4 streams), TCP_RR p50 and new connections/s with policy as a
# ratio to the same row without, from the samples of this run (p50 > 1:
# slower; Gbit/s and conn/s < 1: less).
policy_ratios() {
	echo
	echo "NetworkPolicy on the eBPF datapath: $POLICIES policies / $((POLICIES * POLICY_RULES)) rules selecting the pods, vs none (medians, this run)"
	jq -rs '
		def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
		def fmt: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
		group_by(.scenario)[] as $sc
		| ($sc | map(select(.row | endswith("+policy"))) | map(.row | rtrimstr("+policy")) | unique)[] as $base
		| ($sc | map(select(.row == $base))) as $off
		| ($sc | map(select(.row == $base + "+policy"))) as $on
		| ($off | map(.rrP50us) | median) as $p0 | ($on | map(.rrP50us) | median) as $p1
		| ($off | map(.connPerSec) | median) as $c0 | ($on | map(.connPerSec) | median) as $c1
		| ($off | map(.tcp1Gbps) | median) as $t0 | ($on | map(.tcp1Gbps) | median) as $t1
		| ($off | map(.tcp4Gbps) | median) as $f0 | ($on | map(.tcp4Gbps) | median) as $f1
		| "scenario \($sc[0].scenario)  \($base):  TCP x1 \($t0 | fmt) -> \($t1 | fmt) Gbit/s [x\(if $t0 and $t1 then $t1 / $t0 else null end | fmt)]   TCP x4 \($f0 | fmt) -> \($f1 | fmt) [x\(if $f0 and $f1 then $f1 / $f0 else null end | fmt)]   TCP_RR p50 \($p0 | fmt) -> \($p1 | fmt) us [x\(if $p0 and $p1 then $p1 / $p0 else null end | fmt)]   conn/s \($c0 | fmt) -> \($c1 | fmt) [x\(if $c0 and $c1 then $c1 / $c0 else null end | fmt)]   (\($off | length)+\($on | length) runs)"
	' "$RESULTS"
}

# --- run -------------------------------------------------------------------

log "building $BENCH"
CGO_ENABLED=0 "$GO" build -o "$BENCH" ./bench/datapath

KEYS=()
FAILED=0
for r in $ROWS; do
	log "setting up $r"
	case $r in
	bare | hop | bridge)
		"setup_$r"
		KEYS+=("$r")
		;;
	plain | ebpf | plain6 | ebpf6)
		[[ -n ${ROW[$r-same]:-} ]] || setup_sim "$r"
		KEYS+=("$r-same" "$r-cross")
		;;
	ebpf-policy)
		# The same sim and pods as row ebpf, measured without and with
		# policy; "+policy" keys install it around their measurement.
		[[ -n ${ROW[ebpf-same]:-} ]] || setup_sim ebpf
		((${#POLICY_NODES[@]} > 0)) || die "row ebpf-policy: the ebpf sim has no fast path"
		for k in ebpf-same ebpf-cross; do
			ROW[$k+policy]=${ROW[$k]}
			PIN[$k+policy]=${PIN[$k]}
			FWD[$k+policy]=${FWD[$k]}
			LABEL[$k+policy]="3p ${LABEL[$k]#3  }, $POLICIES policies/$((POLICIES * POLICY_RULES)) rules"
			[[ " ${KEYS[*]} " == *" $k "* ]] || KEYS+=("$k")
			KEYS+=("$k+policy")
		done
		;;
	*) die "unknown row $r (known: bare hop plain ebpf plain6 ebpf6 ebpf-policy bridge)" ;;
	esac
done

for scenario in $SCENARIOS; do
	case $scenario in
	a) [[ -z ${FIREWALL_LOADED:-} ]] || die "scenario a must run before b" ;;
	b) firewall_on && FIREWALL_LOADED=1 ;;
	*) die "unknown scenario $scenario (known: a b)" ;;
	esac
	for rep in $(seq 1 "$REPS"); do
		for key in "${KEYS[@]}"; do
			read -r client server ip nodes <<<"${ROW[$key]}"
			node_flag=()
			[[ $nodes == - ]] || node_flag=(--node-netns "$nodes")
			[[ -z ${PIN[$key]:-} ]] || node_flag+=(--fastpath-pin "${PIN[$key]}")
			if [[ $key == *+policy ]]; then
				"$BENCH" policy apply "${POLICY_NODES[@]}" --policies "$POLICIES" --rules "$POLICY_RULES" >&2 ||
					die "installing the policy failed"
			fi
			# A failed run is reported and skipped: the table shows how
			# many runs each row has, and the exit status says one failed.
			if ! "$BENCH" measure --scenario "$scenario" --row "$key" --label "${LABEL[$key]}" --rep "$rep" \
				--client-netns "$client" --server-netns "$server" --server-ip "$ip" \
				"${node_flag[@]}" --duration "$DURATION" --rr-cpu "$RR_CPU" --out "$RESULTS"; then
				log "FAILED: $scenario/$key run $rep"
				FAILED=$((FAILED + 1))
			fi
			if [[ $key == *+policy ]]; then
				"$BENCH" policy clear "${POLICY_NODES[@]}" || die "removing the policy failed"
			fi
		done
	done
done

{
	echo "veni datapath benchmark, $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "each figure ran $DURATION; sockperf and connrate bound to CPU $RR_CPU (-1: unbound); scenario (b): $NAT_RULES nat PREROUTING + $FORWARD_RULES filter FORWARD rules, conntrack on, in: $(printf '%s\n' "${FWD[@]}" | tr ' ' '\n' | sed "s/^$PFX-//" | sort -u | xargs)"
	"$BENCH" table "$RESULTS"
	if [[ " ${KEYS[*]} " == *"+policy "* ]]; then
		policy_ratios
	fi
} | tee "$OUT/table.txt"
if ((FAILED > 0)); then
	die "$FAILED measurement(s) failed; see the log above"
fi
