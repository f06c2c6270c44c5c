package pkthdr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// Frame builders: each wraps a payload in one header with correct lengths,
// so a case reads outermost first, as the wire does.

var (
	macs   = unhex(`02 00 00 00 00 02 02 00 00 00 00 01`)
	inSrc  = netip.MustParseAddr("10.1.1.1")
	inDst  = netip.MustParseAddr("10.2.2.2")
	in6Src = netip.MustParseAddr("2001:db8::1")
	in6Dst = netip.MustParseAddr("2001:db8::2")
	outSrc = netip.MustParseAddr("192.0.2.1")
	outDst = netip.MustParseAddr("192.0.2.2")
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func ethFrame(et uint16, payload []byte) []byte { return cat(macs, be16(et), payload) }

func ip4(proto uint8, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return cat(h, payload)
}

func ip6(next uint8, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, next, 64
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return cat(h, payload)
}

func udpSeg(sp, dp uint16, payload []byte) []byte {
	return cat(be16(sp), be16(dp), be16(uint16(8+len(payload))), be16(0), payload)
}

// tcpSeg is a PSH|ACK segment with a 20-byte header.
func tcpSeg(sp, dp uint16, payload []byte) []byte {
	return cat(be16(sp), be16(dp), unhex(`00 00 10 00  00 00 20 00  50 18 ff ff 00 00 00 00`), payload)
}

func greHdr(flags, proto uint16, opts ...[]byte) []byte {
	return cat(be16(flags), be16(proto), cat(opts...))
}

var (
	data       = []byte("SMB!payload")
	innerTCP   = ip4(ProtoTCP, inSrc, inDst, tcpSeg(49152, 445, data))
	innerUDP6  = ip6(ProtoUDP, in6Src, in6Dst, udpSeg(5353, 53, data))
	innerEth   = ethFrame(0x0800, innerTCP)
	innerEth6  = ethFrame(0x86dd, innerUDP6)
	erspan2Hdr = unhex(`10 64 00 01  00 00 00 07`)              // version 1, VLAN 100, session 1, index 7
	erspan3Hdr = unhex(`20 64 00 01  00 00 00 00  00 00 00 00`) // version 2, VLAN 100, session 1, frame type 0
	seqNo      = unhex(`00 00 00 2a`)
	vxlanHdr   = unhex(`08 00 00 00  00 00 64 00`) // I flag, VNI 100
)

func outer4(proto uint8, payload []byte) []byte {
	return ethFrame(0x0800, ip4(proto, outSrc, outDst, payload))
}

type tunnelCase struct {
	name     string
	frame    []byte
	encap    Encap
	outer    bool // an outer IP header is recorded (outSrc > outDst)
	src, dst netip.Addr
	proto    uint8
	sp, dp   uint16
	oracle   bool // tshark decodes the same inner packet
}

func tunnelCases() []tunnelCase {
	erspan3O := append(append([]byte{}, erspan3Hdr...), unhex(`00 00 00 00 00 00 00 00`)...)
	erspan3O[11] |= 1 // platform-specific subheader follows
	ipipV6 := ethFrame(0x86dd, ip6(ProtoIPIP, in6Dst, in6Src, innerTCP))
	mplsV4 := ethFrame(EtherMPLS, cat(unhex(`00 06 40 40  00 0c 81 40`), innerTCP)) // labels 100, 200 (bottom)
	// Label 100, control word, Ethernet. tshark tells a control word by
	// looking the MAC addresses' OUIs up: these are not registered.
	pwEth := cat(unhex(`02 5e 11 a7 c3 44  02 5e 11 a7 c3 45  08 00`), innerTCP)
	mplsEth := ethFrame(EtherMPLS, cat(unhex(`00 06 41 40  00 00 00 00`), pwEth))
	// Without a control word: registered OUIs (Cisco, VMware) for tshark.
	mplsEthNoCW := ethFrame(EtherMPLS, cat(unhex(`00 06 41 40  00 1b 54 11 22 33  00 50 56 aa bb cc  08 00`), innerTCP))
	pppoe4 := ethFrame(EtherPPPoESession, cat(unhex(`11 00 00 01`), be16(uint16(2+len(innerTCP))), be16(0x0021), innerTCP))
	pppoe6 := ethFrame(EtherPPPoESession, cat(unhex(`11 00 00 01`), be16(uint16(2+len(innerUDP6))), be16(0x0057), innerUDP6))
	nested := outer4(ProtoGRE, cat(greHdr(0, 0x0800), ip4(ProtoUDP, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), udpSeg(40000, PortVXLAN, cat(vxlanHdr, innerEth)))))
	vxlanCut := outer4(ProtoUDP, udpSeg(40000, PortVXLAN, cat(vxlanHdr, innerEth)))
	vxlanCut = vxlanCut[:len(vxlanCut)-len(data)-10]
	vxlanNoI := outer4(ProtoUDP, udpSeg(40000, PortVXLAN, cat(unhex(`00 00 00 00 00 00 64 00`), innerEth)))
	vxlanARP := outer4(ProtoUDP, udpSeg(40000, PortVXLAN, cat(vxlanHdr, ethFrame(0x0806, unhex(arpReq)))))
	// Teredo addresses (2001::/32): a client behind a NAT and a peer.
	teredoCli := netip.MustParseAddr("2001:0:4136:e378:8000:63bf:3fff:fdd2")
	teredoPeer := netip.MustParseAddr("2001:0:4136:e37a:0:fbaa:b97e:fe4e")
	teredoUDP := ip6(ProtoUDP, teredoCli, in6Dst, udpSeg(5353, 53, data))
	bubble := ip6(59, teredoPeer, teredoCli, nil)
	origin := unhex(`00 00 f2 27  3f 5f fe fd`) // port 3544 and 192.0.2.2, obfuscated
	auth := unhex(`00 01 00 00  01 02 03 04 05 06 07 08  00`)
	gtp := func(flags, typ uint8, opt, tpdu []byte) []byte {
		return cat([]byte{flags, typ}, be16(uint16(len(opt)+len(tpdu))), unhex(`00 00 10 01`), opt, tpdu)
	}
	// Sequence number, N-PDU number, next type 0x85 (PDU session
	// container: one 4-byte unit, QFI 9, then no more).
	gtpExt := unhex(`00 2a 00 85  01 00 09 00`)
	pptpHdr := func(flags uint16, ppp []byte, extra ...[]byte) []byte {
		return cat(greHdr(flags, EtherPPP), be16(uint16(len(ppp))), be16(7), cat(extra...), ppp)
	}
	l2tpData := cat(unhex(`00 02  00 05  00 09  ff 03 00 21`), innerTCP) // tunnel 5, session 9
	l2tpFull := cat(unhex(`4a 02`), be16(uint16(18+len(innerUDP6))), unhex(`00 05 00 09  00 01 00 02  00 02 00 00  ff 03 00 57`), innerUDP6)
	ayiyaHdr := cat(unhex(`41 52 11 29  65 00 00 00`), bytes.Repeat([]byte{0xa5}, 16+20)) // 16-byte identity, 20-byte SHA-1 signature, forward, IPv6
	udpNot6 := cat(unhex(`60 00 00 00`), be16(uint16(len(data))), unhex(`11 40`), teredoCli.AsSlice(), in6Dst.AsSlice(), data)
	udpNot6[5]++ // a payload length one more than the datagram holds
	// n PDU session containers chained: the bound is maxGTPExt.
	gtpChain := func(n int) []byte {
		b := unhex(`00 2a 00 85`)
		for i := range n {
			next := byte(0x85)
			if i == n-1 {
				next = 0
			}
			b = append(b, 1, 0x10, 9, next)
		}
		return b
	}
	gtpLong := gtp(0x30, 255, nil, innerTCP)
	gtpLong[3] += 4 // longer than the datagram
	pptpLong := pptpHdr(0x3001, cat(unhex(`ff 03 00 21`), innerTCP), seqNo)
	pptpLong[5] += 4
	return []tunnelCase{
		{"gtpu-ext-chain-at-bound", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtp(0x34, 255, gtpChain(maxGTPExt), innerTCP))), EncapGTPU, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"gtpu-ext-chain-too-long", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtp(0x34, 255, gtpChain(maxGTPExt+1), innerTCP))), 0, false, outSrc, outDst, ProtoUDP, 40000, PortGTPU, false},
		{"gtpu-length-beyond-datagram", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtpLong)), 0, false, outSrc, outDst, ProtoUDP, 40000, PortGTPU, false},
		{"pptp-length-beyond-datagram", outer4(ProtoGRE, pptpLong), 0, false, outSrc, outDst, ProtoGRE, 0, 0, false},
		{"l2tp-offset-beyond-datagram", outer4(ProtoUDP, udpSeg(PortL2TP, PortL2TP, cat(unhex(`02 02 00 05 00 09 ff ff`), innerTCP))), 0, false, outSrc, outDst, ProtoUDP, PortL2TP, PortL2TP, false},
		{"teredo-auth-beyond-datagram", outer4(ProtoUDP, udpSeg(PortTeredo, 50000, cat(unhex(`00 01 ff ff`), teredoUDP))), 0, false, outSrc, outDst, ProtoUDP, PortTeredo, 50000, false},
		{"gtpu-ipv4", outer4(ProtoUDP, udpSeg(PortGTPU, PortGTPU, gtp(0x30, 255, nil, innerTCP))), EncapGTPU, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"gtpu-ext-ipv6", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtp(0x36, 255, gtpExt, innerUDP6))), EncapGTPU, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"gtpu-seq-only", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtp(0x32, 255, unhex(`00 2a 00 00`), innerTCP))), EncapGTPU, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"teredo-origin", outer4(ProtoUDP, udpSeg(PortTeredo, 50000, cat(origin, teredoUDP))), EncapTeredo, true, teredoCli, in6Dst, ProtoUDP, 5353, 53, true},
		{"teredo-auth-origin", outer4(ProtoUDP, udpSeg(PortTeredo, 50000, cat(auth, origin, teredoUDP))), EncapTeredo, true, teredoCli, in6Dst, ProtoUDP, 5353, 53, true},
		{"teredo-client", outer4(ProtoUDP, udpSeg(50000, 61000, teredoUDP)), EncapTeredo, true, teredoCli, in6Dst, ProtoUDP, 5353, 53, true},
		{"vxlan-gpe-ipv4", outer4(ProtoUDP, udpSeg(40000, PortVXLANGPE, cat(unhex(`0c 00 00 01  00 00 64 00`), innerTCP))), EncapVXLANGPE, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"vxlan-gpe-ipv6", outer4(ProtoUDP, udpSeg(40000, PortVXLANGPE, cat(unhex(`0c 00 00 02  00 00 64 00`), innerUDP6))), EncapVXLANGPE, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"vxlan-gpe-ethernet", outer4(ProtoUDP, udpSeg(40000, PortVXLANGPE, cat(unhex(`0c 00 00 03  00 00 64 00`), innerEth))), EncapVXLANGPE, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"pptp-ipv4", outer4(ProtoGRE, pptpHdr(0x3001, cat(unhex(`ff 03 00 21`), innerTCP), seqNo)), EncapPPTP, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"pptp-ack-compressed", outer4(ProtoGRE, pptpHdr(0x3081, cat(unhex(`21`), innerTCP), seqNo, seqNo)), EncapPPTP, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"pptp-ipv6", outer4(ProtoGRE, pptpHdr(0x3001, cat(unhex(`ff 03 57`), innerUDP6), seqNo)), EncapPPTP, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"l2tp", outer4(ProtoUDP, udpSeg(PortL2TP, PortL2TP, l2tpData)), EncapL2TP, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"l2tp-length-seq-offset", outer4(ProtoUDP, udpSeg(PortL2TP, 40000, l2tpFull)), EncapL2TP, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"ayiya", outer4(ProtoUDP, udpSeg(40000, PortAYIYA, cat(ayiyaHdr, innerUDP6))), EncapAYIYA, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		// Not a whole encapsulation of an IP packet: the outer packet stays.
		{"gtpu-echo", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtp(0x32, 1, unhex(`00 2a 00 00`), nil))), 0, false, outSrc, outDst, ProtoUDP, 40000, PortGTPU, false},
		{"gtpu-ext-zero-length", outer4(ProtoUDP, udpSeg(40000, PortGTPU, gtp(0x34, 255, unhex(`00 00 00 85  00 00 09 00`), innerTCP))), 0, false, outSrc, outDst, ProtoUDP, 40000, PortGTPU, false},
		{"teredo-bubble", outer4(ProtoUDP, udpSeg(PortTeredo, 50000, cat(origin, bubble))), EncapTeredo, true, teredoPeer, teredoCli, 59, 0, 0, false},
		{"udp-ipv6-like-length", outer4(ProtoUDP, udpSeg(50000, 61000, udpNot6)), 0, false, outSrc, outDst, ProtoUDP, 50000, 61000, false},
		{"udp-ipv6-not-teredo", outer4(ProtoUDP, udpSeg(50000, 61000, innerUDP6)), 0, false, outSrc, outDst, ProtoUDP, 50000, 61000, false},
		{"vxlan-gpe-nsh", outer4(ProtoUDP, udpSeg(40000, PortVXLANGPE, cat(unhex(`0c 00 00 04  00 00 64 00  00 06 01 01  00 00 01 ff`), innerTCP))), 0, false, outSrc, outDst, ProtoUDP, 40000, PortVXLANGPE, false},
		{"pptp-ack-only", outer4(ProtoGRE, cat(greHdr(0x2081, EtherPPP), be16(0), be16(7), seqNo)), 0, false, outSrc, outDst, ProtoGRE, 0, 0, false},
		{"pptp-mppe", outer4(ProtoGRE, pptpHdr(0x3001, cat(unhex(`ff 03 00 fd 90 00`), data), seqNo)), 0, false, outSrc, outDst, ProtoGRE, 0, 0, false},
		{"l2tp-control", outer4(ProtoUDP, udpSeg(PortL2TP, PortL2TP, cat(unhex(`c8 02 00 14 00 05 00 00 00 00 00 00`), unhex(`80 08 00 00 00 00 00 06`)))), 0, false, outSrc, outDst, ProtoUDP, PortL2TP, PortL2TP, false},
		{"l2tpv3", outer4(ProtoUDP, udpSeg(PortL2TP, PortL2TP, cat(unhex(`00 03 00 00  00 00 00 09`), innerEth))), 0, false, outSrc, outDst, ProtoUDP, PortL2TP, PortL2TP, false},
		{"erspan-ii", outer4(ProtoGRE, cat(greHdr(0x1000, EtherERSPAN2, seqNo), erspan2Hdr, innerEth)), EncapERSPAN, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"erspan-i", outer4(ProtoGRE, cat(greHdr(0, EtherERSPAN2), innerEth)), EncapERSPAN, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"erspan-iii", outer4(ProtoGRE, cat(greHdr(0x1000, EtherERSPAN3, seqNo), erspan3Hdr, innerEth)), EncapERSPAN, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"erspan-iii-platform", outer4(ProtoGRE, cat(greHdr(0x1000, EtherERSPAN3, seqNo), erspan3O, innerEth6)), EncapERSPAN, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"gre-ipv4-key", outer4(ProtoGRE, cat(greHdr(0x2000, 0x0800, unhex(`00 00 00 05`)), innerTCP)), EncapGRE, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"gre-checksum-ipv6", outer4(ProtoGRE, cat(greHdr(0x8000, 0x86dd, unhex(`00 00 00 00`)), innerUDP6)), EncapGRE, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"gre-teb", outer4(ProtoGRE, cat(greHdr(0, EtherTEB), innerEth6)), EncapGRE, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"gre-mpls", outer4(ProtoGRE, cat(greHdr(0, EtherMPLS), unhex(`00 06 41 40`), innerTCP)), EncapGRE | EncapMPLS, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"vxlan", outer4(ProtoUDP, udpSeg(40000, PortVXLAN, cat(vxlanHdr, innerEth))), EncapVXLAN, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"vxlan-vlan", outer4(ProtoUDP, udpSeg(40000, PortVXLAN, cat(vxlanHdr, macs, unhex(`81 00 00 0a 08 00`), innerTCP))), EncapVXLAN, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"geneve-options", outer4(ProtoUDP, udpSeg(40000, PortGENEVE, cat(unhex(`02 00 65 58  00 00 64 00`), unhex(`01 02 03 01 00 00 00 01`), innerEth))), EncapGENEVE, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"geneve-ipv4", outer4(ProtoUDP, udpSeg(40000, PortGENEVE, cat(unhex(`00 00 08 00  00 00 64 00`), innerTCP))), EncapGENEVE, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"ipip", outer4(ProtoIPIP, innerTCP), EncapIPinIP, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"6in4", outer4(ProtoIPv6, innerUDP6), EncapIPinIP, true, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"4in6", ipipV6, EncapIPinIP, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"mpls", mplsV4, EncapMPLS, false, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"mpls-pw-ethernet", mplsEth, EncapMPLS, false, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"mpls-pw-ethernet-no-cw", mplsEthNoCW, EncapMPLS, false, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"pppoe-ipv4", pppoe4, EncapPPPoE, false, inSrc, inDst, ProtoTCP, 49152, 445, true},
		{"pppoe-ipv6", pppoe6, EncapPPPoE, false, in6Src, in6Dst, ProtoUDP, 5353, 53, true},
		{"gre-in-vxlan-nested", nested, EncapGRE | EncapVXLAN, true, inSrc, inDst, ProtoTCP, 49152, 445, true},
		// The inner TCP header is whole, its payload cut: still the inner packet.
		{"vxlan-cut-payload", vxlanCut, EncapVXLAN, true, inSrc, inDst, ProtoTCP, 49152, 445, false},
		// Not VXLAN (no I flag) and VXLAN carrying no IP: the outer packet stays.
		{"udp-4789-not-vxlan", vxlanNoI, 0, false, outSrc, outDst, ProtoUDP, 40000, PortVXLAN, false},
		{"vxlan-arp", vxlanARP, 0, false, outSrc, outDst, ProtoUDP, 40000, PortVXLAN, false},
	}
}

