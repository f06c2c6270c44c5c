package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
