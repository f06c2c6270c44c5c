package ntlmseal

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// secretsSeeds are the valid files of the tests and
// docs/format/ntlm-secrets.md, then hostile ones: too many entries, a line
// at and past the limit, NUL bytes, invalid UTF-8, versions.
var secretsSeeds = []string{
	"# comment\n\n  CORP\\alice\tpassword:with spaces and # inside \r\nbob@corp.local nt:2B576ACBE6BCFDA7294D6BD18041B8FE\nDC01$ nt:2b576acbe6bcfda7294d6bd18041b8fe\n#nwhealth-ntlm-secrets 1\n",
	"# CORP's accounts recovered from WS07 (2026-12-07)\nCORP\\alice       password:Summer2026!\nalice@corp.local nt:2b576acbe6bcfda7294d6bd18041b8fe\nDC01$            nt:8846f7eaee8fb117ad06bdd830b7586c\nbob              password:correct horse battery staple\n",
	"alice\n", "alice secret\n", "alice nt:1234\n", "alice nt:zz576acbe6bcfda7294d6bd18041b8fe\n",
	"alice lm:2b576acbe6bcfda7294d6bd18041b8fe\n", "\\alice password:x\n", "@ password:x\n", "a@b@c password:x\n",
	"#nwhealth-ntlm-secrets 2\n", "alice password:\n",
	"alice nt:Summer2026Summer2026Summer2026!!\n", "alice pw:Summer2026!\n",
	"alice password:" + strings.Repeat("p", maxLine-len("alice password:")) + "\n",
	strings.Repeat("x", maxLine+1) + "\n",
	strings.Repeat("u password:p\n", MaxEntries+1),
	"al\x00ice password:pa\x00ss\n",
	"\xff\xfe password:\xc3\x28\n",
	"alice password:\xed\xa0\x80\xf4\x90\x80\x80\n", // a surrogate and a rune past U+10FFFF
}

var lineRE = regexp.MustCompile(`: line (\d+)`)

// FuzzParseSecrets: ParseSecrets never panics, is deterministic, keeps to
// its bounds (MaxEntries, at most one entry a line), and what it accepts
// re-validates (a user, no white space in the account, lines in order).
// An error is ErrSecretsFile and never shows the secret of the line it
// names.
func FuzzParseSecrets(f *testing.F) {
	for _, s := range secretsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSecrets(bytes.NewReader(data))
		s2, err2 := ParseSecrets(bytes.NewReader(data))
		if fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(s, s2) {
			t.Fatalf("not deterministic: %v, then %v", err, err2)
		}
		lines := strings.Split(string(data), "\n")
		if err != nil {
			if s != nil || !errors.Is(err, ErrSecretsFile) {
				t.Fatalf("error %v (with %v) is not ErrSecretsFile", err, s)
			}
			checkNoSecret(t, err, lines)
			return
		}
		if s.Len() > MaxEntries || s.Len() > len(lines) {
			t.Fatalf("%d entries from %d lines", s.Len(), len(lines))
		}
		prev := 0
		for _, e := range s.entries {
			if e.user == "" || strings.ContainsAny(e.user+e.domain, " \t\n") {
				t.Fatalf("line %d: account %q\\%q does not re-validate", e.line, e.domain, e.user)
			}
			if e.line <= prev || e.line > len(lines) {
				t.Fatalf("entry of line %d after line %d (of %d)", e.line, prev, len(lines))
			}
			prev = e.line
			if len(lines[e.line-1]) > maxLine {
				t.Fatalf("line %d of %d bytes accepted", e.line, len(lines[e.line-1]))
			}
		}
	})
}

// checkNoSecret fails when err shows the secret of the line it names:
// the text after "nt:" or "password:", when it is long enough to tell and
// not also part of the account, which errors do name.
func checkNoSecret(t *testing.T, err error, lines []string) {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	n, _ := strconv.Atoi(m[1])
	if n < 1 || n > len(lines) {
		return
	}
	line := strings.TrimLeft(lines[n-1], " \t")
	i := strings.IndexAny(line, " \t")
	if i < 0 || line[0] == '#' { // a version line's error names its version
		return
	}
	acct, rest := line[:i], line[i:]
	kind, val, ok := strings.Cut(strings.TrimLeft(rest, " \t"), ":")
	val = strings.TrimSpace(val)
	if !ok || len(val) < 8 || strings.Contains(acct, val) || strings.Contains(kind, val) {
		return
	}
	if strings.Contains(err.Error(), val) || strings.Contains(err.Error(), strconv.Quote(val)) {
		t.Fatalf("error %q shows the secret of line %d", err, n)
	}
}
