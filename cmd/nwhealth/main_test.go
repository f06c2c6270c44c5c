package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// update rewrites the golden files under testdata/ (go test -update).
var update = flag.Bool("update", false, "rewrite golden files")

// TestMain lets tests run the real command in a child process (for kill -9
// and lock tests): the child is this test binary with NWHEALTH_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("NWHEALTH_TEST_MAIN") == "1" {
		code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		if os.Getenv("NWHEALTH_TEST_PEAK") == "1" {
			// The child's own peak memory: its rusage would include the
			// parent's, whose memory it shared until exec.
			if b, err := os.ReadFile("/proc/self/status"); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(l, "VmHWM:") {
						fmt.Fprintln(os.Stderr, l)
					}
				}
			}
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// nwh runs a command in-process and returns its exit code and output.
// JSON Lines output is checked against the records' schemas.
func nwh(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	if stdin == nil {
		stdin = bytes.NewReader(nil)
	}
	var out, errOut bytes.Buffer
	code := run(args, stdin, &out, &errOut)
	if jsonltest.IsJSONL(out.Bytes()) {
		jsonltest.Check(t, out.Bytes())
	}
	return code, out.String(), errOut.String()
}

// frame builds an IPv4 or IPv6 TCP/UDP frame for link type lt.
type frameSpec struct {
	lt         pkthdr.LinkType
	vlans      []uint16
	v6         bool
	src, dst   []byte
	proto      byte
	sport      uint16
	dport      uint16
	payload    int
	tcpFlags   byte
	payloadSeq byte
}

func (f frameSpec) bytes() []byte {
	var l4 []byte
	if f.proto == 6 {
		l4 = make([]byte, 20+f.payload)
		binary.BigEndian.PutUint16(l4, f.sport)
		binary.BigEndian.PutUint16(l4[2:], f.dport)
		l4[12] = 5 << 4
		l4[13] = f.tcpFlags
		for i := 20; i < len(l4); i++ {
			l4[i] = f.payloadSeq + byte(i)
		}
	} else {
		l4 = make([]byte, 8+f.payload)
		binary.BigEndian.PutUint16(l4, f.sport)
		binary.BigEndian.PutUint16(l4[2:], f.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		for i := 8; i < len(l4); i++ {
			l4[i] = f.payloadSeq ^ byte(i*7)
		}
	}
	var ip []byte
	et := uint16(0x0800)
	if f.v6 {
		et = 0x86dd
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = f.proto, 64
		copy(ip[8:], f.src)
		copy(ip[24:], f.dst)
	} else {
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		ip[8], ip[9] = 64, f.proto
		copy(ip[12:], f.src)
		copy(ip[16:], f.dst)
	}
	ip = append(ip, l4...)
	var link []byte
	switch f.lt {
	case pkthdr.LinkEthernet:
		link = []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
		for _, v := range f.vlans {
			link = binary.BigEndian.AppendUint16(link, 0x8100)
			link = binary.BigEndian.AppendUint16(link, v)
		}
		link = binary.BigEndian.AppendUint16(link, et)
	case pkthdr.LinkLinuxSLL:
		link = []byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
		link = binary.BigEndian.AppendUint16(link, et)
	case pkthdr.LinkSLL2:
		link = binary.BigEndian.AppendUint16(nil, et)
		link = append(link, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0)
	}
	return append(link, ip...)
}

// genCapture writes n frames of link type lt to a pcap (nanosecond
// timestamps when nanos) among 6 IPv4 and 3 IPv6 hosts, 2 ms apart
// starting at start; every 7th Ethernet frame has a VLAN tag, every 11th a
// QinQ pair.
func genCapture(t *testing.T, path string, lt pkthdr.LinkType, n int, start time.Time, nanos bool) []pcapio.Packet {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapio.NewWriter(&buf, lt, 65535, nanos)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []pcapio.Packet
	for i := 0; i < n; i++ {
		f := frameSpec{lt: lt, proto: 6, sport: uint16(40000 + i%97), dport: []uint16{443, 80, 53, 445, 123}[i%5], payload: (i * 37) % 700, tcpFlags: 0x18, payloadSeq: byte(i)}
		if f.dport == 53 || f.dport == 123 {
			f.proto = 17
		}
		if i%9 == 4 {
			f.v6 = true
			f.src = netip16(byte(1 + i%3))
			f.dst = netip16(0x80)
		} else {
			f.src = []byte{10, 0, 0, byte(1 + i%6)}
			f.dst = []byte{192, 0, 2, byte(10 + i%4)}
		}
		if i%2 == 1 { // replies
			f.src, f.dst = f.dst, f.src
			f.sport, f.dport = f.dport, f.sport
		}
		if lt == pkthdr.LinkEthernet && i%7 == 3 {
			f.vlans = []uint16{100 + uint16(i%2)}
		}
		if lt == pkthdr.LinkEthernet && i%11 == 5 {
			f.vlans = []uint16{200, 300}
		}
		ts := start.Add(time.Duration(i) * 2 * time.Millisecond)
		if !nanos {
			ts = ts.Truncate(time.Microsecond)
		}
		data := f.bytes()
		w.WritePacket(ts, data, len(data))
		pkts = append(pkts, pcapio.Packet{Timestamp: ts, LinkType: lt, Data: data, OrigLen: len(data)})
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return pkts
}

func netip16(last byte) []byte {
	b := make([]byte, 16)
	copy(b, []byte{0x20, 0x01, 0x0d, 0xb8})
	b[15] = last
	return b
}

// readCapture reads every packet of a pcap/pcapng file or byte slice.
func readCapture(t *testing.T, in []byte) []pcapio.Packet {
	t.Helper()
	r, err := pcapio.NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatalf("read capture: %v", err)
	}
	defer r.Close()
	var out []pcapio.Packet
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		p.Data = bytes.Clone(p.Data)
		p.Offset = 0
		out = append(out, p)
	}
}

func comparePackets(t *testing.T, what string, got, want []pcapio.Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d packets, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Timestamp.Equal(w.Timestamp) || !bytes.Equal(g.Data, w.Data) || g.OrigLen != w.OrigLen {
			t.Fatalf("%s: packet %d differs: %v/%d bytes vs %v/%d bytes", what, i, g.Timestamp, len(g.Data), w.Timestamp, len(w.Data))
		}
	}
}

func tempStore(t *testing.T) string {
	return filepath.Join(t.TempDir(), "store")
}

func TestSubcommandNames(t *testing.T) {
	// A run builds only the command its first argument names, found by
	// the registered name: it must be the command's own.
	for _, sc := range subcommands {
		if got := sc.build(streams{}).Name(); got != sc.name {
			t.Errorf("subcommand registered as %q is named %q", sc.name, got)
		}
	}
	code, out, _ := nwh(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, sc := range subcommands {
		if !bytes.Contains([]byte(out), []byte("\n  "+sc.name+" ")) {
			t.Errorf("--help does not list %s:\n%s", sc.name, out)
		}
	}
	// Help for one command, and a misspelt one with cobra's suggestion.
	if code, out, _ := nwh(t, nil, "query", "--help"); code != 0 || !bytes.Contains([]byte(out), []byte("--host")) {
		t.Errorf("query --help: exit %d\n%s", code, out)
	}
	if code, _, errOut := nwh(t, nil, "qeury"); code != 2 || !bytes.Contains([]byte(errOut), []byte("query")) {
		t.Errorf("qeury: exit %d, want 2 and a suggestion\n%s", code, errOut)
	}
}
