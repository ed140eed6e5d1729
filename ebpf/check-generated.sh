#!/usr/bin/env bash
# Regenerates the bpf2go output under ebpf/ and of the simulator's trunk
# programs (eni/sim/fabric/trunkbpf/) and fails when the committed files
# differ: CI runs this so objects never drift from their C source.
# Needs clang-14 and llvm-strip-14 (Debian 12: apt install clang llvm).
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=(ebpf/ eni/sim/fabric/trunkbpf/)
go generate ./ebpf/... ./eni/sim/fabric/trunkbpf/...
if ! git diff --exit-code -- "${dirs[@]}"; then
	echo "${dirs[*]}: generated files are stale; run 'make generate' and commit the result" >&2
	exit 1
fi
if untracked=$(git ls-files --others --exclude-standard -- "${dirs[@]}") && [ -n "$untracked" ]; then
	echo "${dirs[*]}: generate produced files that are not committed:" >&2
	echo "$untracked" >&2
	exit 1
fi
