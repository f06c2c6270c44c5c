package replay

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/periodicity"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// Raw named pipes: pipes opened over SMB whose data is not DCE/RPC. What
// they carry decides what they are (docs/replay.md, "Raw named pipes"):
// a remote-execution service's pipes (by the public names of the tools, or
// an interactive shell read back through any pipe), a known benign
// protocol (SQL Server's TDS), or, when data goes both ways between two
// hosts, a named-pipe channel: the peer-to-peer command and control that
// Cobalt Strike's SMB beacon, Sliver, Havoc, Covenant and Metasploit
// pivots run over SMB.

// Bounds on one raw pipe.
const (
	maxPipeHead  = remComMsgLen // bytes kept per direction: a whole RemCom request
	maxPipeTimes = 1024         // write times kept for the schedule (4 bytes each)
	// pipeBurst: writes closer than this to the last one kept are one
	// check-in (a frame's length and body; far below periodicity's
	// shortest period).
	pipeBurst = 0.05
	// maxFrameLen is the largest length a 4-byte frame header may announce
	// to count as one: far above a C2 message, while a random word seldom
	// fits under it.
	maxFrameLen = 16 << 20
)

// pipeIO follows the messages of a raw pipe: each SMB write or read is one.
type pipeIO struct {
	msgs   [2]int
	first  time.Time
	writes []float32 // client writes, seconds from the first, bursts as one (a pivot's polls)
	// Length framing: a message of 4 bytes announcing the next one's
	// length, or one starting with its own length after those 4 bytes.
	want   [2]int
	frames [2]int
	other  [2]int
	// rpc counts messages that start with a DCE/RPC PDU header: a pipe
	// whose first bytes were not one (the capture began inside a
	// fragmented PDU) still carries RPC.
	rpc int
}

func (p *pipeIO) add(dir int, b []byte, ts time.Time) {
	p.msgs[dir]++
	if _, _, ok := smbrpc.DCERPCHeader(b); ok {
		p.rpc++
	}
	if dir == 0 && len(p.writes) < maxPipeTimes {
		if len(p.writes) == 0 {
			p.first = ts
		}
		if t := float32(ts.Sub(p.first).Seconds()); len(p.writes) == 0 || t-p.writes[len(p.writes)-1] >= pipeBurst {
			p.writes = append(p.writes, t)
		}
	}
	switch {
	case p.want[dir] > 0 && len(b) == p.want[dir]:
		p.frames[dir] += 2 // the length and the message
		p.want[dir] = 0
	case len(b) == 4:
		p.want[dir] = 0
		if v := binary.LittleEndian.Uint32(b); v > 0 && v <= maxFrameLen {
			p.want[dir] = int(v)
		} else {
			p.other[dir]++
		}
	case len(b) > 4 && int(binary.LittleEndian.Uint32(b)) == len(b)-4:
		p.frames[dir]++
		p.want[dir] = 0
	default:
		p.other[dir]++
		p.want[dir] = 0
	}
}

// framed reports whether most messages (at least two) carried a 4-byte
// little-endian length.
func (p *pipeIO) framed() (n, all int, ok bool) {
	n = p.frames[0] + p.frames[1]
	all = n + p.other[0] + p.other[1]
	return n, all, n >= 2 && n*2 > all
}

// execTool is a remote-execution tool known by the prefix of its pipes'
// names. Sources: Sysinternals PsExec (PSEXESVC, PSEXESVC-HOST-PID-stdin),
// RemCom and impacket's psexec.py (RemCom_communicaton, RemCom_stdinHOSTPID;
// github.com/kavika13/RemCom, impacket examples/psexec.py), PAExec
// (github.com/poweradminllc/PAExec: PAExec-PID-HOST), CsExec
// (github.com/malcomvetter/CSExec: csexecsvc), winexe (winexesvc's
// "ahexec", "ahexec_stdin/stdout/stderrID": sourceforge winexe
// winexesvc/shared.h); RCMD as the name list had it before.
var execTools = []struct{ prefix, tool string }{
	{"PSEXESVC", "PsExec"},
	{"REMCOM", "RemCom (impacket psexec.py)"},
	{"PAEXEC", "PAExec"},
	{"CSEXEC", "CsExec"},
	{"RCMD", "RCMD"},
	{"AHEXEC", "winexe"},
}

