package pkthdr

import (
	"encoding/binary"
	"net/netip"
)

// Encap is a set of encapsulations Parse walked through.
type Encap uint16

// The encapsulations Parse decodes (docs/capture.md, "Tunnels").
const (
	EncapMPLS     Encap = 1 << iota // MPLS label stack (EtherType 0x8847/0x8848)
	EncapPPPoE                      // PPPoE session carrying IPv4 or IPv6
	EncapGRE                        // GRE carrying IP, MPLS or Ethernet (0x6558)
	EncapERSPAN                     // ERSPAN type I, II (GRE 0x88be) or III (0x22eb)
	EncapVXLAN                      // VXLAN, UDP port 4789
	EncapGENEVE                     // GENEVE, UDP port 6081
	EncapIPinIP                     // IPv4 or IPv6 in IP (protocols 4, 41)
	EncapGTPU                       // GTP-U G-PDU, UDP port 2152
	EncapTeredo                     // Teredo, UDP port 3544 or a Teredo client's bare IPv6
	EncapVXLANGPE                   // VXLAN-GPE, UDP port 4790
	EncapPPTP                       // enhanced GRE (version 1, PPTP) carrying PPP
	EncapL2TP                       // L2TPv2 data message, UDP port 1701, carrying PPP
	EncapAYIYA                      // AYIYA, UDP port 5072
)

// Tunnel EtherTypes and UDP ports.
const (
	EtherMPLS          = 0x8847
	EtherMPLSMulticast = 0x8848
	EtherPPPoESession  = 0x8864
	EtherTEB           = 0x6558 // transparent Ethernet bridging: an Ethernet frame follows
	EtherERSPAN2       = 0x88be
	EtherERSPAN3       = 0x22eb
	EtherPPP           = 0x880b // PPP, in enhanced GRE (PPTP)
	PortL2TP           = 1701
	PortGTPU           = 2152
	PortTeredo         = 3544
	PortVXLAN          = 4789
	PortVXLANGPE       = 4790
	PortAYIYA          = 5072
	PortGENEVE         = 6081
)

// MaxTunnels bounds how many IP tunnels inside one another Parse opens.
const MaxTunnels = 4

// Outer is the outermost IP header of a packet found inside IP tunnels.
// It holds no pointers (addresses as their 16-byte forms) so that Parse's
// fast path clears it with a few stores.
type Outer struct {
	IPVersion        uint8 // 0: the packet was not inside an IP tunnel
	Proto            uint8
	HasPorts         bool
	SrcPort, DstPort uint16
	src, dst         [16]byte
}

// Src returns the outer source address.
func (o *Outer) Src() netip.Addr { return o.addr(o.src) }

// Dst returns the outer destination address.
func (o *Outer) Dst() netip.Addr { return o.addr(o.dst) }

// SetAddrs sets the outer addresses (for a Packet filled in otherwise
// than by Parse); IPVersion says which family they are read back as.
func (o *Outer) SetAddrs(src, dst netip.Addr) { o.src, o.dst = src.As16(), dst.As16() }

func (o *Outer) addr(a [16]byte) netip.Addr {
	switch o.IPVersion {
	case 4:
		return netip.AddrFrom4([4]byte(a[12:]))
	case 6:
		return netip.AddrFrom16(a)
	}
	return netip.Addr{}
}

// Tunnelled reports whether the packet's IP header was inside an IP tunnel.
func (p *Packet) Tunnelled() bool { return p.Outer.IPVersion != 0 }

// mayTunnel is the check on already parsed fields that sends a packet to
// decap: a few compares, inlined; for UDP the ports, and for UDP to no
// tunnel port a look at the payload (mayUDPTunnel).
func (p *Packet) mayTunnel(b []byte) bool {
	switch p.Proto {
	case ProtoGRE, ProtoIPIP, ProtoIPv6:
		return true
	case ProtoUDP:
		return p.mayUDPTunnel(b)
	}
	return false
}

