package winrm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Encrypted-message protocols of MS-WSMV 2.2.9.1.
const (
	ProtoSPNEGO  = "application/HTTP-SPNEGO-session-encrypted"   // Negotiate: NTLM or Kerberos
	ProtoKerb    = "application/HTTP-Kerberos-session-encrypted" // Kerberos without SPNEGO
	ProtoCredSSP = "application/HTTP-CredSSP-session-encrypted"  // CredSSP (TLS inside)
)

// Encryption reads a Content-Type of MS-WSMV message encryption
// (multipart/encrypted or multipart/x-multi-encrypted): its protocol and
// boundary.
func Encryption(contentType string) (protocol, boundary string, ok bool) {
	mt, params, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if mt != "multipart/encrypted" && mt != "multipart/x-multi-encrypted" {
		return "", "", false
	}
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.ToLower(k) {
		case "protocol":
			protocol = v
		case "boundary":
			boundary = v
		}
	}
	return protocol, boundary, boundary != ""
}

// Charset returns the charset parameter of a Content-Type (or of an
// encrypted part's type), unquoted; "" when it has none. Parameters are
// read one by one, not found by searching the lower-cased value: lowering
// changes the length of bytes that are not ASCII, so an index in it is not
// one in the value.
func Charset(contentType string) string {
	_, params, _ := strings.Cut(contentType, ";")
	for _, p := range strings.Split(params, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "charset") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// EncryptedPart is one encrypted message of a multipart body: the
// description part (its protocol and the plaintext's type and length),
// then the octet-stream part with the wrapped message.
type EncryptedPart struct {
	Protocol string
	Type     string // the plaintext's content type (OriginalContent type=), e.g. application/soap+xml;charset=UTF-8
	Length   int    // the plaintext's length (OriginalContent Length=), -1 when not given
	// Data is the wrapped message: a 4-byte little-endian length, the
	// signature (or Kerberos wrap token header) of that length, then the
	// sealed bytes.
	Data []byte
}

// Split cuts Data into the signature and the sealed message (MS-WSMV
// 2.2.9.1.1). With NTLM the signature is 16 bytes and the sealed message
// as long as the plaintext.
func (p EncryptedPart) Split() (sig, sealed []byte, err error) {
	if len(p.Data) < 4 {
		return nil, nil, fmt.Errorf("%w: encrypted part of %d bytes", ErrMalformed, len(p.Data))
	}
	n := binary.LittleEndian.Uint32(p.Data)
	if uint64(n) > uint64(len(p.Data)-4) {
		return nil, nil, fmt.Errorf("%w: signature length %d beyond the part's %d bytes", ErrMalformed, n, len(p.Data)-4)
	}
	return p.Data[4 : 4+n], p.Data[4+n:], nil
}

// maxParts bounds the encrypted messages read from one body (Windows
// sends one, or one per 16 KiB chunk under CredSSP).
const maxParts = 4096

// EncryptedParts returns the encrypted messages of a multipart/encrypted
// body with the given boundary, appended to dst. Each Data aliases body.
func EncryptedParts(dst []EncryptedPart, body []byte, boundary string) ([]EncryptedPart, error) {
	delim := []byte("--" + boundary)
	pos := 0
	for len(dst) < maxParts {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			if len(dst) == 0 {
				return dst, fmt.Errorf("%w: multipart: no boundary %q", ErrMalformed, boundary)
			}
			return dst, nil
		}
		pos += i + len(delim)
		if bytes.HasPrefix(body[pos:], []byte("--")) {
			return dst, nil // the closing delimiter
		}
		// Description part: header lines up to the next delimiter.
		j := bytes.Index(body[pos:], delim)
		if j < 0 {
			return dst, fmt.Errorf("%w: multipart: part %d at offset %d has no data part", ErrMalformed, len(dst), pos)
		}
		p := EncryptedPart{Length: -1}
		forEachHeader(bytes.ReplaceAll(body[pos:pos+j], []byte("\r\n\t"), []byte("\r\n")), func(name, value []byte) bool {
			switch {
			case bytes.EqualFold(name, []byte("Content-Type")):
				p.Protocol = string(value)
			case bytes.EqualFold(name, []byte("OriginalContent")):
				p.Type, p.Length = originalContent(string(value))
			}
			return true
		})
		pos += j + len(delim)
		// Data part: its header lines (Content-Type: application/
		// octet-stream), then the wrapped message with no blank line.
		pos = skipLine(body, pos)
		for k := 0; k < 4; k++ {
			if !isHeaderLine(body[pos:]) {
				break
			}
			pos = skipLine(body, pos)
		}
		if bytes.HasPrefix(body[pos:], []byte("\r\n")) {
			pos += 2
		}
		// The message ends at the delimiter after it; with the plaintext
		// length known (NTLM seals length for length), look only past
		// the signature and the sealed bytes, which may hold the
		// delimiter's bytes by chance.
		from := pos
		if p.Length >= 0 && len(body)-pos >= 4 {
			if n := int64(binary.LittleEndian.Uint32(body[pos:])); n <= int64(len(body)-pos-4) && int64(p.Length) <= int64(len(body)-pos-4)-n {
				from = pos + 4 + int(n) + p.Length
			}
		}
		e := bytes.Index(body[from:], delim)
		if e < 0 {
			return dst, fmt.Errorf("%w: multipart: encrypted part %d at offset %d is not closed", ErrMalformed, len(dst), pos)
		}
		end := from + e
		p.Data = body[pos:end]
		dst = append(dst, p)
		pos = end
	}
	return dst, nil
}

func skipLine(b []byte, pos int) int {
	if i := bytes.Index(b[pos:], []byte("\r\n")); i >= 0 && i < 1024 {
		return pos + i + 2
	}
	return pos
}

// isHeaderLine tells a MIME header line ("\tContent-Type: ...") from the
// start of binary data.
func isHeaderLine(b []byte) bool {
	b = bytes.TrimLeft(b[:min(len(b), 256)], " \t")
	c := bytes.IndexByte(b, ':')
	if c <= 0 || !bytes.Contains(b[c:], []byte("\r\n")) {
		return false
	}
	for _, x := range b[:c] {
		if !(x >= 'A' && x <= 'Z' || x >= 'a' && x <= 'z' || x == '-') {
			return false
		}
	}
	return true
}

// originalContent reads "type=...;charset=...;Length=N".
func originalContent(v string) (typ string, length int) {
	length = -1
	var params []string
	for _, p := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(k) {
		case "type":
			typ = val
		case "length":
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n >= 0 {
				length = n
			}
		default:
			params = append(params, strings.TrimSpace(p))
		}
	}
	if len(params) > 0 && typ != "" {
		typ += ";" + strings.Join(params, ";")
	}
	return typ, length
}
