#!/usr/bin/env bash
# veni's main job end to end on the simulated VPC: pods on two nodes get
# real VPC addresses from ENIs that veni creates and attaches through the
# Alibaba SDK, added through libcni as containerd would; every pod reaches
# every other over TCP, on the same node and across the VPC; a default-deny
# and an allow NetworkPolicy change who reaches whom. Then, under
# the hood: an ENI created by hand through the SDK shows up in a node with
# its MAC, and the VPC's anti-spoofing drops what the cloud never assigned.
# Then a dual-stack pair: two pods on two nodes, IPv4 and IPv6, talking
# over IPv6 across the VPC. Last, a pod with its own security group: a
# PodNetworking gives it a trunk member ENI in a group that admits only
# tcp/8080, while a shared pod on the same node keeps the node's group.
# Run as root from the repo root
# after "make build" ("make demo" does both). Tears the sim down on exit,
# failure included. Needs iproute2 and ping or iperf3.
set -euo pipefail
cd "$(dirname "$0")/.."

VENI=${VENI:-bin/veni}
if [[ $EUID -ne 0 ]]; then
	echo "demo.sh: run as root (the sim creates network namespaces)" >&2
	exit 1
fi
if [[ ! -x $VENI ]]; then
	echo "demo.sh: $VENI not found: run make build (or make demo)" >&2
	exit 1
fi
VENI=$(realpath "$VENI")
SIM_DIR=${VENI_SIM_DIR:-/run/veni/sim}
IPERF_PID=$(mktemp -u /tmp/veni-demo-iperf.XXXXXX)
# The dual-stack part runs a second sim of its own, the trunk part a third.
DUAL=(--name veni-dual --dir "$SIM_DIR-dual")
TRUNK=(--name veni-trunk --dir "$SIM_DIR-trunk")

bold=$'\e[1m' off=$'\e[0m'
[[ -t 1 ]] || bold='' off=''
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
# show prints a command (as the user would type it), then runs it.
show() {
	if [[ $1 == on ]]; then
		local cmd="${*:3}"
		printf '$ veni sim exec %s -- %s\n' "$2" "${cmd//$VENI/veni}"
	else
		printf '$ %s\n' "${*/#$VENI/veni}"
	fi
	"$@"
}
# on runs a command inside a node's network namespace.
on() {
	local node=$1
	shift
	"$VENI" sim exec "$node" -- "$@"
}

# stop_iperf ends the iperf3 server in node-2, which would otherwise keep
# that node's namespace alive after the sim is gone.
stop_iperf() {
	if [[ -s $IPERF_PID ]]; then
		kill "$(cat "$IPERF_PID")" 2>/dev/null || true
	fi
	rm -f "$IPERF_PID"
}