// udpMayTunnel is mayUDPTunnel's answer for most UDP, inlined where
// every general-path packet passes: false when no port is a tunnel's and
// the payload cannot be a Teredo client's IPv6.
func (p *Packet) udpMayTunnel() bool {
	return tunnelPort(p.SrcPort, p.DstPort) || p.PayloadN >= 40 && p.IPVersion == 4
}

// mayUDPTunnel is mayTunnel for UDP: a tunnel's port, or (over IPv4) a
// payload that may be a Teredo client's (teredoBare).
func (p *Packet) mayUDPTunnel(b []byte) bool {
	// Ports are zero and PayloadN is 0 unless the UDP header is whole.
	if tunnelPort(p.SrcPort, p.DstPort) {
		return true
	}
	if p.PayloadN < 40 || p.IPVersion != 4 {
		return false
	}
	end := p.ipEnd(len(b))
	if p.Payload < 0 || end < p.Payload+40 || b[p.Payload]>>4 != 6 {
		return false
	}
	return teredoBare(b[p.Payload:end], int(binary.BigEndian.Uint16(b[p.L4+4:])), p.L3+p.IPLen-p.L4)
}

// tunnelPort reports whether a UDP datagram between these ports is to
// be looked at as a tunnel: to the VXLAN, VXLAN-GPE, GENEVE or GTP-U
// port, or from or to the Teredo, L2TP or AYIYA port (their servers
// answer from it). The ports all lie in [PortL2TP, PortGENEVE]: most
// datagrams are told by two compares, the others by a bit of a small
// set. Inlined.
func tunnelPort(sp, dp uint16) bool {
	d, s := uint(dp-PortL2TP), uint(sp-PortL2TP)
	return d < tunnelPortSpan && tunnelDst[d/64]&(1<<(d%64)) != 0 || s < tunnelPortSpan && tunnelSrc[s/64]&(1<<(s%64)) != 0
}

// tunnelPortSpan is how many ports from PortL2TP the sets cover.
const tunnelPortSpan = PortGENEVE - PortL2TP + 1

// tunnelDst and tunnelSrc hold, from PortL2TP on, the ports that make a
// UDP datagram a tunnel's as its destination port and as its source port.
var (
	tunnelDst = portSet(PortVXLAN, PortGENEVE, PortVXLANGPE, PortGTPU, PortTeredo, PortL2TP, PortAYIYA)
	tunnelSrc = portSet(PortTeredo, PortL2TP, PortAYIYA)
)

func portSet(ports ...uint16) (set [(tunnelPortSpan + 63) / 64]uint64) {
	for _, p := range ports {
		i := p - PortL2TP
		set[i/64] |= 1 << (i % 64)
	}
	return set
}

// teredoBare reports whether a UDP payload u (as captured, cut at the IP
// datagram's end) is a bare IPv6 packet that a Teredo client exchanges
// with relays and peers on any port (RFC 4380 section 5.2): version 6, a
// Teredo address (2001::/32) at either end, as Zeek's detection asks, and
// a payload length that fills the datagram (udpLen and room as for
// udpWireLen). Ordinary UDP passes all three by chance about once in
// 2^48.
func teredoBare(u []byte, udpLen, room int) bool {
	if len(u) < 40 || u[0]>>4 != 6 {
		return false
	}
	be := binary.BigEndian
	if be.Uint32(u[8:]) != teredoPrefix && be.Uint32(u[24:]) != teredoPrefix {
		return false
	}
	return 40+int(be.Uint16(u[4:])) == udpWireLen(udpLen, room)
}

// teredoPrefix is the first 32 bits of every Teredo address, 2001::/32.
const teredoPrefix = 0x20010000

// udpWireLen returns a UDP payload's length on the wire from the UDP
// length field udpLen, or -1 when the field cannot be right: shorter than
// the header, or longer than room, the IP datagram's bytes from the UDP
// header on. Tunnel headers are checked against it rather than against
// the bytes captured, so a frame cut by the snap length still opens.
func udpWireLen(udpLen, room int) int {
	if udpLen < 8 || udpLen > room {
		return -1
	}
	return udpLen - 8
}

