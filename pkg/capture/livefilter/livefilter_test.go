//go:build linux && cgo

package livefilter

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestCompileMatchesTcpdump: for the same interface, snap length and
// expression, the program is the one tcpdump would attach (tcpdump -ddd
// prints it), VLAN extensions included.
func TestCompileMatchesTcpdump(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "tcpdump")
	p := netns.NewPair(t)
	for _, tt := range []struct {
		expr    string
		snaplen int
	}{
		{"udp dst port 53", 262144},
		{"vlan 100 and tcp", 262144},
		{"host 198.18.0.1 and not port 22", 96},
		{"tcp[tcpflags] & tcp-syn != 0", 1500},
		{"ip6 and icmp6", 262144},
		{"net 10.0.0.0/8 or vlan", 64},
	} {
		t.Run(tt.expr, func(t *testing.T) {
			var prog []capture.Instruction
			var lt pkthdr.LinkType
			if err := p.B.Do(func() (err error) { prog, lt, err = Compile(p.DevB, tt.snaplen, tt.expr); return err }); err != nil {
				t.Fatal(err)
			}
			if lt != pkthdr.LinkEthernet {
				t.Errorf("link type %d, want Ethernet", lt)
			}
			out, err := p.B.Command(context.Background(), "tcpdump", "-i", p.DevB, "-s", fmt.Sprint(tt.snaplen), "-ddd", tt.expr).Output()
			if err != nil {
				t.Fatalf("tcpdump -ddd: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			var want []capture.Instruction
			for _, l := range lines[1:] {
				var in capture.Instruction
				if _, err := fmt.Sscan(l, &in.Code, &in.Jt, &in.Jf, &in.K); err != nil {
					t.Fatalf("tcpdump line %q: %v", l, err)
				}
				want = append(want, in)
			}
			if fmt.Sprint(prog) != fmt.Sprint(want) {
				t.Errorf("program differs from tcpdump's:\n got %v\nwant %v", prog, want)
			}
			// Live VLAN matching reads the tag the kernel took out through
			// its ancillary loads (SKF_AD_OFF = -0x1000).
			if strings.Contains(tt.expr, "vlan") && !usesAncillary(prog) {
				t.Errorf("vlan expression without kernel ancillary loads: %v", prog)
			}
			if last := prog[len(prog)-1]; tt.expr != "" && last.K != 0 && int(last.K) != tt.snaplen {
				t.Errorf("accepting return %d, want the snap length %d", last.K, tt.snaplen)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	testenv.Root(t)
	p := netns.NewPair(t)
	for _, tt := range []struct{ iface, expr, want string }{
		{p.DevB, "udp port", "udp port"},
		{p.DevB, "vlan and and", "vlan and and"},
		{"nwh-absent0", "udp", "nwh-absent0"},
	} {
		err := p.B.Do(func() error { _, _, err := Compile(tt.iface, 262144, tt.expr); return err })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%q, %q) error %v, want one naming %q", tt.iface, tt.expr, err, tt.want)
		}
	}
}

func usesAncillary(prog []capture.Instruction) bool {
	for _, in := range prog {
		if in.Code&0x07 == 0x00 && in.Code&0xe0 == 0x20 && in.K >= 0xfffff000 { // BPF_LD|BPF_ABS
			return true
		}
	}
	return false
}
