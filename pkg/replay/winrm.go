package replay

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
	"github.com/nwhealth/nwhealth/pkg/winrm"
)

// WinRM (WS-Management over HTTP, MS-WSMV) is followed on 5985 and 47001,
// on any port whose client sends POST /wsman, and as TLS on 5986.
const (
	portWinRM      = 5985
	portWinRMTLS   = 5986
	portWinRMLocal = 47001 // WinRM's listener for local and loopback clients
)

// ATT&CK of WinRM operations.
const (
	techWinRM      = "T1021.006"
	techCmd        = "T1059.003"
	techPowerShell = "T1059.001"
	techWMI        = "T1047"

	phaseLateral   = "lateral-movement"
	phaseExecution = "execution"
	phaseRecon     = "reconnaissance"
)

// decryptedWinRM is Operation.Decrypted for operations opened from
// WinRM's encrypted messages with --ntlm-secrets.
const decryptedWinRM = "winrm"

// Bounds of one WinRM connection.
const (
	maxWinRMPending = 16   // requests waiting for their response
	maxWinRMShells  = 1024 // shells followed in all (client, server, shell id)
	maxStdout       = 256  // stdout bytes shown of a Receive
	maxStdin        = 4096 // stdin bytes taken as a command
)

// winrmConn follows one WinRM connection: HTTP messages, the account of
// its authentication, encrypted parts (opened with --ntlm-secrets) and
// the WS-Management operations of the SOAP inside.
type winrmConn struct {
	c        *conn
	decided  bool
	flip     bool
	tls      bool
	acct     account
	scheme   string // authentication scheme last used (negotiate, basic...)
	host     string // Host header
	agent    string // User-Agent header
	first    time.Time
	last     time.Time
	requests int
	resps    int
	refused  int // 401 responses
	enc      [2]int
	encBytes [2]int64 // plaintext bytes of encrypted messages (OriginalContent Length)
	protocol string
	soapOps  int // operations decoded from SOAP
	actions  []actionCount
	opened   int // encrypted messages opened
	notOpen  int // encrypted messages of a named account that could not be
	why      string

	// mech is the security mechanism of the latest authentication (ntlm,
	// kerberos, or the scheme as sent): a new authentication replaces the
	// previous context, and messages are counted under the one in force.
	mech   string
	krbEnc [2]int // encrypted messages under Kerberos

	// NTLM unwrap state, only with secrets.
	chal []byte
	seal *ntlmseal.Session
	err  error
	// krb is the Kerberos context opened with --keytab (seal stays nil).
	krb *krbseal.Context

	pending []winrmReq

	scratch []byte // a chunked body joined
	plain   [2][]byte
	parts   []winrm.EncryptedPart

	// TLS: server name and records per direction.
	sni     string
	records [2]int
	bytes   [2]int64
}

// actionCount counts a WS-Management action's requests on a connection.
type actionCount struct {
	name string
	n    int
}

// countAction counts one request's action (a connection sees a handful).
func (w *winrmConn) countAction(name string) {
	for i := range w.actions {
		if w.actions[i].name == name {
			w.actions[i].n++
			return
		}
	}
	if len(w.actions) < 32 {
		w.actions = append(w.actions, actionCount{name, 1})
	}
}

type winrmReq struct {
	ts        time.Time
	env       *winrm.Envelope
	decrypted bool
}

type winrmShell struct {
	kind     string // winrm.ShellCmd, ShellPowerShell...
	resource string
	in, out  winrm.Defragmenter // PSRP objects from the client and from the server
	last     time.Time          // time of its latest request
}

// winrmShellKey names a shell as the protocol does: its ShellId (the
// RunspacePool's id for PowerShell) between one client and one server.
// Not the connection: Windows' client spreads one runspace pool over
// several, and a request may come on a new socket when the last one
// closed, so PSRP fragments of one object may travel over two.
type winrmShellKey struct {
	client, server netip.Addr
	id             string // upper case
}