// udpWire is udpWireLen for a parsed UDP packet (HasPorts).
func (p *Packet) udpWire(b []byte) int {
	if p.L4 < 0 || len(b) < p.L4+8 {
		return -1
	}
	return udpWireLen(int(binary.BigEndian.Uint16(b[p.L4+4:])), p.L3+p.IPLen-p.L4)
}

// ipEnd is where the parsed IP datagram ends in a frame of n bytes:
// Ethernet padding is not its payload.
func (p *Packet) ipEnd(n int) int {
	if p.IPLen > 0 && p.L3+p.IPLen < n {
		return p.L3 + p.IPLen
	}
	return n
}

// MayTunnelIPv4 reports whether Parse may find another IP packet inside
// the IPv4 packet ip (its bytes from the IP header on): a reader that
// skips parsing for packets whose addresses do not match must not skip
// these. It errs towards true.
func MayTunnelIPv4(ip []byte) bool {
	if len(ip) < 20 {
		return false
	}
	switch ip[9] {
	case ProtoGRE, ProtoIPIP, ProtoIPv6:
		return true
	case ProtoUDP:
		ihl := int(ip[0]&0x0f) * 4
		ipLen := int(binary.BigEndian.Uint16(ip[2:]))
		end := len(ip)
		if ipLen >= ihl && ipLen < end {
			end = ipLen
		}
		if ihl < 20 || end < ihl+8 {
			return false // no UDP header: Parse cannot decapsulate either
		}
		u := ip[ihl:end]
		if tunnelPort(binary.BigEndian.Uint16(u[0:]), binary.BigEndian.Uint16(u[2:])) {
			return true
		}
		return teredoBare(u[8:], int(binary.BigEndian.Uint16(u[4:])), ipLen-ihl)
	}
	return false
}

// decap replaces the parsed IP packet, for which mayTunnel holds, by the
// one it carries, up to
// MaxTunnels levels, recording the outermost IP header in p.Outer. A level
// that does not hold a whole encapsulation header and an IP header leaves
// the packet as parsed so far: a UDP packet to port 4789 that is not VXLAN
// stays what it is.
func (p *Packet) decap(b []byte) {
	outer := Outer{IPVersion: p.IPVersion, Proto: p.Proto, HasPorts: p.HasPorts, SrcPort: p.SrcPort, DstPort: p.DstPort, src: p.Src.As16(), dst: p.Dst.As16()}
	for i := range MaxTunnels {
		// A fragment's payload is not whole; later fragments have no
		// tunnel header at all. The caller asked mayTunnel of the first
		// level.
		if p.Fragment || p.Truncated || i > 0 && !p.mayTunnel(b) {
			return
		}
		in := b[:p.ipEnd(len(b))]
		off, et, kind, ok := p.tunnel(in)
		if !ok {
			return
		}
		prev := *p
		p.clearIP()
		p.Encap |= kind
		if et == EtherTEB {
			off, et, ok = p.ether(in, off)
		} else {
			off, et, ok = p.vlanTags(in, off, et)
		}
		if !ok || !p.network(in, off, et) {
			*p = prev
			return
		}
		p.EtherType = et
		p.Outer = outer
	}
}

// clearIP zeroes what network fills, keeping the link layer's fields.
func (p *Packet) clearIP() {
	p.IPVersion, p.Src, p.Dst, p.Proto = 0, netip.Addr{}, netip.Addr{}, 0
	p.HasPorts, p.SrcPort, p.DstPort = false, 0, 0
	p.TCPFlags, p.TCPSeq, p.TCPAck = 0, 0, 0
	p.ARP, p.Fragment, p.IPLen = false, false, 0
	p.L3, p.L4, p.Payload, p.PayloadN = -1, -1, -1, 0
	p.Truncated = false
	p.words, p.wordsSet = [4]uint64{}, false
}

