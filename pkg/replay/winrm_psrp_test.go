package replay

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// psrpFragments lays out a PSRP message (MS-PSRP 2.2.1: destination,
// type, runspace pool and pipeline ids, data) in fragments of at most max
// blob bytes (2.2.4: object id, fragment id, start/end flags, length).
func psrpFragments(typ uint32, data []byte, object uint64, max int) [][]byte {
	msg := join(le32(2), le32(typ), make([]byte, 32), data)
	var frags [][]byte
	for id := uint64(0); len(msg) > 0; id++ {
		n := min(max, len(msg))
		var flags byte
		if id == 0 {
			flags |= 1
		}
		if n == len(msg) {
			flags |= 2
		}
		f := binary.BigEndian.AppendUint64(nil, object)
		f = binary.BigEndian.AppendUint64(f, id)
		f = binary.BigEndian.AppendUint32(append(f, flags), uint32(n))
		frags = append(frags, append(f, msg[:n]...))
		msg = msg[n:]
	}
	return frags
}

func wsman(action, resource, shell, body string) string {
	sel := ""
	if shell != "" {
		sel = `<w:SelectorSet><w:Selector Name="ShellId">` + shell + `</w:Selector></w:SelectorSet>`
	}
	return `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header>` +
		`<a:Action>` + action + `</a:Action><w:ResourceURI>` + resource + `</w:ResourceURI>` + sel + `</s:Header><s:Body>` + body + `</s:Body></s:Envelope>`
}

func httpPost(auth, soap string) []byte {
	return []byte(fmt.Sprintf("POST /wsman?PSVersion=5.1.17763.1 HTTP/1.1\r\nHost: srv:8080\r\nAuthorization: %s\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", auth, len(soap), soap))
}

