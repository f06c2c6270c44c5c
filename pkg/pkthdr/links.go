package pkthdr

import (
	"encoding/binary"
	"fmt"
)

// Link types read besides Ethernet, cooked and raw IP and loopback: Wi-Fi
// with its capture headers, point-to-point links, and the packet logs of
// BSD and Linux firewalls (docs/capture.md, "Link types").
const (
	LinkPPP       LinkType = 9   // PPP, with or without HDLC-like framing (ff 03)
	LinkRawOld12  LinkType = 12  // raw IP as old BSD files write it (DLT_RAW on OpenBSD)
	LinkRawOld14  LinkType = 14  // raw IP as BSD/OS files write it
	LinkPPPHDLC   LinkType = 50  // PPP in HDLC-like framing, or Cisco PPP
	LinkPPPoE     LinkType = 51  // PPPoE session header, no Ethernet before it
	LinkCHDLC     LinkType = 104 // Cisco HDLC
	LinkIEEE80211 LinkType = 105 // 802.11 frames, no capture header
	LinkPFLOG     LinkType = 117 // OpenBSD/FreeBSD pf log
	LinkPrism     LinkType = 119 // Prism monitor header (or AVS) before 802.11
	LinkRadiotap  LinkType = 127 // radiotap header before 802.11
	LinkAVS       LinkType = 163 // AVS monitor header before 802.11
	LinkPPI       LinkType = 192 // Per-Packet Information header before its DLT's frame
	LinkNFLOG     LinkType = 239 // Linux netfilter log
)

// LinkName is the libpcap name of a link type (as tcpdump -L prints it),
// or its number for types nwhealth does not know.
func LinkName(lt LinkType) string {
	switch lt {
	case LinkNull:
		return "NULL"
	case LinkEthernet:
		return "EN10MB"
	case LinkPPP:
		return "PPP"
	case LinkRawOld12, LinkRawOld14, LinkRaw:
		return "RAW"
	case LinkPPPHDLC:
		return "PPP_HDLC"
	case LinkPPPoE:
		return "PPP_ETHER"
	case LinkCHDLC:
		return "C_HDLC"
	case LinkIEEE80211:
		return "IEEE802_11"
	case LinkLoop:
		return "LOOP"
	case LinkLinuxSLL:
		return "LINUX_SLL"
	case LinkPFLOG:
		return "PFLOG"
	case LinkPrism:
		return "PRISM_HEADER"
	case LinkRadiotap:
		return "IEEE802_11_RADIO"
	case LinkAVS:
		return "IEEE802_11_RADIO_AVS"
	case LinkPPI:
		return "PPI"
	case LinkIPv4:
		return "IPV4"
	case LinkIPv6:
		return "IPV6"
	case LinkNFLOG:
		return "NFLOG"
	case LinkSLL2:
		return "LINUX_SLL2"
	}
	return fmt.Sprintf("%d", uint16(lt))
}

// otherLinkLayer is linkLayer for the link types of this file.
func (p *Packet) otherLinkLayer(lt LinkType, b []byte) (int, uint16, bool) {
	switch lt {
	case LinkRawOld12, LinkRawOld14:
		return linkLayer(LinkRaw, b, p)
	case LinkPPP:
		// RFC 1662 framing (address ff, control 03) is optional here.
		off := 0
		if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
			off = 2
		}
		return p.ppp(b, off)
	case LinkPPPHDLC:
		if len(b) < 4 {
			p.Truncated = true
			return 0, 0, false
		}
		switch b[0] {
		case 0xff: // PPP in HDLC-like framing
			return p.ppp(b, 2)
		case 0x0f, 0x8f: // Cisco PPP: a Cisco HDLC header
			return p.vlanTags(b, 4, binary.BigEndian.Uint16(b[2:]))
		}
		return 0, 0, false
	case LinkCHDLC:
		// Address (0f unicast, 8f broadcast), control, an EtherType.
		if len(b) < 4 {
			p.Truncated = true
			return 0, 0, false
		}
		return p.vlanTags(b, 4, binary.BigEndian.Uint16(b[2:]))
	case LinkPPPoE:
		return p.vlanTags(b, 0, EtherPPPoESession)
	case LinkPFLOG:
		return p.pflog(b)
	case LinkNFLOG:
		return p.nflog(b)
	case LinkIEEE80211, LinkRadiotap, LinkPrism, LinkAVS, LinkPPI:
		return p.wifi(lt, b)
	}
	return 0, 0, false
}

