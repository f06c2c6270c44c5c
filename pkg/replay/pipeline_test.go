package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

var errEOF = io.EOF

var (
	t0        = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svcctlIf  = smbrpc.MustUUID("367abb81-9844-35f1-ad32-98f038001003")
	fidTool   = smbrpc.FileID{1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0}
	fidSvcctl = smbrpc.FileID{2, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0}
)

// psexecFlow builds an SMB2 session in the shape of PsExec: NTLM logon,
// ADMIN$ connect, a tool written in two chunks, then svcctl over a pipe.
func psexecFlow() (*tcpFlow, map[string][]int) {
	f := newFlow("10.0.0.1:50000", "10.0.0.2:445", t0)
	at := map[string][]int{}
	sess := uint64(0x11)
	f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, sess, sessionSetup(ntlmAuth("DOM", "alice", "WS1")))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, sess, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, sess, treeConnect(`\\srv\ADMIN$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 2, 5, sess, treeConnectResp(smbrpc.ShareDisk))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Create, false, 0, 3, 5, sess, create("tool.exe"))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Create, true, 0, 3, 5, sess, createResp(fidTool))), 1460)
	at["write1"] = f.send(true, nb(smb2(smbrpc.SMB2Write, false, 0, 4, 5, sess, write(fidTool, 0, []byte("MZ"+strings.Repeat("a", 3000))))), 1000)
	at["write2"] = f.send(true, nb(smb2(smbrpc.SMB2Write, false, 0, 5, 5, sess, write(fidTool, 3002, []byte("tail")))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Close, false, 0, 6, 5, sess, closeReq(fidTool))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 7, 0, sess, treeConnect(`\\srv\IPC$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 7, 6, sess, treeConnectResp(smbrpc.SharePipe))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Create, false, 0, 8, 6, sess, create("svcctl"))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Create, true, 0, 8, 6, sess, createResp(fidSvcctl))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Ioctl, false, 0, 9, 6, sess, ioctl(fidSvcctl, rpcBind(1, svcctlIf, 2)))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Ioctl, true, 0, 9, 6, sess, ioctlResp(fidSvcctl, rpcPDU(smbrpc.PTBindAck, 3, 1,
		join(le16(4280), le16(4280), le32(1), le16(0), le16(0), []byte{1, 0, 0, 0}, make([]byte, 24)))))), 1460)
	// CreateServiceW (opnum 12) in two fragments, then its response.
	at["rpc"] = f.send(true, nb(smb2(smbrpc.SMB2Ioctl, false, 0, 10, 6, sess, ioctl(fidSvcctl,
		join(rpcRequest(2, smbrpc.PFCFirstFrag, 12, []byte("first-")), rpcRequest(2, smbrpc.PFCLastFrag, 12, []byte("second")))))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Ioctl, true, 0, 10, 6, sess, ioctlResp(fidSvcctl, rpcResponse(2, make([]byte, 24))))), 1460)
	return f, at
}

func runPackets(t *testing.T, pkts []Packet, cfg Config) ([]Operation, Stats) {
	t.Helper()
	var ops []Operation
	st, err := Run(context.Background(), &sliceSource{pkts: pkts}, cfg, func(o Operation) { ops = append(ops, o) })
	if err != nil {
		t.Fatal(err)
	}
	return ops, st
}

func find(ops []Operation, kind, operation string) *Operation {
	for i := range ops {
		if ops[i].Kind == kind && (operation == "" || ops[i].Operation == operation) {
			return &ops[i]
		}
	}
	return nil
}