func execTool(name string) string {
	n := strings.ToUpper(name)
	for _, t := range execTools {
		if strings.HasPrefix(n, t.prefix) {
			return t.tool
		}
	}
	return ""
}

// c2Pipes are the published default pipe names of C2 frameworks' SMB
// (peer-to-peer) listeners and post-exploitation jobs: data, not logic,
// to name a framework in a note. '#' stands for one hex digit, '*' for any
// rest. A channel is raised whatever its name; an operator chooses any.
// Sources: Cobalt Strike's documentation and Sigma
// rules/windows/pipe_created/pipe_created_hktl_cobaltstrike.yml
// (msagent_##, postex_####, postex_ssh_####, status_##, MSSE-####-server);
// Covenant's SMB listener default PipeName "gruntsvc"
// (cobbr/Covenant Models/Listeners); Metasploit's reverse_named_pipe
// default PIPENAME "msf-pipe" (and its pivot command's example; msf-pipe-PID
// names are reported from intrusions); PoshC2's default PBindPipeName
// "jaccdpqnvbrrxlaf" (nettitude/PoshC2 resources/config-template.yml); Havoc's example
// profile SMB pipe "demon_pipe" (HavocFramework/Havoc profiles).
var c2Pipes = []struct{ pattern, framework string }{
	{"msagent_##", "Cobalt Strike SMB beacon default (msagent_##)"},
	{"postex_ssh_*", "Cobalt Strike SSH job default (postex_ssh_####)"},
	{"postex_*", "Cobalt Strike post-exploitation job default (postex_####)"},
	{"status_##", "Cobalt Strike default (status_##)"},
	{"MSSE-*-server", "Cobalt Strike artifact kit default (MSSE-####-server)"},
	{"gruntsvc", "Covenant SMB grunt default (gruntsvc)"},
	{"msf-pipe", "Metasploit named-pipe pivot default (msf-pipe)"},
	{"msf-pipe-*", "Metasploit named pipe (msf-pipe-PID, as seen in the wild)"},
	{"jaccdpqnvbrrxlaf", "PoshC2 SMB implant default"},
	{"demon_pipe", "Havoc example profile (demon_pipe)"},
}

// c2Framework names the framework whose published default the pipe name
// is, or "".
func c2Framework(name string) string {
	for _, p := range c2Pipes {
		if pipeMatch(p.pattern, name) {
			return p.framework
		}
	}
	return ""
}

