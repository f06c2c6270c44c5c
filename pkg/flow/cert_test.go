package flow

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server flights come from crypto/tls itself (an implementation other than
// the parser's), for certificates made here.

type issued struct {
	der []byte
	key *ecdsa.PrivateKey
	crt *x509.Certificate
}

// issue makes a certificate for subject, signed by parent (self-signed when
// parent is nil).
func issue(t testing.TB, subject pkix.Name, parent *issued, ca bool) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: ca, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.crt, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	crt, _ := x509.ParseCertificate(der)
	return issued{der: der, key: key, crt: crt}
}

// recordConn keeps what is written through it.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// serverFlight runs a TLS handshake (client without SNI when sni is "")
// and returns the bytes the server sent and the ClientHello.
func serverFlight(t testing.TB, chain []issued, maxVersion uint16, sni string) (server, hello []byte) {
	t.Helper()
	cl, sv := net.Pipe()
	rc := &recordConn{Conn: sv}
	crt := tls.Certificate{PrivateKey: chain[0].key}
	for _, c := range chain {
		crt.Certificate = append(crt.Certificate, c.der)
	}
	rcl := &recordConn{Conn: cl}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := tls.Client(rcl, &tls.Config{InsecureSkipVerify: true, ServerName: sni, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion})
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Handshake() //nolint: the server's result is what counts
		cl.Close()
	}()
	s := tls.Server(rc, &tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion})
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := s.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	sv.Close()
	<-done
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rcl.mu.Lock()
	defer rcl.mu.Unlock()
	h := rcl.out.Bytes()
	return bytes.Clone(rc.out.Bytes()), bytes.Clone(h[:5+(int(h[3])<<8|int(h[4]))])
}

func TestServerCertificate(t *testing.T) {
	root := issue(t, pkix.Name{CommonName: "Example Root", Organization: []string{"Example"}}, nil, true)
	inter := issue(t, pkix.Name{CommonName: "Example Issuing CA"}, &root, true)
	leaf := issue(t, pkix.Name{CommonName: "www.example.com"}, &inter, false)
	self := issue(t, pkix.Name{CommonName: "Test Server"}, nil, false)
	long := issue(t, pkix.Name{CommonName: strings.Repeat("é", 40) + "\x01", Organization: []string{"O"}}, nil, false)
	tests := []struct {
		name  string
		chain []issued
		ver   uint16
		res   parseResult
		want  TLSCert
	}{
		{"self-signed", []issued{self}, tls.VersionTLS12, parseOK, TLSCert{Flags: TLSCertSeen | TLSSelfSigned, SubjectCN: "Test Server", IssuerCN: "Test Server"}},
		{"chain sent", []issued{leaf, inter}, tls.VersionTLS12, parseOK, TLSCert{Flags: TLSCertSeen, SubjectCN: "www.example.com", IssuerCN: "Example Issuing CA"}},
		{"issuer not sent", []issued{leaf}, tls.VersionTLS12, parseOK, TLSCert{Flags: TLSCertSeen | TLSIssuerAbsent, SubjectCN: "www.example.com", IssuerCN: "Example Issuing CA"}},
		{"tls 1.0", []issued{self}, tls.VersionTLS10, parseOK, TLSCert{Flags: TLSCertSeen | TLSSelfSigned, SubjectCN: "Test Server", IssuerCN: "Test Server"}},
		// 64 bytes at most, cut between characters; control characters shown as '?'.
		{"long name", []issued{long}, tls.VersionTLS12, parseOK, TLSCert{Flags: TLSCertSeen | TLSSelfSigned, SubjectCN: strings.Repeat("é", 32), IssuerCN: strings.Repeat("é", 32)}},
		{"tls 1.3 encrypts it", []issued{self}, tls.VersionTLS13, parseNo, TLSCert{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := serverFlight(t, tc.chain, tc.ver, "x.example")
			got, res, _ := ServerCertificate(b, nil)
			if res != tc.res || got != tc.want {
				t.Fatalf("got %+v %v, want %+v %v", got, res, tc.want, tc.res)
			}
			// Every prefix asks for more (or already has the answer),
			// never gives up nor claims what the whole does not.
			var scratch []byte
			for i := range len(b) {
				c, r, hs := ServerCertificate(b[:i], scratch)
				scratch = hs
				if tc.res == parseOK && r == parseNo || r == parseOK && c != tc.want {
					t.Fatalf("prefix %d: %+v %v", i, c, r)
				}
			}
		})
	}
}

func TestCleanCN(t *testing.T) {
	tests := []struct {
		tag  byte
		in   []byte
		want string
	}{
		{0x13, []byte("DcRat Server"), "DcRat Server"},
		{0x1e, []byte{0, 'A', 0x04, 0x1f, 0xd8, 0x00, 0, 0x07}, "AП\uFFFD?"}, // BMPString: a lone surrogate, a BEL
		{0x1c, []byte{0, 0, 0, 'z', 0, 0x11, 0, 0}, "z\uFFFD"},               // UniversalString beyond Unicode
		{0x0c, []byte("a\x1b[31mred"), "a?[31mred"},                          // no terminal escapes
		{0x16, []byte{'a', 0xff}, "a?"},
		{0x0c, bytes.Repeat([]byte("x"), 100), strings.Repeat("x", MaxCN)},
	}
	for _, tc := range tests {
		if got := cleanCN(tc.tag, tc.in); got != tc.want {
			t.Errorf("cleanCN(%#x, %q) = %q, want %q", tc.tag, tc.in, got, tc.want)
		}
	}
}

