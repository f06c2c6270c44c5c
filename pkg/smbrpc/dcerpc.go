package smbrpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// DCE/RPC connection-oriented PDU types (C706 12.6.4, MS-RPCE 2.2.2).
const (
	PTRequest       = 0
	PTResponse      = 2
	PTFault         = 3
	PTBind          = 11
	PTBindAck       = 12
	PTBindNak       = 13
	PTAlterContext  = 14
	PTAlterResp     = 15
	PTAuth3         = 16
	PTShutdown      = 17
	PTCancel        = 18
	PTOrphaned      = 19
	ptMax           = 19
	DCERPCHeaderLen = 16
)

// PDU flags.
const (
	PFCFirstFrag  = 0x01
	PFCLastFrag   = 0x02
	PFCObjectUUID = 0x80
)

// Authentication services and levels in the auth verifier (MS-RPCE 2.2.1.1.7-8).
const (
	AuthNone     = 0
	AuthSPNEGO   = 9
	AuthNTLM     = 10
	AuthKerberos = 16
	AuthNetlogon = 68

	AuthLevelPrivacy = 6 // packet privacy: the stub is sealed
)

// MaxFragLen bounds the fragment length replay accepts when framing a
// stream: Windows negotiates at most 5840 on SMB and 65535 on TCP, so a
// larger claim means the framer lost its place.
const MaxFragLen = 65535

// UUID is an interface or object UUID in wire form (the first three fields
// little-endian, as a bind carries them).
type UUID [16]byte

// String formats the UUID in the usual hyphenated form.
func (u UUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		binary.LittleEndian.Uint32(u[0:]), binary.LittleEndian.Uint16(u[4:]), binary.LittleEndian.Uint16(u[6:]),
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])
}

// ParseUUID reads the hyphenated form into wire form.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	var a uint32
	var b, c uint16
	var d [8]byte
	n, err := fmt.Sscanf(s, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		&a, &b, &c, &d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &d[6], &d[7])
	if err != nil || n != 11 {
		return u, fmt.Errorf("smbrpc: bad uuid %q", s)
	}
	binary.LittleEndian.PutUint32(u[0:], a)
	binary.LittleEndian.PutUint16(u[4:], b)
	binary.LittleEndian.PutUint16(u[6:], c)
	copy(u[8:], d[:])
	return u, nil
}

