package replay

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// Tests of the DCE/RPC layer's use of rpcops: transfer syntax from the
// bind_ack, guessing for contexts bound before the capture, names shared
// between associations, fault status, endpoint-mapper ports, verification
// trailers. Stubs are real ones, taken from the shared remote-operation
// captures (the rpcops fixtures hold them whole).

var (
	lsarpcIf = smbrpc.MustUUID("12345778-1234-abcd-ef00-0123456789ab")
	samrIf   = smbrpc.MustUUID("12345778-1234-abcd-ef00-0123456789ac")
	epmIf    = smbrpc.MustUUID("e1af8308-5d1f-11c9-91a4-08002b14a0fa")
)

// mimikatz's LsarRetrievePrivateData(G$BCKUPKEY_PREFERRED) in NDR64, from
// CredAccess_BackupMasterKey_LSARPC_43_RetrievePrivateData.
const retrievePrivateDataNDR64 = "00000000a474b9cef306644fb1dd365e672d1bbc0000000028002a00000000000000020000000000" +
	"15000000000000000000000000000000140000000000000047002400420043004b00550050004b00450059005f0050005200450046" +
	"00450052005200450044000000000000000000"

// SamrLookupDomainInSamServer("SAMBA-CONTAINER") and SamrOpenDomain by the
// SID it returned, from zeek's 20-fids trace (each on its own pipe there).
const (
	samrLookupDomainReq  = "000000000d000000000000009e6447cf4f0000001e001e00000002000f000000000000000f000000530041004d00420041002d0043004f004e005400410049004e0045005200"
	samrLookupDomainResp = "0400020004000000010400000000000515000000ecf729f3b498a80ce843b13c00000000"
	samrOpenDomainReq    = "000000000f000000000000009e6447cf4f0000000000000204000000010400000000000515000000ecf729f3b498a80ce843b13c"
	samrOpenDomainResp   = "0000000010000000000000009e6447cf4f00000000000000"
)

// policyHandle is a context handle as servers hand them out: zero
// attributes, then a UUID.
var policyHandle = func() []byte {
	u := smbrpc.MustUUID("cfb9a474-06f3-4f64-b1dd-365e672d1bbc")
	return join(le32(0), u[:])
}()

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rpcBindSyntaxes binds context ctx to iface proposing NDR and NDR64, as
// Windows clients do: only the bind_ack says which one is used.
func rpcBindSyntaxes(callID uint32, ctx uint16, iface smbrpc.UUID, ver uint16) []byte {
	return rpcPDU(smbrpc.PTBind, 3, callID, join(le16(4280), le16(4280), le32(0), []byte{1, 0, 0, 0},
		le16(ctx), []byte{2, 0}, iface[:], le16(ver), le16(0),
		smbrpc.SyntaxNDR[:], le32(2), smbrpc.SyntaxNDR64[:], le32(1)))
}

// rpcBindAckSyntax accepts one context with the given transfer syntax.
func rpcBindAckSyntax(callID uint32, syntax smbrpc.UUID) []byte {
	return rpcPDU(smbrpc.PTBindAck, 3, callID, join(le16(4280), le16(4280), le32(1), le16(0), le16(0),
		[]byte{1, 0, 0, 0}, le16(0), le16(0), syntax[:], le32(1)))
}

// rpcRequestCtx is a single-fragment request on a context.
func rpcRequestCtx(callID uint32, ctx, opnum uint16, stub []byte) []byte {
	return rpcPDU(smbrpc.PTRequest, 3, callID, join(le32(uint32(len(stub))), le16(ctx), le16(opnum), stub))
}

