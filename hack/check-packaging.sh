#!/usr/bin/env bash
# Checks packaging/systemd/veni.service with systemd-analyze verify, the way
# systemd would load it on a node after "veni install": inside a scratch root
# holding this system's unit files, the unit and the binary at the path its
# ExecStart names. Any message fails the check (verify exits 0 on unknown
# keys). Without systemd-analyze it says so and passes.
#
# Usage: hack/check-packaging.sh BIN   (BIN: the veni binary, e.g. bin/veni)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: check-packaging.sh BIN}
UNIT=packaging/systemd/veni.service

if ! command -v systemd-analyze >/dev/null; then
	echo "check-packaging: systemd-analyze not found: $UNIT not verified" >&2
	exit 0
fi
root=$(mktemp -d /tmp/veni-check-unit.XXXXXX)
trap 'rm -rf "$root"' EXIT
exec_path=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root$(dirname "$exec_path")"
cp -r /lib/systemd/system "$root/usr/lib/systemd/"
cp "$BIN" "$root$exec_path"
cp "$UNIT" "$root/etc/systemd/system/"
out=$(systemd-analyze verify --root="$root" --man=no veni.service 2>&1) || {
	echo "$out" >&2
	exit 1
}
if [[ -n $out ]]; then
	echo "$out" >&2
	echo "check-packaging: $UNIT: systemd-analyze verify has complaints" >&2
	exit 1
fi
echo "check-packaging: $UNIT passes systemd-analyze verify"