func httpOK(soap string) []byte {
	return []byte(fmt.Sprintf("HTTP/1.1 200 \r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(soap), soap))
}

// TestWinRMPSRP replays a PowerShell remoting exchange in clear on a port
// that is not WinRM's (found by its POST /wsman): the runspace pool's
// shell is created, the pipeline's first fragment travels in the
// Command's Arguments and the rest in a Send (MS-PSRP 3.1.5.3.3), and the
// pipeline's commands are reported once the message is whole.
func TestWinRMPSRP(t *testing.T) {
	clixml, err := os.ReadFile(filepath.Join("..", "winrm", "testdata", "create_pipeline.xml"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		ps    = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
		shell = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
		sid   = "0A1B2C3D-0000-4000-8000-000000000001"
	)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(`CORP\bob:Secret-1`))
	capab := psrpFragments(0x00010002, []byte(`<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version></MS></Obj>`), 1, 4096)
	pipe := psrpFragments(0x00021006, append([]byte("\xef\xbb\xbf"), clixml...), 2, 256)
	b64 := func(b ...[]byte) string { return base64.StdEncoding.EncodeToString(join(b...)) }
	state := psrpFragments(0x00041006, []byte(`<Obj RefId="0"><MS><I32 N="PipelineState">4</I32></MS></Obj>`), 3, 4096)

	fl := newFlow("10.1.0.5:50000", "10.1.0.9:8080", t0)
	exchange := func(req, resp []byte) {
		fl.send(true, req, 700)
		fl.send(false, resp, 900)
	}
	exchange(httpPost(auth, wsman("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", ps, "",
		`<rsp:Shell ShellId="`+sid+`"><rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams><creationXml xmlns="http://schemas.microsoft.com/powershell">`+b64(capab...)+`</creationXml></rsp:Shell>`)),
		httpOK(wsman("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", "", "", `<rsp:Shell><rsp:ShellId>`+sid+`</rsp:ShellId></rsp:Shell>`)))
	exchange(httpPost(auth, wsman(shell+"/Command", ps, sid, `<rsp:CommandLine CommandId="C0000000-0000-4000-8000-000000000002"><rsp:Command></rsp:Command><rsp:Arguments>`+b64(pipe[0])+`</rsp:Arguments></rsp:CommandLine>`)),
		httpOK(wsman(shell+"/CommandResponse", "", "", `<rsp:CommandResponse><rsp:CommandId>C0000000-0000-4000-8000-000000000002</rsp:CommandId></rsp:CommandResponse>`)))
	exchange(httpPost(auth, wsman(shell+"/Send", ps, sid, `<rsp:Send><rsp:Stream Name="pr" CommandId="C0000000-0000-4000-8000-000000000002">`+b64(pipe[1:]...)+`</rsp:Stream></rsp:Send>`)),
		httpOK(wsman(shell+"/SendResponse", "", "", `<rsp:SendResponse/>`)))
	exchange(httpPost(auth, wsman(shell+"/Receive", ps, sid, `<rsp:Receive><rsp:DesiredStream CommandId="C0000000-0000-4000-8000-000000000002">stdout</rsp:DesiredStream></rsp:Receive>`)),
		httpOK(wsman(shell+"/ReceiveResponse", "", "", `<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C0000000-0000-4000-8000-000000000002">`+b64(state...)+`</rsp:Stream></rsp:ReceiveResponse>`)))

	var ops []Operation
	p := New(Config{}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range fl.pkts {
		p.Packet(pk)
	}
	p.Flush()
	if st := p.Stats(); st.Damaged() {
		t.Errorf("stats %+v", st)
	}
	byOp := map[string]*Operation{}
	for i := range ops {
		byOp[ops[i].Operation] = &ops[i]
		if ops[i].User != "bob" || ops[i].Domain != "CORP" || ops[i].Auth != "basic" || ops[i].DstPort != 8080 {
			t.Errorf("%s: account %s/%s port %d", ops[i].Operation, ops[i].Account(), ops[i].Auth, ops[i].DstPort)
		}
	}
	if c := byOp["Create shell"]; c == nil || c.Target != "Microsoft.PowerShell" || c.Field("psrp") != "SESSION_CAPABILITY" || c.Technique != "T1021.006" {
		t.Errorf("create: %+v", c)
	}
	if c := byOp["Command"]; c == nil || c.Command != "" {
		t.Errorf("command with the first fragment only: %+v", c)
	}
	want := "Get-Process -Name lsass -ComputerName dc1,dc2 | Out-String 'x y\r\n'"
	if s := byOp["Send"]; s == nil || s.Command != want || s.Technique != "T1059.001" || s.Phase != "execution" || s.Field("psrp") != "CREATE_PIPELINE" || s.Noise {
		t.Errorf("send: %+v", s)
	}
	if r := byOp["Receive"]; r == nil || !r.Noise || r.Field("psrp") != "PIPELINE_STATE" {
		t.Errorf("receive: %+v", r)
	}
	if s := byOp["session"]; s == nil || !s.Noise || s.Target != "srv:8080" {
		t.Errorf("session: %+v", s)
	}
	for i := range ops {
		if strings.Contains(fmt.Sprint(ops[i]), "Secret-1") {
			t.Error("the Basic password is in an operation")
		}
	}
}

// TestWinRMWMIAndTLS: WMI over WS-Man (an Invoke of Win32_Process Create
// on 5985, NTLM-less Basic in clear) is T1047 with its command line; a
// connection to 5986 is one session over TLS named by its ClientHello's
// server name, with its records counted.
func TestWinRMWMIAndTLS(t *testing.T) {
	const class = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Process"
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(`eve:x`))
	fl := newFlow("10.1.0.5:50001", "10.1.0.9:5985", t0)
	fl.send(true, httpPost(auth, wsman(class+"/Create", class, "",
		`<p:Create_INPUT xmlns:p="`+class+`"><p:CommandLine>cmd.exe /c whoami &gt; C:\out.txt</p:CommandLine></p:Create_INPUT>`)), 1400)
	fl.send(false, httpOK(wsman(class+"/CreateResponse", "", "", `<p:Create_OUTPUT xmlns:p="x"><p:ProcessId>4242</p:ProcessId><p:ReturnValue>0</p:ReturnValue></p:Create_OUTPUT>`)), 1400)

	// A ClientHello naming the server, then application data each way.
	name := "srv.corp.test"
	sni := join([]byte{0, 0}, be16(uint16(len(name)+5)), be16(uint16(len(name)+3)), []byte{0}, be16(uint16(len(name))), []byte(name))
	body := join([]byte{3, 3}, make([]byte, 32), []byte{0, 0, 2, 0x13, 1, 1, 0}, be16(uint16(len(sni))), sni)
	hello := join([]byte{22, 3, 1}, be16(uint16(len(body)+4)), []byte{1, 0}, be16(uint16(len(body))), body)
	tls := newFlow("10.1.0.5:50002", "10.1.0.9:5986", t0)
	tls.send(true, hello, 1400)
	tls.send(false, join([]byte{22, 3, 3, 0, 4}, []byte{2, 0, 0, 0}), 1400)
	tls.send(true, join([]byte{23, 3, 3, 0, 100}, make([]byte, 100)), 1400)
	tls.send(false, join([]byte{23, 3, 3, 0, 200}, make([]byte, 200)), 1400)

	var ops []Operation
	p := New(Config{}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range append(fl.pkts, tls.pkts...) {
		p.Packet(pk)
	}
	p.Flush()
	var wmi, https *Operation
	for i := range ops {
		switch {
		case ops[i].Operation == "Create" && ops[i].Kind == "winrm":
			wmi = &ops[i]
		case ops[i].Operation == "session over TLS":
			https = &ops[i]
		}
	}
	if wmi == nil || wmi.Technique != "T1047" || wmi.Phase != "execution" || wmi.Command != `cmd.exe /c whoami > C:\out.txt` ||
		wmi.Target != "root/cimv2/Win32_Process" || wmi.User != "eve" || wmi.Auth != "basic" {
		t.Errorf("wmi: %+v", wmi)
	}
	if https == nil || https.Target != name || !https.Encrypted || https.Transport != "https" || https.Technique != "T1021.006" ||
		https.Field("tls records") != "1 from the client (100 bytes), 1 from the server (200 bytes)" ||
		!strings.Contains(https.Field("identified by"), "port 5986 and TLS only") {
		t.Errorf("https: %+v", https)
	}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// TestWinRMPSRPShellOpenedElsewhere: a PowerShell shell's Command and Send
// on a connection that did not carry its Create (Windows' client opens
// several connections to one server; a capture may start after the
// Create) are still PowerShell: the request's resource URI says so. Its
// PSRP fragments are joined and the pipeline reported, never the base64
// of the fragments as a cmd command line.
func TestWinRMPSRPShellOpenedElsewhere(t *testing.T) {
	clixml, err := os.ReadFile(filepath.Join("..", "winrm", "testdata", "create_pipeline.xml"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		ps    = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
		shell = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
		sid   = "0A1B2C3D-0000-4000-8000-000000000001"
		cid   = "C0000000-0000-4000-8000-000000000002"
	)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(`CORP\bob:Secret-1`))
	pipe := psrpFragments(0x00021006, append([]byte("\xef\xbb\xbf"), clixml...), 2, 256)
	b64 := func(b ...[]byte) string { return base64.StdEncoding.EncodeToString(join(b...)) }

	fl := newFlow("10.1.0.5:50010", "10.1.0.9:5985", t0)
	exchange := func(req, resp []byte) {
		fl.send(true, req, 700)
		fl.send(false, resp, 900)
	}
	exchange(httpPost(auth, wsman(shell+"/Command", ps, sid, `<rsp:CommandLine CommandId="`+cid+`"><rsp:Command></rsp:Command><rsp:Arguments>`+b64(pipe[0])+`</rsp:Arguments></rsp:CommandLine>`)),
		httpOK(wsman(shell+"/CommandResponse", "", "", `<rsp:CommandResponse><rsp:CommandId>`+cid+`</rsp:CommandId></rsp:CommandResponse>`)))
	exchange(httpPost(auth, wsman(shell+"/Send", ps, sid, `<rsp:Send><rsp:Stream Name="pr" CommandId="`+cid+`">`+b64(pipe[1:]...)+`</rsp:Stream></rsp:Send>`)),
		httpOK(wsman(shell+"/SendResponse", "", "", `<rsp:SendResponse/>`)))

	var ops []Operation
	p := New(Config{}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range fl.pkts {
		p.Packet(pk)
	}
	p.Flush()
	byOp := map[string]*Operation{}
	for i := range ops {
		byOp[ops[i].Operation] = &ops[i]
	}
	if c := byOp["Command"]; c == nil || c.Command != "" || c.Technique != "T1059.001" || c.Target != "Microsoft.PowerShell" {
		t.Errorf("command with the first fragment only: %+v", c)
	}
	want := "Get-Process -Name lsass -ComputerName dc1,dc2 | Out-String 'x y\r\n'"
	if s := byOp["Send"]; s == nil || s.Command != want || s.Technique != "T1059.001" || s.Field("psrp") != "CREATE_PIPELINE" {
		t.Errorf("send: %+v", s)
	}
}

// TestWinRMPSRPAcrossConnections: Windows' client spreads one runspace
// pool over several connections (and a client whose keep-alive
// connection dropped sends its next request on a new one), so a PSRP
// object's fragments can travel over two connections. They are joined by
// what MS-PSRP says identifies them: the shell (RunspacePool) id between
// the same client and server, and the object and fragment ids, in time
// order, whatever the connection.
func TestWinRMPSRPAcrossConnections(t *testing.T) {
	clixml, err := os.ReadFile(filepath.Join("..", "winrm", "testdata", "create_pipeline.xml"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		ps    = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
		shell = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
		sid   = "0A1B2C3D-0000-4000-8000-000000000001"
		cid   = "C0000000-0000-4000-8000-000000000002"
	)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(`CORP\bob:Secret-1`))
	b64 := func(b ...[]byte) string { return base64.StdEncoding.EncodeToString(join(b...)) }
	capab := psrpFragments(0x00010002, []byte(`<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version></MS></Obj>`), 1, 4096)
	pipe := psrpFragments(0x00021006, append([]byte("\xef\xbb\xbf"), clixml...), 2, 256)
	output := psrpFragments(0x00041004, []byte(`<S>`+strings.Repeat("lsass 1234 ", 40)+`</S>`), 5, 200)
	if len(output) < 2 {
		t.Fatal("the output object should take several fragments")
	}

	// Connection A creates the shell and starts the command with the
	// pipeline's first fragment; B sends the rest and receives the
	// output's first fragments; C (a new socket) receives the rest.
	a := newFlow("10.1.0.5:50030", "10.1.0.9:5985", t0)
	b := newFlow("10.1.0.5:50031", "10.1.0.9:5985", t0.Add(time.Second))
	c := newFlow("10.1.0.5:50032", "10.1.0.9:5985", t0.Add(2*time.Second))
	exchange := func(fl *tcpFlow, req, resp []byte) {
		fl.send(true, req, 700)
		fl.send(false, resp, 900)
	}
	receive := func(fl *tcpFlow, frags [][]byte) {
		exchange(fl, httpPost(auth, wsman(shell+"/Receive", ps, sid, `<rsp:Receive><rsp:DesiredStream CommandId="`+cid+`">stdout</rsp:DesiredStream></rsp:Receive>`)),
			httpOK(wsman(shell+"/ReceiveResponse", "", "", `<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="`+cid+`">`+b64(frags...)+`</rsp:Stream></rsp:ReceiveResponse>`)))
	}
	exchange(a, httpPost(auth, wsman("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", ps, "",
		`<rsp:Shell ShellId="`+sid+`"><rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams><creationXml xmlns="http://schemas.microsoft.com/powershell">`+b64(capab...)+`</creationXml></rsp:Shell>`)),
		httpOK(wsman("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", "", "", `<rsp:Shell><rsp:ShellId>`+sid+`</rsp:ShellId></rsp:Shell>`)))
	exchange(a, httpPost(auth, wsman(shell+"/Command", ps, sid, `<rsp:CommandLine CommandId="`+cid+`"><rsp:Command></rsp:Command><rsp:Arguments>`+b64(pipe[0])+`</rsp:Arguments></rsp:CommandLine>`)),
		httpOK(wsman(shell+"/CommandResponse", "", "", `<rsp:CommandResponse><rsp:CommandId>`+cid+`</rsp:CommandId></rsp:CommandResponse>`)))
	exchange(b, httpPost(auth, wsman(shell+"/Send", ps, sid, `<rsp:Send><rsp:Stream Name="pr" CommandId="`+cid+`">`+b64(pipe[1:]...)+`</rsp:Stream></rsp:Send>`)),
		httpOK(wsman(shell+"/SendResponse", "", "", `<rsp:SendResponse/>`)))
	receive(b, output[:1])
	receive(c, output[1:])

	// The same shell id between another client and the server is another
	// shell: its fragments are not joined with these.
	other := newFlow("10.1.0.6:50040", "10.1.0.9:5985", t0.Add(1500*time.Millisecond))
	exchange(other, httpPost(auth, wsman(shell+"/Send", ps, sid, `<rsp:Send><rsp:Stream Name="pr" CommandId="`+cid+`">`+b64(pipe[1:]...)+`</rsp:Stream></rsp:Send>`)),
		httpOK(wsman(shell+"/SendResponse", "", "", `<rsp:SendResponse/>`)))

	pkts := append(append(append(a.pkts, b.pkts...), c.pkts...), other.pkts...)
	sort.SliceStable(pkts, func(i, j int) bool { return pkts[i].Timestamp.Before(pkts[j].Timestamp) })
	var ops []Operation
	p := New(Config{}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range pkts {
		p.Packet(pk)
	}
	p.Flush()

	want := "Get-Process -Name lsass -ComputerName dc1,dc2 | Out-String 'x y\r\n'"
	var sends, outputs int
	for _, o := range ops {
		switch {
		case o.Operation == "Send" && o.Src.String() == "10.1.0.5":
			sends++
			if o.Command != want || o.Technique != "T1059.001" || o.Field("psrp") != "CREATE_PIPELINE" || o.SrcPort != 50031 {
				t.Errorf("send on the second connection: %+v", o)
			}
		case o.Operation == "Send":
			if o.Command != "" || o.Field("psrp") != "" {
				t.Errorf("another client's fragments joined with the first client's: %+v", o)
			}
		case o.Operation == "Receive" && o.Field("psrp") != "":
			outputs++
			if o.Field("psrp") != "PIPELINE_OUTPUT" || o.SrcPort != 50032 {
				t.Errorf("receive: %+v", o)
			}
		}
	}
	if sends != 1 || outputs != 1 {
		t.Errorf("%d sends with the pipeline, %d receives with the output; want 1 and 1", sends, outputs)
	}
}

// TestWinRMLongStream: a Receive whose stdout stream's text runs past the
// bound of one element (8 MiB) keeps its start (the output shown) and
// says what was cut, counted as dropped input: never the whole stream
// lost in silence.
func TestWinRMLongStream(t *testing.T) {
	const (
		cmdRes = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
		shell  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
		sid    = "0A1B2C3D-0000-4000-8000-000000000009"
	)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(`CORP\bob:Secret-1`))
	out := []byte(strings.Repeat("Directory of C:\\Users\\bob\r\n", 9<<20/27))
	b64 := base64.StdEncoding.EncodeToString(out)
	fl := newFlow("10.1.0.5:50050", "10.1.0.9:5985", t0)
	fl.send(true, httpPost(auth, wsman(shell+"/Receive", cmdRes, sid, `<rsp:Receive><rsp:DesiredStream CommandId="C1">stdout stderr</rsp:DesiredStream></rsp:Receive>`)), 1400)
	fl.send(false, httpOK(wsman(shell+"/ReceiveResponse", "", "", `<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C1">`+b64+`</rsp:Stream></rsp:ReceiveResponse>`)), 60000)

	var ops []Operation
	p := New(Config{}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range fl.pkts {
		p.Packet(pk)
	}
	p.Flush()
	var recv *Operation
	for i := range ops {
		if ops[i].Operation == "Receive" {
			recv = &ops[i]
		}
	}
	if recv == nil {
		t.Fatalf("no Receive: %+v", ops)
	}
	cut := len(b64) - 8<<20
	if !strings.HasPrefix(recv.Field("output"), "Directory of C:\\Users\\bob") ||
		recv.Field("text cut") != fmt.Sprintf("past the 8 MiB of text read per element, not read: response stream stdout: %d bytes", cut) {
		t.Errorf("receive: %+v", recv)
	}
	if st := p.Stats(); st.DroppedBytes != uint64(cut) || !st.Damaged() {
		t.Errorf("dropped %d bytes, want %d", st.DroppedBytes, cut)
	}
}
