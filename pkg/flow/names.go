package flow

import (
	"encoding/binary"
	"net/netip"
)

// Name extraction from the first bytes of a flow. Every parser here reads
// hostile bytes: each length is checked against what remains, loops are
// bounded, and nothing allocates from a count the input claims.

// parseResult says whether a parser found a name, needs more bytes, or gave up.
type parseResult uint8

const (
	parseNo   parseResult = iota // not this protocol, or no name in it
	parseMore                    // the message continues beyond the bytes given
	parseOK                      // name found
)

// maxName bounds a DNS/SNI/Host name (RFC 1035 allows 253 characters).
const maxName = 255

// MaxAnswers bounds the addresses kept from one DNS flow.
const MaxAnswers = 16

// TLSServerName returns the server_name of a TLS ClientHello at the start
// of b (the first bytes the client sent). It reports parseMore when b ends
// inside the ClientHello before the extension was reached.
func TLSServerName(b []byte) (string, parseResult) {
	var sni bool
	return clientHelloName(b, &sni)
}

// clientHelloName is TLSServerName that also sets *sni when the
// ClientHello had a server_name extension at all.
func clientHelloName(b []byte, sni *bool) (string, parseResult) {
	// TLS record: type 22 (handshake), version 3.x, length.
	if len(b) < 5 {
		if len(b) > 0 && b[0] != 0x16 {
			return "", parseNo
		}
		return "", parseMore
	}
	if b[0] != 0x16 || b[1] != 3 || b[2] > 4 {
		return "", parseNo
	}
	recLen := int(binary.BigEndian.Uint16(b[3:]))
	if recLen < 4 || recLen > 1<<14+2048 {
		return "", parseNo
	}
	body := b[5:]
	more := false
	if len(body) > recLen {
		body = body[:recLen]
	} else if len(body) < recLen {
		more = true
	}
	// Handshake: type 1 (ClientHello), 3-byte length.
	if len(body) < 4 {
		return "", parseMore
	}
	if body[0] != 1 {
		return "", parseNo
	}
	hsLen := int(body[1])<<16 | int(body[2])<<8 | int(body[3])
	h := body[4:]
	if len(h) > hsLen {
		h = h[:hsLen]
	} else if len(h) < hsLen {
		more = true
	}
	need := func() (string, parseResult) {
		if more {
			return "", parseMore
		}
		return "", parseNo
	}
	// client_version(2) random(32)
	if len(h) < 34 {
		return need()
	}
	p := 34
	// session_id
	if len(h) < p+1 {
		return need()
	}
	p += 1 + int(h[p])
	// cipher_suites
	if len(h) < p+2 {
		return need()
	}
	p += 2 + int(binary.BigEndian.Uint16(h[p:]))
	// compression_methods
	if len(h) < p+1 {
		return need()
	}
	p += 1 + int(h[p])
	// extensions
	if len(h) < p+2 {
		return need()
	}
	extEnd := p + 2 + int(binary.BigEndian.Uint16(h[p:]))
	p += 2
	for p+4 <= len(h) && p+4 <= extEnd {
		typ := binary.BigEndian.Uint16(h[p:])
		n := int(binary.BigEndian.Uint16(h[p+2:]))
		p += 4
		if typ != 0 { // not server_name
			p += n
			continue
		}
		*sni = true
		if len(h) < p+n {
			return need()
		}
		ext := h[p : p+n]
		if len(ext) < 2 {
			return "", parseNo
		}
		list := ext[2:]
		if l := int(binary.BigEndian.Uint16(ext)); l < len(list) {
			list = list[:l]
		}
		for len(list) >= 3 {
			nt, nl := list[0], int(binary.BigEndian.Uint16(list[1:]))
			list = list[3:]
			if nl > len(list) {
				return "", parseNo
			}
			if nt == 0 {
				if name, ok := cleanName(list[:nl]); ok {
					return name, parseOK
				}
				return "", parseNo
			}
			list = list[nl:]
		}
		return "", parseNo
	}
	return need()
}

// httpMethods are the request methods whose first line starts a client
// payload; anything else is not HTTP/1.
var httpMethods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "CONNECT ", "PATCH ", "TRACE "}

// HTTPRequest is what the start of an HTTP/1 request says about where it
// goes.
type HTTPRequest struct {
	// Host is the Host header (else the authority of an absolute-form or
	// CONNECT target), lower case, without the port.
	Host string
	// Target is the request target as an absolute URI (Record.HTTPTarget):
	// absolute-form and CONNECT targets as sent, origin-form ones prefixed
	// with "http://" and the Host header. Empty when it is not printable
	// ASCII.
	Target string
	// Proxy is "host:port" asked of a forward proxy: the authority of a
	// CONNECT or of an absolute-form target. Empty otherwise.
	Proxy string
}

// HTTPHost returns the Host header of an HTTP/1 request at the start of b,
// or the authority of a CONNECT request. The port is dropped.
func HTTPHost(b []byte) (string, parseResult) {
	var req HTTPRequest
	res := ParseHTTPRequest(b, &req)
	return req.Host, res
}

