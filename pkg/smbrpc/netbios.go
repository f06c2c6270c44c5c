package smbrpc

import "encoding/binary"

// NetBIOS session service packet types (RFC 1002 4.3.1).
const (
	NBSessionMessage   = 0x00
	NBSessionRequest   = 0x81
	NBPositiveResponse = 0x82
	NBNegativeResponse = 0x83
	NBRetarget         = 0x84
	NBKeepAlive        = 0x85
)

// NBHeaderLen is the size of the session service header that frames every
// SMB message, on 139 and on direct-hosted 445 alike.
const NBHeaderLen = 4

// NBHeader reads a session service header. Session messages carry a 24-bit
// length (MS-SMB2 2.1 direct TCP; on 139 the top seven bits are zero
// anyway); other packet types use RFC 1002's 17-bit length. ok is false for
// an unknown type or a short header.
func NBHeader(b []byte) (typ byte, length int, ok bool) {
	if len(b) < NBHeaderLen {
		return 0, 0, false
	}
	typ = b[0]
	switch typ {
	case NBSessionMessage:
		return typ, int(b[1])<<16 | int(binary.BigEndian.Uint16(b[2:])), true
	case NBSessionRequest, NBPositiveResponse, NBNegativeResponse, NBRetarget, NBKeepAlive:
		if b[1]&^1 != 0 {
			return 0, 0, false
		}
		return typ, int(b[1]&1)<<16 | int(binary.BigEndian.Uint16(b[2:])), true
	}
	return 0, 0, false
}

// SMB protocol identifiers at the start of a message.
const (
	ProtoSMB1       = 0xff // \xffSMB
	ProtoSMB2       = 0xfe // \xfeSMB
	ProtoTransform  = 0xfd // \xfdSMB: SMB3 encrypted message
	ProtoCompressed = 0xfc // \xfcSMB: SMB 3.1.1 compressed message
)

// SMBProto returns the protocol byte of an SMB message (ProtoSMB1 ...), or 0
// when b does not start with one of the four signatures.
func SMBProto(b []byte) byte {
	if len(b) < 4 || b[1] != 'S' || b[2] != 'M' || b[3] != 'B' {
		return 0
	}
	switch b[0] {
	case ProtoSMB1, ProtoSMB2, ProtoTransform, ProtoCompressed:
		return b[0]
	}
	return 0
}

// NBNames decodes the called and calling names of a session request body
// (two RFC 1001 first-level encoded names). Trailing padding and the
// 16th-byte suffix are removed; a damaged name decodes as "".
func NBNames(body []byte) (called, calling string) {
	called, n := nbName(body)
	if n == 0 {
		return "", ""
	}
	calling, _ = nbName(body[n:])
	return called, calling
}

// nbName decodes one length-prefixed encoded name and returns it with the
// bytes it used.
func nbName(b []byte) (string, int) {
	if len(b) < 2 || b[0] != 32 || len(b) < 34 {
		return "", 0
	}
	var raw [16]byte
	for i := 0; i < 16; i++ {
		hi, lo := b[1+2*i]-'A', b[2+2*i]-'A'
		if hi > 15 || lo > 15 {
			return "", 0
		}
		raw[i] = hi<<4 | lo
	}
	// Skip scope labels up to the terminating zero length.
	n := 33
	for n < len(b) && b[n] != 0 {
		n += int(b[n]) + 1
	}
	n++
	if n > len(b) {
		n = len(b)
	}
	name := raw[:15]
	end := len(name)
	for end > 0 && (name[end-1] == ' ' || name[end-1] == 0) {
		end--
	}
	return OEM(name[:end]), n
}
