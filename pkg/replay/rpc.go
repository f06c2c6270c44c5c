package replay

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// Bounds on one DCE/RPC association.
const (
	maxStub         = 4 << 20 // reassembled stub bytes kept per call and direction
	maxCallsPending = 1024
	maxContexts     = 256
)

// Well-known interfaces the transport itself needs to recognise.
var (
	ifEPM = smbrpc.MustUUID("e1af8308-5d1f-11c9-91a4-08002b14a0fa")
	// ifDRSUAPI is directory replication (MS-DRSR), for DCSync seen
	// without its bind.
	ifDRSUAPI  = smbrpc.MustUUID("e3514235-4b06-11d1-ab04-00c04fc2dcd2")
	ifNetlogon = smbrpc.MustUUID("12345678-1234-abcd-ef00-01234567cffb")
)

// account is who an operation ran as.
type account struct {
	user, domain, workstation string
	auth                      string // "ntlm", "kerberos"
	service                   string // Kerberos service principal
	via                       string // Kerberos: "keytab" (the ticket opened with a key), "ticket" (the TGS-REP that issued the ticket), "kdc" (the client's KDC exchanges)
}

func (a account) known() bool { return a.user != "" || a.service != "" }

// accountFromBlob reads an identity from a security blob: an NTLMSSP
// AUTHENTICATE, or a Kerberos AP-REQ whose client p finds in the KDC
// exchanges of the client address.
func (p *Pipeline) accountFromBlob(blob []byte, client netip.Addr) (account, bool) {
	if m := smbrpc.FindNTLMSSP(blob); m != nil {
		if a, ok := smbrpc.ParseNTLMAuth(m); ok {
			if a.Anonymous {
				return account{auth: "ntlm", user: "", domain: a.Domain, workstation: a.Workstation}, true
			}
			return account{user: a.User, domain: a.Domain, workstation: a.Workstation, auth: "ntlm"}, true
		}
		return account{}, false
	}
	if k, ok := smbrpc.FindAPReq(blob); ok {
		a := account{auth: "kerberos", service: k.SName}
		if c, _ := p.krbAccept(k); c != nil {
			a.user, a.domain, a.via = c.Client, c.Realm, viaKeytab
		} else if pr, ok := p.byTicket(k.Ticket); ok {
			a.user, a.domain, a.via = pr.name, pr.realm, "ticket"
		} else if pr, ok := p.kerberosClient(client, k.SName); ok {
			a.user, a.domain, a.via = pr.name, pr.realm, "kdc"
		}
		return a, true
	}
	return account{}, false
}

// rpcEndpoint says where an association runs and how to find the account
// of the transport under it (the SMB session, for pipes).
type rpcEndpoint struct {
	client, server netip.AddrPort
	transport      string // "tcp", "smb2", "smb1"
	pipe, share    string
	session        func() account
	// decrypted points at whether the pipe's messages came out of a
	// decrypted SMB3 transform (nil on TCP); a pointer, not a closure, so
	// a run without secrets allocates nothing more.
	decrypted *bool
}

type ctxIface struct {
	iface smbrpc.UUID
	ver   uint16
	ndr64 bool // NDR64 transfer syntax: accepted by the ack, or the only one proposed
}

func proposedNDR64(c smbrpc.PresContext) bool {
	return len(c.Syntaxes) > 0 && c.Syntaxes[0] == smbrpc.SyntaxNDR64
}

// rpcCall is one call being reassembled.
type rpcCall struct {
	ctxID      uint16
	opnum      uint16
	object     smbrpc.UUID
	bigEndian  bool
	req, resp  []byte
	reqSeen    bool
	respSeen   bool
	reqLast    bool
	start, end time.Time
	sealed     bool
	// netlogonAuth: the request's verifier is of the Netlogon secure
	// channel (auth type 68), which only MS-NRPC uses.
	netlogonAuth bool
	// unsealed is set (with --ntlm-secrets only) once a sealed fragment
	// of an account with a secret was met.
	unsealed  *callUnseal
	faulted   bool
	fault     uint32
	truncated bool
}