func TestTunnels(t *testing.T) {
	for _, c := range tunnelCases() {
		t.Run(c.name, func(t *testing.T) {
			var p, slow Packet
			if !Parse(LinkEthernet, c.frame, &p) {
				t.Fatalf("no IP found: %+v", p)
			}
			if p.Src != c.src || p.Dst != c.dst || p.Proto != c.proto || p.SrcPort != c.sp || p.DstPort != c.dp || p.HasPorts != (c.proto != ProtoGRE && c.proto != 59) {
				t.Errorf("got %v:%d > %v:%d proto %d", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Proto)
			}
			if p.Encap != c.encap {
				t.Errorf("encap %b, want %b", p.Encap, c.encap)
			}
			type outer struct {
				IPVersion, Proto uint8
				Src, Dst         netip.Addr
			}
			var wantOuter outer
			if c.outer {
				wantOuter = outer{IPVersion: 4, Src: outSrc, Dst: outDst, Proto: c.frame[23]}
				if c.frame[12] == 0x86 { // 4in6
					wantOuter = outer{IPVersion: 6, Src: in6Dst, Dst: in6Src, Proto: c.frame[20]}
				}
			}
			if got := p.Outer; got.IPVersion != wantOuter.IPVersion || got.Src() != wantOuter.Src || got.Dst() != wantOuter.Dst || got.Proto != wantOuter.Proto {
				t.Errorf("outer %+v, want %+v", got, wantOuter)
			}
			if c.outer && c.frame[23] == ProtoUDP && (p.Outer.Proto != ProtoUDP || !p.Outer.HasPorts || p.Outer.SrcPort != binary.BigEndian.Uint16(c.frame[34:]) || p.Outer.DstPort != binary.BigEndian.Uint16(c.frame[36:])) {
				t.Errorf("outer ports %+v", p.Outer)
			}
			// The payload offset points at the inner transport payload.
			if c.oracle && p.Proto == ProtoTCP && string(c.frame[p.Payload:p.Payload+p.PayloadN]) != string(data) {
				t.Errorf("payload %q", c.frame[p.Payload:p.Payload+p.PayloadN])
			}
			if c.outer && c.frame[12] == 0x08 && !MayTunnelIPv4(c.frame[14:]) {
				t.Errorf("MayTunnelIPv4 denies the tunnel")
			}
			if parse(LinkEthernet, c.frame, &slow); !reflect.DeepEqual(p, slow) {
				t.Errorf("fast and general paths differ:\n%+v\n%+v", p, slow)
			}
			// Every cut of the frame parses without panic, and a cut
			// inside the headers is never mistaken for a whole one.
			for n := range len(c.frame) {
				var q Packet
				Parse(LinkEthernet, c.frame[:n], &q)
				if q.Payload > n || q.L4 > n {
					t.Fatalf("cut at %d: offsets beyond frame: %+v", n, q)
				}
			}
		})
	}
}

