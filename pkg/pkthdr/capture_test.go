package pkthdr_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// encapPcap holds conversations inside GTP-U, Teredo, VXLAN-GPE, PPTP,
// L2TP and AYIYA, built by scapy (testdata/encap/gen.py), and tunnel
// traffic that carries no IP packet.
var encapPcap = filepath.Join("..", "..", "testdata", "encap", "encap.pcap")

// encapOf names, by tshark's protocol chain, the encapsulation it opened;
// tshark's VXLAN-GPE dissector does not list itself, so a UDP packet
// straight followed by IP or Ethernet is that.
func encapOf(protocols string) pkthdr.Encap {
	for _, c := range []struct {
		in    string
		encap pkthdr.Encap
	}{
		{":gtp:ip", pkthdr.EncapGTPU}, {":teredo:ipv6", pkthdr.EncapTeredo}, {":gre:ppp:ip", pkthdr.EncapPPTP},
		{":l2tp:ppp:ip", pkthdr.EncapL2TP}, {":ayiya:ip", pkthdr.EncapAYIYA},
		{":udp:ip:", pkthdr.EncapVXLANGPE}, {":udp:ipv6:", pkthdr.EncapVXLANGPE}, {":udp:eth:", pkthdr.EncapVXLANGPE},
	} {
		if strings.Contains(protocols, c.in) {
			return c.encap
		}
	}
	return 0
}

// TestEncapCapture: every packet of the scapy-built capture gives Parse
// the innermost addresses, protocol and ports tshark decodes (with its
// Teredo heuristic on, for clients' traffic on other ports), the
// encapsulation tshark names, and the outer header; tunnel traffic that
// carries no IP packet stays the outer packet in both.
func TestEncapCapture(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	out, err := exec.Command(tshark, "-n", "-r", encapPcap, "--enable-heuristic", "teredo_udp", "-T", "fields",
		"-E", "occurrence=a", "-E", "separator=|", "-E", "aggregator=,",
		"-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	r, err := pcapio.OpenFile(encapPcap)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sc := bufio.NewScanner(bytes.NewReader(out))
	seen := map[pkthdr.Encap]int{}
	outer := 0
	for n := 1; sc.Scan(); n++ {
		pk, err := r.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		f := strings.Split(sc.Text(), "|")
		protos := f[0]
		var p pkthdr.Packet
		if !pkthdr.Parse(pk.LinkType, pk.Data, &p) {
			t.Fatalf("packet %d: no IP found", n)
		}
		// The innermost IP header tshark decoded is the last "ip" or
		// "ipv6" of its chain; the transport after it, if any, is the
		// last TCP or UDP header.
		chain := strings.Split(protos, ":")
		last, version := -1, 0
		for i, c := range chain {
			switch c {
			case "ip":
				last, version = i, 4
			case "ipv6":
				last, version = i, 6
			}
		}
		lastOf := func(s string) string { v := strings.Split(s, ","); return v[len(v)-1] }
		src, dst := lastOf(f[1]), lastOf(f[2])
		if version == 6 {
			src, dst = lastOf(f[3]), lastOf(f[4])
		}
		want := []string{strconv.Itoa(version), src, dst}
		switch after := strings.Join(chain[last+1:], ":"); {
		case strings.HasPrefix(after, "tcp"):
			want = append(want, "6", lastOf(f[5]), lastOf(f[6]))
		case strings.HasPrefix(after, "udp"):
			want = append(want, "17", lastOf(f[7]), lastOf(f[8]))
		}
		got := []string{strconv.Itoa(int(p.IPVersion)), p.Src.String(), p.Dst.String()}
		if p.HasPorts {
			got = append(got, strconv.Itoa(int(p.Proto)), strconv.Itoa(int(p.SrcPort)), strconv.Itoa(int(p.DstPort)))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("packet %d: ours %v, tshark %v (%s)", n, got, want, protos)
		}
		if e := encapOf(protos); p.Encap != e {
			t.Errorf("packet %d: encapsulation %b, tshark's chain %s (%b)", n, p.Encap, protos, e)
		}
		// The outer header is the first IPv4 one tshark lists.
		if p.Encap != 0 {
			osrc, odst := strings.Split(f[1], ",")[0], strings.Split(f[2], ",")[0]
			if p.Outer.IPVersion != 4 || p.Outer.Src().String() != osrc || p.Outer.Dst().String() != odst {
				t.Errorf("packet %d: outer %v > %v, tshark %v > %v", n, p.Outer.Src(), p.Outer.Dst(), osrc, odst)
			}
		} else {
			outer++
		}
		seen[p.Encap]++
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("tshark printed fewer packets than the capture holds (%v)", err)
	}
	for _, e := range []pkthdr.Encap{pkthdr.EncapGTPU, pkthdr.EncapTeredo, pkthdr.EncapVXLANGPE, pkthdr.EncapPPTP, pkthdr.EncapL2TP, pkthdr.EncapAYIYA} {
		if seen[e] < 5 {
			t.Errorf("encapsulation %b: %d packets opened", e, seen[e])
		}
	}
	if outer < 4 {
		t.Errorf("%d packets left outer, want the 4 that carry no IP", outer)
	}
	t.Logf("opened %v, left outer %d", seen, outer)
}
