#!/usr/bin/env bash
# Runs every fuzz target of the module for a while (default 20s each).
# New crashers are written under the package's testdata/fuzz/ by go test;
# commit them so the seed corpus keeps testing the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-20s}
fail=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $target ($time)"
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time"; then
      fail=1
    fi
  done
done
exit $fail
