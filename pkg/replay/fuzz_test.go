package replay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
)

// FuzzStreams feeds arbitrary bytes as both directions of an SMB (445), a
// DCE/RPC (135) and a WinRM (5985 HTTP, 5986 TLS) connection, cut into segments, with one segment dropped:
// framing, resync, the SMB and RPC state machines and rpcops must not
// panic, nothing stays buffered after the flush, and no more bytes are
// counted unframed than were fed (dropped bytes may be more: a message
// too large to hold is dropped for the size it claims).
func FuzzStreams(f *testing.F) {
	fl, _ := psexecFlow()
	var cli, srv []byte
	for _, pk := range fl.pkts {
		if len(pk.Data) > 54 {
			if pk.Data[26+3] == 1 { // source 10.0.0.1: the client
				cli = append(cli, pk.Data[54:]...)
			} else {
				srv = append(srv, pk.Data[54:]...)
			}
		}
	}
	f.Add(cli, srv, uint8(7))
	f.Add(join(rpcBind(1, svcctlIf, 2), rpcRequest(2, 3, 12, []byte("stub"))), rpcResponse(2, make([]byte, 8)), uint8(0))
	// The real sealed Certipy association (auth3, sealed request; the
	// bind_ack's CHALLENGE): the fuzzer reaches the unsealing with the
	// lab secret below.
	cert := certipyTCP(f)
	f.Add(join(cert["frame56"], cert["frame58"]), cert["frame54"], uint8(9))
	f.Add(nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, 1, sessionSetup(gssKrb(krbAPReq("R", "cifs", "h"))))), []byte{}, uint8(3))
	f.Add([]byte("POST /wsman HTTP/1.1\r\nAuthorization: Basic dTpw\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 40\r\n\r\n<s:Envelope><s:Body/></s:Envelope>xxxxxx"),
		[]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), uint8(9))
	sec := secretsOf(f, `CORP\alice password:`+labPassword+"\n")
	// The Kerberos lab's keys: a mutated AP-REQ, AP-REP or wrap token
	// goes through the --keytab paths too.
	keys, _, err := krbseal.Load(filepath.Join("..", "..", "testdata", "krblab", "krblab.keytab"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, c2s, s2c []byte, drop uint8) {
		fed := uint64(len(c2s) + len(s2c))
		for _, port := range []string{"445", "135", "5985", "5986"} {
			c2s, s2c := c2s, s2c
			flow := newFlow("10.0.0.1:40000", "10.0.0.2:"+port, t0)
			seg := 0
			for len(c2s) > 0 || len(s2c) > 0 {
				n := min(len(c2s), 61)
				if n > 0 {
					idx := flow.send(true, c2s[:n], 61)
					if uint8(seg) == drop && len(idx) > 0 {
						flow.pkts = flow.pkts[:len(flow.pkts)-1]
					}
					c2s = c2s[n:]
				}
				m := min(len(s2c), 97)
				if m > 0 {
					flow.send(false, s2c[:m], 97)
					s2c = s2c[m:]
				}
				seg++
			}
			p := New(Config{MaxStreamBuffer: 1 << 16, Secrets: sec, Keys: keys}, func(Operation) {})
			for _, pk := range flow.pkts {
				p.Packet(pk)
			}
			p.Flush()
			if p.buffered != 0 || len(p.conns) != 0 {
				t.Fatalf("after flush: %d bytes buffered, %d conns", p.buffered, len(p.conns))
			}
			if st := p.Stats(); st.UnframedBytes > fed {
				t.Fatalf("fed %d bytes, counted %d unframed", fed, st.UnframedBytes)
			}
		}
	})
}

// certipyTCP reads the real Certipy association kept as hex in
// ntlmseal's testdata.
func certipyTCP(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "smbrpc", "ntlmseal", "testdata", "certipy_tcp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if name, h, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			if m[name], err = hex.DecodeString(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	return m
}

