package replay

import (
	"net/netip"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/rpcops"
)

// Remote execution tools without a pipe of their own (impacket's wmiexec,
// smbexec, atexec and dcomexec, CrackMapExec's and NetExec's methods, many
// scripts) run "command > file" on the target and read the file back over
// an admin share. Replay links the read to the command that named the file,
// so the timeline shows what the intruder saw, not a "file read" of
// `ADMIN$\__1493067577.21`.

// maxOutputs bounds the redirect targets remembered per host and in all,
// and the share paths learnt.
const (
	maxOutputHosts   = 4096
	maxOutputsByHost = 256
	maxOutputText    = 4096 // bytes of a file's start kept for its text
	maxShareHosts    = 4096
	maxSharesByHost  = 256
)

// outputLink is a command whose output went to a file, and the client
// that ran it: the one that reads the output back.
type outputLink struct {
	command, technique string
	client             netip.Addr
	runner             netip.Addr // the host the command ran on
	windir             windirForm // how the command named the Windows directory
	assumed            string     // an environment variable's default it was resolved by
}

// A file's place on its host as a command or a share names it.
type place struct {
	// key is the canonical path: lower case, a path under the Windows
	// directory as %systemroot%\..., whatever named it.
	key     string
	windir  windirForm
	assumed string // the default an environment variable was taken for
}

// windirForm tells how a place named the Windows directory: matching
// C:\Windows with ADMIN$ or %windir% assumes the default install when
// the host's ADMIN$ path was not seen.
type windirForm uint8

const (
	windirNone     windirForm = iota // not under it
	windirSymbolic                   // ADMIN$, %windir%, %SystemRoot%
	windirLiteral                    // C:\Windows written out, the host's Windows directory unknown
	windirKnown                      // its path as the host's srvsvc said
)

const systemRoot = `%systemroot%`

// assumedWindir is what a link says when it took C:\Windows for the
// Windows directory (ADMIN$, %SystemRoot%).
const assumedWindir = `the Windows directory (ADMIN$, %SystemRoot%) taken as C:\Windows, its default: the host's share paths were not seen`

