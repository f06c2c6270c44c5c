package smbrpc

import (
	"bytes"
	"strings"
)

// Kerberos message types (RFC 4120 5.10: the APPLICATION tag numbers).
const (
	KrbASReq   = 10
	KrbASRep   = 11
	KrbTGSReq  = 12
	KrbTGSRep  = 13
	KrbAPReq   = 14
	KrbAPRep   = 15
	KrbError   = 30
	krbTicket  = 1
	derMaxTags = 4096 // bound on elements walked in one message
)

// KerberosMsg is what replay reads in the clear from a Kerberos message.
type KerberosMsg struct {
	Type int
	// CName and CRealm name the client where the message shows it (AS-REQ,
	// AS-REP, TGS-REP, KRB-ERROR); an AP-REQ hides it in the authenticator.
	CName, CRealm string
	// SName and Realm name the service: the ticket's for AP-REQ and the
	// replies, the request body's for AS-REQ and TGS-REQ.
	SName, Realm string
	ErrorCode    int // KRB-ERROR only
	// Ticket is the cipher of the ticket's encrypted part (AS-REP,
	// TGS-REP, AP-REQ): a ticket travels byte for byte from the reply
	// that issued it to every AP-REQ that presents it, so it joins a
	// service's AP-REQ to the client name in the clear in the TGS-REP.
	// It aliases the input.
	Ticket []byte
}

// der is one decoded DER element.
type der struct {
	class       byte // 0 universal, 1 application, 2 context
	constructed bool
	tag         int
	content     []byte
}

// derNext decodes the element at the start of b and returns it with the
// bytes after it. Lengths are checked against b; long tags and indefinite
// lengths are refused (Kerberos is DER).
func derNext(b []byte) (der, []byte, bool) {
	var e der
	if len(b) < 2 {
		return e, nil, false
	}
	e.class = b[0] >> 6
	e.constructed = b[0]&0x20 != 0
	e.tag = int(b[0] & 0x1f)
	if e.tag == 0x1f {
		return e, nil, false
	}
	l, n := int(b[1]), 2
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return e, nil, false
		}
		l = 0
		for i := 0; i < k; i++ {
			l = l<<8 | int(b[2+i])
		}
		n += k
		if l < 0 {
			return e, nil, false
		}
	}
	if l > len(b)-n {
		return e, nil, false
	}
	e.content = b[n : n+l]
	return e, b[n+l:], true
}

// derFields maps the context tags of a SEQUENCE's content to their inner
// element content.
func derFields(seq []byte) map[int][]byte {
	m := make(map[int][]byte, 8)
	for i := 0; i < 32 && len(seq) > 0; i++ {
		e, rest, ok := derNext(seq)
		if !ok {
			break
		}
		if e.class == 2 {
			m[e.tag] = e.content
		}
		seq = rest
	}
	return m
}

// derSeq unwraps an explicit context field holding a SEQUENCE.
func derSeq(b []byte) ([]byte, bool) {
	e, _, ok := derNext(b)
	if !ok || e.class != 0 || e.tag != 0x10 {
		return nil, false
	}
	return e.content, true
}

func derString(b []byte) string {
	e, _, ok := derNext(b)
	if !ok || e.class != 0 {
		return ""
	}
	return OEM(e.content)
}

func derInt(b []byte) int {
	e, _, ok := derNext(b)
	if !ok || e.tag != 2 || len(e.content) == 0 || len(e.content) > 4 {
		return 0
	}
	v := int(int8(e.content[0]))
	for _, c := range e.content[1:] {
		v = v<<8 | int(c)
	}
	return v
}

// principal decodes PrincipalName as its components joined by "/".
func principal(b []byte) string {
	seq, ok := derSeq(b)
	if !ok {
		return ""
	}
	f := derFields(seq)
	names, ok := derSeq(f[1])
	if !ok {
		return ""
	}
	var parts []string
	for i := 0; i < 8 && len(names) > 0; i++ {
		e, rest, ok := derNext(names)
		if !ok {
			break
		}
		parts = append(parts, OEM(e.content))
		names = rest
	}
	return strings.Join(parts, "/")
}

// ticket decodes a Ticket's realm, service name and enc-part cipher.
func ticket(b []byte) (realm, sname string, cipher []byte) {
	e, _, ok := derNext(b)
	if !ok || e.class != 1 || e.tag != krbTicket {
		return "", "", nil
	}
	seq, ok := derSeq(e.content)
	if !ok {
		return "", "", nil
	}
	f := derFields(seq)
	if enc, ok := derSeq(f[3]); ok {
		// EncryptedData: etype [0], kvno [1] OPTIONAL, cipher [2] OCTET STRING.
		if c, _, ok := derNext(derFields(enc)[2]); ok && c.class == 0 && c.tag == 4 && len(c.content) > 0 {
			cipher = c.content
		}
	}
	return derString(f[1]), principal(f[2]), cipher
}

// ParseKerberos decodes a Kerberos message (without the 4-byte TCP record
// mark). ok is false when b is not one of the types above.
func ParseKerberos(b []byte) (k KerberosMsg, ok bool) {
	e, _, ok := derNext(b)
	if !ok || e.class != 1 || !e.constructed {
		return k, false
	}
	k.Type = e.tag
	seq, ok := derSeq(e.content)
	if !ok {
		return k, false
	}
	f := derFields(seq)
	switch k.Type {
	case KrbASReq, KrbTGSReq:
		body, ok := derSeq(f[4])
		if !ok {
			return k, false
		}
		bf := derFields(body)
		k.CName = principal(bf[1])
		k.Realm = derString(bf[2])
		k.CRealm = k.Realm
		if k.CName == "" {
			k.CRealm = ""
		}
		k.SName = principal(bf[3])
	case KrbASRep, KrbTGSRep:
		k.CRealm = derString(f[3])
		k.CName = principal(f[4])
		k.Realm, k.SName, k.Ticket = ticket(f[5])
	case KrbAPReq:
		k.Realm, k.SName, k.Ticket = ticket(f[3])
	case KrbError:
		k.ErrorCode = derInt(f[6])
		k.CRealm = derString(f[7])
		k.CName = principal(f[8])
		k.Realm = derString(f[9])
		k.SName = principal(f[10])
	case KrbAPRep:
	default:
		return k, false
	}
	return k, true
}

// Kerberos mechanism OIDs as DER (1.2.840.113554.1.2.2 and Microsoft's
// 1.2.840.48018.1.2.2).
var (
	oidKrb5   = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}
	oidMSKrb5 = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02}
)

// FindAPReq finds a Kerberos AP-REQ inside a GSS-API or SPNEGO blob: the
// mechanism OID followed by the AP-REQ token id 01 00. The OID also appears
// in SPNEGO's mechanism list, so only an occurrence followed by the token
// id counts.
func FindAPReq(blob []byte) (KerberosMsg, bool) {
	for _, oid := range [][]byte{oidKrb5, oidMSKrb5} {
		b := blob
		for i := 0; i < 8; i++ {
			j := bytes.Index(b, oid)
			if j < 0 {
				break
			}
			b = b[j+len(oid):]
			if len(b) > 3 && b[0] == 0x01 && b[1] == 0x00 && b[2] == 0x6e {
				if k, ok := ParseKerberos(b[2:]); ok && k.Type == KrbAPReq {
					return k, true
				}
			}
		}
	}
	return KerberosMsg{}, false
}