// ppp reads a PPP protocol field at off (one byte when compressed: an odd
// first byte) and maps IP and MPLS to EtherTypes.
func (p *Packet) ppp(b []byte, off int) (int, uint16, bool) {
	if len(b) < off+1 {
		p.Truncated = true
		return 0, 0, false
	}
	proto := uint16(b[off])
	if proto&1 == 0 {
		if len(b) < off+2 {
			p.Truncated = true
			return 0, 0, false
		}
		proto = binary.BigEndian.Uint16(b[off:])
		off++
	}
	off++
	switch proto {
	case 0x0021:
		return off, 0x0800, true
	case 0x0057:
		return off, 0x86dd, true
	case 0x0281, 0x0283: // MPLS unicast, multicast
		return p.vlanTags(b, off, EtherMPLS)
	}
	return 0, 0, false
}

// minPFLOGHeader is the shortest pf log header (OpenBSD 3.x, before the
// uid and pid fields): what Wireshark accepts too.
const minPFLOGHeader = 45

// pflog reads pf's log header: its length (the packet follows at the
// length rounded up to 4 bytes, as libpcap's filters place it) and the
// address family of the logging system.
func (p *Packet) pflog(b []byte) (int, uint16, bool) {
	if len(b) < 2 {
		p.Truncated = true
		return 0, 0, false
	}
	hl := int(b[0])
	if hl < minPFLOGHeader {
		return 0, 0, false
	}
	off := (hl + 3) &^ 3
	switch b[1] {
	case 2:
		return off, 0x0800, true
	case 10, 24, 28, 30: // AF_INET6 on Linux, OpenBSD/NetBSD, FreeBSD, Darwin
		return off, 0x86dd, true
	}
	return 0, 0, false
}

// NFLOG TLV types read (linux/netfilter/nfnetlink_log.h).
const nfulaPayload = 9

// nflog reads a netfilter log record: family, version, resource id, then
// TLVs (length and type in the logging host's byte order, each padded to
// 4 bytes) until the payload TLV, which holds the IP packet.
func (p *Packet) nflog(b []byte) (int, uint16, bool) {
	if len(b) < 4 {
		p.Truncated = true
		return 0, 0, false
	}
	var et uint16
	switch b[0] {
	case 2:
		et = 0x0800
	case 10:
		et = 0x86dd
	default:
		return 0, 0, false
	}
	// The byte order is the host's: TLV types are small, so the order
	// that reads the first type below 256 is the one.
	var bo binary.ByteOrder = binary.LittleEndian
	if len(b) >= 8 && binary.LittleEndian.Uint16(b[6:]) > 0xff {
		bo = binary.BigEndian
	}
	off := 4
	// Each TLV takes at least 4 bytes, so the walk ends with the frame.
	for len(b) >= off+4 {
		n := int(bo.Uint16(b[off:]))
		typ := bo.Uint16(b[off+2:]) & 0x7fff // without NLA_F_NESTED
		if n < 4 {
			return 0, 0, false
		}
		if typ == nfulaPayload {
			return off + 4, et, true
		}
		off += (n + 3) &^ 3
	}
	p.Truncated = true
	return 0, 0, false
}

// WiFiKind says what an 802.11 frame is, for the counts import keeps of
// what it could not read (Classify).
type WiFiKind uint8