cleanup() {
	local rc=$?
	stop_iperf
	if [[ $rc -ne 0 ]]; then
		echo "demo failed (exit $rc); tearing the sim down" >&2
		[[ -f $SIM_DIR/sim.log ]] && tail -n 20 "$SIM_DIR/sim.log" >&2
	fi
	"$VENI" sim down >/dev/null 2>&1 || true
	"$VENI" sim down "${DUAL[@]}" >/dev/null 2>&1 || true
	"$VENI" sim down "${TRUNK[@]}" >/dev/null 2>&1 || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "clean slate"
show "$VENI" sim down

step "start a simulated VPC with two nodes (each with a veni daemon, conflist and store)"
show "$VENI" sim up --nodes 2

step "add three pods on each node through libcni (the veni CNI plugin runs inside the node)"
for node in node-1 node-2; do
	for i in 1 2 3; do
		show "$VENI" sim pod add "$node" "web-${node#node-}$i"
	done
done

step "every pod has a VPC address from an ENI of its node"
show "$VENI" sim pod list

step "TCP between every pair of pods, same node and across the VPC"
show "$VENI" sim connectivity

step "ADD latency (libcni AddNetworkList, as the runtime waits for it; a pod that finds its node's pool still empty waits for an ENI to be created and attached: the cold path)"
"$VENI" sim pod list | awk 'NR > 1 { print $NF }' | sed 's/ms$//' | sort -n | awk '
	{ v[NR] = $1 } END { printf "%d ADDs: min %sms, median %sms, max %sms\n", NR, v[1], v[int((NR + 1) / 2)], v[NR] }'

step "node-1: the ENI veni attached, and its address store"
show on node-1 ip -br link
ENVSH=$("$VENI" sim env node-1)
eval "$ENVSH"
show on node-1 "$VENI" ipam list --config "$VENI_CONFIG"
show on node-1 "$VENI" ipam verify --config "$VENI_CONFIG"

step "delete the pods (CNI DEL)"
for node in node-1 node-2; do
	for i in 1 2 3; do
		show "$VENI" sim pod del "$node" "web-${node#node-}$i"
	done
done

step "NetworkPolicy: four labelled pods in namespace shop; no policy yet, every pair connects"
show "$VENI" sim pod add node-1 web -n shop --labels app=web --port probe:7777/TCP
show "$VENI" sim pod add node-1 client -n shop --labels app=client
show "$VENI" sim pod add node-2 far -n shop --labels app=client
show "$VENI" sim pod add node-2 stranger -n shop --labels app=other
show "$VENI" sim connectivity --timeout 300ms

POLICIES=$(mktemp -d /tmp/veni-demo-policy.XXXXXX)
cat >"$POLICIES/deny.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
YAML
cat >"$POLICIES/allow.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: probe}]
YAML
# enforced POLICY NODE:POD... waits until the nodes' daemons have compiled
# POLICY into those pods (veni policy show names it), at most 10 s.
enforced() {
	local policy=$1 node pod i
	shift
	for i in $(seq 50); do
		local all=1
		for node in "$@"; do
			pod=${node#*:} node=${node%%:*}
			on "$node" "$VENI" policy show "shop/$pod" --config "$SIM_DIR/nodes/$node/veni.json" 2>/dev/null | grep -q "$policy" || all=0
		done
		[[ $all == 1 ]] && return 0
		sleep 0.2
	done
	echo "demo: $policy not enforced after 10 s" >&2
	return 1
}

step "a default deny for shop's ingress: every pod of shop is isolated, nothing reaches them"
show "$VENI" sim policy apply "$POLICIES/deny.yaml"
enforced shop/default-deny node-1:web node-2:stranger
show "$VENI" sim connectivity --timeout 300ms || true

step "allow app=client into app=web on its named port \"probe\": both clients, on either node, reach web; the stranger does not"
show "$VENI" sim policy apply "$POLICIES/allow.yaml"
enforced shop/web-allow node-1:web
show "$VENI" sim connectivity --timeout 300ms || true

step "what node-1 enforces for shop/web, and the verdict for one flow"
show on node-1 "$VENI" policy show shop/web --config "$SIM_DIR/nodes/node-1/veni.json"
show on node-1 "$VENI" policy trace --from shop/stranger --to shop/web --port 7777/TCP --config "$SIM_DIR/nodes/node-1/veni.json" || true
printf '$ veni sim exec node-1 -- veni status   (its policy lines: each pod'"'"'s isolation, flows allowed and packets dropped)\n'
on node-1 "$VENI" status --config "$SIM_DIR/nodes/node-1/veni.json" | sed -n '/^policy/,/^pool/p' | sed '$d'

step "delete the policies and the pods"
show "$VENI" sim policy delete "$POLICIES/allow.yaml"
show "$VENI" sim policy delete "$POLICIES/deny.yaml"
rm -rf "$POLICIES"
for p in node-1:web node-1:client node-2:far node-2:stranger; do
	show "$VENI" sim pod del "${p%%:*}" "${p#*:}" -n shop
done

step "under the hood: the cloud API and the VPC fabric by hand"

CREDS=$SIM_DIR/credentials.json
EP=(--endpoint 100.100.0.10 --scheme http --region cn-hangzhou --credentials "$CREDS")

step "node-1 creates an ENI through the Alibaba SDK (from inside the node, like the daemon)"
printf '$ veni sim exec node-1 -- veni eni create --vswitch vsw-sim-a --security-group sg-sim-default %s\n' "${EP[*]}"
ENI=$(on node-1 "$VENI" eni create --vswitch vsw-sim-a --security-group sg-sim-default --tag veni.io/demo=true "${EP[@]}")
echo "$ENI"

step "attach it to node-1 and wait until it is InUse"
printf '$ veni sim exec node-1 -- veni eni attach %s ...\n' "$ENI"
MAC=$(on node-1 "$VENI" eni attach "$ENI" "${EP[@]}")
echo "MAC $MAC"

step "assign two secondary IPs"
printf '$ veni sim exec node-1 -- veni eni assign %s --count 2 ...\n' "$ENI"
mapfile -t IPS < <(on node-1 "$VENI" eni assign "$ENI" --count 2 "${EP[@]}")
printf '%s\n' "${IPS[@]}"
if [[ ${#IPS[@]} -ne 2 ]]; then
	echo "expected 2 addresses, got ${#IPS[@]}" >&2
	exit 1
fi

step "inside node-1: the hot-plugged NIC with the ENI's MAC (down and unaddressed, like a real one)"
show on node-1 ip -br link
show on node-1 ip -br addr
IF=$(on node-1 ip -o link | awk -v mac="$MAC" 'index($0, "link/ether " mac) { sub(/:$/, "", $2); sub(/@.*/, "", $2); print $2 }')
if [[ -z $IF ]]; then
	echo "no link with MAC $MAC in node-1" >&2
	exit 1
fi
echo "the ENI is $IF in node-1"

step "configure $IF as the node's software would: the addresses, and source routing through the ENI"
GW=$(on node-1 ip -4 route show default | awk '{ print $3; exit }')
SPOOF=172.30.1.240 # on the NIC but not assigned to the ENI in the cloud
for ip in "${IPS[@]}" "$SPOOF"; do
	show on node-1 ip addr add "$ip/32" dev "$IF"
	show on node-1 ip rule add from "$ip" table 101
done
show on node-1 ip link set "$IF" up
show on node-1 ip route add default via "$GW" dev "$IF" onlink table 101
show on node-1 ip -br addr show dev "$IF"

NODE2=$(on node-2 ip -4 -o addr show dev eth0 | awk '{ split($4, a, "/"); print a[1]; exit }')

# reach tries src -> node-2; exit status 0 when the packets got through.
reach() {
	local src=$1
	if command -v ping >/dev/null; then
		show on node-1 ping -c 2 -W 1 -I "$src" "$NODE2"
	else
		show on node-1 iperf3 -c "$NODE2" -B "$src" -t 1 --connect-timeout 2000
	fi
}
if ! command -v ping >/dev/null; then
	on node-2 iperf3 -s -D -B "$NODE2" -I "$IPERF_PID"
	sleep 0.5
fi

step "from the assigned ${IPS[0]} across the VPC to node-2 ($NODE2)"
reach "${IPS[0]}"

step "from $SPOOF, which the cloud never assigned: the VPC drops it (anti-spoofing)"
if reach "$SPOOF"; then
	echo "unassigned source got through: anti-spoofing is broken" >&2
	exit 1
fi
echo "dropped, as on the real VPC"

step "the cloud's view"
show "$VENI" sim status

step "detach and delete the ENI: the NIC leaves node-1"
printf '$ veni sim exec node-1 -- veni eni detach %s ...\n' "$ENI"
on node-1 "$VENI" eni detach "$ENI" "${EP[@]}"
printf '$ veni sim exec node-1 -- veni eni delete %s ...\n' "$ENI"
on node-1 "$VENI" eni delete "$ENI" "${EP[@]}"
show on node-1 ip -br link

step "tear down"
stop_iperf
show "$VENI" sim down

step "dual stack: a second sim whose vSwitches have an IPv6 /64, nodes with ip_stack dual"
show "$VENI" sim up --nodes 2 "${DUAL[@]}" \
	--vswitches vsw-sim-a=172.30.1.0/24+fd00:ac1e:1::/64,vsw-sim-b=172.30.2.0/24+fd00:ac1e:2::/64 \
	--node-config ip_stack=dual
show "$VENI" sim pod add node-1 v6a "${DUAL[@]}"
show "$VENI" sim pod add node-2 v6b "${DUAL[@]}"
PA=/run/netns/veni-dual-node-1-pod-default-v6a PB=/run/netns/veni-dual-node-2-pod-default-v6b
step "each pod has an IPv4 and an IPv6 of its node's ENI, and a default route for each family"
for ns in "$PA" "$PB"; do
	show nsenter --net="$ns" ip -br addr show dev eth0
	show nsenter --net="$ns" ip -6 route
done
B6=$(nsenter --net="$PB" ip -6 -o addr show dev eth0 scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
step "IPv6 across the VPC, from v6a on node-1 to v6b ($B6) on node-2"
if command -v ping >/dev/null; then
	show nsenter --net="$PA" ping -6 -c 2 -W 1 "$B6"
else
	nsenter --net="$PB" iperf3 -s -D -1 -B "$B6"
	sleep 0.5
	show nsenter --net="$PA" iperf3 -6 -c "$B6" -t 1 --connect-timeout 2000
fi
show "$VENI" sim pod del node-1 v6a "${DUAL[@]}"
show "$VENI" sim pod del node-2 v6b "${DUAL[@]}"
show "$VENI" sim down "${DUAL[@]}"

step "a pod with its own security group: trunk nodes (enable_eni_trunking), a group \"web\" that admits tcp/8080 only"
show "$VENI" sim up --nodes 2 "${TRUNK[@]}" --instance-type ecs.g7.large --node-config enable_eni_trunking=true
printf '$ veni sim sg create --name web\n'
WEB=$("$VENI" sim sg create --name web "${TRUNK[@]}")
echo "$WEB"
show "$VENI" sim sg authorize "$WEB" --port 8080/8080 --group sg-sim-default "${TRUNK[@]}"
PN=$(mktemp -d /tmp/veni-demo-pn.XXXXXX)
cat >"$PN/web.yaml" <<YAML
apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata: {name: web}
spec:
  selector:
    podSelector: {matchLabels: {app: web}}
  securityGroupIDs: [$WEB]
  eniOptions: {eniType: Trunk}
YAML
cat "$PN/web.yaml"
show "$VENI" sim policy apply "$PN/web.yaml" "${TRUNK[@]}"
rm -rf "$PN"

step "web (app=web) gets a member ENI of its own in group web, tagged with its VLAN ID on node-1's trunk; plain, on the same node, shares the trunk in the node's group"
show "$VENI" sim pod add node-1 web --labels app=web "${TRUNK[@]}"
show "$VENI" sim pod add node-1 plain "${TRUNK[@]}"
show "$VENI" sim pod add node-2 client "${TRUNK[@]}"
show "$VENI" sim exec node-1 "${TRUNK[@]}" -- "$VENI" ipam list --config "$SIM_DIR-trunk/nodes/node-1/veni.json" | sed -n '1,/^$/p'

step "from client on node-2: web answers on 8080 only (its own group), plain on both (the node's); web's own replies pass (groups are stateful), but client's group does not admit web's new connections"
# client_row prints "PORT TARGET RESULT" for client's row of each tcp
# matrix of "veni sim connectivity".
client_row() {
	awk '/^# tcp\//{ port = substr($2, 5) } /^FROM/{ for (i = 4; i <= NF; i++) col[i - 2] = $i }
		/^client@/{ for (i = 2; i <= NF; i++) print port, col[i], $i }'
}
WANT=$'8080 plain ok\n8080 web ok\n8081 plain ok\n8081 web FAIL'
# A member's first packets may race its set-up; the groups do not.
for i in $(seq 20); do
	OUT=$("$VENI" sim connectivity --port 8080,8081 --timeout 500ms "${TRUNK[@]}" 2>&1 || true)
	GOT=$(client_row <<<"$OUT" | grep -v ' -$' | sort)
	[[ $GOT == "$WANT" ]] && break
	sleep 0.5
done
printf '$ veni sim connectivity --port 8080,8081\n%s\n' "$OUT"
if [[ $GOT != "$WANT" ]]; then
	printf 'demo: from client, want\n%s\ngot\n%s\n' "$WANT" "$GOT" >&2
	exit 1
fi
show "$VENI" sim pod del node-1 web "${TRUNK[@]}"
show "$VENI" sim pod del node-1 plain "${TRUNK[@]}"
show "$VENI" sim pod del node-2 client "${TRUNK[@]}"
show "$VENI" sim down "${TRUNK[@]}"
