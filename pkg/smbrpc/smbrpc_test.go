package smbrpc

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"
)

var (
	svcctl = MustUUID("367abb81-9844-35f1-ad32-98f038001003")
	epmIf  = MustUUID("e1af8308-5d1f-11c9-91a4-08002b14a0fa")
)

func TestUUIDRoundTrip(t *testing.T) {
	s := "367abb81-9844-35f1-ad32-98f038001003"
	u := MustUUID(s)
	// Wire form: the first three fields little-endian.
	if u[0] != 0x81 || u[3] != 0x36 || u[4] != 0x44 || u[8] != 0xad {
		t.Fatalf("wire form % x", u[:])
	}
	if u.String() != s {
		t.Fatalf("String() = %s", u)
	}
	if _, err := ParseUUID("nope"); err == nil {
		t.Fatal("bad uuid accepted")
	}
}

func TestNBHeader(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		typ    byte
		length int
		ok     bool
	}{
		{"session message 24-bit", []byte{0, 0x01, 0x00, 0x10}, NBSessionMessage, 0x10010, true},
		{"session request", []byte{0x81, 0, 0, 68}, NBSessionRequest, 68, true},
		{"17-bit length", []byte{0x85, 1, 0, 0}, NBKeepAlive, 0x10000, true},
		{"bad flags", []byte{0x82, 2, 0, 0}, 0, 0, false},
		{"unknown type", []byte{0x42, 0, 0, 0}, 0, 0, false},
		{"short", []byte{0, 0}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, l, ok := NBHeader(tt.in)
			if typ != tt.typ || l != tt.length || ok != tt.ok {
				t.Fatalf("got %x %d %v, want %x %d %v", typ, l, ok, tt.typ, tt.length, tt.ok)
			}
		})
	}
}

func TestNBNames(t *testing.T) {
	body := cat(nbEncode("SERVER", 0x20), nbEncode("BABYBOOK", 0x00))
	called, calling := NBNames(body)
	if called != "SERVER" || calling != "BABYBOOK" {
		t.Fatalf("got %q %q", called, calling)
	}
	if c, _ := NBNames([]byte{32, 'Z'}); c != "" {
		t.Fatalf("damaged name decoded as %q", c)
	}
}

func TestSMB2SessionSetupNTLM(t *testing.T) {
	auth := ntlmAuth("3B", "backdoor", "02694W-WIN10", []byte{1, 2, 3, 4})
	spnego := cat([]byte{0xa1, 0x82, 0x01, 0x00, 0x30}, auth) // NegTokenResp framing before the token
	body := cat(u16(25), []byte{0, 1}, u32(1), u32(0), u16(64+24), u16(uint16(len(spnego))), u64(0), spnego)
	msg := cat(smb2Hdr(SMB2SessionSetup, 0, 0, 2, 0, 0x1000, 0), body)
	h, err := ParseSMB2Header(msg)
	if err != nil || h.Command != SMB2SessionSetup || h.SessionID != 0x1000 || h.Response() {
		t.Fatalf("header %+v %v", h, err)
	}
	blob, _, err := ParseSMB2SessionSetup(msg, false)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := ParseNTLMAuth(FindNTLMSSP(blob))
	if !ok || a.User != "backdoor" || a.Domain != "3B" || a.Workstation != "02694W-WIN10" || a.Anonymous {
		t.Fatalf("auth %+v ok=%v", a, ok)
	}
}

func TestNTLMAnonymousAndDamaged(t *testing.T) {
	a, ok := ParseNTLMAuth(ntlmAuth("", "", "", nil))
	if !ok || !a.Anonymous {
		t.Fatalf("anonymous: %+v %v", a, ok)
	}
	m := ntlmAuth("D", "u", "w", nil)
	m[36+4] = 0xff // user offset far outside
	if _, ok := ParseNTLMAuth(m); ok {
		t.Fatal("out-of-range field accepted")
	}
	if NTLMType([]byte("NTLMSSP\x00\x01\x00\x00\x00")) != NTLMNegotiate {
		t.Fatal("negotiate type")
	}
}