// ParseHTTPRequest reads the request line and headers of an HTTP/1
// request at the start of b (the first bytes a client sent). It reports
// parseOK when it found a host to name the flow by, parseMore when b ends
// before the headers do.
func ParseHTTPRequest(b []byte, req *HTTPRequest) parseResult {
	*req = HTTPRequest{}
	method := ""
	for _, m := range httpMethods {
		n := min(len(m), len(b))
		if string(b[:n]) == m[:n] {
			method = m
			break
		}
	}
	if method == "" {
		return parseNo
	}
	if len(b) < len(method) {
		return parseMore
	}
	// Request line.
	eol := indexCRLF(b)
	if eol < 0 {
		if len(b) > 8192 {
			return parseNo
		}
		return parseMore
	}
	line := b[len(method):eol]
	sp := -1
	for i, c := range line {
		if c == ' ' {
			sp = i
			break
		}
	}
	if sp < 0 || !hasPrefix(line[sp+1:], "HTTP/") {
		return parseNo
	}
	target := line[:sp]
	var hostHdr []byte
	p := eol + 2
	complete := false
	for range 100 { // header lines, bounded
		e := indexCRLF(b[p:])
		if e < 0 {
			break
		}
		h := b[p : p+e]
		if len(h) == 0 { // end of headers
			complete = true
			break
		}
		if len(h) > 5 && lowerEq(h[:5], "host:") && hostHdr == nil {
			hostHdr = trimSpace(h[5:])
		}
		p += e + 2
	}
	if hostHdr == nil && !complete && len(b) <= 8192 && method != "CONNECT " {
		return parseMore
	}

	// Where the request goes: CONNECT host:port, or an absolute URI.
	var authority []byte
	defPort, authEnd := "", 0 // authEnd: where scheme and authority end in target
	switch {
	case method == "CONNECT ":
		authority, authEnd = target, len(target)
	case hasPrefixFold(target, "http://"):
		authEnd = 7 + uriAuthorityEnd(target[7:])
		authority, defPort = userinfoCut(target[7:authEnd]), "80"
	case hasPrefixFold(target, "https://"):
		authEnd = 8 + uriAuthorityEnd(target[8:])
		authority, defPort = userinfoCut(target[8:authEnd]), "443"
	}
	if authority != nil {
		req.Proxy = proxyDest(authority, defPort)
	}
	if printable(target) && len(target) > 0 {
		// Scheme and host are case-insensitive: lower case, so that a
		// reader can match URLs byte for byte.
		var t []byte
		switch {
		case method == "CONNECT ":
			t = lowerASCII(nil, target)
		case authority != nil:
			// scheme "://" authority rest, without any user:password@
			// (a secret is never kept).
			sch := target[:bytesIndexColon(target)]
			t = lowerASCII(nil, sch)
			t = lowerASCII(append(t, "://"...), authority)
			t = append(t, target[authEnd:]...)
		case target[0] == '/' && hostHdr != nil && printable(hostHdr):
			t = lowerASCII([]byte("http://"), hostHdr)
			t = append(t, target...)
		default:
			t = target
		}
		req.Target = string(t[:min(len(t), MaxTarget)])
	}
	src := hostHdr
	if src == nil {
		src = authority
	}
	if src == nil {
		return parseNo
	}
	name, ok := cleanName(stripPort(src))
	if !ok {
		return parseNo
	}
	req.Host = name
	return parseOK
}

// uriAuthorityEnd returns where the authority of an absolute URI ends,
// given what follows its scheme: at the first '/', '?' or '#'.
func uriAuthorityEnd(b []byte) int {
	for i, c := range b {
		if c == '/' || c == '?' || c == '#' {
			return i
		}
	}
	return len(b)
}

// userinfoCut drops "user:password@" from an authority.
func userinfoCut(b []byte) []byte {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '@' {
			return b[i+1:]
		}
	}
	return b
}

// proxyDest normalises an authority to host:port (port defPort when it
// has none; "" when there is no valid host or port).
func proxyDest(auth []byte, defPort string) string {
	host := stripPort(auth)
	port := defPort
	rest := auth[len(host):]
	if len(auth) > 0 && auth[0] == '[' {
		rest = auth[min(len(auth), len(host)+2):] // after "[host]"
	}
	if len(rest) > 0 {
		if rest[0] != ':' {
			return ""
		}
		port = string(rest[1:])
	}
	if n, ok := portNumber(port); !ok || n == 0 {
		return ""
	}
	name, ok := cleanName(host)
	if !ok {
		return ""
	}
	for i := 0; i < len(name); i++ {
		if name[i] == ':' { // IPv6: bracket it so the port stays apart
			name = "[" + name + "]"
			break
		}
	}
	if len(name)+1+len(port) > maxProxyDest {
		return ""
	}
	return name + ":" + port
}

func portNumber(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 65535
}

