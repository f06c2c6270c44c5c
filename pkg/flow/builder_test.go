package flow

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func flushAll(b *Builder) []*Record {
	var out []*Record
	b.Flush(func(r *Record) { out = append(out, r) })
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestTCPConnection(t *testing.T) {
	hello := clientHello(t, "Beacon.Example.NET")
	if len(hello) < 1200 {
		t.Fatalf("ClientHello only %d bytes; the split case needs a big one", len(hello))
	}
	tests := []struct {
		name  string
		drive func(c *conv)
		want  Record
		state string
	}{
		{
			name: "tls sni split over two segments",
			drive: func(c *conv) {
				c.handshake()
				c.send(true, 0x18, hello[:700])
				c.send(true, 0x18, hello[700:])
				c.send(false, 0x18, make([]byte, 3000))
				c.close()
			},
			want: Record{Orig: addr("10.0.0.5"), Resp: addr("203.0.113.9"), OrigPort: 50000, RespPort: 443,
				OrigPkts: 6, RespPkts: 3, OrigData: uint64(len(hello)), RespData: 3000,
				OrigBytes: uint64(6*40 + len(hello)), RespBytes: 3*40 + 3000,
				OrigFlags: 0x1b, RespFlags: 0x1b, Name: "beacon.example.net", NameSource: NameSNI,
				Bursts: Bursts{N: 1, At: []uint32{30}, Head: 1}},
			state: "SF",
		},
		{
			name: "tls sni in one segment",
			drive: func(c *conv) {
				c.handshake()
				c.send(true, 0x18, hello)
				c.send(false, 0x14, nil)
			},
			want: Record{Orig: addr("10.0.0.5"), Resp: addr("203.0.113.9"), OrigPort: 50000, RespPort: 443,
				OrigPkts: 3, RespPkts: 2, OrigData: uint64(len(hello)), OrigBytes: uint64(3*40 + len(hello)), RespBytes: 80,
				OrigFlags: 0x1a, RespFlags: 0x16, Name: "beacon.example.net", NameSource: NameSNI,
				Bursts: Bursts{N: 1, At: []uint32{30}, Head: 1}},
			state: "RSTR",
		},
		{
			name: "http host",
			drive: func(c *conv) {
				c.handshake()
				c.send(true, 0x18, []byte("GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST: WWW.Example.org:8080\r\n\r\n"))
			},
			want: Record{Orig: addr("10.0.0.5"), Resp: addr("203.0.113.9"), OrigPort: 50000, RespPort: 443,
				OrigPkts: 3, RespPkts: 1, OrigData: 62, OrigBytes: 3*40 + 62, RespBytes: 40,
				OrigFlags: 0x1a, RespFlags: 0x12, Name: "www.example.org", NameSource: NameHTTP, Partial: true,
				Bursts: Bursts{N: 1, At: []uint32{30}, Head: 1}, HTTPTarget: "http://www.example.org:8080/x"},
			state: "S1",
		},
		{
			name: "mid-connection start from the server side",
			drive: func(c *conv) {
				c.send(false, 0x18, []byte("hello"))
				c.send(true, 0x10, nil)
			},
			want: Record{Orig: addr("10.0.0.5"), Resp: addr("203.0.113.9"), OrigPort: 50000, RespPort: 443,
				OrigPkts: 1, RespPkts: 1, RespData: 5, OrigBytes: 40, RespBytes: 45, OrigFlags: 0x10, RespFlags: 0x18, Partial: true,
				Bursts: Bursts{N: 1, At: []uint32{0}, Head: 1}},
			state: "OTH",
		},
		{
			name: "syn-ack first",
			drive: func(c *conv) {
				c.send(false, 0x12, nil)
				c.send(true, 0x10, nil)
			},
			want: Record{Orig: addr("10.0.0.5"), Resp: addr("203.0.113.9"), OrigPort: 50000, RespPort: 443,
				OrigPkts: 1, RespPkts: 1, OrigBytes: 40, RespBytes: 40, OrigFlags: 0x10, RespFlags: 0x12, Partial: true},
			state: "OTH",
		},
		{
			name: "unanswered syn",
			drive: func(c *conv) {
				c.send(true, 0x02, nil)
			},
			want: Record{Orig: addr("10.0.0.5"), Resp: addr("203.0.113.9"), OrigPort: 50000, RespPort: 443,
				OrigPkts: 1, OrigBytes: 40, OrigFlags: 0x02, Partial: true},
			state: "S0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(Options{})
			c := newConv(t, b, t0, "10.0.0.5", "203.0.113.9", 50000, 443)
			tc.drive(c)
			recs := flushAll(b)
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			got := *recs[0]
			tc.want.Proto = 6
			tc.want.First = t0
			tc.want.Last = c.ts.Add(-c.step)
			if !equalRecord(got, tc.want) {
				t.Errorf("record\n got %+v\nwant %+v", got, tc.want)
			}
			if s := got.State(); s != tc.state {
				t.Errorf("state %q, want %q", s, tc.state)
			}
		})
	}
}