// MustUUID is ParseUUID for constants.
func MustUUID(s string) UUID {
	u, err := ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// PresContext is one presentation context of a bind or alter_context.
type PresContext struct {
	ID        uint16
	Interface UUID
	Version   uint16 // major
	Minor     uint16
	Syntaxes  []UUID // transfer syntaxes proposed (NDR, NDR64, bind-time features)
}

// Transfer syntaxes (MS-RPCE 2.2.5).
var (
	SyntaxNDR   = MustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
	SyntaxNDR64 = MustUUID("71710533-beba-4937-8319-b5dbef9ccc36")
)

// PDU is one decoded DCE/RPC fragment.
type PDU struct {
	Type      byte
	Flags     byte
	BigEndian bool
	FragLen   int
	AuthLen   int
	CallID    uint32

	// Request, response and fault.
	AllocHint uint32
	ContextID uint16
	Opnum     uint16 // request
	Object    UUID   // request with PFCObjectUUID
	HasObject bool
	Stub      []byte // request/response stub without auth padding
	Status    uint32 // fault

	// Bind, alter_context and their acks.
	Contexts []PresContext
	Results  []uint16 // ack result per context: 0 acceptance
	Accepted []UUID   // ack transfer syntax per context
	SecAddr  string   // bind_ack secondary address (the pipe or port)

	// Auth verifier.
	AuthType  byte
	AuthLevel byte
	AuthValue []byte
}

// First and Last report the fragment flags.
func (p *PDU) First() bool { return p.Flags&PFCFirstFrag != 0 }

// Last reports whether this is the call's last fragment.
func (p *PDU) Last() bool { return p.Flags&PFCLastFrag != 0 }

var errNotDCERPC = errors.New("smbrpc: not a dce/rpc pdu")

// DCERPCHeader checks the common header at the start of b and returns the
// PDU type and fragment length. It is strict (version 5.0/5.1, a known
// type, a sane data representation and length) because framers use it to
// find the next PDU after a gap.
func DCERPCHeader(b []byte) (ptype byte, fragLen int, ok bool) {
	if len(b) < DCERPCHeaderLen || b[0] != 5 || b[1] > 1 || b[2] > ptMax {
		return 0, 0, false
	}
	if b[4]&0xee != 0 || b[5] > 3 { // integer and character representation; float format
		return 0, 0, false
	}
	be := b[4]&0x10 == 0
	fl := binary.LittleEndian.Uint16(b[8:])
	al := binary.LittleEndian.Uint16(b[10:])
	if be {
		fl = binary.BigEndian.Uint16(b[8:])
		al = binary.BigEndian.Uint16(b[10:])
	}
	if int(fl) < DCERPCHeaderLen || int(al) > int(fl)-DCERPCHeaderLen {
		return 0, 0, false
	}
	return b[2], int(fl), true
}

// ParsePDU decodes one whole fragment (b holds at least FragLen bytes;
// more are ignored).
func ParsePDU(b []byte) (PDU, error) {
	var p PDU
	t, fl, ok := DCERPCHeader(b)
	if !ok {
		return p, errNotDCERPC
	}
	if len(b) < fl {
		return p, ErrShort
	}
	b = b[:fl]
	p.Type, p.Flags, p.FragLen = t, b[3], fl
	p.BigEndian = b[4]&0x10 == 0
	bo := binary.ByteOrder(binary.LittleEndian)
	if p.BigEndian {
		bo = binary.BigEndian
	}
	p.AuthLen = int(bo.Uint16(b[10:]))
	p.CallID = bo.Uint32(b[12:])

	// The auth verifier sits at the end: 8 bytes of header, then the value.
	bodyEnd := fl
	pad := 0
	if p.AuthLen > 0 {
		at := fl - p.AuthLen - 8
		if at < DCERPCHeaderLen {
			return p, fmt.Errorf("smbrpc: auth length %d in a %d-byte pdu", p.AuthLen, fl)
		}
		p.AuthType, p.AuthLevel, pad = b[at], b[at+1], int(b[at+2])
		p.AuthValue = b[at+8 : fl : fl]
		bodyEnd = at
	}
	body := b[DCERPCHeaderLen:bodyEnd]
	switch t {
	case PTRequest:
		if len(body) < 8 {
			return p, ErrShort
		}
		p.AllocHint = bo.Uint32(body)
		p.ContextID = bo.Uint16(body[4:])
		p.Opnum = bo.Uint16(body[6:])
		body = body[8:]
		if p.Flags&PFCObjectUUID != 0 {
			if len(body) < 16 {
				return p, ErrShort
			}
			copy(p.Object[:], body)
			p.HasObject = true
			body = body[16:]
		}
		p.Stub = trimPad(body, pad)
	case PTResponse:
		if len(body) < 8 {
			return p, ErrShort
		}
		p.AllocHint = bo.Uint32(body)
		p.ContextID = bo.Uint16(body[4:])
		p.Stub = trimPad(body[8:], pad)
	case PTFault:
		if len(body) < 12 {
			return p, ErrShort
		}
		p.AllocHint = bo.Uint32(body)
		p.ContextID = bo.Uint16(body[4:])
		p.Status = bo.Uint32(body[8:])
	case PTBind, PTAlterContext:
		return p, p.parseBind(body, bo)
	case PTBindAck, PTAlterResp:
		return p, p.parseBindAck(b, body, bo)
	}
	return p, nil
}

func trimPad(stub []byte, pad int) []byte {
	if pad > 0 && pad <= len(stub) {
		return stub[: len(stub)-pad : len(stub)-pad]
	}
	return stub[:len(stub):len(stub)]
}

func (p *PDU) parseBind(body []byte, bo binary.ByteOrder) error {
	if len(body) < 12 {
		return ErrShort
	}
	n := int(body[8])
	rest := body[12:]
	// Each context is at least 44 bytes: the count cannot size the slice
	// beyond what the PDU holds.
	p.Contexts = make([]PresContext, 0, min(n, len(rest)/44))
	for i := 0; i < n; i++ {
		if len(rest) < 24 {
			return ErrShort
		}
		var c PresContext
		c.ID = bo.Uint16(rest)
		nts := int(rest[2])
		copy(c.Interface[:], rest[4:20])
		c.Version = bo.Uint16(rest[20:])
		c.Minor = bo.Uint16(rest[22:])
		skip := 24 + 20*nts
		if skip > len(rest) {
			return ErrShort
		}
		c.Syntaxes = make([]UUID, nts)
		for j := range c.Syntaxes {
			copy(c.Syntaxes[j][:], rest[24+20*j:])
		}
		p.Contexts = append(p.Contexts, c)
		rest = rest[skip:]
	}
	return nil
}

func (p *PDU) parseBindAck(pdu, body []byte, bo binary.ByteOrder) error {
	if len(body) < 10 {
		return ErrShort
	}
	sl := int(bo.Uint16(body[8:]))
	if 10+sl > len(body) {
		return ErrShort
	}
	p.SecAddr = OEM(body[10 : 10+sl])
	// The result list is aligned to 4 bytes from the start of the PDU.
	at := DCERPCHeaderLen + 10 + sl
	at = (at + 3) &^ 3
	r := at - DCERPCHeaderLen
	if r+4 > len(body) {
		return ErrShort
	}
	n := int(body[r])
	rest := body[r+4:]
	p.Results = make([]uint16, 0, min(n, len(rest)/24))
	p.Accepted = make([]UUID, 0, min(n, len(rest)/24))
	for i := 0; i < n && len(rest) >= 24; i++ {
		p.Results = append(p.Results, bo.Uint16(rest))
		var u UUID
		copy(u[:], rest[4:20])
		p.Accepted = append(p.Accepted, u)
		rest = rest[24:]
	}
	return nil
}

// PTypeName names a PDU type for messages.
func PTypeName(t byte) string {
	switch t {
	case PTRequest:
		return "request"
	case PTResponse:
		return "response"
	case PTFault:
		return "fault"
	case PTBind:
		return "bind"
	case PTBindAck:
		return "bind_ack"
	case PTBindNak:
		return "bind_nak"
	case PTAlterContext:
		return "alter_context"
	case PTAlterResp:
		return "alter_context_resp"
	case PTAuth3:
		return "auth3"
	}
	return fmt.Sprintf("ptype %d", t)
}

// secVTMagic starts an rpc_sec_verification_trailer (MS-RPCE 2.2.2.13).
var secVTMagic = [8]byte{0x8a, 0xe3, 0x13, 0x71, 0x02, 0xf4, 0x36, 0x71}

// Verification-trailer command flags and bound (MS-RPCE 2.2.2.13.1).
const (
	secVTCommandEnd = 0x4000
	maxSecVT        = 1024 // three commands take under 100 bytes
)

// VerificationTrailer returns where the security verification trailer
// starts in the stub of an authenticated request's last fragment, or
// len(stub) when it has none. Windows appends the trailer after the NDR
// data and before the auth padding (MS-RPCE 2.2.2.13), so decoders must
// not see it: a stub with trailing bytes does not parse cleanly as its
// operation. Clients may pad between the two, so the signature is searched
// for, as the spec tells servers to; it is accepted only when its commands
// run exactly to the end of the stub and the last carries
// SEC_VT_COMMAND_END, so NDR data that happens to hold the signature is
// left alone.
func VerificationTrailer(stub []byte) int {
	lo := max(0, len(stub)-maxSecVT)
	tail := stub[lo:]
	for {
		i := bytes.LastIndex(tail, secVTMagic[:])
		if i < 0 {
			return len(stub)
		}
		if validSecVT(tail[i+8:]) {
			return lo + i
		}
		tail = tail[:i]
	}
}

// validSecVT walks the commands after the magic: 2 bytes of command and
// flags, 2 of length, then the body.
func validSecVT(b []byte) bool {
	for len(b) >= 4 {
		cmd := binary.LittleEndian.Uint16(b)
		n := int(binary.LittleEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return false
		}
		b = b[4+n:]
		if cmd&secVTCommandEnd != 0 {
			return len(b) == 0
		}
	}
	return false
}
