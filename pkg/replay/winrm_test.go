package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// The WinRM captures under testdata/winrm were made by gen.sh there:
// pywinrm (python3-winrm, with python3-ntlm-auth's NTLM) as the real
// client running run_cmd('ipconfig', ['/all']) and run_ps(...) against a
// small responder, with message encryption (NTLM) and with Basic in
// clear. The client logged every SOAP message it sent and received in
// clear: that log, from an NTLM implementation independent of ours, is
// the oracle for what replay decrypts and decodes.
const winrmPassword = "Winrm-Lab-2026!"

type winrmLogEntry struct {
	Dir  string `json:"dir"`
	SOAP string `json:"soap"`
}

func winrmLog(t *testing.T, name string) []winrmLogEntry {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "winrm", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var log []winrmLogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e winrmLogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		log = append(log, e)
	}
	return log
}

func replayWith(t *testing.T, file string, cfg Config, hook func(int, []byte), edit func([]Packet)) ([]Operation, Stats) {
	t.Helper()
	src, c, err := OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pkts []Packet
	for {
		pk, err := src.Next()
		if err != nil {
			break
		}
		pk.Data = append([]byte(nil), pk.Data...)
		pkts = append(pkts, pk)
	}
	if edit != nil {
		edit(pkts)
	}
	var ops []Operation
	p := New(cfg, func(o Operation) { ops = append(ops, o) })
	p.winrmHook = hook
	for _, pk := range pkts {
		p.Packet(pk)
	}
	p.Flush()
	return ops, p.Stats()
}

var (
	reAction  = regexp.MustCompile(`<(?:\w+:)?Action[^>]*>[^<]*/([A-Za-z]+)</`)
	reCommand = regexp.MustCompile(`<(?:\w+:)?Command>([^<]*)</`)
	reArgs    = regexp.MustCompile(`<(?:\w+:)?Arguments>([^<]*)</`)
	reStdout  = regexp.MustCompile(`Name="stdout"[^>]*>([^<]+)</`)
)

// wantWinRMOps derives from the client's log the operations replay must
// report, in order: the action, and for a Command its command line, for a
// Receive the start of its stdout.
func wantWinRMOps(log []winrmLogEntry) (ops []struct{ op, command, output string }) {
	names := map[string]string{"Create": "Create shell", "Command": "Command", "Receive": "Receive", "Signal": "Signal terminate", "Delete": "Delete shell"}
	for i, e := range log {
		if e.Dir != "request" {
			continue
		}
		m := reAction.FindStringSubmatch(e.SOAP)
		w := struct{ op, command, output string }{op: names[m[1]]}
		if c := reCommand.FindStringSubmatch(e.SOAP); c != nil {
			w.command = c[1]
			for _, a := range reArgs.FindAllStringSubmatch(e.SOAP, -1) {
				w.command += " " + a[1]
			}
		}
		if m[1] == "Receive" && i+1 < len(log) {
			if s := reStdout.FindStringSubmatch(log[i+1].SOAP); s != nil {
				b, _ := base64.StdEncoding.DecodeString(s[1])
				w.output = strings.TrimSpace(string(b))
			}
		}
		ops = append(ops, w)
	}
	return ops
}

