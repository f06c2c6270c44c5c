#!/usr/bin/env bash
# bench-workers: the rate at which `nwhealth capture --workers N` stores a
# backlog, with the sender out of the race. On a veth pair between two
# network namespaces this script creates (and removes), the capture starts
# with rings big enough for the whole burst, stores a warm-up burst (so its
# tables and buffers are in place), and is stopped with SIGSTOP; trafgen
# then sends the burst, which the kernel puts into the stopped capture's
# rings (the kernel fills them whether or not the process runs); SIGCONT,
# and the wall time until every frame is stored is the drain time. Rate =
# burst / drain time: the rate the workers sustain without a drop when the
# sender costs them nothing. Needs root, trafgen (netsniff-ng) and ip.
#
#   scripts/bench-workers.sh [BURST]      (default 4500000 frames)
#
# The burst is long enough that one worker's 64-flow drain lasts most of a
# second (with 3 M frames it lasted 0.2-0.45 s, a dozen progress ticks, and
# runs scattered), and short enough that each worker's share fits in its
# part of the default ring (1 GiB holds about 6 M 64-byte frames for one
# worker, 3 M each for two: blocks retired by the timer are not full).
#
# Environment: NWHEALTH (binary; built into bin/ when unset), WORKERS
# (worker counts to compare, alternating, default "1 2"), REPEAT (runs of
# each, default 3), LOADS ("64": 64 source ports, as bench-capture.sh;
# "new": a random source address and port in every frame; default "64
# new"), RING (--ring-size of every run, default 1GiB: the burst must fit
# in each worker's share, ring / workers, however the fanout splits it),
# WARMUP (frames stored before the stop, per worker: N workers get N times
# as many, since the fanout gives each its share; default 200000 for 64
# flows and 2000000 for a flood, whose writers reach their steady state,
# two flow tables and index builders in use, only after a few shard seals
# each: otherwise the drain pays their page faults, and with one warm-up
# for all, two workers' halves paid them twice over), TICK
# (--stats-every, default 20ms), CPUS (trafgen processes, default 2), OUT
# (directory for the stores, default a temporary one), NS_PREFIX (start
# of the namespace and interface names, default nwhw; the process id
# follows).
#
# The drain's end is read from the capture's own progress records (`--format
# jsonl --stats-every TICK`), each stamped on arrival by this script
# (bash's $EPOCHREALTIME: no process a line): the first record that counts
# every frame ends it, interpolated back at the rate of the record before
# (so the end is known to well within a tick). The kernel's counters in the
# capture's summary must show no drop and every frame accepted and stored;
# otherwise the run is refused. For each run it prints the burst, each
# worker's share of it, the drain time, the rate, the capture's user and
# system CPU seconds from SIGCONT to the poll that saw the end (/proc; the
# poll comes up to 0.2 s late, the capture idle by then), the cores that
# makes over the drain, and the CPU seconds other processes took meanwhile
# (/proc/stat: the machine's busy time less the capture's), and the
# capture's minor page faults and its threads' voluntary and involuntary
# context switches over the same span (counts that do not move with the
# machine's load as seconds do); then per worker count the median rate, and the median ratio of
# the alternating runs (N workers against the first count).
#
# Caveats (docs/PERFORMANCE.md): the drain reads frames the kernel wrote
# long before (a backlog of hundreds of MiB, not in any cache), and a real
# NIC's receive softirq shares the CPUs with the workers, which here ran
# before SIGCONT and cost the drain nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

BURST=${1:-4500000}
WORKERS=${WORKERS:-"1 2"}
REPEAT=${REPEAT:-3}
LOADS=${LOADS:-"64 new"}
RING=${RING:-1GiB}
TICK=${TICK:-20ms}
CPUS=${CPUS:-2}
FRAME=64

for tool in ip trafgen; do
  command -v "$tool" >/dev/null || { echo "bench-workers: $tool not installed (run .ci/deps)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench-workers: needs root (namespaces, raw sockets)" >&2; exit 1; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "bench-workers: needs bash 5 (EPOCHREALTIME)" >&2; exit 1; }

if [ -z "${NWHEALTH:-}" ]; then
  CGO_ENABLED=0 go build -o bin/nwhealth ./cmd/nwhealth
  NWHEALTH=$PWD/bin/nwhealth
fi

