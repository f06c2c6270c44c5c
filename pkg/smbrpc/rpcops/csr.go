package rpcops

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf16"
)

// CertRequest is what a certificate request shows in the clear.
type CertRequest struct {
	Subject  string   // "CN=alice,DC=corp,DC=local"
	SANs     []string // "upn:administrator@corp.local", "dns:dc01.corp.local", "email:...", "url:..."
	Template string   // template name, or the template OID
}

// ParseCertRequest reads a PKCS #10 request (RFC 2986), or finds one inside
// a CMC or PKCS #7 wrapper (RFC 5272, as certreq and Windows enrolment send
// them): the subject, the subject alternative names of its
// extensionRequest, and the template Windows names in its extensions or
// enrolment attributes. Bad input gives what was read before it; nothing
// is allocated from a length the input claims.
func ParseCertRequest(b []byte) (c CertRequest) {
	budget := 4096
	findCSR(b, 0, &budget, &c)
	return c
}

// derElem is one decoded DER element.
type derElem struct {
	tag         byte // the identifier octet
	content     []byte
	constructed bool
}

// asn1Next decodes the element at the start of b; ok is false when b does not
// hold a whole element (lengths are checked against b).
func asn1Next(b []byte) (e derElem, rest []byte, ok bool) {
	if len(b) < 2 || b[0]&0x1f == 0x1f {
		return e, nil, false
	}
	e.tag, e.constructed = b[0], b[0]&0x20 != 0
	l, n := int(b[1]), 2
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 3 || len(b) < 2+k {
			return e, nil, false
		}
		l = 0
		for i := 0; i < k; i++ {
			l = l<<8 | int(b[2+i])
		}
		n += k
	}
	if l > len(b)-n {
		return e, nil, false
	}
	return derElem{e.tag, b[n : n+l], e.constructed}, b[n+l:], true
}

// asn1Children lists the elements of a constructed element's content, at most
// what the budget allows.
func asn1Children(b []byte, budget *int) []derElem {
	var out []derElem
	for len(b) > 0 && *budget > 0 {
		e, rest, ok := asn1Next(b)
		if !ok {
			break
		}
		*budget--
		out = append(out, e)
		b = rest
	}
	return out
}

const (
	derInteger   = 0x02
	derBitString = 0x03
	derOctets    = 0x04
	derOID       = 0x06
	derSequence  = 0x30
	derSet       = 0x31
	derContext0  = 0xa0
)

var (
	oidExtensionRequest   = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e}       // 1.2.840.113549.1.9.14
	oidMSExtensionRequest = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0e} // 1.3.6.1.4.1.311.2.1.14
	oidEnrollNameValue    = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0d, 0x02, 0x01} // 1.3.6.1.4.1.311.13.2.1
	oidSAN                = []byte{0x55, 0x1d, 0x11}                                           // 2.5.29.17
	oidTemplateName       = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02}       // 1.3.6.1.4.1.311.20.2
	oidTemplateInfo       = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x15, 0x07}       // 1.3.6.1.4.1.311.21.7
	oidUPN                = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03} // 1.3.6.1.4.1.311.20.2.3
)

