package pkthdr

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestOtherLinks: header shapes the scapy captures do not hold (a
// compressed PPP protocol field, MPLS over PPP, Cisco PPP, big-endian
// NFLOG, radiotap with a second present word, pf's AF_INET6 of FreeBSD),
// and hostile ones that must give no IP.
func TestOtherLinks(t *testing.T) {
	radiotap2 := `00 00 14 00  03 00 00 80  00 00 00 00` + // present TSFT, Flags, ext; second word 0; pad
		`01 00 00 00 00 00 00 00` // TSFT: Flags would follow at 20, past the header
	wifiData := `08 01 00 00  020000000a01 020000000a02 020000000a03 1000  aa aa 03 00 00 00 08 00`
	cases := []struct {
		name  string
		lt    LinkType
		frame string
		ip    bool
		src   string
		sp    uint16
	}{
		{"ppp-compressed-protocol", LinkPPP, `21` + ipv4UDP, true, "10.0.0.1", 54321},
		{"ppp-hdlc-framed-in-9", LinkPPP, `ff 03 00 21` + ipv4UDP, true, "10.0.0.1", 54321},
		{"ppp-mpls", LinkPPP, `02 81  00 01 01 40` + ipv4UDP, true, "10.0.0.1", 54321},
		{"ppp-lcp", LinkPPP, `c0 21 09 01 00 08 00 00 00 aa`, false, "", 0},
		{"cisco-ppp-in-50", LinkPPPHDLC, `0f 00 08 00` + ipv4UDP, true, "10.0.0.1", 54321},
		{"ppp-hdlc-bad-address", LinkPPPHDLC, `7e 03 00 21` + ipv4UDP, false, "", 0},
		{"chdlc-ipv6", LinkCHDLC, `8f 00 86 dd` + ipv6TCPFrag, true, "2001:db8::1", 443},
		{"pppoe-51", LinkPPPoE, `11 00 00 42 00 26 00 21` + ipv4UDP, true, "10.0.0.1", 54321},
		{"pflog-freebsd-inet6", LinkPFLOG, `30 1c` + zeros(46) + ipv6TCPFrag, true, "2001:db8::1", 443},
		{"pflog-short-length", LinkPFLOG, `04 02 00 00` + ipv4UDP, false, "", 0},
		{"pflog-unknown-family", LinkPFLOG, `30 07` + zeros(46) + ipv4UDP, false, "", 0},
		{"nflog-big-endian", LinkNFLOG, `02 00 00 07  00 08 00 01 08 00 01 00  00 28 00 09` + ipv4UDP, true, "10.0.0.1", 54321},
		{"nflog-no-payload", LinkNFLOG, `02 00 00 07  08 00 01 00 08 00 01 00`, false, "", 0},
		{"nflog-zero-length-tlv", LinkNFLOG, `02 00 00 07  00 00 09 00` + ipv4UDP, false, "", 0},
		{"nflog-bridge-family", LinkNFLOG, `07 00 00 07  28 00 09 00` + ipv4UDP, false, "", 0},
		{"radiotap-ext-bitmap", LinkRadiotap, radiotap2 + wifiData + ipv4UDP, true, "10.0.0.1", 54321},
		{"radiotap-length-past-frame", LinkRadiotap, `00 00 ff 00 00 00 00 00` + wifiData + ipv4UDP, false, "", 0},
		{"radiotap-bitmaps-past-header", LinkRadiotap, `00 00 0c 00 00 00 00 80 00 00 00 80` + wifiData + ipv4UDP, false, "", 0},
		{"wifi-not-snap", LinkIEEE80211, `08 01 00 00  020000000a01 020000000a02 020000000a03 1000  42 42 03 00 00 00 08 00` + ipv4UDP, false, "", 0},
		{"wifi-protected", LinkIEEE80211, `08 41 00 00  020000000a01 020000000a02 020000000a03 1000  aa aa 03 00 00 00 08 00` + ipv4UDP, false, "", 0},
		{"wifi-version-1", LinkIEEE80211, `09 01 00 00  020000000a01 020000000a02 020000000a03 1000  aa aa 03 00 00 00 08 00` + ipv4UDP, false, "", 0},
		{"ppi-ethernet", LinkPPI, `00 00 08 00 01 00 00 00` + ethHdr + `08 00` + ipv4UDP, true, "10.0.0.1", 54321},
		{"ppi-other-dlt", LinkPPI, `00 00 08 00 71 00 00 00` + sllHdr + `08 00` + ipv4UDP, false, "", 0},
		{"prism-big-endian-length", LinkPrism, `00 00 00 44 00 00 00 10` + zeros(8) + wifiData + ipv4UDP, true, "10.0.0.1", 54321},
		{"avs-in-prism", LinkPrism, `80 21 10 01 00 00 00 10` + zeros(8) + wifiData + ipv4UDP, true, "10.0.0.1", 54321},
		{"avs-bad-magic", LinkAVS, `00 00 00 44 00 00 00 10` + zeros(8) + wifiData + ipv4UDP, false, "", 0},
		{"raw12", LinkRawOld12, ipv4UDP, true, "10.0.0.1", 54321},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			ok := Parse(c.lt, unhex(c.frame), &p)
			if ok != c.ip {
				t.Fatalf("Parse = %v, want %v (%+v)", ok, c.ip, p)
			}
			if ok && (p.Src.String() != c.src || p.SrcPort != c.sp) {
				t.Errorf("got %v:%d, want %s:%d", p.Src, p.SrcPort, c.src, c.sp)
			}
		})
	}
}

