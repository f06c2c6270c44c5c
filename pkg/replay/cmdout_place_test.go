package replay

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// srvsvcShareInfo is NetrShareGetInfo (srvsvc opnum 16) at level 2 over
// the srvsvc pipe, as MS-SRVS 3.1.4.10 and 2.2.4.24 lay it out: the
// server's answer gives the share's local path.
func (c *smbClient) srvsvcShareInfo(share, path string) {
	srvsvc := smbrpc.MustUUID("4b324fc8-1670-01d3-1278-5a47bf6ee188")
	c.tree++
	c.fid++
	fid := smbrpc.FileID{1: c.fid}
	c.send(smbrpc.SMB2TreeConnect, 0, treeConnect(`\\srv\IPC$`), treeConnectResp(smbrpc.SharePipe))
	c.send(smbrpc.SMB2Create, c.tree, create("srvsvc"), createResp(fid))
	c.send(smbrpc.SMB2Write, c.tree, write(fid, 0, rpcBindWindows(1, srvsvc, 3)), join(le16(17), le16(0), le32(72), le32(0), le16(0), le16(0)))
	c.send(smbrpc.SMB2Read, c.tree, smb2Read(fid), smb2ReadResp(rpcBindAckWindows(1, false)))
	req := join(le32(0x20000), ndrWStr(`\\srv`), ndrWStr(share), le32(2))
	resp := join(le32(2), le32(0x20000), // level, SHARE_INFO_2 pointer
		le32(0x20004), le32(0x80000000), le32(0x20008), le32(0), le32(0xffffffff), le32(1), le32(0x2000c), le32(0),
		ndrWStr(share), ndrWStr("Remote Admin"), ndrWStr(path), le32(0))
	c.send(smbrpc.SMB2Ioctl, c.tree, ioctl(fid, rpcRequestCtx(2, 0, 16, req)), ioctlResp(fid, rpcResponse(2, resp)))
	c.send(smbrpc.SMB2Close, c.tree, closeReq(fid), join(le16(60), make([]byte, 58)))
}

