package hunt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

func TestRegisteredDomain(t *testing.T) {
	for _, tc := range []struct {
		name, domain, sub string
		ok                bool
	}{
		{"www.example.com", "example.com", "www", true},
		{"a.b.c.example.co.uk.", "example.co.uk", "a.b.c", true},
		{"example.com", "example.com", "", true},
		{"4.3.2.1.in-addr.arpa", "", "", false},
		{"printer.local", "", "", false},
		{"dc01.corp", "", "", false},
		{"wpad", "", "", false},
		{"10.0.0.1", "", "", false},
		{"co.uk", "", "", false},
		// Bytes that are not UTF-8 are kept as they are, not turned into
		// U+FFFD: the subdomain's length and distinctness are the name's.
		{"\xd9\xd90\xac.0.AC", "0.ac", "\xd9\xd90\xac", true},
		{"A\xffB.Example.COM", "example.com", "a\xffb", true},
		{"\xff\xfe.Example.COM", "example.com", "\xff\xfe", true},
		{"ÉTÉ.example.com", "example.com", "ÉtÉ", true}, // ASCII letters only
		{"", "", "", false},
	} {
		d, s, ok := RegisteredDomain(tc.name)
		if d != tc.domain || s != tc.sub || ok != tc.ok {
			t.Errorf("RegisteredDomain(%q) = %q, %q, %v; want %q, %q, %v", tc.name, d, s, ok, tc.domain, tc.sub, tc.ok)
		}
	}
}

func FuzzRegisteredDomain(f *testing.F) {
	for _, s := range []string{"www.example.com", "x.in-addr.arpa", "..", "a..b.com", "\xff.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		d, sub, ok := RegisteredDomain(name)
		if ok && (d == "" || len(sub) > len(name)) {
			t.Fatalf("RegisteredDomain(%q) = %q, %q", name, d, sub)
		}
	})
}

// dnsNet generates the DNS flow records of a network: hosts inside
// 10.1.0.0/24 using the resolver 10.1.0.53, each query its own flow (a
// stub resolver's new port per query), over hours.
type dnsNet struct {
	rng     *rand.Rand
	start   time.Time
	records []*flow.Record
}

var dnsResolver = netip.MustParseAddr("10.1.0.53")

func (n *dnsNet) query(src netip.Addr, at time.Duration, name string, pkts, ob, rb uint64) {
	t0 := n.start.Add(at)
	n.records = append(n.records, &flow.Record{First: t0, Last: t0.Add(20 * time.Millisecond), Proto: 17, Orig: src, Resp: dnsResolver,
		OrigPort: uint16(1024 + n.rng.IntN(60000)), RespPort: 53, OrigPkts: pkts, RespPkts: pkts, OrigData: ob, RespData: rb,
		Name: name, NameSource: flow.NameDNS})
}

func (n *dnsNet) label(alphabet string, l int) string {
	b := make([]byte, l)
	for i := range b {
		b[i] = alphabet[n.rng.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	b32 = "abcdefghijklmnopqrstuvwxyz234567"
	hex = "0123456789abcdef"
)

func dnsHost(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, 0, byte(10 + i)}) }

// background: every host looks up the same handful of names, again and
// again, all day; mail servers ask a DNSBL; every host asks a reputation
// service for hashes; a CDN serves many short names.
func (n *dnsNet) background(hosts int, hours int) {
	common := []string{"www.example.org", "mail.example.org", "login.microsoftonline.com", "update.vendor.com", "api.github.com"}
	for h := range hosts {
		for m := 0; m < hours*60; m += 3 + n.rng.IntN(10) {
			n.query(dnsHost(h), time.Duration(m)*time.Minute, common[n.rng.IntN(len(common))], 1, 35, 80)
			if n.rng.IntN(4) == 0 { // antivirus reputation: a hash per file
				n.query(dnsHost(h), time.Duration(m)*time.Minute+time.Second, n.label(hex, 32)+".f.01.s.sophosxl.net", 1, 75, 90)
			}
			if n.rng.IntN(3) == 0 { // a CDN's many names
				n.query(dnsHost(h), time.Duration(m)*time.Minute+2*time.Second, fmt.Sprintf("e%d.a.akamaiedge.net", n.rng.IntN(3000)), 1, 40, 90)
			}
		}
	}
}

