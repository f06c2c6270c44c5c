package smbrpc

import (
	"encoding/binary"
	"unicode/utf16"
)

// Builders for the byte fixtures the tests and fuzz seeds use, laid out
// field by field after the specs (MS-SMB2, MS-CIFS, C706/MS-RPCE, MS-NLMP,
// RFC 4120), so a fresh clone tests every decoder without shared captures.

func u16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func utf16le(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// smb2Hdr builds a 64-byte SMB2 header.
func smb2Hdr(cmd uint16, flags uint32, status uint32, msgID uint64, tree uint32, sess uint64, next uint32) []byte {
	return cat(
		[]byte{0xfe, 'S', 'M', 'B'}, u16(64), u16(1), // ProtocolId, StructureSize, CreditCharge
		u32(status), u16(cmd), u16(1), // Status, Command, Credits
		u32(flags), u32(next), // Flags, NextCommand
		u64(msgID), u32(0), u32(tree), // MessageId, Reserved, TreeId
		u64(sess), make([]byte, 16), // SessionId, Signature
	)
}

// ntlmAuth builds an NTLMSSP AUTHENTICATE message with unicode strings.
func ntlmAuth(domain, user, ws string, ntResp []byte) []byte {
	d, u, w := utf16le(domain), utf16le(user), utf16le(ws)
	off := uint32(72)
	field := func(b []byte) []byte {
		f := cat(u16(uint16(len(b))), u16(uint16(len(b))), u32(off))
		off += uint32(len(b))
		return f
	}
	lm := field(nil)
	nt := field(ntResp)
	df, uf, wf := field(d), field(u), field(w)
	key := field(nil)
	return cat([]byte("NTLMSSP\x00"), u32(3), lm, nt, df, uf, wf, key, u32(0xe2088215), make([]byte, 8),
		ntResp, d, u, w)
}

// mkder builds one DER element.
func mkder(tag byte, content ...[]byte) []byte {
	c := cat(content...)
	n := len(c)
	switch {
	case n < 0x80:
		return cat([]byte{tag, byte(n)}, c)
	case n < 0x100:
		return cat([]byte{tag, 0x81, byte(n)}, c)
	default:
		return cat([]byte{tag, 0x82, byte(n >> 8), byte(n)}, c)
	}
}

func krbPrincipal(nameType byte, parts ...string) []byte {
	var names []byte
	for _, p := range parts {
		names = append(names, mkder(0x1b, []byte(p))...)
	}
	return mkder(0x30, mkder(0xa0, mkder(0x02, []byte{nameType})), mkder(0xa1, mkder(0x30, names)))
}

func krbTicketDER(realm string, sname ...string) []byte {
	return mkder(0x61, mkder(0x30,
		mkder(0xa0, mkder(0x02, []byte{5})),
		mkder(0xa1, mkder(0x1b, []byte(realm))),
		mkder(0xa2, krbPrincipal(2, sname...)),
		mkder(0xa3, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{1, 2, 3})))),
	))
}

// krbAPReq builds an AP-REQ for the given service.
func krbAPReq(realm string, sname ...string) []byte {
	return mkder(0x6e, mkder(0x30,
		mkder(0xa0, mkder(0x02, []byte{5})),
		mkder(0xa1, mkder(0x02, []byte{14})),
		mkder(0xa2, mkder(0x03, []byte{0, 0x20, 0, 0, 0})),
		mkder(0xa3, krbTicketDER(realm, sname...)),
		mkder(0xa4, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{9, 9})))),
	))
}

// krbRep builds an AS-REP (11) or TGS-REP (13).
func krbRep(app byte, crealm, cname, realm string, sname ...string) []byte {
	return mkder(0x60|app, mkder(0x30,
		mkder(0xa0, mkder(0x02, []byte{5})),
		mkder(0xa1, mkder(0x02, []byte{app})),
		mkder(0xa3, mkder(0x1b, []byte(crealm))),
		mkder(0xa4, krbPrincipal(1, cname)),
		mkder(0xa5, krbTicketDER(realm, sname...)),
		mkder(0xa6, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{7})))),
	))
}

// krbASReq builds an AS-REQ naming its client.
func krbASReq(realm, cname string) []byte {
	return mkder(0x6a, mkder(0x30,
		mkder(0xa1, mkder(0x02, []byte{5})),
		mkder(0xa2, mkder(0x02, []byte{10})),
		mkder(0xa4, mkder(0x30,
			mkder(0xa0, mkder(0x03, []byte{0, 0x40, 0x81, 0, 0x10})),
			mkder(0xa1, krbPrincipal(1, cname)),
			mkder(0xa2, mkder(0x1b, []byte(realm))),
			mkder(0xa3, krbPrincipal(2, "krbtgt", realm)),
		)),
	))
}