func checkWinRMOps(t *testing.T, ops []Operation, log []winrmLogEntry, auth, decrypted string) {
	t.Helper()
	var got []Operation
	var session *Operation
	for i := range ops {
		switch {
		case ops[i].Interface != "winrm":
			t.Errorf("unexpected %s %s", ops[i].Interface, ops[i].Operation)
		case ops[i].Operation == "session":
			session = &ops[i]
		default:
			got = append(got, ops[i])
		}
	}
	want := wantWinRMOps(log)
	if len(got) != len(want) {
		t.Fatalf("%d operations, the client sent %d requests", len(got), len(want))
	}
	for i, w := range want {
		g := &got[i]
		if g.Operation != w.op || g.Command != w.command || g.Decrypted != decrypted || g.Partial ||
			g.User != "alice" || g.Domain != "CORP" || g.Auth != auth || g.Encrypted {
			t.Errorf("op %d: got %s %q decrypted=%q partial=%v %s/%s, want %s %q", i, g.Operation, g.Command, g.Decrypted, g.Partial, g.Account(), g.Auth, w.op, w.command)
		}
		if w.output != "" && !strings.HasPrefix(w.output, g.Field("output")) || w.output == "" && g.Field("output") != "" {
			t.Errorf("op %d: output %q, the server sent %q", i, g.Field("output"), w.output)
		}
		switch {
		case strings.HasPrefix(w.command, "ipconfig"):
			if g.Technique != "T1059.003" || g.Phase != "execution" {
				t.Errorf("ipconfig: %s %s", g.Technique, g.Phase)
			}
		case strings.HasPrefix(w.command, "powershell -encodedcommand"):
			if g.Technique != "T1059.001" || g.Field("decoded command") != "Get-Process | Select-Object -First 3" {
				t.Errorf("run_ps: %s decoded %q", g.Technique, g.Field("decoded command"))
			}
		case w.op == "Create shell":
			if g.Technique != "T1021.006" || g.Phase != "lateral-movement" || g.Target != "cmd" || g.Noise {
				t.Errorf("create: %s %s %q noise=%v", g.Technique, g.Phase, g.Target, g.Noise)
			}
		case w.op == "Signal terminate", w.op == "Delete shell":
			if !g.Noise {
				t.Errorf("%s is plumbing", w.op)
			}
		}
	}
	if session == nil || session.Encrypted || session.Decrypted != decrypted || !session.Noise ||
		session.Field("requests decoded") != "Create 2, Command 2, Receive 2, Signal 2, Delete 2" {
		t.Errorf("session %+v", session)
	}
}

// TestWinRMNTLMDecrypt opens the NTLM-encrypted capture with the
// account's password: every message replay opens is byte for byte what
// pywinrm logged it sent or received, and the operations are those
// messages' actions and commands, marked decrypted.
func TestWinRMNTLMDecrypt(t *testing.T) {
	file := filepath.Join("testdata", "winrm", "ntlm.pcap")
	log := winrmLog(t, "ntlm.jsonl")
	var seen [2][]string
	ops, st := replayWith(t, file, Config{Secrets: secretsOf(t, `CORP\alice password:`+winrmPassword+"\n")},
		func(dir int, soap []byte) { seen[dir] = append(seen[dir], string(soap)) }, nil)
	var want [2][]string
	for _, e := range log {
		d := 0
		if e.Dir == "response" {
			d = 1
		}
		want[d] = append(want[d], e.SOAP)
	}
	for d := range 2 {
		if len(seen[d]) != len(want[d]) {
			t.Fatalf("direction %d: %d messages opened, the client logged %d", d, len(seen[d]), len(want[d]))
		}
		for i := range want[d] {
			if seen[d][i] != want[d][i] {
				t.Errorf("direction %d message %d differs from the client's plaintext:\n%q\n%q", d, i, seen[d][i], want[d][i])
			}
		}
	}
	if st.WinRMDecrypted != uint64(len(log)) || st.WinRMUndecryptable != 0 || st.Damaged() {
		t.Errorf("stats %+v", st)
	}
	checkWinRMOps(t, ops, log, "ntlm", "winrm")

	// tshark (4.0 does not decrypt these parts) counts the encrypted
	// requests and responses the session reports.
	var req, resp int
	for _, r := range tsharkFields(t, file, `http.content_type contains "multipart/encrypted"`, "frame.number", "http.request") {
		if len(r) > 1 && r[1] == "1" {
			req++
		} else {
			resp++
		}
	}
	for i := range ops {
		if ops[i].Operation == "session" {
			want := itoa(req) + " from the client, " + itoa(resp) + " from the server (application/HTTP-SPNEGO-session-encrypted)"
			if g := ops[i].Field("encrypted messages"); g != want {
				t.Errorf("encrypted messages %q, tshark %q", g, want)
			}
		}
	}
}

