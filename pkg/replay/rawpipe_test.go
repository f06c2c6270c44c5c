package replay

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// SMB2 READ request and response (MS-SMB2 2.2.19, 2.2.20).
func readReq(fid smbrpc.FileID, n uint32) []byte {
	return join(le16(49), []byte{0, 0}, le32(n), le64(0), fid[:], le32(0), le32(0), le32(0), le16(0), le16(0), []byte{0})
}

func readResp(data []byte) []byte {
	return join(le16(17), []byte{64 + 16, 0}, le32(uint32(len(data))), le32(0), le32(0), data)
}

// pipeMsg is one message of a built raw-pipe session: written by the
// client (write) or read back, at an offset from the previous message.
type pipeMsg struct {
	after time.Duration
	write bool
	data  []byte
}

// pipeFlow builds an SMB2 session that opens a pipe on IPC$, exchanges
// msgs on it and closes it.
func pipeFlow(name string, msgs []pipeMsg) *tcpFlow {
	fid := smbrpc.FileID{7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}
	f := newFlow("10.1.0.5:49700", "10.1.0.9:445", t0)
	sess := uint64(0x21)
	f.send(true, nb(smb2(smbrpc.SMB2SessionSetup, false, 0, 1, 0, sess, sessionSetup(ntlmAuth("CORP", "svc_adm", "PIVOT")))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2SessionSetup, true, 0, 1, 0, sess, join(le16(9), le16(0), le16(72), le16(0)))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2TreeConnect, false, 0, 2, 0, sess, treeConnect(`\\10.1.0.9\IPC$`))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2TreeConnect, true, 0, 2, 1, sess, treeConnectResp(smbrpc.SharePipe))), 1460)
	f.send(true, nb(smb2(smbrpc.SMB2Create, false, 0, 3, 1, sess, create(name))), 1460)
	f.send(false, nb(smb2(smbrpc.SMB2Create, true, 0, 3, 1, sess, createResp(fid))), 1460)
	id := uint64(4)
	for _, m := range msgs {
		f.t = f.t.Add(m.after)
		if m.write {
			f.send(true, nb(smb2(smbrpc.SMB2Write, false, 0, id, 1, sess, write(fid, 0, m.data))), 1460)
			f.send(false, nb(smb2(smbrpc.SMB2Write, true, 0, id, 1, sess, join(le16(17), le16(0), le32(uint32(len(m.data))), le32(0), le16(0), le16(0)))), 1460)
		} else {
			f.send(true, nb(smb2(smbrpc.SMB2Read, false, 0, id, 1, sess, readReq(fid, 65536))), 1460)
			f.send(false, nb(smb2(smbrpc.SMB2Read, true, 0, id, 1, sess, readResp(m.data))), 1460)
		}
		id++
	}
	f.send(true, nb(smb2(smbrpc.SMB2Close, false, 0, id, 1, sess, closeReq(fid))), 1460)
	return f
}

// beacon builds n check-ins of a pivot polling a pipe: every period
// (jittered by ±jitter), a task written and an answer read, each as a
// 4-byte little-endian length and then random bytes, as Cobalt Strike's
// SMB beacon frames them.
func beacon(seed int64, n int, period time.Duration, jitter float64, framed bool) []pipeMsg {
	r := rand.New(rand.NewSource(seed))
	var msgs []pipeMsg
	for i := 0; i < n; i++ {
		wait := time.Duration(float64(period) * (1 + jitter*(2*r.Float64()-1)))
		if i == 0 {
			wait = 0
		}
		for j, write := range []bool{true, false} {
			body := make([]byte, 16+r.Intn(200))
			r.Read(body)
			after := time.Duration(0)
			if j == 0 {
				after = wait
			}
			if framed {
				msgs = append(msgs, pipeMsg{after, write, le32(uint32(len(body)))}, pipeMsg{0, write, body})
			} else {
				msgs = append(msgs, pipeMsg{after, write, body})
			}
		}
	}
	return msgs
}