// rpcRequestSigned is a single-fragment request at auth level integrity
// (5) with an NTLM verifier, as Windows sends them: stub, then padding to
// 16 bytes, then the sec_trailer and a 16-byte signature.
func rpcRequestSigned(callID uint32, ctx, opnum uint16, stub []byte) []byte {
	body := join(le32(uint32(len(stub))), le16(ctx), le16(opnum), stub)
	pad := (16 - len(stub)%16) % 16
	body = join(body, make([]byte, pad), []byte{smbrpc.AuthNTLM, 5, byte(pad), 0}, le32(0), make([]byte, 16))
	b := rpcPDU(smbrpc.PTRequest, 3, callID, body)
	copy(b[10:], le16(16)) // auth_length
	return b
}

func rpcFault(callID uint32, status uint32) []byte {
	return rpcPDU(smbrpc.PTFault, 3, callID, join(le32(0), le16(0), []byte{0, 0}, le32(status), le32(0)))
}

func rpcOps(ops []Operation) []Operation {
	var out []Operation
	for _, o := range ops {
		if o.Kind == "rpc" {
			out = append(out, o)
		}
	}
	return out
}

// TestNDR64FromBindAck: the same NDR64 stub decodes when the bind_ack
// accepted NDR64, and does not when it accepted NDR.
func TestNDR64FromBindAck(t *testing.T) {
	stub := unhex(t, retrievePrivateDataNDR64)
	for _, tc := range []struct {
		syntax smbrpc.UUID
		target string
	}{
		{smbrpc.SyntaxNDR64, "G$BCKUPKEY_PREFERRED"},
		{smbrpc.SyntaxNDR, ""},
	} {
		f := newFlow("10.0.0.1:50100", "10.0.0.2:49667", t0)
		f.send(true, rpcBindSyntaxes(1, 0, lsarpcIf, 0), 1460)
		f.send(false, rpcBindAckSyntax(1, tc.syntax), 1460)
		f.send(true, rpcRequestCtx(2, 0, 43, stub), 1460)
		f.send(false, rpcResponse(2, make([]byte, 24)), 1460)
		ops, _ := runPackets(t, f.pkts, Config{})
		rpc := rpcOps(ops)
		if len(rpc) != 1 || rpc[0].Interface != "lsarpc" || rpc[0].Operation != "RetrievePrivateData" {
			t.Fatalf("%s: ops %+v", tc.syntax, rpc)
		}
		if rpc[0].Target != tc.target {
			t.Errorf("%s: target %q, want %q (fields %v)", tc.syntax, rpc[0].Target, tc.target, rpc[0].Fields)
		}
	}
}

// TestGuessNDR64WithoutBind: a call on a context bound before the capture
// began is named from its stub, which also tells its transfer syntax; the
// guess holds for later calls on the context whose stubs say nothing.
func TestGuessNDR64WithoutBind(t *testing.T) {
	f := newFlow("10.0.0.1:50101", "10.0.0.2:49667", t0)
	f.send(true, rpcRequestCtx(2, 1, 43, unhex(t, retrievePrivateDataNDR64)), 1460)
	f.send(false, rpcResponse(2, make([]byte, 24)), 1460)
	f.send(true, rpcRequestCtx(3, 1, 0, policyHandle), 1460) // LsarClose: a handle fits many interfaces
	f.send(false, rpcResponse(3, make([]byte, 24)), 1460)
	rpc := rpcOps(func() []Operation { ops, _ := runPackets(t, f.pkts, Config{}); return ops }())
	if len(rpc) != 2 {
		t.Fatalf("ops %+v", rpc)
	}
	if rpc[0].Interface != "lsarpc" || rpc[0].Target != "G$BCKUPKEY_PREFERRED" || rpc[0].Technique == "" {
		t.Errorf("guessed call %+v", rpc[0])
	}
	if rpc[1].Interface != "lsarpc" || rpc[1].Operation != rpcops.OpName(lsarpcIf, 0) {
		t.Errorf("later call on the guessed context %+v", rpc[1])
	}
	// Alone, the handle-only stub names nothing.
	g := newFlow("10.0.0.1:50102", "10.0.0.2:49667", t0)
	g.send(true, rpcRequestCtx(3, 1, 0, policyHandle), 1460)
	g.send(false, rpcResponse(3, make([]byte, 24)), 1460)
	rpc = rpcOps(func() []Operation { ops, _ := runPackets(t, g.pkts, Config{}); return ops }())
	if len(rpc) != 1 || rpc[0].Interface != "unknown" || rpc[0].Operation != "opnum 0" {
		t.Errorf("handle-only call %+v", rpc)
	}
}

