package flow

import (
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// The server's certificate, read from its first bytes when the handshake
// is in clear (TLS 1.2 and older; docs/format/flows.md, version 3). Every
// length is checked against the bytes present; nothing is allocated from a
// length the input claims.

// TLSFlags are the certificate facts of a flow.
type TLSFlags uint8

// TLS flag bits (docs/format/flows.md).
const (
	TLSCertSeen   TLSFlags = 1 << iota // the leaf certificate was read
	TLSSelfSigned                      // the leaf's raw subject equals its raw issuer
	TLSNoSNI                           // the ClientHello carried no server_name
	// TLSIssuerAbsent: the leaf is not self-signed and no certificate the
	// server sent has its issuer as subject: its CA is private (or the
	// server forgot its intermediate), as Zeek's "unable to get local
	// issuer certificate" says.
	TLSIssuerAbsent
	// TLSFlagsAll are the bits defined.
	TLSFlagsAll = TLSCertSeen | TLSSelfSigned | TLSNoSNI | TLSIssuerAbsent
)

// Certificate bounds.
const (
	// MaxCN bounds each common name kept.
	MaxCN = 64
	// certBufMax bounds the server bytes buffered per flow for the search:
	// ServerHello and the leaf fit with room to spare; a long chain after
	// the leaf need not.
	certBufMax = 16 << 10
)

// TLSCert is what the server's certificate said.
type TLSCert struct {
	Flags     TLSFlags
	SubjectCN string // the leaf subject's commonName (MaxCN bytes at most)
	IssuerCN  string // the leaf issuer's commonName
}

// Seen reports whether a certificate was read.
func (c TLSCert) Seen() bool { return c.Flags&TLSCertSeen != 0 }

// SelfSigned reports whether the leaf was self-signed.
func (c TLSCert) SelfSigned() bool { return c.Flags&TLSSelfSigned != 0 }

// PrivateIssuer reports whether the leaf was self-signed or its issuer
// was not sent: no public CA vouched for it, as far as the handshake shows.
func (c TLSCert) PrivateIssuer() bool { return c.Flags&(TLSSelfSigned|TLSIssuerAbsent) != 0 }

// NoSNI reports whether the client's ClientHello named no server.
func (c TLSCert) NoSNI() bool { return c.Flags&TLSNoSNI != 0 }

// ServerCertificate reads the leaf certificate from the start of the bytes
// a TLS server sent (its handshake records). scratch is reused for the
// handshake bytes gathered from the records; the returned slice is to be
// passed again. It reports parseMore while the Certificate message is not
// complete (with the leaf's facts once the leaf is, so that a caller out
// of room can keep them), parseNo when the bytes are not a TLS handshake or
// hold no Certificate before something else (TLS 1.3 encrypts it), parseOK
// with the facts of the whole chain.
func ServerCertificate(b, scratch []byte) (TLSCert, parseResult, []byte) {
	hs := scratch[:0]
	// ended: a record other than a handshake followed (change cipher
	// spec, alert, application data): no more handshake comes in clear.
	ended := false
	for len(b) > 0 {
		if len(b) < 5 {
			break
		}
		if b[1] != 3 || b[2] > 4 {
			return TLSCert{}, parseNo, hs
		}
		if b[0] != 0x16 {
			ended = true
			break
		}
		n := int(binary.BigEndian.Uint16(b[3:]))
		if n == 0 || n > 1<<14+2048 {
			return TLSCert{}, parseNo, hs
		}
		body := b[5:]
		if len(body) >= n {
			body = body[:n]
		}
		hs = append(hs, body...)
		b = b[5+len(body):]
	}
	more := parseMore
	if ended {
		more = parseNo
	}
	for len(hs) >= 4 {
		typ := hs[0]
		n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
		msg := hs[4:]
		switch typ {
		case 2, 12, 13: // ServerHello, key exchange, certificate request
			if len(msg) < n {
				return TLSCert{}, more, hs
			}
			hs = msg[n:]
			continue
		case 11: // Certificate
			if len(msg) < 3 {
				return TLSCert{}, more, hs
			}
			list := msg[3:]
			if ln := int(msg[0])<<16 | int(msg[1])<<8 | int(msg[2]); ln == 0 || ln+3 > n {
				return TLSCert{}, parseNo, hs // empty or inconsistent
			}
			if len(list) < 3 {
				return TLSCert{}, more, hs
			}
			cl := int(list[0])<<16 | int(list[1])<<8 | int(list[2])
			if cl == 0 || cl+6 > n {
				return TLSCert{}, parseNo, hs
			}
			if len(list)-3 < cl {
				return TLSCert{}, more, hs
			}
			c, issuer, ok := leafFacts(list[3 : 3+cl])
			if !ok {
				return TLSCert{}, parseNo, hs
			}
			if len(msg) < n {
				return c, more, hs
			}
			if !c.SelfSigned() && !chainHas(list[3+cl:n-3], issuer) {
				c.Flags |= TLSIssuerAbsent
			}
			return c, parseOK, hs
		default: // ServerHelloDone or anything else before a certificate
			return TLSCert{}, parseNo, hs
		}
	}
	return TLSCert{}, more, hs
}

// leafFacts walks an X.509 certificate's DER far enough to compare its
// raw issuer and subject and to read their common names.
// It also returns the encoded issuer.
func leafFacts(der []byte) (TLSCert, []byte, bool) {
	issuer, subject, ok := certNames(der)
	if !ok {
		return TLSCert{}, nil, false
	}
	c := TLSCert{Flags: TLSCertSeen}
	if string(issuer) == string(subject) {
		c.Flags |= TLSSelfSigned
	}
	c.SubjectCN = commonName(subject)
	c.IssuerCN = commonName(issuer)
	return c, issuer, true
}

// chainHas reports whether a certificate of the rest of a Certificate
// message's list (after the leaf) has subject as its subject.
func chainHas(list, subject []byte) bool {
	for len(list) >= 3 {
		n := int(list[0])<<16 | int(list[1])<<8 | int(list[2])
		if len(list)-3 < n {
			return false
		}
		if _, s, ok := certNames(list[3 : 3+n]); ok && string(s) == string(subject) {
			return true
		}
		list = list[3+n:]
	}
	return false
}

// certNames returns the encoded issuer and subject Names (whole TLVs: Zeek
// and OpenSSL compare encoded names) of a DER certificate.
func certNames(der []byte) (issuer, subject []byte, ok bool) {
	cert, _, ok := derNext(der, 0x30)
	if !ok {
		return nil, nil, false
	}
	tbs, _, ok := derNext(cert, 0x30)
	if !ok {
		return nil, nil, false
	}
	// [0] EXPLICIT version, optional.
	if len(tbs) > 0 && tbs[0] == 0xa0 {
		if _, tbs, ok = derNext(tbs, 0xa0); !ok {
			return nil, nil, false
		}
	}
	steps := []struct {
		tag byte
		out *[]byte
	}{{0x02, nil}, {0x30, nil}, {0x30, &issuer}, {0x30, nil}, {0x30, &subject}}
	for _, s := range steps {
		start := tbs
		if _, tbs, ok = derNext(tbs, s.tag); !ok {
			return nil, nil, false
		}
		if s.out != nil {
			*s.out = start[:len(start)-len(tbs)]
		}
	}
	return issuer, subject, true
}

// derNext reads one DER TLV of the given tag from the start of b and
// returns its value and the bytes after it. Lengths above 2^24 are refused
// (no certificate is that long).
func derNext(b []byte, tag byte) (val, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, p := int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 || len(b) < 2+k {
			return nil, nil, false
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		p += k
	}
	if len(b)-p < n {
		return nil, nil, false
	}
	return b[p : p+n], b[p+n:], true
}

// oidCN is the DER of id-at-commonName (2.5.4.3).
var oidCN = []byte{0x06, 0x03, 0x55, 0x04, 0x03}

// commonName returns the first commonName of an encoded Name, cleaned
// (cleanCN), or "" when there is none or the Name does not parse.
func commonName(name []byte) string {
	rdns, _, ok := derNext(name, 0x30)
	if !ok {
		return ""
	}
	for len(rdns) > 0 {
		var set []byte
		if set, rdns, ok = derNext(rdns, 0x31); !ok {
			return ""
		}
		for len(set) > 0 {
			var atv []byte
			if atv, set, ok = derNext(set, 0x30); !ok {
				return ""
			}
			if len(atv) < len(oidCN) || string(atv[:len(oidCN)]) != string(oidCN) {
				continue
			}
			v := atv[len(oidCN):]
			if len(v) < 1 {
				return ""
			}
			tag := v[0]
			val, _, ok := derNext(v, tag)
			if !ok {
				return ""
			}
			return cleanCN(tag, val)
		}
	}
	return ""
}

// cleanCN turns a directory string into at most MaxCN bytes of UTF-8, cut
// at a character boundary, with control characters replaced by '?': a
// certificate is the attacker's text and ends up on a terminal.
func cleanCN(tag byte, v []byte) string {
	var buf [MaxCN]byte
	out := buf[:0]
	put := func(r rune) bool {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			r = '?'
		}
		if len(out)+utf8.RuneLen(r) > MaxCN {
			return false
		}
		out = utf8.AppendRune(out, r)
		return true
	}
	switch tag {
	case 0x1e: // BMPString: UTF-16 big-endian
		for i := 0; i+1 < len(v); i += 2 {
			r := rune(binary.BigEndian.Uint16(v[i:]))
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
			if !put(r) {
				break
			}
		}
	case 0x1c: // UniversalString: UTF-32 big-endian
		for i := 0; i+3 < len(v); i += 4 {
			r := rune(binary.BigEndian.Uint32(v[i:]))
			if !utf8.ValidRune(r) {
				r = utf8.RuneError
			}
			if !put(r) {
				break
			}
		}
	case 0x0c: // UTF8String
		for len(v) > 0 {
			r, n := utf8.DecodeRune(v)
			v = v[n:]
			if !put(r) {
				break
			}
		}
	default: // Printable, IA5, T61, Visible and others: one byte a character
		for _, c := range v {
			r := rune(c)
			if c >= 0x80 {
				r = '?'
			}
			if !put(r) {
				break
			}
		}
	}
	return string(out)
}

// CleanCN cleans a certificate name from elsewhere (a Zeek log) as the
// builder cleans the names it reads: UTF-8, at most MaxCN bytes, control
// characters as '?'.
func CleanCN(b []byte) string { return cleanCN(0x0c, b) }

// clientHelloStart reports whether b starts like a TLS ClientHello record.
func clientHelloStart(b []byte) bool {
	return len(b) >= 6 && b[0] == 0x16 && b[1] == 3 && b[2] <= 4 && b[5] == 1
}
