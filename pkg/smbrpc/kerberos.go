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
	// TicketEnc is the ticket's EncryptedData (etype, key version,
	// cipher: the cipher is Ticket); Authenticator is the AP-REQ's and
	// EncPart the AP-REP's. They alias the input.
	TicketEnc, Authenticator, EncPart KrbEncrypted
}

// KrbEncrypted is an EncryptedData (RFC 4120 5.2.9).
type KrbEncrypted struct {
	EType   int
	KVNO    uint32
	HasKVNO bool
	Cipher  []byte
}

// KrbKey is an EncryptionKey (RFC 4120 5.2.9); Value aliases the input.
type KrbKey struct {
	Type  int
	Value []byte
}

// EncTicketPart is what replay reads of a decrypted ticket (RFC 4120
// 5.3): the session key and the client.
type EncTicketPart struct {
	Key           KrbKey
	CName, CRealm string
}

// Authenticator is what replay reads of a decrypted AP-REQ authenticator
// (RFC 4120 5.5.1): the client, its subkey and sequence number, and the
// GSS-API checksum's flags (RFC 4121 4.1.1: DCE style, confidentiality).
type Authenticator struct {
	CName, CRealm string
	Subkey        KrbKey
	Seq           uint32
	HasSeq        bool
	GSSFlags      uint32
	HasGSSFlags   bool
}

// EncAPRepPart is a decrypted AP-REP's part (RFC 4120 5.5.2).
type EncAPRepPart struct {
	Subkey KrbKey
	Seq    uint32
	HasSeq bool
}

// GSS-API checksum flags (RFC 4121 4.1.1.1, MS-KILE 3.2.5.2).
const (
	GSSFlagConf     = 0x10
	GSSFlagInteg    = 0x20
	GSSFlagDCEStyle = 0x1000
)

// Application tags of the decrypted parts.
const (
	krbEncTicketPart = 3
	krbAuthenticator = 2
	krbEncAPRepPart  = 27
)

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

// ticket decodes a Ticket's realm, service name and enc-part.
func ticket(b []byte) (realm, sname string, enc KrbEncrypted) {
	e, _, ok := derNext(b)
	if !ok || e.class != 1 || e.tag != krbTicket {
		return "", "", enc
	}
	seq, ok := derSeq(e.content)
	if !ok {
		return "", "", enc
	}
	f := derFields(seq)
	return derString(f[1]), principal(f[2]), encrypted(f[3])
}

// encrypted decodes an explicit field holding EncryptedData: etype [0],
// kvno [1] OPTIONAL, cipher [2] OCTET STRING.
func encrypted(b []byte) KrbEncrypted {
	var k KrbEncrypted
	enc, ok := derSeq(b)
	if !ok {
		return k
	}
	f := derFields(enc)
	if c, _, ok := derNext(f[2]); ok && c.class == 0 && c.tag == 4 && len(c.content) > 0 {
		k.Cipher = c.content
	}
	k.EType = derInt(f[0])
	k.KVNO, k.HasKVNO = derUint32(f[1])
	return k
}

// derUint32 reads an INTEGER that holds a UInt32 (RFC 4120's kvno and
// sequence numbers): up to five bytes, and some encoders write it signed,
// so a negative value is taken modulo 2^32.
func derUint32(b []byte) (uint32, bool) {
	e, _, ok := derNext(b)
	if !ok || e.class != 0 || e.tag != 2 || len(e.content) == 0 || len(e.content) > 5 {
		return 0, false
	}
	v := uint32(int32(int8(e.content[0])))
	for _, c := range e.content[1:] {
		v = v<<8 | uint32(c)
	}
	return v, true
}

// encKey decodes an explicit field holding EncryptionKey: keytype [0],
// keyvalue [1] OCTET STRING.
func encKey(b []byte) KrbKey {
	seq, ok := derSeq(b)
	if !ok {
		return KrbKey{}
	}
	f := derFields(seq)
	v, _, ok := derNext(f[1])
	if !ok || v.class != 0 || v.tag != 4 {
		return KrbKey{}
	}
	return KrbKey{Type: derInt(f[0]), Value: v.content}
}

// appSeq unwraps [APPLICATION tag] SEQUENCE and maps its fields.
func appSeq(b []byte, tag int) (map[int][]byte, bool) {
	e, _, ok := derNext(b)
	if !ok || e.class != 1 || e.tag != tag {
		return nil, false
	}
	seq, ok := derSeq(e.content)
	if !ok {
		return nil, false
	}
	return derFields(seq), true
}

// ParseEncTicketPart decodes a decrypted ticket. Trailing bytes (padding)
// are ignored.
func ParseEncTicketPart(b []byte) (EncTicketPart, bool) {
	f, ok := appSeq(b, krbEncTicketPart)
	if !ok {
		return EncTicketPart{}, false
	}
	t := EncTicketPart{Key: encKey(f[1]), CRealm: derString(f[2]), CName: principal(f[3])}
	return t, len(t.Key.Value) > 0
}