func equalRecord(a, b Record) bool {
	if !slices.Equal(a.Answers, b.Answers) {
		return false
	}
	a.Answers, b.Answers = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestOriginatorRules(t *testing.T) {
	// Without a SYN, Zeek's port heuristic decides; equal evidence leaves
	// the first sender as originator.
	tests := []struct {
		name           string
		proto          uint8
		sport, dport   uint16
		flags          uint8
		wantOrigPort   uint16
		wantOrigIsSend bool
	}{
		{"udp reply from dns server", 17, 53, 40000, 0, 40000, false},
		{"udp first sender", 17, 40000, 40001, 0, 40000, true},
		{"udp both well known", 17, 123, 123, 0, 123, true},
		{"tcp ack from server port", 6, 3389, 51000, 0x10, 51000, false},
		{"tcp both likely, lower sender is server", 6, 443, 8080, 0x10, 8080, false},
		{"tcp both likely, syn-ack keeps direction rule", 6, 8080, 443, 0x12, 443, false},
		{"tcp high ports first sender", 6, 40000, 40001, 0x18, 40000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(Options{})
			f := frame(frameSpec{src: addr("10.1.1.1"), dst: addr("10.1.1.2"), sport: tc.sport, dport: tc.dport, proto: tc.proto, flags: tc.flags, payload: []byte("x")})
			b.Add(t0, 1, f, len(f))
			recs := flushAll(b)
			if len(recs) != 1 {
				t.Fatalf("got %d records", len(recs))
			}
			r := recs[0]
			if r.OrigPort != tc.wantOrigPort {
				t.Errorf("orig port %d, want %d", r.OrigPort, tc.wantOrigPort)
			}
			if got := r.Orig == addr("10.1.1.1"); got != tc.wantOrigIsSend {
				t.Errorf("sender is orig = %v, want %v", got, tc.wantOrigIsSend)
			}
			if tc.wantOrigIsSend && r.OrigPkts != 1 || !tc.wantOrigIsSend && r.RespPkts != 1 {
				t.Errorf("packet counted on the wrong side: %+v", r)
			}
		})
	}
}

