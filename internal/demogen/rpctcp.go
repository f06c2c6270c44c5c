package demogen

import "time"

// rpcConn is DCE/RPC over a TCP connection (ncacn_ip_tcp), optionally
// authenticated with NTLMSSP at packet integrity: the bind carries the
// NEGOTIATE, the bind_ack the CHALLENGE, an rpc_auth_3 the AUTHENTICATE,
// and every later PDU a signature.
type rpcConn struct {
	c            *tcpConn
	r            *rng
	callID       uint32
	auth         bool
	cseq, sseq   uint32 // signature sequence numbers, client and server
	think, serve time.Duration
}

const authContextID = 0x0001_2f00 // any value; one auth context per connection

func (x *rpcConn) verifier(seq *uint32) func() *authTrailer {
	if !x.auth {
		return nil
	}
	return func() *authTrailer {
		v := ntlmVerifier(*seq, x.r)
		*seq++
		return &authTrailer{typ: authNTLM, level: authIntegrity, ctxID: authContextID, value: v}
	}
}

// bind binds ifc; with a non-nil account the bind authenticates.
func (x *rpcConn) bind(ifc rpcIface, secAddr string, a *account, srv ntlmServer) {
	x.callID = 1
	assoc := 0x5000 + x.r.u32()&0xffff
	var q, s *authTrailer
	if a != nil {
		x.auth = true
		q = &authTrailer{typ: authNTLM, level: authIntegrity, ctxID: authContextID, value: ntlmNegotiate()}
		s = &authTrailer{typ: authNTLM, level: authIntegrity, ctxID: authContextID, value: ntlmChallenge(srv, x.c.t, x.r)}
	}
	x.c.t = x.c.t.Add(x.think)
	x.c.send(0, rpcPDU(ptBind, pfcFirst|pfcLast, x.callID, bindBody(ifc, 0), q, 4))
	x.c.turn(x.serve)
	x.c.send(1, rpcPDU(ptBindAck, pfcFirst|pfcLast, x.callID, bindAckBody(secAddr, assoc), s, 4))
	if a != nil {
		x.c.t = x.c.t.Add(x.think)
		v := ntlmAuthenticate(a.domain, a.user, a.workstation, "", srv, x.c.t, x.r)
		x.c.send(0, rpcPDU(ptAuth3, pfcFirst|pfcLast, x.callID, []byte{0, 0, 0, 0},
			&authTrailer{typ: authNTLM, level: authIntegrity, ctxID: authContextID, value: v}, 4))
	}
	x.callID++
}

// call sends a request and its response, fragmented as needed, and
// returns when the request went out.
func (x *rpcConn) call(opnum uint16, req, resp []byte) time.Time {
	x.c.t = x.c.t.Add(x.think)
	at := x.c.t
	for _, pdu := range rpcCallPDUs(ptRequest, x.callID, opnum, req, x.verifier(&x.cseq)) {
		x.c.send(0, pdu)
	}
	x.c.turn(x.serve)
	for _, pdu := range rpcCallPDUs(ptResponse, x.callID, 0, resp, x.verifier(&x.sseq)) {
		x.c.send(1, pdu)
	}
	x.callID++
	return at
}
