// Package pkthdr finds the addresses, ports and protocol of a captured frame
// without allocating: it is on the per-packet path of import, capture, index,
// query and flow building, where gopacket's layer objects cost too much.
//
// It follows gopacket's contract: every read is bounds-checked, a short frame
// is marked truncated rather than failed, and nothing panics.
package pkthdr

import (
	"encoding/binary"
	"net/netip"
)

// LinkType is a pcap LINKTYPE_ value.
type LinkType uint16

// The link types nwhealth decodes.
const (
	LinkNull     LinkType = 0   // BSD loopback, host byte order family
	LinkEthernet LinkType = 1   // Ethernet II, with 802.1Q/802.1ad tags
	LinkRaw      LinkType = 101 // raw IPv4 or IPv6
	LinkLoop     LinkType = 108 // OpenBSD loopback, network byte order family
	LinkLinuxSLL LinkType = 113 // Linux cooked capture v1
	LinkIPv4     LinkType = 228
	LinkIPv6     LinkType = 229
	LinkSLL2     LinkType = 276 // Linux cooked capture v2
)

// Supported reports whether Parse understands the link type.
func Supported(lt LinkType) bool {
	switch lt {
	case LinkNull, LinkEthernet, LinkRaw, LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkSLL2,
		LinkPPP, LinkRawOld12, LinkRawOld14, LinkPPPHDLC, LinkPPPoE, LinkCHDLC, LinkIEEE80211,
		LinkPFLOG, LinkPrism, LinkRadiotap, LinkAVS, LinkPPI, LinkNFLOG:
		return true
	}
	return false
}

// IP protocol numbers used across nwhealth.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
	ProtoIPIP   = 4  // IPv4 in IP
	ProtoIPv6   = 41 // IPv6 in IP (6in4, 6in6)
	ProtoGRE    = 47
)

// TCP flag bits as they appear in the header's 14th byte.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
)

// MaxVLANs is how many 802.1Q/802.1ad tags are recorded; deeper stacks are
// walked but not kept.
const MaxVLANs = 2

// Packet is what Parse learned of one frame. Zero values mean "absent".
type Packet struct {
	VLAN      [MaxVLANs]uint16 // outer first
	NVLAN     int
	EtherType uint16
	IPVersion uint8 // 4, 6 or 0 when the frame holds no IP
	Src, Dst  netip.Addr
	Proto     uint8 // transport protocol after IPv6 extension headers
	HasPorts  bool  // TCP, UDP or SCTP header present (not a later fragment)
	SrcPort   uint16
	DstPort   uint16
	TCPFlags  uint8
	TCPSeq    uint32
	TCPAck    uint32
	ARP       bool // an IPv4 ARP/RARP packet: Src and Dst are its protocol addresses
	Fragment  bool // part of a fragmented IP datagram
	IPLen     int  // IP datagram length claimed by the header
	L3, L4    int  // offsets in the frame; -1 when absent
	Payload   int  // offset of the transport payload; -1 when absent
	PayloadN  int  // payload bytes captured (may be less than on the wire)
	Truncated bool // the frame ended inside a header

	// Encap is every encapsulation walked to reach the IP header above:
	// MPLS and PPPoE on the link, and IP tunnels (docs/capture.md).
	// Outer is the outermost IP header when that IP header is inside an
	// IP tunnel; its IPVersion is 0 otherwise.
	Encap Encap
	Outer Outer

	// words holds Src and Dst as the big-endian halves of their 16-byte
	// forms (AddrWords), set by Parse; wordsSet says they are.
	words    [4]uint64
	wordsSet bool
	// trailer is how many bytes at the frame's end are not the packet
	// (an 802.11 FCS): linkLayer sets it and reports false, and parse
	// goes on in withoutTrailer.
	trailer uint8
}

// AddrWords returns Src and Dst as the big-endian halves of their 16-byte
// forms: what flow and index keys hash and compare, a few instructions a
// word. Parse computes them from the header bytes; for a Packet filled in
// otherwise they come from Src and Dst.
func (p *Packet) AddrWords() (shi, slo, dhi, dlo uint64) {
	if !p.wordsSet {
		p.setWords()
	}
	return p.words[0], p.words[1], p.words[2], p.words[3]
}

func (p *Packet) setWords() {
	s, d := p.Src.As16(), p.Dst.As16()
	be := binary.BigEndian
	p.words, p.wordsSet = [4]uint64{be.Uint64(s[:8]), be.Uint64(s[8:]), be.Uint64(d[:8]), be.Uint64(d[8:])}, true
}

