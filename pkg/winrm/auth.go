package winrm

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// Authentication schemes of an Authorization or WWW-Authenticate header.
const (
	SchemeNegotiate = "negotiate" // SPNEGO: Kerberos or NTLM
	SchemeNTLM      = "ntlm"
	SchemeKerberos  = "kerberos"
	SchemeBasic     = "basic"
	SchemeCredSSP   = "credssp"
)

// maxToken bounds a decoded authentication token (a Kerberos AP-REQ with
// a PAC runs to a few KiB; MaxHeader bounds the header anyway).
const maxToken = MaxHeader

// Auth is an Authorization (or WWW-Authenticate) header's scheme and
// token. For Basic only the user name is kept: the password is dropped
// here, so it can never be printed.
type Auth struct {
	Scheme string // lower case: negotiate, ntlm, kerberos, basic, credssp, or another scheme as sent
	Token  []byte // the decoded security token (Negotiate, NTLM, Kerberos, CredSSP)
	User   string // Basic: the user name (DOMAIN\user or user@domain as sent)
}

// ParseAuth reads "Scheme base64" from a header value. ok is false for an
// empty value or a token that is not base64.
func ParseAuth(v string) (a Auth, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return a, false
	}
	scheme, tok, _ := strings.Cut(v, " ")
	a.Scheme = strings.ToLower(scheme)
	tok = strings.TrimSpace(tok)
	if i := strings.IndexByte(tok, ','); i >= 0 {
		tok = tok[:i] // a second challenge in the same header
	}
	if tok == "" {
		return a, true
	}
	if base64.StdEncoding.DecodedLen(len(tok)) > maxToken {
		return a, false
	}
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return a, false
	}
	if a.Scheme == SchemeBasic {
		user, _, _ := bytes.Cut(raw, []byte(":"))
		a.User = string(user)
		clear(raw) // the password
		return a, true
	}
	a.Token = raw
	return a, true
}
