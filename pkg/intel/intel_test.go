package intel

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

func readFiles(t *testing.T, paths ...string) *Set {
	t.Helper()
	r := NewReader()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		r.Read(f, p)
		f.Close()
	}
	return r.Finish()
}

func byName(s *Set) map[string]*Indicator {
	m := map[string]*Indicator{}
	for _, ind := range s.Indicators {
		m[ind.Name] = ind
	}
	return m
}

// The partner bundle is valid STIX 2.1 (checked against the official
// schemas), so what we leave out of it is our choice, named.
func TestPartnerBundleIsValidSTIX(t *testing.T) {
	raw, err := os.ReadFile("testdata/partner.json")
	if err != nil {
		t.Fatal(err)
	}
	// Two versions of one indicator share an id, as the spec allows.
	_, problems, err := stixtest.Problems(stixtest.Schemas(), raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		// Partners need not write milliseconds (nwhealth's own rule).
		if !strings.Contains(p, "distinct ids") && !strings.Contains(p, "milliseconds") {
			t.Error(p)
		}
	}
}

func TestReadBundle(t *testing.T) {
	s := readFiles(t, "testdata/partner.json", "testdata/legacy20.json")
	inds := byName(s)
	for _, name := range []string{"C2 address of the loader", "Loader update domain", "Bulletproof hosting range",
		"IPv6 C2 on 443", "Expired address", "Phishing kit", "Resolver answer",
		"IP address of a known C2 channel (STIX 2.0: no pattern_type)"} {
		if inds[name] == nil {
			t.Errorf("indicator %q not kept", name)
		}
	}
	if inds["Old sinkhole"] != nil || s.Revoked != 1 || s.Superseded != 1 {
		t.Errorf("revoked latest version kept: revoked %d superseded %d", s.Revoked, s.Superseded)
	}
	if s.Other != 3 {
		t.Errorf("other objects %d, want 3 (identity, malware, relationship)", s.Other)
	}
	c2 := inds["C2 address of the loader"]
	if c2.Confidence != 85 || c2.Severity() != hunt.High || !slices.Equal(c2.KillChain, []string{"command-and-control"}) ||
		!c2.ValidFrom.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || !strings.HasPrefix(c2.CreatedBy, "identity--") {
		t.Errorf("C2 indicator read as %+v", c2)
	}
	if sev := inds["Bulletproof hosting range"].Severity(); sev != hunt.Medium {
		t.Errorf("confidence 40: severity %s", sev)
	}
	want := map[string]string{ // object position -> reason
		"object 7 ": "not observed in network flows",
		"object 8 ": "pattern: pattern offset 12",
		"object 9 ": `pattern_type "snort"`,
	}
	for _, p := range s.Problems {
		found := false
		for pos, reason := range want {
			if strings.HasPrefix(p.Pos+" ", pos) && strings.Contains(p.Reason, reason) {
				found = true
				delete(want, pos)
			}
		}
		if !found {
			t.Errorf("unexpected problem %s", p)
		}
		if p.Source != "testdata/partner.json" || p.ID == "" {
			t.Errorf("problem not named: %+v", p)
		}
	}
	for pos, reason := range want {
		t.Errorf("no problem at %s: %s", pos, reason)
	}
	if s.Unusable() != 3 {
		t.Errorf("unusable %d, want 3", s.Unusable())
	}
}

func TestBundleNotJSON(t *testing.T) {
	raw, err := os.ReadFile("testdata/partner.json")
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside the fourth object: the three before it are kept.
	cut := strings.Index(string(raw), "Bulletproof")
	for _, tc := range []struct{ name, doc, want string }{
		{"truncated", string(raw[:cut]), "ends early"},
		{"garbage", string(raw[:cut-40]) + "}}} not json", "not JSON"},
		{"text", "<html>not a bundle</html>", "not an address"},
		{"number", "42", "not an address"},
		{"array of strings", `["a", "b"]`, "not a STIX object"},
		{"object without type", `{"id": "x"}`, "no type"},
	} {
		r := NewReader()
		r.Read(strings.NewReader(tc.doc), "feed.json")
		s := r.Finish()
		if len(s.Problems) == 0 || !strings.Contains(s.Problems[0].String(), tc.want) || !strings.HasPrefix(s.Problems[0].String(), "feed.json: ") {
			t.Errorf("%s: problems %v, want %q", tc.name, s.Problems, tc.want)
		}
		if tc.name == "truncated" && len(s.Indicators) != 2 {
			t.Errorf("truncated: %d indicators kept, want the 2 before the break", len(s.Indicators))
		}
	}
}