// printable reports whether b is all visible ASCII (what a request target
// and a Host header may hold).
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// bytesIndexColon returns the index of the first ':' in b (len(b) if none).
func bytesIndexColon(b []byte) int {
	for i, c := range b {
		if c == ':' {
			return i
		}
	}
	return len(b)
}

// lowerASCII appends b to dst with ASCII letters in lower case.
func lowerASCII(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func hasPrefixFold(b []byte, s string) bool { return len(b) >= len(s) && lowerEq(b[:len(s)], s) }

// DNSMessage is what a DNS message says about names.
type DNSMessage struct {
	Response bool
	Name     string       // first question name, lower case, no trailing dot
	Answers  []netip.Addr // A and AAAA records of the answer section
}

// ParseDNS decodes a DNS message (without the TCP length prefix). It
// appends answers to m.Answers, keeping at most MaxAnswers in total.
func ParseDNS(b []byte, m *DNSMessage) bool {
	if len(b) < 12 {
		return false
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&0x7800 != 0 { // opcode: only standard queries
		return false
	}
	qd := int(binary.BigEndian.Uint16(b[4:]))
	an := int(binary.BigEndian.Uint16(b[6:]))
	if qd == 0 || qd > 4 {
		return false
	}
	m.Response = flags&0x8000 != 0
	var nameBuf [maxName]byte
	p := 12
	for i := range qd {
		name, next, ok := dnsName(b, p, nameBuf[:0])
		if !ok || next+4 > len(b) {
			return false
		}
		if i == 0 {
			if s, ok := cleanName(name); ok {
				m.Name = s
			}
		}
		p = next + 4
	}
	if !m.Response {
		return m.Name != ""
	}
	for range min(an, 64) {
		_, next, ok := dnsName(b, p, nil)
		if !ok || next+10 > len(b) {
			break
		}
		typ := binary.BigEndian.Uint16(b[next:])
		rdlen := int(binary.BigEndian.Uint16(b[next+8:]))
		rd := next + 10
		if rd+rdlen > len(b) {
			break
		}
		var a netip.Addr
		switch {
		case typ == 1 && rdlen == 4:
			a = netip.AddrFrom4([4]byte(b[rd : rd+4]))
		case typ == 28 && rdlen == 16:
			a = netip.AddrFrom16([16]byte(b[rd : rd+16]))
		}
		if a.IsValid() && len(m.Answers) < MaxAnswers && !containsAddr(m.Answers, a) {
			m.Answers = append(m.Answers, a)
		}
		p = rd + rdlen
	}
	return m.Name != ""
}

// dnsName reads a possibly compressed name at p, appending its dotted form
// to dst (when dst is non-nil). It returns the offset after the name in
// the message (not after a pointer's target).
func dnsName(b []byte, p int, dst []byte) (name []byte, next int, ok bool) {
	next = -1
	for jumps := 0; jumps < 16; {
		if p >= len(b) {
			return nil, 0, false
		}
		l := int(b[p])
		switch {
		case l == 0:
			if next < 0 {
				next = p + 1
			}
			return dst, next, true
		case l&0xc0 == 0xc0:
			if p+1 >= len(b) {
				return nil, 0, false
			}
			if next < 0 {
				next = p + 2
			}
			p = int(binary.BigEndian.Uint16(b[p:]) & 0x3fff)
			jumps++
		case l&0xc0 != 0:
			return nil, 0, false
		default:
			if p+1+l > len(b) {
				return nil, 0, false
			}
			if dst != nil {
				if len(dst)+l+1 > maxName {
					return nil, 0, false
				}
				if len(dst) > 0 {
					dst = append(dst, '.')
				}
				dst = append(dst, b[p+1:p+1+l]...)
			}
			p += 1 + l
		}
	}
	return nil, 0, false
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// CleanName is cleanName for other readers of names (Zeek logs): the same
// rules, so that a name means the same whatever it came from.
func CleanName(b []byte) (string, bool) { return cleanName(b) }

// cleanName lower-cases a host name and rejects anything that is not one:
// empty, too long, or with bytes outside letters, digits, '-', '_', '.'.
func cleanName(b []byte) (string, bool) {
	for len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || len(b) > maxName {
		return "", false
	}
	var buf [maxName]byte
	out := buf[:len(b)]
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':', c == '[', c == ']':
		default:
			return "", false
		}
		out[i] = c
	}
	return string(out), true
}

func indexCRLF(b []byte) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return i
		}
	}
	return -1
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

func lowerEq(b []byte, s string) bool {
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// stripPort drops ":port" from host:port and the brackets of [v6]:port.
func stripPort(b []byte) []byte {
	if len(b) > 0 && b[0] == '[' {
		for i := range b {
			if b[i] == ']' {
				return b[1:i]
			}
		}
		return b
	}
	colons, last := 0, -1
	for i, c := range b {
		if c == ':' {
			colons++
			last = i
		}
	}
	if colons == 1 {
		return b[:last]
	}
	return b
}
