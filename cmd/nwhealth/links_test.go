package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/demogen"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// linkFixtures are testdata/links' captures (gen.py), one a link type, in
// gen.py's order: link type i's hosts are 10.<60+i>.0.2 and .80.
var linkFixtures = []string{
	"radiotap", "ieee802_11", "ppi", "prism", "avs", "ppp", "ppp_hdlc", "chdlc", "pppoe", "pflog", "nflog", "raw12", "raw14",
}

func linkFile(name string) string { return filepath.Join("..", "..", "testdata", "links", name) }

// firstConversations gives, for each packet of file, the conversation of
// the first IP header tshark decodes ("tcp|udp A p|B q", ends in order),
// or "" when it has no TCP or UDP header after it: an A-MSDU's first
// subframe, as nwhealth reads it.
func firstConversations(t *testing.T, tshark, file string) []string {
	t.Helper()
	out, err := exec.Command(tshark, "-n", "-r", file, "-T", "fields", "-E", "occurrence=f", "-E", "separator=|",
		"-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", file, err)
	}
	var convs []string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		f := strings.Split(line, "|")
		chain := strings.Split(f[0], ":")
		conv := ""
		for i, c := range chain {
			if c != "ip" && c != "ipv6" {
				continue
			}
			src, dst := f[1], f[2]
			if c == "ipv6" {
				src, dst = f[3], f[4]
			}
			if i+1 < len(chain) && chain[i+1] == "tcp" {
				conv = convKey("tcp", src, f[5], dst, f[6])
			} else if i+1 < len(chain) && chain[i+1] == "udp" {
				conv = convKey("udp", src, f[7], dst, f[8])
			}
			break
		}
		convs = append(convs, conv)
	}
	return convs
}

