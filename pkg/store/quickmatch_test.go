package store

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// ipv4Frame is an Ethernet (or, raw, a bare) IPv4 UDP packet.
func ipv4Frame(raw bool, src, dst [4]byte, ethertype uint16) []byte {
	ip := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0}
	ip = append(ip, src[:]...)
	ip = append(ip, dst[:]...)
	ip = append(ip, 0, 53, 0, 53, 0, 8, 0, 0)
	if raw {
		return ip
	}
	eth := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, byte(ethertype >> 8), byte(ethertype)}
	return append(eth, ip...)
}

// tunnelFrame wraps an Ethernet frame in VXLAN (udp true) or an IPv4
// packet in GRE, between outer IPv4 endpoints src and dst.
func tunnelFrame(udp bool, src, dst [4]byte, inner []byte) []byte {
	proto, payload := byte(pkthdr.ProtoGRE), append([]byte{0, 0, 0x08, 0x00}, inner...)
	if udp {
		proto = pkthdr.ProtoUDP
		n := 16 + len(inner)
		payload = append([]byte{0x9c, 0x40, 0x12, 0xb5, byte(n >> 8), byte(n), 0, 0, 0x08, 0, 0, 0, 0, 0, 0x64, 0}, inner...)
	}
	n := 20 + len(payload)
	ip := []byte{0x45, 0, byte(n >> 8), byte(n), 0, 0, 0, 0, 64, proto, 0, 0}
	ip = append(append(append(ip, src[:]...), dst[:]...), payload...)
	return append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip...)
}

// udpFrame is an Ethernet IPv4 UDP packet between src:sp and dst:dp
// carrying payload.
func udpFrame(src, dst [4]byte, sp, dp uint16, payload []byte) []byte {
	n := 28 + len(payload)
	ip := []byte{0x45, 0, byte(n >> 8), byte(n), 0, 0, 0, 0, 64, 17, 0, 0}
	ip = append(append(ip, src[:]...), dst[:]...)
	ip = append(ip, byte(sp>>8), byte(sp), byte(dp>>8), byte(dp), byte((n-20)>>8), byte(n-20), 0, 0)
	return append(append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip...), payload...)
}

// teredoIPv6 is an IPv6 UDP packet from a Teredo address to dst.
func teredoIPv6(dst netip.Addr) []byte {
	h := []byte{0x60, 0, 0, 0, 0, 8, 17, 64}
	h = append(h, netip.MustParseAddr("2001:0:4136:e378:8000:63bf:3fff:fdd2").AsSlice()...)
	h = append(h, dst.AsSlice()...)
	return append(h, 0x14, 0xe9, 0, 53, 0, 8, 0, 0)
}

// checkReject fails if rejectIPv4 turns away a packet that Match takes.
func checkReject(t *testing.T, sel *Selector, lt pkthdr.LinkType, data []byte) bool {
	t.Helper()
	hosts4, quick := sel.quickHosts()
	rejected := quick && rejectIPv4(hosts4, lt, data)
	var scratch pkthdr.Packet
	pk := pcapio.Packet{Timestamp: time.Unix(1, 0), LinkType: lt, Data: data, OrigLen: len(data)}
	if rejected && sel.Match(&pk, &scratch) {
		t.Fatalf("rejectIPv4 turned away a matching packet: lt %d % x", lt, data)
	}
	return rejected
}

