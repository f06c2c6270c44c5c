package pkthdr

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Frames laid out header by header; the comments name the fields.
var (
	ipv4UDP = `45 00 00 24 00 01 00 00 40 11 00 00  0a 00 00 01  0a 00 00 02` + // IPv4, UDP, 10.0.0.1 > 10.0.0.2
		`d4 31 00 35 00 10 00 00` + // UDP 54321 > 53, len 16
		`de ad be ef 00 00 00 00` // payload
	ipv6TCPFrag = `60 00 00 00 00 24 2c 40` + // IPv6, payload 36, next header fragment (44)
		`20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01` + // 2001:db8::1
		`20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02` + // 2001:db8::2
		`06 00 00 01 00 00 00 2a` + // fragment header: next TCP, offset 0, M=1
		`01 bb c3 50 00 00 00 01 00 00 00 00 50 12 ff ff 00 00 00 00` + // TCP 443 > 50000 SYN|ACK
		`00 00 00 00`
	ethHdr  = `02 00 00 00 00 02 02 00 00 00 00 01`
	arpReq  = `00 01 08 00 06 04 00 01  02 00 00 00 00 01 0a 00 00 01  00 00 00 00 00 00 0a 00 00 63`
	sllHdr  = `00 00 00 01 00 06 02 00 00 00 00 01 00 00`
	sll2Hdr = `08 00 00 00 00 00 00 02 00 01 00 06 02 00 00 00 00 01 00 00`
)

func TestParse(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		name     string
		lt       LinkType
		frame    string
		ip       bool
		src, dst string
		proto    uint8
		sp, dp   uint16
		vlans    []uint16
		flags    uint8
		payload  int
		frag     bool
	}{
		{"ethernet-udp", LinkEthernet, ethHdr + `08 00` + ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, nil, 0, 8, false},
		{"qinq-udp", LinkEthernet, ethHdr + `88 a8 00 64 81 00 00 c8 08 00` + ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, []uint16{100, 200}, 0, 8, false},
		{"raw-ipv4", LinkRaw, ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, nil, 0, 8, false},
		{"ipv4-linktype", LinkIPv4, ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, nil, 0, 8, false},
		{"sll-udp", LinkLinuxSLL, sllHdr + `08 00` + ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, nil, 0, 8, false},
		{"sll2-udp", LinkSLL2, sll2Hdr + ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, nil, 0, 8, false},
		{"null-loop", LinkNull, `02 00 00 00` + ipv4UDP, true, "10.0.0.1", "10.0.0.2", 17, 54321, 53, nil, 0, 8, false},
		{"ipv6-fragment-tcp", LinkEthernet, ethHdr + `86 dd` + ipv6TCPFrag, true, "2001:db8::1", "2001:db8::2", 6, 443, 50000, nil, 0x12, 4, true},
		{"arp", LinkEthernet, ethHdr + `08 06` + arpReq, false, "10.0.0.1", "10.0.0.99", 0, 0, 0, nil, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			ok := Parse(c.lt, unhex(c.frame), &p)
			if ok != c.ip {
				t.Fatalf("Parse = %v, want %v (%+v)", ok, c.ip, p)
			}
			if p.Src != a(c.src) || p.Dst != a(c.dst) || p.Proto != c.proto || p.SrcPort != c.sp || p.DstPort != c.dp {
				t.Errorf("got %v:%d > %v:%d proto %d", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Proto)
			}
			if p.NVLAN != len(c.vlans) || (len(c.vlans) > 0 && (p.VLAN[0] != c.vlans[0] || p.VLAN[1] != c.vlans[1])) {
				t.Errorf("vlans %v (%d), want %v", p.VLAN, p.NVLAN, c.vlans)
			}
			if p.TCPFlags != c.flags || p.PayloadN != c.payload || p.Fragment != c.frag {
				t.Errorf("flags %#x payload %d frag %v", p.TCPFlags, p.PayloadN, p.Fragment)
			}
		})
	}
}