// TestSharedNamesAcrossAssociations: the domain SID a LookupDomain
// returned on one connection names the domain OpenDomain opens on another.
func TestSharedNamesAcrossAssociations(t *testing.T) {
	a := newFlow("10.0.0.1:50103", "10.0.0.2:49668", t0)
	a.send(true, rpcBind(1, samrIf, 1), 1460)
	a.send(true, rpcRequest(2, 3, 5, unhex(t, samrLookupDomainReq)), 1460)
	a.send(false, rpcResponse(2, unhex(t, samrLookupDomainResp)), 1460)
	b := newFlow("10.0.0.1:50104", "10.0.0.2:49668", a.t.Add(time.Second))
	b.send(true, rpcBind(1, samrIf, 1), 1460)
	b.send(true, rpcRequest(2, 3, 7, unhex(t, samrOpenDomainReq)), 1460)
	b.send(false, rpcResponse(2, unhex(t, samrOpenDomainResp)), 1460)
	ops, _ := runPackets(t, append(a.pkts, b.pkts...), Config{})
	open := find(ops, "rpc", "OpenDomain")
	if open == nil || open.Target != "SAMBA-CONTAINER" || open.SrcPort != 50104 {
		t.Fatalf("OpenDomain on the second connection %+v", open)
	}
}

// TestFaultStatus: a call answered by a fault shows the fault's status,
// and the session does not keep a handle from it.
func TestFaultStatus(t *testing.T) {
	f := newFlow("10.0.0.1:50105", "10.0.0.2:49669", t0)
	f.send(true, rpcBind(1, samrIf, 1), 1460)
	f.send(true, rpcRequest(2, 3, 7, unhex(t, samrOpenDomainReq)), 1460)
	f.send(false, rpcFault(2, 0x00000005), 1460) // access denied
	ops, _ := runPackets(t, f.pkts, Config{})
	rpc := rpcOps(ops)
	if len(rpc) != 1 || rpc[0].Operation != "OpenDomain" || !rpc[0].HasStatus || rpc[0].Status != 5 || rpc[0].Partial {
		t.Fatalf("faulted call %+v", rpc)
	}
}

// TestVerificationTrailerStripped: a signed request ends with a
// verification trailer; the stub must still parse cleanly, here as the
// interface guess needs (no bind in the capture).
func TestVerificationTrailerStripped(t *testing.T) {
	stub := unhex(t, retrievePrivateDataNDR64)
	trailer := unhex(t, "8ae3137102f43671"+"02402800"+"785734123412cdabef000123456789ab"+"00000000"+
		"33057171babe37498319b5dbef9ccc36"+"01000000")
	f := newFlow("10.0.0.1:50106", "10.0.0.2:49670", t0)
	f.send(true, rpcRequestSigned(2, 1, 43, join(stub, trailer)), 1460)
	f.send(false, rpcResponse(2, make([]byte, 24)), 1460)
	ops, st := runPackets(t, f.pkts, Config{})
	rpc := rpcOps(ops)
	if len(rpc) != 1 || rpc[0].Interface != "lsarpc" || rpc[0].Target != "G$BCKUPKEY_PREFERRED" || st.DecodeErrors != 0 {
		t.Fatalf("signed call %+v %+v", rpc, st)
	}
	for _, fl := range rpc[0].Fields {
		if fl.Name == "decode error" {
			t.Fatalf("decode error %q", fl.Value)
		}
	}
}

