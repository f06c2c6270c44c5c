#!/usr/bin/env bash
# Runs every fuzz target of the module for a while (default 20s each).
# New crashers are written under the package's testdata/fuzz/ by go test;
# commit them so the seed corpus keeps testing the fix.
# Each new input is minimized for at most FUZZMINIMIZE runs (default
# 2000x): go's default, 60s, lets the O(n^2) minimization of one input of
# a kilobyte or more (a captured packet) take a whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-20s}
minimize=${FUZZMINIMIZE:-2000x}
fail=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $target ($time)"
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time" -fuzzminimizetime "$minimize"; then
      fail=1
    fi
  done
done
exit $fail