// noteSharePaths remembers the local paths of a host's shares from its
// srvsvc responses.
func (p *Pipeline) noteSharePaths(host netip.Addr, sp []rpcops.SharePath) {
	if p.sharePaths == nil {
		p.sharePaths = make(map[netip.Addr]map[string]string)
	}
	m := p.sharePaths[host]
	if m == nil {
		if len(p.sharePaths) >= maxShareHosts {
			clear(p.sharePaths)
		}
		m = make(map[string]string)
		p.sharePaths[host] = m
	}
	for _, s := range sp {
		path := strings.TrimRight(strings.ToLower(strings.ReplaceAll(s.Path, "/", `\`)), `\`)
		if len(path) < 2 || path[1] != ':' {
			continue // not a drive path (a DFS or device share)
		}
		if len(m) >= maxSharesByHost {
			clear(m)
		}
		m[strings.ToUpper(s.Share)] = path
	}
}

// windowsDir is a host's Windows directory when its ADMIN$ path was seen.
func (p *Pipeline) windowsDir(host netip.Addr) string {
	return p.sharePaths[host]["ADMIN$"]
}

// systemDrive is a host's system drive ("c:") and whether it is known.
func (p *Pipeline) systemDrive(host netip.Addr) (string, bool) {
	if w := p.windowsDir(host); len(w) >= 2 {
		return w[:2], true
	}
	return "c:", false
}

// literal places a drive path ("d:\x\y", lower case) on host.
func (p *Pipeline) literal(host netip.Addr, path string) place {
	if w := p.windowsDir(host); w != "" {
		if rest, ok := strings.CutPrefix(path, w+`\`); ok {
			return place{key: systemRoot + `\` + rest, windir: windirKnown}
		}
		return place{key: path}
	}
	if rest, ok := strings.CutPrefix(path, `c:\windows\`); ok {
		return place{key: systemRoot + `\` + rest, windir: windirLiteral}
	}
	return place{key: path}
}

// shareFile places a file of a share on its host's disk: by the share's
// path when the host's srvsvc gave it, else an administrative share's
// (ADMIN$ the Windows directory, X$ the root of drive X). Other shares
// are not placed: their path is not on the wire.
func (p *Pipeline) shareFile(host netip.Addr, share, name string) (place, bool) {
	name = strings.TrimLeft(strings.ToLower(strings.ReplaceAll(name, "/", `\`)), `\`)
	up := strings.ToUpper(share)
	if root, ok := p.sharePaths[host][up]; ok {
		return p.literal(host, root+`\`+name), true
	}
	switch {
	case up == "ADMIN$":
		return place{key: systemRoot + `\` + name, windir: windirSymbolic}, true
	case len(up) == 2 && up[1] == '$' && up[0] >= 'A' && up[0] <= 'Z':
		return p.literal(host, strings.ToLower(up[:1])+`:\`+name), true
	}
	return place{}, false
}

// envPlace resolves a path under an environment variable on host, for
// the command op: the Windows directory's variables by definition,
// others by Windows' defaults, marked assumed. %TEMP% and the profile's
// variables depend on the account the command runs as: a service's
// LocalSystem (created without an account), or the account that
// authenticated the command; unknown otherwise, and not resolved.
func (p *Pipeline) envPlace(host netip.Addr, op *Operation, env, rest string) (place, bool) {
	sd, _ := p.systemDrive(host)
	under := func(dir, what string) (place, bool) {
		pl := p.literal(host, dir+`\`+rest)
		pl.assumed = "%" + strings.ToUpper(env) + "% taken as " + winPath(dir) + " (" + what + ")"
		return pl, true
	}
	switch env {
	case "windir", "systemroot":
		return place{key: systemRoot + `\` + rest, windir: windirSymbolic}, true
	case "systemdrive":
		return under(sd, "the drive of the Windows directory, C: by default")
	case "programdata":
		return under(sd+`\programdata`, "Windows' default")
	case "public":
		return under(sd+`\users\public`, "Windows' default")
	case "programfiles":
		return under(sd+`\program files`, "Windows' default")
	}
	profile := ""
	switch {
	case runsAsSystem(op):
		profile = systemRoot + `\system32\config\systemprofile`
	case op.User != "" && !strings.HasSuffix(op.User, "$") && !strings.ContainsAny(op.User, `\/:*?"<>|`):
		profile = sd + `\users\` + strings.ToLower(op.User)
	default:
		return place{}, false
	}
	who := "Windows' default for " + op.User
	if runsAsSystem(op) {
		who = "Windows' default for LocalSystem, which a service created without an account runs as"
	}
	var dir string
	switch env {
	case "temp", "tmp":
		dir = profile + `\appdata\local\temp`
		if runsAsSystem(op) {
			dir = systemRoot + `\temp`
		}
	case "userprofile":
		dir = profile
	case "localappdata":
		dir = profile + `\appdata\local`
	case "appdata":
		dir = profile + `\appdata\roaming`
	default:
		return place{}, false
	}
	if r, ok := strings.CutPrefix(dir, systemRoot); ok {
		return place{key: systemRoot + r + `\` + rest, windir: windirSymbolic,
			assumed: "%" + strings.ToUpper(env) + "% taken as %SystemRoot%" + r + " (" + who + ")"}, true
	}
	return under(dir, who)
}

// runsAsSystem reports a command run by a service created without an
// account (or as LocalSystem): it runs as LocalSystem.
func runsAsSystem(op *Operation) bool {
	if op.Interface != "svcctl" || !strings.Contains(op.Operation, "CreateService") {
		return false
	}
	switch strings.ToLower(op.Field("account")) {
	case "", "localsystem", `.\localsystem`, `nt authority\system`:
		return true
	}
	return false
}

// winPath shows a lower-case canonical path as Windows writes it.
func winPath(s string) string {
	if len(s) >= 2 && s[1] == ':' {
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

// noteOutputs remembers the files a command redirects its output to.
func (p *Pipeline) noteOutputs(op *Operation) {
	if op.Command == "" || !op.Dst.IsValid() {
		return
	}
	for _, r := range redirects(op.Command) {
		host, pl, ok := p.placeRedirect(op, r)
		if !ok {
			continue
		}
		m := p.outputs[host]
		if m == nil {
			if len(p.outputs) >= maxOutputHosts {
				clear(p.outputs)
			}
			m = make(map[string]outputLink)
			p.outputs[host] = m
		}
		if len(m) >= maxOutputsByHost {
			clear(m)
		}
		// A later command redirecting into the same file owns it now.
		m[pl.key] = outputLink{op.Command, op.Technique, op.Src, op.Dst, pl.windir, pl.assumed}
	}
}

// placeRedirect places a redirect target of op's command: on the host
// its UNC path names (the target itself for a loopback address or a
// name, else that address), or on the target.
func (p *Pipeline) placeRedirect(op *Operation, r redirect) (netip.Addr, place, bool) {
	host := op.Dst
	if r.host != "" {
		if a, err := netip.ParseAddr(r.host); err == nil && !a.IsLoopback() && !a.IsUnspecified() {
			host = a.Unmap()
		}
		pl, ok := p.shareFile(host, r.share, r.path)
		return host, pl, ok
	}
	if r.env != "" {
		pl, ok := p.envPlace(host, op, r.env, r.path)
		return host, pl, ok
	}
	return host, p.literal(host, r.path), true
}

// linkOutput turns a file read into the output of the command that wrote
// it, when one did.
func (p *Pipeline) linkOutput(host netip.Addr, op *Operation, share, name string, head []byte) bool {
	m := p.outputs[host]
	if len(m) == 0 {
		return false
	}
	pl, ok := p.shareFile(host, share, name)
	if !ok {
		return false
	}
	l, ok := m[pl.key]
	if !ok || l.client.IsValid() && op.Src.IsValid() && l.client != op.Src {
		// Another client reading the file (an administrator's script
		// wrote C:\output.txt; someone else reads it) is not the
		// command's runner fetching what it ran.
		return false
	}
	op.Operation = "read command output"
	op.Phase = "execution"
	op.Technique = l.technique
	if op.Technique == "T1543.003" {
		op.Technique = "T1569.002" // the service ran: its output is execution
	}
	op.Fields = append(op.Fields, Field{"output of", l.command})
	var assumed []string
	if l.assumed != "" {
		assumed = append(assumed, l.assumed)
	}
	if l.windir == windirLiteral && pl.windir == windirSymbolic || l.windir == windirSymbolic && pl.windir == windirLiteral {
		assumed = append(assumed, assumedWindir)
	}
	if len(assumed) > 0 {
		op.Fields = append(op.Fields, Field{"path assumed", strings.Join(assumed, "; ")})
	}
	if txt, ok := outputText(head); ok {
		op.Fields = append(op.Fields, Field{"output", txt})
	}
	return true
}

// endOutput ends the link of share\name on host when the file no longer
// holds what the command wrote: deleted (by is invalid), or written over
// SMB by another than the host the command ran on (which writes its own
// output over SMB when it redirects into another host's share). No time
// ends a link: a file nothing touched is the output however late it is
// read.
func (p *Pipeline) endOutput(host netip.Addr, share, name string, by netip.Addr) {
	m := p.outputs[host]
	if len(m) == 0 {
		return
	}
	pl, ok := p.shareFile(host, share, name)
	if !ok {
		return
	}
	if l, ok := m[pl.key]; ok && (!by.IsValid() || by != l.runner) {
		delete(m, pl.key)
	}
}

// redirect is a file a command line sends output to, as written: a UNC
// path's host, share and path in it; or a path under an environment
// variable (env, lower case, and the path after it); or a drive path.
type redirect struct{ host, share, env, path string }

// redirects lists the redirect targets of a command line.
func redirects(cmd string) []redirect {
	var out []redirect
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '>' {
			continue
		}
		j := i + 1
		if j < len(cmd) && cmd[j] == '>' {
			j++
		}
		if j < len(cmd) && (cmd[j] == '&' || cmd[j] == '^') {
			i = j
			continue // 2>&1, 2^>^&1
		}
		for j < len(cmd) && cmd[j] == ' ' {
			j++
		}
		var tok string
		if j < len(cmd) && cmd[j] == '"' {
			k := strings.IndexByte(cmd[j+1:], '"')
			if k < 0 {
				break
			}
			tok = cmd[j+1 : j+1+k]
			i = j + 1 + k
		} else {
			k := j
			for k < len(cmd) && cmd[k] != ' ' && cmd[k] != '&' && cmd[k] != '|' && cmd[k] != '"' {
				k++
			}
			tok = cmd[j:k]
			i = k - 1
		}
		if r, ok := parseTarget(tok); ok {
			out = append(out, r)
		}
	}
	return out
}

// parseTarget reads a redirect target: a UNC path (\\host\share\path), a
// path under an environment variable (%temp%\x), or a drive path.
func parseTarget(s string) (redirect, bool) {
	s = strings.ToLower(strings.TrimRight(strings.ReplaceAll(s, "/", `\`), "^"))
	switch {
	case strings.HasPrefix(s, `\\`):
		rest := s[2:]
		i := strings.IndexByte(rest, '\\')
		if i <= 0 {
			return redirect{}, false
		}
		host, rest := rest[:i], rest[i+1:]
		i = strings.IndexByte(rest, '\\')
		if i <= 0 || i == len(rest)-1 {
			return redirect{}, false
		}
		return redirect{host: host, share: rest[:i], path: rest[i+1:]}, true
	case strings.HasPrefix(s, "%"):
		i := strings.Index(s[1:], `%\`)
		if i <= 0 || 1+i+2 >= len(s) {
			return redirect{}, false
		}
		return redirect{env: s[1 : 1+i], path: s[1+i+2:]}, true
	case len(s) > 3 && s[1] == ':' && s[2] == '\\' && s[0] >= 'a' && s[0] <= 'z':
		return redirect{path: s}, true
	}
	return redirect{}, false
}

// sharePath is the local path behind an administrative share's file:
// ADMIN$ is the Windows directory, X$ the root of drive X. Other shares
// map to nothing known.
func sharePath(share, name string) string {
	share = strings.ToLower(share)
	name = strings.TrimLeft(strings.ToLower(strings.ReplaceAll(name, "/", `\`)), `\`)
	switch {
	case share == "admin$":
		return `c:\windows\` + name
	case len(share) == 2 && share[1] == '$' && share[0] >= 'a' && share[0] <= 'z':
		return share[:1] + `:\` + name
	}
	return ""
}

// outputText returns a command's output as text: cmd writes the console's
// code page (ASCII for what matters here) or, with /U, UTF-16LE. Short
// outputs ("C:\") pass with no letter count, unlike pipe data's test.
func outputText(b []byte) (string, bool) {
	s := string(b)
	if len(b) >= 4 && b[1] == 0 && b[3] == 0 {
		s = smbrpc.UTF16(b)
	}
	s = strings.TrimRight(s, "\r\n\x00 ")
	if s == "" {
		return "", false
	}
	bad := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 || c == 0x7f) && c != '\n' && c != '\r' && c != '\t' {
			bad++
		}
	}
	return s, bad*10 <= len(s)
}