func TestPsExecShape(t *testing.T) {
	f, at := psexecFlow()
	// Deliver the first write's segments out of order, with a
	// retransmission: reassembly must restore the stream.
	w := at["write1"]
	pkts := append([]Packet(nil), f.pkts...)
	pkts[w[0]], pkts[w[2]] = pkts[w[2]], pkts[w[0]]
	pkts = append(pkts[:w[2]+1], append([]Packet{pkts[w[1]]}, pkts[w[2]+1:]...)...)

	ops, st := runPackets(t, pkts, Config{})
	if st.Gaps != 0 || st.DroppedBytes != 0 || st.DecodeErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	tree := find(ops, "tree", "")
	if tree == nil || tree.Target != `\\srv\ADMIN$` || tree.Technique != "T1021.002" || tree.Account() != `DOM\alice` || tree.Auth != "ntlm" {
		t.Fatalf("tree op %+v", tree)
	}
	file := find(ops, "file", "write file")
	want := sha256.Sum256([]byte("MZ" + strings.Repeat("a", 3000) + "tail"))
	if file == nil || file.SHA256 != hex.EncodeToString(want[:]) || file.Size != 3006 || file.Technique != "T1570" || file.Partial {
		t.Fatalf("file op %+v", file)
	}
	rpc := find(ops, "rpc", "")
	if rpc == nil {
		t.Fatalf("no rpc op in %+v", ops)
	}
	wantIf := rpcops.InterfaceName(svcctlIf)
	if wantIf == "" {
		wantIf = svcctlIf.String()
	}
	if rpc.Interface != wantIf || rpc.Pipe != "svcctl" || rpc.Transport != "smb2" || rpc.Account() != `DOM\alice` ||
		rpc.Src != netip.MustParseAddr("10.0.0.1") || rpc.Dst != netip.MustParseAddr("10.0.0.2") || rpc.Partial || rpc.Encrypted {
		t.Fatalf("rpc op %+v", rpc)
	}
	if rpc.Operation != rpcops.OpName(svcctlIf, 12) {
		t.Fatalf("operation %q", rpc.Operation)
	}
	ipc := find(ops, "tree", "tree connect")
	for _, o := range ops {
		if o.Kind == "tree" && o.Target == `\\srv\IPC$` {
			ipc = &o
		}
	}
	if ipc == nil || !ipc.Noise {
		t.Fatalf("IPC$ connect should be plumbing: %+v", ipc)
	}
}

// TestGapResync drops a segment in the middle of a write: the file loses
// its hash and the framer finds the next SMB message, so the RPC call
// after it is still reported.
func TestGapResync(t *testing.T) {
	f, at := psexecFlow()
	drop := at["write1"][1]
	pkts := append(append([]Packet(nil), f.pkts[:drop]...), f.pkts[drop+1:]...)
	ops, st := runPackets(t, pkts, Config{})
	if st.Gaps == 0 || st.Resyncs == 0 {
		t.Fatalf("gap not seen: %+v", st)
	}
	if file := find(ops, "file", "write file"); file == nil || file.SHA256 != "" || !file.Partial {
		t.Fatalf("file op after a gap %+v", file)
	}
	if rpc := find(ops, "rpc", ""); rpc == nil || rpc.Account() != `DOM\alice` {
		t.Fatalf("rpc op after the gap: %+v", rpc)
	}
}

// TestHalfOpenExpiry sends a DCE/RPC request over TCP with no reply; the
// wall-clock tick must report it once CallTimeout has passed.
func TestHalfOpenExpiry(t *testing.T) {
	f := newFlow("10.0.0.1:50001", "10.0.0.3:135", t0)
	f.send(true, rpcBind(1, svcctlIf, 2), 1460)
	f.send(true, rpcRequest(2, 3, 15, []byte("x")), 1460)
	var ops []Operation
	p := New(Config{CallTimeout: 2 * time.Second}, func(o Operation) { ops = append(ops, o) })
	wall := time.Now()
	for _, pk := range f.pkts {
		p.Packet(pk)
		p.MarkWall(wall)
	}
	if len(ops) != 0 {
		t.Fatalf("reported before the timeout: %+v", ops)
	}
	p.Tick(wall.Add(time.Second))
	if len(ops) != 0 {
		t.Fatal("reported after 1s")
	}
	p.Tick(wall.Add(3 * time.Second))
	if len(ops) != 1 || !ops[0].Partial || ops[0].Transport != "tcp" || p.Stats().CallsExpired != 1 {
		t.Fatalf("after the timeout: %+v %+v", ops, p.Stats())
	}
}

