package replay

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// Tests of DCE/RPC carried by SMB2 IOCTL FSCTL_PIPE_TRANSCEIVE and SMB1
// TransactNmPipe in both transfer syntaxes, with and without the tree
// connect and CREATE that open the pipe. tshark decodes the same packets as
// an oracle of the hand-built stubs.

var atsvcIf = smbrpc.MustUUID("1ff70682-0a51-30e8-076d-740be8cee98b")

// atJobAddStub is NetrJobAdd(ServerName, AT_INFO{JobTime, DaysOfMonth,
// DaysOfWeek, Flags, Command}) laid out as MS-TSCH 3.2.5.2.1 and MS-RPCE
// 2.2.5 (NDR64) say: a unique conformant varying string, then the AT_INFO
// structure (aligned to its largest member) and its deferred Command.
func atJobAddStub(ndr64 bool, server, command string) []byte {
	var b []byte
	ptr := func() { // a referent id
		if ndr64 {
			b = append(b, le64(0x20000)...)
		} else {
			b = append(b, le32(0x20000)...)
		}
	}
	align := func(n int) {
		for len(b)%n != 0 {
			b = append(b, 0)
		}
	}
	count := func(n int) {
		if ndr64 {
			align(8)
			b = append(b, le64(uint64(n))...)
		} else {
			align(4)
			b = append(b, le32(uint32(n))...)
		}
	}
	str := func(s string) {
		n := len(s) + 1
		count(n)
		count(0)
		count(n)
		b = append(b, u16le(s+"\x00")...)
	}
	ptr()
	str(server)
	if ndr64 {
		align(8)
		b = append(b, le64(13*3600*1000)...) // JobTime: 13:00
	} else {
		align(4)
		b = append(b, le32(13*3600*1000)...)
	}
	b = append(b, le32(0)...) // DaysOfMonth
	b = append(b, 0, 0x10)    // DaysOfWeek, Flags: JOB_NONINTERACTIVE
	align(map[bool]int{false: 4, true: 8}[ndr64])
	ptr()
	str(command)
	return b
}

// rpcBindWindows binds the way Windows clients do: context 0 with NDR,
// context 1 with NDR64, and rpcBindAckWindows accepts one of them (a
// provider rejection for the other); calls then use the accepted context.
func rpcBindWindows(callID uint32, iface smbrpc.UUID, ver uint16) []byte {
	item := func(ctx uint16, syntax smbrpc.UUID, sver uint32) []byte {
		return join(le16(ctx), []byte{1, 0}, iface[:], le16(ver), le16(0), syntax[:], le32(sver))
	}
	return rpcPDU(smbrpc.PTBind, 3, callID, join(le16(4280), le16(4280), le32(0), []byte{2, 0, 0, 0},
		item(0, smbrpc.SyntaxNDR, 2), item(1, smbrpc.SyntaxNDR64, 1)))
}

func rpcBindAckWindows(callID uint32, ndr64 bool) []byte {
	accept := func(syntax smbrpc.UUID, ver uint32) []byte { return join(le16(0), le16(0), syntax[:], le32(ver)) }
	reject := join(le16(2), le16(2), make([]byte, 20))
	res := join(accept(smbrpc.SyntaxNDR, 2), reject)
	if ndr64 {
		res = join(reject, accept(smbrpc.SyntaxNDR64, 1))
	}
	// The secondary address (length, then the name with its NUL), padded
	// to 4 bytes: 24 + 2 + 12 = 38, so two bytes of padding.
	sec := join(le16(12), []byte(`\PIPE\atsvc`), []byte{0, 0, 0})
	return rpcPDU(smbrpc.PTBindAck, 3, callID, join(le16(4280), le16(4280), le32(0x1234), sec, []byte{2, 0, 0, 0}, res))
}

func windowsCtx(ndr64 bool) uint16 {
	if ndr64 {
		return 1
	}
	return 0
}