// rpcAssoc is one DCE/RPC association: a TCP connection or an SMB pipe
// open.
type rpcAssoc struct {
	ep         rpcEndpoint
	ctx        map[uint16]ctxIface
	proposed   map[uint32][]smbrpc.PresContext
	calls      map[uint32]*rpcCall
	acct       account
	sealedConn bool
	sess       rpcops.Session
	fr         [2]*framer // pipe mode: the pipe's byte streams
	// unbound holds the opnums of the first sealed calls whose bind was
	// not captured, in order (see looksDCSync).
	unbound []uint16

	// ntlm is the unsealing state, made only when secrets were given: a
	// pipeline without them carries one nil pointer per association.
	ntlm *assocNTLM
	// krb is the association's Kerberos context opened with --keytab
	// (nil without keys, or when none opened its ticket: krbWhy says
	// why when a key of the etype was given).
	krb    *krbseal.Context
	krbWhy string
}

// assocNTLM follows an association's NTLM exchange for --ntlm-secrets.
type assocNTLM struct {
	chal    []byte            // the CHALLENGE, copied
	seal    *ntlmseal.Session // what the AUTHENTICATE opened
	err     error             // or why it could not be opened
	scratch []byte            // a sealed PDU being opened
}

// callUnseal is what became of a call's sealed fragments.
type callUnseal struct {
	opened bool   // a sealed fragment was opened with a secret
	why    string // why one could not be: the call is not decoded
}

// opened reports whether every sealed fragment of the call was opened.
func (c *rpcCall) opened() bool {
	return c.sealed && c.unsealed != nil && c.unsealed.opened && c.unsealed.why == ""
}

// undecryptable says why a sealed fragment of a named account's call
// could not be opened, "" otherwise.
func (c *rpcCall) undecryptable() string {
	if c.unsealed == nil {
		return ""
	}
	return c.unsealed.why
}

func newAssoc(p *Pipeline, ep rpcEndpoint) *rpcAssoc {
	return &rpcAssoc{
		ep:       ep,
		ctx:      make(map[uint16]ctxIface),
		proposed: make(map[uint32][]smbrpc.PresContext),
		calls:    make(map[uint32]*rpcCall),
		// DCOM objects activated on one connection are called on another,
		// and names learnt on one pipe serve the next.
		sess: rpcops.Session{Shared: p.shared},
	}
}

// pipeData feeds bytes written to (dir 0) or read from (dir 1) a pipe.
func (a *rpcAssoc) pipeData(p *Pipeline, dir int, b []byte, ts time.Time) {
	if a.fr[dir] == nil {
		a.fr[dir] = &framer{kind: protoRPC, max: smbrpc.MaxFragLen + 1}
	}
	a.fr[dir].push(p, b, func(pdu []byte) { a.pdu(p, dir, pdu, ts) })
}

// pipeGap tells the association that pipe data was lost.
func (a *rpcAssoc) pipeGap(p *Pipeline, dir int) {
	if a.fr[dir] != nil {
		a.fr[dir].reset(p)
	}
}

func (a *rpcAssoc) release(p *Pipeline) {
	for _, f := range a.fr {
		if f != nil {
			f.release(p)
		}
	}
}

