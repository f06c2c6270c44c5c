#!/usr/bin/env bash
# make demo: generate a sample network day and run the whole job on it.
set -euo pipefail
cd "$(dirname "$0")/.."
NW=bin/nwhealth
D=out/demo
rm -rf "$D"; mkdir -p "$D"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "generating a sample network day"
if [ -d tools/demogen ]; then
  go run ./tools/demogen -o "$D/sample.pcap" -labels "$D/labels.json"
elif [ -d ../shared/tools/trafficsim ]; then
  (cd ../shared/tools/trafficsim && go run . -scenario scenarios/dev.json -o "$OLDPWD/$D/sample.pcap" -labels "$OLDPWD/$D/labels.json")
else
  echo "no sample generator available" >&2; exit 1
fi

step "import into a store"
$NW import --store "$D/store" "$D/sample.pcap"
$NW store info --store "$D/store" --verify

step "hunt: stepping-stone hosts and recommended actions"
$NW hunt --store "$D/store" --top 12 | tee "$D/hunt.txt"
$NW hunt --store "$D/store" --format jsonl > "$D/hunt.jsonl" || true
top=$(python3 -c 'import sys,json
hosts=[json.loads(l) for l in open(sys.argv[1]) if "\"type\":\"host\"" in l]
print(hosts[0]["src"] if hosts else "")' "$D/hunt.jsonl")

step "query: the top host's traffic as pcap, read by tcpdump"
$NW query --store "$D/store" --host "$top" -w "$D/top-host.pcap"
tcpdump -r "$D/top-host.pcap" -nn 2>/dev/null | sed -n '1,5p'
$NW flows --store "$D/store" --host "$top" --format table | sed -n '1,15p'

step "replay: remote operations"
$NW replay --store "$D/store" | tee "$D/replay.txt" || true
echo
echo "outputs in $D/"