// TestLinkTypesImport: the scapy-built captures of every link type read
// besides Ethernet (802.11 behind each capture header, PPP and HDLC, pf
// and netfilter logs, old raw IP numbers, a pcapng mixing three), once
// imported, give flow records of the conversations tshark decodes, packet
// for packet; `query --host` and `--port` return the packets tshark finds,
// in a file tcpdump reads; `--filter` selects what tcpdump selects in the
// same files, and is refused, naming the link type, on NFLOG, which
// tcpdump cannot filter; every shard is a pcap tcpdump reads after zstd
// -dc. Link types nwhealth does not read are named with the file (and the
// pcapng interface).
func TestLinkTypesImport(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	zstd := testenv.Tool(t, "zstd")
	tcpdump := testenv.Tool(t, "tcpdump")
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	var files []string
	for _, n := range linkFixtures {
		files = append(files, linkFile(n+".pcap"))
	}
	files = append(files, linkFile("mixed.pcapng"))
	code, out, errOut := nwh(t, nil, append([]string{"import", "--store", st}, files...)...)
	if code != exitOK {
		t.Fatalf("import: exit %d: %s%s", code, out, errOut)
	}
	// Five 802.11 files and the mixed one's radiotap interface: each
	// has one protected frame, one management, one control, one null.
	if !strings.Contains(out, "6 protected (encrypted, not read), 6 management, 6 control, 6 null") {
		t.Errorf("import does not count the 802.11 frames without IP:\n%s", out)
	}

	want := map[string]int{}
	for _, f := range files {
		for _, c := range firstConversations(t, tshark, f) {
			if c != "" {
				want[c]++
			}
		}
	}
	out, errOut, code = runCmd(t, "flows", "--store", st, "--format", "jsonl")
	if code != exitOK {
		t.Fatalf("flows: exit %d: %s", code, errOut)
	}
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var fl struct {
			Type, Proto, Orig, Resp string
			OrigPort                int `json:"orig_port"`
			RespPort                int `json:"resp_port"`
			OrigPkts                int `json:"orig_pkts"`
			RespPkts                int `json:"resp_pkts"`
		}
		if err := json.Unmarshal([]byte(line), &fl); err != nil {
			t.Fatalf("flows: %v: %s", err, line)
		}
		if fl.Type == "flow" && (fl.Proto == "tcp" || fl.Proto == "udp") {
			got[convKey(fl.Proto, fl.Orig, strconv.Itoa(fl.OrigPort), fl.Resp, strconv.Itoa(fl.RespPort))] += fl.OrigPkts + fl.RespPkts
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("flows' conversations (packets):\n%v\ntshark's:\n%v", got, want)
	}
	if len(want) < 3*len(files) {
		t.Errorf("tshark finds %d conversations in %d files", len(want), len(files))
	}

	for i, name := range linkFixtures {
		srv := fmt.Sprintf("10.%d.0.80", 60+i)
		q := filepath.Join(dir, name+"-q.pcap")
		if code, _, errOut := nwh(t, nil, "query", "--store", st, "-w", q, "--host", srv); code != exitOK {
			t.Fatalf("%s: query: exit %d: %s", name, code, errOut)
		}
		wantN := tsharkCount(t, tshark, linkFile(name+".pcap"), "ip.addr=="+srv)
		if n := countPackets(t, q); n != wantN || n < 9 {
			t.Errorf("%s: query --host %s: %d packets, tshark %d", name, srv, n, wantN)
		}
		if n := tcpdumpCount(t, q, ""); n != wantN {
			t.Errorf("%s: tcpdump reads %d packets of the query's %d", name, n, wantN)
		}
	}
	q := filepath.Join(dir, "port.pcap")
	if code, _, errOut := nwh(t, nil, "query", "--store", st, "-w", q, "--port", "53"); code != exitOK {
		t.Fatalf("query --port: exit %d: %s", code, errOut)
	}
	wantN := 0
	for _, f := range files {
		for _, c := range firstConversations(t, tshark, f) {
			if strings.HasPrefix(c, "udp|") && (strings.HasSuffix(c, " 53") || strings.Contains(c, " 53|")) {
				wantN++
			}
		}
	}
	if n := countPackets(t, q); n != wantN {
		t.Errorf("query --port 53: %d packets, tshark %d", n, wantN)
	}

	// The pcapng file's three link types come back as a pcapng of three
	// interfaces, which tshark reads as it read the input.
	mq := filepath.Join(dir, "mixed-q.pcapng")
	if code, _, errOut := nwh(t, nil, "query", "--store", st, "-w", mq, "--host", "10.80.0.80", "--host", "10.81.0.80", "--host", "10.82.0.80"); code != exitOK {
		t.Fatalf("query of the mixed file's hosts: exit %d: %s", code, errOut)
	}
	mf := "ip.addr==10.80.0.80 || ip.addr==10.81.0.80 || ip.addr==10.82.0.80"
	if got, want := tsharkCount(t, tshark, mq, mf), tsharkCount(t, tshark, linkFile("mixed.pcapng"), mf); got != want || want < 27 {
		t.Errorf("mixed link types: tshark finds %d packets in the query's pcapng, %d in the input", got, want)
	}
	r, err := pcapio.OpenFile(mq)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != pcapio.FormatPcapNG {
		t.Errorf("mixed link types: the query wrote format %v, want pcapng", r.Format())
	}
	r.Close()

	// Every shard is a pcap of its link type that tcpdump reads whole.
	shards, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard"))
	if len(shards) < len(linkFixtures) {
		t.Fatalf("%d shards", len(shards))
	}
	for _, sh := range shards {
		raw, err := exec.Command(zstd, "-dc", sh).Output()
		if err != nil {
			t.Fatalf("zstd -dc %s: %v", sh, err)
		}
		pc := filepath.Join(dir, "shard.pcap")
		if err := os.WriteFile(pc, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(tcpdump, "-r", pc, "-w", filepath.Join(dir, "shard-td.pcap")).CombinedOutput(); err != nil {
			t.Errorf("tcpdump -r %s after zstd -dc: %v: %s", filepath.Base(sh), err, msg)
		} else if n, m := countPackets(t, filepath.Join(dir, "shard-td.pcap")), countPackets(t, pc); n != m || n == 0 {
			t.Errorf("%s: tcpdump reads %d of %d packets", filepath.Base(sh), n, m)
		}
	}

	// --filter is tcpdump's, file by file. NFLOG, which tcpdump cannot
	// filter, is named and skipped (exit 3) beside other link types, and
	// refused alone (exit 2).
	f := filepath.Join(dir, "f.pcap")
	code, _, errOut = nwh(t, nil, "query", "--store", st, "-w", f, "--filter", "host 10.60.0.80")
	if code != exitPartial || strings.Count(errOut, "cannot be applied to packets of link type NFLOG") != 2 {
		t.Errorf("--filter over a store holding NFLOG: exit %d, %s", code, errOut)
	}
	if got, want := countPackets(t, f), tcpdumpCount(t, linkFile("radiotap.pcap"), "host 10.60.0.80"); got != want || want == 0 {
		t.Errorf("--filter over a store holding NFLOG: %d packets, tcpdump %d", got, want)
	}
	stn := filepath.Join(dir, "store-nflog")
	if code, _, errOut := nwh(t, nil, "import", "--store", stn, linkFile("nflog.pcap")); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	code, _, errOut = nwh(t, nil, "query", "--store", stn, "-w", f, "--filter", "host 10.70.0.80")
	if code != exitUsage || !strings.Contains(errOut, "link type NFLOG") {
		t.Errorf("--filter over NFLOG alone: exit %d, %s", code, errOut)
	}
	st2 := filepath.Join(dir, "store2")
	var filterable []string
	for _, n := range linkFixtures {
		if n != "nflog" {
			filterable = append(filterable, linkFile(n+".pcap"))
		}
	}
	if code, _, errOut := nwh(t, nil, append([]string{"import", "--store", st2}, filterable...)...); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	for i, name := range linkFixtures {
		if name == "nflog" || name == "raw14" { // tcpdump reads no file of link type 14
			continue
		}
		for _, expr := range []string{fmt.Sprintf("host 10.%d.0.80", 60+i), fmt.Sprintf("udp port %d", 40000+i), "tcp[tcpflags] & tcp-syn != 0"} {
			code, _, errOut := nwh(t, nil, "query", "--store", st2, "-w", f, "--filter", expr,
				"--net", fmt.Sprintf("10.%d.0.0/16", 60+i), "--net", fmt.Sprintf("2001:db8:%x::/48", 60+i))
			if code != exitOK {
				t.Fatalf("%s: --filter %q: exit %d: %s", name, expr, code, errOut)
			}
			if got, want := countPackets(t, f), tcpdumpCount(t, linkFile(name+".pcap"), expr); got != want {
				t.Errorf("%s: --filter %q: %d packets, tcpdump %d", name, expr, got, want)
			}
			if name == "ppp" && !strings.Contains(errOut, "PPP frames without HDLC framing") {
				t.Errorf("ppp: --filter says nothing of the unframed frames it could not test: %s", errOut)
			}
		}
	}

	// Link types not read: the file (and the interface) named.
	code, out, errOut = nwh(t, nil, "import", "--store", filepath.Join(dir, "u1"), linkFile("unsupported.pcap"))
	if code != exitError || !strings.Contains(out+errOut, "unsupported.pcap: link type 147 not supported") {
		t.Errorf("pcap of link type 147: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = nwh(t, nil, "import", "--store", filepath.Join(dir, "u2"), linkFile("unsupported.pcapng"))
	if code != exitPartial || !strings.Contains(out, "unsupported.pcapng: 2 packets read") || !strings.Contains(out, "pcapng interface 1: link type 147 not supported") {
		t.Errorf("pcapng with an interface of link type 147: exit %d: %s%s", code, out, errOut)
	}
	code, _, errOut = nwh(t, nil, "hunt", "--pcap", linkFile("unsupported.pcap"))
	if code == exitOK || !strings.Contains(errOut, "unsupported.pcap") || !strings.Contains(errOut, "link type 147") {
		t.Errorf("hunt --pcap of link type 147: exit %d: %s", code, errOut)
	}
}

// wrapLink turns an Ethernet frame carrying IP into a frame of link type
// kind: 802.11 QoS data behind radiotap (every second frame with its FCS,
// as the radiotap flags say), four-address 802.11 data behind PPI, PPP in
// HDLC-like framing, Cisco HDLC, a pf log record, a netfilter log record.
func wrapLink(kind string, n int, frame []byte) []byte {
	et := binary.BigEndian.Uint16(frame[12:])
	pkt := frame[14:]
	ipv6 := et == 0x86dd
	snap := append([]byte{0xaa, 0xaa, 0x03, 0, 0, 0, byte(et >> 8), byte(et)}, pkt...)
	addrs := []byte{0x02, 0, 0, 0, 0x0b, 1, 0x02, 0, 0, 0, 0x0b, 2, 0x02, 0, 0, 0, 0x0b, 3}
	var out []byte
	switch kind {
	case "radiotap":
		fcs := n%2 == 1
		flags := byte(0)
		if fcs {
			flags = 0x10
		}
		out = []byte{0, 0, 9, 0, 2, 0, 0, 0, flags}
		dot11 := append(append([]byte{0x88, 0x02, 0, 0}, addrs...), 0x10, 0, 0, 0) // QoS data from the DS, QoS control
		dot11 = append(dot11, snap...)
		out = append(out, dot11...)
		if fcs {
			out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(dot11))
		}
	case "ppi":
		out = []byte{0, 0, 8, 0, 105, 0, 0, 0}
		out = append(append(append(out, 0x08, 0x03, 0, 0), addrs...), 0x10, 0)
		out = append(append(out, 0x02, 0, 0, 0, 0x0b, 4), snap...) // the fourth address
	case "ppp":
		proto := []byte{0, 0x21}
		if ipv6 {
			proto = []byte{0, 0x57}
		}
		out = append(append([]byte{0xff, 0x03}, proto...), pkt...)
	case "chdlc":
		out = append([]byte{0x0f, 0, byte(et >> 8), byte(et)}, pkt...)
	case "pflog":
		h := make([]byte, 64)
		h[0], h[1] = 61, 2
		if ipv6 {
			h[1] = 24 // OpenBSD's AF_INET6
		}
		copy(h[4:], "em0")
		out = append(h, pkt...)
	case "nflog":
		fam := byte(2)
		if ipv6 {
			fam = 10
		}
		out = []byte{fam, 0, 0, 1, 8, 0, 1, 0, byte(et >> 8), byte(et), 1, 0} // header, NFULA_PACKET_HDR
		out = binary.LittleEndian.AppendUint16(out, uint16(4+len(pkt)))
		out = append(binary.LittleEndian.AppendUint16(out, 9), pkt...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out
}

var wrapLinkTypes = map[string]pkthdr.LinkType{
	"radiotap": pkthdr.LinkRadiotap, "ppi": pkthdr.LinkPPI, "ppp": pkthdr.LinkPPPHDLC,
	"chdlc": pkthdr.LinkCHDLC, "pflog": pkthdr.LinkPFLOG, "nflog": pkthdr.LinkNFLOG,
}

// TestLinkTypesReplayHunt: the demo's SMB/DCE-RPC intrusion and beacons,
// rewritten into 802.11 behind radiotap and PPI, PPP, Cisco HDLC, pf and
// netfilter logs, give the same replay operations and hunt findings as
// the Ethernet capture, and tshark finds the intrusion's host in each.
func TestLinkTypesReplayHunt(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.pcap")
	var buf bytes.Buffer
	if _, err := demogen.Generate(&buf, demogen.Config{Seed: 5, Duration: 2 * time.Hour, Workstations: 10}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	replayPlain, errOut, _ := runCmd(t, "replay", "--pcap", plain, "--format", "jsonl", "--all")
	ops := jsonlTypes(replayPlain, "operation", "story")
	if strings.Count(ops, `"type":"operation"`) < 5 {
		t.Fatalf("the demo capture replays %d operations: %s", strings.Count(ops, `"type":"operation"`), errOut)
	}
	huntPlain, _, _ := runCmd(t, "hunt", "--pcap", plain, "--format", "jsonl", "--top", "0")
	findings := jsonlTypes(huntPlain, "finding")
	if !strings.Contains(findings, `"kind":"channel"`) {
		t.Fatalf("the demo capture hunts no beacon:\n%s", findings)
	}
	inner := fieldOf(t, ops, "src")
	for _, kind := range []string{"radiotap", "ppi", "ppp", "chdlc", "pflog", "nflog"} {
		t.Run(kind, func(t *testing.T) {
			wrapped := filepath.Join(dir, kind+".pcap")
			rewriteLink(t, kind, plain, wrapped)
			if n, all := tsharkCount(t, tshark, wrapped, "ip.addr=="+inner), tsharkCount(t, tshark, plain, "ip.addr=="+inner); n != all {
				t.Fatalf("tshark finds %d packets of %s, %d in the Ethernet capture", n, inner, all)
			}
			rp, errOut, _ := runCmd(t, "replay", "--pcap", wrapped, "--format", "jsonl", "--all")
			if got := jsonlTypes(rp, "operation", "story"); got != ops {
				t.Errorf("replay differs from the Ethernet capture's (%s):\n%s", errOut, firstDiff(ops, got))
			}
			hp, _, _ := runCmd(t, "hunt", "--pcap", wrapped, "--format", "jsonl", "--top", "0")
			if got := jsonlTypes(hp, "finding"); got != findings {
				t.Errorf("hunt differs from the Ethernet capture's:\n%s", firstDiff(findings, got))
			}
		})
	}
}

// rewriteLink writes the Ethernet capture in as link type kind.
func rewriteLink(t *testing.T, kind, in, out string) {
	t.Helper()
	rewritePcap(t, in, out, wrapLinkTypes[kind], func(n int, frame []byte) []byte {
		if et := binary.BigEndian.Uint16(frame[12:]); et != 0x0800 && et != 0x86dd {
			t.Fatalf("frame %d is not IP over untagged Ethernet (EtherType %#04x)", n, et)
		}
		return wrapLink(kind, n, frame)
	})
}

// TestProtectedWiFiNamed: hunt, replay and report over a monitor-mode
// capture say how many encrypted 802.11 frames they could not read (the
// radiotap fixture has one, by tshark's wlan.fc.protected), so an empty
// result is not taken for a quiet network; it is no damage (exit 0).
func TestProtectedWiFiNamed(t *testing.T) {
	in := linkFile("radiotap.pcap")
	tshark := testenv.Tool(t, "tshark")
	out, err := exec.Command(tshark, "-r", in, "-Y", "wlan.fc.protected == 1", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := len(strings.Fields(string(out)))
	if n == 0 {
		t.Fatal("the fixture has no protected frame")
	}
	want := fmt.Sprintf("%s: %d protected 802.11 frames (encrypted Wi-Fi) not read", in, n)
	for _, cmd := range [][]string{
		{"hunt", "--pcap", in},
		{"replay", "--pcap", in},
		{"report", "--pcap", in, "--format", "jsonl"},
	} {
		_, stderr, code := runCmd(t, cmd...)
		if code != 0 || !strings.Contains(stderr, cmd[0]+": "+want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 0 and %q", cmd[0], code, stderr, want)
		}
	}
	// An Ethernet capture says nothing of the kind.
	if _, stderr, _ := runCmd(t, "hunt", "--pcap", linkFile("ppp.pcap")); strings.Contains(stderr, "802.11") {
		t.Errorf("hunt over PPP: %q", stderr)
	}
}