func TestRejectIPv4(t *testing.T) {
	a, b, c := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, [4]byte{192, 0, 2, 9}
	sel := &Selector{Hosts: []netip.Addr{netip.AddrFrom4(a), netip.MustParseAddr("2001:db8::1")}}
	cases := []struct {
		name   string
		lt     pkthdr.LinkType
		data   []byte
		reject bool
	}{
		{"other hosts", pkthdr.LinkEthernet, ipv4Frame(false, b, c, 0x0800), true},
		{"host is source", pkthdr.LinkEthernet, ipv4Frame(false, a, c, 0x0800), false},
		{"host is destination", pkthdr.LinkEthernet, ipv4Frame(false, c, a, 0x0800), false},
		{"raw IP, other hosts", pkthdr.LinkRaw, ipv4Frame(true, b, c, 0), true},
		{"raw IP, host", pkthdr.LinkRaw, ipv4Frame(true, b, a, 0), false},
		{"VLAN tag: left to Match", pkthdr.LinkEthernet, ipv4Frame(false, b, c, 0x8100), false},
		{"ARP: left to Match", pkthdr.LinkEthernet, ipv4Frame(false, b, c, 0x0806), false},
		{"truncated", pkthdr.LinkEthernet, ipv4Frame(false, b, c, 0x0800)[:30], false},
		{"cooked capture: left to Match", pkthdr.LinkLinuxSLL, ipv4Frame(false, b, c, 0x0800), false},
		{"host inside VXLAN", pkthdr.LinkEthernet, tunnelFrame(true, b, c, ipv4Frame(false, a, c, 0x0800)), false},
		{"host inside GRE", pkthdr.LinkEthernet, tunnelFrame(false, b, c, ipv4Frame(true, c, a, 0)), false},
		{"host inside GTP-U", pkthdr.LinkEthernet, udpFrame(b, c, 40000, pkthdr.PortGTPU, append([]byte{0x30, 0xff, 0, 28, 0, 0, 0, 1}, ipv4Frame(true, a, c, 0)...)), false},
		{"host inside L2TP, from the server", pkthdr.LinkEthernet, udpFrame(b, c, pkthdr.PortL2TP, 40000, append([]byte{0, 2, 0, 1, 0, 1, 0xff, 3, 0, 0x21}, ipv4Frame(true, c, a, 0)...)), false},
		{"host inside a Teredo client's IPv6", pkthdr.LinkEthernet, udpFrame(b, c, 50000, 61000, teredoIPv6(netip.MustParseAddr("2001:db8::1"))), false},
		{"UDP to no tunnel port", pkthdr.LinkEthernet, udpFrame(b, c, 50000, 61000, ipv4Frame(true, a, c, 0)), true},
	}
	for _, c := range cases {
		if got := checkReject(t, sel, c.lt, c.data); got != c.reject {
			t.Errorf("%s: reject %v, want %v", c.name, got, c.reject)
		}
	}
}

func FuzzRejectIPv4(f *testing.F) {
	a := [4]byte{10, 0, 0, 1}
	f.Add(ipv4Frame(false, a, [4]byte{1, 2, 3, 4}, 0x0800), true)
	f.Add(ipv4Frame(false, [4]byte{5, 6, 7, 8}, [4]byte{1, 2, 3, 4}, 0x0800), true)
	f.Add(ipv4Frame(true, [4]byte{5, 6, 7, 8}, a, 0), false)
	f.Add(tunnelFrame(true, [4]byte{5, 6, 7, 8}, [4]byte{1, 2, 3, 4}, ipv4Frame(false, a, [4]byte{1, 2, 3, 4}, 0x0800)), true)
	f.Add(tunnelFrame(false, [4]byte{5, 6, 7, 8}, [4]byte{1, 2, 3, 4}, ipv4Frame(true, a, [4]byte{1, 2, 3, 4}, 0)), true)
	f.Add(udpFrame([4]byte{5, 6, 7, 8}, [4]byte{1, 2, 3, 4}, 40000, pkthdr.PortGTPU, append([]byte{0x30, 0xff, 0, 28, 0, 0, 0, 1}, ipv4Frame(true, a, [4]byte{1, 2, 3, 4}, 0)...)), true)
	f.Add(udpFrame([4]byte{5, 6, 7, 8}, [4]byte{1, 2, 3, 4}, 50000, 61000, teredoIPv6(netip.MustParseAddr("2001:db8::1"))), true)
	f.Fuzz(func(t *testing.T, data []byte, ether bool) {
		lt := pkthdr.LinkRaw
		if ether {
			lt = pkthdr.LinkEthernet
		}
		sel := &Selector{Hosts: []netip.Addr{netip.AddrFrom4(a)}}
		checkReject(t, sel, lt, data)
		sel.Ports = []uint16{53}
		checkReject(t, sel, lt, data)
	})
}