// ParseAuthenticator decodes a decrypted AP-REQ authenticator.
func ParseAuthenticator(b []byte) (Authenticator, bool) {
	f, ok := appSeq(b, krbAuthenticator)
	if !ok {
		return Authenticator{}, false
	}
	a := Authenticator{CRealm: derString(f[1]), CName: principal(f[2]), Subkey: encKey(f[6])}
	a.Seq, a.HasSeq = derUint32(f[7])
	if ck, ok := derSeq(f[3]); ok {
		// Checksum: cksumtype [0], checksum [1]; type 0x8003 is the
		// GSS-API one: Lgth(4) Bnd(16) Flags(4) little-endian.
		cf := derFields(ck)
		if v, _, ok := derNext(cf[1]); ok && derInt(cf[0]) == 0x8003 && len(v.content) >= 24 {
			c := v.content
			a.GSSFlags = uint32(c[20]) | uint32(c[21])<<8 | uint32(c[22])<<16 | uint32(c[23])<<24
			a.HasGSSFlags = true
		}
	}
	return a, true
}

// ParseEncAPRepPart decodes a decrypted AP-REP part.
func ParseEncAPRepPart(b []byte) (EncAPRepPart, bool) {
	f, ok := appSeq(b, krbEncAPRepPart)
	if !ok {
		return EncAPRepPart{}, false
	}
	r := EncAPRepPart{Subkey: encKey(f[2])}
	r.Seq, r.HasSeq = derUint32(f[3])
	return r, true
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
		k.Realm, k.SName, k.TicketEnc = ticket(f[5])
		k.Ticket = k.TicketEnc.Cipher
	case KrbAPReq:
		k.Realm, k.SName, k.TicketEnc = ticket(f[3])
		k.Ticket = k.TicketEnc.Cipher
		k.Authenticator = encrypted(f[4])
	case KrbError:
		k.ErrorCode = derInt(f[6])
		k.CRealm = derString(f[7])
		k.CName = principal(f[8])
		k.Realm = derString(f[9])
		k.SName = principal(f[10])
	case KrbAPRep:
		k.EncPart = encrypted(f[2])
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
// id counts. A bare AP-REQ (DCE/RPC auth type 16 binds carry it without
// GSS-API framing, and DCE style puts it so in SPNEGO's mechToken) is
// taken as it is.
func FindAPReq(blob []byte) (KerberosMsg, bool) {
	return findKrb(blob, 0x01, 0x6e, KrbAPReq)
}

// FindAPRep finds a Kerberos AP-REP the same way (token id 02 00): in
// GSS-API framing, in SPNEGO's responseToken, or bare (the third leg of DCE
// style, MS-KILE 3.4.5.1, travels without GSS framing).
func FindAPRep(blob []byte) (KerberosMsg, bool) {
	return findKrb(blob, 0x02, 0x6f, KrbAPRep)
}

// findKrb finds a Kerberos message of type typ (DER tag byte tag, GSS-API
// token id tokID 00) in the SPNEGO token of blob, else anywhere in blob.
func findKrb(blob []byte, tokID, tag byte, typ int) (KerberosMsg, bool) {
	if t := spnegoToken(blob); len(t) > 0 {
		if k, ok := findKrbIn(t, tokID, tag, typ); ok {
			return k, true
		}
	}
	return findKrbIn(blob, tokID, tag, typ)
}

func findKrbIn(blob []byte, tokID, tag byte, typ int) (KerberosMsg, bool) {
	if len(blob) > 0 && blob[0] == tag {
		if k, ok := ParseKerberos(blob); ok && k.Type == typ {
			return k, true
		}
	}
	for _, oid := range [][]byte{oidKrb5, oidMSKrb5} {
		b := blob
		for i := 0; i < 8; i++ {
			j := bytes.Index(b, oid)
			if j < 0 {
				break
			}
			b = b[j+len(oid):]
			if len(b) > 3 && b[0] == tokID && b[1] == 0x00 && b[2] == tag {
				if k, ok := ParseKerberos(b[2:]); ok && k.Type == typ {
					return k, true
				}
			}
		}
	}
	return KerberosMsg{}, false
}

// spnegoToken returns the mechanism token of a SPNEGO negTokenInit
// (RFC 4178: [APPLICATION 0] { OID, [0] { mechTypes [0], reqFlags [1],
// mechToken [2] } }) or negTokenResp ([1] { ..., responseToken [2] }),
// nil when blob is neither. DCE style puts a bare AP-REQ or AP-REP there.
func spnegoToken(blob []byte) []byte {
	e, _, ok := derNext(blob)
	if !ok {
		return nil
	}
	var neg []byte
	switch {
	case e.class == 1 && e.tag == 0:
		oid, rest, ok := derNext(e.content)
		if !ok || oid.tag != 6 {
			return nil
		}
		init, _, ok := derNext(rest)
		if !ok || init.class != 2 || init.tag != 0 {
			return nil
		}
		neg = init.content
	case e.class == 2 && e.tag == 1:
		neg = e.content
	default:
		return nil
	}
	seq, ok := derSeq(neg)
	if !ok {
		return nil
	}
	t, _, ok := derNext(derFields(seq)[2])
	if !ok || t.class != 0 || t.tag != 4 {
		return nil
	}
	return t.content
}
