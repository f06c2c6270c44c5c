package demogen

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Background application protocols: TLS 1.3 handshakes whose ClientHello
// names the server (SNI), HTTP/1.1, DNS and NTP. Encrypted content is
// pseudo-random bytes in well-formed records.

const (
	tlsHandshake    = 0x16
	tlsCCS          = 0x14
	tlsAppData      = 0x17
	tlsMaxRecord    = 16384 + 17 // plaintext limit plus the AEAD tag and inner type
	tlsVersion12    = 0x0303
	tlsVersion10    = 0x0301
	tlsAES128GCM256 = 0x1301
)

func tlsRecord(typ byte, version uint16, body []byte) []byte {
	b := []byte{typ, byte(version >> 8), byte(version)}
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func u16be(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }

func tlsExt(b []byte, typ int, body []byte) []byte {
	b = u16be(b, typ)
	b = u16be(b, len(body))
	return append(b, body...)
}

// clientHello is a browser-like TLS 1.3 ClientHello for sni; resume
// offers a session ticket (pre_shared_key), as clients that talked to
// the server before do.
func clientHello(sni string, resume bool, r *rng) []byte {
	h := u16be(nil, tlsVersion12)
	h = append(h, r.bytes(32)...)
	h = append(h, 32)
	h = append(h, r.bytes(32)...)
	suites := []int{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	h = u16be(h, 2*len(suites))
	for _, s := range suites {
		h = u16be(h, s)
	}
	h = append(h, 1, 0) // null compression
	// server_name: list length, then one host_name entry.
	name := u16be([]byte{0}, len(sni))
	name = append(name, sni...)
	var e []byte
	sn := u16be(nil, len(name))
	sn = append(sn, name...)
	e = tlsExt(e, 0, sn)
	e = tlsExt(e, 23, nil)                                     // extended_master_secret
	e = tlsExt(e, 0xff01, []byte{0})                           // renegotiation_info
	e = tlsExt(e, 10, []byte{0, 6, 0, 0x1d, 0, 0x17, 0, 0x18}) // supported_groups
	e = tlsExt(e, 11, []byte{1, 0})                            // ec_point_formats
	e = tlsExt(e, 35, nil)                                     // session_ticket
	alpn := []byte{0, 12, 2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'}
	e = tlsExt(e, 16, alpn)
	e = tlsExt(e, 5, []byte{1, 0, 0, 0, 0}) // status_request
	e = tlsExt(e, 13, []byte{0, 16, 4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1})
	ks := []byte{0, 36, 0, 0x1d, 0, 32}
	ks = append(ks, r.bytes(32)...)
	e = tlsExt(e, 51, ks)                    // key_share: x25519
	e = tlsExt(e, 45, []byte{1, 1})          // psk_key_exchange_modes
	e = tlsExt(e, 43, []byte{4, 3, 4, 3, 3}) // supported_versions: 1.3, 1.2
	if resume {
		// pre_shared_key, last: one ticket identity and its binder.
		ticket := r.bytes(192)
		id := u16be(nil, len(ticket))
		id = append(id, ticket...)
		id = binary.BigEndian.AppendUint32(id, r.u32())
		psk := u16be(nil, len(id))
		psk = append(psk, id...)
		psk = u16be(psk, 33)
		psk = append(psk, 32)
		psk = append(psk, r.bytes(32)...)
		e = tlsExt(e, 41, psk)
	}
	h = u16be(h, len(e))
	h = append(h, e...)
	hs := []byte{1, byte(len(h) >> 16), byte(len(h) >> 8), byte(len(h))}
	return tlsRecord(tlsHandshake, tlsVersion10, append(hs, h...))
}

// serverFlight is the ServerHello, the compatibility ChangeCipherSpec, and
// the encrypted rest of the server's handshake: certificates and all (a
// few KB), or, when the client's ticket is accepted, only the encrypted
// extensions and Finished.
func serverFlight(hello []byte, resume bool, r *rng) []byte {
	// Echo the client's session id, as TLS 1.3 middlebox compatibility asks.
	sid := hello[5+4+2+32+1 : 5+4+2+32+1+32]
	h := u16be(nil, tlsVersion12)
	h = append(h, r.bytes(32)...)
	h = append(h, 32)
	h = append(h, sid...)
	h = u16be(h, tlsAES128GCM256)
	h = append(h, 0)
	var e []byte
	e = tlsExt(e, 43, []byte{3, 4})
	ks := []byte{0, 0x1d, 0, 32}
	ks = append(ks, r.bytes(32)...)
	e = tlsExt(e, 51, ks)
	rest := r.between(2400, 4800)
	if resume {
		e = tlsExt(e, 41, []byte{0, 0}) // selected identity 0
		rest = r.between(60, 120)
	}
	h = u16be(h, len(e))
	h = append(h, e...)
	hs := []byte{2, byte(len(h) >> 16), byte(len(h) >> 8), byte(len(h))}
	b := tlsRecord(tlsHandshake, tlsVersion12, append(hs, h...))
	b = append(b, tlsRecord(tlsCCS, tlsVersion12, []byte{1})...)
	return append(b, tlsData(rest, r)...)
}

// tlsData is n bytes of application data in as many records as needed.
func tlsData(n int, r *rng) []byte {
	var b []byte
	for n > 0 {
		k := min(n, tlsMaxRecord)
		b = append(b, tlsRecord(tlsAppData, tlsVersion12, r.bytes(k))...)
		n -= k
	}
	return b
}

// tlsClientFinish is the client's ChangeCipherSpec and encrypted Finished.
func tlsClientFinish(r *rng) []byte {
	b := tlsRecord(tlsCCS, tlsVersion12, []byte{1})
	return append(b, tlsRecord(tlsAppData, tlsVersion12, r.bytes(53))...)
}

// tlsSession is one HTTPS exchange over c: handshake (resumed from a
// ticket or full), a request of req bytes, a response of resp bytes, the
// client's close_notify and FIN.
func tlsSession(c *tcpConn, sni string, resume bool, req, resp int, think time.Duration, r *rng) {
	c.handshake()
	hello := clientHello(sni, resume, r)
	c.send(0, hello)
	c.turn(200 * time.Microsecond)
	c.send(1, serverFlight(hello, resume, r))
	c.turn(300 * time.Microsecond)
	c.send(0, append(tlsClientFinish(r), tlsData(req, r)...))
	c.turn(think)
	c.send(1, tlsData(resp, r))
	c.wait(time.Duration(r.intn(int(80 * time.Millisecond))))
	c.send(0, tlsRecord(tlsAppData, tlsVersion12, r.bytes(19))) // close_notify
	c.close(0)
}

// httpSession is one plain HTTP/1.1 GET of path with a resp-byte body.
func httpSession(c *tcpConn, host, path string, resp int, think time.Duration, r *rng) {
	c.handshake()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: close\r\n\r\n", path, host)
	c.send(0, []byte(req))
	c.turn(think)
	hdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nCache-Control: max-age=3600\r\nConnection: close\r\n\r\n", resp)
	c.send(1, append([]byte(hdr), r.bytes(resp)...))
	c.close(1)
}

// DNS messages (RFC 1035).

func dnsName(b []byte, name string) []byte {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// dnsQuery asks for the A record of name.
func dnsQuery(id uint16, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // recursion desired, one question
	b = dnsName(b, name)
	return append(b, 0, 1, 0, 1)
}

// dnsAnswer answers a query with one A record per address.
func dnsAnswer(id uint16, name string, ttl uint32, addrs ...netip.Addr) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x81, 0x80, 0, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	b = append(b, 0, 0, 0, 0)
	b = dnsName(b, name)
	b = append(b, 0, 1, 0, 1)
	for _, a := range addrs {
		b = append(b, 0xc0, 12, 0, 1, 0, 1)
		b = binary.BigEndian.AppendUint32(b, ttl)
		b = append(b, 0, 4)
		v := a.As4()
		b = append(b, v[:]...)
	}
	return b
}

// ntpPacket is an NTPv3 client request (mode 3) or server reply (mode 4).
func ntpPacket(server bool, now time.Time, origin uint64, r *rng) []byte {
	b := make([]byte, 48)
	ts := ntpTime(now)
	if !server {
		b[0] = 0x1b // v3, client
		binary.BigEndian.PutUint64(b[40:], ts)
		return b
	}
	b[0] = 0x1c // v3, server
	b[1] = 3    // stratum
	b[2] = 10   // poll
	b[3] = 0xe9 // precision
	binary.BigEndian.PutUint32(b[4:], 0x00000b1e)
	binary.BigEndian.PutUint32(b[8:], 0x00000400+r.u32()&0xff)
	copy(b[12:16], []byte{10, 20, 0, 1}) // reference id: the upstream
	binary.BigEndian.PutUint64(b[16:], ntpTime(now.Add(-17*time.Minute)))
	binary.BigEndian.PutUint64(b[24:], origin)
	binary.BigEndian.PutUint64(b[32:], ts)
	binary.BigEndian.PutUint64(b[40:], ts+uint64(r.intn(1<<16)))
	return b
}

func ntpTime(t time.Time) uint64 {
	sec := uint64(t.Unix() + 2208988800)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}
