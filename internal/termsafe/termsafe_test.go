package termsafe

import (
	"bytes"
	"errors"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, cell, text string }{
		{"dc01.corp.example", "dc01.corp.example", "dc01.corp.example"},
		{"é-ü 名前 ¢", "é-ü 名前 ¢", "é-ü 名前 ¢"}, // ¢ is 0xC2 0xA2, not a C1 control
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`, `\x1b]0;owned\x07`},
		{"\x1b]52;c;ZXZpbA==\x07", `\x1b]52;c;ZXZpbA==\x07`, `\x1b]52;c;ZXZpbA==\x07`}, // OSC 52: write the clipboard
		{"a\x1b[2Kb", `a\x1b[2Kb`, `a\x1b[2Kb`},
		{"line\nnext\rover\ttab", `line\x0anext\x0dover\x09tab`, "line\nnext\\x0dover\ttab"},
		{"c1\u009b31m \u0085", `c1\u009b31m \u0085`, `c1\u009b31m \u0085`}, // a one-character CSI on some terminals
		{"evil\u202etxt.exe", `evil\u202etxt.exe`, `evil\u202etxt.exe`},
		{"bad\xffutf8 \xe5\x90", `bad\ufffdutf8 \ufffd\ufffd`, `bad\ufffdutf8 \ufffd\ufffd`},
		{"whoami\x7f\x7f\x00", `whoami\x7f\x7f\x00`, `whoami\x7f\x7f\x00`},
		{"sep\u2028par\u2029", `sep\u2028par\u2029`, `sep\u2028par\u2029`},
		{"", "", ""},
	} {
		if got := String(tc.in); got != tc.cell {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.cell)
		}
		if got := Text(tc.in); got != tc.text {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.text)
		}
		var b bytes.Buffer
		if n, err := NewWriter(&b).Write([]byte(tc.in)); err != nil || n != len(tc.in) || b.String() != tc.text {
			t.Errorf("Write(%q) = %d, %v, wrote %q, want %q", tc.in, n, err, b.String(), tc.text)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterError(t *testing.T) {
	for _, s := range []string{"clean", "dirty\x1b"} {
		if _, err := NewWriter(failWriter{}).Write([]byte(s)); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func TestUnwrap(t *testing.T) {
	var b bytes.Buffer
	if NewWriter(&b).Unwrap() != &b {
		t.Error("Unwrap does not give the writer beneath")
	}
}

// unsafe reports the first character in s a terminal would obey, or
// that reorders or breaks the text; -1 when none. With lines, newline and
// tab are allowed.
func unsafe(s string, lines bool) int {
	for i, r := range s {
		if lines && (r == '\n' || r == '\t') {
			continue
		}
		if r < 0x20 || r == 0x7f || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == 0x2028 || r == 0x2029 {
			return i
		}
	}
	if !utf8.ValidString(s) {
		return len(s)
	}
	return -1
}

// FuzzClean: whatever the input, in whatever pieces it is written, the
// output is valid UTF-8 with nothing a terminal obeys, and printable
// text passes unchanged.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"a\x1b[31mb", "\xc2\x9b", "é\r\n", "\xc2", "x\x7f\t", "\u202e", "plain"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		if i := unsafe(String(string(in)), false); i >= 0 {
			t.Fatalf("String(%q) = %q: unsafe at %d", in, String(string(in)), i)
		}
		if i := unsafe(Text(string(in)), true); i >= 0 {
			t.Fatalf("Text(%q) = %q: unsafe at %d", in, Text(string(in)), i)
		}
		var b bytes.Buffer
		w := NewWriter(&b)
		c := min(int(cut), len(in))
		w.Write(in[:c])
		w.Write(in[c:])
		if i := unsafe(b.String(), true); i >= 0 {
			t.Fatalf("%q in pieces at %d gave %q: unsafe at %d", in, c, b.String(), i)
		}
		if unsafe(string(in), true) < 0 && Text(string(in)) != string(in) {
			t.Fatalf("safe text %q changed to %q", in, Text(string(in)))
		}
	})
}