// pdu handles one whole fragment.
func (a *rpcAssoc) pdu(p *Pipeline, dir int, b []byte, ts time.Time) {
	pdu, err := smbrpc.ParsePDU(b)
	if err != nil {
		p.stats.DecodeErrors++
		return
	}
	if len(pdu.AuthValue) > 0 && pdu.Type != smbrpc.PTRequest && pdu.Type != smbrpc.PTResponse {
		if acct, ok := p.accountFromBlob(pdu.AuthValue, a.ep.client.Addr()); ok {
			if acct.user != "" || !a.acct.known() {
				a.acct = acct
			}
		}
		if p.cfg.Secrets.Len() > 0 {
			a.ntlmAuth(p, pdu.AuthValue)
		}
		if p.cfg.Keys.Len() > 0 {
			a.krbAuth(p, dir, pdu.AuthValue)
		}
	}
	switch pdu.Type {
	case smbrpc.PTBind, smbrpc.PTAlterContext:
		if len(a.proposed) < maxCallsPending {
			a.proposed[pdu.CallID] = pdu.Contexts
		}
		// Trust the proposal until an ack says otherwise: a capture may
		// miss the ack, and a call on the context proves acceptance.
		for _, c := range pdu.Contexts {
			if len(a.ctx) < maxContexts {
				if _, ok := a.ctx[c.ID]; !ok {
					a.ctx[c.ID] = ctxIface{c.Interface, c.Version, proposedNDR64(c)}
				}
			}
		}
	case smbrpc.PTBindAck, smbrpc.PTAlterResp:
		if prop, ok := a.proposed[pdu.CallID]; ok {
			for i, c := range prop {
				if i < len(pdu.Results) && pdu.Results[i] == 0 {
					a.ctx[c.ID] = ctxIface{c.Interface, c.Version, pdu.Accepted[i] == smbrpc.SyntaxNDR64}
				}
			}
			delete(a.proposed, pdu.CallID)
		}
	case smbrpc.PTRequest:
		c := a.calls[pdu.CallID]
		if c == nil || (pdu.First() && c.respSeen) {
			if len(a.calls) >= maxCallsPending {
				a.expire(p, ts) // the peer forgot its calls; so do we
			}
			c = &rpcCall{ctxID: pdu.ContextID, opnum: pdu.Opnum, start: ts, bigEndian: pdu.BigEndian}
			a.calls[pdu.CallID] = c
		}
		c.reqSeen = true
		c.object, c.end = pdu.Object, ts
		if pdu.AuthLen > 0 && pdu.AuthType == smbrpc.AuthNetlogon {
			c.netlogonAuth = true
		}
		stub, clear := pdu.Stub, true
		if pdu.AuthLevel == smbrpc.AuthLevelPrivacy {
			c.sealed, a.sealedConn = true, true
			stub, clear = a.unseal(p, c, dir, b, &pdu)
		}
		if pdu.Last() && pdu.AuthLen > 0 && clear {
			stub = stub[:smbrpc.VerificationTrailer(stub)]
		}
		c.req, c.truncated = appendStub(c.req, stub, c.truncated)
		if pdu.Last() {
			c.reqLast = true
		}
	case smbrpc.PTResponse, smbrpc.PTFault:
		c := a.calls[pdu.CallID]
		if c == nil {
			// The request was not captured: report what the reply shows.
			c = &rpcCall{ctxID: pdu.ContextID, opnum: 0xffff, start: ts, bigEndian: pdu.BigEndian}
			a.calls[pdu.CallID] = c
		}
		c.respSeen, c.end = true, ts
		if pdu.Type == smbrpc.PTFault {
			c.faulted, c.fault = true, pdu.Status
			a.finish(p, pdu.CallID, c, false)
			return
		}
		stub := pdu.Stub
		if pdu.AuthLevel == smbrpc.AuthLevelPrivacy {
			c.sealed = true
			stub, _ = a.unseal(p, c, dir, b, &pdu)
		}
		c.resp, c.truncated = appendStub(c.resp, stub, c.truncated)
		if pdu.Last() {
			a.finish(p, pdu.CallID, c, false)
		}
	}
}

// maxChallenge bounds the CHALLENGE kept per association (a few hundred
// bytes in practice: its target information lists names).
const maxChallenge = 4096

// ntlmAuth follows the NTLMSSP exchange of a bind, alter_context or auth3
// (and their acks) when secrets were given: the CHALLENGE is kept, the
// AUTHENTICATE opens the association's sealing state.
func (a *rpcAssoc) ntlmAuth(p *Pipeline, blob []byte) {
	m := smbrpc.FindNTLMSSP(blob)
	t := smbrpc.NTLMType(m)
	if t != smbrpc.NTLMChallenge && t != smbrpc.NTLMAuthenticate {
		return
	}
	if a.ntlm == nil {
		a.ntlm = &assocNTLM{}
	}
	n := a.ntlm
	if t == smbrpc.NTLMChallenge {
		if len(m) <= maxChallenge {
			n.chal = append(n.chal[:0], m...)
		}
		return
	}
	n.seal, n.err = p.cfg.Secrets.Open(n.chal, m)
	if errors.Is(n.err, ntlmseal.ErrNoSecret) {
		n.err = nil // not an account of the file: shown as without secrets
	}
}

