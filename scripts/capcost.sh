#!/usr/bin/env bash
# capcost: instructions per packet of capture's store path, counted by
# valgrind's cachegrind on a fixed input, beside tcpdump's on the same
# frames. Counts do not depend on what else the machine runs, so they are
# the measure to compare changes by (CPU seconds on a shared machine vary
# by tens of percent).
#
#   scripts/capcost.sh [PACKETS]      (default 400000)
#
# For each load (the capture bench's 64 flows, and a new flow in every
# frame) tools/capcost runs twice under cachegrind, with PACKETS and with
# twice as many; the difference divided by PACKETS is the cost of one more
# packet, start-up and the final seal cancelling out. The frames' own
# layout (-mode gen) is counted the same way and subtracted: in a live
# capture the kernel writes them. tcpdump is counted reading the same
# frames from a pcap file and writing them (-r FILE -w FILE): its live
# path reads the ring instead of a file, which costs it less, and its
# kernel write path (most of its live CPU time, 80 bytes a packet against
# nwhealth's 4) is counted for neither, as valgrind counts user space only.
#
# Environment: LOADS (default "64 0"), MAXFLOWS (flow table bound, default
# PACKETS/4), KEEP (directory to keep the cachegrind profiles in, for
# cg_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-400000}
LOADS=${LOADS:-"64 0"}
# A flood of new flows reaches its steady state, a full flow table
# evicting a flow for each new one, after the table's bound: a smaller
# bound gets there within the run (the cost of a packet there does not
# depend on the bound).
MAXFLOWS=${MAXFLOWS:-$((N / 4))}
for tool in valgrind tcpdump; do
  command -v "$tool" >/dev/null || { echo "capcost: $tool not installed (run .ci/deps)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/capcost.XXXXXX")
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -o "$work/capcost" ./tools/capcost

# count NAME CMD...: instructions cachegrind counted running CMD. Unlike
# callgrind, cachegrind charges each instruction to the function that
# holds it, which Go's stack switches do not confuse.
count() {
  local name=$1; shift
  local out="$work/$name.cg"
  [ -n "${KEEP:-}" ] && out="$KEEP/$name.cg"
  # Go preempts goroutines with signals, which valgrind follows poorly;
  # one scheduler thread, as a one-worker capture runs (GOMAXPROCS =
  # --workers), so that no idle thread spins while valgrind serialises.
  GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" "$@" \
    >"$work/$name.stdout" 2>"$work/$name.err" ||
    { echo "capcost: $name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
  sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$work/$name.err" | tr -d ,
}

# per ONE TWO: instructions per packet between a run of N and one of 2N.
per() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.0f", (b - a) / n }'; }

printf '%-22s %14s %14s\n' load nwhealth tcpdump
for flows in $LOADS; do
  name="flows=$flows"; [ "$flows" = 0 ] && name="new flow every frame"
  declare -A I=()
  for k in 1 2; do
    n=$((k * N))
    I[gen$k]=$(count "gen-$flows-$k" "$work/capcost" -mode gen -flows "$flows" -packets "$n")
    rm -rf "$work/store"
    I[store$k]=$(count "store-$flows-$k" "$work/capcost" -mode store -flows "$flows" -packets "$n" -dir "$work/store" -maxflows "$MAXFLOWS")
    "$work/capcost" -pcap "$work/in.pcap" -flows "$flows" -packets "$n"
    I[tcpdump$k]=$(count "tcpdump-$flows-$k" tcpdump -Z root -r "$work/in.pcap" -w "$work/out.pcap")
  done
  gen=$(per "${I[gen1]}" "${I[gen2]}")
  store=$(( $(per "${I[store1]}" "${I[store2]}") - gen ))
  tcpd=$(per "${I[tcpdump1]}" "${I[tcpdump2]}")
  printf '%-22s %14s %14s   instructions/packet (ratio %s)\n' "$name" "$store" "$tcpd" \
    "$(awk -v a="$store" -v b="$tcpd" 'BEGIN { printf "%.2f", a / b }')"
done
