#!/usr/bin/env bash
# Fleet benchmarks (docs/fleet.md), in two parts, each printing its
# measures against its targets; PART=s3 or PART=clickhouse runs one.
#
# Part 1, the bucket: a store in S3-compatible object storage (versitygw on
# loopback) against the same store on the local disk, in one run; medians
# of alternating runs, since the machines are shared.
#
#   scripts/bench-fleet.sh             # out/bench as work space (~3 GB)
#   BENCH_DIR=/big/disk HOURS=3 RUNS=7 scripts/bench-fleet.sh
#
# Targets: a one-host query over the object store reads at most 2% of the
# stored bytes for a host holding under 1% of the traffic, and takes at
# most 3x the same query over the local store; store push takes at most
# 1.5x a plain multipart upload of the same files (tools/s3put).
#
# Part 2, the flow database: ClickHouse on a private clickhouse-server
# started by tools/fleetbench:
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
part=${PART:-all}

# Each part in a subshell of its own: its servers and files are cleaned
# up by its own trap.
bench_s3() (
  NW=${NW:-bin/nwhealth}
  CGO_ENABLED=0 go build -o "$NW" ./cmd/nwhealth
  go build -o bin/s3put ./tools/s3put
  SIM=${SIM:-../shared/tools/trafficsim}
  W=${BENCH_DIR:-out/bench}
  RUNS=${RUNS:-5}
  HOURS=${HOURS:-1}
  mkdir -p "$W"
  W=$(cd "$W" && pwd)
  NW=$(cd "$(dirname "$NW")" && pwd)/$(basename "$NW")
  S3PUT=$(pwd)/bin/s3put
  VGW=${VGW:-$(command -v versitygw || echo .cache/bin/versitygw)}
  [ -x "$VGW" ] || { echo "bench-fleet: versitygw missing (run .ci/deps)"; exit 1; }
  command -v tcpdump >/dev/null || { echo "bench-fleet: tcpdump missing (run .ci/deps)"; exit 1; }

  median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a/b : 0}'; }
  now() { echo "${EPOCHREALTIME/./}"; }

  # The traffic: bench-store's site scenario (400 hosts, full payload) with
  # a sixth of its browsing, for HOURS hours (~0.5 GB an hour): one
  # workstation is a fraction of a percent of it.
  pcap=$W/fleet${HOURS}h.pcap
  if [ ! -s "$pcap" ]; then
    python3 - "$SIM/scenarios/bulk.json" "$W/fleet${HOURS}h.json" "$HOURS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s.update(hours=int(sys.argv[3]), seed=12, hosts=400)
