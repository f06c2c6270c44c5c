package demogen

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// norm is what a string becomes after a UTF-16 round trip: invalid UTF-8
// turns into U+FFFD rune by rune, and readers stop at a NUL.
func norm(s string) string {
	s = string([]rune(s))
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return s
}

// FuzzEncoders checks the encoders against the project's decoders on
// arbitrary names, paths, command lines and stub sizes: what is encoded
// decodes to itself.
func FuzzEncoders(f *testing.F) {
	f.Add("svc_backup", `%SystemRoot%\updater.exe`, uint16(4000))
	f.Add(`\\WS-033\ADMIN$`, `%COMSPEC% /Q /c echo whoami /all ^> \\127.0.0.1\C$\__output 2^>^&1`, uint16(0))
	f.Add("Zürich☃", "𝄞\x00tail", uint16(12841))
	f.Add("\xff\xfe", "", uint16(1))
	f.Fuzz(func(t *testing.T, a, b string, n uint16) {
		if utf8.RuneCountInString(a) > 2000 || utf8.RuneCountInString(b) > 2000 {
			t.Skip("longer than SMB2 and NDR names get")
		}
		var w ndrWriter
		w.wstring(a)
		w.construct(func() { w.unicodeString(b) })
		r := ndr.NewReader(w.b, false)
		var gotB string
		gotA := r.WString()
		r.Construct(func() { r.UnicodeString(&gotB) })
		if r.Err() != nil || gotA != norm(a) || gotB != norm(b) {
			t.Fatalf("ndr: %q %q, %v", gotA, gotB, r.Err())
		}

		_, msg := smb2(t, smbTreeConnect, false, treeConnectReq(a))
		if p, err := smbrpc.ParseSMB2TreeConnect(msg); err != nil || p != norm(a) {
			t.Fatalf("tree connect %q, %v", p, err)
		}
		_, msg = smb2(t, smbCreate, false, createReq(b, accessGenericRW, 0, 0, dispOpen, 0))
		if c, err := smbrpc.ParseSMB2Create(msg); err != nil || c.Name != norm(b) {
			t.Fatalf("create %q, %v", c.Name, err)
		}

		rg := newRNG(uint64(n))
		if norm(a) != "" && norm(b) != "" {
			srv := ntlmServer{nbDomain: "CORP", nbComputer: "DC01", dnsDomain: "corp.example", dnsComputer: "dc01.corp.example"}
			auth, ok := smbrpc.ParseNTLMAuth(smbrpc.FindNTLMSSP(spnegoResp(-1, false, ntlmAuthenticate(a, b, "WS-1", "cifs/x", srv, DefaultStart, rg), nil)))
			if !ok || auth.Domain != norm(a) || auth.User != norm(b) {
				t.Fatalf("ntlm %+v %v", auth, ok)
			}
			q, v := scmCreateService(newHandle(rg), a, "", b, newHandle(rg))
			d := rpcops.Decode(rpcops.Call{Interface: ifSvcctl.uuid, IfVersion: 2, Opnum: opCreateServiceW, Request: q, Response: v})
			if d.Target != norm(a) || d.Command != norm(b) {
				t.Fatalf("CreateServiceW %q %q", d.Target, d.Command)
			}
		}

		stub := rg.bytes(int(n))
		var seq uint32
		x := &rpcConn{r: rg, auth: n%2 == 0}
		var got []byte
		for _, pdu := range rpcCallPDUs(ptResponse, 3, 0, stub, x.verifier(&seq)) {
			p, err := smbrpc.ParsePDU(pdu)
			if err != nil || len(pdu) > rpcMaxFrag {
				t.Fatalf("pdu of %d bytes: %v", len(pdu), err)
			}
			got = append(got, p.Stub...)
		}
		if !bytes.Equal(got, stub) {
			t.Fatalf("stub of %d bytes reassembles to %d", len(stub), len(got))
		}
	})
}
