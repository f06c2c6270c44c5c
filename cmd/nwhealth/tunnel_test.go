package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Tunnel endpoints of the wrapped captures: a switch mirroring to a sensor.
var (
	mirrorSrc = [4]byte{192, 0, 2, 250}
	mirrorDst = [4]byte{192, 0, 2, 251}
)

// wrapFrame puts an Ethernet frame inside an outer Ethernet/IPv4 packet
// from mirrorSrc to mirrorDst, as a remote mirror or a tunnel endpoint
// sends it: GRE with an ERSPAN type II header (kind "erspan"), VXLAN
// ("vxlan"), VXLAN-GPE with an Ethernet next protocol ("vxlan-gpe"), or
// the frame's IP packet alone in a GTP-U G-PDU ("gtpu"), in PPP in an
// L2TPv2 data message ("l2tp") or in PPP in PPTP's enhanced GRE ("pptp").
func wrapFrame(kind string, seq uint32, frame []byte) []byte {
	be := binary.BigEndian
	udp := func(sp, dp uint16, n int) []byte { // a UDP header for n bytes after it
		return be.AppendUint16(be.AppendUint16(be.AppendUint16(be.AppendUint16(nil, sp), dp), uint16(8+n)), 0)
	}
	// PPP with address and control bytes, and IPv4's or IPv6's protocol.
	ppp := []byte{0xff, 0x03, 0x00, 0x21}
	if be.Uint16(frame[12:]) == 0x86dd {
		ppp[3] = 0x57
	}
	var encap []byte
	proto := byte(pkthdr.ProtoGRE)
	switch kind {
	case "erspan":
		// GRE with a sequence number, protocol 0x88be; ERSPAN II: version
		// 1, VLAN 0, session 7, index 0.
		encap = be.AppendUint32([]byte{0x10, 0x00, 0x88, 0xbe}, seq)
		encap = append(encap, 0x10, 0x00, 0x00, 0x07, 0, 0, 0, 0)
	case "vxlan":
		proto = pkthdr.ProtoUDP
		encap = append(udp(49153, pkthdr.PortVXLAN, 8+len(frame)), 0x08, 0, 0, 0, 0, 0, 0x2a, 0) // VNI 42
	case "vxlan-gpe":
		proto = pkthdr.ProtoUDP
		encap = append(udp(49153, pkthdr.PortVXLANGPE, 8+len(frame)), 0x0c, 0, 0, 3, 0, 0, 0x2a, 0) // I and P, Ethernet, VNI 42
	case "gtpu":
		proto, frame = pkthdr.ProtoUDP, frame[14:]
		encap = append(udp(pkthdr.PortGTPU, pkthdr.PortGTPU, 8+len(frame)), 0x30, 0xff, byte(len(frame)>>8), byte(len(frame)), 0, 0, 0, 0x2a) // G-PDU, TEID 42
	case "l2tp":
		proto, frame = pkthdr.ProtoUDP, frame[14:]
		encap = append(append(udp(pkthdr.PortL2TP, pkthdr.PortL2TP, 6+len(ppp)+len(frame)), 0x00, 0x02, 0, 7, 0, 9), ppp...) // data, tunnel 7, session 9
	case "pptp":
		frame = frame[14:]
		// Key (payload length, call ID 7) and sequence number present,
		// version 1, PPP.
		encap = be.AppendUint16([]byte{0x30, 0x01, 0x88, 0x0b}, uint16(len(ppp)+len(frame)))
		encap = be.AppendUint32(be.AppendUint16(encap, 7), seq)
		encap = append(encap, ppp...)
	}
	n := 20 + len(encap) + len(frame)
	ip := []byte{0x45, 0, byte(n >> 8), byte(n), byte(seq >> 8), byte(seq), 0x40, 0, 64, proto, 0, 0}
	ip = append(append(ip, mirrorSrc[:]...), mirrorDst[:]...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(be.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	be.PutUint16(ip[10:], ^uint16(sum))
	out := []byte{0x00, 0x1b, 0x54, 0, 0, 2, 0x00, 0x1b, 0x54, 0, 0, 1, 0x08, 0x00}
	return append(append(append(out, ip...), encap...), frame...)
}

// wrapPcap rewrites an Ethernet capture with every frame wrapped, and
// returns how many frames it wrote.
func wrapPcap(t *testing.T, kind, in, out string) int {
	t.Helper()
	return rewritePcap(t, in, out, pkthdr.LinkEthernet, func(n int, frame []byte) []byte {
		if et := binary.BigEndian.Uint16(frame[12:]); (kind == "gtpu" || kind == "l2tp" || kind == "pptp") && et != 0x0800 && et != 0x86dd {
			t.Fatalf("frame %d is not IP over untagged Ethernet (EtherType %#04x): %s carries IP only", n, et, kind)
		}
		return wrapFrame(kind, uint32(n), frame)
	})
}

// rewritePcap writes the Ethernet capture in to out as link type lt, each
// frame passed through wrap, and returns the frames written. Only whole
// frames are rewritten: a mirror or a link sends what it saw.
func rewritePcap(t *testing.T, in, out string, lt pkthdr.LinkType, wrap func(n int, frame []byte) []byte) int {
	t.Helper()
	r, err := pcapio.OpenFile(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.LinkType() != pkthdr.LinkEthernet {
		t.Fatalf("%s: link type %d, want Ethernet", in, r.LinkType())
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	w, err := pcapio.NewWriter(bw, lt, 262144, true)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		pk, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(pk.Data) != pk.OrigLen {
			t.Fatalf("frame %d is cut (%d of %d bytes)", n, len(pk.Data), pk.OrigLen)
		}
		b := wrap(n, pk.Data)
		if err := w.WritePacket(pk.Timestamp, b, len(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// jsonlTypes keeps the JSON lines of the given types.
func jsonlTypes(out string, types ...string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		for _, typ := range types {
			if strings.Contains(line, `"type":"`+typ+`"`) {
				b.WriteString(line)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// TestTunnelledCapture: the demo's SMB/DCE-RPC intrusion and beacons,
// wrapped into ERSPAN type II, VXLAN and VXLAN-GPE as remote mirrors send
// them, and into GTP-U, L2TP and PPTP as tunnel endpoints carry IP,
// give the same replay operations and hunt findings as unwrapped; the
// store indexes inner and outer hosts, so `query --host` finds a host
// inside the tunnel as tshark does, and the tunnel endpoints too, while
// `--filter` keeps tcpdump's meaning (outer headers).
func TestTunnelledCapture(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.pcap")
	var buf bytes.Buffer
	_, err := demogen.Generate(&buf, demogen.Config{Seed: 5, Duration: 2 * time.Hour, Workstations: 10})
	if err != nil {
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
	if !strings.Contains(findings, `"kind":"channel"`) || !strings.Contains(findings, `"kind":"lateral"`) && !strings.Contains(findings, `"kind":"host"`) {
		t.Fatalf("the demo capture hunts no beacon or lateral finding:\n%s", findings)
	}
	// The busiest inside host of the intrusion: the first operation's client.
	inner := fieldOf(t, ops, "src")

	for _, kind := range []string{"erspan", "vxlan", "vxlan-gpe", "gtpu", "l2tp", "pptp"} {
		t.Run(kind, func(t *testing.T) {
			wrapped := filepath.Join(dir, kind+".pcap")
			total := wrapPcap(t, kind, plain, wrapped)

			rp, errOut, _ := runCmd(t, "replay", "--pcap", wrapped, "--format", "jsonl", "--all")
			if got := jsonlTypes(rp, "operation", "story"); got != ops {
				t.Errorf("replay differs from the unwrapped capture's (%s):\n%s", errOut, firstDiff(ops, got))
			}
			hp, _, _ := runCmd(t, "hunt", "--pcap", wrapped, "--format", "jsonl", "--top", "0")
			if got := jsonlTypes(hp, "finding"); got != findings {
				t.Errorf("hunt differs from the unwrapped capture's:\n%s", firstDiff(findings, got))
			}

			st := filepath.Join(dir, kind+"-store")
			if code, _, errOut := nwh(t, nil, "import", "--store", st, wrapped); code != exitOK {
				t.Fatalf("import: exit %d: %s", code, errOut)
			}
			want := tsharkCount(t, tshark, wrapped, "ip.addr=="+inner)
			if n := tcpdumpCount(t, wrapped, "host "+inner); n != 0 {
				t.Fatalf("tcpdump's host %s matches %d wrapped packets: the outer headers must not name it", inner, n)
			}
			t.Logf("%s: %d packets, %d of %s (tshark); %d operations, %d findings", kind, total, want, inner,
				strings.Count(ops, `"type":"operation"`), strings.Count(findings, "\n"))
			if want == 0 || want == total {
				t.Fatalf("tshark finds %d of %d packets of %s", want, total, inner)
			}
			for _, c := range []struct {
				name string
				args []string
				want int
			}{
				{"inner host", []string{"--host", inner}, want},
				{"tunnel endpoint", []string{"--host", "192.0.2.250"}, total},
				{"inner port", []string{"--port", "445"}, tsharkCount(t, tshark, wrapped, "tcp.port==445")},
				// --filter is tcpdump's: outer headers, unless it says vxlan.
				{"filter is outer: inner host", []string{"--filter", "host " + inner}, tcpdumpCount(t, wrapped, "host "+inner)},
				{"filter is outer: endpoint", []string{"--filter", "host 192.0.2.251"}, tcpdumpCount(t, wrapped, "host 192.0.2.251")},
			} {
				out := filepath.Join(dir, kind+"-q.pcap")
				args := append([]string{"query", "--store", st, "-w", out}, c.args...)
				if code, _, errOut := nwh(t, nil, args...); code != exitOK {
					t.Fatalf("%s: exit %d: %s", c.name, code, errOut)
				}
				if got := countPackets(t, out); got != c.want {
					t.Errorf("%s: query %v gives %d packets, want %d", c.name, c.args, got, c.want)
				}
			}
		})
	}
}

// fieldOf returns a string field of the first JSON line that has it.
func fieldOf(t *testing.T, jsonl, key string) string {
	t.Helper()
	i := strings.Index(jsonl, `"`+key+`":"`)
	if i < 0 {
		t.Fatalf("no %q in %s", key, jsonl)
	}
	rest := jsonl[i+len(key)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}

func tsharkCount(t *testing.T, tshark, file, filter string) int {
	t.Helper()
	out, err := exec.Command(tshark, "-n", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -Y %q: %v", filter, err)
	}
	return strings.Count(string(out), "\n")
}

// tcpdumpCount counts the packets of file that tcpdump's filter matches.
func tcpdumpCount(t *testing.T, file, filter string) int {
	t.Helper()
	// tcpdump prints a tunnelled packet on more than one line: count
	// the packets it writes.
	out := filepath.Join(t.TempDir(), "tcpdump.pcap")
	if msg, err := exec.Command(testenv.Tool(t, "tcpdump"), "-r", file, "-w", out, filter).CombinedOutput(); err != nil {
		t.Fatalf("tcpdump %q: %v: %s", filter, err, msg)
	}
	return countPackets(t, out)
}

func countPackets(t *testing.T, file string) int {
	t.Helper()
	r, err := pcapio.OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return n
		}
		n++
	}
}

// innerPackets gives, for each packet of file, the innermost conversation
// tshark decodes (with its Teredo heuristic on): "tcp|udp A:p B:q" with
// the two ends in order, or "" when the innermost header has no ports.
func innerPackets(t *testing.T, tshark, file string) []string {
	t.Helper()
	out, err := exec.Command(tshark, "-n", "-r", file, "--enable-heuristic", "teredo_udp", "-T", "fields",
		"-E", "occurrence=l", "-E", "separator=|", "-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst",
		"-e", "ipv6.src", "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var convs []string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		f := strings.Split(line, "|")
		chain := strings.Split(f[0], ":")
		last, src, dst := -1, "", ""
		for i, c := range chain {
			switch c {
			case "ip":
				last, src, dst = i, f[1], f[2]
			case "ipv6":
				last, src, dst = i, f[3], f[4]
			}
		}
		var conv string
		switch after := strings.Join(chain[last+1:], ":"); {
		case strings.HasPrefix(after, "tcp"):
			conv = convKey("tcp", src, f[5], dst, f[6])
		case strings.HasPrefix(after, "udp"):
			conv = convKey("udp", src, f[7], dst, f[8])
		}
		convs = append(convs, conv)
	}
	return convs
}

func convKey(proto, a, ap, b, bp string) string {
	x, y := a+" "+ap, b+" "+bp
	if y < x {
		x, y = y, x
	}
	return proto + "|" + x + "|" + y
}

// TestEncapImport: the scapy-built capture of conversations inside
// GTP-U, Teredo, VXLAN-GPE, PPTP, L2TP and AYIYA (testdata/encap), once
// imported, gives flow records of the inner conversations tshark decodes,
// packet for packet; `query --host` and `--port` with an inner host or
// port return the packets tshark finds for it (and tcpdump reads what the
// query wrote), `--host` with a tunnel endpoint the whole tunnel, and
// `--filter` keeps tcpdump's meaning, the outer headers.
func TestEncapImport(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	pcap := filepath.Join("..", "..", "testdata", "encap", "encap.pcap")
	dir := t.TempDir()
	st := filepath.Join(dir, "store")
	if code, _, errOut := nwh(t, nil, "import", "--store", st, pcap); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}

	// Packets per inner conversation, as tshark sees them.
	want := map[string]int{}
	for _, c := range innerPackets(t, tshark, pcap) {
		if c != "" {
			want[c]++
		}
	}
	out, errOut, code := runCmd(t, "flows", "--store", st, "--format", "jsonl")
	if code != exitOK {
		t.Fatalf("flows: exit %d: %s", code, errOut)
	}
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var fl struct {
			Type     string `json:"type"`
			Proto    string `json:"proto"`
			Orig     string `json:"orig"`
			Resp     string `json:"resp"`
			OrigPort int    `json:"orig_port"`
			RespPort int    `json:"resp_port"`
			OrigPkts int    `json:"orig_pkts"`
			RespPkts int    `json:"resp_pkts"`
		}
		if err := json.Unmarshal([]byte(line), &fl); err != nil {
			t.Fatalf("flows: %v: %s", err, line)
		}
		if fl.Type != "flow" || fl.Proto != "tcp" && fl.Proto != "udp" {
			continue
		}
		got[convKey(fl.Proto, fl.Orig, strconv.Itoa(fl.OrigPort), fl.Resp, strconv.Itoa(fl.RespPort))] += fl.OrigPkts + fl.RespPkts
	}
	if !maps.Equal(got, want) {
		t.Errorf("flows' conversations (packets):\n%v\ntshark's innermost:\n%v", got, want)
	}
	if tcp := strings.Count(fmt.Sprint(want), "tcp|"); tcp != 6 {
		t.Errorf("tshark finds %d inner TCP conversations, want one a tunnel", tcp)
	}

	for _, c := range []struct {
		name   string
		args   []string
		filter string // tshark's count of the same packets
	}{
		{"GTP-U inner host", []string{"--host", "10.201.0.2"}, "ip.addr==10.201.0.2"},
		{"GTP-U 5G inner IPv6 host", []string{"--host", "2001:db8:202::53"}, "ipv6.addr==2001:db8:202::53"},
		{"Teredo client", []string{"--host", "2001:0:c633:6417:8000:63bf:3fff:fdd2"}, "ipv6.addr==2001:0:c633:6417:8000:63bf:3fff:fdd2"},
		{"VXLAN-GPE inner net", []string{"--net", "10.205.0.0/16"}, "ip.addr==10.205.0.0/16"},
		{"PPTP inner port", []string{"--port", "3389"}, "tcp.port==3389"},
		{"L2TP inner host", []string{"--host", "10.207.1.9"}, "ip.addr==10.207.1.9"},
		{"AYIYA inner host", []string{"--host", "2001:db8:ffff::80"}, "ipv6.addr==2001:db8:ffff::80"},
		{"L2TP endpoint", []string{"--host", "198.51.100.27"}, "ip.addr==198.51.100.27"},
		{"GTP-U endpoint", []string{"--host", "192.0.2.21"}, "ip.addr==192.0.2.21"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "q.pcap")
			args := append([]string{"query", "--store", st, "-w", out}, c.args...)
			if code, _, errOut := nwh(t, nil, args...); code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			n, err := exec.Command(tshark, "-n", "-r", pcap, "--enable-heuristic", "teredo_udp", "-Y", c.filter, "-T", "fields", "-e", "frame.number").Output()
			if err != nil {
				t.Fatalf("tshark -Y %q: %v", c.filter, err)
			}
			want := strings.Count(string(n), "\n")
			if want == 0 {
				t.Fatalf("tshark finds no packet for %s", c.filter)
			}
			// Every packet of the query is an outer IPv4 one, so tcpdump's
			// "ip" reads them all.
			if got := tcpdumpCount(t, out, "ip"); got != want {
				t.Errorf("query %v: tcpdump reads %d packets, tshark finds %d (%s)", c.args, got, want, c.filter)
			}
		})
	}
	// --filter is tcpdump's: outer headers only.
	for _, f := range []string{"host 10.201.0.2", "host 198.51.100.26"} {
		out := filepath.Join(dir, "f.pcap")
		if code, _, errOut := nwh(t, nil, "query", "--store", st, "-w", out, "--filter", f); code != exitOK {
			t.Fatalf("--filter %q: exit %d: %s", f, code, errOut)
		}
		if got, want := countPackets(t, out), tcpdumpCount(t, pcap, f); got != want {
			t.Errorf("--filter %q: %d packets, tcpdump %d", f, got, want)
		}
	}
}