s["browsing"]["per_hour"] = 20
json.dump(s, open(sys.argv[2], "w"))
PY
    (cd "$SIM" && go run . -scenario "$W/fleet${HOURS}h.json" -o "$pcap" -labels "$pcap.labels.json" >/dev/null 2>&1)
  fi
  ST=$W/st-fleet
  [ -d "$ST/shards" ] || "$NW" import --store "$ST" "$pcap" >/dev/null
  files=$(ls "$ST"/shards/*.shard "$ST"/shards/*.idx "$ST"/shards/*.flows)
  stored=$(cat $files | wc -c)

  # The server, on loopback, stopped at exit.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$W/vgw" && mkdir -p "$W/vgw/bench"
  # Keep-alive on, as S3 itself and every production gateway keeps
  # connections open: versitygw's default of closing after each response
  # would charge each ranged GET a new TCP connection no deployment pays.
  # Its read buffer sized for ranged reads: versitygw allocates a buffer of
  # --io-buffer-size (default 1 MiB) for every ranged GET, and clearing and
  # collecting it was most of the server's CPU a GET (perf: memclr and the
  # garbage collector), whatever the range's size. VGW_IO_BUFFER=0 keeps
  # the server's default.
  iobuf=()
  [ "${VGW_IO_BUFFER:-65536}" = 0 ] || iobuf=(--io-buffer-size "${VGW_IO_BUFFER:-65536}")
  "$VGW" --keep-alive --access benchkey --secret benchsecret-0123456789 --port "127.0.0.1:$port" posix "${iobuf[@]}" "$W/vgw" >/dev/null 2>&1 &
  vgw_pid=$!
  trap 'kill $vgw_pid 2>/dev/null || true' EXIT
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret-0123456789 AWS_REGION=us-east-1
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

  echo "== store push against a plain multipart upload ($(ls $files | wc -l) files, $((stored >> 20)) MiB)"
  a=() b=()
  for i in $(seq "$RUNS"); do
    sync; s=$(now); "$NW" store push --store "$ST" --to "s3://bench/push$i" --sensor s >/dev/null; e=$(now); a+=($((e - s)))
    rm -rf "$W/vgw/bench/push$i"
    sync; s=$(now); "$S3PUT" -j 4 "s3://bench/plain$i" $files; e=$(now); b+=($((e - s)))
    rm -rf "$W/vgw/bench/plain$i"
  done
  push=$(printf '%s\n' "${a[@]}" | median | awk '{printf "%.3f", $1/1e6}')
  plain=$(printf '%s\n' "${b[@]}" | median | awk '{printf "%.3f", $1/1e6}')
  printf "plain multipart upload  %7.3f s\n" "$plain"
  printf "nwhealth store push     %7.3f s   ratio %s (target <= 1.5)\n" "$push" "$(ratio "$push" "$plain")"

  "$NW" store push --store "$ST" --to s3://bench/fleet --sensor s >/dev/null
  host=$("$NW" flows --store "$ST" --format jsonl --proto tcp --port 8443 | python3 -c '
import sys, json, collections
c = collections.Counter(json.loads(l)["orig"] for l in sys.stdin)
hosts = sorted(c)
print(hosts[len(hosts)//2])')
  [ -n "$host" ] || { echo "bench-fleet: no host to query" >&2; exit 1; }
  tcpdump -r "$pcap" -w "$W/td-host.pcap" host "$host" 2>/dev/null
  share=$(awk -v a="$(stat -c %s "$W/td-host.pcap")" -v b="$(stat -c %s "$pcap")" 'BEGIN{printf "%.2f", 100*a/b}')
  echo "== one host ($host, $share% of the traffic) out of $((stored >> 20)) MiB stored"
  rm -rf "$W/cache"
  "$NW" query --store s3://bench/fleet --cache "$W/cache" --host "$host" -w "$W/r.pcap" --stats 2>"$W/cold.txt"
  cold=$(grep -o '[0-9]* bytes fetched' "$W/cold.txt" | awk '{print $1}')
  "$NW" query --store s3://bench/fleet --cache "$W/cache" --host "$host" -w "$W/r.pcap" --stats 2>"$W/warm.txt"
  warm=$(grep -o '[0-9]* bytes fetched' "$W/warm.txt" | awk '{print $1}')
  "$NW" query --store "$ST" --host "$host" -w "$W/l.pcap" 2>/dev/null
  cmp -s "$W/l.pcap" "$W/r.pcap" && same=identical || same=DIFFERENT
  a=() b=()
  for i in $(seq "$RUNS"); do
    s=$(now); "$NW" query --store "$ST" --host "$host" -w "$W/l.pcap" 2>/dev/null; e=$(now); a+=($((e - s)))
    s=$(now); "$NW" query --store s3://bench/fleet --cache "$W/cache" --host "$host" -w "$W/r.pcap" 2>/dev/null; e=$(now); b+=($((e - s)))
  done
  lq=$(printf '%s\n' "${a[@]}" | median | awk '{printf "%.4f", $1/1e6}')
  rq=$(printf '%s\n' "${b[@]}" | median | awk '{printf "%.4f", $1/1e6}')
  printf "bytes fetched, cold cache  %10d  %.2f%% of stored (manifests, heads, tables of contents, indexes and blocks)\n" "$cold" "$(awk -v a="$cold" -v b="$stored" 'BEGIN{print 100*a/b}')"
  printf "bytes fetched, warm cache  %10d  %.2f%% of stored (target <= 2%%)\n" "$warm" "$(awk -v a="$warm" -v b="$stored" 'BEGIN{print 100*a/b}')"
  printf "query --host, local store    %7.4f s\n" "$lq"
  printf "query --host, object store   %7.4f s   ratio %s (target <= 3), packets %s\n" "$rq" "$(ratio "$rq" "$lq")" "$same"
)

bench_clickhouse() (
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
)

status=0
if [ "$part" = all ] || [ "$part" = s3 ]; then
  echo "#### fleet, part 1: S3-compatible object storage"
  bench_s3 || status=1
fi
if [ "$part" = all ] || [ "$part" = clickhouse ]; then
  echo "#### fleet, part 2: ClickHouse flow database"
  bench_clickhouse || status=1
fi
exit $status