// v4Words is the low half of an IPv4 address's 16-byte (mapped) form.
func v4Words(a []byte) uint64 { return 0xffff<<32 | uint64(binary.BigEndian.Uint32(a)) }

// Parse decodes frame as link type lt into p. It reports whether an IP header
// was found; p is filled as far as the frame allows either way.
func Parse(lt LinkType, frame []byte, p *Packet) bool {
	// Ethernet and IPv4 without options, then a whole UDP or TCP header:
	// most frames, read in one pass with one bounds check a header.
	if lt == LinkEthernet && len(frame) >= 34 && frame[12] == 0x08 && frame[13] == 0x00 && frame[14] == 0x45 && p.fastIPv4(frame) {
		return true
	}
	return parse(lt, frame, p)
}

// parse is Parse without the fast path.
func parse(lt LinkType, frame []byte, p *Packet) bool {
	*p = Packet{L3: -1, L4: -1, Payload: -1}
	off, et, ok := linkLayer(lt, frame, p)
	if !ok {
		if p.trailer != 0 {
			return p.withoutTrailer(frame, off, et)
		}
		return false
	}
	p.EtherType = et
	if !p.network(frame, off, et) {
		return false
	}
	if (p.Proto != ProtoUDP || p.udpMayTunnel()) && p.mayTunnel(frame) {
		p.decap(frame)
	}
	return true
}

// withoutTrailer is the rest of parse for a frame whose link layer ends
// with a trailer (an 802.11 FCS): linkLayer set p.trailer and reported
// false, so that frames with IP and no trailer, nearly all, pay nothing
// for it (a reassigned frame in parse cost them five instructions).
func (p *Packet) withoutTrailer(frame []byte, off int, et uint16) bool {
	n := int(p.trailer)
	p.trailer = 0
	if len(frame) < off+n {
		return false
	}
	frame = frame[:len(frame)-n]
	p.EtherType = et
	if !p.network(frame, off, et) {
		return false
	}
	if (p.Proto != ProtoUDP || p.udpMayTunnel()) && p.mayTunnel(frame) {
		p.decap(frame)
	}
	return true
}

func linkLayer(lt LinkType, b []byte, p *Packet) (off int, ethertype uint16, ok bool) {
	switch lt {
	case LinkEthernet:
		return p.ether(b, 0)
	case LinkLinuxSLL:
		if len(b) < 16 {
			p.Truncated = true
			return 0, 0, false
		}
		return p.vlanTags(b, 16, binary.BigEndian.Uint16(b[14:]))
	case LinkSLL2:
		if len(b) < 20 {
			p.Truncated = true
			return 0, 0, false
		}
		return p.vlanTags(b, 20, binary.BigEndian.Uint16(b[0:]))
	case LinkRaw:
		if len(b) < 1 {
			p.Truncated = true
			return 0, 0, false
		}
		switch b[0] >> 4 {
		case 4:
			return 0, 0x0800, true
		case 6:
			return 0, 0x86dd, true
		}
		return 0, 0, false
	case LinkIPv4:
		return 0, 0x0800, true
	case LinkIPv6:
		return 0, 0x86dd, true
	case LinkNull, LinkLoop:
		if len(b) < 4 {
			p.Truncated = true
			return 0, 0, false
		}
		fam := binary.LittleEndian.Uint32(b)
		if lt == LinkLoop || fam > 0xffff {
			fam = binary.BigEndian.Uint32(b)
		}
		switch fam {
		case 2:
			return 4, 0x0800, true
		case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			return 4, 0x86dd, true
		}
		return 0, 0, false
	}
	return p.otherLinkLayer(lt, b)
}

// ether reads an Ethernet II (or 802.3 LLC/SNAP) header at off and walks
// the tags, labels and sessions after it (vlanTags).
func (p *Packet) ether(b []byte, off int) (int, uint16, bool) {
	if len(b) < off+14 {
		p.Truncated = true
		return 0, 0, false
	}
	et := binary.BigEndian.Uint16(b[off+12:])
	if et < 0x0600 { // 802.3 length field: LLC/SNAP, not IP
		if len(b) >= off+22 && b[off+14] == 0xaa && b[off+15] == 0xaa && b[off+16] == 0x03 {
			return off + 22, binary.BigEndian.Uint16(b[off+20:]), true
		}
		return 0, 0, false
	}
	return p.vlanTags(b, off+14, et)
}

