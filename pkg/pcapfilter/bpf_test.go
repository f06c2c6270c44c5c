package pcapfilter

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/nwhealth/nwhealth/internal/libpcap"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// oracleExprs cover every instruction class libpcap emits for files:
// absolute, indirect and MSH loads, lengths, arithmetic, scratch memory,
// all jumps.
var oracleExprs = []string{
	"tcp", "udp port 53", "host 10.0.0.1", "net 10.0.0.0/8 and not port 22",
	"ip6", "ip6 and tcp port 443", "icmp or icmp6", "arp",
	"vlan", "vlan 10 and udp", "vlan and vlan",
	"tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "tcp[13] = 18",
	"ip[2:2] > 100", "len > 60", "greater 100", "less 80",
	"ip[0] & 0xf != 5", "ip[6:2] & 0x1fff != 0", "udp[8:4] = 0x01020304",
	"ip[8] * 2 + ip[9] / 3 - 1 > 50", "tcp[(tcp[12] >> 4) * 4] = 0x47",
	"ip[2:2] % 7 = 3", "ip[1] ^ 0xff = 0xff", "ip[1] << 2 = 0", "ip[9] | 1 = 17",
	"ether host 02:00:00:00:00:01", "ether broadcast", "ip multicast",
	"protochain 6", "ip proto 47 or ip6 proto 47", "portrange 1000-2000",
	"tcp and (dst port 80 or dst port 8080) and src net 192.168.0.0/16",
}

// packets makes Ethernet frames of many shapes (VLAN-tagged, IPv4 with
// options, IPv6, ARP, garbage) and truncated copies of them.
func packets(r *rand.Rand, n int) [][]byte {
	var out [][]byte
	for range n {
		var f []byte
		f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, byte(r.IntN(3)))
		for range r.IntN(3) {
			f = binary.BigEndian.AppendUint16(f, 0x8100)
			f = binary.BigEndian.AppendUint16(f, uint16(r.IntN(20)))
		}
		switch r.IntN(5) {
		case 0, 1: // IPv4
			f = binary.BigEndian.AppendUint16(f, 0x0800)
			ihl := 5 + r.IntN(3)
			ip := make([]byte, ihl*4)
			ip[0] = byte(0x40 | ihl)
			ip[1] = byte(r.IntN(256))
			ip[6], ip[7] = byte(r.IntN(2)*0x20), byte(r.IntN(3))
			ip[8] = byte(r.IntN(256))
			ip[9] = []byte{6, 17, 1, 47, byte(r.IntN(256))}[r.IntN(5)]
			copy(ip[12:], []byte{10, 0, 0, byte(r.IntN(3))})
			copy(ip[16:], []byte{[]byte{10, 192, 224, 255}[r.IntN(4)], 168, 0, byte(r.IntN(2) * 255)})
			l4 := make([]byte, 20+r.IntN(40))
			binary.BigEndian.PutUint16(l4, []uint16{53, 22, 80, 443, 1500, 8080}[r.IntN(6)])
			binary.BigEndian.PutUint16(l4[2:], []uint16{53, 22, 80, 443, 1500, 8080}[r.IntN(6)])
			l4[12] = byte((5 + r.IntN(3)) << 4)
			l4[13] = byte(r.IntN(64))
			for i := 14; i < len(l4); i++ {
				l4[i] = byte(r.IntN(256))
			}
			binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+len(l4)))
			f = append(append(f, ip...), l4...)
		case 2: // IPv6
			f = binary.BigEndian.AppendUint16(f, 0x86dd)
			ip := make([]byte, 40)
			ip[0] = 0x60
			ip[6] = []byte{6, 17, 58, 0, 47}[r.IntN(5)]
			ip[23] = byte(r.IntN(3))
			l4 := make([]byte, 8+r.IntN(40))
			binary.BigEndian.PutUint16(l4, 443)
			binary.BigEndian.PutUint16(l4[2:], uint16(r.IntN(2000)))
			binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
			f = append(append(f, ip...), l4...)
		case 3: // ARP
			f = binary.BigEndian.AppendUint16(f, 0x0806)
			f = append(f, make([]byte, 28)...)
		default: // garbage
			for range r.IntN(80) {
				f = append(f, byte(r.IntN(256)))
			}
		}
		out = append(out, f)
		if len(f) > 0 {
			out = append(out, f[:r.IntN(len(f))]) // a truncated capture
		}
	}
	return out
}

