package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

// TestHuntDNSTunnels hunts real iodine and dns2tcp tunnels recorded
// between two network namespaces (testdata/SOURCES.md): each must rank
// first, as DNS tunnelling (T1071.004, T1572) under its domain, with the
// sinkhole at the resolver among its actions.
func TestHuntDNSTunnels(t *testing.T) {
	for _, tc := range []struct {
		pcap, domain string
	}{
		{"iodine.pcap", "example.com"},
		{"dns2tcp.pcap", "example.net"},
	} {
		t.Run(tc.pcap, func(t *testing.T) {
			out, stderr, code := runCmd(t, "hunt", "--pcap", filepath.Join("..", "..", "testdata", "dns-tunnels", tc.pcap), "--format", "jsonl")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			fs := readFindings(t, out)
			if len(fs) == 0 {
				t.Fatal("no findings")
			}
			_, f := firstOfKind(fs, "dns")
			if f == nil || f["dst_name"] != tc.domain || f["src"] != "10.53.0.2" {
				t.Fatalf("first DNS finding %v, want the DNS tunnel under %s", f, tc.domain)
			}
			// Its host first, carrying it, with the sinkhole as its action.
			checkHostCarries(t, fs[0], f, "10.53.0.2", "block the domain at the resolver (sinkhole)")
			var attack []string
			for _, a := range f["attack"].([]any) {
				attack = append(attack, a.(string))
			}
			if !slices.Contains(attack, "T1071.004") || !slices.Contains(attack, "T1572") {
				t.Errorf("attack %v, want T1071.004 and T1572", attack)
			}
			if s := f["severity"]; s != "medium" && s != "high" {
				t.Errorf("severity %v, want medium or high (one host: no group behaviour)", s)
			}
			dns, _ := f["dns"].(map[string]any)
			if dns == nil || dns["largest_flow_queries"].(float64) < 100 || dns["volume"].(float64) < 0.5 {
				t.Errorf("dns evidence %v, want a flow of 100+ queries and tunnel volume", dns)
			}
			sink := false
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var a map[string]any
				if json.Unmarshal([]byte(line), &a) != nil {
					t.Fatalf("bad line %q", line)
				}
				if a["type"] == "action" && a["action"] == "block the domain at the resolver (sinkhole)" && a["target"] == tc.domain {
					sink = true
				}
			}
			if !sink {
				t.Errorf("no sinkhole action for %s:\n%s", tc.domain, out)
			}
		})
	}
}

