package texttable

import (
	"bytes"
	"strings"
	"testing"
)

// Cells come from packets: nothing in one may reach the terminal as a
// control sequence, break its row or reorder the text shown.
func TestHostileCells(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dc01.corp.example", "dc01.corp.example"},
		{"é-ü 名前", "é-ü 名前"},
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`},
		{"\x1b]52;c;ZXZpbA==\x07", `\x1b]52;c;ZXZpbA==\x07`}, // OSC 52: write the clipboard
		{"a\x1b[2Kb", `a\x1b[2Kb`},
		{"line\nnext\rover\ttab", `line\x0anext\x0dover\x09tab`},
		{"c1\u009b31m", `c1\u009b31m`}, // a one-byte CSI on some terminals
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"bad\xffutf8", `bad\ufffdutf8`},
		{"del\x7f", `del\x7f`},
	}
	for _, tc := range tests {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var b bytes.Buffer
	tab := New(&b, false, "host", "command")
	for _, tc := range tests {
		tab.Append(tc.in, tc.in)
	}
	tab.Render()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3+len(tests)+1 { // rule, header, rule, rows, rule
		t.Errorf("%d lines for %d rows:\n%s", len(lines), len(tests), b.String())
	}
	for _, c := range b.String() {
		if c < 0x20 && c != '\n' || c == 0x7f || c >= 0x80 && c < 0xa0 || c == 0x202e {
			t.Fatalf("a control character %U reached the output:\n%q", c, b.String())
		}
	}
}