// poisson builds check-ins at unscheduled (exponential) intervals.
func poisson(seed int64, n int, mean time.Duration) []pipeMsg {
	r := rand.New(rand.NewSource(seed))
	var msgs []pipeMsg
	for i := 0; i < n; i++ {
		body := make([]byte, 40+r.Intn(100))
		r.Read(body)
		// Each message carries its own length first.
		msg := append(le32(uint32(len(body))), body...)
		ack := append(le32(8), make([]byte, 8)...)
		msgs = append(msgs, pipeMsg{time.Duration(r.ExpFloat64() * float64(mean)), true, msg}, pipeMsg{0, false, ack})
	}
	return msgs
}

// tdsPrelogin is a TDS PRELOGIN packet (MS-TDS 2.2.6.5) with its header:
// type 0x12, status EOM, big-endian length, SPID 0, packet 1, window 0.
func tdsPrelogin(typ byte) []byte {
	body := []byte{0, 0, 6, 0, 6, 0xff, 0x0f, 0, 0x07, 0xd0, 0, 0}
	return join([]byte{typ, 0x01}, binary.BigEndian.AppendUint16(nil, uint16(8+len(body))), []byte{0, 0, 1, 0}, body)
}

func TestRawPipeKinds(t *testing.T) {
	banner := []byte("Microsoft Windows [Version 10.0.19045.3803]\r\n(c) Microsoft Corporation. All rights reserved.\r\n\r\nC:\\Windows\\system32>")
	cases := []struct {
		name, pipe string
		msgs       []pipeMsg
		operation  string
		technique  string
		noise      bool
		fields     map[string]string // exact values
		prefixes   map[string]string // values starting so
		absent     []string
		period     time.Duration // the schedule's, within 10%
		command    string
	}{{
		name: "cobalt strike default, framed, scheduled", pipe: "msagent_4f",
		msgs:      beacon(1, 14, 5*time.Second, 0.1, true),
		operation: "pipe channel", technique: "T1071.002",
		fields: map[string]string{"messages": "28 written, 28 read", "framework": "Cobalt Strike SMB beacon default (msagent_##)",
			"framing": "4-byte length prefix (56 of 56 messages)"},
		prefixes: map[string]string{"also": "T1090.001"},
		period:   5 * time.Second,
	}, {
		name: "operator-chosen name, unscheduled", pipe: "ProtectionManager_2231",
		msgs:      poisson(2, 12, 20*time.Second),
		operation: "pipe channel", technique: "T1071.002",
		fields: map[string]string{"messages": "12 written, 12 read", "framing": "4-byte length prefix (24 of 24 messages)"},
		absent: []string{"schedule", "framework"},
	}, {
		name: "sql server over a pipe", pipe: `sql\query`,
		msgs:      []pipeMsg{{0, true, tdsPrelogin(0x12)}, {0, false, tdsPrelogin(0x04)}},
		operation: "pipe i/o", noise: true,
		fields: map[string]string{"protocol": "TDS (SQL Server)"},
	}, {
		name: "sql server name, other bytes", pipe: `MSSQL$PROD\sql\query`,
		msgs:      beacon(3, 3, time.Minute, 0, false),
		operation: "pipe channel", technique: "T1071.002",
		absent: []string{"protocol", "framing"},
	}, {
		name: "one way only", pipe: "spooler_status",
		msgs:      []pipeMsg{{0, true, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}}},
		operation: "pipe i/o", noise: true,
	}, {
		name: "shell under an unknown name", pipe: "helpdesk",
		msgs:      []pipeMsg{{0, false, banner}, {time.Second, true, []byte("whoami\r\n")}, {0, false, []byte("corp\\admin\r\n\r\nC:\\Windows\\system32>")}},
		operation: "pipe i/o", technique: "T1569.002",
		fields: map[string]string{"shell": "cmd.exe (its banner or prompt read back)", "stdin": "whoami"},
	}, {
		// The capture began inside a fragmented RPC request: the first
		// bytes are the rest of a stub, the next messages whole PDUs.
		name: "rpc joined mid-call", pipe: "srvsvc",
		msgs: []pipeMsg{{0, true, []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99}},
			{0, false, rpcResponse(2, make([]byte, 24))}, {time.Second, true, rpcRequest(3, 3, 15, make([]byte, 40))},
			{0, false, rpcResponse(3, make([]byte, 24))}},
		operation: "pipe i/o", noise: true,
		fields: map[string]string{"protocol": "DCE/RPC (the capture began inside a call)"},
	}, {
		name: "remcom request and its reply", pipe: "RemCom_communicaton",
		msgs:      []pipeMsg{{0, true, remComRequest("whoami /all", "", "ATTK")}, {2 * time.Second, false, join(le32(0), le32(3))}},
		operation: "pipe i/o", technique: "T1569.002", command: "whoami /all",
		fields: map[string]string{"client": "ATTK pid 4242", "exit code": "3", "tool": "RemCom (impacket psexec.py)"},
		absent: []string{"note", "working directory", "wait"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, st := runPackets(t, pipeFlow(c.pipe, c.msgs).pkts, Config{})
			if st.DecodeErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
			op := find(ops, "pipe", "")
			if op == nil {
				t.Fatalf("no pipe operation in %+v", ops)
			}
			if op.Pipe != c.pipe || op.Operation != c.operation || op.Technique != c.technique || op.Noise != c.noise ||
				op.Account() != `CORP\svc_adm` || op.Share != `\\10.1.0.9\IPC$` {
				t.Fatalf("op %+v", op)
			}
			var w, r int
			for _, m := range c.msgs {
				if m.write {
					w += len(m.data)
				} else {
					r += len(m.data)
				}
			}
			if op.Field("written") != strconv.Itoa(w)+" bytes" || op.Field("read") != strconv.Itoa(r)+" bytes" {
				t.Fatalf("written %q read %q, want %d and %d", op.Field("written"), op.Field("read"), w, r)
			}
			for k, v := range c.fields {
				if got := op.Field(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for k, v := range c.prefixes {
				if got := op.Field(k); !strings.HasPrefix(got, v) {
					t.Errorf("%s = %q, want %q...", k, got, v)
				}
			}
			for _, k := range c.absent {
				if got := op.Field(k); got != "" {
					t.Errorf("%s = %q, want none", k, got)
				}
			}
			if c.command != "" && op.Command != c.command {
				t.Errorf("command %q, want %q", op.Command, c.command)
			}
			if c.period > 0 {
				var p float64
				if _, err := fmt.Sscanf(op.Field("schedule"), "every %fs", &p); err != nil || math.Abs(p-c.period.Seconds()) > c.period.Seconds()/10 ||
					!strings.HasSuffix(op.Field("schedule"), "over "+strconv.Itoa(len(c.msgs)/4)+" check-ins)") {
					t.Errorf("schedule %q (%v), want every %v", op.Field("schedule"), err, c.period)
				}
			}
			if c.operation == "pipe channel" && op.Phase != "command-and-control" {
				t.Errorf("phase %q", op.Phase)
			}
		})
	}
}