func TestSMB2Commands(t *testing.T) {
	path := utf16le(`\\172.16.66.36\ADMIN$`)
	tc := cat(smb2Hdr(SMB2TreeConnect, 0, 0, 3, 0, 1, 0), u16(9), u16(0), u16(72), u16(uint16(len(path))), path)
	if p, err := ParseSMB2TreeConnect(tc); err != nil || p != `\\172.16.66.36\ADMIN$` {
		t.Fatalf("tree %q %v", p, err)
	}
	tcr := cat(smb2Hdr(SMB2TreeConnect, SMB2FlagResponse, 0, 3, 5, 1, 0), u16(16), []byte{ShareDisk, 0}, u32(0), u32(0), u32(0x1f01ff))
	if st, err := ParseSMB2TreeConnectResp(tcr); err != nil || st != ShareDisk {
		t.Fatalf("tree resp %d %v", st, err)
	}

	name := utf16le("PSEXESVC.exe")
	create := cat(smb2Hdr(SMB2Create, 0, 0, 4, 5, 1, 0), u16(57), []byte{0, 0}, u32(2), u64(0), u64(0),
		u32(0x00120196), u32(0x80), u32(7), u32(5), u32(0x44), u16(120), u16(uint16(len(name))), u32(0), u32(0), name)
	c, err := ParseSMB2Create(create)
	if err != nil || c.Name != "PSEXESVC.exe" || c.Disposition != 5 {
		t.Fatalf("create %+v %v", c, err)
	}
	fid := FileID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	cr := cat(smb2Hdr(SMB2Create, SMB2FlagResponse, 0, 4, 5, 1, 0), u16(89), []byte{0, 0}, u32(2),
		make([]byte, 32), u64(0), u64(145568), u32(0x20), u32(0), fid[:], u32(0), u32(0))
	r, err := ParseSMB2CreateResp(cr)
	if err != nil || r.FileID != fid || r.EndOfFile != 145568 || r.Action != 2 {
		t.Fatalf("create resp %+v %v", r, err)
	}

	data := []byte("MZ\x90\x00payload")
	wr := cat(smb2Hdr(SMB2Write, 0, 0, 5, 5, 1, 0), u16(49), u16(112), u32(uint32(len(data))), u64(4096), fid[:],
		u32(0), u32(0), u16(0), u16(0), u32(0), data)
	w, err := ParseSMB2Write(wr)
	if err != nil || w.Offset != 4096 || !bytes.Equal(w.Data, data) || !w.Complete || w.FileID != fid {
		t.Fatalf("write %+v %v", w, err)
	}
	w, _ = ParseSMB2Write(wr[:len(wr)-3])
	if w.Complete || len(w.Data) != len(data)-3 {
		t.Fatalf("short write: complete=%v len=%d", w.Complete, len(w.Data))
	}

	rr := cat(smb2Hdr(SMB2Read, SMB2FlagResponse, StatusBufferOverflow, 6, 5, 1, 0), u16(17), []byte{80, 0}, u32(4), u32(0), u32(0), []byte("abcd"))
	d, complete, err := ParseSMB2ReadResp(rr)
	if err != nil || string(d) != "abcd" || !complete {
		t.Fatalf("read resp %q %v %v", d, complete, err)
	}

	in := []byte{5, 0, 0, 3}
	io := cat(smb2Hdr(SMB2Ioctl, 0, 0, 7, 5, 1, 0), u16(57), u16(0), u32(FsctlPipeTransceive), fid[:],
		u32(120), u32(uint32(len(in))), u32(0), u32(0), u32(0), u32(1024), u32(1), u32(0), in)
	x, err := ParseSMB2Ioctl(io, false)
	if err != nil || x.CtlCode != FsctlPipeTransceive || !bytes.Equal(x.Input, in) || x.FileID != fid {
		t.Fatalf("ioctl %+v %v", x, err)
	}

	cl := cat(smb2Hdr(SMB2Close, 0, 0, 8, 5, 1, 0), u16(24), u16(0), u32(0), fid[:])
	if f, err := ParseSMB2Close(cl); err != nil || f != fid {
		t.Fatalf("close %v %v", f, err)
	}
}