// TestBuilderServerCertificate: the certificate is read from the server's
// segments in sequence order, whether or not the client named a server;
// a gap ends the search; a flow that is not TLS keeps none of it.
func TestBuilderServerCertificate(t *testing.T) {
	self := issue(t, pkix.Name{CommonName: "Test Server"}, nil, false)
	c, s := addr("10.0.0.1"), addr("198.51.100.9")
	run := func(sni string, segs func(flight []byte) [][]byte, client []byte) *Record {
		flight, hello := serverFlight(t, []issued{self}, tls.VersionTLS12, sni)
		if client != nil {
			hello = client
		}
		b := NewBuilder(Options{})
		add := func(i int, f frameSpec) {
			f.proto = 6
			b.Add(t0.Add(time.Duration(i)*time.Millisecond), 1, frame(f), len(frame(f)))
		}
		add(0, frameSpec{src: c, dst: s, sport: 50000, dport: 7084, flags: 0x02, seq: 99})
		add(1, frameSpec{src: s, dst: c, sport: 7084, dport: 50000, flags: 0x12, seq: 999})
		add(2, frameSpec{src: c, dst: s, sport: 50000, dport: 7084, flags: 0x18, seq: 100, payload: hello})
		seq := uint32(1000)
		for i, p := range segs(flight) {
			if p == nil {
				seq += 10 // a segment the capture lost
				continue
			}
			add(3+i, frameSpec{src: s, dst: c, sport: 7084, dport: 50000, flags: 0x18, seq: seq, payload: p})
			seq += uint32(len(p))
		}
		recs := flushAll(b)
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		return recs[0]
	}
	thirds := func(f []byte) [][]byte { n := len(f) / 3; return [][]byte{f[:n], f[n : 2*n], f[2*n:]} }
	selfSigned := TLSCert{Flags: TLSCertSeen | TLSSelfSigned, SubjectCN: "Test Server", IssuerCN: "Test Server"}
	if r := run("", thirds, nil); r.TLS != (TLSCert{Flags: selfSigned.Flags | TLSNoSNI, SubjectCN: "Test Server", IssuerCN: "Test Server"}) {
		t.Errorf("no SNI, three segments: %+v", r.TLS)
	}
	if r := run("c2.example", thirds, nil); r.TLS != selfSigned || r.Name != "c2.example" {
		t.Errorf("SNI: %+v %q", r.TLS, r.Name)
	}
	gap := func(f []byte) [][]byte { n := len(f) / 3; return [][]byte{f[:n], nil, f[n:]} }
	if r := run("", gap, nil); r.TLS != (TLSCert{Flags: TLSNoSNI}) {
		t.Errorf("gap: %+v", r.TLS)
	}
	retrans := func(f []byte) [][]byte { n := len(f) / 2; return [][]byte{f[:n], f[n:]} }
	if r := run("", retrans, []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n")); r.TLS != (TLSCert{}) {
		t.Errorf("HTTP flow: %+v", r.TLS)
	}
}

// BenchmarkBuilderTLSFlows: connections whose server sends its
// certificate over three segments, as most TLS 1.2 servers do: the
// certificate search's buffer is what a flow allocates beyond its entry.
func BenchmarkBuilderTLSFlows(b *testing.B) {
	self := issue(b, pkix.Name{CommonName: "Bench"}, nil, false)
	flight, hello := serverFlight(b, []issued{self}, tls.VersionTLS12, "bench.example")
	n := len(flight) / 3
	segs := [][]byte{flight[:n], flight[n : 2*n], flight[2*n:]}
	c, s := addr("10.0.0.1"), addr("198.51.100.9")
	var frames [][]byte
	for port := uint16(40000); port < 40256; port++ {
		frames = append(frames,
			frame(frameSpec{proto: 6, src: c, dst: s, sport: port, dport: 443, flags: 0x02, seq: 99}),
			frame(frameSpec{proto: 6, src: s, dst: c, sport: 443, dport: port, flags: 0x12, seq: 999}),
			frame(frameSpec{proto: 6, src: c, dst: s, sport: port, dport: 443, flags: 0x18, seq: 100, payload: hello}))
		seq := uint32(1000)
		for _, p := range segs {
			frames = append(frames, frame(frameSpec{proto: 6, src: s, dst: c, sport: 443, dport: port, flags: 0x18, seq: seq, payload: p}))
			seq += uint32(len(p))
		}
		frames = append(frames, frame(frameSpec{proto: 6, src: c, dst: s, sport: port, dport: 443, flags: 0x11, seq: 100 + uint32(len(hello))}))
	}
	bld := NewBuilder(Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := t0.Add(time.Duration(i) * time.Hour)
		for j, f := range frames {
			bld.Add(ts.Add(time.Duration(j)*time.Microsecond), 1, f, len(f))
		}
		bld.Flush(func(*Record) {})
	}
}
