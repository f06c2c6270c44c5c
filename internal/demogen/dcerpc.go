package demogen

import (
	"encoding/binary"
	"strconv"
)

// Connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE 2.2.2).
const (
	ptRequest  = 0
	ptResponse = 2
	ptBind     = 11
	ptBindAck  = 12
	ptAuth3    = 16

	pfcFirst = 0x01
	pfcLast  = 0x02

	authNTLM       = 10
	authIntegrity  = 5 // packet integrity: signed, stub in clear
	rpcMaxFrag     = 4280
	rpcHeaderLen   = 16
	ntlmVerifierSz = 16
)

// The NDR 2.0 transfer syntax.
var syntaxNDR = mustGUID("8a885d04-1ceb-11c9-9fe8-08002b104860")

// rpcIface names an interface: its UUID and version.
type rpcIface struct {
	name         string
	uuid         guid
	major, minor uint16
}

// authTrailer is the sec_trailer and auth value of a PDU.
type authTrailer struct {
	typ, level byte
	ctxID      uint32
	value      []byte
}

// rpcPDU frames one PDU: the common header, body, and auth trailer with
// the body padded to pad bytes before it (4 for binds, 16 for stubs).
func rpcPDU(ptype, flags byte, callID uint32, body []byte, auth *authTrailer, pad int) []byte {
	b := make([]byte, rpcHeaderLen, rpcHeaderLen+len(body)+64)
	b[0], b[1], b[2], b[3] = 5, 0, ptype, flags
	b[4] = 0x10 // little-endian integers, ASCII, IEEE floats
	binary.LittleEndian.PutUint32(b[12:], callID)
	b = append(b, body...)
	if auth != nil {
		padN := 0
		if pad > 1 {
			for (len(b)-rpcHeaderLen-bodyStart(ptype)+padN)%pad != 0 {
				padN++
			}
		}
		b = append(b, make([]byte, padN)...)
		b = append(b, auth.typ, auth.level, byte(padN), 0)
		b = binary.LittleEndian.AppendUint32(b, auth.ctxID)
		b = append(b, auth.value...)
		binary.LittleEndian.PutUint16(b[10:], uint16(len(auth.value)))
	}
	binary.LittleEndian.PutUint16(b[8:], uint16(len(b)))
	return b
}

// bodyStart is where the stub begins inside a request or response body;
// padding aligns the stub, not the body.
func bodyStart(ptype byte) int {
	switch ptype {
	case ptRequest, ptResponse:
		return 8
	}
	return 0
}

// bindBody is a bind with one presentation context proposing NDR.
func bindBody(ifc rpcIface, assoc uint32) []byte {
	b := make([]byte, 0, 72)
	b = binary.LittleEndian.AppendUint16(b, rpcMaxFrag)
	b = binary.LittleEndian.AppendUint16(b, rpcMaxFrag)
	b = binary.LittleEndian.AppendUint32(b, assoc)
	b = append(b, 1, 0, 0, 0) // one context
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, 1, 0) // one transfer syntax
	b = append(b, ifc.uuid[:]...)
	b = binary.LittleEndian.AppendUint16(b, ifc.major)
	b = binary.LittleEndian.AppendUint16(b, ifc.minor)
	b = append(b, syntaxNDR[:]...)
	return binary.LittleEndian.AppendUint32(b, 2)
}

// bindAckBody accepts the one context; secAddr is the pipe or port the
// server answers on.
func bindAckBody(secAddr string, assoc uint32) []byte {
	b := make([]byte, 0, 64)
	b = binary.LittleEndian.AppendUint16(b, rpcMaxFrag)
	b = binary.LittleEndian.AppendUint16(b, rpcMaxFrag)
	b = binary.LittleEndian.AppendUint32(b, assoc)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(secAddr)+1))
	b = append(b, secAddr...)
	b = append(b, 0)
	for (rpcHeaderLen+len(b))%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, 1, 0, 0, 0)                  // one result
	b = binary.LittleEndian.AppendUint16(b, 0) // acceptance
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, syntaxNDR[:]...)
	return binary.LittleEndian.AppendUint32(b, 2)
}

// rpcCallPDUs splits a request (ptRequest, with opnum) or response stub
// into fragments that fit rpcMaxFrag.
func rpcCallPDUs(ptype byte, callID uint32, opnum uint16, stub []byte, auth func() *authTrailer) [][]byte {
	room := rpcMaxFrag - rpcHeaderLen - 8
	if auth != nil {
		room -= 8 + ntlmVerifierSz + 16 // trailer, verifier, worst-case padding
	}
	room &^= 15
	var out [][]byte
	total := len(stub)
	for first := true; first || len(stub) > 0; first = false {
		k := min(len(stub), room)
		var flags byte
		if first {
			flags |= pfcFirst
		}
		if k == len(stub) {
			flags |= pfcLast
		}
		body := make([]byte, 8, 8+k)
		binary.LittleEndian.PutUint32(body[0:], uint32(total)) // alloc hint
		binary.LittleEndian.PutUint16(body[4:], 0)             // context 0
		if ptype == ptRequest {
			binary.LittleEndian.PutUint16(body[6:], opnum)
		}
		body = append(body, stub[:k]...)
		var a *authTrailer
		if auth != nil {
			a = auth()
		}
		out = append(out, rpcPDU(ptype, flags, callID, body, a, 16))
		stub = stub[k:]
		total -= k
	}
	return out
}

// tcpPortString is a bind_ack secondary address for ncacn_ip_tcp.
func tcpPortString(p uint16) string { return strconv.Itoa(int(p)) }
