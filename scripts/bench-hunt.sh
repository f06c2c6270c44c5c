#!/usr/bin/env bash
# Benchmarks hunt: wall time and peak memory on a large simulated capture
# (30 hours, 110 hosts, about 4.4 million packets: scripts/bench-hunt.json)
# and on the same network over three times as long (3x the packets and
# connections, about as many channels), from the pcap and from the
# conn.log, and the ratio against the RITA-style baseline (ritabase.py) on
# the same conn.log. Peak RSS should follow channels, not connections.
# Needs the shared data beside the checkout (or NWHEALTH_SHARED), python3
# and GNU time. BENCH_HUNT_SCALES="1" skips the 3x run.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${NWHEALTH_SHARED:-$(cd .. && pwd)/shared}
sim="$shared/tools/trafficsim"
[ -d "$sim" ] || { echo "bench-hunt: shared data not found at $shared" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -o "$out/nwhealth" ./cmd/nwhealth
(cd "$sim" && go build -o "$out/trafficsim" .)

measure() { # label command...: prints wall seconds and peak RSS
  local label=$1; shift
  /usr/bin/time -v "$@" >"$out/out.jsonl" 2>"$out/time.txt" || { cat "$out/time.txt" >&2; return 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out/time.txt")
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$out/time.txt")
  printf '%-16s %8.2f s  %6s MB peak RSS   ' "$label" "$wall" "$rss"
  echo "$wall" >"$out/$label.wall"
}
score() { python3 "$shared/tools/huntscore.py" "$1" "$out/out.jsonl" | tail -1; }

for scale in ${BENCH_HUNT_SCALES:-1 3}; do
  python3 -c "import json,sys; d=json.load(open('scripts/bench-hunt.json')); d['hours']*=$scale; json.dump(d,open('$out/scenario.json','w'))"
  "$out/trafficsim" -scenario "$out/scenario.json" -o "$out/big.pcap" -labels "$out/big.labels.json" -conn "$out/big.conn.log" 2>/dev/null
  packets=$(python3 -c "import json;print(json.load(open('$out/big.labels.json'))['packets'])")
  echo "== ${scale}x: $packets packets, $(du -m "$out/big.pcap" | cut -f1) MB; conn.log: $(grep -vc '^#' "$out/big.conn.log") rows"
  measure "hunt --pcap" "$out/nwhealth" hunt --pcap "$out/big.pcap" --format jsonl --min-severity info
  score "$out/big.labels.json"
  measure "hunt --zeek" "$out/nwhealth" hunt --zeek "$out/big.conn.log" --format jsonl --min-severity info
  score "$out/big.labels.json"
  grep -o '[0-9]* channels measured' "$out/time.txt" || true
  measure "ritabase.py" python3 "$shared/tools/ritabase.py" --internal 10.0.0.0/8 "$out/big.conn.log"
  score "$out/big.labels.json"
  awk -v h="$(cat "$out/hunt --zeek.wall")" -v r="$(cat "$out/ritabase.py.wall")" \
    'BEGIN { printf "hunt --zeek is %.1fx the speed of ritabase.py on the same conn.log\n", r/h }'
  rm -f "$out/big.pcap"
done
