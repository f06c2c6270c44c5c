package winrm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMessageLen(t *testing.T) {
	req := "POST /wsman HTTP/1.1\r\nHost: a:5985\r\nContent-Length: 5\r\n\r\nhello"
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n"
	resp401 := "HTTP/1.1 401 \r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n"
	resp204 := "HTTP/1.1 204 No\r\nContent-Length: 9\r\n\r\n"
	for _, tc := range []struct {
		name string
		in   string
		want int64
	}{
		{"request", req, int64(len(req))},
		{"request prefix", req[:10], 0},
		{"headers only", req[:len(req)-5], int64(len(req))},
		{"chunked", chunked, int64(len(chunked))},
		{"chunked cut in a chunk", chunked[:52], 52 + 1}, // at least one more byte
		{"response 401 no body", resp401, int64(len(resp401))},
		{"204 ignores length", resp204, int64(len(resp204))},
		{"huge length", "POST /wsman HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n", maxContentLength + 59},
		{"not http", "\x00\x00\x00\x10SMB", -1},
		{"lower-case method", "post /wsman HTTP/1.1\r\n\r\n", -1},
		{"bad length", "POST /wsman HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", -1},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -1},
		{"H prefix", "HTT", 0},
	} {
		got := MessageLen([]byte(tc.in))
		if tc.name == "chunked cut in a chunk" {
			if got <= int64(52) {
				t.Errorf("%s: %d, want more than the 52 bytes present", tc.name, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s: MessageLen = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestParseMessage(t *testing.T) {
	chunked := "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
	m, _, err := ParseMessage([]byte(chunked), nil)
	if err != nil || m.Request || m.Status != 200 || string(m.Body) != "helloabc" || m.Header("content-type") != "application/soap+xml" {
		t.Fatalf("%+v %v", m, err)
	}
	req := "POST /wsman?PSVersion=5.1 HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\nContent-Length: 2\r\n\r\nab"
	m, _, err = ParseMessage([]byte(req), nil)
	if err != nil || !m.Request || m.Method != "POST" || m.Target != "/wsman?PSVersion=5.1" || string(m.Body) != "ab" {
		t.Fatalf("%+v %v", m, err)
	}
	a, ok := ParseAuth(m.Header("Authorization"))
	if !ok || a.Scheme != SchemeBasic || a.User != "user" || a.Token != nil {
		t.Fatalf("basic: %+v", a)
	}
	if !IsWSManRequest([]byte(req)) || IsWSManRequest([]byte("POST /index")) {
		t.Error("IsWSManRequest")
	}
	if i := Resync([]byte("junk\r\nxxHTTP/1.1 no\nPOST /wsman HTTP/1.1")); i != 20 {
		t.Errorf("Resync = %d", i)
	}
}

// encryptedBody builds a multipart/encrypted body as pywinrm and Windows
// write it (MS-WSMV 2.2.9.1.1).
func encryptedBody(sig, sealed []byte, plainLen int) []byte {
	var b bytes.Buffer
	b.WriteString("--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n")
	b.WriteString("\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=")
	b.WriteString(strconv.Itoa(plainLen))
	b.WriteString("\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n")
	binary.Write(&b, binary.LittleEndian, uint32(len(sig)))
	b.Write(sig)
	b.Write(sealed)
	b.WriteString("--Encrypted Boundary--\r\n")
	return b.Bytes()
}

func TestEncryptedParts(t *testing.T) {
	proto, boundary, ok := Encryption(`multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"`)
	if !ok || proto != ProtoSPNEGO || boundary != "Encrypted Boundary" {
		t.Fatal(proto, boundary, ok)
	}
	sig := bytes.Repeat([]byte{1}, 16)
	// Sealed bytes that happen to hold the boundary: the length decides.
	sealed := []byte("ab--Encrypted Boundary\r\ncd")
	body := encryptedBody(sig, sealed, len(sealed))
	parts, err := EncryptedParts(nil, body, boundary)
	if err != nil || len(parts) != 1 {
		t.Fatal(parts, err)
	}
	p := parts[0]
	if p.Protocol != ProtoSPNEGO || p.Length != len(sealed) || p.Type != "application/soap+xml;charset=UTF-8" {
		t.Errorf("%+v", p)
	}
	s, m, err := p.Split()
	if err != nil || !bytes.Equal(s, sig) || !bytes.Equal(m, sealed) {
		t.Errorf("split: %x %q %v", s, m, err)
	}
	if _, err := EncryptedParts(nil, []byte("nothing"), boundary); err == nil {
		t.Error("no boundary accepted")
	}
	bad := EncryptedPart{Data: []byte{0xff, 0xff, 0xff, 0x7f, 1}}
	if _, _, err := bad.Split(); err == nil {
		t.Error("hostile signature length accepted")
	}
}

const commandXML = `<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">
<env:Header><a:To>http://srv:5985/wsman</a:To>
<w:ResourceURI env:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>
<a:Action env:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command</a:Action>
<a:MessageID>uuid:1</a:MessageID>
<w:SelectorSet><w:Selector Name="ShellId">11111111-2222-3333-4444-555555555555</w:Selector></w:SelectorSet>
<w:OptionSet><w:Option Name="WINRS_CONSOLEMODE_STDIN">TRUE</w:Option></w:OptionSet></env:Header>
<env:Body><rsp:CommandLine><rsp:Command>ipconfig</rsp:Command><rsp:Arguments>/all</rsp:Arguments></rsp:CommandLine></env:Body></env:Envelope>`

func TestParseEnvelope(t *testing.T) {
	e, err := ParseEnvelope([]byte(commandXML))
	if err != nil {
		t.Fatal(err)
	}
	if e.ActionName() != "Command" || ResourceKind(e.ResourceURI) != ShellCmd || e.ShellID != "11111111-2222-3333-4444-555555555555" ||
		e.Command != "ipconfig" || len(e.Arguments) != 1 || e.Arguments[0] != "/all" || e.Body != "CommandLine" ||
		len(e.Options) != 1 || e.Options[0] != (Field{"WINRS_CONSOLEMODE_STDIN", "TRUE"}) {
		t.Errorf("%+v", e)
	}
	recv := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action xmlns:a="x">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action></s:Header><s:Body><rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C1">` +
		base64.StdEncoding.EncodeToString([]byte("Windows IP Configuration\r\n")) + `</rsp:Stream><rsp:Stream Name="stdout" CommandId="C1" End="true"></rsp:Stream><rsp:CommandState CommandId="C1" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>`
	// As UTF-16LE with a byte-order mark, as Windows may send it.
	u16 := []byte{0xff, 0xfe}
	for _, r := range recv {
		u16 = append(u16, byte(r), byte(r>>8))
	}
	e, err = ParseEnvelope(ToUTF8(u16, ""))
	if err != nil {
		t.Fatal(err)
	}
	if e.ActionName() != "ReceiveResponse" || len(e.Streams) != 2 || string(e.Streams[0].Data) != "Windows IP Configuration\r\n" ||
		!e.Streams[1].End || e.ExitCode != "0" || e.CommandID != "C1" || !strings.HasSuffix(e.State, "/Done") {
		t.Errorf("%+v", e)
	}
	wmi := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Process/Create</a:Action><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Process</w:ResourceURI></s:Header><s:Body><p:Create_INPUT xmlns:p="x"><p:CommandLine>calc.exe</p:CommandLine><p:CurrentDirectory>C:\</p:CurrentDirectory></p:Create_INPUT></s:Body></s:Envelope>`
	e, err = ParseEnvelope([]byte(wmi))
	if err != nil || ResourceKind(e.ResourceURI) != ShellWMI || ShortResource(e.ResourceURI) != "root/cimv2/Win32_Process" ||
		len(e.Params) != 2 || e.Params[0] != (Field{"CommandLine", "calc.exe"}) {
		t.Errorf("%+v %v", e, err)
	}
	if _, err := ParseEnvelope([]byte("<html><body>x</body></html>")); err == nil {
		t.Error("html taken for soap")
	}
}

// psrpCreatePipeline (testdata/create_pipeline.xml) is a CREATE_PIPELINE
// message's data laid out as
// MS-PSRP 2.2.2.10 and 2.2.3.11-12 document it: the PowerShell property
// holding Cmds (a list of commands, each Cmd, IsScript and Args with N
// and V), then the other properties of the message.
var psrpCreatePipeline = func() string {
	b, err := os.ReadFile(filepath.Join("testdata", "create_pipeline.xml"))
	if err != nil {
		panic(err)
	}
	return "\xef\xbb\xbf" + string(b)
}()

// psrpMessage lays out a PSRP message (MS-PSRP 2.2.1) in fragments of at
// most max blob bytes (2.2.4).
func psrpMessage(typ uint32, data string, objectID uint64, max int) [][]byte {
	msg := binary.LittleEndian.AppendUint32(nil, 2) // destination: server
	msg = binary.LittleEndian.AppendUint32(msg, typ)
	msg = append(msg, bytes.Repeat([]byte{0xaa}, 16)...) // RPID
	msg = append(msg, bytes.Repeat([]byte{0xbb}, 16)...) // PID
	msg = append(msg, data...)
	var frags [][]byte
	for id := uint64(0); len(msg) > 0; id++ {
		n := min(max, len(msg))
		f := binary.BigEndian.AppendUint64(nil, objectID)
		f = binary.BigEndian.AppendUint64(f, id)
		var flags byte
		if id == 0 {
			flags |= fragStart
		}
		if n == len(msg) {
			flags |= fragEnd
		}
		f = append(f, flags)
		f = binary.BigEndian.AppendUint32(f, uint32(n))
		frags = append(frags, append(f, msg[:n]...))
		msg = msg[n:]
	}
	return frags
}

func TestPSRPCreatePipeline(t *testing.T) {
	frags := psrpMessage(MsgCreatePipeline, psrpCreatePipeline, 7, 300)
	if len(frags) < 3 {
		t.Fatalf("%d fragments: the test wants the message split", len(frags))
	}
	var d Defragmenter
	var got []PSRPMessage
	// The first fragment alone (a Command's Arguments), the rest in one
	// Send stream.
	if err := d.Add(frags[0], func(m PSRPMessage) { got = append(got, m) }); err != nil || len(got) != 0 {
		t.Fatal(err, got)
	}
	if err := d.Add(bytes.Join(frags[1:], nil), func(m PSRPMessage) { got = append(got, m) }); err != nil || len(got) != 1 {
		t.Fatal(err, len(got))
	}
	if got[0].Type != MsgCreatePipeline || MessageTypeName(got[0].Type) != "CREATE_PIPELINE" || got[0].Destination != 2 {
		t.Errorf("%+v", got[0])
	}
	cmds, err := PipelineCommands(got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if s := Pipeline(cmds); s != "Get-Process -Name lsass -ComputerName dc1,dc2 | Out-String 'x y\r\n'" {
		t.Errorf("pipeline %q", s)
	}
	// A fragment missing in the middle: the object is dropped, not
	// joined wrong.
	d = Defragmenter{}
	got = nil
	d.Add(append(append([]byte(nil), frags[0]...), frags[2]...), func(m PSRPMessage) { got = append(got, m) })
	if len(got) != 0 || d.Dropped != 1 {
		t.Errorf("joined across a lost fragment: %d messages, %d dropped", len(got), d.Dropped)
	}
	// A hostile blob length is refused without allocating it.
	h := append([]byte(nil), frags[0][:FragmentHeaderLen]...)
	binary.BigEndian.PutUint32(h[17:], 0xffffffff)
	if _, _, err := ParseFragment(h); err == nil {
		t.Error("hostile fragment length accepted")
	}
}

func TestClientHelloSNI(t *testing.T) {
	name := "srv.example.test"
	ext := []byte{0, 0}                                                          // server_name
	sn := append([]byte{0, byte(len(name) + 3), 0, 0, byte(len(name))}, name...) // list length, host_name, length
	ext = binary.BigEndian.AppendUint16(ext, uint16(len(sn)))
	ext = append(ext, sn...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0, 0, 2, 0x13, 1, 1, 0)
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	rec := append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
	if n := TLSRecordLen(rec); n != len(rec) {
		t.Errorf("TLSRecordLen = %d, want %d", n, len(rec))
	}
	if got, ok := ClientHelloSNI(rec); !ok || got != name {
		t.Errorf("sni %q %v", got, ok)
	}
}

// TestPipelineCommandArgs: how parameters are rendered (MS-PSRP 2.2.3.13:
// N the name, null for a positional value; V the value). Ruby's winrm
// gem, which evil-winrm drives, sends its command as Invoke-Expression
// with a parameter named "-Command" (dash included) whose value is null,
// then the script as a positional value: that reads as
// `Invoke-expression -Command <script>`. A named parameter with a null
// value is a switch (-Force), never "$null".
func TestPipelineCommandArgs(t *testing.T) {
	cmd := func(name string, args ...string) string {
		s := `<Obj><MS><S N="Cmd">` + name + `</S><B N="IsScript">false</B><Obj N="Args"><TNRef RefId="0" /><LST>`
		for _, a := range args {
			s += `<Obj><MS>` + a + `</MS></Obj>`
		}
		return s + `</LST></Obj></MS></Obj>`
	}
	doc := func(cmds ...string) []byte {
		s := `<Obj RefId="0"><MS><Obj N="PowerShell"><MS><Obj N="Cmds"><LST>`
		for _, c := range cmds {
			s += c
		}
		return []byte(s + `</LST></Obj></MS></Obj></MS></Obj>`)
	}
	for _, tc := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"winrm gem (evil-winrm)", doc(
			cmd("Invoke-expression", `<S N="N">-Command</S><Nil N="V" />`, `<Nil N="N" /><S N="V">whoami /all</S>`),
			cmd("Out-string")),
			"Invoke-expression -Command 'whoami /all' | Out-string"},
		{"switch", doc(cmd("Remove-Item", `<S N="N">Path</S><S N="V">C:\x.txt</S>`, `<S N="N">Force</S><Nil N="V" />`)),
			`Remove-Item -Path C:\x.txt -Force`},
		{"positional null", doc(cmd("Write-Output", `<Nil N="N" /><Nil N="V" />`)),
			"Write-Output $null"},
	} {
		cmds, err := PipelineCommands(tc.doc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s := Pipeline(cmds); s != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

// TestPipelineStatements: a CREATE_PIPELINE of several statements
// (PowerShell's AddStatement; "Get-Date; whoami | Out-String") carries
// them in the PowerShell object's ExtraCmds, one Obj with its own Cmds per
// statement, the first statement repeated in Cmds (PowerShell's
// PowerShell.ToPSObjectForRemoting and pypsrp's Pipeline write it so;
// MS-PSRP 2.2.3.11 lists the PowerShell object's properties). Statements
// are joined by "; ", each one's commands by " | ", and the first is not
// shown twice. A client that sent only the further statements in
// ExtraCmds loses none of Cmds.
func TestPipelineStatements(t *testing.T) {
	cmd := func(name string, args ...string) string {
		s := `<Obj><MS><S N="Cmd">` + name + `</S><B N="IsScript">false</B><Obj N="Args"><TNRef RefId="0" /><LST>`
		for _, a := range args {
			s += `<Obj><MS>` + a + `</MS></Obj>`
		}
		return s + `</LST></Obj></MS></Obj>`
	}
	list := func(n string, items ...string) string {
		return `<Obj N="` + n + `"><TNRef RefId="0" /><LST>` + strings.Join(items, "") + `</LST></Obj>`
	}
	stmt := func(cmds ...string) string { return `<Obj><MS>` + list("Cmds", cmds...) + `</MS></Obj>` }
	doc := func(props ...string) []byte {
		return []byte(`<Obj RefId="0"><MS><Obj N="PowerShell"><MS>` + strings.Join(props, "") + `<B N="IsNested">false</B></MS></Obj></MS></Obj>`)
	}
	date, who, out := cmd("Get-Date"), cmd("whoami", `<Nil N="N" /><S N="V">/all</S>`), cmd("Out-String")
	for _, tc := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"one statement, no ExtraCmds", doc(list("Cmds", who, out), `<Nil N="ExtraCmds" />`), "whoami /all | Out-String"},
		{"ExtraCmds after Cmds", doc(list("Cmds", date), list("ExtraCmds", stmt(date), stmt(who, out))), "Get-Date; whoami /all | Out-String"},
		{"ExtraCmds before Cmds", doc(list("ExtraCmds", stmt(who, out), stmt(date)), list("Cmds", who, out)), "whoami /all | Out-String; Get-Date"},
		{"only the further statements", doc(list("Cmds", date), list("ExtraCmds", stmt(who, out))), "Get-Date; whoami /all | Out-String"},
	} {
		cmds, err := PipelineCommands(tc.doc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s := Script(cmds); s != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

// TestDecodeCLIXMLString: MS-PSRP 2.2.5.3.2 escapes UTF-16 code units
// XML cannot carry as _xHHHH_, a character beyond the BMP as its two
// surrogates: they are one character again, never two replacement marks.
func TestDecodeCLIXMLString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a_x000D__x000A_b", "a\r\nb"},
		{"_xD83D__xDE00_", "\U0001F600"},
		{"x_xD83D_y", "x\uFFFDy"}, // a lone surrogate
		{"_x00zz_", "_x00zz_"},
		{"plain", "plain"},
	} {
		if got := decodeCLIXMLString(c.in); got != c.want {
			t.Errorf("decodeCLIXMLString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestEnvelopeLongStream: a stream whose base64 text runs past MaxText
// (a Receive of a large output, a Send of a long script) keeps what fits,
// whole base64 quanta, and counts what was cut; it is never dropped
// whole, nor cut silently.
func TestEnvelopeLongStream(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (MaxText/4*3)/16+4096) // base64 longer than MaxText
	b64 := base64.StdEncoding.EncodeToString(data)
	env := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:ReceiveResponse>` +
		`<rsp:Stream Name="stdout" CommandId="C1">` + b64 + `</rsp:Stream><rsp:Stream Name="stderr" CommandId="C1">` + base64.StdEncoding.EncodeToString([]byte("ok")) + `</rsp:Stream>` +
		`</rsp:ReceiveResponse></s:Body></s:Envelope>`
	e, err := ParseEnvelope([]byte(env))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Streams) != 2 {
		t.Fatalf("%d streams", len(e.Streams))
	}
	st := e.Streams[0]
	if want := MaxText / 4 * 3; len(st.Data) != want || !bytes.Equal(st.Data, data[:want]) {
		t.Errorf("kept %d bytes, want the first %d", len(st.Data), want)
	}
	if st.Cut != len(b64)-MaxText || e.Cut != st.Cut || !e.Truncated {
		t.Errorf("cut %d (envelope %d, truncated %v), want %d", st.Cut, e.Cut, e.Truncated, len(b64)-MaxText)
	}
	if s := e.Streams[1]; string(s.Data) != "ok" || s.Cut != 0 {
		t.Errorf("the next stream: %q cut %d", s.Data, s.Cut)
	}
}

// TestCharset reads the charset parameter of a Content-Type, including
// ones whose bytes before it are not ASCII (lowering those changes their
// length, so an index found in the lowered value points elsewhere).
func TestCharset(t *testing.T) {
	for _, c := range []struct{ ct, want string }{
		{"application/soap+xml;charset=UTF-8", "UTF-8"},
		{`application/soap+xml; Charset="utf-16"`, "utf-16"},
		{"application/soap+xml;charset=UTF-16;action=x", "UTF-16"},
		{"application/soap+xml", ""},
		{"charset=UTF-8", ""}, // a media type, no parameters
		{"text/xml;boundary=charset=x", ""},
		{"\xff\xff\xff\xff;CHARSET=utf-16be", "utf-16be"},
		{"İİİİ/xml;charset=", ""},
	} {
		if got := Charset(c.ct); got != c.want {
			t.Errorf("Charset(%q) = %q, want %q", c.ct, got, c.want)
		}
	}
}

// TestResourceKindFold: resource URIs match in any ASCII case, and what
// follows the prefix is cut at the prefix's length in the URI itself,
// whatever other bytes it holds.
func TestResourceKindFold(t *testing.T) {
	for _, c := range []struct{ uri, kind, short string }{
		{"HTTP://schemas.microsoft.com/wbem/wsman/1/windows/shell/CMD", ShellCmd, "cmd"},
		{"http://schemas.microsoft.com/powershell/Microsoft.PowerShell", ShellPowerShell, "Microsoft.PowerShell"},
		{"http://schemas.microsoft.com/PowerShell/\xff", ShellPowerShell, "\xff"},
		// "İ" lowers to "i": not the PowerShell prefix, byte for byte.
		{"http://schemas.mİcrosoft.com/powershell/x", ShellNone, "http://schemas.mİcrosoft.com/powershell/x"},
		{"http://schemas.microsoft.com/wbem/wsman/1/WMI/root/cimv2/Win32_Process", ShellWMI, "root/cimv2/Win32_Process"},
		{"http://schemas.microsoft.com/wbem/wsman/1/wmi/İİ/\xff/Win32_Service", ShellWMI, "İİ/\xff/Win32_Service"},
		{"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_Process?x=1", ShellWMI, "CIM_Process"},
		{"http://schemas.microsoft.com/wbem/wsman/1/config/listener", ShellConfig, "config/listener"},
		{"urn:x", ShellNone, "urn:x"},
	} {
		if k, s := ResourceKind(c.uri), ShortResource(c.uri); k != c.kind || s != c.short {
			t.Errorf("%q: kind %q short %q, want %q %q", c.uri, k, s, c.kind, c.short)
		}
	}
}