// TestTruncated cuts a frame at every length: Parse must never panic and
// must flag truncation when it stops inside a header.
func TestTruncated(t *testing.T) {
	for _, f := range []string{ethHdr + `81 00 00 64 08 00` + ipv4UDP, ethHdr + `86 dd` + ipv6TCPFrag} {
		full := unhex(f)
		var whole Packet
		Parse(LinkEthernet, full, &whole)
		for n := 0; n < whole.Payload; n++ {
			var p Packet
			Parse(LinkEthernet, full[:n], &p)
			if !p.Truncated {
				t.Errorf("cut at %d of %d header bytes: not marked truncated: %+v", n, whole.Payload, p)
			}
		}
	}
}

func TestLaterFragmentHasNoPorts(t *testing.T) {
	b := unhex(ipv4UDP)
	binary.BigEndian.PutUint16(b[6:], 0x0010) // fragment offset 16
	var p Packet
	Parse(LinkRaw, b, &p)
	if p.HasPorts || !p.Fragment {
		t.Errorf("later fragment: ports=%v fragment=%v", p.HasPorts, p.Fragment)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(uint16(LinkEthernet), unhex(ethHdr+`08 00`+ipv4UDP))
	f.Add(uint16(LinkEthernet), unhex(ethHdr+`86 dd`+ipv6TCPFrag))
	f.Add(uint16(LinkSLL2), unhex(sll2Hdr+ipv4UDP))
	f.Add(uint16(LinkEthernet), unhex(ethHdr+`08 06`+arpReq))
	f.Add(uint16(LinkEthernet), unhex("02000000000b 02000000000a 0800 4500003c 00004000 4006 0000 0a000001 0a000002 1f90 0050 00000001 00000000 5002ffff 0000 0000"))
	for _, c := range tunnelCases() { // every encapsulation, nested, cut and not quite
		f.Add(uint16(LinkEthernet), c.frame)
	}
	f.Fuzz(func(t *testing.T, lt uint16, b []byte) {
		var p, slow Packet
		ok := Parse(LinkType(lt), b, &p)
		if p.Payload > len(b) || p.L4 > len(b) || p.L3 > len(b) || p.PayloadN < 0 && p.Payload >= 0 {
			t.Fatalf("offsets beyond frame: %+v (len %d)", p, len(b))
		}
		// The fast path agrees with the general one.
		if okSlow := parse(LinkType(lt), b, &slow); ok != okSlow || !reflect.DeepEqual(p, slow) {
			t.Fatalf("fast %+v\nslow %+v", p, slow)
		}
		// A reader skipping packets by their outer IPv4 header (the
		// store's host queries) is told about every tunnel Parse opens.
		if p.Tunnelled() && LinkType(lt) == LinkEthernet && b[12] == 0x08 && b[13] == 0x00 && !MayTunnelIPv4(b[14:]) {
			t.Fatalf("opened a tunnel MayTunnelIPv4 denies: %+v", p)
		}
	})
}

// TestFastPath: Parse's fast path for Ethernet, IPv4 and a whole TCP or
// UDP header gives exactly what the general path gives, over frames made
// to hit every edge (options, fragments, padding, cut headers, data
// offsets, other protocols, tunnel ports, Teredo clients' IPv6), and
// AddrWords agrees with Src and Dst.
func TestFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var fast Packet // reused, as the store reuses one: nothing may stay from before
	teredo := 0
	defer func() {
		if teredo == 0 {
			t.Errorf("no frame was opened as Teredo: the edge between the paths is not tried")
		}
	}()
	for i := range 200000 {
		n := 14 + rng.IntN(100)
		f := make([]byte, n)
		for j := range f {
			f[j] = byte(rng.Uint32())
		}
		f[12], f[13] = 0x08, 0x00
		if n > 14 && rng.IntN(8) != 0 {
			f[14] = 0x45
		}
		if n > 23 {
			f[23] = []byte{6, 17, 1, 6, 17}[rng.IntN(5)]
		}
		if n > 21 && rng.IntN(2) == 0 {
			f[20], f[21] = 0x40*byte(rng.IntN(2)), 0 // DF or nothing: not a fragment
		}
		if n > 17 && rng.IntN(2) == 0 {
			binary.BigEndian.PutUint16(f[16:], uint16(n-14-rng.IntN(8))) // padded or whole
		}
		if n > 46 && rng.IntN(2) == 0 {
			f[46] = byte(5+rng.IntN(4)) << 4 // TCP data offsets 20 to 32
		}
		if n > 38 && rng.IntN(4) == 0 { // a tunnel's port, or one beside it
			ports := []uint16{PortL2TP, PortGTPU, PortTeredo, PortVXLAN, PortVXLANGPE, PortAYIYA, PortGENEVE, PortL2TP - 1, PortGENEVE + 1, PortAYIYA + 1}
			binary.BigEndian.PutUint16(f[34+2*rng.IntN(2):], ports[rng.IntN(len(ports))])
		}
		if n >= 82 && rng.IntN(4) == 0 { // what a Teredo client sends, or nearly
			f[23], f[42] = ProtoUDP, 0x60
			binary.BigEndian.PutUint16(f[38:], uint16(n-34-rng.IntN(2)))
			binary.BigEndian.PutUint16(f[46:], uint16(n-82-rng.IntN(2)))
			binary.BigEndian.PutUint32(f[50+16*rng.IntN(2):], 0x20010000)
		}
		var slow Packet
		okFast, okSlow := Parse(LinkEthernet, f, &fast), parse(LinkEthernet, f, &slow)
		if okFast != okSlow || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("frame %d (% x):\nfast %+v\nslow %+v", i, f, fast, slow)
		}
		if fast.Encap&EncapTeredo != 0 {
			teredo++
		}
		if okFast {
			s, d := fast.Src.As16(), fast.Dst.As16()
			shi, slo, dhi, dlo := fast.AddrWords()
			want := Packet{Src: fast.Src, Dst: fast.Dst}
			whi, wlo, wdhi, wdlo := want.AddrWords()
			if shi != whi || slo != wlo || dhi != wdhi || dlo != wdlo || binary.BigEndian.Uint64(s[8:]) != slo || binary.BigEndian.Uint64(d[8:]) != dlo {
				t.Fatalf("frame %d: words %x %x %x %x", i, shi, slo, dhi, dlo)
			}
		}
	}
}