// TestRunMatchesLibpcap checks the whole path, tcpdump's compilation and
// Run, against libpcap compiling and filtering in-process
// (pcap_offline_filter), on Ethernet frames and the raw IP inside them.
func TestRunMatchesLibpcap(t *testing.T) {
	if err := libpcap.Load(); err != nil {
		testenv.Missing(t, "no libpcap to compare with: %v", err)
	}
	if _, err := tcpdump(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	pkts := packets(r, 300)
	for _, lt := range []pkthdr.LinkType{pkthdr.LinkEthernet, pkthdr.LinkRaw} {
		dlt := int(lt)
		if lt == pkthdr.LinkRaw {
			dlt = 12 // DLT_RAW on Linux
		}
		for _, expr := range oracleExprs {
			ours, err := CompileOffline(expr, lt, 262144)
			ref, rerr := libpcap.CompileOffline(dlt, 262144, expr)
			if (err != nil) != (rerr != nil) {
				t.Errorf("%q on %d: tcpdump says %v, libpcap says %v", expr, lt, err, rerr)
				continue
			}
			if err != nil {
				continue
			}
			for i, p := range pkts {
				wire := len(p) + i%3 // some captures are shorter than the wire
				if lt == pkthdr.LinkRaw {
					if len(p) < 14 {
						continue
					}
					p = p[14:]
					wire -= 14
				}
				if got, want := Run(ours, p, wire) != 0, ref.Match(0, 0, p, wire); got != want {
					t.Fatalf("%q on link type %d, packet % x (wire %d): Run %v, libpcap %v", expr, lt, p, wire, got, want)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ret := Instruction{Code: clsRET | retK, K: 1}
	cases := []struct {
		name string
		prog []Instruction
		ok   bool
	}{
		{"return", []Instruction{ret}, true},
		{"empty", nil, false},
		{"no return", []Instruction{{Code: clsLD | mdIMM}}, false},
		{"jump past end", []Instruction{{Code: clsJMP | jmpJEQ, Jt: 1}, ret}, false},
		{"ja past end", []Instruction{{Code: clsJMP | jmpJA, K: 1}, ret}, false},
		{"ja inside", []Instruction{{Code: clsJMP | jmpJA, K: 1}, ret, ret}, true},
		{"ja back", []Instruction{ret, {Code: clsJMP | jmpJA, K: 0xfffffffe}, ret}, true},
		{"ja before start", []Instruction{{Code: clsJMP | jmpJA, K: 0xfffffffe}, ret}, false},
		{"memory", []Instruction{{Code: clsST, K: 16}, ret}, false},
		{"div zero", []Instruction{{Code: clsALU | opDIV | srcK}, ret}, false},
		{"div x", []Instruction{{Code: clsALU | opDIV | srcX}, ret}, true},
		{"shift 32", []Instruction{{Code: clsALU | opLSH | srcK, K: 32}, ret}, false},
		{"bad load mode", []Instruction{{Code: clsLD | 0xe0}, ret}, false},
	}
	for _, c := range cases {
		if err := Validate(c.prog); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok %v", c.name, err, c.ok)
		}
	}
	// An endless loop ends.
	if Run([]Instruction{{Code: clsJMP | jmpJA, K: 0xffffffff}, ret}, nil, 0) != 0 {
		t.Error("an endless loop accepted")
	}
	// Division by a zero X rejects, as in libpcap.
	div := []Instruction{{Code: clsLDX | mdIMM}, {Code: clsALU | opDIV | srcX}, ret}
	if Run(div, nil, 0) != 0 {
		t.Error("division by zero did not reject")
	}
}

func TestParseDDD(t *testing.T) {
	prog, err := parseDDD([]byte("2\n40 0 0 12\n6 0 0 262144\n"))
	if err != nil || len(prog) != 2 || prog[0] != (Instruction{Code: 40, K: 12}) || prog[1].K != 262144 {
		t.Fatalf("parseDDD = %v, %v", prog, err)
	}
	for _, bad := range []string{"", "x\n", "2\n40 0 0 12\n", "1\n40 0 0\n", "1\n70000 0 0 1\n", "1\n6 0 0 99999999999\n", "99999999\n"} {
		if _, err := parseDDD([]byte(bad)); err == nil {
			t.Errorf("parseDDD(%q) succeeded", bad)
		}
	}
}

// FuzzRun runs arbitrary programs on arbitrary packets: Run must never
// panic or loop, whatever Validate says.
func FuzzRun(f *testing.F) {
	f.Add([]byte{0x28, 0, 0, 0, 12, 0, 0, 0, 0x15, 0, 0, 1, 0, 8, 0, 0, 6, 0, 0, 0, 0xff, 0xff, 0, 0}, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 8, 0})
	f.Add([]byte{0x61, 0, 0, 0, 200, 0, 0, 0, 0x3c, 0, 0, 0, 0, 0, 0, 0, 0x16, 0, 0, 0, 0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, code, data []byte) {
		var prog []Instruction
		for len(code) >= 8 && len(prog) < 256 {
			prog = append(prog, Instruction{Code: binary.LittleEndian.Uint16(code), Jt: code[2], Jf: code[3], K: binary.LittleEndian.Uint32(code[4:])})
			code = code[8:]
		}
		_ = Validate(prog)
		Run(prog, data, len(data)+int(len(code)))
	})
}
