package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/chserver"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

// icmpCapture is a capture of testdata/icmp-tunnels (testdata/SOURCES.md).
func icmpCapture(name string) string {
	return filepath.Join("..", "..", "testdata", "icmp-tunnels", name)
}

// icmpCases are the real tunnels and the icmpsh look-alike: all from
// 10.42.0.2 to 203.0.113.66.
var icmpCases = []struct {
	pcap   string
	tunnel bool // T1572 expected
}{
	{"ptunnel-ng.pcap", true},
	{"ptunnel.pcap", true},
	{"icmptx.pcap", true},
	{"icmpsh.pcap", false},
}

const blockICMP = "block the destination's ICMP at the egress firewall"

// checkICMPFinding checks that f is the ICMP finding of 10.42.0.2 to
// 203.0.113.66 at medium or above with the techniques of its kind.
func checkICMPFinding(t *testing.T, f map[string]any, tunnel bool) {
	t.Helper()
	if f["kind"] != "icmp" || f["src"] != "10.42.0.2" || f["dst"] != "203.0.113.66" || f["proto"] != "icmp" {
		t.Fatalf("first finding %v, want ICMP from 10.42.0.2 to 203.0.113.66", f)
	}
	var attack []string
	for _, a := range f["attack"].([]any) {
		attack = append(attack, a.(string))
	}
	want := []string{"T1095"}
	if tunnel {
		want = append(want, "T1572")
	}
	if !slices.Equal(attack, want) {
		t.Errorf("attack %v, want %v", attack, want)
	}
	if s := f["severity"]; s != "medium" && s != "high" {
		t.Errorf("severity %v, want medium or high", s)
	}
	icmp, _ := f["icmp"].(map[string]any)
	if icmp == nil || icmp["unechoed_share"].(float64) < 0.5 || icmp["payload"].(float64) < 0.5 {
		t.Errorf("icmp evidence %v, want most bytes unechoed", icmp)
	}
}

// firstOfKind is the first finding of a kind, and its index (-1 when none).
func firstOfKind(fs []map[string]any, kind string) (int, map[string]any) {
	for i, f := range fs {
		if f["kind"] == kind {
			return i, f
		}
	}
	return -1, nil
}

// checkHostCarries checks that f, the first finding, is src's host
// finding carrying the evidence of c (its score at least, its techniques)
// with the action a finding of c's kind asks first.
func checkHostCarries(t *testing.T, f, c map[string]any, src, action string) {
	t.Helper()
	if f["kind"] != "host" || f["src"] != src {
		t.Fatalf("first finding %v, want the host finding of %s", f, src)
	}
	if f["score"].(float64) < c["score"].(float64) || fmt.Sprint(f["attack"]) != fmt.Sprint(c["attack"]) {
		t.Errorf("host %v %v, want at least %v with %v", f["score"], f["attack"], c["score"], c["attack"])
	}
	if !strings.HasPrefix(fmt.Sprint(f["action"]), action) {
		t.Errorf("host action %v, want %s", f["action"], action)
	}
}

// TestHuntICMPTunnels hunts real ptunnel-ng, ptunnel and icmptx tunnels
// and an icmpsh look-alike recorded between network namespaces: each must
// rank first as ICMP command and control (T1095; T1572 for the tunnels)
// with the egress ICMP block among its actions, alone and among the
// ordinary pings of 16 hosts.
func TestHuntICMPTunnels(t *testing.T) {
	for _, tc := range icmpCases {
		for _, with := range []string{"", "pings.pcap"} {
			t.Run(tc.pcap+"+"+with, func(t *testing.T) {
				args := []string{"hunt", "--pcap", icmpCapture(tc.pcap)}
				if with != "" {
					args = append(args, icmpCapture(with))
				}
				out, stderr, code := runCmd(t, append(args, "--format", "jsonl", "--min-severity", "info")...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				fs := readFindings(t, out)
				if len(fs) == 0 {
					t.Fatal("no findings")
				}
				i, c := firstOfKind(fs, "icmp")
				if c == nil {
					t.Fatalf("no ICMP finding: %v", fs)
				}
				t.Logf("%v %v %v", c["severity"], c["score"], c["reasons"])
				checkICMPFinding(t, c, tc.tunnel)
				// Its host first, carrying it: ranked by it, acted on as
				// for it.
				checkHostCarries(t, fs[0], c, "10.42.0.2", blockICMP)
				for j, f := range fs {
					if j == 0 || j == i {
						continue
					}
					if f["severity"] != "info" && f["severity"] != "low" {
						t.Errorf("another finding above low: %v", f)
					}
				}
				block := false
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var a map[string]any
					if json.Unmarshal([]byte(line), &a) != nil {
						t.Fatalf("bad line %q", line)
					}
					if a["type"] == "action" && a["action"] == blockICMP && a["target"] == "203.0.113.66" {
						block = true
					}
				}
				if !block {
					t.Errorf("no egress ICMP block of 203.0.113.66:\n%s", out)
				}
			})
		}
	}
}

