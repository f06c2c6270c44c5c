package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var fixedMeta = Meta{Title: "fixture incident", Generated: time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC), Inputs: []string{"pcap fixture.pcap"}}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d (go test -update rewrites it, review the diff):\nwant %s\ngot  %s", p, i+1, w, g)
			}
		}
	}
}

// The fixture incident in each format, compared with reviewed files:
// every field of every line type is in them.
func TestGoldenJSONL(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSONL(&b, Build(fixtureInput(t))); err != nil {
		t.Fatal(err)
	}
	golden(t, "fixture.jsonl", b.Bytes())
	jsonltest.Check(t, b.Bytes())
	types := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		types[m["type"].(string)]++
		for k, v := range m {
			if s, ok := v.(string); ok && (k == "first" || k == "last" || k == "ts" || k == "end" || k == "first_seen" || k == "last_seen" || k == "from" || k == "to") && s != "" {
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
					t.Errorf("%s %s = %q: want RFC 3339 UTC", m["type"], k, s)
				}
			}
		}
	}
	if types["summary"] != 1 || types["host"] == 0 || types["controller"] != 2 || types["action"] == 0 || types["finding"] != 5 || types["operation"] != 6 {
		t.Errorf("line types %v", types)
	}
}

func TestGoldenTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, Build(fixtureInput(t))); err != nil {
		t.Fatal(err)
	}
	golden(t, "fixture.table", b.Bytes())
	var e bytes.Buffer
	if err := WriteTable(&e, Build(Input{})); err != nil || !strings.Contains(e.String(), "Nothing to report.") {
		t.Errorf("empty incident: %v %q", err, e.String())
	}
}

func TestSTIX(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSTIX(&b, Build(fixtureInput(t)), fixedMeta); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stixtest.Validate(t, path)
	// Reruns give the same ids (and here the same bytes: the clock is fixed).
	var again bytes.Buffer
	if err := WriteSTIX(&again, Build(fixtureInput(t)), fixedMeta); err != nil || !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Errorf("second rendering differs (%v)", err)
	}
	var bundle struct {
		Objects []map[string]any `json:"objects"`
	}
	if err := json.Unmarshal(b.Bytes(), &bundle); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	rels := map[string]int{}
	for _, o := range bundle.Objects {
		types[o["type"].(string)]++
		if o["type"] == "relationship" {
			rels[o["relationship_type"].(string)]++
		}
	}
	for _, typ := range []string{"identity", "indicator", "infrastructure", "observed-data", "sighting", "attack-pattern", "course-of-action",
		"malware", "relationship", "report", "ipv4-addr", "domain-name", "network-traffic", "user-account"} {
		if types[typ] == 0 {
			t.Errorf("no %s object (%v)", typ, types)
		}
	}
	for _, r := range []string{"indicates", "consists-of", "beacons-to", "uses", "targets", "mitigates"} {
		if rels[r] == 0 {
			t.Errorf("no %s relationship (%v)", r, rels)
		}
	}
	if n := len(Build(fixtureInput(t)).Actions); types["course-of-action"] != n {
		t.Errorf("%d courses of action for %d actions", types["course-of-action"], n)
	}
}

// Elements and attributes the page is made of: a string from packets
// that escaped escaping would add one.
var (
	pageElements = regexp.MustCompile(`^(html|head|meta|title|style|body|header|h1|h2|h3|div|p|span|strong|ol|ul|li|section|table|thead|tbody|tr|th|td|br|i|code|input|footer|script|svg|defs|marker|path|rect|text|line|circle|g)$`)
	pageAttrs    = regexp.MustCompile(`^(lang|charset|http-equiv|content|name|class|id|style|title|data-host|type|placeholder|aria-label|xmlns|viewbox|width|height|role|x|y|x1|y1|x2|y2|cx|cy|r|rx|fill|stroke|stroke-width|stroke-dasharray|stroke-linecap|opacity|font-size|font-weight|text-anchor|d|marker-end|refx|refy|markerwidth|markerheight|orient|tabindex)$`)
)

// checkPage tokenizes a page: only our elements and attributes, one
// script, and no attribute value that starts a script.
func checkPage(t testing.TB, page []byte) {
	t.Helper()
	z := html.NewTokenizer(bytes.NewReader(page))
	scripts := 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		if !pageElements.MatchString(tok.Data) {
			t.Fatalf("unexpected element <%s>", tok.Data)
		}
		if tok.Data == "script" {
			scripts++
		}
		for _, a := range tok.Attr {
			if !pageAttrs.MatchString(a.Key) {
				t.Fatalf("unexpected attribute %s=%q on <%s>", a.Key, a.Val, tok.Data)
			}
		}
	}
	if scripts != 1 {
		t.Fatalf("%d script elements, want our one", scripts)
	}
}