// TestRawPipeTshark checks the built channel's SMB2 fields against tshark:
// the pipe's name, each write's and read's length, the total both ways.
func TestRawPipeTshark(t *testing.T) {
	msgs := beacon(4, 6, 3*time.Second, 0.2, true)
	file := filepath.Join(t.TempDir(), "channel.pcap")
	writePcap(t, file, pipeFlow("postex_a1b2", msgs).pkts)
	names := tsharkFields(t, file, "smb2.cmd == 5 && smb2.flags.response == 0", "smb2.filename")
	if len(names) != 1 || names[0][0] != "postex_a1b2" {
		t.Fatalf("tshark reads CREATE names %q", names)
	}
	sum := func(filter, field string) (n, total int) {
		for _, row := range tsharkFields(t, file, filter, field) {
			v, err := strconv.Atoi(row[0])
			if err != nil {
				t.Fatalf("%s %q", field, row)
			}
			n, total = n+1, total+v
		}
		return n, total
	}
	wn, wb := sum("smb2.cmd == 9 && smb2.flags.response == 0", "smb2.write_length")
	// tshark calls a READ response's data its blob.
	rn, rb := sum("smb2.cmd == 8 && smb2.flags.response == 1", "smb2.olb.length")
	ops, _ := replayFile(t, file)
	op := find(ops, "pipe", "pipe channel")
	if op == nil {
		t.Fatalf("no channel in %+v", ops)
	}
	if op.Field("written") != strconv.Itoa(wb)+" bytes" || op.Field("read") != strconv.Itoa(rb)+" bytes" ||
		op.Field("messages") != strconv.Itoa(wn)+" written, "+strconv.Itoa(rn)+" read" {
		t.Fatalf("ours %q %q %q, tshark %d writes of %d bytes, %d reads of %d", op.Field("written"), op.Field("read"), op.Field("messages"), wn, wb, rn, rb)
	}
	if op.Field("framework") != "Cobalt Strike post-exploitation job default (postex_####)" {
		t.Fatalf("framework %q", op.Field("framework"))
	}
}

