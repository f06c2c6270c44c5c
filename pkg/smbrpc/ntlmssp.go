package smbrpc

import (
	"bytes"
	"encoding/binary"
)

// NTLMSSP message types (MS-NLMP 2.2).
const (
	NTLMNegotiate    = 1
	NTLMChallenge    = 2
	NTLMAuthenticate = 3
)

const ntlmFlagUnicode = 0x00000001

var ntlmSig = []byte("NTLMSSP\x00")

// FindNTLMSSP returns the NTLMSSP message inside a security blob (raw, or
// wrapped in SPNEGO, whose DER we need not walk: the signature is
// unambiguous), or nil when there is none.
func FindNTLMSSP(blob []byte) []byte {
	i := bytes.Index(blob, ntlmSig)
	if i < 0 || len(blob)-i < 12 {
		return nil
	}
	return blob[i:]
}

// NTLMType returns the message type of an NTLMSSP message, 0 when damaged.
func NTLMType(msg []byte) uint32 {
	if len(msg) < 12 || !bytes.Equal(msg[:8], ntlmSig) {
		return 0
	}
	return binary.LittleEndian.Uint32(msg[8:])
}

// NTLMAuth is the identity an AUTHENTICATE message names.
type NTLMAuth struct {
	Domain, User, Workstation string
	// Anonymous is set for a null session: no user and no NT response.
	Anonymous bool
}

// ParseNTLMAuth decodes an AUTHENTICATE message. ok is false when msg is
// not one or its fields point outside it.
func ParseNTLMAuth(msg []byte) (a NTLMAuth, ok bool) {
	if NTLMType(msg) != NTLMAuthenticate || len(msg) < 64 {
		return a, false
	}
	flags := binary.LittleEndian.Uint32(msg[60:])
	field := func(at int) ([]byte, bool) {
		l := int(binary.LittleEndian.Uint16(msg[at:]))
		off := int(binary.LittleEndian.Uint32(msg[at+4:]))
		return span(msg, off, l)
	}
	str := func(b []byte) string {
		if flags&ntlmFlagUnicode != 0 {
			return UTF16(b)
		}
		return OEM(b)
	}
	nt, ok1 := field(20)
	dom, ok2 := field(28)
	user, ok3 := field(36)
	ws, ok4 := field(44)
	a = NTLMAuth{Domain: str(dom), User: str(user), Workstation: str(ws)}
	a.Anonymous = a.User == "" && len(nt) == 0
	return a, ok1 && ok2 && ok3 && ok4
}
