package pcapfilter

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

func frame(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// An Ethernet/IPv4/UDP frame 10.0.0.1:54321 > 10.0.0.2:53, and the same
// datagram as raw IP.
const (
	eth = "02 00 00 00 00 02 02 00 00 00 00 01 08 00"
	ip  = "45 00 00 1c 00 01 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02 d4 31 00 35 00 08 00 00"
)

func TestFilter(t *testing.T) {
	cases := []struct {
		expr string
		lt   pkthdr.LinkType
		data string
		want bool
	}{
		{"", pkthdr.LinkEthernet, eth + ip, true},
		{"udp port 53", pkthdr.LinkEthernet, eth + ip, true},
		{"tcp", pkthdr.LinkEthernet, eth + ip, false},
		{"src host 10.0.0.1 and dst port 53", pkthdr.LinkRaw, ip, true},
		{"host 10.0.0.9", pkthdr.LinkRaw, ip, false},
		{"vlan", pkthdr.LinkEthernet, eth + ip, false},
	}
	for _, c := range cases {
		f, err := Compile(c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		d := frame(c.data)
		if got := f.Match(c.lt, time.Unix(1, 0), d, len(d)); got != c.want {
			t.Errorf("%q on link type %d: %v, want %v", c.expr, c.lt, got, c.want)
		}
	}
	if _, err := Compile("port nonsense and"); err == nil {
		t.Error("a bad expression compiled")
	}
	var nilFilter *Filter
	if !nilFilter.Empty() || !nilFilter.Match(pkthdr.LinkRaw, time.Time{}, nil, 0) {
		t.Error("a nil filter must match everything")
	}
}

// A link type the expression cannot apply to matches nothing, and the
// failure is remembered: the compiler is not started again per packet.
func TestFilterRemembersFailure(t *testing.T) {
	f, err := Compile("vlan and udp")
	if err != nil {
		t.Fatal(err)
	}
	d := frame(ip)
	for range 2 {
		if f.Match(pkthdr.LinkRaw, time.Unix(1, 0), d, len(d)) {
			t.Fatal("vlan matched a raw IP packet")
		}
	}
	c, ok := f.byLT.Load(pkthdr.LinkRaw)
	if !ok || c.(*compiled).err == nil {
		t.Fatalf("raw IP outcome not cached as a failure: %v", c)
	}
}

// TestFilterLinkTypes: filters compile for the link types tcpdump filters
// (802.11 behind radiotap, PPP, pf logs, the old raw IP numbers as raw
// IP) and match there as tcpdump does; Check refuses, naming the link
// type, where tcpdump cannot compile (NFLOG); PPP frames without HDLC
// framing, which libpcap's programs would read two bytes off, match
// nothing and are counted.
func TestFilterLinkTypes(t *testing.T) {
	testenv.Tool(t, "tcpdump")
	f, err := Compile("udp and host 10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range []pkthdr.LinkType{pkthdr.LinkRadiotap, pkthdr.LinkIEEE80211, pkthdr.LinkPPP, pkthdr.LinkPPPHDLC,
		pkthdr.LinkCHDLC, pkthdr.LinkPFLOG, pkthdr.LinkPPPoE, pkthdr.LinkRawOld12, pkthdr.LinkRawOld14} {
		if err := f.Check(lt); err != nil {
			t.Errorf("%s: %v", pkthdr.LinkName(lt), err)
		}
	}
	err = f.Check(pkthdr.LinkNFLOG)
	var ue *UnappliedError
	if !errors.As(err, &ue) || ue.LinkType != pkthdr.LinkNFLOG || !strings.Contains(err.Error(), "NFLOG") {
		t.Errorf("NFLOG: %v, want an UnappliedError naming it", err)
	}
	framed := frame("ff 03 00 21" + ip)
	if !f.Match(pkthdr.LinkPPP, time.Unix(1, 0), framed, len(framed)) {
		t.Error("framed PPP: no match")
	}
	bare := frame("00 21" + ip)
	if f.Match(pkthdr.LinkPPP, time.Unix(1, 0), bare, len(bare)) || f.Unframed() != 1 {
		t.Errorf("unframed PPP: matched, or not counted (%d)", f.Unframed())
	}
	radiotap := frame("00 00 08 00 00 00 00 00  08 01 00 00 020000000a01 020000000a02 020000000a03 1000  aa aa 03 00 00 00 08 00" + ip)
	if !f.Match(pkthdr.LinkRadiotap, time.Unix(1, 0), radiotap, len(radiotap)) {
		t.Error("radiotap: no match")
	}
	if !f.Match(pkthdr.LinkRawOld14, time.Unix(1, 0), frame(ip), len(frame(ip))) {
		t.Error("link type 14: no match")
	}
}

// TestFilterForOtherLinkTypes: an expression only 802.11 (or pflog)
// takes is accepted, and applies there; Check refuses it on Ethernet; an
// expression no link type takes is still refused.
func TestFilterForOtherLinkTypes(t *testing.T) {
	testenv.Tool(t, "tcpdump")
	for _, expr := range []string{"wlan type data", "action block"} {
		f, err := Compile(expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		var ue *UnappliedError
		if err := f.Check(pkthdr.LinkEthernet); !errors.As(err, &ue) {
			t.Errorf("%q on Ethernet: %v, want an UnappliedError", expr, err)
		}
	}
	f, _ := Compile("wlan type data")
	radiotap := frame("00 00 08 00 00 00 00 00  08 01 00 00 020000000a01 020000000a02 020000000a03 1000  aa aa 03 00 00 00 08 00" + ip)
	if !f.Match(pkthdr.LinkRadiotap, time.Unix(1, 0), radiotap, len(radiotap)) {
		t.Error("wlan type data: no match on a radiotap data frame")
	}
	if _, err := Compile("hots 10.0.0.1"); err == nil {
		t.Error("a misspelt expression compiled")
	}
}
