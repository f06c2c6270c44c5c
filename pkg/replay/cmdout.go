package replay

import (
	"net/netip"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// Remote execution tools without a pipe of their own (impacket's wmiexec,
// smbexec, atexec and dcomexec, CrackMapExec's and NetExec's methods, many
// scripts) run "command > file" on the target and read the file back over
// an admin share. Replay links the read to the command that named the file,
// so the timeline shows what the intruder saw, not a "file read" of
// `ADMIN$\__1493067577.21`.

// maxOutputs bounds the redirect targets remembered per host and in all.
const (
	maxOutputHosts   = 4096
	maxOutputsByHost = 256
	maxOutputText    = 4096 // bytes of a file's start kept for its text
)

// outputLink is a command whose output went to a file, and the client
// that ran it: the one that reads the output back.
type outputLink struct {
	command, technique string
	client             netip.Addr
	runner             netip.Addr // the host the command ran on
}

// noteOutputs remembers the files a command redirects its output to.
func (p *Pipeline) noteOutputs(op *Operation) {
	if op.Command == "" || !op.Dst.IsValid() {
		return
	}
	for _, t := range redirects(op.Command) {
		// A UNC path names its host: the target itself (127.0.0.1,
		// localhost, its name), or another host by address, whose file
		// it then is.
		host := op.Dst
		if a, err := netip.ParseAddr(t.host); err == nil && !a.IsLoopback() && !a.IsUnspecified() {
			host = a.Unmap()
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
		m[t.path] = outputLink{op.Command, op.Technique, op.Src, op.Dst}
	}
}

// endOutput ends the link of share\name on host when the file no longer
// holds what the command wrote: deleted, or written over SMB by another
// than the host the command ran on (which writes its own output over SMB
// when it redirects into another host's share). No time ends a link: a
// file nothing touched is the output however late it is read.
func (p *Pipeline) endOutput(host netip.Addr, share, name string, by netip.Addr) {
	m := p.outputs[host]
	if len(m) == 0 {
		return
	}
	k := sharePath(share, name)
	if l, ok := m[k]; ok && (!by.IsValid() || by != l.runner) {
		delete(m, k)
	}
}

// linkOutput turns a file read into the output of the command that wrote
// it, when one did.
func (p *Pipeline) linkOutput(host netip.Addr, op *Operation, share, name string, head []byte) bool {
	m := p.outputs[host]
	if len(m) == 0 {
		return false
	}
	l, ok := m[sharePath(share, name)]
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
	if txt, ok := outputText(head); ok {
		op.Fields = append(op.Fields, Field{"output", txt})
	}
	return true
}

// redirectTargets lists the files a command line sends output to, as
// canonical local paths ("c:\windows\temp\x.tmp"): `> f`, `1> f`, `>> f`,
// cmd's escaped `^> f` inside an echoed batch line; `2>&1` and the like
// are not files. Targets under an environment variable other than the
// Windows directory's are skipped (their value is not on the wire).
func redirectTargets(cmd string) []string {
	var out []string
	for _, r := range redirects(cmd) {
		out = append(out, r.path)
	}
	return out
}

// redirect is a file a command line sends output to: its canonical local
// path on its host, and that host as a UNC path names it ("" for a local
// path, which is on the host the command runs on).
type redirect struct{ host, path string }

// redirects is redirectTargets with each target's UNC host.
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
		if h, t := localPath(tok); t != "" {
			out = append(out, redirect{h, t})
		}
	}
	return out
}

// localPath canonicalises a file name as its host sees it: a UNC path to
// an administrative share (host is the UNC path's host then), a drive
// path, or one under %windir%/%systemroot%. The Windows directory is
// taken to be C:\Windows, where ADMIN$ points on every default install.
func localPath(s string) (host, path string) {
	s = strings.ToLower(strings.TrimRight(strings.ReplaceAll(s, "/", `\`), "^"))
	switch {
	case strings.HasPrefix(s, `\\`):
		// \\host\share\path.
		rest := s[2:]
		i := strings.IndexByte(rest, '\\')
		if i < 0 {
			return "", ""
		}
		host, rest = rest[:i], rest[i+1:]
		i = strings.IndexByte(rest, '\\')
		if i <= 0 {
			return "", ""
		}
		if p := sharePath(rest[:i], rest[i+1:]); p != "" {
			return host, p
		}
		return "", ""
	case strings.HasPrefix(s, `%windir%\`), strings.HasPrefix(s, `%systemroot%\`):
		return "", `c:\windows\` + s[strings.IndexByte(s, '\\')+1:]
	case len(s) > 3 && s[1] == ':' && s[2] == '\\' && s[0] >= 'a' && s[0] <= 'z':
		return "", s
	}
	return "", ""
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