// vlanTags walks the EtherType chain to the network header: 802.1Q
// (0x8100), 802.1ad (0x88a8) and old QinQ (0x9100) tags, MPLS label stacks
// (0x8847, 0x8848) and PPPoE sessions (0x8864). Every step consumes bytes,
// so hostile chains end with the frame.
func (p *Packet) vlanTags(b []byte, off int, et uint16) (int, uint16, bool) {
	for {
		switch et {
		case 0x8100, 0x88a8, 0x9100:
			if len(b) < off+4 {
				p.Truncated = true
				return 0, 0, false
			}
			if p.NVLAN < MaxVLANs {
				p.VLAN[p.NVLAN] = binary.BigEndian.Uint16(b[off:]) & 0x0fff
			}
			p.NVLAN++
			et = binary.BigEndian.Uint16(b[off+2:])
			off += 4
		case EtherMPLS, EtherMPLSMulticast:
			p.Encap |= EncapMPLS
			// Labels until the bottom-of-stack bit.
			for {
				if len(b) < off+4 {
					p.Truncated = true
					return 0, 0, false
				}
				bos := b[off+2]&1 != 0
				off += 4
				if bos {
					break
				}
			}
			if len(b) < off+1 {
				p.Truncated = true
				return 0, 0, false
			}
			// MPLS does not say what it carries; as Wireshark does, the
			// first nibble tells IPv4, IPv6, or an Ethernet pseudowire
			// (RFC 4448), with or without a control word (whose first
			// nibble is 0, as is that of most MAC addresses): the reading
			// whose EtherType is a common one wins, the control word on a
			// tie.
			switch b[off] >> 4 {
			case 4:
				et = 0x0800
			case 6:
				et = 0x86dd
			case 0:
				if len(b) < off+14 {
					p.Truncated = true
					return 0, 0, false
				}
				plain := binary.BigEndian.Uint16(b[off+12:])
				if len(b) >= off+4+14 {
					if cw := binary.BigEndian.Uint16(b[off+4+12:]); commonEtherType(cw) || !commonEtherType(plain) {
						plain, off = cw, off+4
					}
				}
				if !commonEtherType(plain) {
					if len(b) < off+4+14 {
						p.Truncated = true
					}
					return 0, 0, false
				}
				et = plain
				off += 14
			default:
				return p.endTags(off, et)
			}
		case EtherPPPoESession:
			if len(b) < off+8 {
				p.Truncated = true
				return 0, 0, false
			}
			// Version and type 1, code 0 (session data), then PPP's
			// protocol: IPv4 (0x0021) or IPv6 (0x0057); anything else (LCP,
			// IPCP) is not IP and keeps the PPPoE EtherType.
			if b[off] != 0x11 || b[off+1] != 0 {
				return p.endTags(off, et)
			}
			switch binary.BigEndian.Uint16(b[off+6:]) {
			case 0x0021:
				et = 0x0800
			case 0x0057:
				et = 0x86dd
			default:
				return p.endTags(off, et)
			}
			p.Encap |= EncapPPPoE
			off += 8
		default:
			return p.endTags(off, et)
		}
	}
}

// commonEtherType reports whether et is one an Ethernet pseudowire
// usually carries: IP, ARP, VLAN tags or MPLS.
func commonEtherType(et uint16) bool {
	switch et {
	case 0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, EtherMPLS:
		return true
	}
	return false
}

func (p *Packet) endTags(off int, et uint16) (int, uint16, bool) {
	if p.NVLAN > MaxVLANs {
		p.NVLAN = MaxVLANs
	}
	return off, et, true
}

func (p *Packet) network(b []byte, off int, et uint16) bool {
	switch et {
	case 0x0800:
		return p.ipv4(b, off)
	case 0x86dd:
		return p.ipv6(b, off)
	case 0x0806, 0x8035:
		p.arp(b, off)
	}
	return false
}

