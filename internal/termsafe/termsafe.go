// Package termsafe keeps text taken from captured traffic (commands and
// their output, file, pipe and user names, certificate names) from driving
// the terminal it is printed to. A capture is the attacker's text: an
// escape sequence in a file name can set the window's title, write the
// clipboard (OSC 52) or erase earlier lines; a carriage return or
// backspace can hide what a line says; a bidirectional override can show
// "exe.txt" for "txt.exe".
//
// Control characters (C0, DEL, C1), bidirectional controls and the line
// and paragraph separators are shown as Go escapes (\x1b, \u202e), and
// invalid UTF-8 as \ufffd. JSON output needs none of this: its encoder
// escapes controls itself, and the text stays exact there.
package termsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s safe for a table cell: on one line, so newline and
// tab are escaped too.
func String(s string) string { return clean(s, false) }

// Text returns s safe for lines of text: newline and tab kept.
func Text(s string) string { return clean(s, true) }

func clean(s string, lines bool) string {
	i := 0
	for i < len(s) && (s[i] >= 0x20 && s[i] < 0x7f || lines && (s[i] == '\n' || s[i] == '\t')) {
		i++
	}
	if i == len(s) {
		return s // printable ASCII: the common case, no copy
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for j := i; j < len(s); {
		r, n := utf8.DecodeRuneInString(s[j:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\ufffd`)
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[j : j+n])
		}
		j += n
	}
	return b.String()
}

// Writer makes everything written through it safe as lines of text
// (Text), a write at a time: callers write whole strings (fmt, tables),
// so a character split between two writes is shown as \ufffd twice, never
// passed on.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Unwrap gives the writer beneath (whether it is a terminal).
func (t *Writer) Unwrap() io.Writer { return t.w }

// Write passes p on made safe. It reports len(p) when the writer beneath
// took everything.
func (t *Writer) Write(p []byte) (int, error) {
	s := Text(string(p))
	if _, err := io.WriteString(t.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
