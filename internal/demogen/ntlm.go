package demogen

import (
	"encoding/binary"
	"strings"
	"time"
)

// NTLMSSP messages (MS-NLMP 2.2.1) and the SPNEGO tokens (RFC 4178) that
// carry them in SMB2 SESSION_SETUP. The responses are well formed but do
// not derive from a password: no tool can check them without one.

const (
	ntlmFlagsNegotiate    = 0xe2088297
	ntlmFlagsChallenge    = 0xe2898215
	ntlmFlagsAuthenticate = 0xe2888215
)

// AV pair IDs (MS-NLMP 2.2.2.1).
const (
	avEOL           = 0
	avNbComputer    = 1
	avNbDomain      = 2
	avDNSComputer   = 3
	avDNSDomain     = 4
	avDNSTree       = 5
	avFlags         = 6
	avTimestamp     = 7
	avTargetName    = 9
	ntlmHeaderNeg   = 40
	ntlmHeaderChal  = 56
	ntlmHeaderAuth  = 88
	windowsBuild    = 19041
	windowsSrvBuild = 17763
)

var ntlmSignature = []byte("NTLMSSP\x00")

// ntlmVersion is the VERSION structure: major, minor, build, NTLM revision 15.
func ntlmVersion(major, minor byte, build uint16) []byte {
	b := []byte{major, minor, 0, 0, 0, 0, 0, 15}
	binary.LittleEndian.PutUint16(b[2:], build)
	return b
}

func ntlmNegotiate() []byte {
	b := append([]byte{}, ntlmSignature...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, ntlmFlagsNegotiate)
	b = append(b, make([]byte, 16)...) // no domain or workstation supplied
	return append(b, ntlmVersion(10, 0, windowsBuild)...)
}

// ntlmServer names the server side of an NTLM exchange.
type ntlmServer struct {
	nbDomain, nbComputer, dnsDomain, dnsComputer string
}

func avPair(b []byte, id uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// filetime is a Windows FILETIME: 100 ns ticks since 1601.
func filetime(t time.Time) uint64 {
	return uint64(t.UnixNano()/100) + 116444736000000000
}

func (s ntlmServer) targetInfo(t time.Time) []byte {
	var b []byte
	b = avPair(b, avNbDomain, utf16le(s.nbDomain))
	b = avPair(b, avNbComputer, utf16le(s.nbComputer))
	b = avPair(b, avDNSDomain, utf16le(s.dnsDomain))
	b = avPair(b, avDNSComputer, utf16le(s.dnsComputer))
	b = avPair(b, avDNSTree, utf16le(s.dnsDomain))
	b = avPair(b, avTimestamp, binary.LittleEndian.AppendUint64(nil, filetime(t)))
	return avPair(b, avEOL, nil)
}

// ntlmChallenge is the server's CHALLENGE.
func ntlmChallenge(s ntlmServer, t time.Time, r *rng) []byte {
	name := utf16le(s.nbDomain)
	info := s.targetInfo(t)
	b := append([]byte{}, ntlmSignature...)
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = fieldRef(b, len(name), ntlmHeaderChal)
	b = binary.LittleEndian.AppendUint32(b, ntlmFlagsChallenge)
	b = append(b, r.bytes(8)...)      // server challenge
	b = append(b, make([]byte, 8)...) // reserved
	b = fieldRef(b, len(info), ntlmHeaderChal+len(name))
	b = append(b, ntlmVersion(10, 0, windowsSrvBuild)...)
	b = append(b, name...)
	return append(b, info...)
}

func fieldRef(b []byte, n, off int) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	b = binary.LittleEndian.AppendUint16(b, uint16(n))
	return binary.LittleEndian.AppendUint32(b, uint32(off))
}

