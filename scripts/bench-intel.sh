#!/usr/bin/env bash
# Benchmarks the retro-hunt (issue 19's target): matching 100,000 shared
# indicators over a month of flow records must cost at most 1.5x reading
# those records from their flow files. pkg/intel's BenchmarkRetroHunt
# generates both (NWHEALTH_BENCH_RECORDS records, default 1,000,000: about
# a month of a 300-host office) and reports x-read, the ratio of the
# fastest read+match round to the fastest read round. Timings on a shared
# machine are noisy, so where valgrind is installed the same two phases
# are also counted in instructions (callgrind, 200,000 records), and that
# ratio is the one held to 1.5.
set -uo pipefail
cd "$(dirname "$0")/.."
records=${NWHEALTH_BENCH_RECORDS:-1000000}
status=0
echo "== timing: $records records, 100000 indicators"
NWHEALTH_BENCH_RECORDS=$records go test -run '^$' -bench '^BenchmarkRetroHunt$' -benchtime 5x ./pkg/intel | grep -E '^Benchmark' || status=1
if ! command -v valgrind >/dev/null 2>&1; then
  echo "== instructions: valgrind not installed, skipped"
  exit $status
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/intel.test" ./pkg/intel || exit 1
n=${BENCH_INTEL_CALLGRIND_RECORDS:-200000}
declare -A ir
for phase in read match; do
  fn=readFlows; [ "$phase" = match ] && fn=readAndMatch
  # Go's asynchronous preemption signals trip callgrind; one P and no
  # collection keep the count to the phase's own work (where a collection
  # cycle lands is chance, and the matcher adds no garbage to collect: it
  # allocates nothing for a record that matches nothing, and its index
  # holds no pointers).
  GOGC=off GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 NWHEALTH_BENCH_RECORDS=$n NWHEALTH_BENCH_PHASE=$phase \
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$phase" \
    --toggle-collect="github.com/nwhealth/nwhealth/pkg/intel.$fn" \
    "$out/intel.test" -test.run '^$' -test.bench '^BenchmarkRetroHunt$' -test.benchtime 1x >"$out/$phase.log" 2>&1 \
    || { tail -20 "$out/$phase.log"; exit 1; }
  ir[$phase]=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$phase.log")
done
awk -v r="${ir[read]}" -v m="${ir[match]}" -v n="$n" 'BEGIN {
  printf "== instructions (callgrind, %d records): read %.0f a record, read+match %.0f a record: %.2fx read (target <= 1.5)\n", n, r/n, m/n, m/r
  exit (m/r > 1.5) }' || status=1
exit $status