// arp records the protocol addresses of an IPv4 ARP/RARP packet in Src and
// Dst, as tcpdump's "host" primitive matches them too.
func (p *Packet) arp(b []byte, off int) {
	if len(b) < off+8 {
		p.Truncated = true
		return
	}
	h := b[off:]
	hlen, plen := int(h[4]), int(h[5])
	if binary.BigEndian.Uint16(h[2:]) != 0x0800 || plen != 4 {
		return
	}
	if len(h) < 8+2*hlen+8 {
		p.Truncated = true
		return
	}
	p.ARP = true
	p.Src = netip.AddrFrom4([4]byte(h[8+hlen : 12+hlen]))
	p.Dst = netip.AddrFrom4([4]byte(h[12+2*hlen : 16+2*hlen]))
}

// fastIPv4 parses what Parse would from an Ethernet frame holding IPv4
// without options (not a fragment) and a whole UDP or TCP header, not
// possibly a tunnel (mayTunnel); for anything else it reports false, leaving p for the
// general path.
func (p *Packet) fastIPv4(b []byte) bool {
	h := (*[20]byte)(b[14:34])
	if binary.BigEndian.Uint16(h[6:])&0x3fff != 0 {
		return false
	}
	ipLen := int(binary.BigEndian.Uint16(h[2:]))
	end := len(b)
	if ipLen >= 20 && 14+ipLen < end {
		end = 14 + ipLen // Ethernet padding is not payload
	}
	var sp, dp uint16
	var seq, ack uint32
	var flags uint8
	var payload int
	switch h[9] {
	case ProtoUDP:
		if end < 42 {
			return false
		}
		u := (*[8]byte)(b[34:42])
		sp, dp = binary.BigEndian.Uint16(u[0:]), binary.BigEndian.Uint16(u[2:])
		// Maybe a tunnel (mayTunnel): the general path decapsulates.
		if tunnelPort(sp, dp) || end >= 82 && b[42]>>4 == 6 && teredoBare(b[42:end], int(binary.BigEndian.Uint16(u[4:])), ipLen-20) {
			return false
		}
		payload = 42
	case ProtoTCP:
		if end < 54 {
			return false
		}
		t := (*[20]byte)(b[34:54])
		hl := int(t[12]>>4) * 4
		if hl < 20 || end < 34+hl {
			return false
		}
		sp, dp = binary.BigEndian.Uint16(t[0:]), binary.BigEndian.Uint16(t[2:])
		seq, ack, flags = binary.BigEndian.Uint32(t[4:]), binary.BigEndian.Uint32(t[8:]), t[13]
		payload = 34 + hl
	default:
		return false
	}
	// Every field set in place: a composite literal would be built aside
	// and copied. TestFastPath reuses one Packet, so a field left out
	// here shows.
	p.VLAN, p.NVLAN = [MaxVLANs]uint16{}, 0
	p.EtherType, p.IPVersion = 0x0800, 4
	p.Src, p.Dst = netip.AddrFrom4([4]byte(h[12:16])), netip.AddrFrom4([4]byte(h[16:20]))
	p.Proto, p.HasPorts, p.SrcPort, p.DstPort = h[9], true, sp, dp
	p.TCPFlags, p.TCPSeq, p.TCPAck = flags, seq, ack
	p.ARP, p.Fragment = false, false
	p.IPLen, p.L3, p.L4, p.Payload, p.PayloadN = ipLen, 14, 34, payload, end-payload
	p.Truncated = false
	p.Encap = 0
	p.Outer = Outer{}
	p.words = [4]uint64{0, v4Words(h[12:16]), 0, v4Words(h[16:20])}
	p.wordsSet = true
	return true
}