// tunnel finds the frame a tunnel packet carries in b (cut at the outer
// IP datagram's end): its offset and EtherType (EtherTEB for Ethernet).
func (p *Packet) tunnel(b []byte) (off int, et uint16, kind Encap, ok bool) {
	be := binary.BigEndian
	switch p.Proto {
	case ProtoIPIP:
		return p.L4, 0x0800, EncapIPinIP, p.L4 >= 0
	case ProtoIPv6:
		return p.L4, 0x86dd, EncapIPinIP, p.L4 >= 0
	case ProtoUDP:
		return p.udpTunnel(b)
	case ProtoGRE:
		if p.L4 < 0 || len(b) < p.L4+4 {
			return 0, 0, 0, false
		}
		flags, proto := be.Uint16(b[p.L4:]), be.Uint16(b[p.L4+2:])
		if flags&7 == 1 {
			return p.pptp(b, flags, proto)
		}
		// Version 0 (1 is PPTP's, above), and no RFC 1701 source routing.
		if flags&0x4007 != 0 {
			return 0, 0, 0, false
		}
		off = p.L4 + 4
		for _, bit := range [3]uint16{0x8000, 0x2000, 0x1000} { // checksum, key, sequence
			if flags&bit != 0 {
				off += 4
			}
		}
		switch proto {
		case EtherERSPAN2:
			// Type II has a sequence number and an 8-byte header of
			// version 1; type I has neither.
			if flags&0x1000 != 0 {
				if len(b) < off+8 || b[off]>>4 != 1 {
					return 0, 0, 0, false
				}
				off += 8
			}
			return off, EtherTEB, EncapERSPAN, true
		case EtherERSPAN3:
			// 12-byte header of version 2; frame type (byte 10, bits 6-2)
			// 0 is Ethernet; the O bit (byte 11, bit 0) adds an 8-byte
			// platform-specific subheader.
			if len(b) < off+12 || b[off]>>4 != 2 || (b[off+10]>>2)&0x1f != 0 {
				return 0, 0, 0, false
			}
			n := 12
			if b[off+11]&1 != 0 {
				n += 8
			}
			return off + n, EtherTEB, EncapERSPAN, true
		}
		return off, proto, EncapGRE, true
	}
	return 0, 0, 0, false
}

// pptp reads an enhanced GRE header (RFC 2637 section 4.1): checksum,
// routing, strict route and recursion clear, key present (payload length
// and call ID), an optional sequence number (present when there is a
// payload) and acknowledgment number (flag 0x0080), protocol PPP.
func (p *Packet) pptp(b []byte, flags, proto uint16) (int, uint16, Encap, bool) {
	if flags&0xef7f != 0x2001 || flags&0x1000 == 0 || proto != EtherPPP {
		return 0, 0, 0, false // not enhanced GRE, or an acknowledgment alone
	}
	off := p.L4 + 12 // base header, key, sequence number
	if flags&0x0080 != 0 {
		off += 4
	}
	if len(b) < off {
		return 0, 0, 0, false
	}
	// The payload length the key field gives must lie within the outer
	// datagram on the wire.
	n := int(binary.BigEndian.Uint16(b[p.L4+4:]))
	if n == 0 || off+n > p.L3+p.IPLen {
		return 0, 0, 0, false
	}
	off, et, ok := pppIP(b, off)
	return off, et, EncapPPTP, ok
}

// pppIP reads the header of a PPP frame at off (RFC 1661): the address
// and control bytes (ff 03) unless compressed away, then the protocol,
// one byte when compressed (its low bit is set). It reports the IP packet
// that follows: IPv4 (0x0021) or IPv6 (0x0057); anything else (LCP, CCP,
// MPPE-compressed or encrypted data) is not opened.
func pppIP(b []byte, off int) (int, uint16, bool) {
	if len(b) >= off+2 && b[off] == 0xff && b[off+1] == 0x03 {
		off += 2
	}
	if len(b) < off+1 {
		return 0, 0, false
	}
	proto := uint16(b[off])
	if proto&1 != 0 {
		off++
	} else {
		if len(b) < off+2 {
			return 0, 0, false
		}
		proto = binary.BigEndian.Uint16(b[off:])
		off += 2
	}
	switch proto {
	case 0x0021:
		return off, 0x0800, true
	case 0x0057:
		return off, 0x86dd, true
	}
	return 0, 0, false
}