// TestIdleExpiry: a connection with no packets for IdleTimeout is closed
// and counted, and its state freed.
func TestIdleExpiry(t *testing.T) {
	f := newFlow("10.0.0.1:50002", "10.0.0.4:445", t0)
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, 1, treeConnect(`\\x\C$`))), 1460)
	p := New(Config{IdleTimeout: time.Minute}, func(Operation) {})
	wall := time.Now()
	for _, pk := range f.pkts {
		p.Packet(pk)
		p.MarkWall(wall)
	}
	p.Tick(wall.Add(2 * time.Minute))
	if st := p.Stats(); st.ConnsExpired != 1 || len(p.conns) != 0 || p.buffered != 0 {
		t.Fatalf("stats %+v conns %d buffered %d", st, len(p.conns), p.buffered)
	}
}

// TestBoundedBuffer: a message larger than MaxStreamBuffer is skipped
// without being held, and the stream goes on.
func TestBoundedBuffer(t *testing.T) {
	f := newFlow("10.0.0.1:50003", "10.0.0.5:445", t0)
	f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, 7, sessionSetup(ntlmAuth("D", "bob", "W")))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, 7, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
	big := nb(smb2(smbrpc.SMB2Write, false, 0, 2, 5, 7, write(fidTool, 0, make([]byte, 64<<10))))
	f.send(true, big, 1460)
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 3, 0, 7, treeConnect(`\\x\ADMIN$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 3, 9, 7, treeConnectResp(smbrpc.ShareDisk))), 1460)
	var peak int64
	var ops []Operation
	p := New(Config{MaxStreamBuffer: 8 << 10}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range f.pkts {
		p.Packet(pk)
		peak = max(peak, p.buffered)
	}
	p.Flush()
	if peak > 16<<10 {
		t.Fatalf("buffered %d bytes with an 8 KiB cap", peak)
	}
	if p.Stats().DroppedBytes < 64<<10 {
		t.Fatalf("dropped %d", p.Stats().DroppedBytes)
	}
	if tree := find(ops, "tree", ""); tree == nil || tree.Account() != `D\bob` {
		t.Fatalf("stream lost after the skip: %+v", ops)
	}
}

// TestKerberosAccount: a TGS-REP over UDP names the client of a later
// AP-REQ in SMB session setup.
func TestKerberosAccount(t *testing.T) {
	kdc := netip.MustParseAddrPort("10.0.0.9:88")
	cli := netip.MustParseAddrPort("10.0.0.1:61000")
	rep := krbRep("CORP.LOCAL", "bob", "CORP.LOCAL", "cifs", "srv.corp.local")
	pk := Packet{Timestamp: t0, LinkType: 1, Data: frame(kdc, cli, 17, 0, 0, 0, rep)}
	f := newFlow("10.0.0.1:50004", "10.0.0.2:445", t0.Add(time.Second))
	f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, 3, sessionSetup(gssKrb(krbAPReq("CORP.LOCAL", "cifs", "srv.corp.local"))))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, 3, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, 3, treeConnect(`\\srv.corp.local\C$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 2, 4, 3, treeConnectResp(smbrpc.ShareDisk))), 1460)
	ops, _ := runPackets(t, append([]Packet{pk}, f.pkts...), Config{})
	tree := find(ops, "tree", "")
	if tree == nil || tree.User != "bob" || tree.Domain != "CORP.LOCAL" || tree.Auth != "kerberos" || tree.Service != "cifs/srv.corp.local" {
		t.Fatalf("kerberos account %+v", tree)
	}
}

// TestSMB3Encrypted: transform messages yield one encrypted operation
// carrying the session's account.
func TestSMB3Encrypted(t *testing.T) {
	f := newFlow("10.0.0.1:50005", "10.0.0.2:445", t0)
	sess := uint64(0x4400000001)
	f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, sess, sessionSetup(ntlmAuth("D", "carol", "W")))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, sess, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
	for i := 0; i < 3; i++ {
		f.send(true, nb(join([]byte{0xfd, 'S', 'M', 'B'}, make([]byte, 32), le32(200), le16(0), le16(1), le64(sess), make([]byte, 200))), 1460)
	}
	ops, _ := runPackets(t, f.pkts, Config{})
	enc := find(ops, "smb3-encrypted", "")
	if enc == nil || !enc.Encrypted || enc.Account() != `D\carol` || enc.Fields[0].Value != "3" {
		t.Fatalf("encrypted op %+v", enc)
	}
}