tag="${NS_PREFIX:-nwhw}$$"
nsA="$tag-a" nsB="$tag-b" devA="${tag}a" devB="${tag}b"
[ ${#devA} -le 15 ] || { echo "bench-workers: interface name $devA too long (NS_PREFIX)" >&2; exit 2; }
work=$(mktemp -d "${OUT:-${TMPDIR:-/tmp}}/bench-workers.XXXXXX")
capture_pid=""
cleanup() {
  if [ -n "$capture_pid" ]; then
    kill -CONT "$capture_pid" 2>/dev/null || true
    kill -INT "$capture_pid" 2>/dev/null || true
    wait "$capture_pid" 2>/dev/null || true
  fi
  ip netns del "$nsA" 2>/dev/null || true
  ip netns del "$nsB" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_link "$nsA" "$nsB" "$devA" "$devB"

# conf LOAD: the trafgen configuration of bench-capture.sh's frames.
conf() { bench_frames "$1" "$FRAME" || exit 2; }

# send LOAD COUNT: trafgen sends COUNT frames from A; prints how many went.
send() {
  local out n
  out=$(ip netns exec "$nsA" trafgen --dev "$devA" --conf "$work/$1.cfg" --num "$2" --cpus "$CPUS" \
        --no-sock-mem --notouch-irq 2>&1)
  n=$(echo "$out" | tr '\r' '\n' | sed -n 's/^ *\([0-9][0-9]*\) packets outgoing.*/\1/p' | head -1)
  [ -n "$n" ] || { echo "trafgen: $out" >&2; exit 1; }
  echo "$n"
}

# stamp: each line of the capture's output with its time of arrival.
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }

# stored FILE: the packets count of FILE's last record (0 before the first).
stored() {
  local l; l=$(tail -n 1 "$1")
  [[ $l =~ \"packets\":([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || echo 0
}

# cpu PID: user and system clock ticks of the process so far, and the
# machine's busy ticks (every CPU, any process: what others took is the
# difference).
cpu() { echo "$(awk '{ print $14, $15 }' "/proc/$1/stat") $(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)"; }

# counts PID: the process's minor page faults and its threads' context
# switches (voluntary: it waited; involuntary: it was preempted) so far.
counts() {
  echo "$(awk '{ print $10 }' "/proc/$1/stat") $(cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v + 0, n + 0 }')"
}

# run LOAD N: one capture with N workers draining a burst; sets R_* below.
run() {
  local load=$1 n=$2 prog="$work/progress" log="$work/capture.log" store="$work/store"
  rm -rf "$store"; : >"$prog"; : >"$log"
  ip netns exec "$nsB" "$NWHEALTH" capture -i "$devB" --workers "$n" --ring-size "$RING" \
    --store "$store" --format jsonl --stats-every "$TICK" > >(stamp >"$prog") 2>"$log" &
  capture_pid=$!
  for _ in $(seq 200); do grep -q "capturing on" "$log" && break; sleep 0.1; done
  grep -q "capturing on" "$log" || { echo "capture did not start:"; cat "$log"; exit 1; } >&2

  # Warm-up: the writers' tables and buffers in place, then quiet.
  local warmup=${WARMUP:-200000}
  [ "$load" = new ] && warmup=${WARMUP:-2000000}
  warmup=$((warmup * n))
  local warm; warm=$(send "$load" "$warmup")
  for _ in $(seq 300); do [ "$(stored "$prog")" -ge "$warm" ] && break; sleep 0.1; done
  [ "$(stored "$prog")" -ge "$warm" ] || { echo "warm-up not stored: $(stored "$prog") of $warm" >&2; exit 1; }
  sleep 0.5

  kill -STOP "$capture_pid"
  local sent; sent=$(send "$load" "$BURST")
  # The kernel retires the last, partly filled block by its timer (50 ms).
  sleep 0.3
  local total=$((warm + sent)) c0 t0 c1 t1 n0 n1
  c0=$(cpu "$capture_pid"); n0=$(counts "$capture_pid")
  t0=$EPOCHREALTIME
  kill -CONT "$capture_pid"
  # Poll slowly: the drain's end is read from the stamps afterwards.
  for _ in $(seq 600); do [ "$(stored "$prog")" -ge "$total" ] && break; sleep 0.2; done
  c1=$(cpu "$capture_pid"); t1=$EPOCHREALTIME; n1=$(counts "$capture_pid")
  read -r R_FLT R_VCS R_NVCS < <(awk -v a="$n0" -v b="$n1" 'BEGIN {
    split(a, x, " "); split(b, y, " "); print y[1] - x[1], y[2] - x[2], y[3] - x[3] }')
  kill -INT "$capture_pid"
  wait "$capture_pid" || { echo "capture failed:"; cat "$log"; exit 1; } >&2
  capture_pid=""
  # The stamping reader writes the summary once the pipe drains.
  for _ in $(seq 50); do grep -q '"capture_summary"' "$prog" && break; sleep 0.1; done

  # The summary's kernel counters: nothing dropped, every frame stored.
  local sum; sum=$(grep '"capture_summary"' "$prog" | cut -d' ' -f2-)
  R_STORED=$(sed -n 's/^{[^[]*"packets":\([0-9]*\).*/\1/p' <<<"$sum")
  R_KPKTS=$(sed -n 's/.*"kernel_packets":\([0-9]*\).*/\1/p' <<<"$sum")
  R_DROPS=$(sed -n 's/^{[^[]*"kernel_drops":\([0-9]*\).*/\1/p' <<<"$sum")
  R_FREEZE=$(sed -n 's/.*"freeze_queue":\([0-9]*\).*/\1/p' <<<"$sum")
  R_SHARES=$(grep -o '"workers":\[.*\]' <<<"$sum" | grep -o '"packets":[0-9]*' | cut -d: -f2 | paste -sd/)
  R_SENT=$sent
  if [ "$R_STORED" != "$total" ] || [ "$R_KPKTS" != "$total" ] || [ "$R_DROPS" != 0 ] || [ "$R_FREEZE" != 0 ]; then
    echo "bench-workers: $n worker(s), load $load: sent $total, kernel accepted $R_KPKTS, stored $R_STORED," \
      "kernel drops $R_DROPS, ring full $R_FREEZE times: a bigger RING or a smaller BURST" >&2
    cat "$log" >&2
    exit 1
  fi
  # The drain's end: the first progress record that counts every frame, at
  # the rate of the interval before it (or its own stamp, if sooner).
  R_SECS=$(awk -v t0="$t0" -v want="$total" '
    / \{"type":"capture_progress"/ {
      if (!match($0, /"packets":[0-9]+/)) next
      p = substr($0, RSTART + 10, RLENGTH - 10) + 0; t = $1 + 0
      if (p >= want && t >= t0) {
        end = t
        if (k >= 2 && ppt >= t0 && pp < want && pp > ppp) {
          e = pt + (want - pp) * (pt - ppt) / (pp - ppp)
          if (e > pt && e < t) end = e
        }
        printf "%.4f", end - t0; found = 1; exit
      }
      ppt = pt; ppp = pp; pt = t; pp = p; k++
    }
    END { if (!found) print "none" }' "$prog")
  [ "$R_SECS" != none ] || { echo "bench-workers: no progress record counted $total" >&2; exit 1; }
  R_MPPS=$(awk -v n="$sent" -v s="$R_SECS" 'BEGIN { printf "%.3f", n / s / 1e6 }')
  local hz; hz=$(getconf CLK_TCK)
  read -r R_USR R_SYS R_OTHER < <(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    u = (y[1] - x[1]) / hz; s = (y[2] - x[2]) / hz
    printf "%.2f %.2f %.2f\n", u, s, (y[3] - x[3]) / hz - u - s }')
  R_CPU=$(awk -v u="$R_USR" -v s="$R_SYS" 'BEGIN { printf "%.2f", u + s }')
  R_CORES=$(awk -v c="$R_CPU" -v s="$R_SECS" 'BEGIN { printf "%.2f", c / s }')
  rm -rf "$store"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-workers: bursts of $BURST frames of $FRAME bytes after ${WARMUP:-200000 (flood 2000000)} warm-up frames a worker, ring $RING, workers $WORKERS, $REPEAT run(s) each, loads $LOADS; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
row() { printf '%-5s %7s %9s %-19s %8s %8s %6s %6s %6s %8s %7s %7s %7s\n' "$@"; }
status=0
for load in $LOADS; do
  conf "$load" >"$work/$load.cfg"
  echo "load $load:"
  row load workers burst "stored per worker" drain-s Mpps user-s sys-s cores others-s faults vol-cs invol-cs
  declare -A RATES=()
  PAIRS=()
  base=${WORKERS%% *}
  for _ in $(seq "$REPEAT"); do
    declare -A THIS=()
    for n in $WORKERS; do
      run "$load" "$n"
      row "$load" "$n" "$R_SENT" "$R_SHARES" "$R_SECS" "$R_MPPS" "$R_USR" "$R_SYS" "$R_CORES" "$R_OTHER" "$R_FLT" "$R_VCS" "$R_NVCS"
      RATES[$n]="${RATES[$n]:-} $R_MPPS"
      THIS[$n]=$R_MPPS
    done
    for n in $WORKERS; do
      [ "$n" = "$base" ] && continue
      PAIRS+=("$n:$(awk -v a="${THIS[$n]}" -v b="${THIS[$base]}" 'BEGIN { printf "%.4f", a / b }')")
    done
  done
  for n in $WORKERS; do
    # shellcheck disable=SC2086
    line="load $load, $n worker(s): median $(median ${RATES[$n]}) Mpps (runs:${RATES[$n]})"
    if [ "$n" != "$base" ]; then
      # shellcheck disable=SC2046
      r=$(median $(printf '%s\n' "${PAIRS[@]}" | sed -n "s/^$n://p"))
      line="$line; against $base: median of alternating runs' ratios $r"
      # Target (issue 18): two workers store at least 1.7 times one's rate.
      if [ "$base" = 1 ] && [ "$n" = 2 ]; then
        awk -v r="$r" 'BEGIN { exit !(r >= 1.7) }' && line="$line (target >= 1.7: met)" || { line="$line (target >= 1.7: not met)"; status=1; }
      fi
    fi
    echo "$line"
  done
done
exit $status