// BenchmarkParse: the fast path's frames (Ethernet, IPv4, TCP or UDP) and
// a tunnelled one. Per-packet cost is compared in instructions
// (cachegrind over two -benchtime=Nx runs), not in these timings.
func BenchmarkParse(b *testing.B) {
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"tcp", ethFrame(0x0800, innerTCP)},
		{"udp", ethFrame(0x0800, ip4(ProtoUDP, inSrc, inDst, udpSeg(40000, 53, data)))},
		{"udp-ipv6-payload", ethFrame(0x0800, ip4(ProtoUDP, inSrc, inDst, udpSeg(40000, 9, innerUDP6)))},
		{"udp-vlan", ethFrame(0x8100, cat(unhex(`00 64 08 00`), ip4(ProtoUDP, inSrc, inDst, udpSeg(40000, 53, data))))},
		{"udp6", ethFrame(0x86dd, innerUDP6)},
		{"vxlan", outer4(ProtoUDP, udpSeg(40000, PortVXLAN, cat(vxlanHdr, innerEth)))},
		{"gtpu", outer4(ProtoUDP, udpSeg(PortGTPU, PortGTPU, cat(unhex(`30 ff`), be16(uint16(len(innerTCP))), unhex(`00 00 00 01`), innerTCP)))},
	} {
		b.Run(c.name, func(b *testing.B) {
			var p Packet
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			for b.Loop() {
				Parse(LinkEthernet, c.frame, &p)
			}
		})
	}
}