// TestMergeOrdersByTime interleaves two sources.
func TestMergeOrdersByTime(t *testing.T) {
	mk := func(secs ...int) Source {
		var p []Packet
		for _, s := range secs {
			p = append(p, Packet{Timestamp: t0.Add(time.Duration(s) * time.Second), Data: []byte{byte(s)}})
		}
		return &sliceSource{pkts: p}
	}
	m := Merge(mk(1, 4, 5), mk(2, 3, 6))
	var got []int
	for {
		p, err := m.Next()
		if err != nil {
			break
		}
		got = append(got, int(p.Data[0]))
	}
	if len(got) != 6 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 4 || got[5] != 6 {
		t.Fatalf("merged %v", got)
	}
}

func TestStories(t *testing.T) {
	s := NewStories()
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	s.Add(&Operation{Time: t0.Add(2 * time.Second), Src: a, Dst: b, User: "u", Domain: "D", Phase: "execution", Technique: "T1569.002", Operation: "StartServiceW", Target: "PSEXESVC"})
	s.Add(&Operation{Time: t0, Src: a, Dst: b, User: "u", Domain: "D", Phase: "lateral-movement", Technique: "T1021.002", Operation: "tree connect"})
	s.Add(&Operation{Time: t0, Src: a, Dst: b, Noise: true, Operation: "CloseServiceHandle"})
	h := s.Hosts()
	if len(h) != 1 || len(h[0].Steps) != 2 || h[0].Steps[0].Phase != "lateral-movement" || h[0].Steps[1].Phase != "execution" {
		t.Fatalf("story %+v", h)
	}
	if !strings.Contains(h[0].Story(), `lateral-movement (T1021.002 by D\u from 10.0.0.1`) {
		t.Fatalf("story text %q", h[0].Story())
	}
	var dot strings.Builder
	s.WriteDOT(&dot)
	if !strings.Contains(dot.String(), `"10.0.0.1" -> "10.0.0.2"`) || !strings.Contains(dot.String(), "3 ops") {
		t.Fatalf("dot %s", dot.String())
	}
}

func TestLooksDCSync(t *testing.T) {
	big := make([]byte, 4096)
	tcp := func(port uint16, unbound ...uint16) *rpcAssoc {
		a := newAssoc(New(Config{}, nil), rpcEndpoint{client: netip.MustParseAddrPort("10.0.0.1:50000"),
			server: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port), transport: "tcp"})
		a.unbound = unbound
		return a
	}
	tests := []struct {
		name string
		a    *rpcAssoc
		c    rpcCall
		want bool
	}{
		{"bind then get changes", tcp(49667, 0, 16, 12, 0), rpcCall{opnum: 3, respSeen: true, resp: big}, true},
		{"small reply", tcp(49667, 0), rpcCall{opnum: 3, respSeen: true, resp: big[:200]}, false},
		{"no reply", tcp(49667, 0), rpcCall{opnum: 3, resp: big}, false},
		{"endpoint mapper port (IOXIDResolver ServerAlive)", tcp(135, 0), rpcCall{opnum: 3, respSeen: true, resp: big}, false},
		{"first call not a bind", tcp(49667, 5, 0), rpcCall{opnum: 3, respSeen: true, resp: big}, false},
		{"nothing before", tcp(49667), rpcCall{opnum: 3, respSeen: true, resp: big}, false},
		{"other opnum", tcp(49667, 0), rpcCall{opnum: 4, respSeen: true, resp: big}, false},
	}
	for _, tc := range tests {
		if got := tc.a.looksDCSync(&tc.c); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	pipe := tcp(49667, 0)
	pipe.ep.transport = "smb2"
	if pipe.looksDCSync(&rpcCall{opnum: 3, respSeen: true, resp: big}) {
		t.Error("a named pipe call is inferred as DCSync")
	}
}

// krbTicketC, krbRepC and krbAPReqC are krbTicket, krbRep and krbAPReq
// with the ticket's cipher given.
func krbTicketC(realm string, cipher []byte, sname ...string) []byte {
	return mkder(0x61, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{5})), mkder(0xa1, mkder(0x1b, []byte(realm))),
		mkder(0xa2, krbPrincipal(sname...)), mkder(0xa3, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})),
			mkder(0xa1, mkder(0x02, []byte{3})), mkder(0xa2, mkder(0x04, cipher))))))
}