// unseal opens a sealed request or response fragment with the
// association's secret. It returns the plaintext stub (without auth
// padding) and true, or the sealed stub as it is and false when there is
// no secret for the association or the fragment could not be opened
// (c.unsealed says why): its size still tells something (looksDCSync).
func (a *rpcAssoc) unseal(p *Pipeline, c *rpcCall, dir int, b []byte, pdu *smbrpc.PDU) ([]byte, bool) {
	if (a.krb != nil || a.krbWhy != "") && (pdu.AuthType == smbrpc.AuthKerberos || pdu.AuthType == smbrpc.AuthSPNEGO) {
		return a.krbUnseal(p, c, dir, b, pdu)
	}
	n := a.ntlm
	switch {
	case n == nil || (n.seal == nil && n.err == nil):
		return pdu.Stub, false // no secret for it: shown by name, as without secrets
	case pdu.AuthType != smbrpc.AuthNTLM && pdu.AuthType != smbrpc.AuthSPNEGO:
		return pdu.Stub, false // Kerberos or schannel: not ours to open
	}
	if c.unsealed == nil {
		c.unsealed = &callUnseal{}
	}
	switch {
	case n.err != nil:
		c.unsealed.why = n.err.Error()
		return pdu.Stub, false
	case c.unsealed.why != "":
		return pdu.Stub, false
	}
	from := smbrpc.DCERPCHeaderLen + 8
	if pdu.HasObject {
		from += 16
	}
	to := pdu.FragLen - pdu.AuthLen - 8
	n.scratch = append(n.scratch[:0], b[:pdu.FragLen]...)
	if err := n.seal.Unseal(dir, n.scratch, from, to); err != nil {
		c.unsealed.why = err.Error()
		return pdu.Stub, false
	}
	c.unsealed.opened = true
	pad := int(n.scratch[to+2])
	if pad > to-from {
		pad = 0
	}
	stub := n.scratch[from : to-pad]
	if p.stubHook != nil {
		p.stubHook(dir, stub)
	}
	return stub, true
}

// krbAuth follows the Kerberos legs of a bind, alter_context or auth3
// (and their acks) with --keytab: the client's AP-REQ opens the context,
// the server's AP-REP gives its subkey, the client's AP-REP of DCE
// style's third leg is checked.
func (a *rpcAssoc) krbAuth(p *Pipeline, dir int, blob []byte) {
	if dir == 0 {
		if k, ok := smbrpc.FindAPReq(blob); ok {
			c, err := p.krbAccept(k)
			switch {
			case c != nil && err == nil:
				a.krb, a.krbWhy = c, ""
			case errors.Is(err, krbseal.ErrNoKey):
				a.krb, a.krbWhy = nil, ""
			case c != nil:
				a.krb, a.krbWhy = nil, "kerberos: "+err.Error()
			default:
				a.krb, a.krbWhy = nil, "kerberos: no key opens the ticket of "+k.SName
			}
			return
		}
	}
	if a.krb == nil {
		return
	}
	if rep, ok := smbrpc.FindAPRep(blob); ok {
		if err := a.krb.APRep(rep, dir == 1); err != nil && dir == 1 {
			a.krbWhy = "kerberos AP-REP: " + err.Error()
		}
	}
}