func TestReadList(t *testing.T) {
	s := readFiles(t, "testdata/partner.txt")
	var got []string
	for _, ind := range s.Indicators {
		got = append(got, ind.Pos+" "+ind.Name)
	}
	want := []string{"line 2 203.0.113.77", "line 3 198.51.100.0/24", "line 4 update.bad-cdn.example", "line 5 *.tracker.example",
		"line 6 http://paypa1.banking.example/login", "line 7 2001:db8:bad::1"}
	if !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	var probs []string
	for _, p := range s.Problems {
		probs = append(probs, p.Pos)
	}
	if !slices.Equal(probs, []string{"line 9", "line 10", "line 11"}) {
		t.Errorf("problems %v", s.Problems)
	}
	if !strings.Contains(s.Problems[0].Reason, `"this is not an entry"`) {
		t.Errorf("reasons: %v", s.Problems)
	}
	if ref := s.Indicators[0].Ref(); ref != "testdata/partner.txt:2" {
		t.Errorf("list entry ref %q", ref)
	}
}

var (
	inside  = netip.MustParseAddr("10.1.1.5")
	inside2 = netip.MustParseAddr("10.1.1.6")
	dns     = netip.MustParseAddr("10.0.0.53")
	t0      = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
)

func rec(orig, resp string, dport uint16, name string, src flow.NameSource, answers ...string) *flow.Record {
	r := &flow.Record{First: t0, Last: t0.Add(2 * time.Second), Proto: 6, Orig: netip.MustParseAddr(orig), Resp: netip.MustParseAddr(resp),
		OrigPort: 50000, RespPort: dport, OrigBytes: 600, RespBytes: 4000, OrigPkts: 5, RespPkts: 6, Name: name, NameSource: src}
	if dport == 53 {
		r.Proto = 17
	}
	for _, a := range answers {
		r.Answers = append(r.Answers, netip.MustParseAddr(a))
	}
	return r
}

func withTarget(r *flow.Record, target, proxy string) *flow.Record {
	r.HTTPTarget, r.ProxyDest = target, proxy
	return r
}