// FuzzRemComMessage decodes RemCom requests laid out from fuzzed fields
// (each cut to its slot, so one may fill it without a NUL) and a fuzzed
// change of the total length: the decoder takes exactly the requests
// whose size is right, whose command is not empty and whose three strings
// end inside their fields, and returns each string up to its NUL. The
// fields are fuzzed, not the 4628-byte message: the fuzzer's
// minimization of a message that size took the whole run, so it ran 3
// inputs a minute.
func FuzzRemComMessage(f *testing.F) {
	f.Add([]byte("cmd.exe\x00"), []byte(`c:\windows\system32`+"\x00"), []byte("KKiq\x00"), uint32(0x20), uint32(6792), uint32(0), int16(0))
	f.Add([]byte("whoami /all\x00"), []byte{0}, []byte("ATTK\x00"), uint32(0), uint32(4242), uint32(1), int16(-1))
	f.Add([]byte{}, []byte("x\x00"), []byte("y\x00"), uint32(0), uint32(0), uint32(0), int16(1))
	f.Fuzz(func(t *testing.T, cmd, dir, machine []byte, priority, pid, noWait uint32, grow int16) {
		b := make([]byte, remComMsgLen)
		put := func(at, n int, v []byte) (string, bool) {
			v = v[:min(len(v), n)]
			copy(b[at:], v)
			i := bytes.IndexByte(b[at:at+n], 0)
			if i < 0 {
				return "", false
			}
			return string(b[at : at+i]), true
		}
		var want remComMessage
		var ok [3]bool
		want.command, ok[0] = put(0, remComCmdLen, cmd)
		want.workDir, ok[1] = put(remComCmdLen, remComPathLen, dir)
		o := remComCmdLen + remComPathLen
		binary.LittleEndian.PutUint32(b[o:], priority)
		binary.LittleEndian.PutUint32(b[o+4:], pid)
		want.machine, ok[2] = put(o+8, remComPathLen, machine)
		binary.LittleEndian.PutUint32(b[remComMsgLen-4:], noWait)
		want.priority, want.pid, want.noWait = priority, pid, noWait != 0
		switch g := int(grow) % 64; {
		case g < 0:
			b = b[:len(b)+g]
		case g > 0:
			b = append(b, make([]byte, g)...)
		}
		m, got := parseRemComMessage(b)
		wantOK := len(b) == remComMsgLen && ok[0] && ok[1] && ok[2] && want.command != ""
		if got != wantOK || got && m != want {
			t.Fatalf("%d bytes: %+v %v, want %+v %v", len(b), m, got, want, wantOK)
		}
		if !got {
			return
		}
		op := Operation{Fields: []Field{{"stdin", "x"}}}
		remComOp(&op, m, b[:remComRespLen])
		if op.Command != strings.TrimSpace(m.command) || op.Field("stdin") != "" || op.Field("client") == "" {
			t.Fatalf("op %+v from %+v", op, m)
		}
	})
}

// pipeScript encodes msgs as FuzzRawPipe reads them: per message a byte
// (bit 7 set for a write, the rest the wait in tenths of a second), a
// 16-bit little-endian length and the data.
func pipeScript(msgs []pipeMsg) []byte {
	var b []byte
	for _, m := range msgs {
		c := byte(min(m.after/(100*time.Millisecond), 0x7f))
		if m.write {
			c |= 0x80
		}
		b = append(append(append(b, c), le16(uint16(len(m.data)))...), m.data...)
	}
	return b
}

// readPipeScript decodes a pipeScript; a length past the end takes what
// is left. Messages are kept few and small so an input stays cheap.
func readPipeScript(b []byte) []pipeMsg {
	var msgs []pipeMsg
	for len(b) >= 3 && len(msgs) < 64 {
		n := min(int(binary.LittleEndian.Uint16(b[1:])), len(b)-3, 8192)
		msgs = append(msgs, pipeMsg{time.Duration(b[0]&0x7f) * 100 * time.Millisecond, b[0]&0x80 != 0, b[3 : 3+n]})
		b = b[3+n:]
	}
	return msgs
}