// gssKrb wraps an AP-REQ as a GSS-API initial context token inside a
// SPNEGO NegTokenInit, the way Windows sends it in SESSION_SETUP.
func gssKrb(apreq []byte) []byte {
	oid := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}
	inner := mkder(0x60, oid, []byte{0x01, 0x00}, apreq)
	spnego := []byte{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}
	return mkder(0x60, spnego, mkder(0xa0, mkder(0x30,
		mkder(0xa0, mkder(0x30, oid)),
		mkder(0xa2, mkder(0x04, inner)),
	)))
}

// dcerpcPDU builds a little-endian connection-oriented PDU.
func dcerpcPDU(ptype, flags byte, callID uint32, body []byte, authType, authLevel byte, authValue []byte) []byte {
	pad := 0
	if len(authValue) > 0 {
		pad = (4 - (16+len(body))%4) % 4
	}
	fl := 16 + len(body) + pad
	if len(authValue) > 0 {
		fl += 8 + len(authValue)
	}
	b := cat([]byte{5, 0, ptype, flags, 0x10, 0, 0, 0}, u16(uint16(fl)), u16(uint16(len(authValue))), u32(callID), body)
	if len(authValue) > 0 {
		b = cat(b, make([]byte, pad), []byte{authType, authLevel, byte(pad), 0}, u32(0), authValue)
	}
	return b
}

func dcerpcBind(callID uint32, ctxID uint16, iface UUID, ver uint16, authValue []byte) []byte {
	ndr := MustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
	body := cat(u16(4280), u16(4280), u32(0), []byte{1, 0, 0, 0},
		u16(ctxID), []byte{1, 0}, iface[:], u16(ver), u16(0), ndr[:], u32(2))
	at := byte(0)
	if len(authValue) > 0 {
		at = AuthNTLM
	}
	return dcerpcPDU(PTBind, PFCFirstFrag|PFCLastFrag, callID, body, at, 2, authValue)
}

func dcerpcBindAck(callID uint32, secAddr string) []byte {
	sa := append([]byte(secAddr), 0)
	body := cat(u16(4280), u16(4280), u32(0x1234), u16(uint16(len(sa))), sa)
	for (16+len(body))%4 != 0 {
		body = append(body, 0)
	}
	ndr := MustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
	body = cat(body, []byte{1, 0, 0, 0}, u16(0), u16(0), ndr[:], u32(2))
	return dcerpcPDU(PTBindAck, PFCFirstFrag|PFCLastFrag, callID, body, 0, 0, nil)
}

func dcerpcRequest(callID uint32, flags byte, ctxID, opnum uint16, stub []byte) []byte {
	return dcerpcPDU(PTRequest, flags, callID, cat(u32(uint32(len(stub))), u16(ctxID), u16(opnum), stub), 0, 0, nil)
}

func dcerpcResponse(callID uint32, flags byte, ctxID uint16, stub []byte) []byte {
	return dcerpcPDU(PTResponse, flags, callID, cat(u32(uint32(len(stub))), u16(ctxID), []byte{0, 0}, stub), 0, 0, nil)
}

// epmTower builds an ncacn_ip_tcp tower for iface on port.
func epmTower(iface UUID, port uint16, ip [4]byte) []byte {
	ndr := MustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
	floor := func(lhs, rhs []byte) []byte { return cat(u16(uint16(len(lhs))), lhs, u16(uint16(len(rhs))), rhs) }
	return cat(u16(5),
		floor(cat([]byte{0x0d}, iface[:], u16(2)), u16(0)),
		floor(cat([]byte{0x0d}, ndr[:], u16(2)), u16(0)),
		floor([]byte{0x0b}, u16(0)),
		floor([]byte{0x07}, []byte{byte(port >> 8), byte(port)}),
		floor([]byte{0x09}, ip[:]),
	)
}

// nbEncode first-level encodes a NetBIOS name (RFC 1001 14.1).
func nbEncode(name string, suffix byte) []byte {
	var raw [16]byte
	for i := range raw {
		raw[i] = ' '
	}
	copy(raw[:15], name)
	raw[15] = suffix
	out := []byte{32}
	for _, c := range raw {
		out = append(out, 'A'+c>>4, 'A'+c&0x0f)
	}
	return append(out, 0)
}

// smb1Msg builds an SMB1 message with one command.
func smb1Msg(cmd byte, reply bool, status uint32, tid, uid, mid uint16, words, data []byte) []byte {
	flags := byte(0x18)
	if reply {
		flags |= 0x80
	}
	h := cat([]byte{0xff, 'S', 'M', 'B', cmd}, u32(status), []byte{flags}, u16(0xc807),
		make([]byte, 12), u16(tid), u16(0xfeff), u16(uid), u16(mid))
	return cat(h, []byte{byte(len(words) / 2)}, words, u16(uint16(len(data))), data)
}