// TestRealRawPipes replays the shared captures of winexe (SMB1) and
// RemCom (impacket's psexec.py and RemCom itself, SMB2).
func TestRealRawPipes(t *testing.T) {
	dir := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn")
	byPipe := func(file string) map[string]*Operation {
		ops, _ := replayFile(t, filepath.Join(dir, file))
		m := map[string]*Operation{}
		for i := range ops {
			if ops[i].Kind == "pipe" {
				m[ops[i].Pipe] = &ops[i]
			}
		}
		return m
	}
	t.Run("winexe", func(t *testing.T) {
		m := byPipe("winexesvc_.pcap")
		ctl, in, out := m["ahexec"], m["ahexec_stdin064C0001"], m["ahexec_stdout064C0001"]
		if ctl == nil || in == nil || out == nil {
			t.Fatalf("pipes %v", m)
		}
		for _, op := range []*Operation{ctl, in, out} {
			if op.Technique != "T1569.002" || op.Noise || op.Field("tool") != "winexe" || op.Transport != "smb1" || op.Account() != `WORKGROUP\chewbacca` {
				t.Fatalf("op %+v", op)
			}
		}
		// tshark: two 12-byte SMB_COM_WRITEs on ahexec, 127 one-byte ones on stdin.
		if ctl.Command != "cmd.exe" || ctl.Field("written") != "24 bytes" {
			t.Fatalf("control %+v", ctl)
		}
		if in.Field("written") != "127 bytes" || !strings.HasPrefix(in.Field("stdin"), "whoami\n") {
			t.Fatalf("stdin %+v", in)
		}
		if out.Field("shell") == "" || !strings.HasPrefix(out.Field("stdout"), "Microsoft Windows [Version 6.1.7601]") {
			t.Fatalf("stdout %+v", out)
		}
	})
	for _, c := range []struct{ file, cmd, client, dir, stdin string }{
		{"remcom.pcap", "cmd.exe", "CHIP_DOUGLAS-PC pid 2232", "", "RemCom_stdinCHIP_DOUGLAS-PC2232"},
		{"impacket_psexec.pcap", "cmd.exe", "KKiq pid 6792", `c:\windows\system32`, "RemCom_stdinKKiq6792"},
	} {
		t.Run(c.file, func(t *testing.T) {
			m := byPipe(c.file)
			op := m["RemCom_communicaton"]
			if op == nil || op.Command != c.cmd || op.Field("client") != c.client || op.Field("working directory") != c.dir ||
				op.Technique != "T1569.002" || op.Field("note") != "" || op.Field("written") != "4628 bytes" {
				t.Fatalf("request %+v", op)
			}
			// The client's machine name and process id also name its
			// stdin pipe ("RemCom_stdin" + machine + pid).
			if m[c.stdin] == nil {
				t.Fatalf("no pipe %s in %v", c.stdin, m)
			}
		})
	}
}

