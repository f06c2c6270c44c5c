package flow

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// The name extractors and the builder read hostile bytes: the fuzz targets
// check that they never panic and that what they return is well formed.

func checkName(t *testing.T, name string, res parseResult) {
	if (res == parseOK) != (name != "") {
		t.Fatalf("result %v with name %q", res, name)
	}
	if len(name) > maxName {
		t.Fatalf("name of %d bytes", len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' || c < '-' || c > 'z' {
			t.Fatalf("name %q has byte %q", name, c)
		}
	}
}

func FuzzTLSServerName(f *testing.F) {
	hello := clientHello(f, "seed.example.com")
	f.Add(hello)
	f.Add(hello[:300])
	f.Add([]byte{0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, res := TLSServerName(b)
		checkName(t, name, res)
	})
}

func FuzzServerCertificate(f *testing.F) {
	self := issue(f, pkix.Name{CommonName: "Seed Server"}, nil, false)
	flight, _ := serverFlight(f, []issued{self}, tls.VersionTLS12, "")
	f.Add(flight)
	f.Add(flight[:200])
	f.Add([]byte{0x16, 3, 3, 0, 4, 11, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, res, _ := ServerCertificate(b, nil)
		if res == parseNo && c != (TLSCert{}) || c.Flags&^TLSFlagsAll != 0 || c.Flags&TLSNoSNI != 0 ||
			!c.Seen() && c != (TLSCert{}) || res == parseOK && !c.Seen() {
			t.Fatalf("%v with %+v", res, c)
		}
		for _, s := range []string{c.SubjectCN, c.IssuerCN} {
			if len(s) > MaxCN || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("name %q", s)
			}
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n"))
	f.Add([]byte("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.1\r\nhost:a\r\n"))
	f.Add([]byte("GET https://u:p@[2001:db8::1]:8443/a?b HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, res := HTTPHost(b)
		checkName(t, name, res)
		var req HTTPRequest
		ParseHTTPRequest(b, &req)
		if len(req.Target) > MaxTarget || !printable([]byte(req.Target)) {
			t.Fatalf("target %q", req.Target)
		}
		// No user:password@ is kept in an absolute URI's authority.
		if _, rest, ok := strings.Cut(req.Target, "://"); ok && req.Proxy != "" {
			if i := strings.IndexAny(rest, "/?#"); i >= 0 {
				rest = rest[:i]
			}
			if strings.Contains(rest, "@") {
				t.Fatalf("target %q keeps userinfo", req.Target)
			}
		}
		if req.Proxy != "" {
			i := strings.LastIndexByte(req.Proxy, ':')
			if i <= 0 || len(req.Proxy) > maxProxyDest {
				t.Fatalf("proxy %q", req.Proxy)
			}
		}
	})
}

func FuzzParseDNS(f *testing.F) {
	f.Add(dnsMessage(1, "a.example.com", "", netip.MustParseAddr("192.0.2.1")))
	f.Add(dnsMessage(2, "b.example.com", "c.example.net", netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.9")))
	f.Add(dnsMessage(3, "q.example", ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m DNSMessage
		ok := ParseDNS(b, &m)
		if ok && m.Name == "" {
			t.Fatal("ok without a name")
		}
		if len(m.Answers) > MaxAnswers {
			t.Fatalf("%d answers", len(m.Answers))
		}
		checkName(t, m.Name, map[bool]parseResult{true: parseOK, false: parseNo}[m.Name != ""])
	})
}

// FuzzBuilder feeds arbitrary frames, in two directions, through the
// builder and checks the accounting.
func FuzzBuilder(f *testing.F) {
	hello := clientHello(f, "seed.example.com")
	f.Add(frame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: 5000, dport: 443, proto: 6, flags: 0x18, payload: hello}), uint8(1))
	f.Add(frame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: 5000, dport: 53, proto: 17, payload: dnsMessage(5, "x.example", "", addr("192.0.2.3"))}), uint8(2))
	f.Add(frame(frameSpec{src: addr("2001:db8::1"), dst: addr("2001:db8::2"), sport: 5000, dport: 80, proto: 6, flags: 0x18, vlan: 7, payload: []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n")}), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		b := NewBuilder(Options{MaxFlows: 4})
		for i := range int(n%8) + 1 {
			d := data
			if i%2 == 1 && len(d) > 1 {
				d = d[:len(d)-i%len(d)]
			}
			b.Add(time.Unix(int64(i), 0), pkthdr.LinkEthernet, d, len(d))
			b.Add(time.Unix(int64(i), 5), pkthdr.LinkRaw, d, len(d))
		}
		var pkts uint64
		b.Flush(func(r *Record) {
			pkts += r.OrigPkts + r.RespPkts
			if len(r.Answers) > MaxAnswers || r.Last.Before(r.First) {
				t.Fatalf("bad record %+v", r)
			}
			bu := r.Bursts
			dur := uint32(r.Last.Sub(r.First) / time.Millisecond)
			if len(bu.At) > MaxBursts || int(bu.Head) > len(bu.At) || uint64(len(bu.At)) > uint64(bu.N) ||
				!slices.IsSorted(bu.At) || len(bu.At) > 0 && bu.At[len(bu.At)-1] > dur ||
				len(r.HTTPTarget) > MaxTarget || len(r.ProxyDest) > maxProxyDest {
				t.Fatalf("bad v2 fields %+v", r)
			}
			if r.TLS.Flags&^TLSFlagsAll != 0 || !r.TLS.Seen() && (r.TLS.SelfSigned() || r.TLS.SubjectCN != "") {
				t.Fatalf("bad v3 fields %+v", r)
			}
		})
		st := b.Stats()
		if pkts != st.Packets-st.NonIP {
			t.Fatalf("%d packets in records, %d IP packets given", pkts, st.Packets-st.NonIP)
		}
		// A table of one under DropSingles: the frame read two ways is
		// two flows, so first packets wait outside the table (admit.go).
		d := NewBuilder(Options{MaxFlows: 1, DropSingles: true, Encoded: true})
		for i := range int(n%8) + 1 {
			d.Add(time.Unix(int64(i), 0), pkthdr.LinkEthernet, data, len(data))
			d.Add(time.Unix(int64(i), 5), pkthdr.LinkRaw, data, len(data))
		}
		var fw FileWriter
		d.FlushInto(&fw)
		pkts = 0
		for _, r := range fw.Records() {
			pkts += r.OrigPkts + r.RespPkts
		}
		if st := d.Stats(); pkts+st.Unrecorded != st.Packets-st.NonIP || uint64(fw.Len())+st.Unrecorded != st.Flows {
			t.Fatalf("DropSingles: %d packets in %d records, stats %+v", pkts, fw.Len(), st)
		}
		// Keys computed ahead (the store writer's lookahead: Look, Touch,
		// AddAheadNanos, two packets a group) give what the table
		// computing them gives.
		la := NewBuilder(Options{MaxFlows: 1, DropSingles: true, Encoded: true})
		var ps [2]pkthdr.Packet
		var as [2]Ahead
		for i := range int(n%8) + 1 {
			for j, lt := range []pkthdr.LinkType{pkthdr.LinkEthernet, pkthdr.LinkRaw} {
				if pkthdr.Parse(lt, data, &ps[j]); ps[j].IPVersion != 0 {
					as[j].Look(&ps[j], data)
				}
			}
			la.Touch(as[:])
			la.AddAheadNanos(time.Unix(int64(i), 0).UnixNano(), &ps[0], data, len(data), &as[0])
			la.AddAheadNanos(time.Unix(int64(i), 5).UnixNano(), &ps[1], data, len(data), &as[1])
		}
		var lw FileWriter
		la.FlushInto(&lw)
		if st := la.Stats(); st != d.Stats() || !reflect.DeepEqual(lw.Records(), fw.Records()) {
			t.Fatalf("keys ahead: stats %+v and %d records, computed %+v and %d", st, lw.Len(), d.Stats(), fw.Len())
		}
		// Reset for the next shard (the store reuses tables): the same
		// packets give what a new table gives.
		st1, recs1 := d.Stats(), fw.Records()
		d.Reset()
		for i := range int(n%8) + 1 {
			d.Add(time.Unix(int64(i), 0), pkthdr.LinkEthernet, data, len(data))
			d.Add(time.Unix(int64(i), 5), pkthdr.LinkRaw, data, len(data))
		}
		var fw2 FileWriter
		d.FlushInto(&fw2)
		if st := d.Stats(); st != st1 || !reflect.DeepEqual(fw2.Records(), recs1) {
			t.Fatalf("after Reset: stats %+v and %d records, new table %+v and %d", st, fw2.Len(), st1, len(recs1))
		}
	})
}
