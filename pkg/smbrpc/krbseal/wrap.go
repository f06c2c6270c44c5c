package krbseal

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rc4"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// Errors of a sealed DCE/RPC PDU that did not open.
var (
	ErrToken = errors.New("not a Kerberos wrap token this reader knows")
	errNoCtx = errors.New("no key of the context opens the wrap token")
)

// RFC 4121 4.2.2 flags.
const (
	cfxSentByAcceptor = 0x01
	cfxSealed         = 0x02
	cfxAcceptorSubkey = 0x04
	cfxHeaderLen      = 16
	aesConf           = aes.BlockSize
	aesMAC            = 12
)

// UnsealDCE opens a Kerberos-sealed DCE/RPC PDU in place (MS-KILE 3.4.5.4,
// the DCE style of RFC 4121 and RFC 4757): pdu is the whole fragment, its
// sealed stub pdu[from:to] (auth padding included), the sec_trailer at
// pdu[to:to+8] and the wrap token after it. dir is 0 for the client's
// (initiator's) PDUs. The PDU's header and sec_trailer are covered by the
// checksum when the association signs headers, and are tried both ways.
func (c *Context) UnsealDCE(dir int, pdu []byte, from, to int) error {
	if from < 0 || from > to || to+8 > len(pdu) {
		return errors.New("sealed stub outside the pdu")
	}
	return c.unwrap(dir, pdu[to+8:], pdu[from:to], pdu[:from], pdu[to:to+8])
}

// UnwrapMessage opens, in place, a message whose wrap token travels apart
// from it: WinRM's HTTP-Kerberos-session-encrypted parts (MS-WSMV
// 2.2.9.1.1) carry the token (its header, and the encrypted confounder,
// filler, header copy and checksum rotated into it) as the part's
// signature and the encrypted message after it. dir is 0 for the
// client's messages.
func (c *Context) UnwrapMessage(dir int, tok, data []byte) error {
	return c.unwrap(dir, tok, data, nil, nil)
}

// unwrap opens data under the wrap token tok; pre and post are the bytes
// that may be signed only (the DCE/RPC header and sec_trailer).
func (c *Context) unwrap(dir int, tok, data, pre, post []byte) error {
	switch {
	case len(tok) >= cfxHeaderLen && tok[0] == 0x05 && tok[1] == 0x04:
		return c.unwrapCFX(dir, tok, data, pre, post)
	case len(tok) >= 32:
		if t, ok := rc4Token(tok); ok {
			return c.unwrapRC4(dir, t, data, pre, post)
		}
	}
	return ErrToken
}

// keysFor lists the context's keys in the order a token's flags make
// likely; the one that opened the last token comes first.
func (c *Context) keysFor(acceptorFirst bool) []*smbrpc.KrbKey {
	ks := make([]*smbrpc.KrbKey, 0, 4)
	if c.wrapKey != nil {
		ks = append(ks, c.wrapKey)
	}
	order := []*smbrpc.KrbKey{&c.initiator, &c.session, &c.acceptor}
	if acceptorFirst {
		order = []*smbrpc.KrbKey{&c.acceptor, &c.initiator, &c.session}
	}
	for _, k := range order {
		if validKey(*k) && k != c.wrapKey {
			ks = append(ks, k)
		}
	}
	return ks
}

// unwrapCFX opens an RFC 4121 wrap token of an AES key. The token's body
// holds, rotated right by RRC, the encrypted confounder, filler and header
// copy and the HMAC; the data they surround travels apart (a DCE/RPC
// stub, a WinRM message), encrypted in place. In DCE style the rotation is
// RRC plus EC (Windows leaves the filler out of its RRC, and every peer
// follows it); both are tried, the context's style first.
func (c *Context) unwrapCFX(dir int, tok, data, pre, post []byte) error {
	flags := tok[2]
	if flags&cfxSealed == 0 || tok[3] != 0xff {
		return ErrToken
	}
	ec := int(binary.BigEndian.Uint16(tok[4:]))
	rrc := int(binary.BigEndian.Uint16(tok[6:]))
	body := tok[cfxHeaderLen:]
	if len(body) != aesConf+ec+cfxHeaderLen+aesMAC {
		return errors.New("wrap token length does not match its EC")
	}
	rot := []int{rrc + ec, rrc}
	if !c.DCEStyle {
		rot[0], rot[1] = rrc, rrc+ec
	}
	if ec == 0 {
		rot = rot[:1]
	}
	usage := uint32(usageInitiatorSeal)
	if dir == 1 || flags&cfxSentByAcceptor != 0 {
		usage = usageAcceptorSeal
	}
	u := make([]byte, len(body))
	ct := make([]byte, 0, aesConf+len(data)+ec+cfxHeaderLen)
	plain := make([]byte, aesConf+len(data)+ec+cfxHeaderLen)
	for _, r := range rot {
		n := r % len(body)
		copy(u, body[n:])
		copy(u[len(body)-n:], body[:n])
		// The cipher text in order: confounder, data, filler, header copy.
		ct = append(ct[:0], u[:aesConf]...)
		ct = append(ct, data...)
		ct = append(ct, u[aesConf:aesConf+ec+cfxHeaderLen]...)
		if c.openCFX(usage, flags, ct, u[aesConf+ec+cfxHeaderLen:], plain, data, pre, post) {
			return nil
		}
	}
	return errNoCtx
}