func zeros(n int) string {
	s := ""
	for range n {
		s += "00 "
	}
	return s
}

// TestRadiotapFCS: with the Flags field's FCS bit the last four bytes are
// not the packet's, even where the IP header does not bound it (a UDP
// datagram whose IP length covers the frame's end).
func TestRadiotapFCS(t *testing.T) {
	hdr := `00 00 09 00 02 00 00 00 10` // present Flags; Flags: FCS
	data := `08 01 00 00  020000000a01 020000000a02 020000000a03 1000  aa aa 03 00 00 00 08 00`
	frame := unhex(hdr + data + ipv4UDP + `de ad be ef`)
	var p Packet
	if !Parse(LinkRadiotap, frame, &p) {
		t.Fatal("no IP")
	}
	if p.PayloadN != 8 || p.Payload+p.PayloadN != len(frame)-4 {
		t.Errorf("payload [%d,+%d) in a frame of %d with an FCS", p.Payload, p.PayloadN, len(frame))
	}
	// The IPv4 length claims more than is there: only the FCS bounds it.
	binary.BigEndian.PutUint16(frame[9+32+2:], 200)
	Parse(LinkRadiotap, frame, &p)
	if p.Payload+p.PayloadN != len(frame)-4 {
		t.Errorf("cut datagram: payload ends at %d, the FCS starts at %d", p.Payload+p.PayloadN, len(frame)-4)
	}
	if p.trailer != 0 {
		t.Errorf("trailer %d left in the packet", p.trailer)
	}
}

// newLinks are the link types of links.go.
var newLinks = []LinkType{LinkPPP, LinkRawOld12, LinkRawOld14, LinkPPPHDLC, LinkPPPoE, LinkCHDLC,
	LinkIEEE80211, LinkPFLOG, LinkPrism, LinkRadiotap, LinkAVS, LinkPPI, LinkNFLOG}

// linkFixtures reads the frames of testdata/links' pcap files (plain
// little-endian pcap, as gen.py writes them) with their link types.
func linkFixtures(t testing.TB) (lts []LinkType, frames [][]byte) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "links", "*.pcap"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 24 {
			t.Fatalf("%s: %v", f, err)
		}
		lt := LinkType(binary.LittleEndian.Uint32(b[20:]))
		for off := 24; off+16 <= len(b); {
			n := int(binary.LittleEndian.Uint32(b[off+8:]))
			if off+16+n > len(b) {
				break
			}
			lts, frames = append(lts, lt), append(frames, b[off+16:off+16+n])
			off += 16 + n
		}
	}
	if len(frames) < 100 {
		t.Fatalf("%d fixture frames", len(frames))
	}
	return lts, frames
}

// TestLinksCut: every fixture frame cut at every length parses without
// reading past its end, and marks itself truncated when it loses the
// network header it had.
func TestLinksCut(t *testing.T) {
	lts, frames := linkFixtures(t)
	for i, f := range frames {
		var whole Packet
		if !Parse(lts[i], f, &whole) {
			continue
		}
		for n := range whole.L3 {
			var p Packet
			if Parse(lts[i], f[:n], &p) {
				t.Errorf("link %d frame %d cut at %d of %d: IP found", lts[i], i, n, whole.L3)
			}
		}
	}
}

// FuzzLinks: the decoders of links.go on any bytes never panic, keep
// offsets in the frame, and agree with ClassifyWiFi: an 802.11 frame that
// gives IP is a data frame.
func FuzzLinks(f *testing.F) {
	lts, frames := linkFixtures(f)
	for i, fr := range frames {
		for j, lt := range newLinks {
			if lt == lts[i] {
				f.Add(uint8(j), fr)
			}
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, b []byte) {
		lt := newLinks[int(sel)%len(newLinks)]
		var p Packet
		ok := Parse(lt, b, &p)
		if p.Payload > len(b) || p.L4 > len(b) || p.L3 > len(b) || p.PayloadN < 0 && p.Payload >= 0 || p.Payload+p.PayloadN > len(b) {
			t.Fatalf("offsets beyond frame: %+v (len %d)", p, len(b))
		}
		if ok && p.L3 < 0 {
			t.Fatalf("IP without an offset: %+v", p)
		}
		k := ClassifyWiFi(lt, b)
		if ok && IsWiFi(lt) && k != WiFiData && k != WiFiAMSDU && !(lt == LinkPPI && k == WiFiNone) {
			t.Fatalf("802.11 frame of kind %d gave IP", k)
		}
		if !IsWiFi(lt) && k != WiFiNone {
			t.Fatalf("link type %d classified as 802.11 kind %d", lt, k)
		}
	})
}
