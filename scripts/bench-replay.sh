#!/usr/bin/env bash
# Times `nwhealth replay` against `tshark -r FILE -Y dcerpc` over the shared
# remote-operation captures, one by one and as a large capture made by
# merging them into a day of generated background traffic; prints the
# time ratio and the peak resident memory of both (/usr/bin/time -v).
# Target: replay at least 20x faster than tshark, memory flat. As root, also
# replays the large capture live over a veth pair (tcpreplay --topspeed)
# and compares the operations with offline replay.
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
CGO_ENABLED=0 go build -o "$work/nwhealth" ./cmd/nwhealth

# timeinfo FILE: prints "wall_seconds peak_kib cpu_seconds" from /usr/bin/time -v output
timeinfo() {
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; sec = s }
              /User time \(seconds\)/ { cpu += $2 } /System time \(seconds\)/ { cpu += $2 }
              /Maximum resident set size/ { kb = $2 }
              END { printf "%.3f %d %.3f\n", sec, kb, cpu }' "$1"
}

# measure CMD...: prints "seconds peak_kib cpu_seconds"
measure() {
  /usr/bin/time -v "$@" >/dev/null 2>"$work/time.txt" || true
  timeinfo "$work/time.txt"
}

row() { # name replay_s replay_kib tshark_s tshark_kib
  awk -v n="$1" -v rs="$2" -v rk="$3" -v ts="$4" -v tk="$5" 'BEGIN {
    r = (rs > 0.0005) ? ts / rs : ts / 0.0005
    printf "%-44s replay %7.3fs %7.1f MiB   tshark %7.3fs %7.1f MiB   ratio %6.1fx\n", substr(n, 1, 44), rs, rk / 1024, ts, tk / 1024, r }'
}

echo "== per capture"
tot_t=0 max_tk=0
for f in "${caps[@]}"; do
  read -r rs rk _ < <(measure "$work/nwhealth" replay --pcap "$f" --format jsonl)
  read -r ts tk _ < <(measure tshark -n -r "$f" -Y dcerpc)
  row "$(basename "$f")" "$rs" "$rk" "$ts" "$tk"
  tot_t=$(awk -v a="$tot_t" -v b="$ts" 'BEGIN { print a + b }')
  max_tk=$(( tk > max_tk ? tk : max_tk ))
done
# One capture takes replay a few milliseconds, below /usr/bin/time's 10 ms
# resolution: time one replay run over all of them instead.
args=(); for f in "${caps[@]}"; do args+=(--pcap "$f"); done
read -r all_r all_rk _ < <(measure "$work/nwhealth" replay "${args[@]}" --format jsonl)
row "ALL (replay: one run; tshark: sum of runs)" "$all_r" "$all_rk" "$tot_t" "$max_tk"

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
read -r rs rk rc < <(measure "$work/nwhealth" replay --pcap "$big" --format jsonl)
read -r ts tk tc < <(measure tshark -n -r "$big" -Y dcerpc)
row "large.pcap" "$rs" "$rk" "$ts" "$tk"
echo "CPU time (user+sys; steadier than wall time on a busy machine): replay ${rc}s, tshark ${tc}s"
awk -v rs="$rs" -v ts="$ts" -v rc="$rc" -v tc="$tc" 'BEGIN {
  r = ts / (rs > 0.0005 ? rs : 0.0005); c = tc / (rc > 0.0005 ? rc : 0.0005)
  printf "replay is %.1fx faster than tshark on the large capture by wall time, %.1fx by CPU time (target 20x): %s\n", r, c, (r >= 20 ? "ok" : "BELOW TARGET") }'

# Live: replay -i on one end of a veth pair while tcpreplay --topspeed sends
# the large capture from a namespace at the other end; the operations must
# be those of offline replay. Needs root, ip(8) and tcpreplay.
echo "== live: replay -i while tcpreplay --topspeed sends the large capture over a veth pair"
if [ "$(id -u)" != 0 ] || ! command -v tcpreplay >/dev/null || ! command -v ip >/dev/null; then
  echo "skipped: needs root, ip and tcpreplay"
  exit 0
fi
ns=nwhbench$$ a=nwhba$$ b=nwhbb$$
cleanup() { ip link del "$a" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip link add "$a" mtu 65535 type veth peer name "$b" mtu 65535
ip link set "$b" netns "$ns"
ip link set "$a" up
ip -n "$ns" link set "$b" up
offline_ops=$("$work/nwhealth" replay --pcap "$big" --format jsonl --all 2>/dev/null | grep -c '"type":"operation"' || true)
/usr/bin/time -v "$work/nwhealth" replay -i "$a" --format jsonl --all --stats >"$work/live.jsonl" 2>"$work/live.err" &
timepid=$!
sleep 1
replaypid=$(pgrep -P "$timepid" nwhealth)
ip netns exec "$ns" tcpreplay --topspeed -i "$b" "$big" 2>&1 | grep -E "Actual|Rated" || true
sleep 2
kill -INT "$replaypid"
wait "$timepid" || true
read -r lw lk lc < <(timeinfo "$work/live.err")
live_ops=$(grep -c '"type":"operation"' "$work/live.jsonl" || true)
grep '^stats:' "$work/live.err" | tail -1
echo "live: $live_ops operations (offline: $offline_ops), peak resident $((lk / 1024)) MiB, CPU ${lc}s over ${lw}s"
[ "$live_ops" = "$offline_ops" ] && echo "live replay kept up: ok" || echo "live replay DIFFERS from offline: $live_ops vs $offline_ops operations"
