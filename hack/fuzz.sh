#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 10s) each, one
# after the other: go test fuzzes one target per run. Targets are found by
# name (func FuzzX in a _test.go file), so a new one needs no change here.
# A failing input is written to the package's testdata/fuzz/FuzzX/ by go
# test: commit it with the fix, and it stays in the seed corpus.
#
# Usage: hack/fuzz.sh   (env: GO, FUZZTIME)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}

n=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for fn in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz: $fn in $dir for $FUZZTIME"
		"$GO" test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" "./$dir"
		n=$((n + 1))
	done
done < <(git ls-files --cached --others --exclude-standard -- '*_test.go' | xargs -r grep -l '^func Fuzz' | sort)
echo "fuzz: $n targets, $FUZZTIME each"
[[ $n -gt 0 ]] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