func TestMatch(t *testing.T) {
	s := readFiles(t, "testdata/partner.json", "testdata/partner.txt")
	m := NewMatcher(s)
	for _, tc := range []struct {
		name string
		r    *flow.Record
		want []string // indicator label, via, inside, remote
	}{
		{"dst address", rec("10.1.1.5", "203.0.113.77", 443, "", 0),
			[]string{"C2 address of the loader dst 10.1.1.5 203.0.113.77", "203.0.113.77 dst 10.1.1.5 203.0.113.77"}},
		{"inbound from the range", rec("198.51.100.9", "10.1.1.5", 22, "", 0),
			[]string{"Bulletproof hosting range src 10.1.1.5 198.51.100.9", "198.51.100.0/24 src 10.1.1.5 198.51.100.9"}},
		{"sni", rec("10.1.1.5", "192.0.2.44", 443, "Update.Bad-CDN.example.", flow.NameSNI),
			[]string{"Loader update domain sni 10.1.1.5 192.0.2.44", "update.bad-cdn.example sni 10.1.1.5 192.0.2.44"}},
		{"dns question: the resolver is not the remote", rec("10.1.1.5", "10.0.0.53", 53, "update.bad-cdn.example", flow.NameDNS, "192.0.2.44"),
			[]string{"Loader update domain dns 10.1.1.5 invalid IP", "update.bad-cdn.example dns 10.1.1.5 invalid IP"}},
		{"dns answer", rec("10.1.1.5", "10.0.0.53", 53, "innocent.example", flow.NameDNS, "192.0.2.1", "203.0.113.77"),
			[]string{"C2 address of the loader dns-answer 10.1.1.5 203.0.113.77", "203.0.113.77 dns-answer 10.1.1.5 203.0.113.77"}},
		{"wildcard list entry", rec("10.1.1.5", "192.0.2.45", 80, "a.b.tracker.example", flow.NameHTTP),
			[]string{"*.tracker.example http 10.1.1.5 192.0.2.45"}},
		{"wildcard list entry, the domain itself", rec("10.1.1.5", "192.0.2.45", 80, "tracker.example", flow.NameHTTP),
			[]string{"*.tracker.example http 10.1.1.5 192.0.2.45"}},
		{"not a suffix by label", rec("10.1.1.5", "192.0.2.45", 80, "eviltracker.example", flow.NameHTTP), nil},
		{"v6 network and port", rec("fd00::5", "2001:db8:bad::7", 443, "", 0),
			[]string{"IPv6 C2 on 443 dst fd00::5 2001:db8:bad::7"}},
		{"v6 network, other port", rec("fd00::5", "2001:db8:bad::7", 80, "", 0), nil},
		{"v6 list address", rec("fd00::5", "2001:db8:bad::1", 80, "", 0),
			[]string{"2001:db8:bad::1 dst fd00::5 2001:db8:bad::1"}},
		{"resolves to", rec("10.1.1.5", "10.0.0.53", 53, "cdn.lure.example", flow.NameDNS, "198.18.7.7"),
			[]string{"Resolver answer dns-answer 10.1.1.5 198.18.7.7"}},
		{"name without the answer", rec("10.1.1.5", "10.0.0.53", 53, "cdn.lure.example", flow.NameDNS, "198.18.7.8"), nil},
		{"phishing domain", rec("10.1.1.5", "192.0.2.80", 80, "paypa1.banking.example", flow.NameHTTP),
			[]string{"Phishing kit http 10.1.1.5 192.0.2.80"}},
		{"phishing URL (the fragment of the list entry never travels)", withTarget(rec("10.1.1.5", "192.0.2.80", 80, "", 0), "HTTP://PAYPA1.banking.example:80/login", ""),
			[]string{"Phishing kit url 10.1.1.5 192.0.2.80", "http://paypa1.banking.example/login url 10.1.1.5 192.0.2.80"}},
		{"through a proxy, by name: the proxy is not the remote", withTarget(rec("10.1.1.5", "10.0.0.8", 3128, "", 0), "update.bad-cdn.example:443", "update.bad-cdn.example:443"),
			[]string{"Loader update domain proxy 10.1.1.5 invalid IP", "update.bad-cdn.example proxy 10.1.1.5 invalid IP"}},
		{"through a proxy, by address", withTarget(rec("10.1.1.5", "10.0.0.8", 3128, "", 0), "203.0.113.77:443", "203.0.113.77:443"),
			[]string{"C2 address of the loader proxy 10.1.1.5 203.0.113.77", "203.0.113.77 proxy 10.1.1.5 203.0.113.77"}},
		{"through a proxy, a URL", withTarget(rec("10.1.1.5", "10.0.0.8", 3128, "", 0), "http://paypa1.banking.example/login", "paypa1.banking.example:80"),
			[]string{"Phishing kit url 10.1.1.5 invalid IP", "Phishing kit proxy 10.1.1.5 invalid IP", "http://paypa1.banking.example/login url 10.1.1.5 invalid IP"}},
		{"expired indicator", rec("10.1.1.5", "203.0.113.99", 443, "", 0), nil},
		{"nothing", rec("10.1.1.5", "192.0.2.1", 443, "example.org", flow.NameSNI), nil},
		{"odd names", rec("10.1.1.5", "192.0.2.1", 443, "\tÜBER.Example. .", flow.NameSNI), nil},
		{"a name of dots", rec("10.1.1.5", "192.0.2.1", 443, " . ", flow.NameSNI), nil},
		{"upper case and a trailing dot", rec("10.1.1.5", "192.0.2.9", 443, "UPDATE.Bad-CDN.Example.", flow.NameSNI),
			[]string{"Loader update domain sni 10.1.1.5 192.0.2.9", "update.bad-cdn.example sni 10.1.1.5 192.0.2.9"}},
	} {
		var got []string
		m.Match(tc.r, "", func(h Hit) {
			got = append(got, strings.Join([]string{m.inds[h.Ind].Label(), h.Via, h.Inside.String(), h.Remote.String()}, " "))
		}, nil)
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: hits\n %q\nwant\n %q", tc.name, got, tc.want)
		}
	}
}