func TestDNSFindings(t *testing.T) {
	beacon := func(n *dnsNet, src netip.Addr, domain string, hours int) {
		// A Cobalt Strike / Sliver-style DNS beacon: every 60 s ±20%, a
		// fresh encoded name, TXT answers.
		for at := time.Duration(0); at < time.Duration(hours)*time.Hour; at += time.Duration(48+n.rng.IntN(24)) * time.Second {
			n.query(src, at, n.label(b32, 40)+"."+n.label(b32, 8)+"."+domain, 1, 90, 140)
		}
	}
	tunnel := func(n *dnsNet, src netip.Addr, domain string) {
		// One socket, hundreds of queries: iodine, dnscat2.
		n.query(src, 90*time.Minute, n.label(b32, 60)+".t."+domain, 800, 120000, 600000)
	}
	for _, tc := range []struct {
		name      string
		hosts     int
		build     func(n *dnsNet)
		wantFirst string // registered domain of the first DNS finding ("" none above low)
		wantSev   Severity
		wantT1572 bool
	}{
		{"benign network", 30, func(n *dnsNet) {}, "", 0, false},
		{"beacon in a network", 30, func(n *dnsNet) { beacon(n, dnsHost(3), "cdn-telemetry.com", 4) }, "cdn-telemetry.com", High, false},
		{"tunnel in a network", 30, func(n *dnsNet) { tunnel(n, dnsHost(5), "dnsq.org") }, "dnsq.org", High, true},
		{"beacon on one host", 1, func(n *dnsNet) { beacon(n, dnsHost(0), "cdn-telemetry.com", 4) }, "cdn-telemetry.com", Medium, false},
		{"tunnel on one host", 1, func(n *dnsNet) { tunnel(n, dnsHost(0), "dnsq.org") }, "dnsq.org", High, true},
		{"PTR sweep", 30, func(n *dnsNet) {
			for i := range 2000 {
				n.query(dnsHost(2), time.Duration(i)*time.Second, fmt.Sprintf("%d.%d.168.192.in-addr.arpa", i%250, i/250), 1, 40, 90)
			}
		}, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &dnsNet{rng: rand.New(rand.NewPCG(1, 2)), start: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
			n.background(tc.hosts, 4)
			tc.build(n)
			// Other traffic makes the hosts a population.
			m := New(Config{})
			for _, r := range n.records {
				m.Add(r)
			}
			for h := range tc.hosts {
				for i := range 6 {
					t0 := n.start.Add(time.Duration(i) * time.Minute)
					m.Add(&flow.Record{First: t0, Last: t0.Add(time.Second), Proto: 6, Orig: dnsHost(h), Resp: netip.AddrFrom4([4]byte{93, 184, 216, byte(i)}),
						OrigPort: 40000, RespPort: 443, OrigPkts: 5, RespPkts: 5, OrigData: 500, RespData: 5000})
				}
			}
			res := m.Score()
			var dns []Finding
			for _, f := range res.Findings {
				if f.Kind == KindDNS {
					dns = append(dns, f)
				}
			}
			if tc.wantFirst == "" {
				for _, f := range dns {
					if f.Severity > Low {
						t.Errorf("benign DNS finding above low: %s %s %.2f %v", f.Src, f.DstName, f.Score, f.Reasons)
					}
				}
				return
			}
			if len(dns) == 0 || dns[0].DstName != tc.wantFirst {
				t.Fatalf("first DNS finding %v, want %s", dns, tc.wantFirst)
			}
			f := dns[0]
			if f.Severity != tc.wantSev {
				t.Errorf("severity %s (%.2f), want %s: %v", f.Severity, f.Score, tc.wantSev, f.Reasons)
			}
			if got := slices.Contains(f.Attack, "T1572"); got != tc.wantT1572 || !slices.Contains(f.Attack, "T1071.004") {
				t.Errorf("attack %v (T1572 wanted: %v)", f.Attack, tc.wantT1572)
			}
			for _, g := range dns[1:] {
				if g.Severity > Low {
					t.Errorf("benign DNS finding above low beside it: %s %s %.2f %v", g.Src, g.DstName, g.Score, g.Reasons)
				}
			}
		})
	}
}

