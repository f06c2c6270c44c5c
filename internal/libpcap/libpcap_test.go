package libpcap

import (
	"strings"
	"testing"
)

func TestCompileOffline(t *testing.T) {
	if _, err := CompileOffline(1, 262144, "tcp port"); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("bad expression: err = %v, want libpcap's syntax error", err)
	}
	p, err := CompileOffline(12, 262144, "udp dst port 53") // DLT_RAW
	if err != nil {
		t.Fatal(err)
	}
	// IPv4/UDP 10.0.0.1:54321 > 10.0.0.2:53, then the same to port 54.
	dns := []byte{0x45, 0, 0, 0x1c, 0, 1, 0, 0, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0xd4, 0x31, 0, 53, 0, 8, 0, 0}
	other := append([]byte(nil), dns...)
	other[23] = 54
	for _, tc := range []struct {
		data []byte
		want bool
	}{{dns, true}, {other, false}, {dns[:10], false}, {nil, false}} {
		if got := p.Match(1, 2, tc.data, len(dns)); got != tc.want {
			t.Errorf("Match(% x) = %v, want %v", tc.data, got, tc.want)
		}
	}
}