// Kinds of 802.11 frames.
const (
	WiFiNone      WiFiKind = iota // not an 802.11 link type, or no 802.11 header
	WiFiData                      // a data frame with a body (IP when its LLC/SNAP says so)
	WiFiAMSDU                     // a data frame aggregating MSDUs: the first is read
	WiFiNull                      // a data frame without a body (null, QoS null)
	WiFiProtected                 // a data frame with the Protected bit: encrypted, not read
	WiFiMgmt                      // a management frame (beacons, probes, association...)
	WiFiControl                   // a control frame (RTS, CTS, ACK, block ack...)
	WiFiOther                     // another frame type or protocol version
)

// IsWiFi reports whether frames of lt are 802.11 frames (after a capture
// header).
func IsWiFi(lt LinkType) bool {
	switch lt {
	case LinkIEEE80211, LinkRadiotap, LinkPrism, LinkAVS, LinkPPI:
		return true
	}
	return false
}

// ClassifyWiFi tells what kind of 802.11 frame frame is; WiFiNone for other
// link types (a PPI header over Ethernet too).
func ClassifyWiFi(lt LinkType, frame []byte) WiFiKind {
	off, _, ok := wifiHeader(lt, frame)
	if !ok || len(frame) < off+2 {
		return WiFiNone
	}
	fc0, fc1 := frame[off], frame[off+1]
	if fc0&3 != 0 {
		return WiFiOther
	}
	switch (fc0 >> 2) & 3 {
	case 0:
		return WiFiMgmt
	case 1:
		return WiFiControl
	case 2:
		switch {
		case fc0&0x40 != 0: // subtypes without a body
			return WiFiNull
		case fc1&0x40 != 0:
			return WiFiProtected
		}
		if fc0&0x80 != 0 { // QoS data: the A-MSDU bit of QoS control
			q := off + 24
			if fc1&3 == 3 {
				q += 6
			}
			if len(frame) >= q+1 && frame[q]&0x80 != 0 {
				return WiFiAMSDU
			}
		}
		return WiFiData
	}
	return WiFiOther
}

// Capture header constants.
const (
	radiotapFlagsFCS = 0x10       // radiotap Flags: the frame ends with its FCS
	avsMagic         = 0x80211000 // AVS header version, top 20 bits
	ppiFieldCommon   = 2          // PPI 802.11-Common field
	ppiCommonFCS     = 0x0001     // its flags: FCS present
)

