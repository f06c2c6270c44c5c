// Package ntlmseal opens NTLMSSP-sealed DCE/RPC (packet privacy) with an
// account's secret, as Wireshark does with its NT password: it reads the
// secrets file (docs/format/ntlm-secrets.md), derives the session keys from
// an association's CHALLENGE and AUTHENTICATE (MS-NLMP 3.3, 3.4) and
// unseals each request and response PDU, checking its verifier.
//
// Secrets are never part of an error message or of anything this package
// formats.
package ntlmseal

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/nwhealth/nwhealth/internal/secretfile"

	//lint:ignore SA1019 MD4 is what NTLM's NT hash is: compatibility, not security
	"golang.org/x/crypto/md4"
)

// Bounds on a secrets file: it is written by hand, a few lines long.
const (
	MaxEntries = 4096
	maxLine    = 4096
	versionTag = "#nwhealth-ntlm-secrets "
)

// entry is one account of the file.
type entry struct {
	user, domain string // as written; domain "" matches any
	nt           [16]byte
	line         int
}

// Secrets holds the accounts of a secrets file. Its zero value holds none.
type Secrets struct {
	entries []entry
}

// Len is the number of accounts.
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// ErrSecretsFile marks a malformed secrets file (the command maps it to a
// usage error).
var ErrSecretsFile = errors.New("ntlm secrets")

// ParseSecrets reads a secrets file. Errors name the line, never its
// secret.
func ParseSecrets(r io.Reader) (*Secrets, error) {
	s := &Secrets{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		t := strings.TrimLeft(line, " \t")
		if t == "" {
			continue
		}
		if t[0] == '#' {
			if v, ok := strings.CutPrefix(t, versionTag); ok && strings.TrimSpace(v) != "1" {
				return nil, fmt.Errorf("%w: line %d: version %q not supported (this reader knows version 1)", ErrSecretsFile, n, strings.TrimSpace(v))
			}
			continue
		}
		if len(s.entries) >= MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrSecretsFile, MaxEntries)
		}
		e, err := parseEntry(t)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrSecretsFile, n, err)
		}
		e.line = n
		s.entries = append(s.entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrSecretsFile, n+1, maxLine)
		}
		return nil, fmt.Errorf("%w: %v", ErrSecretsFile, err)
	}
	return s, nil
}

// parseEntry reads "account secret" (the line without leading blanks).
func parseEntry(t string) (entry, error) {
	var e entry
	i := strings.IndexAny(t, " \t")
	if i < 0 {
		return e, errors.New("want an account, white space and a secret (nt:HEX or password:TEXT)")
	}
	acct, rest := t[:i], strings.TrimLeft(t[i:], " \t")
	switch {
	case strings.Contains(acct, `\`):
		e.domain, e.user, _ = strings.Cut(acct, `\`)
	case strings.Contains(acct, "@"):
		j := strings.LastIndex(acct, "@")
		e.user, e.domain = acct[:j], acct[j+1:]
	default:
		e.user = acct
	}
	if e.user == "" {
		return e, fmt.Errorf("account %q names no user", acct)
	}
	kind, val, ok := strings.Cut(rest, ":")
	if !ok {
		return e, errors.New(`secret must start with "nt:" or "password:"`)
	}
	switch strings.ToLower(kind) {
	case "nt":
		val = strings.TrimSpace(val)
		if len(val) != 32 {
			return e, fmt.Errorf("nt hash of account %q: want 32 hex digits, got %d characters", acct, len(val))
		}
		if _, err := hex.Decode(e.nt[:], []byte(val)); err != nil {
			return e, fmt.Errorf("nt hash of account %q is not hex", acct)
		}
	case "password":
		if val == "" {
			return e, fmt.Errorf("empty password for account %q", acct)
		}
		e.nt = NTHash(val)
	default:
		return e, fmt.Errorf("secret kind %q: want nt or password", kind)
	}
	return e, nil
}

// LoadSecrets reads a secrets file from disk. loose is set when the file
// can be read by group or others, for the caller's warning.
func LoadSecrets(path string) (s *Secrets, loose bool, err error) {
	return secretfile.Read(path, "ntlm secrets", ParseSecrets)
}

// NTHash is MD4 of the UTF-16LE password (MS-NLMP 3.3.1 NTOWFv1).
func NTHash(password string) [16]byte {
	h := md4.New()
	h.Write(utf16le(password))
	var k [16]byte
	h.Sum(k[:0])
	return k
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return b
}

// match lists the entries that may be the account user@domain.
func (s *Secrets) match(user, domain string) []*entry {
	if s == nil {
		return nil
	}
	// A UPN in the user field ("alice@corp.local", no domain).
	if domain == "" {
		if j := strings.LastIndex(user, "@"); j > 0 {
			user, domain = user[:j], user[j+1:]
		}
	}
	var out []*entry
	for i := range s.entries {
		e := &s.entries[i]
		if strings.EqualFold(e.user, user) && domainMatch(e.domain, domain) {
			out = append(out, e)
		}
	}
	return out
}

// domainMatch: equal, or one is the first DNS label of the other (CORP
// and corp.local); an entry without a domain matches any.
func domainMatch(want, got string) bool {
	if want == "" || strings.EqualFold(want, got) {
		return true
	}
	first := func(s string) string {
		if i := strings.IndexByte(s, '.'); i >= 0 {
			return s[:i]
		}
		return s
	}
	return strings.EqualFold(first(want), first(got)) && (!strings.Contains(want, ".") || !strings.Contains(got, "."))
}