func TestSplitSMB2Compound(t *testing.T) {
	a := cat(smb2Hdr(SMB2Create, SMB2FlagRelated, 0, 1, 1, 1, 0), u16(57), make([]byte, 62))
	for len(a)%8 != 0 {
		a = append(a, 0)
	}
	copy(a[20:], u32(uint32(len(a))))
	b := cat(smb2Hdr(SMB2Close, SMB2FlagRelated, 0, 2, 1, 1, 0), u16(24), make([]byte, 22))
	var cmds []uint16
	if err := SplitSMB2(cat(a, b), func(h SMB2Header, m []byte) { cmds = append(cmds, h.Command) }); err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 2 || cmds[0] != SMB2Create || cmds[1] != SMB2Close {
		t.Fatalf("commands %v", cmds)
	}
	// A NextCommand pointing past the end ends the chain without a loop.
	bad := cat(a[:20], u32(1<<30), a[24:])
	n := 0
	SplitSMB2(bad, func(SMB2Header, []byte) { n++ })
	if n != 1 {
		t.Fatalf("bad chain gave %d messages", n)
	}
}

func TestSMB2Transform(t *testing.T) {
	b := cat([]byte{0xfd, 'S', 'M', 'B'}, make([]byte, 32), u32(1234), u16(0), u16(1), u64(0x4000000001))
	tr, err := ParseSMB2Transform(b)
	if err != nil || tr.SessionID != 0x4000000001 || tr.OriginalSize != 1234 {
		t.Fatalf("%+v %v", tr, err)
	}
	if SMBProto(b) != ProtoTransform || SMBProto([]byte("xSMB")) != 0 {
		t.Fatal("SMBProto")
	}
}