func TestDNSNames(t *testing.T) {
	b := NewBuilder(Options{})
	cl, rs := addr("10.0.0.5"), addr("10.0.0.53")
	ans := []netip.Addr{addr("198.51.100.7"), addr("2001:db8::7")}
	q := dnsMessage(77, "C2.Example.COM", "")
	a := dnsMessage(77, "C2.Example.COM", "edge.cdn.example", ans...)
	for i, f := range [][]byte{
		frame(frameSpec{src: cl, dst: rs, sport: 40000, dport: 53, proto: 17, payload: q}),
		frame(frameSpec{src: rs, dst: cl, sport: 53, dport: 40000, proto: 17, payload: a}),
	} {
		b.Add(t0.Add(time.Duration(i)*time.Millisecond), 1, f, len(f))
	}
	// A later connection to the answered address is named from the answer.
	c := newConv(t, b, t0.Add(time.Second), "10.0.0.5", "198.51.100.7", 50001, 8443)
	c.handshake()
	c.send(true, 0x18, []byte{0x17, 3, 3, 0, 2, 0xaa, 0xbb}) // application data: no SNI
	// A query over TCP with its length prefix.
	tc := newConv(t, b, t0.Add(2*time.Second), "10.0.0.6", "10.0.0.53", 50002, 53)
	tc.handshake()
	q2 := dnsMessage(9, "tcp.example.net", "")
	tc.send(true, 0x18, append([]byte{0, byte(len(q2))}, q2...))
	a2 := dnsMessage(9, "tcp.example.net", "", addr("192.0.2.44"))
	tc.send(false, 0x18, append([]byte{0, byte(len(a2))}, a2...))

	recs := flushAll(b)
	byPort := map[uint16]*Record{}
	for _, r := range recs {
		byPort[r.RespPort] = r
	}
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3: %+v", len(recs), recs)
	}
	udp := recs[slices.IndexFunc(recs, func(r *Record) bool { return r.Proto == 17 })]
	if udp.Name != "c2.example.com" || udp.NameSource != NameDNS || !slices.Equal(udp.Answers, ans) {
		t.Errorf("udp dns record: name %q (%v) answers %v", udp.Name, udp.NameSource, udp.Answers)
	}
	if udp.Orig != cl || udp.RespPort != 53 {
		t.Errorf("udp dns direction: %v:%d -> %v:%d", udp.Orig, udp.OrigPort, udp.Resp, udp.RespPort)
	}
	if r := byPort[8443]; r.Name != "c2.example.com" || r.NameSource != NameDNS {
		t.Errorf("tcp flow to answered address: name %q (%v)", r.Name, r.NameSource)
	}
	tcpDNS := recs[slices.IndexFunc(recs, func(r *Record) bool { return r.Proto == 6 && r.RespPort == 53 })]
	if tcpDNS.Name != "tcp.example.net" || !slices.Equal(tcpDNS.Answers, []netip.Addr{addr("192.0.2.44")}) {
		t.Errorf("tcp dns: %q %v", tcpDNS.Name, tcpDNS.Answers)
	}
}

func TestTimeoutsAndReuse(t *testing.T) {
	b := NewBuilder(Options{IdleTimeout: time.Minute, UDPIdleTimeout: 10 * time.Second})
	cl, sv := addr("10.0.0.5"), addr("10.0.0.9")
	udp := func(ts time.Time) {
		f := frame(frameSpec{src: cl, dst: sv, sport: 40000, dport: 9999, proto: 17, payload: []byte("ping")})
		b.Add(ts, 1, f, len(f))
	}
	var got []*Record
	emit := func(r *Record) { got = append(got, r) }
	udp(t0)
	udp(t0.Add(5 * time.Second))
	b.Expire(t0.Add(14*time.Second), emit)
	if len(got) != 0 {
		t.Fatalf("udp flow expired early")
	}
	b.Expire(t0.Add(16*time.Second), emit)
	if len(got) != 1 || got[0].OrigPkts != 2 || got[0].Partial {
		t.Fatalf("udp expiry: %+v", got)
	}
	// Without Expire calls, a packet after the idle time still starts a new flow.
	udp(t0.Add(100 * time.Second))
	udp(t0.Add(200 * time.Second))
	b.Flush(emit)
	if len(got) != 3 {
		t.Fatalf("got %d records after idle gap, want 3", len(got))
	}

	// A closed TCP connection whose ports are reused is a new flow.
	got = nil
	c := newConv(t, b, t0, "10.0.0.5", "10.0.0.9", 50000, 445)
	c.handshake()
	c.close()
	c.cseq += 100000
	c.handshake()
	c.send(true, 0x18, []byte("abc"))
	b.Expire(c.ts, emit)
	if len(got) != 1 || got[0].State() != "SF" || got[0].Partial {
		t.Fatalf("closed connection not ended on reuse: %+v", got)
	}
	b.Expire(c.ts.Add(2*time.Minute), emit)
	if len(got) != 2 || !got[1].Partial || got[1].OrigData != 3 {
		t.Fatalf("idle open connection: %+v", got[1:])
	}
	if b.Open() != 0 {
		t.Errorf("%d flows left open", b.Open())
	}
}

func TestActiveTimeout(t *testing.T) {
	b := NewBuilder(Options{ActiveTimeout: 30 * time.Second})
	for i := range 10 {
		f := frame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: 5000, dport: 6000, proto: 17, payload: []byte("x")})
		b.Add(t0.Add(time.Duration(i)*10*time.Second), 1, f, len(f))
	}
	recs := flushAll(b)
	var pkts uint64
	for _, r := range recs {
		pkts += r.OrigPkts
		if r.Duration() >= 30*time.Second {
			t.Errorf("record lasts %v", r.Duration())
		}
	}
	if len(recs) != 4 || pkts != 10 {
		t.Errorf("got %d records with %d packets, want 4 with 10", len(recs), pkts)
	}
}