// openCFX tries the context's keys on one reading of a CFX token: ct the
// cipher text, mac its HMAC. On success the plain data replaces data.
func (c *Context) openCFX(usage uint32, flags byte, ct, mac, plain, data, pre, post []byte) bool {
	for _, k := range c.keysFor(flags&cfxAcceptorSubkey != 0) {
		if k.Type != ETypeAES128 && k.Type != ETypeAES256 {
			continue
		}
		ke, ki := aesKeys(k.Value, usage)
		if ctsDecrypt(ke, plain, ct) != nil {
			continue
		}
		p := plain[aesConf : aesConf+len(data)]
		tail := plain[aesConf+len(data):]
		// With header signing the HMAC also covers the PDU header and
		// the sec_trailer, in the order they stand in the PDU.
		for _, signed := range []bool{true, false} {
			h := hmac.New(sha1.New, ki)
			h.Write(plain[:aesConf])
			if signed {
				h.Write(pre)
			}
			h.Write(p)
			if signed {
				h.Write(post)
			}
			h.Write(tail)
			if subtle.ConstantTimeCompare(h.Sum(nil)[:aesMAC], mac) == 1 {
				copy(data, p)
				c.wrapKey = k
				return true
			}
			if len(pre) == 0 && len(post) == 0 {
				break // nothing signed only: one reading
			}
		}
	}
	return false
}

// rc4Tok is an RFC 4757 wrap token (after its GSS-API framing).
type rc4Tok struct {
	hdr        []byte // the 8 bytes TOK_ID .. filler
	seq, cksum []byte // encrypted sequence number, checksum
	confounder []byte
}

// rc4Token finds an RFC 4757 wrap token: GSS-API framing (0x60, length,
// the Kerberos OID) then TOK_ID 02 01, SGN_ALG 11 00 (HMAC-MD5), SEAL_ALG
// 10 00 (RC4) and filler ff ff; or the token without framing.
func rc4Token(b []byte) (rc4Tok, bool) {
	var t rc4Tok
	if len(b) > 2 && b[0] == 0x60 {
		// [APPLICATION 0] length, then the OID element.
		i := 2
		if b[1]&0x80 != 0 {
			i += int(b[1] & 0x7f)
		}
		if i+2 > len(b) || b[i] != 0x06 {
			return t, false
		}
		i += 2 + int(b[i+1])
		if i > len(b) {
			return t, false
		}
		b = b[i:]
	}
	if len(b) < 32 || b[0] != 0x02 || b[1] != 0x01 || b[2] != 0x11 || b[3] != 0x00 || b[4] != 0x10 || b[5] != 0x00 || b[6] != 0xff || b[7] != 0xff {
		return t, false
	}
	return rc4Tok{hdr: b[:8], seq: b[8:16], cksum: b[16:24], confounder: b[24:32]}, true
}

// unwrapRC4 opens an RFC 4757 wrap token (MS-KILE 3.4.5.4.1 for DCE):
// the sequence number is decrypted under a key from the checksum, the
// confounder and data under one from the sequence number, then the
// checksum over them (and the signed PDU header and sec_trailer) is
// verified.
func (c *Context) unwrapRC4(dir int, t rc4Tok, data, pre, post []byte) error {
	buf := make([]byte, 8+len(data))
	zero := []byte{0, 0, 0, 0}
	for _, k := range c.keysFor(true) {
		if k.Type != ETypeRC4 {
			continue
		}
		kseq := hmacMD5(hmacMD5(k.Value, zero), t.cksum)
		var seq [8]byte
		s, _ := rc4.NewCipher(kseq)
		s.XORKeyStream(seq[:], t.seq)
		// The direction half: 0 from the initiator, ff from the acceptor.
		want := byte(0)
		if dir == 1 {
			want = 0xff
		}
		if seq[4] != want || seq[5] != want || seq[6] != want || seq[7] != want {
			continue
		}
		klocal := make([]byte, len(k.Value))
		for i, v := range k.Value {
			klocal[i] = v ^ 0xf0
		}
		kcrypt := hmacMD5(hmacMD5(klocal, zero), seq[:4])
		r, _ := rc4.NewCipher(kcrypt)
		r.XORKeyStream(buf[:8], t.confounder)
		r.XORKeyStream(buf[8:], data)
		ksign := hmacMD5(k.Value, []byte("signaturekey\x00"))
		for _, signed := range []bool{true, false} {
			m := md5.New()
			m.Write([]byte{13, 0, 0, 0}) // the usage of a wrap token's checksum (RFC 4757 7.3)
			m.Write(t.hdr)
			m.Write(buf[:8])
			if signed {
				m.Write(pre)
			}
			m.Write(buf[8:])
			if signed {
				m.Write(post)
			}
			if subtle.ConstantTimeCompare(hmacMD5(ksign, m.Sum(nil))[:8], t.cksum) == 1 {
				copy(data, buf[8:])
				c.wrapKey = k
				return nil
			}
		}
	}
	return errNoCtx
}
