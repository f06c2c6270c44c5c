package main

import (
	"encoding/json"
	"fmt"
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
			f := fs[0]
			if f["kind"] != "dns" || f["dst_name"] != tc.domain || f["src"] != "10.53.0.2" {
				t.Fatalf("first finding %v, want the DNS tunnel under %s", f, tc.domain)
			}
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
	var host, sink map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("bad line %q", line)
		}
		switch {
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
	if sink == nil || fmt.Sprint(sink["evidence"]) != "[F1]" {
		t.Errorf("sinkhole action %v, want example.com with F1", sink)
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