// Patterns with URLs, ports, protocols, qualifiers and name patterns,
// evaluated by hand.
func TestMatchConditions(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		r       *flow.Record
		url     string
		want    bool
	}{
		{`[network-traffic:dst_port IN (4444, 1337) AND network-traffic:protocols[*] = 'tcp']`, rec("10.1.1.5", "192.0.2.1", 1337, "", 0), "", true},
		{`[network-traffic:dst_port IN (4444, 1337) AND network-traffic:protocols[*] = 'udp']`, rec("10.1.1.5", "192.0.2.1", 1337, "", 0), "", false},
		{`[network-traffic:dst_ref.value = '192.0.2.1' AND network-traffic:src_byte_count > 500 AND network-traffic:dst_packets <= 6]`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", true},
		{`[network-traffic:dst_ref.value = '192.0.2.1' AND network-traffic:src_byte_count > 600]`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", false},
		{`[network-traffic:src_ref.value = '192.0.2.1']`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", false},
		{`[network-traffic:dst_ref.type = 'ipv6-addr' AND network-traffic:dst_ref.value ISSUBSET '192.0.2.0/24']`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", false},
		{`[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'c2.example']`, rec("10.1.1.5", "192.0.2.1", 443, "c2.example", flow.NameSNI), "", true},
		{`[domain-name:value MATCHES '^c2-[0-9]+\\.example$']`, rec("10.1.1.5", "192.0.2.1", 443, "c2-17.example", flow.NameSNI), "", true},
		{`[domain-name:value MATCHES '^c2-[0-9]+\\.example$']`, rec("10.1.1.5", "192.0.2.1", 443, "c2-x.example", flow.NameSNI), "", false},
		{`[domain-name:value LIKE 'c2-_.ex%']`, rec("10.1.1.5", "192.0.2.1", 443, "c2-7.example", flow.NameSNI), "", true},
		{`[ipv4-addr:value = '192.0.2.1'] START t'2026-03-02T09:00:00Z' STOP t'2026-03-02T10:00:00Z'`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", false},
		{`[ipv4-addr:value = '192.0.2.1'] START t'2026-03-02T10:00:00Z' STOP t'2026-03-02T11:00:00Z'`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", true},
		{`[ipv4-addr:value = '192.0.2.1'] WITHIN 60 SECONDS`, rec("10.1.1.5", "192.0.2.1", 80, "", 0), "", true},
		{`[ipv4-addr:value ISSUBSET '100.64.0.0/10']`, rec("10.1.1.5", "100.100.1.1", 80, "", 0), "", true},
		{`[ipv4-addr:value ISSUBSET '100.64.0.0/10']`, rec("10.1.1.5", "100.128.0.1", 80, "", 0), "", false},
		{`[ipv4-addr:value ISSUBSET '192.0.2.128/25']`, rec("10.1.1.5", "192.0.2.200", 80, "", 0), "", true},
		{`[ipv4-addr:value ISSUBSET '192.0.2.128/25']`, rec("10.1.1.5", "192.0.2.100", 80, "", 0), "", false},
		{`[ipv4-addr:value ISSUBSET '0.0.0.0/0']`, rec("10.1.1.5", "192.0.2.100", 80, "", 0), "", true},
		{`[ipv6-addr:value ISSUBSET '2000::/3']`, rec("fd00::1", "2001:db8::1", 80, "", 0), "", true},
		{`[ipv6-addr:value ISSUBSET '2000::/3']`, rec("fd00::1", "fe80::1", 80, "", 0), "", false},
		{`[ipv6-addr:value ISSUBSET '2001:db8:1:2:3:4:5:0/126']`, rec("fd00::1", "2001:db8:1:2:3:4:5:3", 80, "", 0), "", true},
		{`[ipv6-addr:value ISSUBSET '2001:db8:1:2:3:4:5:0/126']`, rec("fd00::1", "2001:db8:1:2:3:4:5:4", 80, "", 0), "", false},
		{`[ipv4-addr:value = '10.9.9.9']`, rec("10.1.1.5", "10.9.9.9", 445, "", 0), "", true},
		{`[ipv4-addr:value ISSUBSET '10.9.0.0/16']`, rec("10.1.1.5", "10.9.9.9", 445, "", 0), "", true},
		{`[ipv4-addr:value ISSUBSET '8.0.0.0/5']`, rec("10.1.1.5", "192.0.2.1", 445, "", 0), "", true}, // the inside end, 10.1.1.5, is in it
		{`[ipv4-addr:value ISSUBSET '16.0.0.0/5']`, rec("10.1.1.5", "192.0.2.1", 445, "", 0), "", false},
		{`[ipv4-addr:value ISSUBSET '16.0.0.0/5']`, rec("10.1.1.5", "20.1.1.1", 445, "", 0), "", true},
		{`[ipv6-addr:value = 'fd00::9']`, rec("fd00::5", "fd00::9", 445, "", 0), "", true},
		{`[ipv4-addr:value = '169.254.169.254']`, rec("10.1.1.5", "169.254.169.254", 80, "", 0), "", true},
		{`[url:value = 'HTTP://Evil.example:80/a/B?c=1']`, rec("10.1.1.5", "192.0.2.1", 80, "evil.example", flow.NameHTTP), "http://evil.example/a/B?c=1", true},
		{`[url:value = 'http://evil.example/a/b']`, rec("10.1.1.5", "192.0.2.1", 80, "evil.example", flow.NameHTTP), "http://evil.example/a/B", false},
		{`[url:value LIKE 'http://evil.example/%.exe']`, rec("10.1.1.5", "192.0.2.1", 80, "evil.example", flow.NameHTTP), "http://evil.example/x/drop.exe", true},
	} {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		alts, skipped := compile(p)
		if len(skipped) > 0 {
			t.Fatalf("%s: skipped %v", tc.pattern, skipped)
		}
		m := NewMatcher(&Set{Indicators: []*Indicator{{Name: "x", Pattern: tc.pattern, alts: alts}}})
		got := false
		m.Match(tc.r, tc.url, func(Hit) { got = true }, nil)
		if got != tc.want {
			t.Errorf("%s on %v %q: match %v, want %v", tc.pattern, tc.r.Resp, tc.url, got, tc.want)
		}
	}
}

func TestCollector(t *testing.T) {
	s := readFiles(t, "testdata/partner.json")
	c := NewCollector(NewMatcher(s))
	r1 := rec("10.1.1.5", "203.0.113.77", 443, "", 0)
	r2 := rec("10.1.1.5", "203.0.113.77", 443, "", 0)
	r2.First, r2.Last = t0.Add(time.Hour), t0.Add(time.Hour+time.Second)
	r3 := rec("10.1.1.6", "10.0.0.53", 53, "innocent.example", flow.NameDNS, "203.0.113.77")
	r4 := rec("10.1.1.6", "203.0.113.99", 443, "", 0) // expired indicator
	r5 := rec("10.1.1.6", "10.0.0.53", 53, "update.bad-cdn.example", flow.NameDNS, "192.0.2.44")
	for _, r := range []*flow.Record{r1, r2, r3, r4, r5} {
		c.Add(r)
	}
	ms := c.Matches()
	if len(ms) != 2 || c.Invalid != 1 || c.Records != 5 {
		t.Fatalf("matches %d (want 2), invalid %d (want 1), records %d", len(ms), c.Invalid, c.Records)
	}
	m := ms[0]
	if m.Indicator.Name != "C2 address of the loader" || m.Connections != 3 || m.Bytes != 3*4600 || len(m.Hosts) != 2 ||
		!m.First.Equal(t0) || !m.Last.Equal(r2.Last) || !slices.Equal(m.Via, []string{"dns-answer", "dst"}) {
		t.Fatalf("match %+v", m)
	}
	h := m.Hosts[0]
	if h.Host != inside || h.Connections != 2 || len(h.Peers) != 1 || !h.Peers[0].Named || h.Peers[0].Connections != 2 {
		t.Errorf("host %+v", h)
	}
	d := ms[1]
	if d.Indicator.Name != "Loader update domain" || d.Hosts[0].Host != inside2 {
		t.Fatalf("dns match %+v", d)
	}
	// The resolver is a peer (the packets to pull) but not a destination
	// to block; the answer is.
	var named, resolver bool
	for _, p := range d.Hosts[0].Peers {
		switch p.Addr {
		case dns:
			resolver = !p.Named
		case netip.MustParseAddr("192.0.2.44"):
			named = p.Named
		}
	}
	if !named || !resolver {
		t.Errorf("dns peers %+v", d.Hosts[0].Peers)
	}
	// Through a forward proxy: the proxy is a peer, the destination asked
	// for is the named one.
	c = NewCollector(NewMatcher(s))
	c.Add(withTarget(rec("10.1.1.5", "10.0.0.8", 3128, "", 0), "203.0.113.77:443", "203.0.113.77:443"))
	ms = c.Matches()
	if len(ms) != 1 || len(ms[0].Hosts[0].Peers) != 2 {
		t.Fatalf("proxied match %+v", ms)
	}
	for _, p := range ms[0].Hosts[0].Peers {
		if p.Named != (p.Addr == netip.MustParseAddr("203.0.113.77")) {
			t.Errorf("proxied peer %+v", p)
		}
	}
}

func FuzzReadBundle(f *testing.F) {
	raw, err := os.ReadFile("testdata/partner.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`[{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '1.2.3.4']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte("{\"type\":\"bundle\",\"objects\":[{\"type\":"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader()
		r.ReadBundle(strings.NewReader(string(b)), "f")
		s := r.Finish()
		m := NewMatcher(s)
		m.Match(rec("10.1.1.5", "1.2.3.4", 80, "a.example", flow.NameSNI), "http://a.example/", func(Hit) {}, nil)
	})
}

func FuzzReadList(f *testing.F) {
	raw, err := os.ReadFile("testdata/partner.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader()
		r.ReadList(strings.NewReader(string(b)), "f")
		s := r.Finish()
		// Every entry kept is a pattern we wrote and can parse.
		for _, ind := range s.Indicators {
			if _, err := ParsePattern(ind.Pattern); err != nil {
				t.Fatalf("entry %q gave pattern %q: %v", ind.Name, ind.Pattern, err)
			}
		}
	})
}

// Flow names come from packets: any bytes, any case, any length.
func FuzzMatchName(f *testing.F) {
	r := NewReader()
	r.ReadList(strings.NewReader("bad.example\n*.worse.example\n"), "feed")
	m := NewMatcher(r.Finish())
	for _, s := range []string{"bad.example", "A.WORSE.EXAMPLE.", " . ", "\tÜBER.example", "..", ""} {
		f.Add(s, "http://x/"+s, s+":443")
	}
	f.Fuzz(func(t *testing.T, name, target, proxy string) {
		rec := rec("10.1.1.5", "192.0.2.1", 443, name, flow.NameSNI)
		rec.HTTPTarget, rec.ProxyDest = target, proxy
		m.Match(rec, "", func(h Hit) {
			if h.Value == "" || !h.Inside.IsValid() {
				t.Fatalf("hit %+v", h)
			}
		}, nil)
	})
}