func krbRepC(crealm, cname string, cipher []byte, sname ...string) []byte {
	return mkder(0x6d, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{5})), mkder(0xa1, mkder(0x02, []byte{13})),
		mkder(0xa3, mkder(0x1b, []byte(crealm))), mkder(0xa4, krbPrincipal(cname)), mkder(0xa5, krbTicketC(crealm, cipher, sname...)),
		mkder(0xa6, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{3}))))))
}

func krbAPReqC(realm string, cipher []byte, sname ...string) []byte {
	return mkder(0x6e, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{5})), mkder(0xa1, mkder(0x02, []byte{14})),
		mkder(0xa2, mkder(0x03, []byte{0, 0, 0, 0, 0})), mkder(0xa3, krbTicketC(realm, cipher, sname...)),
		mkder(0xa4, mkder(0x30, mkder(0xa0, mkder(0x02, []byte{18})), mkder(0xa2, mkder(0x04, []byte{2}))))))
}

// TestKerberosTicketJoin: two users of one host get tickets for the same
// service; each SMB session is named by the TGS-REP that issued the very
// ticket its AP-REQ presents (not by the newest exchange of the host), and
// a ticket whose TGS-REP was not captured keeps the service principal with
// a guessed name only.
func TestKerberosTicketJoin(t *testing.T) {
	kdc := netip.MustParseAddrPort("10.0.0.9:88")
	cli := netip.MustParseAddrPort("10.0.0.1:61000")
	ticketA, ticketB, ticketC := []byte("alice's ticket cipher"), []byte("bob's ticket cipher"), []byte("unseen ticket cipher")
	var pkts []Packet
	for i, rep := range [][]byte{
		krbRepC("CORP.LOCAL", "alice", ticketA, "cifs", "srv.corp.local"),
		krbRepC("CORP.LOCAL", "bob", ticketB, "cifs", "srv.corp.local"),
	} {
		pkts = append(pkts, Packet{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), LinkType: 1, Data: frame(kdc, cli, 17, 0, 0, 0, rep)})
	}
	session := func(port string, sess uint64, ticket []byte) []Packet {
		f := newFlow("10.0.0.1:"+port, "10.0.0.2:445", t0.Add(time.Second))
		f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, sess, sessionSetup(gssKrb(krbAPReqC("CORP.LOCAL", ticket, "cifs", "srv.corp.local"))))), 1460)
		f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, sess, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
		f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, sess, treeConnect(`\\srv.corp.local\C$`))), 1460)
		f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 2, 4, sess, treeConnectResp(smbrpc.ShareDisk))), 1460)
		return f.pkts
	}
	pkts = append(pkts, session("50010", 5, ticketA)...)
	pkts = append(pkts, session("50011", 6, ticketB)...)
	pkts = append(pkts, session("50012", 7, ticketC)...)
	ops, _ := runPackets(t, pkts, Config{})
	byPort := map[uint16]*Operation{}
	for i := range ops {
		if ops[i].Kind == "tree" {
			byPort[ops[i].SrcPort] = &ops[i]
		}
	}
	for port, want := range map[uint16][2]string{50010: {"alice", "ticket"}, 50011: {"bob", "ticket"}, 50012: {"bob", "kdc"}} {
		o := byPort[port]
		if o == nil || o.User != want[0] || o.AccountVia != want[1] || o.Domain != "CORP.LOCAL" || o.Service != "cifs/srv.corp.local" {
			t.Errorf("port %d: %+v, want %s via %s", port, o, want[0], want[1])
		}
	}
}

