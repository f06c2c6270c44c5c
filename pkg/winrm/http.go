// Package winrm decodes Windows Remote Management as it crosses the wire:
// HTTP/1.1 messages cut from a TCP byte stream, the multipart bodies of
// MS-WSMV message encryption, the Authorization and WWW-Authenticate
// tokens, the SOAP envelopes of WS-Management (DMTF DSP0226, MS-WSMV) and
// the PowerShell Remoting Protocol fragments and messages they carry
// (MS-PSRP). It knows nothing of packets, keys or operations: replay wires
// it to TCP reassembly and to NTLM unsealing.
//
// Every decoder takes untrusted bytes: lengths are checked against what is
// present and nothing is allocated from a length the input claims.
package winrm

import (
	"bytes"
	"errors"
	"fmt"
)

// MaxHeader bounds an HTTP message's start line and headers: a stream
// whose header block runs longer is not HTTP as WinRM speaks it.
const MaxHeader = 64 << 10

// ErrMalformed is wrapped by every decoding error of this package.
var ErrMalformed = errors.New("malformed")

var crlfcrlf = []byte("\r\n\r\n")

// isMethodByte reports the characters of an HTTP method token as WinRM
// clients send them (POST, GET, OPTIONS...).
func isMethodByte(c byte) bool { return c >= 'A' && c <= 'Z' }

// startsMessage tells whether b can begin an HTTP/1.x message: 1 yes, 0
// too short to tell, -1 no.
func startsMessage(b []byte) int {
	const resp = "HTTP/1."
	if len(b) > 0 && b[0] == 'H' {
		n := min(len(b), len(resp))
		if string(b[:n]) == resp[:n] {
			if n < len(resp) {
				return 0
			}
			return 1
		}
	}
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == ' ' && i > 0:
			if i+1 < len(b) && b[i+1] != '/' && b[i+1] != '*' && b[i+1] != 'h' {
				return -1
			}
			return 1
		case !isMethodByte(b[i]) || i >= 16:
			return -1
		}
	}
	return 0
}

// MessageLen returns the length of the HTTP/1.x message at the start of
// b: -1 when b does not start with one, 0 when more bytes are needed to
// tell, and otherwise at least the message's length: when the result is
// larger than len(b), that many bytes are needed before asking again
// (a chunked body's length is only known chunk by chunk). A huge
// Content-Length is returned as it is (capped at 1<<40), never allocated.
func MessageLen(b []byte) int64 {
	switch startsMessage(b) {
	case -1:
		return -1
	case 0:
		return 0
	}
	end := bytes.Index(b[:min(len(b), MaxHeader)], crlfcrlf)
	if end < 0 {
		if len(b) >= MaxHeader {
			return -1
		}
		return 0
	}
	hlen := end + 4
	h := head(b[:end+2])
	if !h.ok {
		return -1
	}
	if !h.hasBody {
		return int64(hlen)
	}
	if h.chunked {
		return chunkedLen(b, hlen)
	}
	return int64(hlen) + h.contentLength
}

// chunkedLen walks a chunked body starting at off (RFC 9112 7.1): the
// whole message's length, or a lower bound larger than len(b) when the
// chunks are not all present, or -1 when the framing is broken.
func chunkedLen(b []byte, off int) int64 {
	pos := int64(off)
	n := int64(len(b))
	for {
		if pos >= n {
			return pos + 5 // at least a last chunk "0\r\n\r\n"
		}
		line := b[pos:]
		eol := bytes.Index(line[:min(len(line), 1024)], []byte("\r\n"))
		if eol < 0 {
			if len(line) >= 1024 {
				return -1
			}
			return n + 1
		}
		size, ok := hexSize(line[:eol])
		if !ok {
			return -1
		}
		pos += int64(eol) + 2
		if size == 0 {
			// Trailer fields, then an empty line.
			for {
				if pos >= n {
					return pos + 2
				}
				rest := b[pos:]
				e := bytes.Index(rest[:min(len(rest), MaxHeader)], []byte("\r\n"))
				if e < 0 {
					if len(rest) >= MaxHeader {
						return -1
					}
					return n + 1
				}
				pos += int64(e) + 2
				if e == 0 {
					return pos
				}
			}
		}
		pos += size + 2
		if pos > n {
			return pos + 5
		}
		if b[pos-2] != '\r' || b[pos-1] != '\n' {
			return -1
		}
	}
}

// hexSize reads a chunk-size line (extensions after ';' ignored).
func hexSize(l []byte) (int64, bool) {
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i]
	}
	l = bytes.TrimRight(l, " \t")
	if len(l) == 0 || len(l) > 10 {
		return 0, false
	}
	var v int64
	for _, c := range l {
		d, ok := hexDigit(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | int64(d)
	}
	return v, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// headInfo is what framing needs of a header block.
type headInfo struct {
	ok, request, hasBody, chunked bool
	status                        int
	contentLength                 int64
}

const maxContentLength = 1 << 40

// head reads the start line and the framing headers of blk (ending with
// the CRLF of its last header line).
func head(blk []byte) headInfo {
	var h headInfo
	eol := bytes.Index(blk, []byte("\r\n"))
	if eol < 0 {
		return h
	}
	line := blk[:eol]
	if bytes.HasPrefix(line, []byte("HTTP/1.")) {
		if len(line) < 12 || line[8] != ' ' {
			return h
		}
		st := 0
		for _, c := range line[9:12] {
			if c < '0' || c > '9' {
				return h
			}
			st = st*10 + int(c-'0')
		}
		h.status = st
	} else {
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) && !bytes.HasSuffix(line, []byte(" HTTP/1.0")) {
			return h
		}
		h.request = true
	}
	h.ok = true
	h.hasBody = true
	if !h.request && (h.status < 200 || h.status == 204 || h.status == 304) {
		h.hasBody = false
	}
	sawLen := false
	forEachHeader(blk[eol+2:], func(name, value []byte) bool {
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, ok := decimal(value)
			if !ok {
				h.ok = false
				return false
			}
			h.contentLength, sawLen = v, true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if bytes.Contains(bytes.ToLower(value), []byte("chunked")) {
				h.chunked = true
			}
		}
		return true
	})
	if h.hasBody && !h.chunked && !sawLen {
		// Neither length nor chunking: a request has no body; a response
		// would run to the connection's end, which WinRM never does.
		h.hasBody = false
	}
	return h
}