// smb1Trans is an SMB1 TRANSACTION TransactNmPipe request (\PIPE\, FID)
// or its reply, carrying data.
func smb1Trans(reply bool, fid, tid, uid, mid uint16, data []byte) []byte {
	if !reply {
		// 32 header + 1 + 32 words + 2 = 67; pad to 68 for the Unicode
		// name (14 bytes), then to 84 for the data.
		words := join(le16(0), le16(uint16(len(data))), le16(0), le16(4280), []byte{0, 0}, le16(0), le32(0), le16(0),
			le16(0), le16(84), le16(uint16(len(data))), le16(84), []byte{2, 0}, le16(0x26), le16(fid))
		body := join([]byte{0}, u16le(`\PIPE\`+"\x00"), []byte{0, 0}, data)
		return smb1Msg(smbrpc.SMB1Trans, false, 0, tid, uid, mid, words, body)
	}
	// 32 + 1 + 20 + 2 = 55; data at 56.
	words := join(le16(0), le16(uint16(len(data))), le16(0), le16(0), le16(56), le16(0), le16(uint16(len(data))), le16(56), le16(0), []byte{0, 0})
	return smb1Msg(smbrpc.SMB1Trans, true, 0, tid, uid, mid, words, join([]byte{0}, data))
}

func smb1Msg(cmd byte, reply bool, status uint32, tid, uid, mid uint16, words, data []byte) []byte {
	flags := byte(0x18)
	if reply {
		flags |= 0x80
	}
	h := join([]byte{0xff, 'S', 'M', 'B', cmd}, le32(status), []byte{flags}, le16(0xc807),
		make([]byte, 12), le16(tid), le16(0xfeff), le16(uid), le16(mid))
	return join(h, []byte{byte(len(words) / 2)}, words, le16(uint16(len(data))), data)
}

// smb2Read and smb2ReadResp read a pipe.
func smb2Read(fid smbrpc.FileID) []byte {
	return join(le16(49), []byte{80, 0}, le32(4280), le64(0), fid[:], le32(0), le32(0), le32(0), le16(0), le16(0), []byte{0})
}

func smb2ReadResp(data []byte) []byte {
	return join(le16(17), []byte{80, 0}, le32(uint32(len(data))), le32(0), le32(0), data)
}

// atTransceiveFlow is `at` over SMB2 the way Windows runs it: the bind
// written to the pipe and its ack read back, the call through an IOCTL
// transceive. withTree and withCreate say whether the tree connect and the
// CREATE were captured.
func atTransceiveFlow(port string, syntax smbrpc.UUID, withTree, withCreate bool) *tcpFlow {
	f := newFlow("10.0.0.1:"+port, "10.0.0.2:445", t0)
	sess := uint64(0x31)
	fid := smbrpc.FileID{3, 0, 0, 0, 0, 0, 0, 0, 9}
	f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, sess, sessionSetup(ntlmAuth("LAB", "mallory", "WS9")))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, sess, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
	if withTree {
		f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, sess, treeConnect(`\\srv\IPC$`))), 1460)
		f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 2, 6, sess, treeConnectResp(smbrpc.SharePipe))), 1460)
	}
	if withCreate {
		f.send(true, nb(smb2(smbrpc.SMB2Create, false, 0, 3, 6, sess, create("atsvc"))), 1460)
		f.send(false, nb(smb2(smbrpc.SMB2Create, true, 0, 3, 6, sess, createResp(fid))), 1460)
	}
	f.send(true, nb(smb2(smbrpc.SMB2Write, false, 0, 4, 6, sess, write(fid, 0, rpcBindWindows(1, atsvcIf, 1)))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Write, true, 0, 4, 6, sess, join(le16(17), le16(0), le32(72), le32(0), le16(0), le16(0)))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Read, false, 0, 5, 6, sess, smb2Read(fid))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Read, true, 0, 5, 6, sess, smb2ReadResp(rpcBindAckWindows(1, syntax == smbrpc.SyntaxNDR64)))), 1460)
	stub := atJobAddStub(syntax == smbrpc.SyntaxNDR64, `\\srv`, `c:\mimikatz.exe`)
	f.send(true, nb(smb2(smbrpc.SMB2Ioctl, false, 0, 6, 6, sess, ioctl(fid, rpcRequestCtx(2, windowsCtx(syntax == smbrpc.SyntaxNDR64), 0, stub)))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Ioctl, true, 0, 6, 6, sess, ioctlResp(fid, rpcResponse(2, join(le32(7), le32(0)))))), 1460)
	return f
}

// atTransFlow is the same over SMB1: the bind and the call through
// TransactNmPipe (the NT_CREATE not captured when withCreate is false).
func atTransFlow(port string, syntax smbrpc.UUID, withCreate bool) *tcpFlow {
	f := newFlow("10.0.0.1:"+port, "10.0.0.2:445", t0)
	const fid, tid, uid = 0x4001, 7, 0x800
	if withCreate {
		name := u16le(`\atsvc` + "\x00")
		words := join([]byte{0xff, 0}, le16(0), []byte{0}, le16(uint16(len(name))), le32(0), le32(0), le32(0x12019f), le64(0),
			le32(0), le32(3), le32(1), le32(0), le32(2), []byte{0})
		f.send(true, nb(smb1Msg(smbrpc.SMB1NTCreate, false, 0, tid, uid, 1, words, join([]byte{0}, name))), 1460)
		rw := join([]byte{0xff, 0}, le16(0), []byte{0}, le16(fid), le32(1), make([]byte, 32), le32(0x80), le64(0), le64(0), le16(2), le16(0), []byte{0})
		f.send(false, nb(smb1Msg(smbrpc.SMB1NTCreate, true, 0, tid, uid, 1, rw, nil)), 1460)
	}
	f.send(true, nb(smb1Trans(false, fid, tid, uid, 2, rpcBindWindows(1, atsvcIf, 1))), 1460)
	f.send(false, nb(smb1Trans(true, fid, tid, uid, 2, rpcBindAckWindows(1, syntax == smbrpc.SyntaxNDR64))), 1460)
	stub := atJobAddStub(syntax == smbrpc.SyntaxNDR64, `\\srv`, `c:\mimikatz.exe`)
	f.send(true, nb(smb1Trans(false, fid, tid, uid, 3, rpcRequestCtx(2, windowsCtx(syntax == smbrpc.SyntaxNDR64), 0, stub))), 1460)
	f.send(false, nb(smb1Trans(true, fid, tid, uid, 3, rpcResponse(2, join(le32(7), le32(0))))), 1460)
	return f
}

func TestAtJobOverPipeTransports(t *testing.T) {
	type tc struct {
		name string
		flow *tcpFlow
	}
	var cases []tc
	for _, syn := range []struct {
		name string
		uuid smbrpc.UUID
	}{{"ndr", smbrpc.SyntaxNDR}, {"ndr64", smbrpc.SyntaxNDR64}} {
		cases = append(cases,
			tc{"smb2-ioctl/" + syn.name, atTransceiveFlow("50200", syn.uuid, true, true)},
			tc{"smb2-ioctl-no-tree/" + syn.name, atTransceiveFlow("50201", syn.uuid, false, true)},
			tc{"smb2-ioctl-no-create/" + syn.name, atTransceiveFlow("50202", syn.uuid, false, false)},
			tc{"smb1-trans/" + syn.name, atTransFlow("50203", syn.uuid, true)},
			tc{"smb1-trans-no-create/" + syn.name, atTransFlow("50204", syn.uuid, false)},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, _ := runPackets(t, c.flow.pkts, Config{})
			job := find(ops, "rpc", "NetrJobAdd")
			if job == nil {
				t.Fatalf("no NetrJobAdd in %+v", ops)
			}
			if job.Interface != "atsvc" || job.Command != `c:\mimikatz.exe` || job.Technique != "T1053.005" {
				t.Errorf("NetrJobAdd %+v", *job)
			}
			if !strings.Contains(fieldValues(job), "job id=7") {
				t.Errorf("reply not decoded: %v", job.Fields)
			}
			for _, o := range ops {
				if o.Kind == "file" {
					t.Errorf("pipe reported as a file: %+v", o)
				}
			}
		})
	}
}

// TestAtJobTsharkOracle: tshark reads the command of the same hand-built
// NetrJobAdd stubs, in both syntaxes and over both transports, so the
// stubs are what the specification says and not only what our decoder
// expects.
func TestAtJobTsharkOracle(t *testing.T) {
	testenv.Tool(t, "tshark")
	dir := t.TempDir()
	if d := os.Getenv("KEEP"); d != "" {
		dir = d
	}
	for _, c := range []struct {
		name string
		flow *tcpFlow
	}{
		{"smb2-ndr", atTransceiveFlow("50210", smbrpc.SyntaxNDR, true, true)},
		{"smb2-ndr64", atTransceiveFlow("50211", smbrpc.SyntaxNDR64, true, true)},
		{"smb1-ndr", atTransFlow("50212", smbrpc.SyntaxNDR, true)},
		{"smb1-ndr64", atTransFlow("50213", smbrpc.SyntaxNDR64, true)},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, c.name+".pcap")
			writePcap(t, file, c.flow.pkts)
			var cmds []string
			for _, r := range tsharkFields(t, file, "atsvc.opnum == 0 && dcerpc.pkt_type == 0", "atsvc.atsvc_JobInfo.command") {
				cmds = append(cmds, r[0])
			}
			if len(cmds) != 1 || cmds[0] != `c:\mimikatz.exe` {
				t.Fatalf("tshark reads NetrJobAdd commands %q", cmds)
			}
		})
	}
}

func writePcap(t *testing.T, file string, pkts []Packet) {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 65535, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.Timestamp, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tsharkOpAliases are tshark's abbreviated or reordered names.
var tsharkOpAliases = map[string]string{
	"FCPN": "FindClosePrinterChangeNotification", "RFFPCNEX": "RemoteFindFirstPrinterChangeNotificationEx",
	"RRPCN": "RouterReplyPrinterEx", "RFNPCNEX": "RouterRefreshPrinterChangeNotification",
	"EnumPrintProcessor": "EnumPrintProcessors", "PlayDiscriptOnPrinterIC": "PlayGdiScriptOnPrinterIC",
	"EnumPrintProcDataTypes": "EnumPrintProcessorDatatypes", "dfs_GetManagerVersion": "DfsManagerGetVersion",
	"AddPrintProvider": "AddPrintProvidor", "DeletePrintProvider": "DeletePrintProvidor",
	"FindFirstPrinterChangeNotification":    "ClientFindFirstPrinterChangeNotification",
	"RouterFindFirstPrinterNotificationOld": "RouterFindFirstPrinterChangeNotificationOld",
	// MS-RSP: Samba's and Wireshark's names for the Base...SystemShutdown calls.
	"Init": "BaseInitiateSystemShutdown", "InitEx": "BaseInitiateSystemShutdownEx", "Abort": "BaseAbortSystemShutdown",
	// MS-NSPI: tshark keeps OpenChange's names from before the specification.
	"NspiDNToEph": "NspiDNToMId", "NspiCompareDNTs": "NspiCompareMIds", "NspiGetHierarchyInfo": "NspiGetSpecialTable",
}

// normOp drops the prefixes the two namings differ by (Rpc, Netr, dfs_).
func normOp(s string) string {
	s = strings.TrimPrefix(s, "Rpc")
	s = strings.TrimPrefix(s, "Netr")
	s = strings.TrimPrefix(s, "R_") // MS-DNSP's R_Dnssrv...
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}

// TestOpNamesTshark: tshark names each opnum of the interfaces this
// package's new decoders cover as rpcops does (a bind, then one request a
// segment for every opnum; tshark's names drop MS-RPRN's Rpc prefix).
func TestOpNamesTshark(t *testing.T) {
	testenv.Tool(t, "tshark")
	dir := t.TempDir()
	for _, c := range []struct {
		uuid string
		ver  uint16
		n    int
	}{
		{"c681d488-d850-11d0-8c52-00c04fd90f7e", 1, 23},  // efsrpc over lsarpc
		{"12345678-1234-abcd-ef00-0123456789ab", 1, 117}, // spoolss
		{"4fc742e0-4a10-11cf-8273-00aa004ae673", 3, 26},  // netdfs
		{"a8e0653c-2744-4389-a61d-7373df8b2292", 1, 13},  // FileServerVssAgent
		{"1ff70682-0a51-30e8-076d-740be8cee98b", 1, 4},   // atsvc
		{"894de0c0-0d55-11d3-a322-00c04fa321a1", 1, 3},   // InitShutdown
		{"50abc2a4-574d-40b3-9d66-ee4fd5fba076", 5, 19},  // DnsServer
		{"afa8bd80-7d8a-11c9-bef4-08002b102989", 1, 5},   // mgmt
		{"f5cc5a18-4264-101a-8c59-08002b2f8426", 56, 21}, // nspi
	} {
		iface := smbrpc.MustUUID(c.uuid)
		f := newFlow("10.0.0.1:50300", "10.0.0.2:135", t0)
		f.send(true, rpcBind(1, iface, c.ver), 1460)
		f.send(false, rpcBindAckSyntax(1, smbrpc.SyntaxNDR), 1460)
		for op := 0; op < c.n; op++ {
			f.send(true, rpcRequest(uint32(2+op), 3, uint16(op), make([]byte, 8)), 1460)
		}
		file := filepath.Join(dir, c.uuid+".pcap")
		writePcap(t, file, f.pkts)
		named := 0
		for _, r := range tsharkFields(t, file, "dcerpc.pkt_type == 0", "dcerpc.opnum", "_ws.col.Info") {
			op, _ := strconv.Atoi(r[0])
			theirs, _, _ := strings.Cut(get(r, 1), " ")
			if theirs == "Unknown" || theirs == "Request:" || strings.HasPrefix(theirs, "Opnum") {
				continue // tshark does not name it
			}
			ours := rpcops.OpName([16]byte(iface), uint16(op))
			if a, ok := tsharkOpAliases[theirs]; ok {
				theirs = a
			}
			if normOp(ours) != normOp(theirs) {
				t.Errorf("%s opnum %d: tshark %q, rpcops %q", c.uuid, op, theirs, ours)
			}
			named++
		}
		if named == 0 {
			t.Errorf("%s: tshark named no opnum", c.uuid)
		}
	}
}
