package flow

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Test frames are built field by field: Ethernet II, optional 802.1Q tag,
// IPv4 or IPv6, then TCP or UDP or ICMP.

type frameSpec struct {
	src, dst   netip.Addr
	sport      uint16
	dport      uint16
	proto      uint8
	flags      uint8
	seq, ack   uint32
	payload    []byte
	wirePay    int // payload length on the wire when larger than payload (snap length cut)
	vlan       uint16
	icmpType   uint8
	icmpCode   uint8
	ipFragment uint16 // IPv4 flags+offset field
}

func frame(s frameSpec) []byte {
	var f []byte
	f = append(f, 0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2)
	if s.vlan != 0 {
		f = append(f, 0x81, 0x00, byte(s.vlan>>8), byte(s.vlan))
	}
	var l4 []byte
	switch s.proto {
	case 6:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], s.sport)
		binary.BigEndian.PutUint16(l4[2:], s.dport)
		binary.BigEndian.PutUint32(l4[4:], s.seq)
		binary.BigEndian.PutUint32(l4[8:], s.ack)
		l4[12] = 5 << 4
		l4[13] = s.flags
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case 17:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], s.sport)
		binary.BigEndian.PutUint16(l4[2:], s.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+max(len(s.payload), s.wirePay)))
	case 1, 58:
		l4 = []byte{s.icmpType, s.icmpCode, 0, 0, 0, 1, 0, 1}
	}
	pay := max(len(s.payload), s.wirePay)
	if s.src.Is4() {
		f = append(f, 0x08, 0x00)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)+pay))
		binary.BigEndian.PutUint16(ip[6:], s.ipFragment)
		ip[8] = 64
		ip[9] = s.proto
		a, b := s.src.As4(), s.dst.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		f = append(f, ip...)
	} else {
		f = append(f, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)+pay))
		ip[6] = s.proto
		ip[7] = 64
		a, b := s.src.As16(), s.dst.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
		f = append(f, ip...)
	}
	f = append(f, l4...)
	return append(f, s.payload...)
}

// conv drives a TCP conversation between a client and a server, keeping
// sequence numbers right.
type conv struct {
	t            *testing.T
	b            *Builder
	ts           time.Time
	c, s         netip.Addr
	cport, sport uint16
	cseq, sseq   uint32
	step         time.Duration
	frames       [][]byte
}

func newConv(t *testing.T, b *Builder, ts time.Time, c, s string, cport, sport uint16) *conv {
	return &conv{t: t, b: b, ts: ts, c: netip.MustParseAddr(c), s: netip.MustParseAddr(s),
		cport: cport, sport: sport, cseq: 1000, sseq: 5000, step: 10 * time.Millisecond}
}

func (c *conv) send(fromClient bool, flags uint8, payload []byte) {
	var s frameSpec
	if fromClient {
		s = frameSpec{src: c.c, dst: c.s, sport: c.cport, dport: c.sport, proto: 6, flags: flags, seq: c.cseq, ack: c.sseq, payload: payload}
		c.cseq += uint32(len(payload))
		if flags&0x03 != 0 {
			c.cseq++
		}
	} else {
		s = frameSpec{src: c.s, dst: c.c, sport: c.sport, dport: c.cport, proto: 6, flags: flags, seq: c.sseq, ack: c.cseq, payload: payload}
		c.sseq += uint32(len(payload))
		if flags&0x03 != 0 {
			c.sseq++
		}
	}
	f := frame(s)
	c.frames = append(c.frames, f)
	c.b.Add(c.ts, 1, f, len(f))
	c.ts = c.ts.Add(c.step)
}

func (c *conv) handshake() {
	c.send(true, 0x02, nil)
	c.send(false, 0x12, nil)
	c.send(true, 0x10, nil)
}

func (c *conv) close() {
	c.send(true, 0x11, nil)
	c.send(false, 0x11, nil)
	c.send(true, 0x10, nil)
}

// clientHello returns the first bytes Go's TLS client sends for serverName:
// a real ClientHello, with today's post-quantum key share (over 1 KB).
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	cl, sv := net.Pipe()
	defer sv.Close()
	go func() {
		c := tls.Client(cl, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		c.Handshake() //nolint: the server side never answers
		cl.Close()
	}()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	sv.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := sv.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			t.Fatalf("reading ClientHello: %v", err)
		}
		if len(buf) >= 5 && len(buf) >= 5+int(binary.BigEndian.Uint16(buf[3:])) {
			return buf[:5+int(binary.BigEndian.Uint16(buf[3:]))]
		}
	}
}

// dnsMessage builds a DNS query, or a response with A/AAAA answers (the
// first answer is a CNAME when cname is set), with name compression.
func dnsMessage(id uint16, name string, cname string, answers ...netip.Addr) []byte {
	m := make([]byte, 12)
	binary.BigEndian.PutUint16(m[0:], id)
	binary.BigEndian.PutUint16(m[4:], 1)
	resp := len(answers) > 0 || cname != ""
	if resp {
		binary.BigEndian.PutUint16(m[2:], 0x8180)
	} else {
		binary.BigEndian.PutUint16(m[2:], 0x0100)
	}
	m = appendDNSName(m, name)
	m = append(m, 0, 1, 0, 1)
	an := 0
	target := []byte{0xc0, 12}
	if cname != "" {
		m = append(m, 0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60)
		enc := appendDNSName(nil, cname)
		m = binary.BigEndian.AppendUint16(m, uint16(len(enc)))
		off := len(m)
		m = append(m, enc...)
		target = []byte{0xc0 | byte(off>>8), byte(off)}
		an++
	}
	for _, a := range answers {
		m = append(m, target...)
		if a.Is4() {
			m = append(m, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
			b := a.As4()
			m = append(m, b[:]...)
		} else {
			m = append(m, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16)
			b := a.As16()
			m = append(m, b[:]...)
		}
		an++
	}
	binary.BigEndian.PutUint16(m[6:], uint16(an))
	return m
}

func appendDNSName(m []byte, name string) []byte {
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			m = append(m, byte(i-start))
			m = append(m, name[start:i]...)
			start = i + 1
		}
	}
	return append(m, 0)
}