func decimal(v []byte) (int64, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > maxContentLength {
			n = maxContentLength
		}
	}
	return n, true
}

// forEachHeader calls fn with each header line's name and value (leading
// and trailing blanks trimmed) until fn returns false.
func forEachHeader(blk []byte, fn func(name, value []byte) bool) {
	for len(blk) > 0 {
		eol := bytes.Index(blk, []byte("\r\n"))
		line := blk
		if eol >= 0 {
			line, blk = blk[:eol], blk[eol+2:]
		} else {
			blk = nil
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		if !fn(bytes.TrimSpace(line[:c]), bytes.TrimSpace(line[c+1:])) {
			return
		}
	}
}

// Message is one HTTP message as MessageLen cut it.
type Message struct {
	Request bool
	Method  string // requests
	Target  string // requests: the request target (/wsman)
	Status  int    // responses
	header  []byte // header lines, without the start line
	// Body is the message body, de-chunked; it aliases the message or the
	// scratch buffer given to ParseMessage.
	Body []byte
	// Truncated: the message was shorter than its framing said (only
	// from a caller that cut it short).
	Truncated bool
}

// Header returns the value of the first header named name, "" when
// absent.
func (m *Message) Header(name string) string {
	var v string
	forEachHeader(m.header, func(n, val []byte) bool {
		if bytes.EqualFold(n, []byte(name)) {
			v = string(val)
			return false
		}
		return true
	})
	return v
}

// ParseMessage reads one whole HTTP message (as MessageLen framed it). A
// chunked body is joined into scratch (reused when large enough: it
// never grows past len(b)), which Body then aliases.
func ParseMessage(b []byte, scratch []byte) (Message, []byte, error) {
	var m Message
	end := bytes.Index(b[:min(len(b), MaxHeader)], crlfcrlf)
	if end < 0 {
		return m, scratch, fmt.Errorf("%w: http: no end of headers", ErrMalformed)
	}
	h := head(b[:end+2])
	if !h.ok {
		return m, scratch, fmt.Errorf("%w: http: bad start line or headers", ErrMalformed)
	}
	eol := bytes.Index(b, []byte("\r\n"))
	line := b[:eol]
	m.Request, m.Status = h.request, h.status
	if h.request {
		f := bytes.SplitN(line, []byte(" "), 3)
		m.Method = string(f[0])
		if len(f) > 1 {
			m.Target = string(f[1])
		}
	}
	if eol+2 <= end+2 {
		m.header = b[eol+2 : end+2]
	}
	body := b[end+4:]
	switch {
	case !h.hasBody:
		body = nil
	case h.chunked:
		scratch = scratch[:0]
		pos := 0
		for pos < len(body) {
			e := bytes.Index(body[pos:], []byte("\r\n"))
			if e < 0 {
				m.Truncated = true
				break
			}
			size, ok := hexSize(body[pos : pos+e])
			if !ok {
				return m, scratch, fmt.Errorf("%w: http: bad chunk size at body offset %d", ErrMalformed, pos)
			}
			pos += e + 2
			if size == 0 {
				break
			}
			if size > int64(len(body)-pos) {
				scratch = append(scratch, body[pos:]...)
				m.Truncated = true
				break
			}
			scratch = append(scratch, body[pos:pos+int(size)]...)
			pos += int(size) + 2
		}
		body = scratch
	default:
		if h.contentLength < int64(len(body)) {
			body = body[:h.contentLength]
		} else if h.contentLength > int64(len(body)) {
			m.Truncated = true
		}
	}
	m.Body = body
	return m, scratch, nil
}

// Resync returns the offset of the next plausible HTTP message start in
// b (a request line of a WinRM method or a status line, at a line's
// start), or -1.
func Resync(b []byte) int {
	best := -1
	for _, s := range resyncMarks {
		for off := 0; off < len(b); {
			i := bytes.Index(b[off:], s)
			if i < 0 {
				break
			}
			i += off
			if i == 0 || b[i-1] == '\n' {
				if best < 0 || i < best {
					best = i
				}
				break
			}
			off = i + 1
		}
	}
	return best
}

var resyncMarks = [][]byte{[]byte("HTTP/1."), []byte("POST /"), []byte("GET /"), []byte("OPTIONS ")}

// IsWSManRequest reports whether b starts a request to a WS-Management
// endpoint (POST /wsman...), however the port is numbered.
func IsWSManRequest(b []byte) bool {
	const p = "POST /wsman"
	return len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p))
}