// TestReportDNSTunnel: report over the real iodine tunnel puts its host at
// command-and-control (a C2 step with the DNS techniques), sinkholes the
// domain with the finding as evidence, draws the tunnel as a bar on the
// host's lane of the HTML timeline, and gives a STIX domain-name
// indicator that validates.
func TestReportDNSTunnel(t *testing.T) {
	pcap := filepath.Join("..", "..", "testdata", "dns-tunnels", "iodine.pcap")
	out, stderr, code := runCmd(t, "report", "--pcap", pcap, "--format", "jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var host, sink, dnsF map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("bad line %q", line)
		}
		switch {
		case o["type"] == "finding" && o["kind"] == "dns" && dnsF == nil:
			dnsF = o
		case o["type"] == "host" && o["host"] == "10.53.0.2":
			host = o
		case o["type"] == "action" && o["action"] == "block the domain at the resolver (sinkhole)" && o["target"] == "example.com":
			sink = o
		}
	}
	if host == nil || host["phase"] != "command-and-control" || host["role"] != "beaconing" {
		t.Fatalf("host %v, want 10.53.0.2 beaconing at command-and-control", host)
	}
	steps, _ := host["steps"].([]any)
	if len(steps) != 1 || !strings.Contains(fmt.Sprint(steps[0]), "T1572") || !strings.Contains(fmt.Sprint(steps[0]), "tunnels through DNS under example.com") {
		t.Errorf("steps %v, want one C2 step telling the tunnel", steps)
	}
	if dnsF == nil || sink == nil || fmt.Sprint(sink["evidence"]) != "["+fmt.Sprint(dnsF["id"])+"]" {
		t.Errorf("sinkhole action %v, want example.com with the DNS finding %v", sink, dnsF)
	}
	html, stderr, code := runCmd(t, "report", "--pcap", pcap, "--format", "html")
	if code != 0 || !strings.Contains(html, "<title>") || !strings.Contains(html, "dns 10.53.0.2 -&gt; 198.51.100.53: tunnels through DNS under example.com") {
		t.Errorf("exit %d, no DNS bar on the timeline: %s", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if _, stderr, code := runCmd(t, "report", "--pcap", pcap, "--format", "stix", "-o", path); code != 0 {
		t.Fatalf("stix: exit %d: %s", code, stderr)
	}
	found := false
	for _, o := range stixtest.Validate(t, path) {
		found = found || o["type"] == "indicator" && o["pattern"] == "[domain-name:value = 'example.com']"
	}
	if !found {
		t.Error("no domain-name indicator for example.com")
	}
}

// TestHuntZeekDNSQueryTypes: from Zeek conn and dns logs, a host's DNS
// beacon asking TXT records of fresh names under one domain gives a DNS
// finding whose evidence counts the query types (dns.log's qtype_name,
// which no flow record carries); the same logs with A questions do not.
func TestHuntZeekDNSQueryTypes(t *testing.T) {
	const dnsHeader = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tqtype\tqtype_name\tanswers\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tcount\tstring\tvector[string]\n"
	const b32 = "abcdefghijklmnopqrstuvwxyz234567"
	for _, tc := range []struct {
		qtype    string
		wantData float64
	}{{"TXT", 1}, {"A", 0}} {
		t.Run(tc.qtype, func(t *testing.T) {
			var conn, dns strings.Builder
			conn.WriteString(connHeader)
			dns.WriteString(dnsHeader)
			rng := uint64(7)
			next := func(n int) int { rng = rng*6364136223846793005 + 1442695040888963407; return int(rng>>33) % n }
			start := 1772431200.0
			row := func(i int, ts float64, src, name, qt string) {
				uid := fmt.Sprintf("C%d", i)
				fmt.Fprintf(&conn, "%.6f\t%s\t%s\t%d\t10.1.0.53\t53\tudp\tdns\t0.02\t60\t120\tSF\t-\t-\t0\tDd\t1\t88\t1\t148\t-\n", ts, uid, src, 1024+next(60000))
				fmt.Fprintf(&dns, "%.6f\t%s\t%s\t1\t10.1.0.53\t53\tudp\t%s\t-\t%s\t-\n", ts, uid, src, name, qt)
			}
			i := 0
			// Ten hosts look up a few names; host .5 beacons every 60 s ±20%.
			for h := range 10 {
				for at := 0.0; at < 4*3600; at += float64(300 + next(600)) {
					i++
					row(i, start+at, fmt.Sprintf("10.1.0.%d", 10+h), []string{"www.example.org", "login.microsoftonline.com", "api.github.com"}[next(3)], "A")
				}
			}
			for at := 0.0; at < 4*3600; at += float64(48 + next(24)) {
				label := make([]byte, 30)
				for j := range label {
					label[j] = b32[next(len(b32))]
				}
				i++
				row(i, start+at, "10.1.0.5", string(label)+".s.cdn-telemetry.com", tc.qtype)
			}
			dir := t.TempDir()
			cp, dp := filepath.Join(dir, "conn.log"), filepath.Join(dir, "dns.log")
			if err := os.WriteFile(cp, []byte(conn.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dp, []byte(dns.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := runCmd(t, "hunt", "--zeek", dp, "--zeek", cp, "--format", "jsonl", "--min-severity", "info")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var f map[string]any
			for _, x := range readFindings(t, out) {
				if x["kind"] == "dns" && x["src"] == "10.1.0.5" && x["dst_name"] == "cdn-telemetry.com" {
					f = x
				}
			}
			if f == nil {
				t.Fatalf("no DNS finding for the beacon:\n%s", out)
			}
			ev, _ := f["dns"].(map[string]any)
			if got, ok := ev["data_qtypes"].(float64); !ok || got != tc.wantData {
				t.Errorf("data query types %v, want %v: %v", ev["data_qtypes"], tc.wantData, ev)
			}
			if has := strings.Contains(fmt.Sprint(f["reasons"]), "ask for TXT, NULL"); has != (tc.wantData > 0) {
				t.Errorf("reasons %v: query type reason %v", f["reasons"], has)
			}
		})
	}
}
