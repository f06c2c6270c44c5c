package replay

import (
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

func smb2ReadReq(fid smbrpc.FileID, off uint64, n uint32) []byte {
	return join(le16(49), []byte{0, 0}, le32(n), le64(off), fid[:], le32(0), le32(0), le32(0), le16(0), le16(0), []byte{0})
}

// TestFileKindsInPipeline runs SMB2 sessions that read an LSASS dump and a
// command's output back over C$ and write a Group Policy file to SYSVOL,
// with a wmiexec-style command naming the output file, and checks what the
// operations say.
func TestFileKindsInPipeline(t *testing.T) {
	f := newFlow("10.0.0.1:50001", "10.0.0.2:445", t0)
	sess := uint64(0x21)
	msg := uint64(1)
	var tree uint32 = 5
	send := func(cmd uint16, reqTree uint32, req, resp []byte) {
		f.send(true, nb(smb2(cmd, false, 0, msg, reqTree, sess, req)), 1460)
		f.send(false, nb(smb2(cmd, true, 0, msg, tree, sess, resp)), 1460)
		msg++
	}
	send(smbrpc.SMB2SessionSetup, 0, sessionSetup(ntlmAuth("DOM", "mallory", "KALI")), join(le16(9), le16(0), le16(72), le16(0)))
	readFile := func(share, name string, fid smbrpc.FileID, data []byte) {
		send(smbrpc.SMB2TreeConnect, 0, treeConnect(`\\srv\`+share), treeConnectResp(smbrpc.ShareDisk))
		send(smbrpc.SMB2Create, tree, create(name), createResp(fid))
		send(smbrpc.SMB2Read, tree, smb2ReadReq(fid, 0, uint32(len(data))), smb2ReadResp(data))
		send(smbrpc.SMB2Close, tree, closeReq(fid), join(le16(60), make([]byte, 58)))
		tree++
	}
	fidDump := smbrpc.FileID{1: 1}
	fidOut := smbrpc.FileID{1: 2}
	readFile("C$", `Windows\Temp\lsass.dmp`, fidDump, []byte("MDMP\x93\xa7\x00\x00"))
	readFile("ADMIN$", `Temp\a81kx0.dmp`, smbrpc.FileID{1: 3}, []byte("MDMP\x93\xa7\x00\x00"))
	readFile("SYSVOL", `corp.local\Policies\{31B2F340-016D-11D2-945F-00C04FB984F9}\gpt.ini`, smbrpc.FileID{1: 4}, []byte("[General]\r\nVersion=3\r\n"))
	ops, _ := runPackets(t, f.pkts, Config{})
	var reads []Operation
	for _, op := range ops {
		if op.Kind == "file" {
			reads = append(reads, op)
		}
	}
	if len(reads) != 3 {
		t.Fatalf("%d file operations, want 3: %+v", len(reads), reads)
	}
	for i, want := range []struct{ tech, kind string }{
		{"T1003.001", "LSASS memory dump"},
		{"T1003.001", "memory dump read over an admin share"},
		{"T1039", ""}, // group policy processing reads gpt.ini: an ordinary read
	} {
		if r := reads[i]; r.Technique != want.tech || r.Field("file kind") != want.kind {
			t.Errorf("read %d (%s): technique %q kind %q, want %q %q", i, r.Target, r.Technique, r.Field("file kind"), want.tech, want.kind)
		}
	}

	// A command that redirects into ADMIN$ and the read of that file over
	// C$ (the same file: C:\Windows\__123.4) is that command's output.
	var got []Operation
	p := New(Config{}, func(o Operation) { got = append(got, o) })
	p.out(Operation{Kind: "rpc", Dst: f.srv.Addr(), Interface: "IWbemServices", Operation: "ExecMethod",
		Command: `cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__123.4 2>&1`, Technique: "T1047", Phase: "execution"})
	g := newFlow("10.0.0.1:50002", "10.0.0.2:445", t0)
	f = g
	msg = 1
	send(smbrpc.SMB2SessionSetup, 0, sessionSetup(ntlmAuth("DOM", "mallory", "KALI")), join(le16(9), le16(0), le16(72), le16(0)))
	readFile("C$", `Windows\__123.4`, fidOut, []byte("dom\\mallory\r\n"))
	for _, pk := range g.pkts {
		p.Packet(pk)
	}
	p.Flush()
	var out *Operation
	for i := range got {
		if got[i].Kind == "file" {
			out = &got[i]
		}
	}
	if out == nil || out.Operation != "read command output" || out.Technique != "T1047" || out.Phase != "execution" ||
		out.Field("output") != `dom\mallory` || !strings.Contains(out.Field("output of"), "whoami") {
		t.Fatalf("output read: %+v", out)
	}
}