// remComMsg lays out a RemCom request as impacket's psexec.py packs it:
// command[4096], working directory[260], priority, process id,
// machine[260], no-wait.
func remComMsg(cmd, dir, machine string, noWait uint32) []byte {
	b := make([]byte, remComMsgLen)
	copy(b, cmd)
	copy(b[remComCmdLen:], dir)
	binary.LittleEndian.PutUint32(b[remComCmdLen+remComPathLen:], 0x20)
	binary.LittleEndian.PutUint32(b[remComCmdLen+remComPathLen+4:], 4242)
	copy(b[remComCmdLen+remComPathLen+8:], machine)
	binary.LittleEndian.PutUint32(b[remComMsgLen-4:], noWait)
	return b
}

func remComRequest(cmd, dir, machine string) []byte { return remComMsg(cmd, dir, machine, 0) }

func TestParseRemComMessage(t *testing.T) {
	msg := remComMsg
	full := msg("cmd.exe /c whoami", `c:\windows`, "ATTK", 1)
	unterminated := msg("", "", "", 0)
	for i := range unterminated[:remComCmdLen] {
		unterminated[i] = 'a'
	}
	cases := []struct {
		name string
		b    []byte
		ok   bool
		want remComMessage
	}{
		{"request", full, true, remComMessage{command: "cmd.exe /c whoami", workDir: `c:\windows`, machine: "ATTK", priority: 0x20, pid: 4242, noWait: true}},
		{"short", full[:remComMsgLen-1], false, remComMessage{}},
		{"long", append(full, 0), false, remComMessage{}},
		{"empty command", msg("", "x", "y", 0), false, remComMessage{}},
		{"command without its NUL", unterminated, false, remComMessage{}},
	}
	for _, c := range cases {
		m, ok := parseRemComMessage(c.b)
		if ok != c.ok || ok && m != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, m, ok, c.want, c.ok)
		}
	}
}

func TestPipeNames(t *testing.T) {
	for _, c := range []struct {
		name, framework, tool string
		sql                   bool
	}{
		{"msagent_a9", "Cobalt Strike SMB beacon default (msagent_##)", "", false},
		{"msagent_a9x", "", "", false},
		{"msagent_zz", "", "", false},
		{"MSSE-1966-server", "Cobalt Strike artifact kit default (MSSE-####-server)", "", false},
		{"MSSE--server", "", "", false},
		{"postex_ssh_1234", "Cobalt Strike SSH job default (postex_ssh_####)", "", false},
		{"status_0f", "Cobalt Strike default (status_##)", "", false},
		{"gruntsvc", "Covenant SMB grunt default (gruntsvc)", "", false},
		{"msf-pipe", "Metasploit named-pipe pivot default (msf-pipe)", "", false},
		{"msf-pipe-5902", "Metasploit named pipe (msf-pipe-PID, as seen in the wild)", "", false},
		{"demon_pipe", "Havoc example profile (demon_pipe)", "", false},
		{"jaccdpqnvbrrxlaf", "PoshC2 SMB implant default", "", false},
		{"PSEXESVC-HOST-123-stdin", "", "PsExec", false},
		{"RemCom_communicaton", "", "RemCom (impacket psexec.py)", false},
		{"ahexec_stdout064C0001", "", "winexe", false},
		{`sql\query`, "", "", true},
		{`MSSQL$SHOP\sql\query`, "", "", true},
		{`sql\query2`, "", "", false},
	} {
		if f, tl, s := c2Framework(c.name), execTool(c.name), sqlPipe(c.name); f != c.framework || tl != c.tool || s != c.sql {
			t.Errorf("%s: %q %q %v", c.name, f, tl, s)
		}
	}
}