// TestEndpointMapperPorts: an ept_map answer (NDR64, as Windows clients
// ask) teaches the port it hands out.
func TestEndpointMapperPorts(t *testing.T) {
	// ept_map answer from covenant_sharpsc_create: svcctl on 172.18.39.6:50115.
	resp := unhex(t, "00000000000000000000000000000000000000000100000004000000000000000000000000000000"+
		"010000000000000003000000000000004b000000000000004b000000050013000d81bb7a364498f135ad3298f038"+
		"00100302000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200"+
		"c3c30100090400ac1227060000000000")
	f := newFlow("10.0.0.1:50107", "172.18.39.6:135", t0)
	f.send(true, rpcBindSyntaxes(1, 0, epmIf, 3), 1460)
	f.send(false, rpcBindAckSyntax(1, smbrpc.SyntaxNDR64), 1460)
	f.send(true, rpcRequestCtx(2, 0, 3, make([]byte, 80)), 1460)
	f.send(false, rpcResponse(2, resp), 1460)
	p := New(Config{}, func(Operation) {})
	for _, pk := range f.pkts {
		p.Packet(pk)
	}
	if _, ok := p.epmPorts[netip.MustParseAddrPort("172.18.39.6:50115")]; !ok {
		t.Fatalf("port not learnt: %v", p.epmPorts)
	}
	if !p.wellKnown(netip.MustParseAddrPort("172.18.39.6:50115")) {
		t.Fatal("learnt port not taken as a server")
	}
}

// TestOrphanReadCompletesReply: the reply to a transceive overflows into
// a READ whose request was not captured; the pipe waiting for exactly
// those bytes takes them and the call completes.
func TestOrphanReadCompletesReply(t *testing.T) {
	f := newFlow("10.0.0.1:50108", "10.0.0.2:445", t0)
	sess := uint64(0x21)
	fid := smbrpc.FileID{7, 0, 0, 0, 0, 0, 0, 0, 9}
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 1, 0, sess, treeConnect(`\\srv\IPC$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 1, 6, sess, treeConnectResp(smbrpc.SharePipe))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Create, false, 0, 2, 6, sess, create("samr"))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Create, true, 0, 2, 6, sess, createResp(fid))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Ioctl, false, 0, 3, 6, sess, ioctl(fid, rpcBind(1, samrIf, 1)))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Ioctl, true, 0, 3, 6, sess, ioctlResp(fid, rpcBindAckSyntax(1, smbrpc.SyntaxNDR)))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Ioctl, false, 0, 4, 6, sess, ioctl(fid, rpcRequest(2, 3, 5, unhex(t, samrLookupDomainReq))))), 1460)
	reply := rpcResponse(2, unhex(t, samrLookupDomainResp))
	f.send(false, nb(smb2(smbrpc.SMB2Ioctl, true, smbrpc.StatusBufferOverflow, 4, 6, sess, ioctlResp(fid, reply[:30]))), 1460)
	// The READ request (message 5) is missing; its response carries the rest.
	rest := reply[30:]
	f.send(false, nb(smb2(smbrpc.SMB2Read, true, 0, 5, 6, sess, join(le16(17), []byte{80, 0}, le32(uint32(len(rest))), le32(0), le32(0), rest))), 1460)
	ops, _ := runPackets(t, f.pkts, Config{})
	look := find(ops, "rpc", "LookupDomainInSamServer")
	if look == nil || look.Partial || !look.HasStatus {
		t.Fatalf("call with an orphan read %+v", ops)
	}
	if !strings.Contains(fieldValues(look), "S-1-5-21-4079613932-212375732-1018250216") {
		t.Fatalf("reply not decoded: %v", look.Fields)
	}
}

func fieldValues(o *Operation) string {
	var b strings.Builder
	for _, f := range o.Fields {
		b.WriteString(f.Name + "=" + f.Value + ";")
	}
	return b.String()
}