// hostile puts s in every string that comes from packets or findings.
func hostile(t testing.TB, s string) Input {
	in := fixtureInput(t.(*testing.T))
	for i := range in.Operations {
		op := &in.Operations[i]
		op.User, op.Domain, op.Target, op.Command, op.Operation = s, s, s, s, s+op.Operation
		op.Fields = []replay.Field{{Name: s, Value: s}}
	}
	for i := range in.Hunt.Findings {
		f := &in.Hunt.Findings[i]
		f.DstName, f.Reasons = s, []string{s}
	}
	return in
}

func TestHTML(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, Build(fixtureInput(t)), fixedMeta); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	checkPage(t, b.Bytes())
	for _, want := range []string{`id="summary"`, `id="actions"`, `id="hosts"`, `id="timeline"`, `id="graph"`, `id="controllers"`,
		`id="evidence"`, `id="operations"`, `id="findings"`, "10.0.0.5 (ws-005)", "c2.example.net (203.0.113.7)", "10.0.0.1 (dc01)",
		"stepping-stone", "lateral-movement", "executed-on", "isolate host", "nwhealth query --store STORE", "@media print", scriptHash()} {
		if !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing is fetched: no URL but the SVG namespace.
	for _, bad := range []string{"http://", "https://", "src=", "href=", "@import", "url(http"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("page holds %q", bad)
		}
	}
}

func TestHTMLEscapesHostileStrings(t *testing.T) {
	for _, s := range []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `' onmouseover='alert(3)`,
		`</title><script>alert(4)</script>`, `javascript:alert(5)`, `</style><svg onload=alert(6)>`, "]]><!--"} {
		var b bytes.Buffer
		if err := WriteHTML(&b, Build(hostile(t, s)), fixedMeta); err != nil {
			t.Fatal(err)
		}
		checkPage(t, b.Bytes())
		if strings.Contains(b.String(), s) && strings.ContainsAny(s, `<>"'`) {
			t.Errorf("%q appears unescaped", s)
		}
	}
}

func FuzzHTMLEscaping(f *testing.F) {
	for _, s := range []string{"<script>alert(1)</script>", `"><img src=x onerror=alert(1)>`, "a\x00b", "\u2028", "&lt;", "{{.Inc}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b bytes.Buffer
		if err := WriteHTML(&b, Build(hostile(t, s)), fixedMeta); err != nil {
			t.Fatal(err)
		}
		checkPage(t, b.Bytes())
	})
}