// krbUnseal opens a Kerberos-sealed fragment in place (as unseal does
// with NTLM).
func (a *rpcAssoc) krbUnseal(p *Pipeline, c *rpcCall, dir int, b []byte, pdu *smbrpc.PDU) ([]byte, bool) {
	if c.unsealed == nil {
		c.unsealed = &callUnseal{}
	}
	switch {
	case a.krbWhy != "":
		c.unsealed.why = a.krbWhy
		return pdu.Stub, false
	case c.unsealed.why != "":
		return pdu.Stub, false
	}
	if a.ntlm == nil {
		a.ntlm = &assocNTLM{} // for its scratch buffer
	}
	from := smbrpc.DCERPCHeaderLen + 8
	if pdu.HasObject {
		from += 16
	}
	to := pdu.FragLen - pdu.AuthLen - 8
	s := append(a.ntlm.scratch[:0], b[:pdu.FragLen]...)
	a.ntlm.scratch = s
	if err := a.krb.UnsealDCE(dir, s, from, to); err != nil {
		c.unsealed.why = "kerberos: " + err.Error()
		return pdu.Stub, false
	}
	c.unsealed.opened = true
	pad := int(s[to+2])
	if pad > to-from {
		pad = 0
	}
	stub := s[from : to-pad]
	if p.stubHook != nil {
		p.stubHook(dir, stub)
	}
	return stub, true
}

func appendStub(dst, frag []byte, trunc bool) ([]byte, bool) {
	if len(dst)+len(frag) > maxStub {
		return dst, true
	}
	return append(dst, frag...), trunc
}

// expire reports calls whose request is older than before and that still
// wait for a reply.
func (a *rpcAssoc) expire(p *Pipeline, before time.Time) {
	for id, c := range a.calls {
		if c.end.Before(before) {
			p.stats.CallsExpired++
			a.finish(p, id, c, true)
		}
	}
}

// closeAll reports every call still open.
func (a *rpcAssoc) closeAll(p *Pipeline) {
	for id, c := range a.calls {
		p.stats.CallsExpired++
		a.finish(p, id, c, true)
	}
}

// looksDCSync recognises a sealed DRSGetNCChanges whose bind was not
// captured (a capture started after it): on ncacn_ip_tcp away from the
// endpoint mapper, the association's first unbound call was opnum 0
// (DRSBind), this one is opnum 3 and its reply carries more than 1 KiB of
// replicated data. Sealed stubs cannot be parsed, so the sequence is all
// there is; a DCSync tool runs exactly it.
func (a *rpcAssoc) looksDCSync(c *rpcCall) bool {
	return c.opnum == 3 && a.ep.transport == "tcp" && a.ep.server.Port() != 135 &&
		len(a.unbound) > 0 && a.unbound[0] == 0 && c.respSeen && len(c.resp) >= 1024
}