func TestMaxFlowsEvicts(t *testing.T) {
	b := NewBuilder(Options{MaxFlows: 3})
	for i := range 5 {
		f := frame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: uint16(5000 + i), dport: 6000, proto: 17, payload: []byte("x")})
		b.Add(t0.Add(time.Duration(i)*time.Second), 1, f, len(f))
	}
	if b.Open() != 3 {
		t.Errorf("open %d, want 3", b.Open())
	}
	recs := flushAll(b)
	if len(recs) != 5 || b.Stats().Evicted != 2 {
		t.Fatalf("got %d records, %d evicted", len(recs), b.Stats().Evicted)
	}
	if recs[0].OrigPort != 5000 || !recs[0].Partial || recs[1].OrigPort != 5001 {
		t.Errorf("evicted the wrong flows: %d %d", recs[0].OrigPort, recs[1].OrigPort)
	}
}

func TestVLANICMPIPv6AndNonIP(t *testing.T) {
	b := NewBuilder(Options{})
	a1, a2 := addr("2001:db8::1"), addr("2001:db8::2")
	for i, s := range []frameSpec{
		{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: 5000, dport: 6000, proto: 17, payload: []byte("v10"), vlan: 10},
		{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: 5000, dport: 6000, proto: 17, payload: []byte("v20"), vlan: 20},
		{src: a2, dst: a1, proto: 58, icmpType: 129}, // a reply seen first
		{src: a1, dst: a2, proto: 58, icmpType: 128},
		{src: addr("10.0.0.1"), dst: addr("10.0.0.3"), proto: 1, icmpType: 8},
		{src: addr("10.0.0.3"), dst: addr("10.0.0.1"), proto: 1, icmpType: 0},
	} {
		f := frame(s)
		b.Add(t0.Add(time.Duration(i)*time.Millisecond), 1, f, len(f))
	}
	b.Add(t0, 1, []byte{1, 2, 3}, 3)
	recs := flushAll(b)
	if len(recs) != 4 {
		t.Fatalf("got %d records, want 4", len(recs))
	}
	vlans := map[uint16]bool{}
	for _, r := range recs {
		switch r.Proto {
		case 17:
			vlans[r.VLAN] = true
		case 58:
			if r.Orig != a1 || r.OrigPkts != 1 || r.RespPkts != 1 || r.OrigPort != 128 {
				t.Errorf("icmpv6 echo: %+v", r)
			}
		case 1:
			if r.Orig != addr("10.0.0.1") || r.OrigPort != 8 || r.RespPkts != 1 {
				t.Errorf("icmp echo: %+v", r)
			}
		}
	}
	if !vlans[10] || !vlans[20] {
		t.Errorf("vlans %v", vlans)
	}
	if st := b.Stats(); st.NonIP != 1 || st.Packets != 7 || st.Flows != 4 {
		t.Errorf("stats %+v", st)
	}
}

