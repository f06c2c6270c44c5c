package termsafe

import (
	"bytes"
	"errors"
	"testing"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"é ¢ 日本 ✓", "é ¢ 日本 ✓"}, // ¢ is 0xC2 0xA2: not a control
		{"a\x1b]0;owned\x07b", "a?]0;owned?b"},
		{"\x1b[2J\x1b[Hclear", "?[2J?[Hclear"},
		{"whoami\x7f\x7f\x0c", "whoami???"},
		{"line1\r\nline2\ttab", "line1??line2?tab"},
		{"next\u0085line \u009b31m csi", "next?line ?31m csi"},
		{"\x00nul", "?nul"},
		{"ends in \xc2", "ends in \xc2"},
		{"", ""},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"clean", []string{"a\tb\n", "c\n"}, "a\tb\nc\n"},
		{"escape", []string{"name \x1b[31mred\x1b[0m\n"}, "name ?[31mred?[0m\n"},
		{"carriage return hides", []string{"rm -rf /\rls\n"}, "rm -rf /?ls\n"},
		{"C1 in one write", []string{"a\u009b2Jb"}, "a?2Jb"},
		{"C1 split between writes", []string{"a\xc2", "\x9b2Jb"}, "a\xc2?2Jb"},
		{"0xC2 then text", []string{"a\xc2", "b"}, "a\xc2b"},
		{"cent split", []string{"\xc2", "\xa2"}, "¢"},
		{"DEL", []string{"x\x7fy"}, "x?y"},
		{"empty write", []string{"", "a"}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := NewWriter(&b)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if b.String() != tc.want {
				t.Errorf("wrote %q, want %q", b.String(), tc.want)
			}
		})
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

// controls reports whether b holds a byte or UTF-8 sequence a terminal
// obeys (tab and newline aside).
func controls(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if unsafeByte(b[i]) || b[i] == 0xc2 && i+1 < len(b) && c1(b[i+1]) {
			return true
		}
	}
	return false
}

// FuzzWriter: whatever is written, in whatever pieces, no control reaches
// the writer beneath, and the text in one piece is String's but for tabs
// and newlines.
func FuzzWriter(f *testing.F) {
	for _, s := range []string{"a\x1b[31mb", "\xc2\x9b", "é\r\n", "\xc2", "x\x7f\t"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		var b bytes.Buffer
		w := NewWriter(&b)
		c := min(int(cut), len(in))
		w.Write(in[:c])
		w.Write(in[c:])
		if controls(b.Bytes()) {
			t.Fatalf("%q in pieces at %d gave %q", in, c, b.Bytes())
		}
		var one bytes.Buffer
		NewWriter(&one).Write(in)
		if controls(one.Bytes()) || len(String(string(in))) != one.Len() {
			t.Fatalf("%q gave %q, String %q", in, one.Bytes(), String(string(in)))
		}
		if s := String(string(in)); controls([]byte(s)) || bytes.ContainsAny([]byte(s), "\t\n") {
			t.Fatalf("String(%q) = %q", in, s)
		}
	})
}
