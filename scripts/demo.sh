#!/usr/bin/env bash
# make demo: generate a sample network (4 hours, 40 workstations, one
# intrusion: beacons, reconnaissance, PsExec/smbexec/atexec-like lateral
# movement, DCSync) with the project's own generator, then run the whole
# job on it: store, query, flows, hunt, replay and the incident report.
# Everything lands in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
NW=bin/nwhealth
D=out/demo
rm -rf "$D"; mkdir -p "$D"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "generating the sample network (tools/demogen; ground truth in $D/labels.json)"
go run ./tools/demogen -o "$D/sample.pcap" -labels "$D/labels.json" -assets "$D/assets.yaml"

step "import into a store of indexed, compressed shards"
$NW import --store "$D/store" "$D/sample.pcap"
$NW store info --store "$D/store" --verify

step "hunt: stepping-stone hosts, ranked, with recommended actions"
$NW hunt --store "$D/store" --assets "$D/assets.yaml" --top 8 | tee "$D/hunt.txt"
$NW hunt --store "$D/store" --assets "$D/assets.yaml" --format jsonl > "$D/hunt.jsonl"
top=$(python3 -c 'import sys,json
hosts=[f for f in map(json.loads, open(sys.argv[1])) if f["type"] == "finding" and f["kind"] == "host"]
print(hosts[0]["src"] if hosts else "")' "$D/hunt.jsonl")
echo "most suspicious host: $top"

step "query and flows: that host's SMB/RPC traffic in the intrusion window"
$NW flows --store "$D/store" --host "$top" --port 445 --port 135 --port 49667 --format table | sed -n '1,20p'
$NW query --store "$D/store" --host "$top" --port 445 -w "$D/lateral.pcap"
tcpdump -r "$D/lateral.pcap" -nn 2>/dev/null | sed -n '1,5p'

step "replay: the remote operations, who ran them, and each host's progression"
$NW replay --store "$D/store" --graph "$D/hosts.dot" | tee "$D/replay.txt"

if $NW report --help >/dev/null 2>&1; then
  step "report: one incident view (HTML, STIX 2.1, JSON Lines)"
  $NW report --store "$D/store" --assets "$D/assets.yaml" --format html -o "$D/report.html"
  $NW report --store "$D/store" --assets "$D/assets.yaml" --format stix -o "$D/report.stix.json"
  $NW report --store "$D/store" --assets "$D/assets.yaml" | tee "$D/report.txt"
fi
echo
echo "outputs in $D/ (report.html opens in any browser)"
