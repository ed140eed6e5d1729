#!/usr/bin/env bash
# Builds the real Kubernetes control plane veni's tests run against:
# kube-apiserver and kubectl from the Go module proxy, and etcd 3.6 unless a
# usable etcd is already installed. Binaries are built ONCE per version into a
# cache outside the repo and reused:
#
#   hack/k8s-bins.sh            build if missing; print the directory holding
#                               kube-apiserver, kubectl and etcd
#
#   VENI_K8S_CACHE   cache root           (default /var/cache/veni-k8s)
#   VENI_K8S_VERSION Kubernetes version   (default v1.37.2)
#   VENI_ETCD_VERSION etcd built when none is usable (default v3.6.16)
#   VENI_ETCD        use this etcd binary; "build" builds VENI_ETCD_VERSION
#                    even when an etcd is installed (default: the etcd on
#                    PATH, e.g. Debian's etcd-server, else build)
#
# Recipe: ../shared/reference/local-kubernetes.md (a wrapper module with one
# replace line per staging module; `go install` of kube-apiserver fails).
# Cold: ~6.5 min and ~2.4 GB RSS. When the binaries exist this prints only the
# directory, so tests can call it cheaply. A partial build never leaves a
# binary in place: each is built to a temporary name and renamed.
set -euo pipefail

GO=${GO:-go}
K8S_VERSION=${VENI_K8S_VERSION:-v1.37.2}
ETCD_VERSION=${VENI_ETCD_VERSION:-v3.6.16}
CACHE=${VENI_K8S_CACHE:-/var/cache/veni-k8s}
OUT=$CACHE/$K8S_VERSION
BIN=$OUT/bin

die() { echo "k8s-bins: $*" >&2; exit 1; }
log() { echo "k8s-bins: $*" >&2; }

# quiet runs a command with its output in $OUT/build.log, shown on failure.
quiet() {
	if ! "$@" >"$OUT/build.log" 2>&1; then
		cat "$OUT/build.log" >&2
		die "failed: $*"
	fi
}

# etcd_usable says whether $1 runs and answers --version.
etcd_usable() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

have_all() {
	[ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubectl" ] && etcd_usable "$BIN/etcd"
}

if have_all; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$BIN" || die "cannot create $BIN (set VENI_K8S_CACHE to a writable directory)"

# One builder at a time per cache: parallel test packages may all call us.
exec 9>"$OUT/.lock"
flock 9
if have_all; then
	echo "$BIN"
	exit 0
fi

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
staging=v0.${K8S_VERSION#v1.}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"

build_k8s() {
	local mod=$OUT/kbuild
	mkdir -p "$mod"
	cd "$mod"
	# Redo the module unless a previous run got as far as requiring it.
	if ! grep -Eq "k8s.io/kubernetes $K8S_VERSION( |$)" go.mod 2>/dev/null; then
		log "building kube-apiserver and kubectl $K8S_VERSION (cold: several minutes)"
		printf 'module example.com/kbuild\n\ngo 1.26.0\n' >go.mod
		local gomod
		gomod=$(GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
			sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
		[ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION from the module proxy"
		{
			echo
			echo "replace ("
			sed -n '/^replace (/,/^)/p' "$gomod" | grep '=>' | awk -v v="$staging" '{print "\t"$1" => "$1" "v}'
			echo ")"
		} >>go.mod
		quiet "$GO" get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
	fi
	local cmd
	for cmd in kube-apiserver kubectl; do
		[ -x "$BIN/$cmd" ] && continue
		log "go build $cmd"
		CGO_ENABLED=0 "$GO" build -trimpath -ldflags="$ldflags" -o "$BIN/.$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
		mv -f "$BIN/.$cmd.tmp" "$BIN/$cmd"
	done
}

build_etcd() {
	local cand
	if [ "${VENI_ETCD:-}" != build ]; then
		for cand in "${VENI_ETCD:-}" "$(command -v etcd || true)"; do
			if [ -n "$cand" ] && etcd_usable "$cand"; then
				ln -sfn "$cand" "$BIN/etcd"
				return
			fi
		done
		[ -z "${VENI_ETCD:-}" ] || die "VENI_ETCD=$VENI_ETCD does not run"
	fi
	log "building etcd $ETCD_VERSION"
	local mod=$CACHE/etcd-$ETCD_VERSION
	mkdir -p "$mod"
	cd "$mod"
	if ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" go.mod 2>/dev/null; then
		printf 'module example.com/etcdbuild\n\ngo 1.26.0\n' >go.mod
		quiet "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
	fi
	CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/.etcd.tmp" go.etcd.io/etcd/server/v3
	mv -f "$BIN/.etcd.tmp" "$BIN/etcd"
}

# A subshell each: they cd.
(build_etcd)
(build_k8s)

have_all || die "build finished but binaries are missing under $BIN"
log "ready in $BIN"
echo "$BIN"