// TestTunnelsAllocFree: decapsulation allocates nothing.
func TestTunnelsAllocFree(t *testing.T) {
	cases := tunnelCases()
	var p Packet
	if n := testing.AllocsPerRun(100, func() {
		for _, c := range cases {
			Parse(LinkEthernet, c.frame, &p)
		}
	}); n != 0 {
		t.Errorf("%v allocations a run", n)
	}
}

// TestTunnelsOracle gives the frames to tshark, which decodes all these
// encapsulations (Teredo on other ports than 3544 with its heuristic
// enabled: off by default), and compares the innermost addresses and ports it
// reports (the last occurrence of each field) with Parse's.
func TestTunnelsOracle(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	cases := tunnelCases()
	var buf bytes.Buffer
	writePcap(&buf, cases)
	file := filepath.Join(t.TempDir(), "tunnels.pcap")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tshark, "-n", "-r", file, "--enable-heuristic", "teredo_udp", "-T", "fields", "-E", "occurrence=l", "-E", "separator=,",
		"-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "frame.protocols").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	i := 0
	for ; sc.Scan(); i++ {
		c := cases[i]
		f := strings.Split(sc.Text(), ",")
		if !c.oracle {
			continue
		}
		var p Packet
		Parse(LinkEthernet, c.frame, &p)
		// The last IPv4 (or IPv6) header tshark lists is the innermost of
		// its version; were tshark to stop at an outer header, it would
		// be the outer one, or none.
		src, dst := f[0], f[1]
		if p.IPVersion == 6 {
			src, dst = f[2], f[3]
		}
		sp, dp := f[4], f[5]
		if p.Proto == ProtoUDP {
			sp, dp = f[6], f[7]
		}
		got := strings.Join([]string{p.Src.String(), p.Dst.String(), itoa(p.SrcPort), itoa(p.DstPort)}, " ")
		want := strings.Join([]string{src, dst, sp, dp}, " ")
		if got != want {
			t.Errorf("%s: ours %s, tshark %s (%s)", c.name, got, want, f[8])
		}
	}
	if i != len(cases) {
		t.Fatalf("tshark printed %d packets, want %d", i, len(cases))
	}
}

func itoa(v uint16) string { return strconv.Itoa(int(v)) }

// writePcap writes the cases' frames as a little-endian Ethernet pcap, one
// second apart.
func writePcap(w *bytes.Buffer, cases []tunnelCase) {
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], uint32(LinkEthernet))
	w.Write(hdr)
	for i, c := range cases {
		rec := make([]byte, 16)
		le.PutUint32(rec[0:], uint32(1700000000+i))
		le.PutUint32(rec[8:], uint32(len(c.frame)))
		le.PutUint32(rec[12:], uint32(len(c.frame)))
		w.Write(rec)
		w.Write(c.frame)
	}
}