// wifiHeader finds the 802.11 header after the capture header of lt and
// reports whether the frame ends with a 4-byte FCS (fcs). For a PPI header
// over another link type it reports that link type's offset in off with
// ok false and fcs false; callers that handle it check PPI themselves.
func wifiHeader(lt LinkType, b []byte) (off int, fcs bool, ok bool) {
	switch lt {
	case LinkIEEE80211:
		return 0, false, true
	case LinkRadiotap:
		// Version 0, pad, length (LE), then present bitmaps (LE), the
		// last without bit 31; TSFT (bit 0, 8 bytes aligned to 8) comes
		// before Flags (bit 1, one byte).
		if len(b) < 8 || b[0] != 0 {
			return 0, false, false
		}
		hl := int(binary.LittleEndian.Uint16(b[2:]))
		if hl < 8 || hl > len(b) {
			return 0, false, false
		}
		present := binary.LittleEndian.Uint32(b[4:])
		pos := 8
		for w := present; w&(1<<31) != 0; pos += 4 {
			if pos+4 > hl {
				return 0, false, false
			}
			w = binary.LittleEndian.Uint32(b[pos:])
		}
		if present&2 != 0 {
			if present&1 != 0 {
				pos = (pos+7)&^7 + 8
			}
			if pos < hl {
				fcs = b[pos]&radiotapFlagsFCS != 0
			}
		}
		return hl, fcs, true
	case LinkPrism, LinkAVS:
		if len(b) < 8 {
			return 0, false, false
		}
		var hl int
		if binary.BigEndian.Uint32(b)&0xfffff000 == avsMagic {
			hl = int(binary.BigEndian.Uint32(b[4:]))
		} else if lt == LinkPrism {
			// Prism's message length is in the capturing host's byte order.
			hl = int(binary.LittleEndian.Uint32(b[4:]))
			if hl < 8 || hl > len(b) {
				hl = int(binary.BigEndian.Uint32(b[4:]))
			}
		} else {
			return 0, false, false
		}
		if hl < 8 || hl > len(b) {
			return 0, false, false
		}
		return hl, false, true
	case LinkPPI:
		// Version 0, flags, length (LE), DLT (LE), then fields: type and
		// length (LE), data.
		if len(b) < 8 || b[0] != 0 {
			return 0, false, false
		}
		hl := int(binary.LittleEndian.Uint16(b[2:]))
		if hl < 8 || hl > len(b) {
			return 0, false, false
		}
		dlt := binary.LittleEndian.Uint32(b[4:])
		if dlt != uint32(LinkIEEE80211) {
			return hl, false, false
		}
		for pos := 8; pos+4 <= hl; {
			typ, n := binary.LittleEndian.Uint16(b[pos:]), int(binary.LittleEndian.Uint16(b[pos+2:]))
			// 802.11-Common: TSF (8 bytes), then the flags.
			if typ == ppiFieldCommon && n >= 10 && pos+4+10 <= hl {
				fcs = binary.LittleEndian.Uint16(b[pos+4+8:])&ppiCommonFCS != 0
			}
			pos += 4 + n
		}
		return hl, fcs, true
	}
	return 0, false, false
}

// wifi reads an 802.11 data frame after its capture header down to the
// EtherType its LLC/SNAP header names. Protected frames are not read (they
// are encrypted); management and control frames hold no IP. An A-MSDU's
// first subframe is read.
func (p *Packet) wifi(lt LinkType, b []byte) (int, uint16, bool) {
	off, fcs, ok := wifiHeader(lt, b)
	if !ok {
		if lt == LinkPPI && off > 0 && len(b) >= 8 && binary.LittleEndian.Uint32(b[4:]) == uint32(LinkEthernet) {
			return p.ether(b, off)
		}
		return 0, 0, false
	}
	if len(b) < off+24 {
		p.Truncated = true
		return 0, 0, false
	}
	fc0, fc1 := b[off], b[off+1]
	// Version 0, type data, a subtype with a body, not protected.
	if fc0&0x0f != 0x08 || fc0&0x40 != 0 || fc1&0x40 != 0 {
		return 0, 0, false
	}
	pos := off + 24
	if fc1&3 == 3 { // to and from the DS: a fourth address
		pos += 6
	}
	amsdu := false
	if fc0&0x80 != 0 { // QoS data: QoS control, then HT control when Order is set
		if len(b) < pos+2 {
			p.Truncated = true
			return 0, 0, false
		}
		amsdu = b[pos]&0x80 != 0
		pos += 2
		if fc1&0x80 != 0 {
			pos += 4
		}
	}
	if amsdu { // subframe header: DA, SA, length
		pos += 14
	}
	// LLC/SNAP with an EtherType (RFC 1042 or 802.1H bridge tunnel).
	if len(b) < pos+8 {
		p.Truncated = true
		return 0, 0, false
	}
	if b[pos] != 0xaa || b[pos+1] != 0xaa || b[pos+2] != 0x03 || b[pos+3] != 0 || b[pos+4] != 0 || (b[pos+5] != 0 && b[pos+5] != 0xf8) {
		return 0, 0, false
	}
	off, et, ok := p.vlanTags(b, pos+8, binary.BigEndian.Uint16(b[pos+6:]))
	if ok && fcs {
		p.trailer = 4 // parse cuts it off (see there)
		return off, et, false
	}
	return off, et, ok
}