func TestSMB1(t *testing.T) {
	// TREE_CONNECT_ANDX request: unicode path aligned after a 1-byte password.
	words := cat([]byte{0xff, 0}, u16(0), u16(0), u16(1))
	data := cat([]byte{0}, utf16le(`\\SRV\IPC$`), []byte{0, 0}, []byte("?????\x00"))
	msg := smb1Msg(SMB1TreeConnect, false, 0, 0, 0x800, 3, words, data)
	var got string
	if _, err := ParseSMB1(msg, func(h SMB1Header, c SMB1Cmd) { got = SMB1TreePath(h, c) }); err != nil {
		t.Fatal(err)
	}
	if got != `\\SRV\IPC$` {
		t.Fatalf("tree path %q", got)
	}

	// NT_CREATE_ANDX request for \svcctl, then its reply with FID 0x4001.
	cw := cat([]byte{0xff, 0}, u16(0), []byte{0}, u16(14), make([]byte, 48-7))
	cd := cat([]byte{0}, utf16le(`\svcctl`), []byte{0, 0})
	var name string
	ParseSMB1(smb1Msg(SMB1NTCreate, false, 0, 1, 0x800, 4, cw, cd), func(h SMB1Header, c SMB1Cmd) { name = SMB1CreateName(h, c) })
	if name != `\svcctl` {
		t.Fatalf("create name %q", name)
	}
	rw := cat([]byte{0xff, 0}, u16(0), []byte{0}, u16(0x4001), make([]byte, 68-7))
	var fid uint16
	ParseSMB1(smb1Msg(SMB1NTCreate, true, 0, 1, 0x800, 4, rw, nil), func(h SMB1Header, c SMB1Cmd) { fid, _ = SMB1CreateFID(c) })
	if fid != 0x4001 {
		t.Fatalf("fid %x", fid)
	}

	// TRANSACTION TransactNmPipe carrying 4 bytes of data.
	payload := []byte{5, 0, 0, 3}
	tw := cat(u16(0), u16(4), u16(0), u16(1024), []byte{0, 0}, u16(0), u32(0), u16(0),
		u16(0), u16(0), u16(4), u16(0), []byte{2, 0}, u16(0x26), u16(0x4001))
	td := cat([]byte{0}, utf16le(`\PIPE\`), []byte{0, 0})
	msg = smb1Msg(SMB1Trans, false, 0, 1, 0x800, 5, tw, td)
	doff := len(msg)
	msg = append(msg, payload...)
	copy(msg[32+1+2*12:], u16(uint16(doff))) // DataOffset
	msg[32+1+len(tw)] += 4                   // ByteCount
	var tr SMB1Transaction
	ParseSMB1(msg, func(h SMB1Header, c SMB1Cmd) { tr, _ = ParseSMB1Trans(msg, h, c) })
	if tr.Function != 0x26 || tr.FID != 0x4001 || !bytes.Equal(tr.Data, payload) || tr.Name != `\PIPE\` {
		t.Fatalf("trans %+v", tr)
	}
}

func TestDCERPC(t *testing.T) {
	auth := ntlmAuth("CONTOSO", "Administrator", "SERVER01", []byte{1})
	bind := dcerpcBind(2, 0, svcctl, 2, auth)
	p, err := ParsePDU(bind)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != PTBind || len(p.Contexts) != 1 || p.Contexts[0].Interface != svcctl || p.Contexts[0].Version != 2 ||
		len(p.Contexts[0].Syntaxes) != 1 || p.Contexts[0].Syntaxes[0] != SyntaxNDR {
		t.Fatalf("bind %+v", p)
	}
	if a, ok := ParseNTLMAuth(FindNTLMSSP(p.AuthValue)); !ok || a.User != "Administrator" {
		t.Fatalf("bind auth %+v", a)
	}
	ack, err := ParsePDU(dcerpcBindAck(2, `\PIPE\svcctl`))
	if err != nil || ack.SecAddr != `\PIPE\svcctl` || len(ack.Results) != 1 || ack.Results[0] != 0 || ack.Accepted[0] != SyntaxNDR {
		t.Fatalf("ack %+v %v", ack, err)
	}
	req, err := ParsePDU(dcerpcRequest(3, PFCFirstFrag, 0, 12, []byte("stub")))
	if err != nil || req.Opnum != 12 || string(req.Stub) != "stub" || req.Last() || !req.First() {
		t.Fatalf("request %+v %v", req, err)
	}
	resp, err := ParsePDU(dcerpcResponse(3, PFCLastFrag, 0, []byte{0, 0, 0, 0}))
	if err != nil || resp.Type != PTResponse || len(resp.Stub) != 4 || !resp.Last() {
		t.Fatalf("response %+v %v", resp, err)
	}
	sealed := dcerpcPDU(PTRequest, 3, 4, cat(u32(8), u16(0), u16(15), []byte("sealed!!x")), AuthNTLM, AuthLevelPrivacy, make([]byte, 16))
	sp, err := ParsePDU(sealed)
	if err != nil || sp.AuthLevel != AuthLevelPrivacy || string(sp.Stub) != "sealed!!x" || sp.Opnum != 15 {
		t.Fatalf("sealed %+v %v", sp, err)
	}
	if _, _, ok := DCERPCHeader([]byte{5, 0, 0, 3, 0x10, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0}); ok {
		t.Fatal("fragment length below the header accepted")
	}
	if _, err := ParsePDU(bind[:len(bind)-1]); err == nil {
		t.Fatal("short pdu accepted")
	}
}

// TestVerificationTrailer uses the request of an IClassFactory
// CreateInstance captured from Windows (ORPCTHIS, then the IID): its stub
// ends with a pcontext trailer that decoders must not see.
func TestVerificationTrailer(t *testing.T) {
	data, _ := hex.DecodeString("0500070000000000000000001561adf05d19dc4d9d6c7cc30db8c76d" +
		"00000000" + "000000000000000000c0000000000046")
	trailer, _ := hex.DecodeString("8ae3137102f43671" + "02402800" +
		"0100000000000000c000000000000046" + "00000000" + // abstract syntax: IClassFactory v0
		"045d888aeb1cc9119fe808002b104860" + "02000000") // NDR v2
	for _, tc := range []struct {
		name string
		stub []byte
		want int
	}{
		{"trailer", cat(data, trailer), len(data)},
		{"padding before it", cat(data, []byte{0, 0, 0, 0}, trailer), len(data) + 4},
		{"none", data, len(data)},
		{"cut trailer", cat(data, trailer[:len(trailer)-1]), len(data) + len(trailer) - 1},
		{"no end flag", cat(data, trailer[:8], []byte{0x02, 0x00, 0x28, 0x00}, trailer[12:]), len(data) + len(trailer)},
		{"bytes after it", cat(data, trailer, []byte{0, 0, 0, 0}), len(data) + len(trailer) + 4},
		{"signature only", cat(data, trailer[:8]), len(data) + 8},
		{"empty", nil, 0},
	} {
		if got := VerificationTrailer(tc.stub); got != tc.want {
			t.Errorf("%s: trailer at %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestKerberos(t *testing.T) {
	ap := krbAPReq("THESHIRE.LOCAL", "cifs", "MORDORDC.theshire.local")
	k, ok := ParseKerberos(ap)
	if !ok || k.Type != KrbAPReq || k.SName != "cifs/MORDORDC.theshire.local" || k.Realm != "THESHIRE.LOCAL" {
		t.Fatalf("ap-req %+v %v", k, ok)
	}
	g, ok := FindAPReq(gssKrb(ap))
	if !ok || g.SName != "cifs/MORDORDC.theshire.local" {
		t.Fatalf("gss %+v %v", g, ok)
	}
	rep, ok := ParseKerberos(krbRep(13, "THESHIRE.LOCAL", "pgustavo", "THESHIRE.LOCAL", "cifs", "WORKSTATION6"))
	if !ok || rep.Type != KrbTGSRep || rep.CName != "pgustavo" || rep.SName != "cifs/WORKSTATION6" {
		t.Fatalf("tgs-rep %+v %v", rep, ok)
	}
	as, ok := ParseKerberos(krbASReq("THREEBEESCO.COM", "admin02"))
	if !ok || as.Type != KrbASReq || as.CName != "admin02" || as.SName != "krbtgt/THREEBEESCO.COM" {
		t.Fatalf("as-req %+v %v", as, ok)
	}
	if _, ok := ParseKerberos([]byte{0x6e, 0x84, 0xff, 0xff, 0xff, 0xff}); ok {
		t.Fatal("huge length accepted")
	}
}

func TestEPMTowers(t *testing.T) {
	stub := cat(make([]byte, 24), u32(1), u32(1), u32(0), u32(1), u32(0x20000), u32(75), u32(75),
		epmTower(svcctl, 49726, [4]byte{172, 18, 39, 6}), []byte{0, 0, 0})
	got := EPMTowers(stub)
	if len(got) != 1 || got[0].Interface != svcctl || got[0].Port != 49726 || got[0].Addr != netip.MustParseAddr("172.18.39.6") {
		t.Fatalf("towers %+v", got)
	}
	if EPMTowers(stub[:40]) != nil {
		t.Fatal("tower found in a cut stub")
	}
}

// TestTruncationNeverPanics cuts every fixture at every length and feeds
// each decoder: a short message must fail cleanly.
func TestTruncationNeverPanics(t *testing.T) {
	for _, b := range seedMessages() {
		for n := 0; n <= len(b); n++ {
			decodeAll(b[:n])
		}
	}
}

// seedMessages are the fixtures, used as fuzz seeds too.
func seedMessages() [][]byte {
	fid := FileID{1}
	auth := ntlmAuth("3B", "backdoor", "WS", []byte{1, 2})
	return [][]byte{
		cat(smb2Hdr(SMB2SessionSetup, 0, 0, 2, 0, 1, 0), u16(25), []byte{0, 1}, u32(1), u32(0), u16(88), u16(uint16(len(auth))), u64(0), auth),
		cat(smb2Hdr(SMB2Write, 0, 0, 5, 5, 1, 0), u16(49), u16(112), u32(3), u64(0), fid[:], make([]byte, 16), []byte("abc")),
		cat(smb2Hdr(SMB2Create, SMB2FlagResponse, 0, 4, 5, 1, 0), u16(89), make([]byte, 87)),
		cat(smb2Hdr(SMB2Ioctl, SMB2FlagResponse, 0, 7, 5, 1, 0), u16(49), make([]byte, 47)),
		smb1Msg(SMB1TreeConnect, false, 0, 0, 0x800, 3, cat([]byte{0xff, 0}, u16(0), u16(0), u16(1)), cat([]byte{0}, utf16le(`\\S\IPC$`), []byte{0, 0})),
		dcerpcBind(2, 0, svcctl, 2, auth),
		dcerpcBindAck(2, `\PIPE\svcctl`),
		dcerpcRequest(3, 3, 0, 12, []byte("stub")),
		krbAPReq("R", "cifs", "h"),
		gssKrb(krbAPReq("R", "cifs", "h")),
		krbRep(11, "R", "u", "R", "krbtgt", "R"),
		krbASReq("R", "u"),
		epmTower(epmIf, 135, [4]byte{1, 2, 3, 4}),
		cat([]byte{0x81, 0, 0, 68}, nbEncode("A", 0x20), nbEncode("B", 0)),
		auth,
	}
}

// decodeAll runs every decoder over b, as the pipeline might.
func decodeAll(b []byte) {
	NBHeader(b)
	NBNames(b)
	if h, err := ParseSMB2Header(b); err == nil {
		resp := h.Response()
		ParseSMB2NegotiateResp(b)
		ParseSMB2SessionSetup(b, resp)
		ParseSMB2TreeConnect(b)
		ParseSMB2TreeConnectResp(b)
		ParseSMB2Create(b)
		if q, err := ParseSMB2SetInfo(b); err == nil {
			q.Disposition()
		}
		ParseSMB2CreateResp(b)
		ParseSMB2Close(b)
		ParseSMB2Read(b)
		ParseSMB2ReadResp(b)
		ParseSMB2Write(b)
		ParseSMB2Ioctl(b, resp)
		SMB2IsError(b)
	}
	SplitSMB2(b, func(SMB2Header, []byte) {})
	ParseSMB2Transform(b)
	ParseSMB1(b, func(h SMB1Header, c SMB1Cmd) {
		SMB1SessionSetupBlob(c, h.Reply())
		SMB1PlainLogon(h, c)
		SMB1TreePath(h, c)
		SMB1CreateName(h, c)
		SMB1CreateOptions(c)
		SMB1DeleteName(h, c)
		SMB1CreateFID(c)
		SMB1CreateSize(c)
		ParseSMB1Write(b, c)
		ParseSMB1WriteCore(c)
		SMB1ReadFID(c)
		SMB1ReadData(b, c)
		ParseSMB1Trans(b, h, c)
		SMB1CloseFID(c)
	})
	DCERPCHeader(b)
	ParsePDU(b)
	ParseNTLMAuth(FindNTLMSSP(b))
	ParseKerberos(b)
	FindAPReq(b)
	EPMTowers(b)
	VerificationTrailer(b)
	UTF16(b)
	OEM(b)
}

// msNegotiateResp311 is the SMB 3.1.1 NEGOTIATE response of Microsoft's
// published pre-authentication integrity example (Open Specifications
// blog, 2015): a SPNEGO token, then the preauth integrity and encryption
// capabilities contexts (AES-128-GCM chosen).
const msNegotiateResp311 = "FE534D4240000100000000000000010001000000000000000100000000000000FFFE000000000000" +
	"000000000000000000000000000000000000000000000000410001001103020039CBCAF329714942" +
	"BDCE5D60F09AB3FB2F000000000080000000800000008000D8DAE5ADCBAED00109094AB095AED001" +
	"80004001C00100006082013C06062B0601050502A08201303082012CA01A3018060A2B0601040182" +
	"3702021E060A2B06010401823702020AA282010C048201084E45474F455854530100000000000000" +
	"60000000700000007C7CC0FD06D6362D02DDE1CF343BFE292900F49750B4AA97934D9C4296B26E51" +
	"FD370471B235E15A50DAE15BD5489C87000000000000000060000000010000000000000000000000" +
	"5C33530DEAF90D4DB2EC4AE3786EC3084E45474F4558545303000000010000004000000098000000" +
	"7C7CC0FD06D6362D02DDE1CF343BFE295C33530DEAF90D4DB2EC4AE3786EC3084000000058000000" +
	"3056A05430523027802530233121301F06035504031318546F6B656E205369676E696E6720507562" +
	"6C6963204B65793027802530233121301F06035504031318546F6B656E205369676E696E67205075" +
	"626C6963204B6579010026000000000001002000010060A3C3B95C3C7CCD51EC536648D9B3AC74C4" +
	"83CA5B65385A251117BEB30712E50000020004000000000001000200"

// TestNegotiateContexts reads the cipher of a 3.1.1 NEGOTIATE response;
// cut anywhere in its contexts it fails without reading past the end.
func TestNegotiateContexts(t *testing.T) {
	b, err := hex.DecodeString(msNegotiateResp311)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseSMB2NegotiateResp(b)
	if err != nil || n.Dialect != 0x0311 || n.Cipher != 0x0002 || n.Compression || len(n.Security) != 0x140 {
		t.Fatalf("%+v %v", n, err)
	}
	for cut := len(b) - 1; cut > 0x1c0; cut-- {
		if n, err := ParseSMB2NegotiateResp(b[:cut]); err == nil && n.Cipher != 0 {
			t.Fatalf("cut at %d: cipher %x read", cut, n.Cipher)
		}
	}
}

// TestSMB2SetInfoDisposition: SET_INFO requests laid out after MS-SMB2
// 2.2.39 (header, StructureSize 33, InfoType, FileInfoClass,
// BufferLength, BufferOffset, Reserved, AdditionalInformation, FileId)
// with the disposition classes of MS-FSCC 2.4.11 and 2.4.12.
func TestSMB2SetInfoDisposition(t *testing.T) {
	setInfo := func(infoType, class byte, buf []byte) []byte {
		b := make([]byte, SMB2HeaderLen)
		copy(b, "\xfeSMB")
		b = binary.LittleEndian.AppendUint16(b, 33)
		b = append(b, infoType, class)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(buf)))
		b = binary.LittleEndian.AppendUint16(b, SMB2HeaderLen+32)
		b = append(b, make([]byte, 6)...)
		b = append(b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
		return append(b, buf...)
	}
	for _, c := range []struct {
		name       string
		msg        []byte
		delete, ok bool
		wantErr    bool
	}{
		{"disposition set", setInfo(1, 13, []byte{1}), true, true, false},
		{"disposition cleared", setInfo(1, 13, []byte{0}), false, true, false},
		{"disposition ex, delete", setInfo(1, 64, []byte{0x13, 0, 0, 0}), true, true, false},
		{"disposition ex, no delete", setInfo(1, 64, []byte{0, 0, 0, 0}), false, true, false},
		{"end of file", setInfo(1, 20, make([]byte, 8)), false, false, false},
		{"security", setInfo(3, 0, make([]byte, 20)), false, false, false},
		{"buffer cut short", setInfo(1, 13, nil)[:SMB2HeaderLen+32], false, false, false},
		{"not a set info", setInfo(1, 13, []byte{1})[:SMB2HeaderLen+10], false, false, true},
	} {
		q, err := ParseSMB2SetInfo(c.msg)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: error %v", c.name, err)
			continue
		}
		if d, ok := q.Disposition(); d != c.delete || ok != c.ok {
			t.Errorf("%s: Disposition() = %v %v, want %v %v", c.name, d, ok, c.delete, c.ok)
		}
		if err == nil && q.FileID[0] != 1 {
			t.Errorf("%s: file id %x", c.name, q.FileID)
		}
	}
}

// TestSMB1WriteCore decodes winexe's SMB_COM_WRITE requests as captured
// (the SMB messages of frames 65 and 92 of a winexe session): the header,
// 5 words (FID, count, offset, remaining), then a data buffer of format 1.
func TestSMB1WriteCore(t *testing.T) {
	hdr := func(mid byte) []byte {
		return cat([]byte{0xff, 'S', 'M', 'B', SMB1WriteCore}, make([]byte, 4), []byte{0x08, 0x03, 0xc8}, // command, status, flags, flags2
			[]byte{0, 0, 0xd8, 0xf1, 0x76, 0x02, 0x92, 0x0f, 0xe2, 0x79, 0, 0}, // PID high, signature, reserved
			[]byte{0x00, 0x08, 0x0e, 0x06, 0x00, 0x08, mid, 0x00})              // TID, PID, UID, MID
	}
	getVersion := cat(hdr(0x06),
		[]byte{0x05}, u16(0x4000), u16(12), u32(0), u16(0), // words
		u16(15), []byte{0x01}, u16(12), []byte("get version\n"))
	key := cat(hdr(0x15), []byte{0x05}, u16(0x4001), u16(1), u32(0), u16(0), u16(4), []byte{0x01}, u16(1), []byte("w"))
	cut := getVersion[:len(getVersion)-5]
	badFormat := bytes.Clone(key)
	badFormat[len(badFormat)-4] = 0x02
	for _, c := range []struct {
		name     string
		msg      []byte
		ok       bool
		fid      uint16
		data     string
		complete bool
	}{
		{"get version", getVersion, true, 0x4000, "get version\n", true},
		{"one keystroke", key, true, 0x4001, "w", true},
		{"cut short", cut, true, 0x4000, "get ver", false},
		{"not a data buffer", badFormat, false, 0, "", false},
	} {
		var w SMB1Write
		var ok bool
		if _, err := ParseSMB1(c.msg, func(h SMB1Header, cmd SMB1Cmd) { w, ok = ParseSMB1WriteCore(cmd) }); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ok != c.ok || w.FID != c.fid || string(w.Data) != c.data || w.Complete != c.complete || w.Offset != 0 {
			t.Errorf("%s: %+v %v", c.name, w, ok)
		}
	}
}
