#!/usr/bin/env bash
# Times `nwhealth replay` against `tshark -r FILE -Y dcerpc` over the shared
# remote-operation captures, one by one and as a large capture made by
# merging them into a day of generated background traffic; prints the
# time ratio and the peak resident memory of both (/usr/bin/time -v).
# Target: replay at least 20x faster than tshark, memory flat.
#
# Usage: scripts/bench-replay.sh [WORKDIR]   (WORKDIR keeps the large capture)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared=${NWHEALTH_SHARED:-$root/../shared}
caps=("$shared"/pcaps/remote-ops/*/*.*cap*)
[ -e "${caps[0]}" ] || { echo "bench-replay: no captures under $shared/pcaps/remote-ops" >&2; exit 1; }
for t in tshark mergecap editcap /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench-replay: $t not installed (run .ci/deps)" >&2; exit 1; }
done
work=${1:-$(mktemp -d)}
mkdir -p "$work"
go build -o "$work/nwhealth" ./cmd/nwhealth

# measure CMD...: prints "seconds peak_kib"
measure() {
  /usr/bin/time -v "$@" >/dev/null 2>"$work/time.txt" || true
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; sec = s }
              /Maximum resident set size/ { kb = $2 }
              END { printf "%.3f %d\n", sec, kb }' "$work/time.txt"
}

row() { # name replay_s replay_kib tshark_s tshark_kib
  awk -v n="$1" -v rs="$2" -v rk="$3" -v ts="$4" -v tk="$5" 'BEGIN {
    r = (rs > 0.0005) ? ts / rs : ts / 0.0005
    printf "%-44s replay %7.3fs %7.1f MiB   tshark %7.3fs %7.1f MiB   ratio %6.1fx\n", substr(n, 1, 44), rs, rk / 1024, ts, tk / 1024, r }'
}

echo "== per capture"
tot_r=0 tot_t=0 max_rk=0 max_tk=0
for f in "${caps[@]}"; do
  read -r rs rk < <(measure "$work/nwhealth" replay --pcap "$f" --format jsonl)
  read -r ts tk < <(measure tshark -n -r "$f" -Y dcerpc)
  row "$(basename "$f")" "$rs" "$rk" "$ts" "$tk"
  tot_r=$(awk -v a="$tot_r" -v b="$rs" 'BEGIN { print a + b }')
  tot_t=$(awk -v a="$tot_t" -v b="$ts" 'BEGIN { print a + b }')
  max_rk=$(( rk > max_rk ? rk : max_rk )); max_tk=$(( tk > max_tk ? tk : max_tk ))
done
row "TOTAL (sum of the captures)" "$tot_r" "$max_rk" "$tot_t" "$max_tk"

echo "== large capture: the captures merged into generated background traffic"
big=$work/large.pcap
if [ ! -s "$big" ]; then
  sim=$shared/tools/trafficsim
  (cd "$sim" && go run . -scenario scenarios/dev.json -o "$work/background.pcap" -labels "$work/background.labels.json")
  # Some captures end inside a packet; editcap keeps what precedes the cut.
  mkdir -p "$work/clean"
  for f in "${caps[@]}"; do editcap -F pcap "$f" "$work/clean/$(basename "$f").pcap" 2>/dev/null || true; done
  mergecap -F pcap -w "$big.tmp" "$work/background.pcap" "$work"/clean/*.pcap && mv "$big.tmp" "$big"
fi
ls -l "$big" | awk '{ printf "%s: %.1f MiB\n", $NF, $5 / 1048576 }'
read -r rs rk < <(measure "$work/nwhealth" replay --pcap "$big" --format jsonl)
read -r ts tk < <(measure tshark -n -r "$big" -Y dcerpc)
row "large.pcap" "$rs" "$rk" "$ts" "$tk"
awk -v rs="$rs" -v ts="$ts" 'BEGIN { r = ts / (rs > 0.0005 ? rs : 0.0005); printf "replay is %.1fx faster than tshark on the large capture (target 20x): %s\n", r, (r >= 20 ? "ok" : "BELOW TARGET") }'