// rdnNames are the short names of the attribute types a subject uses.
var rdnNames = lazyTable[string, string]{build: func() map[string]string {
	return map[string]string{"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
		"2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "E", "2.5.4.5": "SERIALNUMBER"}
}}

// findCSR looks for a CertificationRequest (SEQUENCE { SEQUENCE { INTEGER,
// Name, SubjectPublicKeyInfo, [0] attributes }, AlgorithmIdentifier, BIT
// STRING }) in b, descending into constructed elements and into octet
// strings that hold DER (a CMC request's content).
func findCSR(b []byte, depth int, budget *int, c *CertRequest) bool {
	if depth > 12 {
		return false
	}
	for _, e := range asn1Children(b, budget) {
		if e.tag == derSequence && csrInfo(e.content, budget, c) {
			return true
		}
		if e.tag == derOctets || e.constructed {
			if findCSR(e.content, depth+1, budget, c) {
				return true
			}
		}
		if e.constructed && c.Template == "" {
			enrollAttribute(e, budget, c)
		}
	}
	return false
}

// csrInfo reads the content of a CertificationRequest, reporting whether it
// is one.
func csrInfo(b []byte, budget *int, c *CertRequest) bool {
	top := asn1Children(b, budget)
	if len(top) != 3 || top[0].tag != derSequence || top[1].tag != derSequence || top[2].tag != derBitString {
		return false
	}
	info := asn1Children(top[0].content, budget)
	if len(info) < 3 || info[0].tag != derInteger || info[1].tag != derSequence || info[2].tag != derSequence {
		return false
	}
	c.Subject = x509Name(info[1].content, budget)
	if len(info) > 3 && info[3].tag == derContext0 {
		for _, attr := range asn1Children(info[3].content, budget) {
			a := asn1Children(attr.content, budget)
			if attr.tag != derSequence || len(a) != 2 || a[0].tag != derOID || a[1].tag != derSet {
				continue
			}
			switch {
			case bytes.Equal(a[0].content, oidExtensionRequest), bytes.Equal(a[0].content, oidMSExtensionRequest):
				for _, exts := range asn1Children(a[1].content, budget) {
					extensions(exts.content, budget, c)
				}
			default:
				enrollAttribute(attr, budget, c)
			}
		}
	}
	return true
}

// enrollAttribute reads an enrolment name-value pair attribute (MS-WCCE
// 2.2.2.7.10: SEQUENCE { OID, SET { SEQUENCE { BMPString name, BMPString
// value } } }): CertificateTemplate names the template.
func enrollAttribute(attr derElem, budget *int, c *CertRequest) {
	a := asn1Children(attr.content, budget)
	if len(a) != 2 || a[0].tag != derOID || !bytes.Equal(a[0].content, oidEnrollNameValue) {
		return
	}
	for _, v := range asn1Children(a[1].content, budget) {
		nv := asn1Children(v.content, budget)
		if len(nv) == 2 && strings.EqualFold(derText(nv[0]), "CertificateTemplate") {
			c.Template = derText(nv[1])
		}
	}
}

// extensions reads the Extensions of an extensionRequest.
func extensions(b []byte, budget *int, c *CertRequest) {
	for _, ext := range asn1Children(b, budget) {
		f := asn1Children(ext.content, budget)
		if len(f) < 2 || f[0].tag != derOID || f[len(f)-1].tag != derOctets {
			continue
		}
		val := f[len(f)-1].content
		switch {
		case bytes.Equal(f[0].content, oidSAN):
			if seq, _, ok := asn1Next(val); ok && seq.tag == derSequence {
				for _, gn := range asn1Children(seq.content, budget) {
					if s := generalName(gn, budget); s != "" && len(c.SANs) < 16 {
						c.SANs = append(c.SANs, s)
					}
				}
			}
		case bytes.Equal(f[0].content, oidTemplateName):
			if e, _, ok := asn1Next(val); ok {
				c.Template = derText(e)
			}
		case bytes.Equal(f[0].content, oidTemplateInfo):
			if e, _, ok := asn1Next(val); ok && c.Template == "" {
				if t := asn1Children(e.content, budget); len(t) > 0 && t[0].tag == derOID {
					c.Template = oidString(t[0].content)
				}
			}
		}
	}
}

// generalName renders one GeneralName of a SAN.
func generalName(e derElem, budget *int) string {
	switch e.tag {
	case 0xa0: // otherName: type-id, [0] EXPLICIT value
		f := asn1Children(e.content, budget)
		if len(f) != 2 || f[0].tag != derOID {
			return ""
		}
		v := f[1]
		if v.tag == derContext0 {
			var ok bool
			if v, _, ok = asn1Next(v.content); !ok {
				return ""
			}
		}
		if bytes.Equal(f[0].content, oidUPN) {
			return "upn:" + derText(v)
		}
		return oidString(f[0].content) + ":" + derText(v)
	case 0x81:
		return "email:" + printableText(e.content)
	case 0x82:
		return "dns:" + printableText(e.content)
	case 0x86:
		return "url:" + printableText(e.content)
	}
	return ""
}

// x509Name renders an X.501 Name as CN=...,DC=....
func x509Name(b []byte, budget *int) string {
	var parts []string
	for _, rdn := range asn1Children(b, budget) {
		for _, atv := range asn1Children(rdn.content, budget) {
			f := asn1Children(atv.content, budget)
			if len(f) != 2 || f[0].tag != derOID {
				continue
			}
			t := oidString(f[0].content)
			if n, ok := rdnNames.get()[t]; ok {
				t = n
			}
			parts = append(parts, t+"="+derText(f[1]))
		}
	}
	return truncate(strings.Join(parts, ","), 1024)
}

// derText renders a string element: BMPString as UTF-16BE, the others as
// their (printable) bytes.
func derText(e derElem) string {
	if e.tag == 0x1e { // BMPString
		u := make([]uint16, 0, min(len(e.content)/2, 1024))
		for i := 0; i+1 < len(e.content) && len(u) < cap(u); i += 2 {
			u = append(u, uint16(e.content[i])<<8|uint16(e.content[i+1]))
		}
		return printableText([]byte(string(utf16.Decode(u))))
	}
	return printableText(e.content)
}

// printableText keeps a string's printable characters, at most 1024 bytes.
func printableText(b []byte) string {
	s := strings.ToValidUTF8(string(b[:min(len(b), 1024)]), "?")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// oidString renders an OID's content octets in dotted form.
func oidString(b []byte) string {
	if len(b) == 0 || len(b) > 64 {
		return ""
	}
	var parts []string
	var v uint64
	for i, c := range b {
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 != 0 {
			if v > 1<<56 {
				return ""
			}
			continue
		}
		if len(parts) == 0 && i < len(b) {
			first := min(v/40, 2)
			parts = append(parts, fmt.Sprint(first), fmt.Sprint(v-first*40))
		} else {
			parts = append(parts, fmt.Sprint(v))
		}
		v = 0
	}
	return strings.Join(parts, ".")
}