func TestShellKind(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{"Microsoft Windows [Version 6.1.7601]\r\nCopyright (c) 2009 Microsoft Corporation.  All rights reserved.\r\n", "cmd.exe"},
		{"\r\nc:\\Users\\choppydog>dir\r\n", "cmd.exe"},
		{"Windows PowerShell\r\nCopyright (C) Microsoft Corporation. All rights reserved.\r\n", "PowerShell"},
		{"PS C:\\Users\\admin> whoami\r\n", "PowerShell"},
		{"status ok: 3 jobs queued", ""},
		{"a:\\b <not> a prompt", ""},
	} {
		if got := shellKind(c.out); got != c.want {
			t.Errorf("%q: %q, want %q", c.out, got, c.want)
		}
	}
}

// TestPipeChannelStoryAndAttack: a channel makes its server's story a
// command-and-control step and an attack naming the pipe, its framework
// and schedule; an execution pipe makes neither.
func TestPipeChannelStoryAndAttack(t *testing.T) {
	ops, _ := runPackets(t, pipeFlow("msagent_4f", beacon(5, 10, 10*time.Second, 0.2, true)).pkts, Config{})
	exec, _ := runPackets(t, pipeFlow("RemCom_stdinXY12", []pipeMsg{{0, true, []byte("whoami\r\n")}}).pkts, Config{})
	ops = append(ops, exec...)
	att := DetectAttacks(ops, nil)
	if len(att) != 1 {
		t.Fatalf("attacks %+v", att)
	}
	a := att[0]
	if a.Name != "Named-pipe C2 channel over SMB" || a.Technique != "T1071.002" || a.Verdict != "succeeded" || a.Severity != SevHigh ||
		a.Src.String() != "10.1.0.5" || a.Dst.String() != "10.1.0.9" || a.Account != `CORP\svc_adm` || a.Count != 1 ||
		!strings.Contains(a.Summary, "msagent_4f") || !strings.Contains(a.Summary, "Cobalt Strike SMB beacon default") ||
		!strings.Contains(a.Summary, "every ") || len(a.Evidence) != 1 || a.Evidence[0].Operation != "pipe channel" {
		t.Fatalf("attack %+v", a)
	}
	for i := range ops {
		if ops[i].Kind == "pipe" && AttackCandidate(&ops[i]) != (ops[i].Operation == "pipe channel") {
			t.Errorf("candidate %+v", ops[i])
		}
	}
	st := NewStories()
	for i := range ops {
		st.Add(&ops[i])
	}
	hosts := st.Hosts()
	if len(hosts) != 1 || hosts[0].Host.String() != "10.1.0.9" {
		t.Fatalf("stories %+v", hosts)
	}
	var phases []string
	for _, s := range hosts[0].Steps {
		phases = append(phases, s.Phase+" "+strings.Join(s.Techniques, ","))
	}
	if strings.Join(phases, "; ") != "execution T1569.002; command-and-control T1071.002" { // opened together: PhaseOrder
		t.Fatalf("steps %q", phases)
	}
}

// pipeFlowSMB1 is pipeFlow over SMB1: TREE_CONNECT_ANDX to IPC$,
// NT_CREATE_ANDX of the pipe, WRITE_ANDX (14 words, data at 64) and
// READ_ANDX (request 12 words; reply 12 words, data at 60), CLOSE.
func pipeFlowSMB1(name string, msgs []pipeMsg) *tcpFlow { return pipeFlowSMB1With(name, msgs, false) }