// ntlmAuthenticate is the client's AUTHENTICATE with an NTLMv2 response
// for service spn ("cifs/host") echoing the server's target information.
func ntlmAuthenticate(domain, user, workstation, spn string, s ntlmServer, t time.Time, r *rng) []byte {
	// NTLMv2_CLIENT_CHALLENGE after the 16-byte NTProofStr.
	blob := []byte{1, 1, 0, 0, 0, 0, 0, 0}
	blob = binary.LittleEndian.AppendUint64(blob, filetime(t))
	blob = append(blob, r.bytes(8)...)
	blob = append(blob, 0, 0, 0, 0)
	info := s.targetInfo(t)
	blob = append(blob, info[:len(info)-4]...) // without its EOL
	blob = avPair(blob, avFlags, []byte{2, 0, 0, 0})
	blob = avPair(blob, avTargetName, utf16le(spn))
	blob = avPair(blob, avEOL, nil)
	blob = append(blob, 0, 0, 0, 0)
	nt := append(r.bytes(16), blob...)
	lm := make([]byte, 24)
	dom, usr, ws := utf16le(domain), utf16le(user), utf16le(strings.ToUpper(workstation))
	key := r.bytes(16)

	off := ntlmHeaderAuth
	b := append([]byte{}, ntlmSignature...)
	b = binary.LittleEndian.AppendUint32(b, 3)
	payload := [][]byte{dom, usr, ws, lm, nt, key}
	offs := make([]int, len(payload))
	for i, p := range payload {
		offs[i] = off
		off += len(p)
	}
	b = fieldRef(b, len(lm), offs[3])
	b = fieldRef(b, len(nt), offs[4])
	b = fieldRef(b, len(dom), offs[0])
	b = fieldRef(b, len(usr), offs[1])
	b = fieldRef(b, len(ws), offs[2])
	b = fieldRef(b, len(key), offs[5])
	b = binary.LittleEndian.AppendUint32(b, ntlmFlagsAuthenticate)
	b = append(b, ntlmVersion(10, 0, windowsBuild)...)
	b = append(b, r.bytes(16)...) // MIC
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

// ntlmVerifier is an NTLMSSP_MESSAGE_SIGNATURE (extended session
// security): version 1, checksum, sequence number.
func ntlmVerifier(seq uint32, r *rng) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 1)
	b = append(b, r.bytes(8)...)
	return binary.LittleEndian.AppendUint32(b, seq)
}

// DER encoding of the SPNEGO tokens.

var (
	oidSPNEGO  = []byte{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}
	oidNTLMSSP = []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a}
)

func der(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := []byte{tag}
	switch {
	case n < 0x80:
		b = append(b, byte(n))
	case n < 0x100:
		b = append(b, 0x81, byte(n))
	default:
		b = append(b, 0x82, byte(n>>8), byte(n))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// spnegoInit is the GSS-API initial token: mechTypes (NTLMSSP) and, when
// given, the first mechanism token.
func spnegoInit(token []byte) []byte {
	fields := [][]byte{der(0xa0, der(0x30, oidNTLMSSP))}
	if token != nil {
		fields = append(fields, der(0xa2, der(0x04, token)))
	}
	return der(0x60, oidSPNEGO, der(0xa0, der(0x30, fields...)))
}

// SPNEGO negotiation states.
const (
	negAcceptCompleted  = 0
	negAcceptIncomplete = 1
)

// spnegoResp is a negTokenResp; state < 0 leaves negState out (the
// client's second token).
func spnegoResp(state int, withMech bool, token, mic []byte) []byte {
	var fields [][]byte
	if state >= 0 {
		fields = append(fields, der(0xa0, der(0x0a, []byte{byte(state)})))
	}
	if withMech {
		fields = append(fields, der(0xa1, oidNTLMSSP))
	}
	if token != nil {
		fields = append(fields, der(0xa2, der(0x04, token)))
	}
	if mic != nil {
		fields = append(fields, der(0xa3, der(0x04, mic)))
	}
	return der(0xa1, der(0x30, fields...))
}
