#!/usr/bin/env bash
# Evaluates hunt over every scenario under testdata/hunt-eval (and the shared
# dev.json): simulates each network (trafficsim, or internal/demogen for the
# kept-alive, proxy and inbound shapes), hunts from the pcap and from the
# conn.log (from a store the pcap was imported into, for demogen networks),
# scores both with the shared huntscore.py and prints pair AP / host AP beside
# ritabase.py's. Without the race detector; about ten minutes
# on 2 cores. Arguments pick scenarios by file name (without .json).
#   scripts/hunt-eval.sh                 # all of them
#   scripts/hunt-eval.sh 04-popular-ranges 09-campaign
# The Markdown table also lands in $NWHEALTH_HUNT_EVAL_OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
sel=all
if [ $# -gt 0 ]; then sel=$(IFS=,; echo "$*"); fi
out=${NWHEALTH_HUNT_EVAL_OUT:-$(mktemp)}
NWHEALTH_HUNT_EVAL=$sel NWHEALTH_HUNT_EVAL_OUT=$out \
  go test -count=1 -timeout 60m -run '^TestHuntEval$' -v ./cmd/nwhealth | grep -E '^\s*(---|ok|FAIL|PASS)|Error|want' || true
cat "$out"