// udpTunnel finds the frame a UDP tunnel carries (tunnel, for UDP).
func (p *Packet) udpTunnel(b []byte) (off int, et uint16, kind Encap, ok bool) {
	if p.Payload < 0 || len(b) < p.Payload {
		return 0, 0, 0, false
	}
	u := b[p.Payload:]
	be := binary.BigEndian
	sp, dp := p.SrcPort, p.DstPort
	switch {
	case dp == PortVXLAN:
		// RFC 7348: flags with the I bit (a valid VNI), then Ethernet.
		if len(u) >= 8 && u[0]&0x08 != 0 {
			return p.Payload + 8, EtherTEB, EncapVXLAN, true
		}
	case dp == PortGENEVE:
		// RFC 8926: version 0, options length in 4-byte words, protocol
		// type as an EtherType.
		if len(u) >= 8 && u[0]>>6 == 0 {
			if h := 8 + int(u[0]&0x3f)*4; len(u) >= h {
				return p.Payload + h, be.Uint16(u[2:]), EncapGENEVE, true
			}
		}
	case dp == PortVXLANGPE:
		if et, ok := vxlanGPE(u); ok {
			return p.Payload + 8, et, EncapVXLANGPE, true
		}
	case dp == PortGTPU:
		if h, et, ok := gtpU(u, p.udpWire(b)); ok {
			return p.Payload + h, et, EncapGTPU, true
		}
	case dp == PortTeredo || sp == PortTeredo:
		if h, ok := teredo(u, p.udpWire(b)); ok {
			return p.Payload + h, 0x86dd, EncapTeredo, true
		}
	case dp == PortL2TP || sp == PortL2TP:
		if h, et, ok := l2tp(u, p.udpWire(b)); ok {
			return p.Payload + h, et, EncapL2TP, true
		}
	case dp == PortAYIYA || sp == PortAYIYA:
		if h, et, ok := ayiya(u, p.udpWire(b)); ok {
			return p.Payload + h, et, EncapAYIYA, true
		}
	}
	// A Teredo client talks to relays and peers from and to any port.
	if p.IPVersion == 4 && teredoBare(u, int(be.Uint16(b[p.L4+4:])), p.L3+p.IPLen-p.L4) {
		return p.Payload, 0x86dd, EncapTeredo, true
	}
	return 0, 0, 0, false
}

// vxlanGPE reads a VXLAN-GPE header (draft-ietf-nvo3-vxlan-gpe): version
// 0, the P bit saying the next-protocol field is set, not an OAM packet
// (as Linux's vxlan driver asks), and a next protocol of IPv4 (1), IPv6
// (2), Ethernet (3) or MPLS (5). NSH (4) is not opened.
func vxlanGPE(u []byte) (uint16, bool) {
	if len(u) < 8 || u[0]&0x30 != 0 || u[0]&0x04 == 0 || u[0]&0x01 != 0 {
		return 0, false
	}
	switch u[3] {
	case 1:
		return 0x0800, true
	case 2:
		return 0x86dd, true
	case 3:
		return EtherTEB, true
	case 5:
		return EtherMPLS, true
	}
	return 0, false
}

// maxGTPExt bounds the GTP-U extension headers walked (5G user planes
// send one or two: the PDU session container, a PDCP number).
const maxGTPExt = 8

