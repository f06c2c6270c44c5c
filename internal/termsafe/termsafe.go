// Package termsafe keeps text taken from captured traffic (commands, file
// and pipe names, user names, certificate names, command output) from
// driving the terminal it is printed to. A capture is the attacker's
// text: an ESC sequence in a file name can retitle the window, move the
// cursor over earlier lines or, on some terminals, answer back keystrokes;
// a carriage return or backspace can hide what a line says.
//
// Every C0 control but tab and newline, DEL and the C1 controls (U+0080 to
// U+009F, which UTF-8 terminals obey as ESC sequences) become '?'. JSON
// output needs none of this: its encoder escapes controls itself.
package termsafe

import (
	"io"
	"strings"
)

// Repl is what each control character becomes.
const Repl = '?'

// unsafeByte reports whether b is a C0 control other than tab and newline,
// or DEL.
func unsafeByte(b byte) bool { return b < 0x20 && b != '\t' && b != '\n' || b == 0x7f }

// c1 reports whether b, following 0xC2 in UTF-8, ends a C1 control.
func c1(b byte) bool { return b >= 0x80 && b <= 0x9f }

// String returns s with its control characters replaced, for a table cell
// (whose width is measured before it is printed). Newlines are replaced
// too: a cell is one line.
func String(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; unsafeByte(b) || b == '\n' || b == '\t' || b == 0xc2 && i+1 < len(s) && c1(s[i+1]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case unsafeByte(b) || b == '\n' || b == '\t':
			sb.WriteByte(Repl)
		case b == 0xc2 && i+1 < len(s) && c1(s[i+1]):
			sb.WriteByte(Repl)
			i++
		default:
			sb.WriteByte(b)
		}
	}
	return sb.String()
}

// Writer replaces control characters in everything written through it,
// keeping tab and newline (lines of text, not cells).
type Writer struct {
	w       io.Writer
	afterC2 bool // the last byte passed on was 0xC2
	scratch []byte
}

// NewWriter returns a Writer onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Unwrap gives the writer beneath (whether it is a terminal).
func (t *Writer) Unwrap() io.Writer { return t.w }

// Write passes p on with its control characters replaced. It reports
// len(p) when the writer beneath took everything. A C1 control split
// between two writes loses its second byte: the 0xC2 already passed on is
// then followed by '?', which no terminal reads as a control.
func (t *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	i := 0
	if !t.afterC2 || !c1(p[0]) {
		for i < len(p) && !unsafeByte(p[i]) && !(p[i] == 0xc2 && i+1 < len(p) && c1(p[i+1])) {
			i++
		}
	}
	if i == len(p) {
		t.afterC2 = p[len(p)-1] == 0xc2
		return t.w.Write(p)
	}
	out := append(t.scratch[:0], p[:i]...)
	for ; i < len(p); i++ {
		switch b := p[i]; {
		case unsafeByte(b), i == 0 && t.afterC2 && c1(b):
			out = append(out, Repl)
		case b == 0xc2 && i+1 < len(p) && c1(p[i+1]):
			out = append(out, Repl)
			i++
		default:
			out = append(out, b)
		}
	}
	t.afterC2 = out[len(out)-1] == 0xc2
	if cap(out) <= 64<<10 {
		t.scratch = out[:0]
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