// PSRP objects held per shell and direction while their fragments come:
// a pipeline of a long script runs to a few MiB; few objects interleave.
const (
	maxPSRPObject  = 4 << 20
	maxPSRPPending = 4
)

func newWinRMShell(kind, resource string) *winrmShell {
	sh := &winrmShell{kind: kind, resource: resource}
	sh.in = winrm.Defragmenter{Max: maxPSRPObject, MaxPending: maxPSRPPending}
	sh.out = winrm.Defragmenter{Max: maxPSRPObject, MaxPending: maxPSRPPending}
	return sh
}

func newWinRMConn(c *conn, tls bool) *winrmConn {
	return &winrmConn{c: c, tls: tls}
}

func (w *winrmConn) frame(p *Pipeline, dir int, msg []byte, ts time.Time) {
	if w.first.IsZero() {
		w.first = ts
	}
	w.last = ts
	if w.tls {
		w.tlsRecord(dir, msg)
		return
	}
	m, scratch, err := winrm.ParseMessage(msg, w.scratch)
	w.scratch = scratch
	if err != nil {
		p.stats.DecodeErrors++
		return
	}
	if !w.decided {
		// The client is who sends requests, whatever the port guess made
		// when the handshake was not captured.
		w.decided = true
		w.flip = (m.Request && dir == 1) || (!m.Request && dir == 0)
	}
	if w.flip {
		dir = 1 - dir
	}
	if m.Request != (dir == 0) {
		p.stats.DecodeErrors++ // a request from the server: not HTTP as WinRM speaks it
		return
	}
	if dir == 0 {
		w.request(p, &m, ts)
	} else {
		w.response(p, &m, ts)
	}
	// A large message's buffers are not kept for the connection's life.
	if cap(w.scratch) > 1<<20 {
		w.scratch = nil
	}
	if cap(w.plain[dir]) > 1<<20 {
		w.plain[dir] = nil
	}
}

func (w *winrmConn) request(p *Pipeline, m *winrm.Message, ts time.Time) {
	w.requests++
	if h := m.Header("Host"); h != "" && len(h) < 256 {
		w.host = h
	}
	if a := m.Header("User-Agent"); a != "" && len(a) < 256 {
		w.agent = a
	}
	if v := m.Header("Authorization"); v != "" {
		w.authorization(p, v)
	}
	req := winrmReq{ts: ts}
	req.env, req.decrypted = w.body(p, 0, m)
	if len(w.pending) >= maxWinRMPending {
		w.finishReq(p, w.pending[0], nil, 0, w.pending[0].ts, true)
		w.pending = w.pending[1:]
	}
	w.pending = append(w.pending, req)
}

func (w *winrmConn) response(p *Pipeline, m *winrm.Message, ts time.Time) {
	if m.Status < 200 {
		return // 100 Continue: the final response follows
	}
	w.resps++
	if v := m.Header("WWW-Authenticate"); v != "" && w.krb != nil {
		// The service's AP-REP (mutual authentication): its subkey.
		if a, ok := winrm.ParseAuth(v); ok {
			if rep, ok := smbrpc.FindAPRep(a.Token); ok {
				w.krb.APRep(rep, true)
			}
		}
	}
	if m.Status == 401 {
		w.refused++
		if v := m.Header("WWW-Authenticate"); v != "" && p.cfg.Secrets.Len() > 0 {
			if a, ok := winrm.ParseAuth(v); ok {
				if c := smbrpc.FindNTLMSSP(a.Token); smbrpc.NTLMType(c) == smbrpc.NTLMChallenge && len(c) <= maxChallenge {
					w.chal = append(w.chal[:0], c...)
				}
			}
		}
	}
	env, dec := w.body(p, 1, m)
	if len(w.pending) == 0 {
		return // a response whose request was not captured
	}
	req := w.pending[0]
	w.pending = w.pending[1:]
	req.decrypted = req.decrypted || dec
	w.finishReq(p, req, env, m.Status, ts, false)
}

