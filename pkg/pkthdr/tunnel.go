package pkthdr

import (
	"encoding/binary"
	"net/netip"
)

// Encap is a set of encapsulations Parse walked through.
type Encap uint16

// The encapsulations Parse decodes (docs/capture.md, "Tunnels").
const (
	EncapMPLS   Encap = 1 << iota // MPLS label stack (EtherType 0x8847/0x8848)
	EncapPPPoE                    // PPPoE session carrying IPv4 or IPv6
	EncapGRE                      // GRE carrying IP, MPLS or Ethernet (0x6558)
	EncapERSPAN                   // ERSPAN type I, II (GRE 0x88be) or III (0x22eb)
	EncapVXLAN                    // VXLAN, UDP port 4789
	EncapGENEVE                   // GENEVE, UDP port 6081
	EncapIPinIP                   // IPv4 or IPv6 in IP (protocols 4, 41)
)

// Tunnel EtherTypes and UDP ports.
const (
	EtherMPLS          = 0x8847
	EtherMPLSMulticast = 0x8848
	EtherPPPoESession  = 0x8864
	EtherTEB           = 0x6558 // transparent Ethernet bridging: an Ethernet frame follows
	EtherERSPAN2       = 0x88be
	EtherERSPAN3       = 0x22eb
	PortVXLAN          = 4789
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
// decap: a few compares.
func (p *Packet) mayTunnel() bool {
	switch p.Proto {
	case ProtoGRE, ProtoIPIP, ProtoIPv6:
		return true
	case ProtoUDP:
		return p.DstPort == PortVXLAN || p.DstPort == PortGENEVE
	}
	return false
}

// decap replaces the parsed IP packet by the one it carries, up to
// MaxTunnels levels, recording the outermost IP header in p.Outer. A level
// that does not hold a whole encapsulation header and an IP header leaves
// the packet as parsed so far: a UDP packet to port 4789 that is not VXLAN
// stays what it is.
func (p *Packet) decap(b []byte) {
	outer := Outer{IPVersion: p.IPVersion, Proto: p.Proto, HasPorts: p.HasPorts, SrcPort: p.SrcPort, DstPort: p.DstPort, src: p.Src.As16(), dst: p.Dst.As16()}
	for range MaxTunnels {
		// A fragment's payload is not whole; later fragments have no
		// tunnel header at all.
		if p.Fragment || p.Truncated || !p.mayTunnel() {
			return
		}
		end := len(b)
		if p.IPLen > 0 && p.L3+p.IPLen < end {
			end = p.L3 + p.IPLen
		}
		in := b[:end]
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
		if p.Payload < 0 || len(b) < p.Payload+8 {
			return 0, 0, 0, false
		}
		h := (*[8]byte)(b[p.Payload : p.Payload+8])
		if p.DstPort == PortVXLAN {
			// RFC 7348: flags with the I bit (a valid VNI), then Ethernet.
			if h[0]&0x08 == 0 {
				return 0, 0, 0, false
			}
			return p.Payload + 8, EtherTEB, EncapVXLAN, true
		}
		// RFC 8926: version 0, options length in 4-byte words, protocol
		// type as an EtherType.
		if h[0]>>6 != 0 {
			return 0, 0, 0, false
		}
		n := 8 + int(h[0]&0x3f)*4
		if len(b) < p.Payload+n {
			return 0, 0, 0, false
		}
		return p.Payload + n, be.Uint16(h[2:]), EncapGENEVE, true
	case ProtoGRE:
		if p.L4 < 0 || len(b) < p.L4+4 {
			return 0, 0, 0, false
		}
		flags, proto := be.Uint16(b[p.L4:]), be.Uint16(b[p.L4+2:])
		// Version 0 only (1 is PPTP's enhanced GRE), and no RFC 1701
		// source routing.
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