func (p *Packet) ipv4(b []byte, off int) bool {
	if len(b) < off+20 || b[off]>>4 != 4 {
		p.Truncated = len(b) < off+20
		return false
	}
	// One bounds check for the fixed header instead of one per field.
	h := (*[20]byte)(b[off : off+20])
	ihl := int(h[0]&0x0f) * 4
	if ihl < 20 {
		return false
	}
	p.IPVersion = 4
	p.L3 = off
	p.IPLen = int(binary.BigEndian.Uint16(h[2:]))
	p.Src = netip.AddrFrom4([4]byte(h[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(h[16:20]))
	p.words, p.wordsSet = [4]uint64{0, v4Words(h[12:16]), 0, v4Words(h[16:20])}, true
	p.Proto = h[9]
	frag := binary.BigEndian.Uint16(h[6:])
	p.Fragment = frag&0x3fff != 0 // MF set or offset non-zero
	end := len(b)
	if p.IPLen >= ihl && off+p.IPLen < end {
		end = off + p.IPLen // ignore Ethernet padding
	}
	if frag&0x1fff != 0 { // a later fragment: no transport header
		return true
	}
	if len(b) < off+ihl {
		p.Truncated = true
		return true
	}
	p.transport(b[:end], off+ihl)
	return true
}

func (p *Packet) ipv6(b []byte, off int) bool {
	if len(b) < off+40 || b[off]>>4 != 6 {
		p.Truncated = len(b) < off+40
		return false
	}
	p.IPVersion = 6
	p.L3 = off
	plen := int(binary.BigEndian.Uint16(b[off+4:]))
	p.IPLen = 40 + plen
	a := (*[32]byte)(b[off+8 : off+40])
	p.Src = netip.AddrFrom16([16]byte(a[:16]))
	p.Dst = netip.AddrFrom16([16]byte(a[16:]))
	be := binary.BigEndian
	p.words, p.wordsSet = [4]uint64{be.Uint64(a[0:]), be.Uint64(a[8:]), be.Uint64(a[16:]), be.Uint64(a[24:])}, true
	end := len(b)
	if plen > 0 && off+40+plen < end {
		end = off + 40 + plen
	}
	next := b[off+6]
	pos := off + 40
	// Walk extension headers; a bounded count keeps hostile chains cheap.
	for range 8 {
		switch next {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, dest opts, mobility, HIP, shim6
			if end < pos+8 {
				p.Proto = next
				p.Truncated = true
				return true
			}
			next, pos = b[pos], pos+(int(b[pos+1])+1)*8
		case 51: // AH: length in 4-byte units minus 2
			if end < pos+8 {
				p.Proto = next
				p.Truncated = true
				return true
			}
			next, pos = b[pos], pos+(int(b[pos+1])+2)*4
		case 44: // fragment
			if end < pos+8 {
				p.Proto = next
				p.Truncated = true
				return true
			}
			p.Fragment = true
			fo := binary.BigEndian.Uint16(b[pos+2:]) &^ 7
			next, pos = b[pos], pos+8
			if fo != 0 {
				p.Proto = next
				return true
			}
		default:
			p.Proto = next
			if pos > end {
				p.Truncated = true
				return true
			}
			p.transport(b[:end], pos)
			return true
		}
	}
	p.Proto = next
	return true
}

func (p *Packet) transport(b []byte, off int) {
	p.L4 = off
	switch p.Proto {
	case ProtoTCP:
		if len(b) < off+20 {
			p.Truncated = true
			if len(b) >= off+4 { // ports alone are often enough to index
				p.SrcPort = binary.BigEndian.Uint16(b[off:])
				p.DstPort = binary.BigEndian.Uint16(b[off+2:])
				p.HasPorts = true
			}
			return
		}
		h := (*[20]byte)(b[off : off+20])
		p.SrcPort = binary.BigEndian.Uint16(h[0:])
		p.DstPort = binary.BigEndian.Uint16(h[2:])
		p.HasPorts = true
		p.TCPSeq = binary.BigEndian.Uint32(h[4:])
		p.TCPAck = binary.BigEndian.Uint32(h[8:])
		p.TCPFlags = h[13]
		hl := int(h[12]>>4) * 4
		if hl < 20 || len(b) < off+hl {
			p.Truncated = len(b) < off+hl
			return
		}
		p.Payload = off + hl
		p.PayloadN = len(b) - p.Payload
	case ProtoUDP:
		if len(b) < off+8 {
			p.Truncated = true
			return
		}
		h := (*[4]byte)(b[off : off+4])
		p.SrcPort = binary.BigEndian.Uint16(h[0:])
		p.DstPort = binary.BigEndian.Uint16(h[2:])
		p.HasPorts = true
		p.Payload = off + 8
		p.PayloadN = len(b) - p.Payload
	case ProtoSCTP:
		if len(b) < off+12 {
			p.Truncated = true
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(b[off:])
		p.DstPort = binary.BigEndian.Uint16(b[off+2:])
		p.HasPorts = true
	case ProtoICMP, ProtoICMPv6:
		if len(b) < off+4 {
			p.Truncated = true
			return
		}
		p.Payload = off + 4
		p.PayloadN = len(b) - p.Payload
	}
}

// WireLen estimates the IP datagram length for byte accounting: the length
// the IP header claims when there is one, else the captured length.
func (p *Packet) WireLen(origLen int) int {
	if p.IPLen > 0 {
		return p.IPLen
	}
	return origLen
}