// authorization reads the account from an Authorization header. A Basic
// password is dropped by winrm.ParseAuth.
func (w *winrmConn) authorization(p *Pipeline, v string) {
	a, ok := winrm.ParseAuth(v)
	if !ok {
		return
	}
	w.scheme = a.Scheme
	if a.Scheme == winrm.SchemeBasic {
		acct := account{user: a.User, auth: "basic"}
		if d, u, ok := strings.Cut(a.User, `\`); ok {
			acct.domain, acct.user = d, u
		} else if u, d, ok := strings.Cut(a.User, "@"); ok {
			acct.domain, acct.user = d, u
		}
		w.acct = acct
		return
	}
	if len(a.Token) == 0 {
		return
	}
	if acct, ok := p.accountFromBlob(a.Token, w.clientAddr()); ok {
		if acct.user != "" || !w.acct.known() {
			w.acct = acct
		}
	}
	m := smbrpc.FindNTLMSSP(a.Token)
	switch {
	case smbrpc.NTLMType(m) == smbrpc.NTLMAuthenticate:
		// A new authentication: new keys, sequence numbers from zero.
		w.newContext(mechNTLM)
		if p.cfg.Secrets.Len() > 0 {
			w.seal, w.err = p.cfg.Secrets.Open(w.chal, m)
			if errors.Is(w.err, ntlmseal.ErrNoSecret) {
				w.err = nil
			}
		}
	case m != nil:
		// NEGOTIATE: a new NTLM handshake; its CHALLENGE comes in the 401.
		w.newContext(mechNTLM)
	default:
		if k, ok := smbrpc.FindAPReq(a.Token); ok {
			w.newContext(mechKerberos)
			if p.cfg.Keys.Len() > 0 {
				c, err := p.krbAccept(k)
				switch {
				case c != nil && err == nil:
					w.krb = c
				case errors.Is(err, krbseal.ErrNoKey):
				case c != nil:
					w.err = fmt.Errorf("kerberos: %w", err)
				default:
					w.err = errors.New("kerberos: no key opens the ticket of " + k.SName)
				}
			}
		} else if a.Scheme != winrm.SchemeNegotiate && a.Scheme != winrm.SchemeKerberos && a.Scheme != winrm.SchemeNTLM && a.Scheme != w.mech {
			// Another scheme (CredSSP): its own context. Its later legs,
			// and SPNEGO's second leg, go on with the one under way.
			w.newContext(a.Scheme)
		}
	}
}

// Security mechanisms of a WinRM connection's messages.
const (
	mechNTLM     = "ntlm"
	mechKerberos = "kerberos"
)

// newContext starts a new security context on the connection: whatever
// keys the previous authentication gave no longer protect its messages.
func (w *winrmConn) newContext(mech string) {
	w.mech = mech
	w.seal, w.krb, w.err = nil, nil, nil
}

func (w *winrmConn) clientAddr() netip.Addr {
	if w.flip {
		return w.c.server.Addr()
	}
	return w.c.client.Addr()
}

func (w *winrmConn) serverAddr() netip.Addr {
	if w.flip {
		return w.c.client.Addr()
	}
	return w.c.server.Addr()
}

// body reads a message's SOAP: in clear, or from its encrypted parts
// when the connection's NTLM keys open them. decrypted tells the latter.
func (w *winrmConn) body(p *Pipeline, dir int, m *winrm.Message) (*winrm.Envelope, bool) {
	if len(m.Body) == 0 {
		return nil, false
	}
	ct := m.Header("Content-Type")
	proto, boundary, enc := winrm.Encryption(ct)
	if !enc {
		if !strings.Contains(strings.ToLower(ct), "xml") {
			return nil, false
		}
		env, err := winrm.ParseEnvelope(winrm.ToUTF8(m.Body, winrm.Charset(ct)))
		if err != nil {
			p.stats.DecodeErrors++
			return nil, false
		}
		return &env, false
	}
	w.protocol = proto
	parts, err := winrm.EncryptedParts(w.parts[:0], m.Body, boundary)
	w.parts = parts
	if err != nil {
		p.stats.DecodeErrors++
	}
	plain := w.plain[dir][:0]
	opened := (w.seal != nil || w.krb != nil) && len(parts) > 0
	charset := ""
	for _, part := range parts {
		w.enc[dir]++
		if part.Length > 0 {
			w.encBytes[dir] += int64(part.Length)
		}
		if cs := winrm.Charset(part.Type); cs != "" {
			charset = cs
		}
		if w.mech == mechKerberos {
			w.krbEnc[dir]++
		}
		if w.seal == nil && w.krb == nil {
			if w.err != nil {
				w.notOpen++
				p.stats.WinRMUndecryptable++
				w.why = w.err.Error()
			}
			opened = false
			continue
		}
		sig, sealed, err := part.Split()
		if err == nil && w.seal != nil && len(sig) != ntlmseal.SignatureLen {
			err = fmt.Errorf("signature of %d bytes: not NTLM", len(sig))
		}
		if err == nil && part.Length >= 0 {
			if part.Length > len(sealed) {
				err = fmt.Errorf("encrypted message of %d bytes cut short (OriginalContent says %d)", len(sealed), part.Length)
			} else {
				sealed = sealed[:part.Length]
			}
		}
		if err == nil {
			at := len(plain)
			plain = append(plain, sealed...)
			if w.seal != nil {
				err = w.seal.UnsealMessage(dir, sig, plain[at:])
			} else {
				err = w.krb.UnwrapMessage(dir, sig, plain[at:])
			}
			if err != nil {
				plain = plain[:at]
			}
		}
		if err != nil {
			w.notOpen++
			p.stats.WinRMUndecryptable++
			w.why = err.Error()
			opened = false
			continue
		}
		w.opened++
		p.stats.WinRMDecrypted++
	}
	w.plain[dir] = plain
	if !opened {
		return nil, false
	}
	if p.winrmHook != nil {
		p.winrmHook(dir, plain)
	}
	env, err := winrm.ParseEnvelope(winrm.ToUTF8(plain, charset))
	if err != nil {
		p.stats.DecodeErrors++
		return nil, true
	}
	return &env, true
}

// op starts an operation of this connection.
func (w *winrmConn) op(start, end time.Time) Operation {
	src, dst := w.c.client, w.c.server
	if w.flip {
		src, dst = dst, src
	}
	transport := "http"
	if w.tls {
		transport = "https"
	}
	return Operation{
		Time: start, End: end,
		Src: src.Addr(), Dst: dst.Addr(), SrcPort: src.Port(), DstPort: dst.Port(),
		User: w.acct.user, Domain: w.acct.domain, Workstation: w.acct.workstation,
		Auth: w.acct.auth, Service: w.acct.service, AccountVia: w.acct.via,
		Transport: transport, Kind: "winrm", Interface: "winrm", Opnum: -1,
	}
}

func (w *winrmConn) shellKey(id string) winrmShellKey {
	return winrmShellKey{w.clientAddr(), w.serverAddr(), strings.ToUpper(id)}
}

func (w *winrmConn) shell(p *Pipeline, id string, ts time.Time) *winrmShell {
	if id == "" {
		return nil
	}
	sh := p.winrmShells[w.shellKey(id)]
	if sh != nil && ts.After(sh.last) {
		sh.last = ts
	}
	return sh
}

func (w *winrmConn) addShell(p *Pipeline, id string, sh *winrmShell, ts time.Time) {
	if id == "" {
		return
	}
	if p.winrmShells == nil {
		p.winrmShells = make(map[winrmShellKey]*winrmShell)
	}
	k := w.shellKey(id)
	if _, ok := p.winrmShells[k]; !ok && len(p.winrmShells) >= maxWinRMShells {
		// Full: the shell idle longest goes (a scan, once per shell
		// created beyond the bound).
		var oldest winrmShellKey
		first := true
		for k, s := range p.winrmShells {
			if first || s.last.Before(p.winrmShells[oldest].last) {
				oldest, first = k, false
			}
		}
		delete(p.winrmShells, oldest)
	}
	sh.last = ts
	p.winrmShells[k] = sh
}

func (w *winrmConn) deleteShell(p *Pipeline, id string) {
	if id != "" {
		delete(p.winrmShells, w.shellKey(id))
	}
}

// finishReq reports one request (with its response when seen) as an
// operation, when its SOAP could be read.
func (w *winrmConn) finishReq(p *Pipeline, req winrmReq, resp *winrm.Envelope, status int, end time.Time, partial bool) {
	env := req.env
	if env == nil {
		return
	}
	w.soapOps++
	op := w.op(req.ts, end)
	op.Partial = partial
	if req.decrypted {
		op.Decrypted = decryptedWinRM
	}
	act := env.ActionName()
	if act == "" && env.Body == "Identify" {
		act = "Identify"
	}
	w.countAction(act)
	op.Operation = act
	kind := winrm.ResourceKind(env.ResourceURI)
	sh := w.shell(p, env.ShellID, req.ts)
	if sh != nil && kind == winrm.ShellNone {
		kind = sh.kind
	}
	if sh == nil && env.ShellID != "" && act != "Create" && act != "Delete" && (kind == winrm.ShellCmd || kind == winrm.ShellPowerShell) {
		// A shell created on another connection (Windows' client spreads
		// one session over several) or before the capture began: every
		// request names its resource, so the kind is known all the same.
		sh = newWinRMShell(kind, env.ResourceURI)
		w.addShell(p, env.ShellID, sh, req.ts)
	}
	res := winrm.ShortResource(env.ResourceURI)
	if res == "" && sh != nil {
		res = winrm.ShortResource(sh.resource)
	}
	op.Target = res
	op.Technique, op.Phase = techWinRM, phaseLateral
	if env.ShellID != "" {
		op.Fields = append(op.Fields, Field{"shell", env.ShellID})
	}
	if kind == winrm.ShellWMI && wmiInvoke(env) {
		act = "" // a method call, below
		op.Technique, op.Phase = techWMI, phaseExecution
		op.Fields = append(op.Fields, paramFields(env.Params)...)
		for _, f := range env.Params {
			if strings.EqualFold(f.Name, "CommandLine") {
				op.Command = f.Value
			}
		}
	}
	switch act {
	case "":
	case "Create":
		switch kind {
		case winrm.ShellCmd, winrm.ShellPowerShell:
			op.Operation = "Create shell"
			if kind == winrm.ShellCmd {
				op.Fields = append(op.Fields, Field{"shell kind", "cmd (winrs): commands run by cmd.exe, " + techCmd})
			} else {
				op.Fields = append(op.Fields, Field{"shell kind", "PowerShell remoting (PSRP), " + techPowerShell})
			}
			nsh := newWinRMShell(kind, env.ResourceURI)
			if len(env.CreationXML) > 0 {
				op.Fields = append(op.Fields, psrpFields(p, &nsh.in, env.CreationXML, nil)...)
			}
			id := ""
			if resp != nil {
				id = resp.ShellID
			}
			if id != "" {
				op.Fields = append(op.Fields, Field{"shell", id})
			}
			w.addShell(p, id, nsh, req.ts)
		case winrm.ShellWMI:
			op.Technique, op.Phase = techWMI, phaseExecution
			op.Fields = append(op.Fields, paramFields(env.Params)...)
		case winrm.ShellConfig:
			op.Noise = true
		}
	case "Command":
		cmdline := env.Command
		for _, a := range env.Arguments {
			if sh != nil && sh.kind == winrm.ShellPowerShell {
				continue
			}
			cmdline += " " + a
		}
		if env.CommandID != "" {
			op.Fields = append(op.Fields, Field{"command id", env.CommandID})
		} else if resp != nil && resp.CommandID != "" {
			op.Fields = append(op.Fields, Field{"command id", resp.CommandID})
		}
		if sh != nil && sh.kind == winrm.ShellPowerShell {
			var cmds string
			for _, a := range env.Arguments {
				if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a)); err == nil {
					op.Fields = append(op.Fields, psrpFields(p, &sh.in, b, &cmds)...)
				}
			}
			op.Command = cmds
			op.Technique, op.Phase = techPowerShell, phaseExecution
			break
		}
		op.Command = strings.TrimSpace(cmdline)
		op.Technique, op.Phase = techCmd, phaseExecution
		if dec, ok := encodedCommand(op.Command); ok {
			op.Fields = append(op.Fields, Field{"decoded command", dec})
			op.Technique = techPowerShell
		}
	case "Send":
		var cmds string
		for _, s := range env.Streams {
			if sh != nil && sh.kind == winrm.ShellPowerShell {
				op.Fields = append(op.Fields, psrpFields(p, &sh.in, s.Data, &cmds)...)
				continue
			}
			if txt := textOf(s.Data, maxStdin); txt != "" {
				if cmds != "" {
					cmds += "; "
				}
				cmds += txt
			}
		}
		op.Command = cmds
		if cmds == "" {
			op.Noise = true
		} else {
			op.Technique, op.Phase = techCmd, phaseExecution
			if sh != nil && sh.kind == winrm.ShellPowerShell {
				op.Technique = techPowerShell
			}
		}
	case "Receive":
		op.Noise = true
		if resp != nil {
			var out []byte
			for _, s := range resp.Streams {
				if sh != nil && sh.kind == winrm.ShellPowerShell {
					op.Fields = append(op.Fields, psrpFields(p, &sh.out, s.Data, nil)...)
					continue
				}
				if s.Name == "stdout" || s.Name == "stderr" {
					out = append(out, s.Data[:min(len(s.Data), maxStdout-len(out))]...)
				}
			}
			if txt := textOf(out, maxStdout); txt != "" {
				op.Fields = append(op.Fields, Field{"output", txt})
				op.Noise = false
				op.Technique, op.Phase = techWinRM, phaseLateral
			}
			if resp.ExitCode != "" {
				op.Fields = append(op.Fields, Field{"exit code", resp.ExitCode})
			}
		}
	case "Signal":
		op.Noise = true
		code := env.Signal
		if i := strings.LastIndexByte(code, '/'); i >= 0 {
			code = code[i+1:]
		}
		op.Operation = "Signal " + code
	case "Delete":
		op.Noise = true
		if kind == winrm.ShellCmd || kind == winrm.ShellPowerShell {
			op.Operation = "Delete shell"
			w.deleteShell(p, env.ShellID)
		}
	case "Identify":
		op.Noise = true
		op.Target = "wsmid"
	case "Get", "Put", "Enumerate", "Pull", "Release":
		switch kind {
		case winrm.ShellWMI:
			op.Technique, op.Phase = techWMI, phaseRecon
			if env.Filter != "" {
				op.Fields = append(op.Fields, Field{"filter", env.Filter})
			}
			op.Noise = act == "Pull" || act == "Release"
		default:
			op.Noise = true // shells and configuration listed: plumbing
		}
	default:
		if kind == winrm.ShellConfig {
			op.Noise = true
		}
	}
	if status != 0 && status != 200 {
		op.Fields = append(op.Fields, Field{"http status", strconv.Itoa(status)})
	}
	if resp != nil && resp.Fault != "" {
		op.Fields = append(op.Fields, Field{"fault", clipText(resp.Fault, 512)})
	}
	if f, ok := cutField(env, resp); ok {
		// Text past the bound of one element: what fitted was read, the
		// rest is counted as dropped input.
		op.Fields = append(op.Fields, f)
		p.stats.DroppedBytes += uint64(env.Cut)
		if resp != nil {
			p.stats.DroppedBytes += uint64(resp.Cut)
		}
	}
	p.linkTransfer(&op)
	p.out(op)
}

// cutField says what of a request's and its response's texts went past
// winrm.MaxText and was not read: the streams by name, and the rest.
func cutField(envs ...*winrm.Envelope) (Field, bool) {
	var parts []string
	for i, e := range envs {
		if e == nil || e.Cut == 0 {
			continue
		}
		who := []string{"request", "response"}[min(i, 1)]
		rest := e.Cut
		for _, st := range e.Streams {
			if st.Cut > 0 {
				parts = append(parts, fmt.Sprintf("%s stream %s: %d bytes", who, st.Name, st.Cut))
				rest -= st.Cut
			}
		}
		if rest > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d bytes", who, rest))
		}
	}
	if len(parts) == 0 {
		return Field{}, false
	}
	return Field{"text cut", fmt.Sprintf("past the %d MiB of text read per element, not read: %s", winrm.MaxText>>20, strings.Join(parts, ", "))}, true
}

// wmiInvoke tells a WMI method call (MS-WSMV 3.1.4.14: the action is the
// class's resource URI and the method, …/Win32_Process/Create) from the
// WS-Transfer actions on the same resource.
func wmiInvoke(env *winrm.Envelope) bool {
	res := strings.ToLower(strings.TrimRight(env.ResourceURI, "/"))
	if i := strings.IndexByte(res, '?'); i >= 0 {
		res = res[:i]
	}
	return res != "" && strings.HasPrefix(strings.ToLower(env.Action), res+"/")
}

// psrpFields feeds PSRP fragments to a shell's defragmenter and names
// the messages completed; a CREATE_PIPELINE's commands are appended to
// *cmds.
func psrpFields(p *Pipeline, d *winrm.Defragmenter, b []byte, cmds *string) []Field {
	var names []string
	err := d.Add(b, func(m winrm.PSRPMessage) {
		if len(names) < 16 {
			names = append(names, winrm.MessageTypeName(m.Type))
		}
		if m.Type == winrm.MsgCreatePipeline && cmds != nil {
			cs, err := winrm.PipelineCommands(m.Data)
			if err != nil {
				p.stats.DecodeErrors++
			}
			if s := winrm.Script(cs); s != "" {
				if *cmds != "" {
					*cmds += "; "
				}
				*cmds += s
			}
		}
	})
	if err != nil {
		p.stats.DecodeErrors++
	}
	if len(names) == 0 {
		return nil
	}
	return []Field{{"psrp", strings.Join(names, ", ")}}
}

func paramFields(ps []winrm.Field) []Field {
	var fs []Field
	for _, f := range ps {
		if f.Value != "" {
			fs = append(fs, Field{f.Name, clipText(f.Value, 1024)})
		}
	}
	return fs
}

// encodedCommand decodes powershell's -EncodedCommand (base64 of
// UTF-16LE), as pywinrm's run_ps and many tools send scripts.
func encodedCommand(cmd string) (string, bool) {
	f := strings.Fields(cmd)
	if len(f) < 3 || !strings.Contains(strings.ToLower(f[0]), "powershell") && !strings.Contains(strings.ToLower(f[0]), "pwsh") {
		return "", false
	}
	for i := 1; i+1 < len(f); i++ {
		o := strings.ToLower(strings.TrimLeft(f[i], "-/"))
		if len(o) < 1 || !strings.HasPrefix("encodedcommand", o) || !strings.HasPrefix(o, "e") || o == "ex" || o == "exec" || strings.HasPrefix(o, "executionpolicy") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(f[i+1])
		if err != nil || len(raw)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j]) | uint16(raw[2*j+1])<<8
		}
		return clipText(string(utf16.Decode(u)), 4096), true
	}
	return "", false
}

// textOf returns b as text when it reads as text (UTF-8, no control
// characters but whitespace), at most n bytes, trimmed.
func textOf(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1] // cut inside a rune
	}
	s := string(b)
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return ""
		}
	}
	return strings.TrimSpace(s)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// tlsRecord counts a record of WinRM over HTTPS and reads the
// ClientHello's server name.
func (w *winrmConn) tlsRecord(dir int, rec []byte) {
	if sni, ok := winrm.ClientHelloSNI(rec); ok {
		w.sni = sni
		w.flip = dir == 1
		w.decided = true
	}
	if w.flip {
		dir = 1 - dir
	}
	if winrm.IsTLSAppData(rec) {
		w.records[dir]++
		w.bytes[dir] += int64(len(rec) - winrm.TLSRecordHeaderLen)
	}
}

// gap: bytes of the stream were lost, and with them maybe a request or a
// response: the requests waiting are reported as they are (partial) so a
// later response is not paired with the wrong one. The NTLM streams need
// nothing: a lost message breaks their sequence, and the next is refused.
func (w *winrmConn) gap(p *Pipeline, _ int) {
	for _, r := range w.pending {
		p.stats.CallsExpired++
		w.finishReq(p, r, nil, 0, r.ts, true)
	}
	w.pending = w.pending[:0]
}

// expire reports requests whose response did not come in time.
func (w *winrmConn) expire(p *Pipeline, before time.Time) {
	for len(w.pending) > 0 && w.pending[0].ts.Before(before) {
		p.stats.CallsExpired++
		w.finishReq(p, w.pending[0], nil, 0, w.pending[0].ts, true)
		w.pending = w.pending[1:]
	}
}

func (w *winrmConn) close(p *Pipeline, _ bool) {
	for _, r := range w.pending {
		p.stats.CallsExpired++
		w.finishReq(p, r, nil, 0, r.ts, true)
	}
	w.pending = nil
	if w.first.IsZero() {
		return
	}
	op := w.op(w.first, w.last)
	op.Technique, op.Phase = techWinRM, phaseLateral
	if w.tls {
		if w.records[0]+w.records[1] == 0 && w.sni == "" {
			return // no TLS seen on the port
		}
		op.Operation = "session over TLS"
		op.Target = w.sni
		op.Encrypted = true
		op.Fields = append(op.Fields,
			Field{"identified by", fmt.Sprintf("port %d and TLS only: WinRM over HTTPS is its usual service; the contents are TLS-encrypted", op.DstPort)},
			Field{"tls records", fmt.Sprintf("%d from the client (%d bytes), %d from the server (%d bytes)", w.records[0], w.bytes[0], w.records[1], w.bytes[1])})
		p.out(op)
		return
	}
	if w.requests == 0 {
		return
	}
	op.Operation = "session"
	op.Target = w.host
	op.Fields = append(op.Fields, Field{"http messages", fmt.Sprintf("%d requests, %d responses", w.requests, w.resps)})
	if w.scheme != "" {
		op.Fields = append(op.Fields, Field{"http auth", w.scheme})
	}
	if w.refused > 0 {
		op.Fields = append(op.Fields, Field{"refused (401)", strconv.Itoa(w.refused)})
	}
	if n := w.enc[0] + w.enc[1]; n > 0 {
		op.Fields = append(op.Fields,
			Field{"encrypted messages", fmt.Sprintf("%d from the client, %d from the server (%s)", w.enc[0], w.enc[1], w.protocol)},
			Field{"plaintext bytes", fmt.Sprintf("%d from the client, %d from the server", w.encBytes[0], w.encBytes[1])})
		if k := w.krbEnc[0] + w.krbEnc[1]; k > 0 {
			op.Fields = append(op.Fields, Field{"kerberos-protected messages", fmt.Sprintf("%d from the client, %d from the server", w.krbEnc[0], w.krbEnc[1])})
		}
		switch {
		case w.opened == n:
			op.Decrypted = decryptedWinRM
		case w.notOpen > 0:
			op.Encrypted = true
			op.Sealed = SealedUndecryptable
			op.Fields = append(op.Fields, Field{"sealed", fmt.Sprintf("not decrypted: %d of %d messages: %s", w.notOpen, n, w.why)})
		default:
			op.Encrypted = true
		}
	}
	if len(w.actions) > 0 {
		var sb strings.Builder
		for i, a := range w.actions {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "%s %d", a.name, a.n)
		}
		op.Fields = append(op.Fields, Field{"requests decoded", sb.String()})
	}
	if w.agent != "" {
		op.Fields = append(op.Fields, Field{"user agent", w.agent})
	}
	// The session's contents were reported operation by operation: the
	// summary is plumbing then.
	op.Noise = w.soapOps > 0 && !op.Encrypted
	p.out(op)
}
