#!/usr/bin/env bash
# All benchmarks: each script prints ratios against the reference tool
# measured in the same run (tcpdump, tshark, zstd, ritabase.py).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for b in bench-store bench-capture bench-replay bench-hunt bench-fleet; do
  echo "######## $b"
  if [ -x "scripts/$b.sh" ]; then
    "scripts/$b.sh" || status=1
  else
    echo "(missing)"
  fi
done
echo "######## go test -bench"
go test -run '^$' -bench . -benchtime 3x ./pkg/... | grep -E '^(Benchmark|ok|FAIL)' || status=1
exit $status
