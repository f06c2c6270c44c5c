package demogen

import (
	"bytes"
	"encoding/asn1"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// The encoders are the inverse of the project's decoders: each test here
// encodes with demogen and decodes with pkg/smbrpc, its ndr reader and
// rpcops, or pkg/flow.

func TestNDRRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *ndrWriter)
		read  func(r *ndr.Reader) []string
		want  []string
	}{
		{
			name:  "wstring counts its NUL",
			write: func(w *ndrWriter) { w.wstring("svc_backup") },
			read:  func(r *ndr.Reader) []string { return []string{r.WString()} },
			want:  []string{"svc_backup"},
		},
		{
			name:  "empty and non-ASCII strings",
			write: func(w *ndrWriter) { w.wstring(""); w.wstring("Zürich ☃ 𝄞") },
			read:  func(r *ndr.Reader) []string { return []string{r.WString(), r.WString()} },
			want:  []string{"", "Zürich ☃ 𝄞"},
		},
		{
			name:  "unique pointers: null and not",
			write: func(w *ndrWriter) { w.wstringPtr(""); w.wstringPtr("ServicesActive"); w.u32(7) },
			read: func(r *ndr.Reader) []string {
				a, b := "", ""
				if r.Ptr() {
					a = "non-null"
				}
				if r.Ptr() {
					b = r.WString()
				}
				return []string{a, b, itoa(r.U32())}
			},
			want: []string{"", "ServicesActive", "7"},
		},
		{
			name: "RPC_UNICODE_STRINGs of an array defer their buffers",
			write: func(w *ndrWriter) {
				w.construct(func() {
					w.u32(2)
					w.unicodeString("Domain Admins")
					w.unicodeString("krbtgt")
				})
			},
			read: func(r *ndr.Reader) []string {
				out := make([]string, 2)
				r.Construct(func() {
					r.U32()
					r.UnicodeString(&out[0])
					r.UnicodeString(&out[1])
				})
				return out
			},
			want: []string{"Domain Admins", "krbtgt"},
		},
		{
			name:  "SID with its conformance",
			write: func(w *ndrWriter) { w.u8(1); w.sid(domainSID + "-500") },
			read:  func(r *ndr.Reader) []string { r.U8(); return []string{r.SID()} },
			want:  []string{domainSID + "-500"},
		},
		{
			name: "deferred referents are written depth first",
			write: func(w *ndrWriter) {
				w.construct(func() {
					if w.ptr(true) {
						w.deferRef(func() {
							w.u32(1)
							if w.ptr(true) {
								w.deferRef(func() { w.u32(2) })
							}
						})
					}
					if w.ptr(true) {
						w.deferRef(func() { w.u32(3) })
					}
					w.u64(4)
				})
			},
			read: func(r *ndr.Reader) []string {
				var out []string
				r.Construct(func() {
					if r.Ptr() {
						r.Defer(func() {
							out = append(out, itoa(r.U32()))
							if r.Ptr() {
								r.Defer(func() { out = append(out, itoa(r.U32())) })
							}
						})
					}
					if r.Ptr() {
						r.Defer(func() { out = append(out, itoa(r.U32())) })
					}
					out = append(out, itoa(uint32(r.U64())))
				})
				return out
			},
			want: []string{"4", "1", "2", "3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w ndrWriter
			tt.write(&w)
			r := ndr.NewReader(w.b, false)
			got := tt.read(r)
			if r.Err() != nil || r.Remaining() != 0 {
				t.Fatalf("reader: %v, %d bytes left of % x", r.Err(), r.Remaining(), w.b)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func TestGUID(t *testing.T) {
	const s = "367abb81-9844-35f1-ad32-98f038001003"
	if g := mustGUID(s); g != guid(smbrpc.MustUUID(s)) || g.String() != s {
		t.Fatalf("wire form % x, String %s", g[:], g)
	}
}

// smb2 frames body behind an SMB2 header and returns the message the way
// replay's framer hands it over.
func smb2(t *testing.T, cmd uint16, response bool, body []byte) (smbrpc.SMB2Header, []byte) {
	t.Helper()
	framed := nbFrame(append(smb2Header(cmd, statusOK, response, 7, 3, 0x4000, 1, 1), body...))
	typ, n, ok := smbrpc.NBHeader(framed)
	if !ok || typ != smbrpc.NBSessionMessage || n != len(framed)-4 {
		t.Fatalf("netbios header %x %d %v for %d bytes", typ, n, ok, len(framed))
	}
	var h smbrpc.SMB2Header
	var msg []byte
	if err := smbrpc.SplitSMB2(framed[4:], func(hh smbrpc.SMB2Header, m []byte) { h, msg = hh, m }); err != nil {
		t.Fatal(err)
	}
	if h.Command != cmd || h.MessageID != 7 || h.TreeID != 3 || h.SessionID != 0x4000 || h.Response() != response {
		t.Fatalf("header %+v", h)
	}
	return h, msg
}

func TestSMB2Messages(t *testing.T) {
	fid := fileID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	data := bytes.Repeat([]byte("MZ\x90\x00"), 300)
	tests := []struct {
		name  string
		cmd   uint16
		resp  bool
		body  []byte
		check func(t *testing.T, msg []byte)
	}{
		{"negotiate response", smbNegotiate, true, negotiateResp(guidOf("x"), DefaultStart, DefaultStart, spnegoInit(nil)),
			func(t *testing.T, msg []byte) {
				n, err := smbrpc.ParseSMB2NegotiateResp(msg)
				if err != nil || n.Dialect != dialect302 || !bytes.Equal(n.Security, spnegoInit(nil)) {
					t.Fatalf("%+v %v", n, err)
				}
			}},
		{"session setup request", smbSessionSetup, false, sessionSetupReq(spnegoInit(ntlmNegotiate())),
			func(t *testing.T, msg []byte) {
				blob, _, err := smbrpc.ParseSMB2SessionSetup(msg, false)
				if err != nil || smbrpc.NTLMType(smbrpc.FindNTLMSSP(blob)) != smbrpc.NTLMNegotiate {
					t.Fatalf("% x %v", blob, err)
				}
			}},
		{"session setup response", smbSessionSetup, true, sessionSetupResp([]byte{0xa1, 0}),
			func(t *testing.T, msg []byte) {
				blob, _, err := smbrpc.ParseSMB2SessionSetup(msg, true)
				if err != nil || !bytes.Equal(blob, []byte{0xa1, 0}) {
					t.Fatalf("% x %v", blob, err)
				}
			}},
		{"tree connect", smbTreeConnect, false, treeConnectReq(`\\WS-033\ADMIN$`),
			func(t *testing.T, msg []byte) {
				if p, err := smbrpc.ParseSMB2TreeConnect(msg); err != nil || p != `\\WS-033\ADMIN$` {
					t.Fatalf("%q %v", p, err)
				}
			}},
		{"tree connect response", smbTreeConnect, true, treeConnectResp(sharePipe, maxAccessIPC),
			func(t *testing.T, msg []byte) {
				if st, err := smbrpc.ParseSMB2TreeConnectResp(msg); err != nil || st != smbrpc.SharePipe {
					t.Fatalf("%d %v", st, err)
				}
			}},
		{"create", smbCreate, false, createReq("updater.exe", accessGenericRW, attrNormal, 0, dispOverwriteIf, optNonDirectory),
			func(t *testing.T, msg []byte) {
				c, err := smbrpc.ParseSMB2Create(msg)
				if err != nil || c.Name != "updater.exe" || c.DesiredAccess != accessGenericRW || c.Disposition != dispOverwriteIf || c.Options != optNonDirectory {
					t.Fatalf("%+v %v", c, err)
				}
			}},
		{"create response", smbCreate, true, createResp(actionCreated, DefaultStart, 123, attrNormal, fid),
			func(t *testing.T, msg []byte) {
				c, err := smbrpc.ParseSMB2CreateResp(msg)
				if err != nil || c.Action != actionCreated || c.EndOfFile != 123 || c.FileID != smbrpc.FileID(fid) {
					t.Fatalf("%+v %v", c, err)
				}
			}},
		{"close", smbClose, false, closeReq(fid),
			func(t *testing.T, msg []byte) {
				if f, err := smbrpc.ParseSMB2Close(msg); err != nil || f != smbrpc.FileID(fid) {
					t.Fatalf("%x %v", f, err)
				}
			}},
		{"write", smbWrite, false, writeReq(fid, 65536, data),
			func(t *testing.T, msg []byte) {
				w, err := smbrpc.ParseSMB2Write(msg)
				if err != nil || w.Offset != 65536 || w.FileID != smbrpc.FileID(fid) || !bytes.Equal(w.Data, data) || !w.Complete {
					t.Fatalf("%+v %v", w.Offset, err)
				}
			}},
		{"read", smbRead, false, readReq(fid, 512, smbMaxRead),
			func(t *testing.T, msg []byte) {
				q, err := smbrpc.ParseSMB2Read(msg)
				if err != nil || q.Offset != 512 || q.Length != smbMaxRead || q.FileID != smbrpc.FileID(fid) {
					t.Fatalf("%+v %v", q, err)
				}
			}},
		{"read response", smbRead, true, readResp(data),
			func(t *testing.T, msg []byte) {
				d, complete, err := smbrpc.ParseSMB2ReadResp(msg)
				if err != nil || !complete || !bytes.Equal(d, data) {
					t.Fatalf("%d bytes %v %v", len(d), complete, err)
				}
			}},
		{"ioctl", smbIoctl, false, ioctlReq(fsctlPipeTransceive, fid, data[:100], smbMaxRead),
			func(t *testing.T, msg []byte) {
				io, err := smbrpc.ParseSMB2Ioctl(msg, false)
				if err != nil || io.CtlCode != smbrpc.FsctlPipeTransceive || io.FileID != smbrpc.FileID(fid) || !bytes.Equal(io.Input, data[:100]) {
					t.Fatalf("%+v %v", io, err)
				}
			}},
		{"ioctl response", smbIoctl, true, ioctlResp(fsctlPipeTransceive, fid, data[:60]),
			func(t *testing.T, msg []byte) {
				io, err := smbrpc.ParseSMB2Ioctl(msg, true)
				if err != nil || !bytes.Equal(io.Output, data[:60]) || len(io.Input) != 0 {
					t.Fatalf("%+v %v", io, err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, msg := smb2(t, tt.cmd, tt.resp, tt.body)
			tt.check(t, msg)
		})
	}
}

// validDER walks a DER encoding and fails on any length that does not
// add up.
func validDER(t *testing.T, b []byte) {
	t.Helper()
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			t.Fatalf("der: %v in % x", err, b)
		}
		if v.IsCompound {
			validDER(t, v.Bytes)
		}
		b = rest
	}
}

func TestNTLMSSP(t *testing.T) {
	r := newRNG(1)
	srv := ntlmServer{nbDomain: "CORP", nbComputer: "DC01", dnsDomain: "corp.example", dnsComputer: "dc01.corp.example"}
	now := DefaultStart
	init := spnegoInit(ntlmNegotiate())
	chal := spnegoResp(negAcceptIncomplete, true, ntlmChallenge(srv, now, r), nil)
	auth := ntlmAuthenticate("CORP", "svc_backup", "ws-017", "cifs/dc01.corp.example", srv, now, r)
	final := spnegoResp(-1, false, auth, ntlmVerifier(0, r))
	for _, b := range [][]byte{init, chal, final, spnegoInit(nil), spnegoResp(negAcceptCompleted, false, nil, ntlmVerifier(0, r))} {
		validDER(t, b)
	}
	if typ := smbrpc.NTLMType(smbrpc.FindNTLMSSP(init)); typ != smbrpc.NTLMNegotiate {
		t.Errorf("init carries type %d", typ)
	}
	if typ := smbrpc.NTLMType(smbrpc.FindNTLMSSP(chal)); typ != smbrpc.NTLMChallenge {
		t.Errorf("challenge carries type %d", typ)
	}
	a, ok := smbrpc.ParseNTLMAuth(smbrpc.FindNTLMSSP(final))
	if !ok || a.Domain != "CORP" || a.User != "svc_backup" || a.Workstation != "WS-017" || a.Anonymous {
		t.Fatalf("authenticate decodes as %+v ok=%v", a, ok)
	}
	// The NTLMv2 response names the target and echoes the server's
	// information, which ends in MsvAvEOL.
	if !bytes.Contains(auth, utf16le("cifs/dc01.corp.example")) || !bytes.Contains(auth, utf16le("dc01.corp.example")) {
		t.Error("NTLMv2 response lacks target name or server information")
	}
}

func TestDCERPCPDUs(t *testing.T) {
	bind := rpcPDU(ptBind, pfcFirst|pfcLast, 1, bindBody(ifSvcctl, 0), nil, 4)
	p, err := smbrpc.ParsePDU(bind)
	if err != nil || p.Type != smbrpc.PTBind || len(p.Contexts) != 1 {
		t.Fatalf("bind %+v %v", p, err)
	}
	c := p.Contexts[0]
	if c.Interface != smbrpc.MustUUID("367abb81-9844-35f1-ad32-98f038001003") || c.Version != 2 || c.Syntaxes[0] != smbrpc.SyntaxNDR {
		t.Fatalf("context %+v", c)
	}
	ack := rpcPDU(ptBindAck, pfcFirst|pfcLast, 1, bindAckBody(`\PIPE\svcctl`, 0x1234), nil, 4)
	p, err = smbrpc.ParsePDU(ack)
	if err != nil || p.SecAddr != `\PIPE\svcctl` || !slices.Equal(p.Results, []uint16{0}) || p.Accepted[0] != smbrpc.SyntaxNDR {
		t.Fatalf("bind_ack %+v %v", p, err)
	}

	// A stub larger than a fragment, signed: the fragments reassemble to
	// the stub, flags and alloc hints as a receiver expects.
	r := newRNG(2)
	stub := r.bytes(3*rpcMaxFrag + 77)
	var seq uint32
	x := &rpcConn{r: r, auth: true}
	frags := rpcCallPDUs(ptRequest, 9, opDRSGetNCChanges, stub, x.verifier(&seq))
	if len(frags) != 4 || seq != 4 {
		t.Fatalf("%d fragments, %d signatures", len(frags), seq)
	}
	var got []byte
	for i, f := range frags {
		if _, n, ok := smbrpc.DCERPCHeader(f); !ok || n != len(f) || n > rpcMaxFrag {
			t.Fatalf("fragment %d header: %d bytes of %d", i, n, len(f))
		}
		p, err := smbrpc.ParsePDU(f)
		if err != nil || p.Opnum != opDRSGetNCChanges || p.CallID != 9 || p.First() != (i == 0) || p.Last() != (i == 3) {
			t.Fatalf("fragment %d: %+v %v", i, p, err)
		}
		if p.AuthType != authNTLM || p.AuthLevel != authIntegrity || len(p.AuthValue) != ntlmVerifierSz ||
			binary.LittleEndian.Uint32(p.AuthValue[12:]) != uint32(i) {
			t.Fatalf("fragment %d verifier %d/%d % x", i, p.AuthType, p.AuthLevel, p.AuthValue)
		}
		if int(p.AllocHint) != len(stub)-len(got) {
			t.Fatalf("fragment %d alloc hint %d, %d bytes left", i, p.AllocHint, len(stub)-len(got))
		}
		got = append(got, p.Stub...)
	}
	if !bytes.Equal(got, stub) {
		t.Fatal("reassembled stub differs")
	}

	srv := ntlmServer{nbDomain: "CORP", nbComputer: "DC01", dnsDomain: "corp.example", dnsComputer: "dc01.corp.example"}
	auth3 := rpcPDU(ptAuth3, pfcFirst|pfcLast, 1, []byte{0, 0, 0, 0}, &authTrailer{typ: authNTLM, level: authIntegrity,
		value: ntlmAuthenticate("CORP", "svc_backup", "WS-017", "", srv, DefaultStart, r)}, 4)
	p, err = smbrpc.ParsePDU(auth3)
	if err != nil || p.Type != smbrpc.PTAuth3 {
		t.Fatalf("auth3 %+v %v", p, err)
	}
	if a, ok := smbrpc.ParseNTLMAuth(p.AuthValue); !ok || a.User != "svc_backup" {
		t.Fatalf("auth3 account %+v %v", a, ok)
	}
}

// rpcCase is one call checked with rpcops: the fields it must decode to.
type rpcCase struct {
	name            string
	ifc             rpcIface
	opnum           uint16
	req, resp       []byte
	op, target, cmd string
	technique       string
	fields          map[string]string // name -> value that must be among the decoded fields
}

func decodeCases(t *testing.T, cases []rpcCase) {
	t.Helper()
	var s rpcops.Session // one association: handles flow from call to call
	for _, c := range cases {
		d := s.Decode(rpcops.Call{Interface: c.ifc.uuid, IfVersion: c.ifc.major, Opnum: c.opnum, Request: c.req, Response: c.resp})
		if d.Interface != c.ifc.name || d.Operation != c.op || d.Target != c.target || d.Command != c.cmd || d.Technique != c.technique || d.Status != 0 {
			t.Errorf("%s: decoded %s %s target %q command %q technique %q status %#x", c.name, d.Interface, d.Operation, d.Target, d.Command, d.Technique, d.Status)
		}
		have := map[string][]string{}
		for _, f := range d.Fields {
			have[f.Name] = append(have[f.Name], f.Value)
			if f.Name == "decode error" {
				t.Errorf("%s: %s", c.name, f.Value)
			}
		}
		for k, v := range c.fields {
			if !slices.Contains(have[k], v) {
				t.Errorf("%s: field %q = %q, want %q among them", c.name, k, have[k], v)
			}
		}
	}
}

func TestSvcctlStubs(t *testing.T) {
	r := newRNG(3)
	scm, svc := newHandle(r), newHandle(r)
	c := func(req, resp []byte) ([]byte, []byte) { return req, resp }
	var cs []rpcCase
	q, v := c(scmOpenSCManager("WS-033", scm))
	cs = append(cs, rpcCase{name: "OpenSCManagerW", ifc: ifSvcctl, opnum: opOpenSCManagerW, req: q, resp: v, op: "OpenSCManagerW", target: "WS-033",
		fields: map[string]string{"database": "ServicesActive", "access": "0x000f003f"}})
	q, v = c(scmCreateService(scm, serviceName, serviceDisp, `%SystemRoot%\updater.exe`, svc))
	cs = append(cs, rpcCase{name: "CreateServiceW", ifc: ifSvcctl, opnum: opCreateServiceW, req: q, resp: v, op: "CreateServiceW",
		target: serviceName, cmd: `%SystemRoot%\updater.exe`, technique: "T1569.002",
		fields: map[string]string{"display name": serviceDisp, "start type": "DEMAND_START", "service type": "WIN32_OWN_PROCESS"}})
	q, v = c(scmStartService(svc, 0))
	cs = append(cs, rpcCase{name: "StartServiceW", ifc: ifSvcctl, opnum: opStartServiceW, req: q, resp: v, op: "StartServiceW", target: serviceName, technique: "T1569.002"})
	q, v = c(scmDeleteService(svc))
	cs = append(cs, rpcCase{name: "DeleteService", ifc: ifSvcctl, opnum: opDeleteService, req: q, resp: v, op: "DeleteService", target: serviceName})
	q, v = c(scmCloseHandle(svc))
	cs = append(cs, rpcCase{name: "CloseServiceHandle", ifc: ifSvcctl, opnum: opCloseServiceHandle, req: q, resp: v, op: "CloseServiceHandle", target: serviceName})
	decodeCases(t, cs)
}

func TestTaskSchedulerStubs(t *testing.T) {
	xml := taskXML("powershell.exe", `-NoP -C "IEX 'a & b'"`, DefaultStart)
	q, v := tschRegisterTask(taskPath, xml)
	q2, v2 := tschRun(taskPath, guidOf("instance"))
	q3, v3 := tschDelete(taskPath)
	decodeCases(t, []rpcCase{
		{name: "SchRpcRegisterTask", ifc: ifTaskScheduler, opnum: opSchRpcRegisterTask, req: q, resp: v, op: "SchRpcRegisterTask",
			target: taskPath, cmd: `powershell.exe -NoP -C "IEX 'a & b'"`, technique: "T1053.005",
			fields: map[string]string{"principal": "S-1-5-18 (HighestAvailable)", "hidden": "true", "flags": "CREATE"}},
		{name: "SchRpcRun", ifc: ifTaskScheduler, opnum: opSchRpcRun, req: q2, resp: v2, op: "SchRpcRun", target: taskPath, technique: "T1053.005"},
		{name: "SchRpcDelete", ifc: ifTaskScheduler, opnum: opSchRpcDelete, req: q3, resp: v3, op: "SchRpcDelete", target: taskPath, technique: "T1053.005"},
	})
}

func TestSrvsvcStubs(t *testing.T) {
	q, v := srvShareEnum(`\\FS01`, fsShares)
	decodeCases(t, []rpcCase{{name: "NetrShareEnum", ifc: ifSrvsvc, opnum: opNetrShareEnum, req: q, resp: v, op: "NetrShareEnum",
		target: `\\FS01`, technique: "T1135",
		fields: map[string]string{"count": "8", "share": "Backup (disk, Nightly backups)", "level": "1"}}})
}

func TestSamrStubs(t *testing.T) {
	r := newRNG(4)
	srvH, domH, grpH := newHandle(r), newHandle(r), newHandle(r)
	users := newNetwork(DefaultStart, 10).users
	var cs []rpcCase
	add := func(name string, opnum uint16, q, v []byte, target, technique string, fields map[string]string) {
		cs = append(cs, rpcCase{name: name, ifc: ifSamr, opnum: opnum, req: q, resp: v, op: name, target: target, technique: technique, fields: fields})
	}
	q, v := samrConnect5(`\\dc01.corp.example`, srvH)
	add("Connect5", opSamrConnect5, q, v, `\\dc01.corp.example`, "", nil)
	q, v = samrLookupDomain(srvH, "CORP", domainSID)
	add("LookupDomainInSamServer", opSamrLookupDomain, q, v, "CORP", "T1087.002", map[string]string{"domain sid": domainSID})
	q, v = samrOpenDomain(srvH, domainSID, domH)
	add("OpenDomain", opSamrOpenDomain, q, v, "CORP", "", nil)
	q, v = samrEnumerateUsers(domH, users)
	add("EnumerateUsersInDomain", opSamrEnumerateUsers, q, v, "CORP", "T1087.002",
		map[string]string{"count": strconv.Itoa(len(users)), "user": "svc_backup (RID 1103)"})
	q, v = samrLookupNames(domH, []string{"Domain Admins"}, []uint32{512}, []uint32{sidTypeGroup})
	add("LookupNamesInDomain", opSamrLookupNamesInDomain, q, v, `CORP\Domain Admins`, "T1087.002", map[string]string{"rid": "Domain Admins = 512 group"})
	q, v = samrOpenGroup(domH, 512, grpH)
	add("OpenGroup", opSamrOpenGroup, q, v, `CORP\Domain Admins`, "", nil)
	q, v = samrGetMembers(grpH, []uint32{500, 1103})
	add("GetMembersInGroup", opSamrGetMembersInGroup, q, v, `CORP\Domain Admins`, "T1069.002", map[string]string{"count": "2"})
	q, v = samrLookupIds(domH, []ridName{{500, "Administrator"}, {1103, "svc_backup"}})
	add("LookupIdsInDomain", opSamrLookupIdsInDomain, q, v, "CORP", "T1087.002", map[string]string{"rid": "1103"})
	q, v = samrClose(grpH)
	add("CloseHandle", opSamrCloseHandle, q, v, `CORP\Domain Admins`, "", nil)
	decodeCases(t, cs)
}

func TestEndpointMapperAndDRS(t *testing.T) {
	dc := netip.MustParseAddr("10.20.0.10")
	q, v := epmMap(ifDrsuapi, drsPort, dc)
	// Both of the project's readers of a map response find the port.
	es := smbrpc.EPMTowers(v)
	if len(es) != 1 || es[0].Port != drsPort || es[0].Addr != dc || es[0].Interface != smbrpc.UUID(ifDrsuapi.uuid) {
		t.Fatalf("EPMTowers %+v", es)
	}
	eps := rpcops.EndpointsFromMap(v, false)
	if len(eps) != 1 || eps[0].Port != drsPort || eps[0].Protocol != "ncacn_ip_tcp" || eps[0].Host != dc {
		t.Fatalf("EndpointsFromMap %+v", eps)
	}
	r := newRNG(5)
	h := newHandle(r)
	dn := "CN=krbtgt,CN=Users," + domainDN
	sid := sidBytes(domainSID + "-502")
	bq, bv := drsBind(guidOf("site"), h, r)
	gq, gv := drsGetNCChanges(h, guidOf("dsa"), guidOf("inv"), dn, guidOf(dn), sid,
		[]drsAttr{{attSAMAccountName, utf16le("krbtgt")}, {attObjectSid, sid}, {attUnicodePwd, r.bytes(36)}}, 4096)
	uq, uv := drsUnbind(h)
	cs := []rpcCase{
		{name: "ept_map", ifc: ifEPM, opnum: opEptMap, req: q, resp: v, op: "ept_map", target: "drsuapi",
			fields: map[string]string{"endpoint": "ncacn_ip_tcp:10.20.0.10[49667]", "protocol": "ncacn_ip_tcp"}},
		{name: "DRSBind", ifc: ifDrsuapi, opnum: opDRSBind, req: bq, resp: bv, op: "DRSBind",
			fields: map[string]string{"client dsa": "{" + ntdsapiClient.String() + "}"}},
		// The reply is checked below: rpcops reads the reply's pNC before
		// the scalars that follow cNumObjects (a decoder bug), so only
		// the request goes through it here.
		{name: "DRSGetNCChanges", ifc: ifDrsuapi, opnum: opDRSGetNCChanges, req: gq, op: "DRSGetNCChanges", target: dn, technique: "T1003.006",
			fields: map[string]string{"version": "8", "extended op": "REPL_OBJ",
				"meaning": "single object replication (DCSync of one account)", "attributes": "partial attribute set (secrets asked for by attribute)"}},
		{name: "DRSUnbind", ifc: ifDrsuapi, opnum: opDRSUnbind, req: uq, resp: uv, op: "DRSUnbind"},
	}
	decodeCases(t, cs[:1])
	decodeCases(t, cs[1:])

	// The reply, walked field by field as MS-DRSR 4.1.10.2.11 lays out
	// DRS_MSG_GETCHGREPLY_V6.
	rd := ndr.NewReader(gv, false)
	if v, d := rd.U32(), rd.U32(); v != 6 || d != 6 {
		t.Fatalf("reply version %d/%d", v, d)
	}
	var nc, obj string
	var objects, ext, attrCount uint32
	var vals [][]byte
	dsName := func(dst *string) {
		n := rd.Count(2)
		rd.U32()
		sidLen := rd.U32()
		rd.UUID()
		rd.Bytes(28)
		if l := rd.U32(); int(l)+1 != n || sidLen != uint32(len(sid)) {
			t.Errorf("DSNAME length %d, conformance %d, sid %d", l, n, sidLen)
		}
		*dst = rd.UTF16(n)
	}
	rd.Construct(func() {
		rd.Align(8)
		rd.UUID()
		rd.UUID()
		if rd.Ptr() {
			rd.Defer(func() { dsName(&nc) })
		}
		for range 6 {
			rd.U64()
		}
		if rd.Ptr() {
			t.Error("up-to-dateness vector present")
		}
		rd.U32()
		rd.Ptr()
		ext, objects = rd.U32(), rd.U32()
		rd.U32()
		if rd.Ptr() {
			rd.Defer(func() { // REPLENTINFLIST
				rd.Ptr()
				if rd.Ptr() {
					rd.Defer(func() { dsName(&obj) })
				}
				rd.U32()
				attrCount = rd.U32()
				if rd.Ptr() {
					rd.Defer(func() {
						n := rd.Count(12)
						for range n {
							rd.U32()
							rd.U32()
							if rd.Ptr() {
								rd.Defer(func() {
									rd.Count(8)
									rd.U32()
									if rd.Ptr() {
										rd.Defer(func() { vals = append(vals, rd.Bytes(rd.Count(1))) })
									}
								})
							}
						}
					})
				}
				rd.U32()
				rd.Ptr()
				rd.Ptr()
			})
		}
		for range 4 {
			rd.U32()
		}
		rd.Ptr()
		rd.U32()
	})
	status := rd.U32()
	if rd.Err() != nil || rd.Remaining() != 0 || status != 0 {
		t.Fatalf("reply: %v, %d bytes left, status %d", rd.Err(), rd.Remaining(), status)
	}
	if nc != dn || obj != dn || objects != 1 || ext != exopErrSuccess || attrCount != 3 || len(vals) != 3 || !bytes.Equal(vals[1], sid) {
		t.Fatalf("reply: nc %q object %q, %d objects, ext %d, %d attributes, values %d", nc, obj, objects, ext, attrCount, len(vals))
	}
	// rpcops still counts the objects of the reply.
	d := rpcops.Decode(rpcops.Call{Interface: ifDrsuapi.uuid, Opnum: opDRSGetNCChanges, Request: gq, Response: gv})
	if !slices.Contains(d.Fields, rpcops.Field{Name: "objects", Value: "1"}) {
		t.Errorf("rpcops reply fields %v", d.Fields)
	}
}

// TestTCPConn checks a conversation packet by packet: checksums, sequence
// and acknowledgement numbers, and that each direction's bytes reassemble
// to what was sent.
func TestTCPConn(t *testing.T) {
	var out []packet
	r := newRNG(6)
	cli, srv := inside("10.20.1.17", 128), outside(netip.MustParseAddr("203.0.113.77"), 49)
	c := newTCP(&out, r, DefaultStart, cli, srv, 50000, 443, 20*time.Millisecond, wanRate)
	sent := [2][]byte{}
	c.handshake()
	for i, n := range []int{517, 4000, 60, 60, 1460, 2921, 0} {
		if n == 0 {
			c.wait(time.Second)
			continue
		}
		d := r.bytes(n)
		dir := i % 2
		if i == 3 {
			dir = 0 // two sends in a row from the client
		}
		c.send(dir, d)
		sent[dir] = append(sent[dir], d...)
		c.turn(time.Millisecond)
	}
	c.close(0)
	slices.SortStableFunc(out, func(a, b packet) int { return a.t.Compare(b.t) })

	got := checkTCP(t, out, cli.addr)
	for d := range 2 {
		if !bytes.Equal(got[d], sent[d]) {
			t.Errorf("direction %d: %d bytes reassembled, %d sent", d, len(got[d]), len(sent[d]))
		}
	}
}

// checkTCP verifies one TCP connection's packets (client cli) and returns
// the bytes of each direction in sequence order.
func checkTCP(t *testing.T, pkts []packet, cli netip.Addr) [2][]byte {
	t.Helper()
	var data [2][]byte
	var isn, next, lastAck [2]uint32
	var fin [2]bool
	for i, pk := range pkts {
		if !checksumsOK(pk.data) {
			t.Fatalf("packet %d: bad checksum", i)
		}
		var h pkthdr.Packet
		if !pkthdr.Parse(pkthdr.LinkEthernet, pk.data, &h) {
			t.Fatalf("packet %d does not parse", i)
		}
		d := 0
		if h.Src != cli {
			d = 1
		}
		pl := pk.data[h.Payload : h.Payload+h.PayloadN]
		switch {
		case i == 0 || i == 1:
			if h.TCPFlags&tcpSYN == 0 {
				t.Fatalf("packet %d is no SYN", i)
			}
			isn[d], next[d] = h.TCPSeq, h.TCPSeq+1
			continue
		case h.TCPSeq != next[d]:
			t.Fatalf("packet %d: seq %d, want %d", i, h.TCPSeq-isn[d], next[d]-isn[d])
		}
		if lastAck[d] == 0 {
			lastAck[d] = isn[1-d] + 1
		}
		if h.TCPFlags&tcpACK == 0 || seqLess(next[1-d], h.TCPAck) || seqLess(h.TCPAck, lastAck[d]) {
			t.Fatalf("packet %d: ack %d with %d sent by the peer, %d acknowledged before", i, h.TCPAck-isn[1-d], next[1-d]-isn[1-d], lastAck[d]-isn[1-d])
		}
		lastAck[d] = h.TCPAck
		if fin[d] && len(pl) > 0 {
			t.Fatalf("packet %d: data after FIN", i)
		}
		data[d] = append(data[d], pl...)
		next[d] += uint32(len(pl))
		if h.TCPFlags&tcpFIN != 0 {
			fin[d] = true
			next[d]++
		}
	}
	if !fin[0] || !fin[1] {
		t.Fatal("connection not closed both ways")
	}
	return data
}

func seqLess(a, b uint32) bool { return int32(a-b) < 0 }

// checksumsOK recomputes the IPv4 header and TCP/UDP checksums of an
// Ethernet frame: a correct checksum field sums to 0xffff.
func checksumsOK(f []byte) bool {
	if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return false
	}
	ip := f[14:34]
	if fold(sum16(ip, 0)) != 0xffff {
		return false
	}
	n := int(binary.BigEndian.Uint16(ip[2:])) - 20
	if 34+n != len(f) {
		return false
	}
	l4 := f[34:]
	ps := sum16(ip[12:20], uint32(ip[9])+uint32(n))
	if ip[9] == 17 && binary.BigEndian.Uint16(l4[6:]) == 0 {
		return false // we always fill the UDP checksum
	}
	return fold(sum16(l4, ps)) == 0xffff
}

func TestApps(t *testing.T) {
	r := newRNG(7)
	for _, resume := range []bool{false, true} {
		hello := clientHello("cdn-sync.example.net", resume, r)
		name, res := flow.TLSServerName(hello)
		if name != "cdn-sync.example.net" || res != 2 {
			t.Errorf("resume=%v: SNI %q (%d)", resume, name, res)
		}
		checkRecords(t, hello)
		checkRecords(t, serverFlight(hello, resume, r))
	}
	checkRecords(t, tlsData(40000, r))
	checkRecords(t, tlsClientFinish(r))

	var m flow.DNSMessage
	a := netip.MustParseAddr("203.0.113.77")
	if !flow.ParseDNS(dnsQuery(7, "cdn-sync.example.net"), &m) || m.Response || m.Name != "cdn-sync.example.net" {
		t.Errorf("query decodes as %+v", m)
	}
	m = flow.DNSMessage{}
	if !flow.ParseDNS(dnsAnswer(7, "cdn-sync.example.net", 300, a), &m) || !m.Response || !slices.Equal(m.Answers, []netip.Addr{a}) {
		t.Errorf("answer decodes as %+v", m)
	}
	var out []packet
	c := newTCP(&out, r, DefaultStart, inside("10.20.1.11", 128), outside(a, 50), 50001, 80, 10*time.Millisecond, wanRate)
	httpSession(c, "www.news-daily.example", "/index.html", 5000, time.Millisecond, r)
	got := checkTCP(t, out, netip.MustParseAddr("10.20.1.11"))
	if host, res := flow.HTTPHost(got[0]); host != "www.news-daily.example" || res != 2 {
		t.Errorf("HTTP host %q (%d)", host, res)
	}
	hdr, body, ok := strings.Cut(string(got[1]), "\r\n\r\n")
	if !ok || !strings.HasPrefix(hdr, "HTTP/1.1 200 OK\r\n") || !strings.Contains(hdr, "\r\nContent-Length: 5000\r\n") || len(body) != 5000 {
		t.Errorf("HTTP response %q, %d bytes of body", hdr, len(body))
	}
}

// checkRecords checks that b is a whole number of TLS records.
func checkRecords(t *testing.T, b []byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 5 || b[1] != 3 {
			t.Fatalf("bad record header % x", b[:min(len(b), 5)])
		}
		n := int(binary.BigEndian.Uint16(b[3:]))
		if n > tlsMaxRecord || 5+n > len(b) {
			t.Fatalf("record of %d bytes with %d left", n, len(b)-5)
		}
		b = b[5+n:]
	}
}