// gtpU reads a GTPv1-U header (3GPP TS 29.281 section 5) of a payload of
// n bytes on the wire: version 1, protocol type GTP, message type 255 (a
// G-PDU: the others are signalling, echo and end markers), a length that
// fits the datagram, then with any of the E, S, PN flags the sequence
// number, N-PDU number and next extension header type, and the chain of
// extension headers (each a length in 4-byte units, content, next type).
// The T-PDU is IPv4 or IPv6 by its first nibble; Ethernet and
// unstructured PDU sessions, whose type only signalling tells, are not
// opened.
func gtpU(u []byte, n int) (int, uint16, bool) {
	if len(u) < 8 || u[0]>>5 != 1 || u[0]&0x10 == 0 || u[1] != 255 {
		return 0, 0, false
	}
	total := 8 + int(binary.BigEndian.Uint16(u[2:]))
	if total > n {
		return 0, 0, false
	}
	off := 8
	if u[0]&0x07 != 0 {
		if len(u) < 12 {
			return 0, 0, false
		}
		next := byte(0)
		if u[0]&0x04 != 0 {
			next = u[11]
		}
		off = 12
		for i := 0; next != 0; i++ {
			if i == maxGTPExt || len(u) < off+1 || u[off] == 0 {
				return 0, 0, false
			}
			end := off + int(u[off])*4
			if len(u) < end {
				return 0, 0, false
			}
			next, off = u[end-1], end
		}
	}
	if off >= total || len(u) < off+1 {
		return 0, 0, false
	}
	switch u[off] >> 4 {
	case 4:
		return off, 0x0800, true
	case 6:
		return off, 0x86dd, true
	}
	return 0, 0, false
}

// teredo reads what a Teredo server or relay sends on port 3544 (RFC 4380
// section 5.1.1), a payload of n bytes on the wire: an optional
// authentication indication (id and value lengths, a nonce and a
// confirmation byte), then an optional origin indication (8 bytes), then
// an IPv6 header whose length fills the datagram, as Zeek checks; only a
// bubble (no next header, no payload) may have bytes after it.
func teredo(u []byte, n int) (int, bool) {
	off := 0
	if len(u) >= 4 && u[0] == 0 && u[1] == 1 {
		off = 4 + int(u[2]) + int(u[3]) + 9
	}
	if len(u) >= off+2 && u[off] == 0 && u[off+1] == 0 {
		off += 8
	}
	if len(u) < off+40 || u[off]>>4 != 6 {
		return 0, false
	}
	plen, next := int(binary.BigEndian.Uint16(u[off+4:])), u[off+6]
	if off+40+plen == n || plen == 0 && next == 59 && off+40 <= n {
		return off, true
	}
	return 0, false
}

// l2tp reads an L2TPv2 data message header (RFC 2661 section 3.1) of a
// payload of n bytes on the wire: T bit clear (control messages carry no
// PPP), version 2, the length when the L bit says so (it must fit the
// datagram), tunnel and session IDs, Ns and Nr when S, the offset size
// and padding when O; then PPP. L2TPv3 (version 3) is not opened: its
// cookie and sublayer lengths are agreed in control messages.
func l2tp(u []byte, n int) (int, uint16, bool) {
	if len(u) < 6 {
		return 0, 0, false
	}
	f := binary.BigEndian.Uint16(u)
	if f&0x8000 != 0 || f&0x000f != 2 {
		return 0, 0, false
	}
	off := 2
	if f&0x4000 != 0 {
		if l := int(binary.BigEndian.Uint16(u[2:])); l > n {
			return 0, 0, false
		}
		off += 2
	}
	off += 4 // tunnel ID, session ID
	if f&0x0800 != 0 {
		off += 4 // Ns, Nr
	}
	if f&0x0200 != 0 {
		if len(u) < off+2 {
			return 0, 0, false
		}
		off += 2 + int(binary.BigEndian.Uint16(u[off:]))
	}
	if off > n || len(u) < off {
		return 0, 0, false
	}
	return pppIP(u, off)
}

// ayiya reads an AYIYA header (draft-massar-v6ops-ayiya): identity
// (2^n bytes) and signature (4·n bytes) lengths, opcode 1 (forward: the
// others carry no packet), next header IPv4 (4) or IPv6 (41), an epoch
// time, the identity and the signature; the packet follows, as Zeek
// reads it.
func ayiya(u []byte, n int) (int, uint16, bool) {
	if len(u) < 8 || u[2]&0x0f != 1 {
		return 0, 0, false
	}
	var et uint16
	switch u[3] {
	case ProtoIPIP:
		et = 0x0800
	case ProtoIPv6:
		et = 0x86dd
	default:
		return 0, 0, false
	}
	off := 8 + 1<<(u[0]>>4) + int(u[1]>>4)*4
	if off > n || len(u) < off {
		return 0, 0, false
	}
	return off, et, true
}