// TestICMPFlowsByKind: as in Zeek's conn.log, an echo's requests and
// replies are one flow and an error between the same addresses another
// (a target that rejects pings with port unreachable gives no replies),
// as are ICMPv6 neighbour solicitations and their advertisements.
func TestICMPFlowsByKind(t *testing.T) {
	b := NewBuilder(Options{})
	h, x := addr("10.0.0.1"), addr("203.0.113.9")
	a1, a2 := addr("fe80::1"), addr("fe80::2")
	for i, s := range []frameSpec{
		{src: h, dst: x, proto: 1, icmpType: 8, payload: make([]byte, 56)},
		{src: x, dst: h, proto: 1, icmpType: 0, payload: make([]byte, 56)},
		{src: h, dst: x, proto: 1, icmpType: 8, payload: make([]byte, 56)},
		{src: x, dst: h, proto: 1, icmpType: 3, icmpCode: 3, payload: make([]byte, 28)},
		{src: h, dst: x, proto: 1, icmpType: 13},
		{src: x, dst: h, proto: 1, icmpType: 14},
		{src: a1, dst: a2, proto: 58, icmpType: 135},
		{src: a2, dst: a1, proto: 58, icmpType: 136},
	} {
		f := frame(s)
		b.Add(t0.Add(time.Duration(i)*time.Millisecond), 1, f, len(f))
	}
	got := map[[2]uint16]*Record{}
	for _, r := range flushAll(b) {
		got[[2]uint16{uint16(r.Proto), r.OrigPort}] = r
	}
	for _, tc := range []struct {
		proto, typ uint16
		orig       netip.Addr
		op, rp     uint64
	}{
		{1, 8, h, 2, 1},  // the echo: two requests, one reply
		{1, 3, x, 1, 0},  // the unreachable, from the target
		{1, 13, h, 1, 1}, // a timestamp request and its reply
		{58, 135, a1, 1, 1},
	} {
		r, ok := got[[2]uint16{tc.proto, tc.typ}]
		if !ok || r.Orig != tc.orig || r.OrigPkts != tc.op || r.RespPkts != tc.rp {
			t.Errorf("type %d: %+v (found %v), want from %v, %d and %d packets", tc.typ, r, ok, tc.orig, tc.op, tc.rp)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d records, want 4: %+v", len(got), got)
	}
}

func TestSnapLenCutPayloadCounts(t *testing.T) {
	// A segment captured with a small snap length still counts its wire
	// payload, and a cut ClientHello is not buffered.
	b := NewBuilder(Options{})
	hello := clientHello(t, "cut.example.com")
	f := frame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), sport: 5000, dport: 443, proto: 6, flags: 0x18, payload: hello[:20], wirePay: len(hello)})
	b.Add(t0, 1, f, len(f)-20+len(hello))
	recs := flushAll(b)
	if len(recs) != 1 || recs[0].OrigData != uint64(len(hello)) || recs[0].OrigBytes != uint64(40+len(hello)) || recs[0].Name != "" {
		t.Fatalf("%+v", recs[0])
	}
}

func TestExtractors(t *testing.T) {
	hello := clientHello(t, "x.example.com")
	tests := []struct {
		name string
		fn   func([]byte) (string, parseResult)
		in   []byte
		want string
		res  parseResult
	}{
		{"sni whole", TLSServerName, hello, "x.example.com", parseOK},
		{"sni cut", TLSServerName, hello[:100], "", parseMore},
		{"sni one byte", TLSServerName, hello[:1], "", parseMore},
		{"not tls", TLSServerName, []byte("SSH-2.0-OpenSSH"), "", parseNo},
		{"tls app data", TLSServerName, []byte{0x17, 3, 3, 0, 10, 1, 2}, "", parseNo},
		{"http host", HTTPHost, []byte("POST /a HTTP/1.0\r\nhost: a.b\r\n\r\n"), "a.b", parseOK},
		{"http host v6", HTTPHost, []byte("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n"), "2001:db8::1", parseOK},
		{"http connect", HTTPHost, []byte("CONNECT c2.example.net:443 HTTP/1.1\r\n\r\n"), "c2.example.net", parseOK},
		{"http no host", HTTPHost, []byte("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), "", parseNo},
		{"http cut", HTTPHost, []byte("GET /long/path HTTP/1.1\r\nUser-"), "", parseMore},
		{"http method prefix", HTTPHost, []byte("GE"), "", parseMore},
		{"http bad host", HTTPHost, []byte("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), "", parseNo},
		{"not http", HTTPHost, []byte("GETTING"), "", parseNo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, res := tc.fn(tc.in)
			if got != tc.want || res != tc.res {
				t.Errorf("got %q %v, want %q %v", got, res, tc.want, tc.res)
			}
		})
	}
}

func TestParseDNSHostile(t *testing.T) {
	good := dnsMessage(1, "a.example", "b.example", addr("192.0.2.1"))
	loop := append([]byte(nil), good...)
	loop[12] = 0xc0 // question name points at itself
	loop[13] = 12
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"good", good, true},
		{"pointer loop", loop, false},
		{"short", good[:11], false},
		{"cut answer", good[:len(good)-2], true},
		{"no question", append([]byte{0, 1, 0x81, 0x80, 0, 0}, good[6:]...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m DNSMessage
			if ok := ParseDNS(tc.in, &m); ok != tc.ok {
				t.Errorf("ok=%v want %v (%+v)", ok, tc.ok, m)
			}
			if tc.name == "good" && (m.Name != "a.example" || len(m.Answers) != 1 || !m.Response) {
				t.Errorf("parsed %+v", m)
			}
			if tc.name == "cut answer" && len(m.Answers) != 0 {
				t.Errorf("answer read past the end: %v", m.Answers)
			}
		})
	}
	// Many answers are bounded.
	many := make([]netip.Addr, 40)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
	}
	var m DNSMessage
	ParseDNS(dnsMessage(2, "many.example", "", many...), &m)
	if len(m.Answers) != MaxAnswers {
		t.Errorf("kept %d answers", len(m.Answers))
	}
	if long := strings.Repeat("a.", 140); true {
		var m DNSMessage
		if ParseDNS(dnsMessage(3, long[:len(long)-1], ""), &m) {
			t.Errorf("accepted a %d-byte name", len(long))
		}
	}
}