// TestOutputPlaces: where a redirect target lies is resolved from what
// the capture shows (a share's path from its host's srvsvc answer) or,
// for environment variables, from Windows' defaults, which the link then
// says it assumed; a variable whose value neither gives is not linked.
func TestOutputPlaces(t *testing.T) {
	const (
		admin  = "10.1.0.5"
		target = "10.1.0.9"
	)
	svc := func(cmd string) Operation {
		return Operation{Kind: "rpc", Interface: "svcctl", Operation: "CreateServiceW", Command: cmd, Technique: "T1543.003", Phase: "persistence"}
	}
	wmi := func(user, cmd string) Operation {
		return Operation{Kind: "rpc", Interface: "IWbemServices", Operation: "ExecMethod", User: user, Command: cmd, Technique: "T1047", Phase: "execution"}
	}
	type file struct{ share, name string }
	for _, tc := range []struct {
		name    string
		shares  map[string]string // srvsvc answers seen before
		cmd     Operation
		read    file
		linked  bool
		assumed string // a part of the "path assumed" field; "" for none
	}{
		{"wmiexec through ADMIN$", nil, wmi("bob", `cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__1 2>&1`), file{"ADMIN$", `__1`}, true, ""},
		{"%windir% read through ADMIN$", nil, wmi("bob", `cmd /c ipconfig > %windir%\Temp\a.tmp`), file{"ADMIN$", `Temp\a.tmp`}, true, ""},
		{"C:\\Windows written out, read through ADMIN$", nil, wmi("bob", `cmd /c ipconfig > C:\Windows\Temp\a.tmp`), file{"ADMIN$", `Temp\a.tmp`}, true, `taken as C:\Windows`},
		{"ADMIN$ read through C$", nil, wmi("bob", `cmd /c ipconfig > \\127.0.0.1\ADMIN$\Temp\a.tmp`), file{"C$", `Windows\Temp\a.tmp`}, true, `taken as C:\Windows`},
		{"ADMIN$ on D:, read through C$", map[string]string{"ADMIN$": `D:\WINDOWS`}, wmi("bob", `cmd /c ipconfig > \\127.0.0.1\ADMIN$\Temp\a.tmp`), file{"C$", `Windows\Temp\a.tmp`}, false, ""},
		{"ADMIN$ on D:, read through D$", map[string]string{"ADMIN$": `D:\WINDOWS`}, wmi("bob", `cmd /c ipconfig > %SystemRoot%\Temp\a.tmp`), file{"D$", `Windows\Temp\a.tmp`}, true, ""},
		{"a share's path from srvsvc", map[string]string{"DATA": `D:\Shares\Data`}, wmi("bob", `cmd /c dir > D:\Shares\Data\o.txt`), file{"data", `o.txt`}, true, ""},
		{"a share's path unseen", nil, wmi("bob", `cmd /c dir > D:\Shares\Data\o.txt`), file{"data", `o.txt`}, false, ""},
		{"a service's %TEMP%", nil, svc(`%COMSPEC% /Q /c whoami > %TEMP%\o.txt`), file{"ADMIN$", `Temp\o.txt`}, true, `%TEMP% taken as %SystemRoot%\temp`},
		{"a user's %TEMP%", nil, wmi("Bob", `cmd /c whoami > %TEMP%\o.txt`), file{"C$", `Users\bob\AppData\Local\Temp\o.txt`}, true, `%TEMP% taken as C:\users\bob\appdata\local\temp`},
		{"%TEMP% of an unknown account", nil, wmi("", `cmd /c whoami > %TEMP%\o.txt`), file{"C$", `Users\bob\AppData\Local\Temp\o.txt`}, false, ""},
		{"%ProgramData%", nil, wmi("", `cmd /c whoami > %ProgramData%\o.txt`), file{"C$", `ProgramData\o.txt`}, true, `%PROGRAMDATA% taken as C:\programdata`},
		{"an unknown variable", nil, wmi("bob", `cmd /c whoami > %OUT%\o.txt`), file{"C$", `o.txt`}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ops []Operation
			p := New(Config{}, func(o Operation) { ops = append(ops, o) })
			at := t0
			feed := func(c *smbClient) {
				for _, pk := range c.f.pkts {
					p.Packet(pk)
				}
				at = c.f.t.Add(time.Second)
			}
			for share, path := range tc.shares {
				c := newSMBClient(admin+":50200", target, at)
				c.srvsvcShareInfo(share, path)
				feed(c)
			}
			op := tc.cmd
			op.Time, op.Src, op.Dst = at, netip.MustParseAddr(admin), netip.MustParseAddr(target)
			p.out(op)
			c := newSMBClient(admin+":50201", target, at.Add(time.Second))
			c.file(tc.read.share, tc.read.name, 0, []byte("corp\\bob\r\n"), nil, false)
			feed(c)
			p.Flush()
			var read *Operation
			for i := range ops {
				if ops[i].Kind == "file" {
					read = &ops[i]
				}
				if ops[i].Interface == "srvsvc" && ops[i].Field("info") == "" {
					t.Errorf("srvsvc answer not decoded: %+v", ops[i])
				}
			}
			if read == nil {
				t.Fatalf("no read: %+v", ops)
			}
			if linked := read.Operation == "read command output"; linked != tc.linked {
				t.Fatalf("linked %v, want %v: %+v", linked, tc.linked, read)
			}
			got := read.Field("path assumed")
			if tc.assumed == "" && got != "" || tc.assumed != "" && !strings.Contains(got, tc.assumed) {
				t.Errorf("path assumed %q, want %q in it", got, tc.assumed)
			}
		})
	}
}

// TestSrvsvcSharePathTshark: the NetrShareGetInfo answer the output-place
// tests build is read by tshark as a share of that path, and the path
// replay learns for the host is tshark's.
func TestSrvsvcSharePathTshark(t *testing.T) {
	testenv.Tool(t, "tshark")
	c := newSMBClient("10.1.0.5:50300", "10.1.0.9", t0)
	c.srvsvcShareInfo("ADMIN$", `D:\WINDOWS`)
	file := filepath.Join(t.TempDir(), "srvsvc.pcap")
	writePcap(t, file, c.f.pkts)
	rows := tsharkFields(t, file, "srvsvc.opnum == 16 && dcerpc.pkt_type == 2", "srvsvc.srvsvc_NetShareInfo2.name", "srvsvc.srvsvc_NetShareInfo2.path")
	if len(rows) != 1 || get(rows[0], 0) != "ADMIN$" || get(rows[0], 1) != `D:\WINDOWS` {
		t.Fatalf("tshark reads %q", rows)
	}
	p := New(Config{}, func(Operation) {})
	for _, pk := range c.f.pkts {
		p.Packet(pk)
	}
	p.Flush()
	if got := p.sharePaths[netip.MustParseAddr("10.1.0.9")]["ADMIN$"]; got != strings.ToLower(get(rows[0], 1)) {
		t.Errorf("replay learnt ADMIN$ at %q, tshark reads %q", got, get(rows[0], 1))
	}
}
