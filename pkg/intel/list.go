package intel

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxLine bounds a list line; longer lines are garbage, named and skipped.
const maxLine = 8 << 10

// ReadList reads a plain list: one IP address, CIDR, domain (`*.domain`
// for it and its subdomains) or URL a line; `#` at the start of a line or
// after a space starts a comment. Defanged entries (`hxxp://`, `[.]`) are
// read as what they stand for. Lines that are none of these are named and
// skipped.
func (r *Reader) ReadList(in io.Reader, source string) {
	br := bufio.NewReaderSize(in, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF && line == "" {
			return
		}
		pos := fmt.Sprintf("line %d", n)
		if err != nil && err != io.EOF {
			if err == errLongLine {
				r.problem(source, pos, "", "line longer than %d bytes", maxLine)
				continue
			}
			r.problem(source, pos, "", "read: %v", err)
			return
		}
		if v, ok := listEntry(line); ok {
			if v != "" {
				r.set.add(&Indicator{Name: v, Pattern: listPattern(v), Source: source, Pos: pos, Confidence: -1})
			}
		} else {
			r.problem(source, pos, "", "not an address, network, domain or URL: %q", clipRunes(line, 60))
		}
		if err == io.EOF {
			return
		}
	}
}

var errLongLine = fmt.Errorf("line too long")

// readLine returns one line without its end; a line longer than maxLine is
// consumed and reported as errLongLine.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return string(b), err
		}
		if len(b)+len(chunk) <= maxLine {
			b = append(b, chunk...)
		} else {
			for isPrefix {
				if _, isPrefix, err = br.ReadLine(); err != nil {
					return "", errLongLine
				}
			}
			return "", errLongLine
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// listEntry cleans a line: the entry, "" for a blank or comment line, and
// false when the line is garbage.
func listEntry(line string) (string, bool) {
	if i := commentStart(line); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
	if line == "" {
		return "", true
	}
	if strings.ContainsAny(line, " \t") || !utf8.ValidString(line) {
		return "", false
	}
	line = defang.Replace(line)
	if strings.HasPrefix(strings.ToLower(line), "hxxp") {
		line = "http" + line[4:]
	}
	if p, ok := parseAddrOrPrefix(line); ok {
		if p.IsSingleIP() {
			return p.Addr().String(), true
		}
		return p.String(), true
	}
	if strings.Contains(line, "://") {
		u, err := url.Parse(line)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ftp") {
			return "", false
		}
		return NormalizeURL(line), true
	}
	name := NormalizeName(line)
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if !validDomain(rest) {
			return "", false
		}
		return name, true
	}
	if !validDomain(name) {
		return "", false
	}
	return name, true
}

// commentStart is where a comment begins: '#' first on the line or after
// white space (a '#' inside a URL is its fragment).
func commentStart(line string) int {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// validDomain accepts host names of at least two labels (a single word is
// more often garbage than a domain).
func validDomain(s string) bool {
	if !strings.Contains(s, ".") || !HostName(s) {
		return false
	}
	// The last label of a domain is never all digits (that is an address
	// written wrong).
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// HostName reports whether s is a lower-case host name: at most 253
// bytes of labels of 1 to 63 letters, digits, '-' and '_' (the last seen
// in real names, e.g. SRV and DKIM), no label starting or ending with
// '-'. Internationalised names are given in their xn-- form.
func HostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// listPattern is the STIX pattern a list entry stands for, so list entries
// and bundle indicators are matched by the same code. A `*.domain` entry
// becomes a LIKE (the domain and every name under it).
func listPattern(v string) string {
	if p, ok := parseAddrOrPrefix(v); ok {
		typ := "ipv4-addr"
		if p.Addr().Is6() {
			typ = "ipv6-addr"
		}
		if p.IsSingleIP() {
			return fmt.Sprintf("[%s:value = %s]", typ, quote(v))
		}
		return fmt.Sprintf("[%s:value ISSUBSET %s]", typ, quote(v))
	}
	if strings.Contains(v, "://") {
		return fmt.Sprintf("[url:value = %s]", quote(v))
	}
	if rest, ok := strings.CutPrefix(v, "*."); ok {
		return fmt.Sprintf("[domain-name:value = %s OR domain-name:value LIKE %s]", quote(rest), quote("%."+rest))
	}
	return fmt.Sprintf("[domain-name:value = %s]", quote(v))
}

// quote makes a pattern string literal.
func quote(s string) string {
	return "'" + quoter.Replace(s) + "'"
}

var quoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// defang undoes the usual defanging of shared indicators.
var defang = strings.NewReplacer("[.]", ".", "(.)", ".", "[:]", ":", "[://]", "://")