// wait moves the conversation's clock on.
func (c *conv) wait(d time.Duration) { c.ts = c.ts.Add(d) }

func TestBursts(t *testing.T) {
	req := []byte("POST /beacon HTTP/1.1\r\nHost: 172.18.0.2:8888\r\nContent-Length: 0\r\n\r\n")
	tests := []struct {
		name  string
		drive func(c *conv)
		want  Bursts
	}{
		{
			// Caldera sandcat's shape: one kept-alive connection, a POST
			// and its answer every 40-60 s.
			name: "kept-alive check-ins",
			drive: func(c *conv) {
				c.handshake()
				for _, gap := range []time.Duration{0, 41 * time.Second, 57 * time.Second, 45 * time.Second} {
					c.wait(gap)
					c.send(true, 0x18, req)
					c.wait(900 * time.Millisecond) // a slow answer is still the same exchange
					c.send(false, 0x18, make([]byte, 300))
					c.send(true, 0x10, nil)
				}
			},
			// Starts after the 30 ms handshake, each 10 ms step counted.
			want: Bursts{N: 4, At: []uint32{30, 30 + 41000 + 930, 30 + 98000 + 1860, 30 + 143000 + 2790}, Head: 4},
		},
		{
			name: "keepalive probes and retransmissions start nothing",
			drive: func(c *conv) {
				c.handshake()
				c.send(true, 0x18, req)
				c.send(false, 0x18, make([]byte, 100))
				for range 3 {
					c.wait(30 * time.Second)
					// A keepalive probe: one old byte below the next sequence.
					c.cseq--
					c.send(true, 0x10, []byte{0})
					c.send(false, 0x10, nil)
				}
				c.wait(10 * time.Second)
				c.cseq -= uint32(len(req)) // the request again, whole
				c.send(true, 0x18, req)
			},
			want: Bursts{N: 1, At: []uint32{30}, Head: 1},
		},
		{
			name: "server push counts too",
			drive: func(c *conv) {
				c.handshake()
				for range 3 {
					c.wait(20 * time.Second)
					c.send(false, 0x18, []byte{1})
					c.send(true, 0x18, make([]byte, 48))
				}
			},
			want: Bursts{N: 3, At: []uint32{20030, 40050, 60070}, Head: 3},
		},
		{
			name: "no payload, no bursts",
			drive: func(c *conv) {
				c.handshake()
				c.close()
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(Options{IdleTimeout: time.Hour})
			c := newConv(t, b, t0, "172.18.0.3", "172.18.0.2", 35540, 8888)
			tc.drive(c)
			recs := flushAll(b)
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			if got := recs[0].Bursts; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("bursts %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBurstsBounded(t *testing.T) {
	// A day-long connection polled every minute keeps its first 32 and its
	// last 32 check-ins, in order, and counts all of them.
	b := NewBuilder(Options{IdleTimeout: time.Hour})
	c := newConv(t, b, t0, "10.0.0.5", "203.0.113.9", 50000, 443)
	c.handshake()
	const n = 1440
	for range n {
		c.send(true, 0x18, make([]byte, 200))
		c.send(false, 0x18, make([]byte, 600))
		c.wait(time.Minute - 20*time.Millisecond)
	}
	recs := flushAll(b)
	bu := recs[0].Bursts
	if bu.N != n || len(bu.At) != MaxBursts || bu.Head != MaxBursts/2 {
		t.Fatalf("N %d kept %d head %d", bu.N, len(bu.At), bu.Head)
	}
	var runs [][]uint32
	bu.Runs(func(ms []uint32) { runs = append(runs, ms) })
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	for i, r := range runs {
		first := 30 + 60000*uint32(i*(n-MaxBursts/2))
		for j, v := range r {
			if want := first + 60000*uint32(j); v != want {
				t.Fatalf("run %d start %d: %d ms, want %d", i, j, v, want)
			}
		}
	}
	// The record survives the codec with its series.
	enc, _ := zstd.NewWriter(nil)
	dec, _ := zstd.NewReader(nil)
	got, _, err := DecodeFile(EncodeFile(recs, enc), dec)
	if err != nil || !reflect.DeepEqual(got[0].Bursts, bu) {
		t.Fatalf("after the codec: %v %+v", err, got[0].Bursts)
	}
}

func TestBurstsUDPAndCut(t *testing.T) {
	// DNS queries from one socket every 10 s are one UDP flow with a burst
	// each; an active timeout cuts the series with the record.
	b := NewBuilder(Options{UDPIdleTimeout: time.Minute, ActiveTimeout: 35 * time.Second})
	q := dnsMessage(1, "c2.example.net", "")
	for i := range 6 {
		f := frame(frameSpec{src: addr("10.0.0.5"), dst: addr("10.0.0.53"), sport: 5353, dport: 53, proto: 17, payload: q})
		b.Add(t0.Add(time.Duration(i)*10*time.Second), 1, f, len(f))
	}
	recs := flushAll(b)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if want := (Bursts{N: 4, At: []uint32{0, 10000, 20000, 30000}, Head: 4}); !reflect.DeepEqual(recs[0].Bursts, want) {
		t.Errorf("first part %+v", recs[0].Bursts)
	}
	if want := (Bursts{N: 2, At: []uint32{0, 10000}, Head: 2}); !reflect.DeepEqual(recs[1].Bursts, want) {
		t.Errorf("second part %+v", recs[1].Bursts)
	}
}

func TestBurstsUDPWithin(t *testing.T) {
	// A UDP flow's packets within BurstIdle of its last data, either way,
	// extend its burst; the last data is the latest time seen, so a packet
	// stamped earlier than one before it does not move it back.
	type pkt struct {
		at    time.Duration
		reply bool
	}
	tests := []struct {
		name string
		pkts []pkt
		want Bursts
	}{
		{"gaps under and over", []pkt{{0, false}, {500 * time.Millisecond, false}, {1900 * time.Millisecond, false}, {3800 * time.Millisecond, false}, {5900 * time.Millisecond, false}},
			Bursts{N: 2, At: []uint32{0, 5900}, Head: 2}},
		{"a gap of BurstIdle", []pkt{{0, false}, {BurstIdle - 1, false}, {2*BurstIdle - 1, false}}, Bursts{N: 2, At: []uint32{0, 3999}, Head: 2}},
		{"earlier stamp", []pkt{{0, false}, {1500 * time.Millisecond, false}, {1000 * time.Millisecond, false}, {3400 * time.Millisecond, false}},
			Bursts{N: 1, At: []uint32{0}, Head: 1}},
		{"both ways", []pkt{{0, false}, {1500 * time.Millisecond, true}, {3200 * time.Millisecond, false}, {5300 * time.Millisecond, true}, {6 * time.Second, false}},
			Bursts{N: 2, At: []uint32{0, 5300}, Head: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(Options{UDPIdleTimeout: time.Minute})
			a, s := addr("10.0.0.5"), addr("10.0.0.53")
			for _, p := range tc.pkts {
				fs := frameSpec{src: a, dst: s, sport: 40000, dport: 9999, proto: 17, payload: []byte("ping")}
				if p.reply {
					fs.src, fs.dst, fs.sport, fs.dport = s, a, 9999, 40000
				}
				f := frame(fs)
				b.Add(t0.Add(p.at), 1, f, len(f))
			}
			recs := flushAll(b)
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			if got := recs[0].Bursts; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("bursts %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHTTPRequestTargets(t *testing.T) {
	tests := []struct {
		in   string
		want HTTPRequest
		res  parseResult
	}{
		{"GET /a?b=1 HTTP/1.1\r\nHost: Www.Example.org\r\n\r\n", HTTPRequest{Host: "www.example.org", Target: "http://www.example.org/a?b=1"}, parseOK},
		{"GET HTTP://User:Secret@Evil.Example:8080/x/Y HTTP/1.1\r\nHost: evil.example:8080\r\n\r\n",
			HTTPRequest{Host: "evil.example", Target: "http://evil.example:8080/x/Y", Proxy: "evil.example:8080"}, parseOK},
		{"GET https://[2001:DB8::1]/ HTTP/1.1\r\n\r\n", HTTPRequest{Host: "2001:db8::1", Target: "https://[2001:db8::1]/", Proxy: "[2001:db8::1]:443"}, parseOK},
		{"CONNECT Safebrowsing.googleapis.com:443 HTTP/1.1\r\nHost: safebrowsing.googleapis.com:443\r\n\r\n",
			HTTPRequest{Host: "safebrowsing.googleapis.com", Target: "safebrowsing.googleapis.com:443", Proxy: "safebrowsing.googleapis.com:443"}, parseOK},
		{"CONNECT c2.example.net:99999 HTTP/1.1\r\n\r\n", HTTPRequest{Host: "c2.example.net", Target: "c2.example.net:99999"}, parseOK},
		{"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", HTTPRequest{Host: "a"}, parseOK},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", HTTPRequest{Host: "a", Target: "*"}, parseOK},
		{"GET /" + strings.Repeat("x", 600) + " HTTP/1.1\r\nHost: a\r\n\r\n", HTTPRequest{Host: "a", Target: ("http://a/" + strings.Repeat("x", 600))[:MaxTarget]}, parseOK},
		{"GET /x HTTP/1.1\r\nUser-Agent: y\r\n", HTTPRequest{}, parseMore},
	}
	for _, tc := range tests {
		var got HTTPRequest
		res := ParseHTTPRequest([]byte(tc.in), &got)
		if got != tc.want || res != tc.res {
			t.Errorf("%q:\n got %+v %v\nwant %+v %v", tc.in[:min(len(tc.in), 60)], got, res, tc.want, tc.res)
		}
	}
	// In a flow: the proxy's client asks for the real destination.
	b := NewBuilder(Options{})
	c := newConv(t, b, t0, "10.0.0.111", "10.0.0.238", 54322, 3128)
	c.handshake()
	c.send(true, 0x18, []byte("CONNECT safebrowsing.googleapis.com:443 HTTP/1.1\r\nHost: safebrowsing.googleapis.com:443\r\n\r\n"))
	c.send(false, 0x18, []byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	c.send(true, 0x18, clientHello(t, "safebrowsing.googleapis.com"))
	r := flushAll(b)[0]
	if r.Name != "safebrowsing.googleapis.com" || r.NameSource != NameHTTP || r.ProxyDest != "safebrowsing.googleapis.com:443" ||
		r.HTTPTarget != "safebrowsing.googleapis.com:443" {
		t.Errorf("proxied flow: %+v", r)
	}
}

// TestAddAllocatesNothing: the per-packet path, burst tracking included,
// allocates nothing once a connection exists.
func TestAddAllocatesNothing(t *testing.T) {
	b := NewBuilder(Options{IdleTimeout: time.Hour})
	c := newConv(t, b, t0, "10.0.0.5", "203.0.113.9", 50000, 443)
	c.handshake()
	for range 4 { // past the inline burst slots: the series is on the heap
		c.send(true, 0x18, make([]byte, 100))
		c.wait(5 * time.Second)
	}
	seq := c.cseq
	ts := c.ts
	n := 0
	frames := make([][]byte, 300)
	for i := range frames {
		frames[i] = frame(frameSpec{src: c.c, dst: c.s, sport: c.cport, dport: c.sport, proto: 6, flags: 0x18, seq: seq + uint32(100*i), payload: make([]byte, 100)})
	}
	got := testing.AllocsPerRun(200, func() {
		f := frames[n%len(frames)]
		// Every 20th packet comes after an idle gap: a new burst.
		ts = ts.Add(100 * time.Millisecond)
		if n%20 == 0 {
			ts = ts.Add(3 * time.Second)
		}
		b.Add(ts, 1, f, len(f))
		n++
	})
	if got != 0 {
		t.Errorf("%.1f allocations per packet", got)
	}
	if bu := flushAll(b)[0].Bursts; bu.N < 10 {
		t.Errorf("only %d bursts", bu.N)
	}
}