// TestWinRMUndecryptable: a wrong password opens nothing and a damaged
// message is refused (with every later one of its direction, as RC4
// cannot resume), never decoded as garbage.
func TestWinRMUndecryptable(t *testing.T) {
	file := filepath.Join("testdata", "winrm", "ntlm.pcap")
	ops, st := replayWith(t, file, Config{Secrets: secretsOf(t, `CORP\alice password:wrong`+"\n")}, nil, nil)
	if len(ops) != 1 || ops[0].Operation != "session" || ops[0].Sealed != SealedUndecryptable || !ops[0].Encrypted ||
		!strings.Contains(ops[0].Field("sealed"), "not decrypted") {
		t.Fatalf("wrong secret: %+v", ops)
	}
	if st.WinRMDecrypted != 0 || st.WinRMUndecryptable == 0 {
		t.Errorf("wrong secret: stats %+v", st)
	}

	// Damage the third encrypted request's sealed bytes.
	n := 0
	ops, st = replayWith(t, file, Config{Secrets: secretsOf(t, `CORP\alice password:`+winrmPassword+"\n")}, func(dir int, soap []byte) {
		if !strings.Contains(string(soap), "Envelope") {
			t.Errorf("opened garbage: %q", soap)
		}
	}, func(pkts []Packet) {
		for _, pk := range pkts {
			// Ethernet, IPv4 without options: the TCP source port at 34.
			if i := strings.Index(string(pk.Data), "application/octet-stream\r\n"); i >= 0 && len(pk.Data) > 36 && binary.BigEndian.Uint16(pk.Data[34:]) != 5985 {
				if n++; n == 3 {
					pk.Data[i+len("application/octet-stream\r\n")+4+16+40] ^= 0x55
				}
			}
		}
	})
	if n < 3 {
		t.Fatalf("only %d encrypted requests found", n)
	}
	decoded := 0
	for i := range ops {
		if ops[i].Operation != "session" {
			decoded++
			continue
		}
		if ops[i].Sealed != SealedUndecryptable || !strings.Contains(ops[i].Field("sealed"), "checksum") {
			t.Errorf("damaged: session %+v", ops[i])
		}
	}
	// The first two requests (and their responses) were opened; from the
	// damaged one on, the client's direction is lost.
	if decoded != 2 || st.WinRMUndecryptable == 0 {
		t.Errorf("damaged: %d operations decoded, stats %+v", decoded, st)
	}
}

// TestWinRMBasic decodes the unencrypted Basic capture in full: the same
// operations as the client's log, the user named, the password never
// carried anywhere.
func TestWinRMBasic(t *testing.T) {
	ops, st := replayWith(t, filepath.Join("testdata", "winrm", "basic.pcap"), Config{}, nil, nil)
	if st.Damaged() {
		t.Errorf("stats %+v", st)
	}
	checkWinRMOps(t, ops, winrmLog(t, "basic.jsonl"), "basic", "")
	b, _ := json.Marshal(ops)
	if strings.Contains(string(b), winrmPassword) || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(`CORP\alice:`+winrmPassword))) {
		t.Error("the Basic password is in the operations")
	}
}

// TestWinRMRun: the same capture through Run (the path live, store
// and follow replays take) gives the same operations.
func TestWinRMRun(t *testing.T) {
	file := filepath.Join("testdata", "winrm", "basic.pcap")
	src, c, err := OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ops []Operation
	if _, err := Run(context.Background(), src, Config{}, func(o Operation) { ops = append(ops, o) }); err != nil {
		t.Fatal(err)
	}
	want, _ := replayWith(t, file, Config{}, nil, nil)
	if len(ops) != len(want) {
		t.Errorf("Run: %d operations, Pipeline %d", len(ops), len(want))
	}
}

