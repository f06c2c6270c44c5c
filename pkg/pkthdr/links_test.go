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

// linkCaptures are the scapy-built captures of testdata/links/gen.py, one
// a link type, and the pcapng file mixing three.
var linkCaptures = []string{
	"radiotap.pcap", "ieee802_11.pcap", "ppi.pcap", "prism.pcap", "avs.pcap",
	"ppp.pcap", "ppp_hdlc.pcap", "chdlc.pcap", "pppoe.pcap", "pflog.pcap", "nflog.pcap",
	"raw12.pcap", "raw14.pcap", "mixed.pcapng",
}

// TestLinkCaptures: every packet of each capture gives Parse the
// addresses, protocol and ports tshark decodes (the first IP header it
// lists: an A-MSDU's first subframe), and nothing where tshark finds no
// IP; every 802.11 frame is classified as tshark reads its frame control
// (type, Protected bit, QoS A-MSDU bit).
func TestLinkCaptures(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	for _, name := range linkCaptures {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("..", "..", "testdata", "links", name)
			out, err := exec.Command(tshark, "-n", "-r", file, "-T", "fields",
				"-E", "occurrence=f", "-E", "separator=|",
				"-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
				"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
				"-e", "wlan.fc.type", "-e", "wlan.fc.protected", "-e", "wlan.qos.amsdupresent", "-e", "wlan.fc.subtype").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			r, err := pcapio.OpenFile(file)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			sc := bufio.NewScanner(bytes.NewReader(out))
			ip, kinds := 0, map[pkthdr.WiFiKind]int{}
			for n := 1; sc.Scan(); n++ {
				pk, err := r.Next()
				if err != nil {
					t.Fatalf("packet %d: %v", n, err)
				}
				f := strings.Split(sc.Text(), "|")
				chain := strings.Split(f[0], ":")
				var want []string
				for i, c := range chain {
					if c != "ip" && c != "ipv6" {
						continue
					}
					want = []string{"4", f[1], f[2]}
					if c == "ipv6" {
						want = []string{"6", f[3], f[4]}
					}
					if i+1 < len(chain) && chain[i+1] == "tcp" {
						want = append(want, "6", f[5], f[6])
					} else if i+1 < len(chain) && chain[i+1] == "udp" {
						want = append(want, "17", f[7], f[8])
					}
					break
				}
				var p pkthdr.Packet
				var got []string
				if pkthdr.Parse(pk.LinkType, pk.Data, &p) {
					got = []string{strconv.Itoa(int(p.IPVersion)), p.Src.String(), p.Dst.String()}
					if p.HasPorts {
						got = append(got, strconv.Itoa(int(p.Proto)), strconv.Itoa(int(p.SrcPort)), strconv.Itoa(int(p.DstPort)))
					}
					ip++
					// The transport payload ends where the IP datagram
					// does, before an FCS.
					if p.Payload >= 0 && p.Payload+p.PayloadN > p.L3+p.IPLen {
						t.Errorf("packet %d: payload [%d,+%d) past the datagram's end %d", n, p.Payload, p.PayloadN, p.L3+p.IPLen)
					}
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("packet %d: ours %v, tshark %v (%s)", n, got, want, f[0])
				}
				k := pkthdr.ClassifyWiFi(pk.LinkType, pk.Data)
				kinds[k]++
				if wk := tsharkWiFi(f[9], f[10], f[11], f[12]); k != wk {
					t.Errorf("packet %d: 802.11 kind %d, tshark's frame control %d (%s)", n, k, wk, f[0])
				}
			}
			if _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("tshark printed fewer packets than the capture holds (%v)", err)
			}
			if ip < 9 {
				t.Errorf("%d packets with IP, want at least the 9 of the conversations", ip)
			}
			t.Logf("%d packets with IP; 802.11 kinds %v", ip, kinds)
		})
	}
}

// tsharkWiFi maps tshark's frame control fields to a WiFiKind.
func tsharkWiFi(typ, protected, amsdu, subtype string) pkthdr.WiFiKind {
	if typ == "" {
		return pkthdr.WiFiNone
	}
	n, _ := strconv.ParseUint(typ, 0, 8)
	st, _ := strconv.ParseUint(subtype, 0, 8)
	switch n {
	case 0:
		return pkthdr.WiFiMgmt
	case 1:
		return pkthdr.WiFiControl
	case 2:
		switch {
		case st&4 != 0:
			return pkthdr.WiFiNull
		case protected == "True" || protected == "1":
			return pkthdr.WiFiProtected
		case amsdu == "True" || amsdu == "1":
			return pkthdr.WiFiAMSDU
		}
		return pkthdr.WiFiData
	}
	return pkthdr.WiFiOther
}