// finish decodes a call and emits its operation.
func (a *rpcAssoc) finish(p *Pipeline, id uint32, c *rpcCall, halfOpen bool) {
	delete(a.calls, id)
	ci, known := a.ctx[c.ctxID]
	if !known && c.opnum != 0xffff {
		ci, known = a.guess(p, c)
	}
	inferred := false
	if !known && c.netlogonAuth {
		// The secure channel's own verifier: whatever the bind said, the
		// interface is Netlogon (MS-NRPC 3.3).
		ci, known = ctxIface{iface: ifNetlogon}, true
		if len(a.ctx) < maxContexts {
			a.ctx[c.ctxID] = ci
		}
	}
	if !known && c.sealed && a.ep.pipe == "" && c.opnum != 0xffff {
		if a.looksDCSync(c) {
			ci, known, inferred = ctxIface{iface: ifDRSUAPI}, true, true
		}
		if len(a.unbound) < 16 {
			a.unbound = append(a.unbound, c.opnum)
		}
	}
	call := rpcops.Call{
		Interface: ci.iface, IfVersion: ci.ver, Opnum: c.opnum, NDR64: ci.ndr64,
		BigEndian: c.bigEndian, Object: c.object, Pipe: a.ep.pipe,
	}
	opened := c.opened()
	if !c.sealed || opened {
		call.Request, call.Response = c.req, c.resp
		if !c.reqSeen {
			call.Request = nil
		}
		if !c.respSeen {
			call.Response = nil
		}
	}
	if c.faulted {
		// The fault's status stands in for the return value, so the
		// session knows the call failed (no handle to remember) and the
		// operation shows why: an attacker's failed attempts matter.
		call.Response = binary.LittleEndian.AppendUint32(nil, c.fault)
		if c.bigEndian {
			call.Response = binary.BigEndian.AppendUint32(nil, c.fault)
		}
	}
	var d rpcops.Decoded
	if known {
		d = a.sess.Decode(call)
	}
	op := Operation{
		Time: c.start, End: c.end,
		Src: a.ep.client.Addr(), Dst: a.ep.server.Addr(),
		SrcPort: a.ep.client.Port(), DstPort: a.ep.server.Port(),
		Transport: a.ep.transport, Pipe: a.ep.pipe, Share: a.ep.share,
		Kind:      "rpc",
		Opnum:     int(c.opnum),
		Interface: d.Interface, Operation: d.Operation,
		Target: d.Target, Command: d.Command,
		Technique: d.Technique, Phase: d.Phase,
		Noise:     d.Noise,
		Encrypted: c.sealed,
		Partial:   halfOpen || !c.reqSeen || c.truncated || !c.reqLast,
	}
	for _, f := range d.Fields {
		op.Fields = append(op.Fields, Field{f.Name, f.Value})
	}
	switch {
	case opened:
		op.Sealed = SealedDecrypted
	case c.undecryptable() != "":
		op.Sealed = SealedUndecryptable
		op.Fields = append(op.Fields, Field{"sealed", "not decrypted: " + c.undecryptable()})
	}
	if inferred {
		op.Fields = append(op.Fields, Field{"inferred", "drsuapi from the sealed call sequence (DRSBind, then DRSGetNCChanges with a large reply); the bind was not captured"})
	}
	switch {
	case op.Interface == "" && known:
		op.Interface = ci.iface.String()
	case !known:
		op.Interface = "unknown"
		if a.ep.pipe != "" {
			op.Interface = `\pipe\` + a.ep.pipe
		}
		if cls, _, ok := p.shared.Object(c.object); ok && cls != (smbrpc.UUID{}) {
			// A DCOM object of a known class, through an interface that
			// was never named.
			if op.Target = rpcops.ClassName(cls); op.Target == "" {
				op.Target = "{" + smbrpc.UUID(cls).String() + "}"
			}
		}
	}
	if op.Operation == "" || c.opnum == 0xffff {
		// A reply whose request was not captured has no opnum: never
		// name it after the sentinel.
		op.Operation = opnumName(c.opnum)
	}
	if c.opnum == 0xffff {
		op.Opnum = -1
	}
	if c.faulted {
		op.Status, op.HasStatus = c.fault, true
	} else if c.respSeen && (!c.sealed || opened) && known {
		op.Status, op.HasStatus = d.Status, true
	}
	if a.ep.decrypted != nil && *a.ep.decrypted {
		op.Decrypted = decryptedSMB3
	}
	acct := a.acct
	if !acct.known() && a.ep.session != nil {
		acct = a.ep.session()
	}
	op.User, op.Domain, op.Workstation, op.Auth, op.Service, op.AccountVia = acct.user, acct.domain, acct.workstation, acct.auth, acct.service, acct.via
	p.linkTransfer(&op)
	if known && ci.iface == ifEPM && c.respSeen && (!c.sealed || opened) && !c.faulted {
		p.learnEndpoints(a.ep.server.Addr(), call)
	}
	if len(d.SharePaths) > 0 && !c.faulted && d.Status == 0 {
		p.noteSharePaths(a.ep.server.Addr(), d.SharePaths)
	}
	p.out(op)
}

// guess names the interface of a call on a context whose bind was not
// captured (the capture began inside the association):
//
//   - a DCOM call's object UUID is an IPID that an activation, a
//     RemQueryInterface or a returned interface pointer announced, maybe
//     on another connection, with the interface it points to;
//   - otherwise the pipe name, and the request stub parsed against the
//     candidate operations (rpcops.GuessCall), which also tells whether
//     the context speaks NDR64.
//
// A guess from the stub of a non-DCOM call is kept for the context (a
// presentation context carries one interface for the association's life),
// so later calls on it whose stubs fit several interfaces, or are sealed,
// keep the name. A sealed call with no such earlier call stays unknown,
// except for the DCSync pattern finish infers (looksDCSync).
func (a *rpcAssoc) guess(p *Pipeline, c *rpcCall) (ctxIface, bool) {
	stub := c.req
	if (c.sealed && !c.opened()) || !c.reqSeen {
		stub = nil
	}
	if c.object != (smbrpc.UUID{}) {
		if _, iid, ok := p.shared.Object(c.object); ok && rpcops.InterfaceName(iid) != "" {
			return ctxIface{iface: iid, ndr64: rpcops.StubNDR64(iid, c.opnum, stub)}, true
		}
	}
	g, n64, ok := rpcops.GuessCall(a.ep.pipe, c.opnum, stub)
	if !ok {
		return ctxIface{}, false
	}
	ci := ctxIface{iface: g, ndr64: n64}
	if len(stub) > 0 && c.object == (smbrpc.UUID{}) && (a.ep.pipe == "" || n64) && len(a.ctx) < maxContexts {
		a.ctx[c.ctxID] = ci
	}
	return ci, true
}

func opnumName(n uint16) string {
	if n == 0xffff {
		return "reply without request"
	}
	return "opnum " + itoa(int(n))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// learnEndpoints records the TCP ports an endpoint-mapper reply handed
// out, so connections to them are followed as DCE/RPC even when they are
// captured after their first PDU.
func (p *Pipeline) learnEndpoints(server netip.Addr, call rpcops.Call) {
	eps := rpcops.EndpointsFromCall(call)
	if eps == nil && call.Opnum == 3 {
		// The transfer syntax was guessed or assumed: try both.
		eps = rpcops.EndpointsFromMap(call.Response, call.BigEndian)
	}
	for _, e := range eps {
		if e.Protocol != "ncacn_ip_tcp" || e.Port == 0 {
			continue
		}
		addr := e.Host
		if !addr.IsValid() || addr.IsUnspecified() {
			addr = server
		}
		if len(p.epmPorts) >= 65536 {
			clear(p.epmPorts)
		}
		p.epmPorts[netip.AddrPortFrom(addr, e.Port)] = struct{}{}
	}
}

// rpcTCP is an ncacn_ip_tcp connection: one association over the TCP
// stream.
type rpcTCP struct {
	c       *conn
	a       *rpcAssoc
	decided bool
	flip    bool
}

func newRPCTCP(p *Pipeline, c *conn) *rpcTCP {
	return &rpcTCP{c: c, a: newAssoc(p, rpcEndpoint{client: c.client, server: c.server, transport: "tcp"})}
}

func (r *rpcTCP) frame(p *Pipeline, dir int, msg []byte, ts time.Time) {
	if !r.decided && len(msg) > 2 {
		// A bind or request comes from the client: trust it over the port
		// guess made when the handshake was not captured.
		switch msg[2] {
		case smbrpc.PTBind, smbrpc.PTAlterContext, smbrpc.PTRequest, smbrpc.PTAuth3:
			r.decided, r.flip = true, dir == 1
		case smbrpc.PTBindAck, smbrpc.PTAlterResp, smbrpc.PTResponse, smbrpc.PTFault:
			r.decided, r.flip = true, dir == 0
		}
		if r.flip {
			r.a.ep.client, r.a.ep.server = r.a.ep.server, r.a.ep.client
		}
	}
	if r.flip {
		dir = 1 - dir
	}
	r.a.pdu(p, dir, msg, ts)
}
func (r *rpcTCP) gap(*Pipeline, int)                   {}
func (r *rpcTCP) expire(p *Pipeline, before time.Time) { r.a.expire(p, before) }
func (r *rpcTCP) close(p *Pipeline, _ bool)            { r.a.closeAll(p) }