func TestCompressIDs(t *testing.T) {
	tests := []struct {
		in   []string
		max  int
		want string
	}{
		{nil, 5, "-"},
		{[]string{"F1", "F3", "OP1", "OP2", "OP3", "OP5"}, 5, "F1 F3 OP1-OP3 OP5"},
		{[]string{"OP1", "OP2"}, 5, "OP1 OP2"},
		{[]string{"F1", "F2", "F3", "F4", "OP9"}, 1, "F1-F4 +1"},
		{[]string{"x", "OP1"}, 5, "x OP1"},
	}
	for _, tc := range tests {
		if got := compressIDs(tc.in, tc.max); got != tc.want {
			t.Errorf("compressIDs(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTicks(t *testing.T) {
	first := time.Date(2026, 3, 2, 0, 3, 0, 0, time.UTC)
	ts := ticks(first, first.Add(24*time.Hour))
	if len(ts) == 0 || len(ts) > 13 || !ts[0].Equal(time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)) || ts[1].Sub(ts[0]) != 2*time.Hour {
		t.Errorf("ticks %v", ts)
	}
	if ts := ticks(first, first.Add(30*time.Second)); len(ts) == 0 || len(ts) > 13 {
		t.Errorf("short span ticks %v", ts)
	}
	if ts := ticks(first.Add(123*time.Millisecond), first.Add(700*time.Millisecond)); len(ts) < 3 || len(ts) > 13 {
		t.Errorf("sub-second span ticks %v", ts)
	}
}

func TestSeverityVocabulary(t *testing.T) {
	// The incident's severities are hunt's, so --fail-on reads the same.
	inc := Build(fixtureInput(t))
	for _, h := range inc.Hosts {
		if _, err := hunt.ParseSeverity(h.Severity.String()); err != nil {
			t.Errorf("host %s severity %v", h.Addr, h.Severity)
		}
	}
}

func TestSTIXIPv6Controller(t *testing.T) {
	in := fixtureInput(t)
	c6 := ip("2001:db8::77")
	in.Hunt.Findings[1].Dst = c6
	in.Contacts = nil
	var b bytes.Buffer
	if err := WriteSTIX(&b, Build(in), fixedMeta); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range stixtest.Validate(t, path) {
		if o["type"] == "indicator" && o["pattern"] == "[ipv6-addr:value = '2001:db8::77']" {
			found = true
		}
	}
	if !found {
		t.Error("no ipv6-addr indicator for the controller")
	}
}

func TestAllowedSource(t *testing.T) {
	in := fixtureInput(t)
	in.Allowed = func(a netip.Addr, _ string) bool { return a == stone }
	// hunt, given the same allow list, makes no finding of the host.
	var kept []hunt.Finding
	for _, f := range in.Hunt.Findings {
		if f.Src != stone {
			kept = append(kept, f)
		}
	}
	in.Hunt.Findings, in.Contacts = kept, nil
	inc := Build(in)
	// The stepping stone's operations are listed, but are evidence
	// neither against it nor against its targets.
	for _, op := range inc.Operations {
		if op.Src == stone && op.SrcRole != "allowed" {
			t.Errorf("operation %s from an allowed host has role %q", op.ID, op.SrcRole)
		}
	}
	if len(inc.Operations) != 6 {
		t.Errorf("%d operations listed, want all 6", len(inc.Operations))
	}
	if h := inc.Host(stone); h != nil {
		t.Errorf("allowed host in the incident: %+v", h)
	}
	if h := inc.Host(psTgt); h != nil {
		t.Errorf("the allowed host's target is in the incident: %+v", h)
	}
}

// TestSTIXDNSFinding: a DNS tunnel finding's bundle validates against
// the STIX 2.1 schemas with its domain-name indicator: the pattern on the
// registered domain, indicating DNS C2 and protocol tunnelling (attack
// patterns with their tactic), related to the domain and the host, and
// mitigated by the sinkhole course of action; a low one gives no
// indicator.
func TestSTIXDNSFinding(t *testing.T) {
	host := ip("10.0.0.40")
	for _, tc := range []struct {
		name      string
		sev       hunt.Severity
		indicator bool
	}{
		{"high tunnel", hunt.High, true},
		{"medium", hunt.Medium, true},
		{"low", hunt.Low, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixtureInput(t)
			in.MinSeverity = hunt.Low
			in.Hunt.Findings = append(in.Hunt.Findings, hunt.Finding{Kind: hunt.KindDNS, Src: host, Dst: ip("10.0.0.53"), DstName: "dnsq.org",
				DstPort: 53, Proto: 17, Score: 0.7, Severity: tc.sev, Connections: 3, FirstSeen: at(1, 0), LastSeen: at(2, 0),
				Attack: []string{"T1071.004", "T1572"}, DNS: &hunt.DNSEvidence{Queries: 900}, Reasons: []string{"tunnel volume"}})
			var b bytes.Buffer
			if err := WriteSTIX(&b, Build(in), fixedMeta); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "bundle.json")
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			objs := stixtest.Validate(t, path)
			byID := map[string]map[string]any{}
			var ind map[string]any
			for _, o := range objs {
				byID[o["id"].(string)] = o
				if o["type"] == "indicator" && o["pattern"] == "[domain-name:value = 'dnsq.org']" {
					ind = o
				}
			}
			if (ind != nil) != tc.indicator {
				t.Fatalf("domain indicator %v, want %v", ind != nil, tc.indicator)
			}
			if ind == nil {
				return
			}
			// What the indicator's relationships reach, by type and name
			// (an observable's value).
			label := func(o map[string]any) string {
				if v, ok := o["value"].(string); ok {
					return v
				}
				n, _ := o["name"].(string)
				return n
			}
			got := map[string]bool{}
			for _, o := range objs {
				if o["type"] != "relationship" {
					continue
				}
				src, dst := byID[o["source_ref"].(string)], byID[o["target_ref"].(string)]
				switch {
				case o["source_ref"] == ind["id"]:
					got[o["relationship_type"].(string)+" "+dst["type"].(string)+" "+label(dst)] = true
				case o["target_ref"] == ind["id"]:
					got[o["relationship_type"].(string)+" by "+src["type"].(string)+" "+label(src)] = true
				}
			}
			for _, want := range []string{
				"indicates attack-pattern Application Layer Protocol: DNS",
				"indicates attack-pattern Protocol Tunneling",
				"related-to domain-name dnsq.org",
				"related-to ipv4-addr 10.0.0.40",
			} {
				if !got[want] {
					t.Errorf("no %q among the indicator's relationships: %v", want, got)
				}
			}
			sink := false
			for k := range got {
				sink = sink || strings.HasPrefix(k, "mitigates by course-of-action") && strings.Contains(k, "sinkhole): dnsq.org")
			}
			if !sink {
				t.Errorf("no sinkhole course of action mitigates the indicator: %v", got)
			}
		})
	}
}