// pipeFlowSMB1With is pipeFlowSMB1 whose writes are core SMB_COM_WRITEs
// when core is set, as winexe writes its pipes (MS-CIFS 2.2.4.12: FID,
// count, 32-bit offset, remaining; a data buffer of format 1 with its own
// length; the reply counts the bytes written).
func pipeFlowSMB1With(name string, msgs []pipeMsg, core bool) *tcpFlow {
	f := newFlow("10.1.0.5:49701", "10.1.0.9:445", t0)
	const tid, uid, fid = 9, 0x800, 0x4005
	var mid uint16
	send := func(cmd byte, words, data, rwords, rdata []byte) {
		mid++
		f.send(true, nb(smb1Msg(cmd, false, 0, tid, uid, mid, words, data)), 1460)
		f.send(false, nb(smb1Msg(cmd, true, 0, tid, uid, mid, rwords, rdata)), 1460)
	}
	send(smbrpc.SMB1TreeConnect, join([]byte{0xff, 0}, le16(0), le16(0), le16(1)),
		join([]byte{0}, u16le(`\\10.1.0.9\IPC$`+"\x00"), []byte("?????\x00")), join([]byte{0xff, 0}, le16(0), le16(0)), nil)
	n := u16le(`\` + name + "\x00")
	words := join([]byte{0xff, 0}, le16(0), []byte{0}, le16(uint16(len(n))), le32(0), le32(0), le32(0x2019f), le64(0),
		le32(0), le32(3), le32(1), le32(0), le32(2), []byte{0})
	rw := join([]byte{0xff, 0}, le16(0), []byte{0}, le16(fid), le32(1), make([]byte, 32), le32(0x80), le64(0), le64(0), le16(2), le16(0), []byte{0})
	send(smbrpc.SMB1NTCreate, words, join([]byte{0}, n), rw, nil)
	for _, m := range msgs {
		f.t = f.t.Add(m.after)
		if m.write && core {
			send(smbrpc.SMB1WriteCore, join(le16(fid), le16(uint16(len(m.data))), le32(0), le16(0)),
				join([]byte{0x01}, le16(uint16(len(m.data))), m.data), le16(uint16(len(m.data))), nil)
		} else if m.write {
			w := join([]byte{0xff, 0}, le16(0), le16(fid), le32(0), le32(0), le16(0x8), le16(uint16(len(m.data))), le16(0),
				le16(uint16(len(m.data))), le16(64), le32(0))
			send(smbrpc.SMB1WriteAndX, w, join([]byte{0}, m.data), join([]byte{0xff, 0}, le16(0), le16(uint16(len(m.data))), le16(0xffff), le16(0), le16(0)), nil)
		} else {
			r := join([]byte{0xff, 0}, le16(0), le16(fid), le32(0), le16(1024), le16(1024), le32(0), le16(1024), le32(0))
			rr := join([]byte{0xff, 0}, le16(0), le16(0), le16(0), le16(0), le16(uint16(len(m.data))), le16(60), le16(0), make([]byte, 8))
			send(smbrpc.SMB1ReadAndX, r, nil, rr, join([]byte{0}, m.data))
		}
	}
	send(smbrpc.SMB1Close, join(le16(fid), le32(0)), nil, nil, nil)
	return f
}

// TestRawPipeChannelSMB1: the same channel over SMB1, with tshark reading
// the built WRITE_ANDX and READ_ANDX lengths.
func TestRawPipeChannelSMB1(t *testing.T) {
	msgs := beacon(6, 8, 4*time.Second, 0.1, true)
	file := filepath.Join(t.TempDir(), "channel1.pcap")
	writePcap(t, file, pipeFlowSMB1("status_7a", msgs).pkts)
	var wn, wb, rn, rb int
	for _, row := range tsharkFields(t, file, "smb.cmd == 0x2f && smb.flags.response == 0", "smb.data_len_low") {
		v, _ := strconv.Atoi(row[0])
		wn, wb = wn+1, wb+v
	}
	for _, row := range tsharkFields(t, file, "smb.cmd == 0x2e && smb.flags.response == 1", "smb.data_len_low") {
		v, _ := strconv.Atoi(row[0])
		rn, rb = rn+1, rb+v
	}
	ops, st := replayFile(t, file)
	op := find(ops, "pipe", "")
	if op == nil || st.DecodeErrors != 0 {
		t.Fatalf("no pipe in %+v (%+v)", ops, st)
	}
	if wn != 16 || rn != 16 || op.Operation != "pipe channel" || op.Transport != "smb1" || op.Pipe != "status_7a" ||
		op.Field("written") != strconv.Itoa(wb)+" bytes" || op.Field("read") != strconv.Itoa(rb)+" bytes" ||
		op.Field("messages") != "16 written, 16 read" || op.Field("framing") != "4-byte length prefix (32 of 32 messages)" ||
		!strings.HasPrefix(op.Field("schedule"), "every ") || op.Field("framework") != "Cobalt Strike default (status_##)" {
		t.Fatalf("op %+v; tshark %d writes of %d bytes, %d reads of %d", op, wn, wb, rn, rb)
	}
}

// TestRawPipeSMB1CoreWrite: winexe's control pipe written with core
// SMB_COM_WRITEs, the lengths read by tshark: the command it runs, its
// exit code and the bytes both ways. The same channel over WRITE_ANDX
// gives the same operation.
func TestRawPipeSMB1CoreWrite(t *testing.T) {
	msgs := []pipeMsg{{0, true, []byte("get version\n")}, {0, false, []byte("version 0x0104\n")},
		{0, true, []byte("run ipconfig /all\n")}, {2 * time.Second, false, []byte("return_code 1\n")}}
	var ops [2]*Operation
	for i, core := range []bool{true, false} {
		file := filepath.Join(t.TempDir(), "winexe.pcap")
		writePcap(t, file, pipeFlowSMB1With("ahexec", msgs, core).pkts)
		var lens []string
		for _, row := range tsharkFields(t, file, "smb.cmd == 0x0b && smb.flags.response == 0", "smb.data_len") {
			lens = append(lens, row[0])
		}
		if want := map[bool]string{true: "12,18", false: ""}[core]; strings.Join(lens, ",") != want {
			t.Fatalf("core %v: tshark reads writes of %v, want %q", core, lens, want)
		}
		got, st := replayFile(t, file)
		ops[i] = find(got, "pipe", "")
		if op := ops[i]; op == nil || st.DecodeErrors != 0 || op.Transport != "smb1" || op.Field("tool") != "winexe" ||
			op.Command != "ipconfig /all" || op.Field("exit code") != "1" || op.Technique != "T1569.002" ||
			op.Field("written") != "30 bytes" || op.Field("read") != "29 bytes" {
			t.Fatalf("core %v: op %+v (%+v)", core, op, st)
		}
	}
	if fmt.Sprint(ops[0].Fields) != fmt.Sprint(ops[1].Fields) {
		t.Fatalf("core WRITE %v, WRITE_ANDX %v", ops[0].Fields, ops[1].Fields)
	}
}

// TestPipeChannelSeverity: a channel is a high-severity attack when a
// framework's default name, length framing or a schedule corroborates it,
// and medium on its raw bytes alone.
func TestPipeChannelSeverity(t *testing.T) {
	unframed := []pipeMsg{
		{0, true, []byte("HELLO agent v2\r\n")},
		{300 * time.Millisecond, false, []byte("READY 17 jobs\r\n")},
		{7 * time.Second, true, []byte("GET job 1\r\n")},
		{200 * time.Millisecond, false, []byte("job 1: none\r\n")},
	}
	for _, c := range []struct {
		name, pipe string
		msgs       []pipeMsg
		want       string
	}{
		{"bare", "ProductAgentPipe", unframed, SevMedium},
		{"framework default name", "msagent_4f", unframed, SevHigh},
		{"length framing", "ProductAgentPipe", poisson(2, 12, 20*time.Second), SevHigh},
		{"schedule", "ProductAgentPipe", beacon(5, 10, 10*time.Second, 0.2, false), SevHigh},
	} {
		ops, _ := runPackets(t, pipeFlow(c.pipe, c.msgs).pkts, Config{})
		att := DetectAttacks(ops, nil)
		if len(att) != 1 || att[0].Name != "Named-pipe C2 channel over SMB" {
			t.Fatalf("%s: attacks %+v", c.name, att)
		}
		if att[0].Severity != c.want || (c.want == SevMedium) != strings.Contains(att[0].Summary, "no length framing either") {
			t.Errorf("%s: severity %s, summary %q; want %s", c.name, att[0].Severity, att[0].Summary, c.want)
		}
	}
}