// FuzzRawPipe exchanges arbitrary messages on a pipe of an arbitrary name
// over SMB2, SMB1 WRITE_ANDX/READ_ANDX and SMB1 core WRITE: whatever the
// bytes (RemCom requests, winexe control lines, TDS, shells, length-framed
// C2, a call joined mid-way), replay does not panic, a pipe whose first
// data is not DCE/RPC gives one pipe operation counting exactly the bytes
// and messages each way, and what it shows is bounded by what it keeps,
// not by what it was fed.
func FuzzRawPipe(f *testing.F) {
	banner := []byte("Microsoft Windows [Version 10.0.19045.3803]\r\n(c) Microsoft Corporation. All rights reserved.\r\n\r\nC:\\Windows\\system32>")
	f.Add("msagent_4f", pipeScript(beacon(1, 6, 5*time.Second, 0.1, true)))
	f.Add("ProtectionManager_2231", pipeScript(poisson(2, 6, 2*time.Second)))
	f.Add(`sql\query`, pipeScript([]pipeMsg{{0, true, tdsPrelogin(0x12)}, {0, false, tdsPrelogin(0x04)}}))
	f.Add("helpdesk", pipeScript([]pipeMsg{{0, false, banner}, {time.Second, true, []byte("whoami\r\n")}, {0, false, []byte("corp\\admin\r\n\r\nC:\\Windows\\system32>")}}))
	f.Add("srvsvc", pipeScript([]pipeMsg{{0, true, []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99}},
		{0, false, rpcResponse(2, make([]byte, 24))}, {time.Second, true, rpcRequest(3, 3, 15, make([]byte, 40))}}))
	f.Add("RemCom_communicaton", pipeScript([]pipeMsg{{0, true, remComRequest("whoami /all", `c:\windows`, "ATTK")}, {2 * time.Second, false, join(le32(0), le32(3))}}))
	f.Add("ahexec", pipeScript([]pipeMsg{{0, true, []byte("get version\n")}, {0, false, []byte("version 0x0104\n")},
		{0, true, []byte("run cmd.exe\n")}, {time.Second, false, []byte("return_code 0\n")}}))
	f.Add("PSEXESVC", pipeScript([]pipeMsg{{0, true, le32(4)}, {0, true, []byte{1, 2, 3, 4}}}))
	f.Fuzz(func(t *testing.T, name string, script []byte) {
		// The name as a client would send it: printable, no path.
		if name == "" || len(name) > 64 || strings.ContainsAny(name, `\/`) && !strings.HasSuffix(name, `\query`) {
			name = "p"
		}
		for i := 0; i < len(name); i++ {
			if name[i] < 0x20 || name[i] >= 0x7f {
				name = "p"
				break
			}
		}
		msgs := readPipeScript(script)
		var want [2]int // bytes written, read
		var n [2]int    // messages that carried data
		rpc, decided := false, false
		for _, m := range msgs {
			d := 1
			if m.write {
				d = 0
			}
			if len(m.data) > 0 {
				if !decided {
					_, _, rpc = smbrpc.DCERPCHeader(m.data)
					decided = true
				}
				want[d] += len(m.data)
				n[d]++
			}
		}
		for _, dialect := range []string{"smb2", "smb1", "smb1 core"} {
			var fl *tcpFlow
			switch dialect {
			case "smb2":
				fl = pipeFlow(name, msgs)
			default:
				fl = pipeFlowSMB1With(name, msgs, dialect == "smb1 core")
			}
			p := New(Config{}, func(op Operation) {
				if len(op.Command) > 3*maxPipeText+3 {
					t.Fatalf("%s: command of %d bytes", dialect, len(op.Command))
				}
				for _, fd := range op.Fields {
					if len(fd.Value) > 3*maxPipeText/2 {
						t.Fatalf("%s: field %s of %d bytes", dialect, fd.Name, len(fd.Value))
					}
				}
				if op.Kind != "pipe" || rpc {
					return
				}
				if op.Pipe != name || op.Field("written") != itoa(want[0])+" bytes" || op.Field("read") != itoa(want[1])+" bytes" {
					t.Fatalf("%s: pipe %q written %q read %q, want %q %d and %d", dialect, op.Pipe, op.Field("written"), op.Field("read"), name, want[0], want[1])
				}
				if op.Operation == "pipe channel" && op.Field("messages") != fmt.Sprintf("%d written, %d read", n[0], n[1]) {
					t.Fatalf("%s: messages %q, want %v", dialect, op.Field("messages"), n)
				}
				want = [2]int{-1, -1} // one operation only
			})
			w := want
			for _, pk := range fl.pkts {
				p.Packet(pk)
			}
			p.Flush()
			if st := p.Stats(); st.DecodeErrors != 0 {
				t.Fatalf("%s: %+v", dialect, st)
			}
			if !rpc && w[0]+w[1] > 0 && want[0] != -1 {
				t.Fatalf("%s: no pipe operation for %d bytes", dialect, w[0]+w[1])
			}
			want = w
		}
	})
}
