package replay

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// smbClient writes one client's SMB2 session to a file server, request
// and response at a time, for the output-link tests.
type smbClient struct {
	f    *tcpFlow
	msg  uint64
	tree uint32
	fid  byte
}

func newSMBClient(cli, srv string, at time.Time) *smbClient {
	c := &smbClient{f: newFlow(cli, srv+":445", at), tree: 1}
	c.send(smbrpc.SMB2SessionSetup, 0, sessionSetup(ntlmAuth("DOM", "mallory", "KALI")), join(le16(9), le16(0), le16(72), le16(0)))
	return c
}

func (c *smbClient) send(cmd uint16, tree uint32, req, resp []byte) {
	c.msg++
	c.f.send(true, nb(smb2(cmd, false, 0, c.msg, tree, 0x21, req)), 1460)
	c.f.send(false, nb(smb2(cmd, true, 0, c.msg, c.tree, 0x21, resp)), 1460)
}

// file opens share\name with the CREATE options given, reads or writes
// data, sets the delete disposition when asked, and closes it.
func (c *smbClient) file(share, name string, options uint32, read, wrote []byte, dispose bool) {
	c.tree++
	c.fid++
	fid := smbrpc.FileID{1: c.fid}
	c.send(smbrpc.SMB2TreeConnect, 0, treeConnect(`\\srv\`+share), treeConnectResp(smbrpc.ShareDisk))
	n := u16le(name)
	req := join(le16(57), []byte{0, 0}, le32(2), le64(0), le64(0), le32(0x12019f), le32(0x80), le32(7), le32(3), le32(options),
		le16(120), le16(uint16(len(n))), le32(0), le32(0), n)
	c.send(smbrpc.SMB2Create, c.tree, req, createResp(fid))
	if read != nil {
		c.send(smbrpc.SMB2Read, c.tree, smb2ReadReq(fid, 0, uint32(len(read))), smb2ReadResp(read))
	}
	if wrote != nil {
		c.send(smbrpc.SMB2Write, c.tree, write(fid, 0, wrote), join(le16(17), le16(0), le32(uint32(len(wrote))), le32(0), le16(0), le16(0)))
	}
	if dispose {
		// MS-SMB2 2.2.39 SET_INFO: FILE info, FileDispositionInformation
		// (MS-FSCC 2.4.11) with DeletePending set.
		c.send(smbrpc.SMB2SetInfo, c.tree, join(le16(33), []byte{1, 13}, le32(1), le16(64+32), le16(0), le32(0), fid[:], []byte{1}), le16(2))
	}
	c.send(smbrpc.SMB2Close, c.tree, closeReq(fid), join(le16(60), make([]byte, 58)))
}

// smb1Delete deletes share\name over SMB1 on a new connection: opened
// with FILE_DELETE_ON_CLOSE and closed (MS-SMB 2.2.4.9.1), or by
// SMB_COM_DELETE (MS-CIFS 2.2.4.7) when byName.
func smb1Delete(cli, srv, share, name string, byName bool) func(time.Time) []Packet {
	return func(at time.Time) []Packet {
		f := newFlow(cli, srv+":445", at)
		const tid, uid = 9, 0x800
		var mid uint16
		send := func(cmd byte, words, data, rwords []byte) {
			mid++
			f.send(true, nb(smb1Msg(cmd, false, 0, tid, uid, mid, words, data)), 1460)
			f.send(false, nb(smb1Msg(cmd, true, 0, tid, uid, mid, rwords, nil)), 1460)
		}
		send(smbrpc.SMB1TreeConnect, join([]byte{0xff, 0}, le16(0), le16(0), le16(1)),
			join([]byte{0}, u16le(`\\SRV\`+share+"\x00"), []byte("?????\x00")), join([]byte{0xff, 0}, le16(0), le16(0)))
		n := u16le(name + "\x00")
		if byName {
			send(smbrpc.SMB1Delete, le16(6), join([]byte{4}, n), nil)
			return f.pkts
		}
		const fid = 0x4002
		words := join([]byte{0xff, 0}, le16(0), []byte{0}, le16(uint16(len(n))), le32(0), le32(0), le32(0x10000), le64(0),
			le32(0), le32(7), le32(1), le32(smbrpc.FileDeleteOnClose), le32(2), []byte{0})
		rw := join([]byte{0xff, 0}, le16(0), []byte{0}, le16(fid), le32(1), make([]byte, 32), le32(0x80), le64(0), le64(0), le16(0), le16(0), []byte{0})
		send(smbrpc.SMB1NTCreate, words, join([]byte{0}, n), rw)
		send(smbrpc.SMB1Close, join(le16(fid), le32(0)), nil, nil)
		return f.pkts
	}
}

// TestOutputLinkEnds: a file a command redirected into is that command's
// output only until what the link describes ends: the file deleted
// (delete-on-close, or the delete disposition set), written again by
// another than the command, or redirected into by a later command, which
// then owns it. No time window is assumed: a read an hour later of a file
// nothing touched is still the output.
func TestOutputLinkEnds(t *testing.T) {
	const (
		admin  = "10.1.0.5"
		target = "10.1.0.9"
		far    = "10.1.0.7"
		cmd1   = `cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__out 2>&1`
		cmd2   = `cmd.exe /Q /c ipconfig 1> \\127.0.0.1\ADMIN$\__out 2>&1`
		remote = `cmd.exe /Q /c hostname 1> \\10.1.0.7\C$\far.txt 2>&1`
	)
	type step struct {
		command string                     // a command run by admin on target
		smb     func(t time.Time) []Packet // packets of file access
	}
	runner := func(cli, srv string, fn func(c *smbClient)) func(time.Time) []Packet {
		return func(at time.Time) []Packet {
			c := newSMBClient(cli+":50100", srv, at)
			fn(c)
			return c.f.pkts
		}
	}
	read := runner(admin, target, func(c *smbClient) { c.file("ADMIN$", `__out`, 0, []byte("corp\\mallory\r\n"), nil, false) })
	const deleteOnClose = 0x1000
	for _, tc := range []struct {
		name  string
		steps []step
		want  string // the command the last read is the output of, "" for none
		reads int    // reads linked in all
	}{
		{"read back", []step{{command: cmd1}, {smb: read}}, cmd1, 1},
		{"read an hour later", []step{{command: cmd1}, {smb: func(at time.Time) []Packet { return read(at.Add(time.Hour)) }}}, cmd1, 1},
		{"read, then read again", []step{{command: cmd1}, {smb: read}, {smb: read}}, cmd1, 2},
		{"deleted on close", []step{{command: cmd1}, {smb: read},
			{smb: runner(admin, target, func(c *smbClient) { c.file("C$", `Windows\__out`, deleteOnClose, nil, nil, false) })}, {smb: read}}, "", 1},
		{"deleted on close over SMB1", []step{{command: cmd1}, {smb: read},
			{smb: smb1Delete(admin+":50101", target, "ADMIN$", `__out`, false)}, {smb: read}}, "", 1},
		{"deleted by name over SMB1", []step{{command: cmd1}, {smb: read},
			{smb: smb1Delete(admin+":50101", target, "C$", `\Windows\__out`, true)}, {smb: read}}, "", 1},
		{"delete disposition set", []step{{command: cmd1},
			{smb: runner(admin, target, func(c *smbClient) { c.file("ADMIN$", `__out`, 0, nil, nil, true) })}, {smb: read}}, "", 0},
		{"read and deleted through one handle", []step{{command: cmd1},
			{smb: runner(admin, target, func(c *smbClient) { c.file("ADMIN$", `__out`, deleteOnClose, []byte("x\r\n"), nil, false) })}, {smb: read}}, "", 1},
		{"written again over SMB", []step{{command: cmd1},
			{smb: runner("10.1.0.6", target, func(c *smbClient) { c.file("ADMIN$", `__out`, 0, nil, []byte("other\r\n"), false) })}, {smb: read}}, "", 0},
		{"redirected into by a later command", []step{{command: cmd1}, {command: cmd2}, {smb: read}}, cmd2, 1},
		{"the target writes its output to another host", []step{{command: remote},
			{smb: runner(target, far, func(c *smbClient) { c.file("C$", `far.txt`, 0, nil, []byte("srv\r\n"), false) })},
			{smb: runner(admin, far, func(c *smbClient) { c.file("C$", `far.txt`, 0, []byte("srv\r\n"), nil, false) })}}, remote, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ops []Operation
			p := New(Config{}, func(o Operation) { ops = append(ops, o) })
			at := t0
			for _, s := range tc.steps {
				at = at.Add(time.Second)
				if s.command != "" {
					p.out(Operation{Time: at, Kind: "rpc", Src: netip.MustParseAddr(admin), Dst: netip.MustParseAddr(target),
						Interface: "IWbemServices", Operation: "ExecMethod", Command: s.command, Technique: "T1047", Phase: "execution"})
					continue
				}
				pkts := s.smb(at)
				for _, pk := range pkts {
					p.Packet(pk)
				}
				at = pkts[len(pkts)-1].Timestamp
			}
			p.Flush()
			var last *Operation
			linked := 0
			for i := range ops {
				if ops[i].Operation == "read command output" {
					linked++
				}
				if ops[i].Kind == "file" && ops[i].Src.String() == admin && ops[i].Size > 0 && ops[i].Operation != "write file" {
					last = &ops[i]
				}
			}
			if last == nil {
				t.Fatalf("no read: %+v", ops)
			}
			if got := last.Field("output of"); got != tc.want {
				t.Errorf("last read (%s) is the output of %q, want %q", last.Operation, got, tc.want)
			}
			if linked != tc.reads {
				t.Errorf("%d reads linked, want %d", linked, tc.reads)
			}
		})
	}
}