// TestWinRMKerberosAfterNTLM: a client that re-authenticates with
// Kerberos on the connection its NTLM session used (a new Negotiate
// handshake carrying an AP-REQ) starts a new security context: the later
// messages are Kerberos-protected, not NTLM messages that failed to open.
// The pywinrm capture (NTLM, opened with the password) goes on after its
// last exchange with a Kerberos handshake and one encrypted exchange.
func TestWinRMKerberosAfterNTLM(t *testing.T) {
	src, c, err := OpenFile(filepath.Join("testdata", "winrm", "ntlm.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pkts []Packet
	var h pkthdr.Packet
	fl := &tcpFlow{}
	for {
		pk, err := src.Next()
		if err != nil {
			break
		}
		pk.Data = append([]byte(nil), pk.Data...)
		if !pkthdr.Parse(pk.LinkType, pk.Data, &h) || h.Proto != 6 {
			t.Fatal("not TCP")
		}
		if h.TCPFlags&pkthdr.TCPFin != 0 {
			break // the connection goes on instead of closing
		}
		pkts = append(pkts, pk)
		fl.t = pk.Timestamp
		next := h.TCPSeq + uint32(h.PayloadN)
		if h.DstPort == 5985 {
			fl.cli, fl.srv = netip.AddrPortFrom(h.Src, h.SrcPort), netip.AddrPortFrom(h.Dst, h.DstPort)
			fl.cseq = next
		} else {
			fl.sseq = next
		}
	}
	post := func(hdr string, body []byte) []byte {
		return join([]byte(fmt.Sprintf("POST /wsman HTTP/1.1\r\nHost: 10.77.0.2:5985\r\n%sContent-Length: %d\r\n\r\n", hdr, len(body))), body)
	}
	ok := []byte("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")
	fl.send(true, post("Authorization: Negotiate "+base64.StdEncoding.EncodeToString(gssKrb(krbAPReq("CORP.TEST", "HTTP", "srv.corp.test")))+"\r\n", nil), 1400)
	fl.send(false, ok, 1400)
	// A Kerberos wrap token (RFC 4121: a 60-byte header for AES) and its
	// sealed SOAP, as MS-WSMV 2.2.9.1.1 frames it.
	const proto = "application/HTTP-SPNEGO-session-encrypted"
	wrapped := join(le32(60), make([]byte, 60), bytes.Repeat([]byte{0xa5}, 400))
	body := join([]byte("--Encrypted Boundary\r\n\tContent-Type: "+proto+"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=400\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n"),
		wrapped, []byte("--Encrypted Boundary--\r\n"))
	ct := "Content-Type: multipart/encrypted;protocol=\"" + proto + "\";boundary=\"Encrypted Boundary\"\r\n"
	fl.send(true, post(ct, body), 1400)
	fl.send(false, join([]byte(fmt.Sprintf("HTTP/1.1 200 \r\n%sContent-Length: %d\r\n\r\n", ct, len(body))), body), 1400)
	pkts = append(pkts, fl.pkts...)

	var ops []Operation
	p := New(Config{Secrets: secretsOf(t, `CORP\alice password:`+winrmPassword+"\n")}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range pkts {
		p.Packet(pk)
	}
	p.Flush()
	st := p.Stats()
	log := winrmLog(t, "ntlm.jsonl")
	if st.WinRMDecrypted != uint64(len(log)) || st.WinRMUndecryptable != 0 {
		t.Errorf("the NTLM messages opened, the Kerberos ones counted apart: stats %+v", st)
	}
	var session *Operation
	for i := range ops {
		if ops[i].Operation == "session" {
			session = &ops[i]
		}
	}
	if session == nil || session.Sealed == SealedUndecryptable || !session.Encrypted || session.Field("sealed") != "" ||
		session.Field("kerberos-protected messages") != "1 from the client, 1 from the server" || session.Decrypted != "" {
		t.Errorf("session %+v", session)
	}
}