// TestCaptureEdges: a connection already open when the capture began and
// one still open, with bytes held out of order, when it ended are counted
// as edges, not damage; a hole inside a stream is damage, and named.
func TestCaptureEdges(t *testing.T) {
	// Open before the capture: no SYN, the first bytes are mid-stream.
	f := newFlow("10.0.0.1:50600", "10.0.0.2:445", t0)
	f.pkts = f.pkts[2:]
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 7, 0, 9, treeConnect(`\\srv\C$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 7, 6, 9, treeConnectResp(smbrpc.ShareDisk))), 1460)
	// Still open at the end: a segment after one that would have come
	// after the capture stopped.
	g := newFlow("10.0.0.1:50601", "10.0.0.2:445", t0)
	g.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 1, 0, 9, treeConnect(`\\srv\D$`))), 1460)
	msg := nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, 9, treeConnect(`\\srv\E$`)))
	idx := g.send(true, msg, 40)
	g.pkts = append(g.pkts[:idx[0]], g.pkts[idx[0]+1:]...)
	ops, st := runPackets(t, append(f.pkts, g.pkts...), Config{})
	if st.Damaged() || st.Gaps != 0 {
		t.Fatalf("edges taken for damage: %+v", st)
	}
	if st.ConnsMidstream != 1 || st.ConnsOpenAtEnd != 2 || st.GapsAtEnd != 1 {
		t.Errorf("edges not counted: midstream %d open at end %d gaps at end %d", st.ConnsMidstream, st.ConnsOpenAtEnd, st.GapsAtEnd)
	}
	if find(ops, "tree", "") == nil {
		t.Errorf("operations lost: %+v", ops)
	}

	// A segment lost inside a stream, the peer acknowledging past it.
	h, at := psexecFlow()
	drop := at["write1"][1]
	h.pkts = append(h.pkts[:drop], h.pkts[drop+1:]...)
	_, st = runPackets(t, h.pkts, Config{})
	if !st.Damaged() || st.Gaps == 0 || len(st.GapPlaces) == 0 || !strings.Contains(st.GapPlaces[0], "10.0.0.1:50000 -> 10.0.0.2:445 at ") {
		t.Fatalf("inside gap: %+v", st)
	}
}

// TestUnframedEdges: bytes before a stream's first message boundary (a
// connection joined mid-message, or another protocol on port 445) are an
// edge of the input, not damage; garbage inside a stream already framed
// is.
func TestUnframedEdges(t *testing.T) {
	junk := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*37) // never a NetBIOS header followed by an SMB protocol id
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		pkts    func() []Packet
		ops     []string // operations that must be found
		damaged bool
	}{
		{"joined mid-message", func() []Packet {
			// No handshake, and the capture begins with the second segment
			// of a 3 KB write: the rest of the session must still decode.
			f, at := psexecFlow()
			return f.pkts[at["write1"][1]:]
		}, []string{"tree connect", rpcops.OpName(svcctlIf, 12)}, false},
		{"not SMB on 445, handshake seen", func() []Packet {
			f := newFlow("10.0.0.1:50700", "10.0.0.2:445", t0)
			f.send(true, junk(3000, 1), 1460)
			f.send(false, junk(900, 2), 1460)
			return f.pkts
		}, nil, false},
		{"not SMB on 445, joined late", func() []Packet {
			f := newFlow("10.0.0.1:50701", "10.0.0.2:445", t0)
			f.send(true, junk(2000, 3), 700)
			return f.pkts[2:]
		}, nil, false},
		{"garbage inside an SMB stream", func() []Packet {
			f := newFlow("10.0.0.1:50702", "10.0.0.2:445", t0)
			f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 1, 0, 9, treeConnect(`\\srv\C$`))), 1460)
			f.send(true, junk(500, 4), 1460)
			f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, 9, treeConnect(`\\srv\D$`))), 1460)
			return f.pkts
		}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, st := runPackets(t, tc.pkts(), Config{})
			if st.Damaged() != tc.damaged || st.Gaps != 0 {
				t.Fatalf("damaged %v, want %v: %+v", st.Damaged(), tc.damaged, st)
			}
			if tc.damaged && st.DroppedBytes == 0 {
				t.Errorf("garbage in a framed stream not counted as dropped: %+v", st)
			}
			if !tc.damaged && (st.UnframedBytes == 0 || st.DroppedBytes != 0) {
				t.Errorf("unframed %d dropped %d", st.UnframedBytes, st.DroppedBytes)
			}
			for _, name := range tc.ops {
				found := false
				for _, o := range ops {
					found = found || o.Operation == name
				}
				if !found {
					t.Errorf("no %s after the edge: %+v", name, ops)
				}
			}
		})
	}
}