// TestDNSQueryTypes: the types of a host's questions (Zeek's dns.log)
// reach its DNS evidence under the right (host, domain), whether they
// come before or after the flow records, and TXT/NULL-heavy questions with
// encoded labels add evidence; address lookups, unset types and other
// hosts' or domains' types add none.
func TestDNSQueryTypes(t *testing.T) {
	type qt struct {
		src    netip.Addr
		domain string
		qtype  string
	}
	for _, tc := range []struct {
		name     string
		types    func(names []string) []qt
		before   bool
		wantData float64 // the beacon's DataQTypes (-1: unknown)
		wantLift bool    // scores above the beacon without types
	}{
		{"no dns.log", func([]string) []qt { return nil }, false, -1, false},
		{"TXT questions after the records", func(names []string) []qt {
			var q []qt
			for _, n := range names {
				q = append(q, qt{dnsHost(0), n, "TXT"})
			}
			return q
		}, false, 1, true},
		{"NULL questions before the records, as numbers", func(names []string) []qt {
			var q []qt
			for _, n := range names {
				q = append(q, qt{dnsHost(0), n, "10"})
			}
			return q
		}, true, 1, true},
		{"half TXT, half A", func(names []string) []qt {
			var q []qt
			for i, n := range names {
				q = append(q, qt{dnsHost(0), n, []string{"TXT", "A"}[i%2]})
			}
			return q
		}, false, 0.5, true},
		{"A lookups", func(names []string) []qt {
			var q []qt
			for _, n := range names {
				q = append(q, qt{dnsHost(0), n, "A"})
			}
			return q
		}, false, 0, false},
		{"unset types", func(names []string) []qt {
			var q []qt
			for _, n := range names {
				q = append(q, qt{dnsHost(0), n, "-"})
			}
			return q
		}, false, -1, false},
		{"another host's and another domain's TXT", func(names []string) []qt {
			var q []qt
			for _, n := range names {
				q = append(q, qt{dnsHost(1), n, "TXT"}, qt{dnsHost(0), "x" + n[:8] + ".example.org", "TXT"})
			}
			return q
		}, false, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			score := func(withTypes bool) Finding {
				n := &dnsNet{rng: rand.New(rand.NewPCG(3, 4)), start: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
				var names []string
				for at := time.Duration(0); at < 3*time.Hour; at += time.Duration(48+n.rng.IntN(24)) * time.Second {
					name := n.label(b32, 24) + ".s." + "cdn-telemetry.com"
					names = append(names, name)
					n.query(dnsHost(0), at, name, 1, 70, 120)
				}
				m := New(Config{})
				var types []qt
				if withTypes {
					types = tc.types(names)
				}
				if tc.before {
					for _, q := range types {
						m.AddDNSQueryType(q.src, q.domain, q.qtype)
					}
				}
				for _, r := range n.records {
					m.Add(r)
				}
				if !tc.before {
					for _, q := range types {
						m.AddDNSQueryType(q.src, q.domain, q.qtype)
					}
				}
				for _, f := range m.Score().Findings {
					if f.Kind == KindDNS && f.Src == dnsHost(0) && f.DstName == "cdn-telemetry.com" {
						return f
					}
				}
				t.Fatal("no DNS finding for the beacon")
				return Finding{}
			}
			base, f := score(false), score(true)
			if math.Abs(f.DNS.DataQTypes-tc.wantData) > 0.02 {
				t.Errorf("data query types %.2f, want %.2f", f.DNS.DataQTypes, tc.wantData)
			}
			if lifted := f.Score > base.Score; lifted != tc.wantLift {
				t.Errorf("score %.4f against %.4f without types: lifted %v, want %v (%v)", f.Score, base.Score, lifted, tc.wantLift, f.Reasons)
			}
			if has := slices.ContainsFunc(f.Reasons, func(s string) bool { return strings.Contains(s, "ask for TXT, NULL") }); has != (tc.wantData >= 0.3) {
				t.Errorf("reasons %v: query type reason %v, want %v", f.Reasons, has, tc.wantData >= 0.3)
			}
		})
	}
}