// pipeMatch matches a pattern of c2Pipes, case-insensitively.
func pipeMatch(pat, name string) bool {
	pat, name = strings.ToLower(pat), strings.ToLower(name)
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '*':
			rest := pat[i+1:]
			return len(name) >= len(rest) && strings.HasSuffix(name, rest) && len(name)-len(rest) > 0
		case '#':
			if name == "" || !isHex(name[0]) {
				return false
			}
		default:
			if name == "" || name[0] != pat[i] {
				return false
			}
		}
		name = name[1:]
	}
	return name == ""
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// sqlPipe reports SQL Server's pipes: sql\query for the default instance,
// MSSQL$NAME\sql\query for a named one.
func sqlPipe(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "/", `\`))
	return n == `sql\query` || strings.HasPrefix(n, `mssql$`) && strings.HasSuffix(n, `\sql\query`)
}

// tdsPacket reports whether b starts with a TDS packet header (MS-TDS
// 2.2.3.1): a client message type, a status of known bits, a big-endian
// length covering at least the header and no more than a packet may,
// window 0.
func tdsPacket(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	switch b[0] {
	case 0x01, 0x03, 0x06, 0x07, 0x0e, 0x10, 0x11, 0x12: // SQL batch, RPC, attention, bulk, transaction, login7, SSPI, prelogin
	default:
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	return b[1]&^0x1f == 0 && n >= 8 && n <= 32768 && n <= len(b) && b[7] == 0
}

// shellKind recognises an interactive shell from what is read back: the
// banner or prompt of cmd.exe or PowerShell.
func shellKind(out string) string {
	switch {
	case strings.Contains(out, "Windows PowerShell") && strings.Contains(out, "Copyright"),
		psPrompt(out):
		return "PowerShell"
	case strings.Contains(out, "Microsoft Windows [Version ") && strings.Contains(out, "Microsoft Corporation"),
		cmdPrompt(out):
		return "cmd.exe"
	}
	return ""
}

// cmdPrompt reports a line starting with cmd.exe's prompt, a drive's
// path and '>' ("C:\Windows\system32>").
func cmdPrompt(s string) bool {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if len(l) >= 4 && isLetter(l[0]) && l[1] == ':' && l[2] == '\\' {
			if i := strings.IndexByte(l, '>'); i > 2 && !strings.ContainsAny(l[:i], "<|\"") {
				return true
			}
		}
	}
	return false
}

// psPrompt reports PowerShell's prompt ("PS C:\Users\x> ").
func psPrompt(s string) bool {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "PS ") && cmdPrompt(l[3:]) {
			return true
		}
	}
	return false
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// entropy is the Shannon entropy of b in bits per byte: near 8 for
// encrypted or compressed data, 4-5 for text.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var n [256]int
	for _, c := range b {
		n[c]++
	}
	h := 0.0
	for _, c := range n {
		if c > 0 {
			p := float64(c) / float64(len(b))
			h -= p * math.Log2(p)
		}
	}
	return h
}

// rawPipeOp fills op, a raw pipe's "pipe i/o" operation with its byte
// counts, from what the pipe carried: the pipe's kind decides technique,
// phase, command and noise.
func rawPipeOp(op *Operation, f *smbFile) {
	head := func(d int) []byte { return f.text[d][:min(len(f.text[d]), maxPipeText)] }
	var txt [2]string
	var cmd []string
	for d := range f.text {
		if t, ok := printable(head(d)); ok {
			txt[d] = t
			cmd = append(cmd, t)
			op.Fields = append(op.Fields, Field{[]string{"stdin", "stdout"}[d], t})
		}
	}
	op.Command = strings.Join(cmd, " | ")
	tool := execTool(op.Pipe)
	shell := shellKind(txt[1])
	switch {
	case tool != "" || shell != "":
		op.Technique, op.Phase = "T1569.002", "execution"
		if tool != "" {
			op.Fields = append(op.Fields, Field{"tool", tool})
		}
		if shell != "" {
			op.Fields = append(op.Fields, Field{"shell", shell + " (its banner or prompt read back)"})
		}
		switch {
		case tool == "winexe":
			winexeControl(op, txt)
		case strings.HasPrefix(tool, "RemCom"):
			if m, ok := parseRemComMessage(f.text[0]); ok {
				remComOp(op, m, f.text[1])
			}
		}
		if op.Command == "" && tool == "PsExec" {
			op.Fields = append(op.Fields, Field{"note", "pipe data not readable (PsExec 2.x encrypts it)"})
		}
	case sqlPipe(op.Pipe) && tdsPacket(f.text[0]):
		op.Noise = true
		op.Fields = append(op.Fields, Field{"protocol", "TDS (SQL Server)"})
	case f.io.rpc > 0:
		op.Noise = true
		op.Fields = append(op.Fields, Field{"protocol", "DCE/RPC (the capture began inside a call)"})
	case f.rawN[0] > 0 && f.rawN[1] > 0:
		channelOp(op, f)
	default:
		op.Noise = true
	}
}

// channelOp makes a named-pipe channel of a raw pipe: its use, its
// schedule and the framework its name is the default of.
func channelOp(op *Operation, f *smbFile) {
	op.Operation = "pipe channel"
	// The client host writes the commands of a controller it relays to,
	// and reads the answers, over SMB: C2 carried by SMB (T1071.002), the
	// client acting as an internal proxy for it (T1090.001).
	op.Technique, op.Phase = "T1071.002", "command-and-control"
	io := &f.io
	op.Fields = append(op.Fields,
		Field{"messages", fmt.Sprintf("%d written, %d read", io.msgs[0], io.msgs[1])},
		Field{"duration", fmtSeconds(f.last.Sub(f.opened).Seconds())})
	if n, all, ok := io.framed(); ok {
		op.Fields = append(op.Fields, Field{"framing", fmt.Sprintf("4-byte length prefix (%d of %d messages)", n, all)})
	}
	if s := pipeSchedule(io.writes); s != "" {
		op.Fields = append(op.Fields, Field{"schedule", s})
	}
	op.Fields = append(op.Fields, Field{"entropy", fmt.Sprintf("%.1f bits/byte written, %.1f read", entropy(f.text[0]), entropy(f.text[1]))})
	if fw := c2Framework(op.Pipe); fw != "" {
		op.Fields = append(op.Fields, Field{"framework", fw})
	}
	op.Fields = append(op.Fields, Field{"also", "T1090.001 (the client relays to this host as an internal proxy)"})
}

// pipeSchedule describes the writes' schedule when they keep one.
func pipeSchedule(writes []float32) string {
	if len(writes) < periodicity.MinEvents {
		return ""
	}
	ts := make([]float64, len(writes))
	for i, t := range writes {
		ts[i] = float64(t)
	}
	r := periodicity.Analyze(ts)
	if r.Period < periodicity.MinPeriod || r.Regularity < 0.5 {
		return ""
	}
	return fmt.Sprintf("every %s ±%.0f%% (regularity %.2f over %d check-ins)", fmtSeconds(r.Period), 100*r.Jitter, r.Regularity, r.Events)
}

func fmtSeconds(s float64) string {
	return (time.Duration(s*10) * time.Second / 10).String()
}

// winexeControl reads winexe's control pipe (ahexec): the client writes
// "run COMMAND", the service answers "return_code N" when it ends.
func winexeControl(op *Operation, txt [2]string) {
	for _, l := range strings.Split(txt[0], "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(l), "run "); ok {
			op.Command = c
		}
	}
	for _, l := range strings.Split(txt[1], "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(l), "return_code "); ok {
			op.Fields = append(op.Fields, Field{"exit code", c})
		}
	}
}

// RemCom's request on RemCom_communicaton (RemCom's RemComMessage,
// impacket psexec.py's RemComMessage): ANSI strings in fixed fields.
const (
	remComCmdLen  = 4096
	remComPathLen = 260 // MAX_PATH
	remComMsgLen  = remComCmdLen + remComPathLen + 4 + 4 + remComPathLen + 4
	remComRespLen = 8 // ErrorCode, ReturnCode
)

type remComMessage struct {
	command, workDir, machine string
	priority, pid             uint32
	noWait                    bool
}

// parseRemComMessage decodes a RemCom request: exactly its size, a
// non-empty command, strings NUL-terminated inside their fields.
func parseRemComMessage(b []byte) (remComMessage, bool) {
	var m remComMessage
	if len(b) != remComMsgLen {
		return m, false
	}
	str := func(f []byte) (string, bool) {
		i := strings.IndexByte(string(f), 0)
		if i < 0 {
			return "", false
		}
		return string(f[:i]), true
	}
	var ok1, ok2, ok3 bool
	m.command, ok1 = str(b[:remComCmdLen])
	o := remComCmdLen
	m.workDir, ok2 = str(b[o : o+remComPathLen])
	o += remComPathLen
	m.priority = binary.LittleEndian.Uint32(b[o:])
	m.pid = binary.LittleEndian.Uint32(b[o+4:])
	o += 8
	m.machine, ok3 = str(b[o : o+remComPathLen])
	o += remComPathLen
	m.noWait = binary.LittleEndian.Uint32(b[o:]) != 0
	if !ok1 || !ok2 || !ok3 || m.command == "" {
		return m, false
	}
	return m, true
}

func remComOp(op *Operation, m remComMessage, resp []byte) {
	op.Command = strings.TrimSpace(m.command)
	// The request's text is now the command; drop the raw stdin field.
	kept := op.Fields[:0]
	for _, f := range op.Fields {
		if f.Name != "stdin" {
			kept = append(kept, f)
		}
	}
	op.Fields = kept
	if m.workDir != "" {
		op.Fields = append(op.Fields, Field{"working directory", m.workDir})
	}
	op.Fields = append(op.Fields, Field{"client", fmt.Sprintf("%s pid %d", m.machine, m.pid)})
	if m.noWait {
		op.Fields = append(op.Fields, Field{"wait", "no"})
	}
	if len(resp) == remComRespLen {
		if e := binary.LittleEndian.Uint32(resp); e != 0 {
			op.Fields = append(op.Fields, Field{"error", fmt.Sprintf("%d", e)})
		} else {
			op.Fields = append(op.Fields, Field{"exit code", fmt.Sprintf("%d", int32(binary.LittleEndian.Uint32(resp[4:])))})
		}
	}
}