// TestHuntICMPNegatives: real pings (a fleet's monitoring target, one
// host's monitor, Windows and path-MTU sizes) and traceroute over UDP and
// ICMP give nothing above low, and no ICMP beacon channel.
func TestHuntICMPNegatives(t *testing.T) {
	for _, pcap := range []string{"pings.pcap", "traceroute.pcap"} {
		t.Run(pcap, func(t *testing.T) {
			out, stderr, code := runCmd(t, "hunt", "--pcap", icmpCapture(pcap), "--format", "jsonl", "--min-severity", "info")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, f := range readFindings(t, out) {
				if f["severity"] != "info" && f["severity"] != "low" {
					t.Errorf("finding above low: %v", f)
				}
				if f["kind"] == "channel" && f["proto"] == "icmp" {
					t.Errorf("an ICMP beacon channel: %v", f)
				}
			}
		})
	}
}

// tsharkConnLog writes the Zeek conn.log rows of a capture's ICMP as
// tshark sees it, apart from nwhealth's flow builder: one row per address
// pair until a minute passes without a packet (Zeek's
// icmp_inactivity_timeout), the originator the sender of the first echo
// request (else of the first packet), id.orig_p/id.resp_p its type and
// code, payload bytes (IP length less the IP header, fragments counted)
// and datagrams each way.
func tsharkConnLog(t *testing.T, pcap string) string {
	t.Helper()
	type conn struct {
		first, last          float64
		orig, resp           string
		typ, code            string
		opkts, rpkts, ob, rb int
		oip, rip             int
	}
	var conns []*conn
	open := map[[2]string]*conn{}
	for _, f := range tsharkFields(t, pcap, "ip.proto == 1", "frame.time_epoch", "ip.src", "ip.dst", "icmp.type", "icmp.code", "ip.len", "ip.hdr_len") {
		if len(f) < 7 {
			t.Fatalf("tshark row %q", f)
		}
		ts, _ := strconv.ParseFloat(f[0], 64)
		src, dst, typ, code := f[1], f[2], f[3], f[4]
		l, _ := strconv.Atoi(f[5])
		h, _ := strconv.Atoi(f[6])
		k := [2]string{min(src, dst), max(src, dst)}
		c := open[k]
		if c == nil || ts-c.last > 60 {
			c = &conn{first: ts, orig: src, resp: dst, typ: typ, code: code}
			if typ == "0" { // a reply seen first: its receiver asked
				c.orig, c.resp, c.typ = dst, src, "8"
			}
			open[k] = c
			conns = append(conns, c)
		}
		c.last = ts
		datagram := typ != "" // a fragment after the first carries no ICMP header
		if src == c.orig {
			c.ob += l - h
			c.oip += l
			if datagram {
				c.opkts++
			}
		} else {
			c.rb += l - h
			c.rip += l
			if datagram {
				c.rpkts++
			}
		}
	}
	var b strings.Builder
	b.WriteString(connHeader)
	for i, c := range conns {
		fmt.Fprintf(&b, "%.6f\tC%d\t%s\t%s\t%s\t%s\ticmp\t-\t%.6f\t%d\t%d\tOTH\t-\t-\t0\t-\t%d\t%d\t%d\t%d\t-\n",
			c.first, i, c.orig, c.typ, c.resp, cmpOr(c.code, "0"), c.last-c.first, c.ob, c.rb, c.opkts, c.oip, c.rpkts, c.rip)
	}
	p := filepath.Join(t.TempDir(), "conn.log")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestHuntICMPZeek: the same tunnels as Zeek conn.log rows built from
// tshark's view of the captures (no Zeek package on Debian 12; the rows do
// not come from nwhealth's flow builder) rank first with the same
// severity and techniques as from the packets, and the pings stay low.
func TestHuntICMPZeek(t *testing.T) {
	for _, tc := range icmpCases {
		t.Run(tc.pcap, func(t *testing.T) {
			log := tsharkConnLog(t, icmpCapture(tc.pcap))
			out, stderr, code := runCmd(t, "hunt", "--zeek", log, "--format", "jsonl")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			fs := readFindings(t, out)
			if len(fs) == 0 {
				t.Fatal("no findings")
			}
			_, c := firstOfKind(fs, "icmp")
			if c == nil {
				t.Fatalf("no ICMP finding: %v", fs)
			}
			t.Logf("%v %v %v", c["severity"], c["score"], c["reasons"])
			checkICMPFinding(t, c, tc.tunnel)
			checkHostCarries(t, fs[0], c, "10.42.0.2", blockICMP)
			pout, _, _ := runCmd(t, "hunt", "--pcap", icmpCapture(tc.pcap), "--format", "jsonl")
			if _, pc := firstOfKind(readFindings(t, pout), "icmp"); pc == nil || pc["severity"] != c["severity"] {
				t.Errorf("conn.log severity %v, from the packets %v", c["severity"], pc)
			}
		})
	}
	log := tsharkConnLog(t, icmpCapture("pings.pcap"))
	out, stderr, code := runCmd(t, "hunt", "--zeek", log, "--format", "jsonl", "--min-severity", "info")
	if code != 0 {
		t.Fatalf("pings: exit %d: %s", code, stderr)
	}
	if strings.TrimSpace(out) == "" {
		return // one row a pair: no schedule, no echo that differs
	}
	for _, f := range readFindings(t, out) {
		if f["severity"] != "info" && f["severity"] != "low" {
			t.Errorf("pings from conn.log: finding above low: %v", f)
		}
	}
}

// TestReportICMPTunnel: report over the real ptunnel-ng tunnel puts its
// host at command-and-control (a C2 step with T1095 and T1572), makes the
// proxy a controller whose ICMP is blocked at the egress with the finding
// as evidence, draws the tunnel on the host's lane of the HTML timeline,
// and gives a STIX indicator for the address's ICMP that validates.
func TestReportICMPTunnel(t *testing.T) {
	pcap := icmpCapture("ptunnel-ng.pcap")
	out, stderr, code := runCmd(t, "report", "--pcap", pcap, "--format", "jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var host, block, ctrl map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("bad line %q", line)
		}
		switch {
		case o["type"] == "host" && o["host"] == "10.42.0.2":
			host = o
		case o["type"] == "action" && o["action"] == blockICMP && o["target"] == "203.0.113.66":
			block = o
		case o["type"] == "controller":
			ctrl = o
		}
	}
	if host == nil || host["phase"] != "command-and-control" || host["role"] != "beaconing" {
		t.Fatalf("host %v, want 10.42.0.2 beaconing at command-and-control", host)
	}
	steps, _ := host["steps"].([]any)
	if len(steps) != 1 || !strings.Contains(fmt.Sprint(steps[0]), "T1572") || !strings.Contains(fmt.Sprint(steps[0]), "tunnels through ICMP echo to 203.0.113.66") {
		t.Errorf("steps %v, want one C2 step telling the tunnel", steps)
	}
	if block == nil || !strings.Contains(fmt.Sprint(block["evidence"]), "F1") {
		t.Errorf("egress ICMP block %v, want 203.0.113.66 with F1\n%s", block, out)
	}
	if ctrl == nil || !strings.Contains(fmt.Sprint(ctrl), "203.0.113.66") {
		t.Errorf("controller %v, want 203.0.113.66", ctrl)
	}
	html, stderr, code := runCmd(t, "report", "--pcap", pcap, "--format", "html")
	if code != 0 || !strings.Contains(html, "icmp 10.42.0.2 -&gt; 203.0.113.66: tunnels through ICMP echo") {
		t.Errorf("exit %d, no ICMP bar on the timeline: %s", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if _, stderr, code := runCmd(t, "report", "--pcap", pcap, "--format", "stix", "-o", path); code != 0 {
		t.Fatalf("stix: exit %d: %s", code, stderr)
	}
	found := false
	for _, o := range stixtest.Validate(t, path) {
		found = found || o["type"] == "indicator" &&
			o["pattern"] == "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.66' AND network-traffic:protocols[*] = 'icmp']"
	}
	if !found {
		t.Error("no ICMP indicator for 203.0.113.66")
	}
}

// TestHuntClickHouseICMP: hunt --clickhouse over the flow records of the
// real tunnel, the look-alike and the pings gives the findings hunt
// --store gives (ICMP echo records come apart from the pairs, which carry
// no ICMP type), and report --clickhouse the incident report --store
// gives.
func TestHuntClickHouseICMP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if code, _, errOut := nwh(t, nil, "import", "--store", dir, icmpCapture("ptunnel-ng.pcap"), icmpCapture("icmpsh.pcap"), icmpCapture("pings.pcap")); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	code, want, errOut := nwh(t, nil, "hunt", "--store", dir, "--format", "jsonl", "--min-severity", "info")
	if code != 0 {
		t.Fatalf("hunt --store: exit %d\n%s", code, errOut)
	}
	if n := strings.Count(want, `"kind":"icmp"`); n < 10 || !strings.Contains(want, `"T1572"`) {
		t.Fatalf("hunt --store: %d ICMP findings, want the tunnel's and the pings':\n%s", n, want)
	}
	s := chserver.Start(t, 0, chserver.Options{})
	url := s.URL("", "", "fleet")
	if code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", "edge-1"); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	code, got, errOut := nwh(t, nil, "hunt", "--clickhouse", url, "--format", "jsonl", "--min-severity", "info")
	if code != 0 {
		t.Fatalf("hunt --clickhouse: exit %d\n%s", code, errOut)
	}
	compareLines(t, got, want)
	// Report: hunt from the database, the packets from the store.
	_, wantRep, _ := nwh(t, nil, "report", "--store", dir, "--format", "jsonl")
	code, gotRep, errOut := nwh(t, nil, "report", "--store", dir, "--clickhouse", url, "--format", "jsonl")
	if code != 0 {
		t.Fatalf("report --clickhouse: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(wantRep, blockICMP) {
		t.Errorf("report --store: no egress ICMP block:\n%s", wantRep)
	}
	compareLines(t, gotRep, wantRep)
}
