#!/usr/bin/env bash
# Benchmarks the ClickHouse flow database (docs/fleet.md) on a private
# clickhouse-server started by tools/fleetbench:
#   - flows --export of the hunt bench scenario's flows (scripts/bench-hunt.json,
#     about 0.45 M records) against clickhouse-client inserting the same rows
#     from a TSV file (target: at most 2x its time);
#   - hunt --clickhouse over 10x that data (ten times the hours) against
#     hunt --store over the same flows (target: at most 2x the time, at most
#     half the peak RSS).
# Medians of alternating runs (BENCH_FLEET_RUNS, default 3). Needs the shared
# data beside the checkout (or NWHEALTH_SHARED), clickhouse-server and
# clickhouse-client. BENCH_FLEET_HUNT_SCALE=1 hunts over the 1x data only.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${NWHEALTH_SHARED:-$(cd .. && pwd)/shared}
sim="$shared/tools/trafficsim"
[ -d "$sim" ] || { echo "bench-fleet: shared data not found at $shared" >&2; exit 1; }
command -v clickhouse-server >/dev/null || { echo "bench-fleet: clickhouse-server not installed (.ci/deps)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -o "$out/nwhealth" ./cmd/nwhealth
go build -o "$out/fleetbench" ./tools/fleetbench
(cd "$sim" && go build -o "$out/trafficsim" .)
runs=${BENCH_FLEET_RUNS:-3}

store() { # scale dir: simulate scale x the bench hours into a store
  python3 -c "import json; d=json.load(open('scripts/bench-hunt.json')); d['hours']*=$1; json.dump(d,open('$out/scenario.json','w'))"
  "$out/trafficsim" -scenario "$out/scenario.json" -o "$out/sim.pcap" -labels "$out/sim.labels.json" 2>/dev/null
  "$out/nwhealth" import --store "$2" "$out/sim.pcap" >/dev/null
  rm -f "$out/sim.pcap"
}

store 1 "$out/s1"
"$out/fleetbench" -nwhealth "$out/nwhealth" -export-store "$out/s1" -runs "$runs"
scale=${BENCH_FLEET_HUNT_SCALE:-10}
if [ "$scale" = 1 ]; then
  hs="$out/s1"
else
  rm -rf "$out/s1"
  store "$scale" "$out/s$scale"
  hs="$out/s$scale"
fi
"$out/fleetbench" -nwhealth "$out/nwhealth" -hunt-store "$hs" -runs "$runs"
