package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

// partnerBundle writes a STIX bundle as a partner would share it: two
// network indicators that the capture below holds, one never valid in
// its time, one for a file hash and one with a broken pattern.
func partnerBundle(t *testing.T, dir string) (path string, ids map[string]string) {
	t.Helper()
	ids = map[string]string{}
	var objs []string
	for i, ind := range []struct{ key, pattern, extra string }{
		{"c2", "[ipv4-addr:value = '141.193.213.21']", `, "confidence": 90`},
		{"sni", "[domain-name:value = 'testing.com']", ""},
		{"never", "[ipv4-addr:value = '141.193.213.20']", `, "valid_until": "2024-01-01T00:00:00Z"`},
		{"hash", "[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f']", ""},
		{"broken", "[ipv4-addr:value = '141.193.213.99'", ""},
	} {
		id := fmt.Sprintf("indicator--%08x-1111-4111-8111-111111111111", i+1)
		ids[ind.key] = id
		pat, _ := json.Marshal(ind.pattern)
		objs = append(objs, fmt.Sprintf(`{"type": "indicator", "spec_version": "2.1", "id": %q, "created": "2024-02-01T00:00:00.000Z",
  "modified": "2024-02-01T00:00:00.000Z", "name": "partner %s", "indicator_types": ["malicious-activity"], "pattern": %s,
  "pattern_type": "stix", "valid_from": "2023-06-01T00:00:00Z"%s}`, id, ind.key, pat, ind.extra))
	}
	path = filepath.Join(dir, "partner.json")
	doc := `{"type": "bundle", "id": "bundle--00000001-1111-4111-8111-111111111111", "objects": [` + strings.Join(objs, ",\n") + "]}"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// tsharkFields runs tshark with a display filter and returns the values of
// the fields, one slice per packet.
func tsharkFields(t *testing.T, pcap, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-r", pcap, "-Y", filter, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(testenv.Tool(t, "tshark"), args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}

func indicatorMatches(t *testing.T, out string) map[string]jsonl.IndicatorMatch {
	t.Helper()
	ms := map[string]jsonl.IndicatorMatch{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(line, `"type":"indicator-match"`) {
			continue
		}
		var r jsonl.IndicatorMatch
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		ms[r.IndicatorRef] = r
	}
	return ms
}

// A partner's indicators retro-hunted over a stored real capture: the
// matches count what tshark counts in the same capture (connections,
// bytes, first and last packet), bad indicators and list lines are named
// with their place, and the run exits 3.
func TestIntelRetroHuntStore(t *testing.T) {
	pcap := testenv.SharedFile(t, "pcaps", "beacons", "test-cc-capture-1.pcap")
	dir := t.TempDir()
	bundle, ids := partnerBundle(t, dir)
	list := filepath.Join(dir, "partner.txt")
	os.WriteFile(list, []byte("# partner list\n141.193.213.0/24\nnot an entry at all\n"), 0o644)
	st := filepath.Join(dir, "store")
	if _, errOut, code := runCmd(t, "import", "--store", st, pcap); code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	out, errOut, code := runCmd(t, "hunt", "--store", st, "--internal", "147.32.80.37/32", "--indicators", bundle, "--indicators", list, "--format", "jsonl")
	if code != exitPartial {
		t.Fatalf("hunt exit %d, want 3:\n%s", code, errOut)
	}
	for _, want := range []string{
		"partner.json: object 4 (offset", ids["hash"] + "): not evaluable: object type file is not observed",
		ids["broken"] + "): pattern: pattern offset 35", "partner.txt: line 3: not an address, network, domain or URL",
		"outside its valid_from/valid_until",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	ms := indicatorMatches(t, out)
	// The oracle: tshark over the same packets.
	c2 := ms[ids["c2"]]
	syns := tsharkFields(t, pcap, "ip.dst==141.193.213.21 && tcp.flags.syn==1 && tcp.flags.ack==0", "frame.time_epoch")
	pkts := tsharkFields(t, pcap, "ip.addr==141.193.213.21", "frame.time_epoch", "ip.len")
	var bytes uint64
	for _, p := range pkts {
		n, _ := strconv.ParseUint(p[1], 10, 64)
		bytes += n
	}
	first, last := epoch(t, pkts[0][0]), epoch(t, pkts[len(pkts)-1][0])
	if c2.Connections != len(syns) || c2.Bytes != bytes || c2.Severity != "high" || len(c2.Hosts) != 1 || c2.Hosts[0].Host != "147.32.80.37" {
		t.Errorf("c2 match: %d connections, %d bytes, %s, hosts %+v; tshark: %d connections, %d bytes", c2.Connections, c2.Bytes, c2.Severity, c2.Hosts, len(syns), bytes)
	}
	if c2.FirstSeen != first.Format(time.RFC3339Nano) || c2.LastSeen != last.Format(time.RFC3339Nano) {
		t.Errorf("c2 seen %s to %s; tshark %s to %s", c2.FirstSeen, c2.LastSeen, first.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
	}
	hellos := tsharkFields(t, pcap, `tls.handshake.type==1 && tls.handshake.extensions_server_name=="testing.com"`, "tcp.stream")
	if sni := ms[ids["sni"]]; sni.Connections != len(hellos) || !strings.Contains(strings.Join(sni.Via, ","), "sni") {
		t.Errorf("sni match: %d connections via %v; tshark: %d client hellos", sni.Connections, sni.Via, len(hellos))
	}
	all := tsharkFields(t, pcap, "ip.dst==141.193.213.0/24 && tcp.flags.syn==1 && tcp.flags.ack==0", "ip.dst")
	if net := ms[filepath.Join(dir, "partner.txt")+":2"]; net.Connections != len(all) || net.Values[0] != "141.193.213.0/24" {
		t.Errorf("list network: %+v; tshark %d connections", net, len(all))
	}
	if _, ok := ms[ids["never"]]; ok {
		t.Error("an indicator never valid in the capture's time matched")
	}
	// The query pulls the packets it names.
	if !strings.HasPrefix(c2.Query, "nwhealth query --store STORE --from 2024-02-08T15:16:") || !strings.Contains(c2.Query, "--host 141.193.213.21") {
		t.Errorf("query %q", c2.Query)
	}
	q := strings.Fields(strings.Replace(strings.TrimSuffix(c2.Query, " -w evidence.pcap"), "STORE", st, 1))[1:]
	qout, qerr, qcode := runCmd(t, append(q, "-w", filepath.Join(dir, "evidence.pcap"))...)
	if qcode != 0 {
		t.Fatalf("%v: %d %s %s", q, qcode, qout, qerr)
	}
	if got := tsharkFields(t, filepath.Join(dir, "evidence.pcap"), "ip.addr==141.193.213.21", "frame.number"); len(got) != len(pkts) {
		t.Errorf("the match's query pulled %d packets, tshark counts %d in the capture", len(got), len(pkts))
	}
	// Findings go into the actions: the C2 address is to be blocked.
	if !strings.Contains(out, `"action":"block destination at proxy/firewall","host":"147.32.80.37","target":"testing.com (141.193.213.21)"`) &&
		!strings.Contains(out, `"target":"141.193.213.21"`) {
		t.Errorf("no block action for the C2:\n%s", out)
	}
	// The table names the matches too.
	tab, _, _ := runCmd(t, "hunt", "--store", st, "--internal", "147.32.80.37/32", "--indicators", bundle)
	if !strings.Contains(tab, "Shared indicators that matched") || !strings.Contains(tab, "partner c2") {
		t.Errorf("table:\n%s", tab)
	}
}

func epoch(t *testing.T, s string) time.Time {
	t.Helper()
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	frac = (frac + "000000000")[:9]
	ns, _ := strconv.ParseInt(frac, 10, 64)
	return time.Unix(n, ns).UTC()
}

// The report over the capture carries sightings of the partner's
// indicators, valid STIX, and the block list names the C2.
func TestIntelReportSightingsAndBlocklist(t *testing.T) {
	pcap := testenv.SharedFile(t, "pcaps", "beacons", "test-cc-capture-1.pcap")
	dir := t.TempDir()
	bundle, ids := partnerBundle(t, dir)
	out := filepath.Join(dir, "report.json")
	_, errOut, code := runCmd(t, "report", "--pcap", pcap, "--internal", "147.32.80.37/32", "--indicators", bundle, "--format", "stix", "-o", out)
	if code != exitPartial {
		t.Fatalf("report exit %d, want 3 (two indicators not evaluable):\n%s", code, errOut)
	}
	objs := stixtest.ValidateWith(t, out, ids["c2"], ids["sni"])
	syns := tsharkFields(t, pcap, "ip.dst==141.193.213.21 && tcp.flags.syn==1 && tcp.flags.ack==0", "frame.number")
	found := 0
	for _, o := range objs {
		if o["type"] != "sighting" {
			continue
		}
		switch o["sighting_of_ref"] {
		case ids["c2"]:
			found++
			if int(o["count"].(float64)) != len(syns) {
				t.Errorf("sighting count %v, tshark %d", o["count"], len(syns))
			}
		case ids["sni"]:
			found++
		}
	}
	if found != 2 {
		t.Errorf("%d sightings of the partner's indicators, want 2", found)
	}
	for _, as := range []string{"squid", "nft", "plain"} {
		bl, errOut, code := runCmd(t, "report", "--pcap", pcap, "--internal", "147.32.80.37/32", "--indicators", bundle, "--format", "blocklist", "--as", as)
		if code != exitPartial || !strings.Contains(bl, "141.193.213.21") {
			t.Errorf("--as %s: exit %d\n%s\n%s", as, code, bl, errOut)
		}
		if as == "squid" && !strings.Contains(bl, "acl nwhealth_block_domain dstdomain testing.com") {
			t.Errorf("squid list lacks the C2 name:\n%s", bl)
		}
	}
}

func TestIntelUsage(t *testing.T) {
	for _, args := range [][]string{
		{"hunt", "--zeek", "x", "--as", "squid"},
		{"hunt", "--zeek", "x", "--format", "blocklist", "--as", "iptables"},
		{"report", "--pcap", "x", "--apply", "pf"},
	} {
		if _, errOut, code := runCmd(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if _, errOut, code := runCmd(t, "hunt", "--zeek", smallConnLog(t, false), "--indicators", "/nonexistent/feed.json"); code != exitError || !strings.Contains(errOut, "feed.json") {
		t.Errorf("missing indicator file: exit %d: %s", code, errOut)
	}
}

// URL indicators over a real capture (a PowerShell Empire HTTP beacon):
// flow records keep each connection's first request target, so a URL
// matches as many connections as tshark finds opening with it.
func TestIntelURLOverCapture(t *testing.T) {
	pcap := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", "capture-Mon-02-13-17-17-15-34_Empire.pcap")
	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	os.WriteFile(list, []byte("hxxp://192.168.1[.]161/news.asp\n"), 0o644)
	bundle := filepath.Join(dir, "php.json")
	os.WriteFile(bundle, []byte(`{"type": "indicator", "spec_version": "2.1", "id": "indicator--00000001-2222-4222-8222-222222222222",
 "created": "2017-02-01T00:00:00.000Z", "modified": "2017-02-01T00:00:00.000Z", "name": "Empire staging pages",
 "pattern": "[url:value LIKE 'http://192.168.1.161/%.php' OR url:value LIKE 'http://192.168.1.161/%.jsp']", "pattern_type": "stix",
 "valid_from": "2017-01-01T00:00:00Z"}`), 0o644)
	out, errOut, code := runCmd(t, "hunt", "--pcap", pcap, "--indicators", list, "--indicators", bundle, "--format", "jsonl", "--min-severity", "info")
	if code != 0 {
		t.Fatalf("hunt exit %d:\n%s", code, errOut)
	}
	ms := indicatorMatches(t, out)
	// tshark: the first request of each TCP stream.
	first := map[string]string{}
	for _, row := range tsharkFields(t, pcap, "http.request", "tcp.stream", "http.request.full_uri") {
		if _, ok := first[row[0]]; !ok && len(row) > 1 {
			first[row[0]] = row[1]
		}
	}
	var news, staging int
	for _, uri := range first {
		switch {
		case uri == "http://192.168.1.161/news.asp":
			news++
		case strings.HasPrefix(uri, "http://192.168.1.161/") && (strings.HasSuffix(uri, ".php") || strings.HasSuffix(uri, ".jsp")):
			staging++
		}
	}
	if news == 0 || staging == 0 {
		t.Fatalf("tshark finds %d and %d streams: the capture is not the one expected", news, staging)
	}
	if m := ms[list+":1"]; m.Connections != news || m.Via[0] != "url" {
		t.Errorf("news.asp: %d connections via %v; tshark %d streams open with it", m.Connections, m.Via, news)
	}
	if m := ms["indicator--00000001-2222-4222-8222-222222222222"]; m.Connections != staging {
		t.Errorf("staging pages: %d connections; tshark %d streams", m.Connections, staging)
	}
}
