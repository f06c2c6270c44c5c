package pcapio

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// testPackets returns n small Ethernet/IPv4/UDP frames with distinct ports
// and increasing nanosecond timestamps.
func testPackets(n int) []Packet {
	base := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	out := make([]Packet, n)
	for i := range out {
		f := make([]byte, 14+20+8+i%50)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
		ip[8] = 64
		ip[9] = 17
		copy(ip[12:], []byte{10, 0, 0, byte(1 + i%7)})
		copy(ip[16:], []byte{10, 0, 1, 1})
		binary.BigEndian.PutUint16(ip[20:], uint16(40000+i))
		binary.BigEndian.PutUint16(ip[22:], 53)
		binary.BigEndian.PutUint16(ip[24:], uint16(8+i%50))
		out[i] = Packet{Timestamp: base.Add(time.Duration(i) * 1234567 * time.Nanosecond), LinkType: pkthdr.LinkEthernet, Data: f, OrigLen: len(f) + i%3}
	}
	return out
}

// pcapBytes encodes packets as pcap with the given byte order and resolution.
func pcapBytes(pkts []Packet, order binary.ByteOrder, nanos bool) []byte {
	bo := order.(binary.AppendByteOrder)
	var b []byte
	magic := uint32(magicMicros)
	if nanos {
		magic = magicNanos
	}
	b = bo.AppendUint32(b, magic)
	b = bo.AppendUint16(b, 2)
	b = bo.AppendUint16(b, 4)
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint32(b, 65535)
	b = bo.AppendUint32(b, 1)
	for _, p := range pkts {
		frac := uint32(p.Timestamp.Nanosecond())
		if !nanos {
			frac /= 1000
		}
		b = bo.AppendUint32(b, uint32(p.Timestamp.Unix()))
		b = bo.AppendUint32(b, frac)
		b = bo.AppendUint32(b, uint32(len(p.Data)))
		b = bo.AppendUint32(b, uint32(p.OrigLen))
		b = append(b, p.Data...)
	}
	return b
}

// pcapngBytes writes two interfaces (Ethernet at µs, raw IP at a binary
// 2^-20 resolution) in big-endian, alternating packets between them, with
// a statistics block in between to be skipped.
func pcapngBytes(pkts []Packet) []byte {
	bo := binary.BigEndian
	var b []byte
	block := func(t uint32, body []byte) {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		n := uint32(12 + len(body))
		b = bo.AppendUint32(b, t)
		b = bo.AppendUint32(b, n)
		b = append(b, body...)
		b = bo.AppendUint32(b, n)
	}
	var shb []byte
	shb = bo.AppendUint32(shb, ngByteOrder)
	shb = bo.AppendUint16(shb, 1)
	shb = bo.AppendUint16(shb, 0)
	shb = bo.AppendUint64(shb, ^uint64(0))
	block(ngSHB, shb)
	idb := func(lt uint16, tsresol byte) {
		var x []byte
		x = bo.AppendUint16(x, lt)
		x = bo.AppendUint16(x, 0)
		x = bo.AppendUint32(x, 0)
		if tsresol != 0 {
			x = bo.AppendUint16(x, 9)
			x = bo.AppendUint16(x, 1)
			x = append(x, tsresol, 0, 0, 0)
		}
		x = bo.AppendUint32(x, 0)
		block(1, x)
	}
	idb(1, 0)
	idb(101, 0x80|20)
	for i, p := range pkts {
		iface := uint32(i % 2)
		var ts uint64
		data := p.Data
		if iface == 0 {
			ts = uint64(p.Timestamp.UnixMicro())
		} else {
			ts = uint64(p.Timestamp.Unix())<<20 | uint64(p.Timestamp.Nanosecond())*(1<<20)/1e9
			data = data[14:]
		}
		var x []byte
		x = bo.AppendUint32(x, iface)
		x = bo.AppendUint32(x, uint32(ts>>32))
		x = bo.AppendUint32(x, uint32(ts))
		x = bo.AppendUint32(x, uint32(len(data)))
		x = bo.AppendUint32(x, uint32(len(data)))
		x = append(x, data...)
		block(6, x)
		if i == 3 {
			block(5, make([]byte, 12)) // interface statistics
		}
	}
	return b
}

func readAll(t *testing.T, in []byte) ([]Packet, []*CorruptError) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	var pkts []Packet
	var bad []*CorruptError
	for {
		p, err := r.Next()
		if err == io.EOF {
			return pkts, bad
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			bad = append(bad, ce)
			if len(bad) > 1000 {
				t.Fatal("endless corruption errors")
			}
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		p.Data = append([]byte(nil), p.Data...)
		pkts = append(pkts, p)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(b []byte) []byte {
	e, _ := zstd.NewWriter(nil)
	return e.EncodeAll(b, nil)
}

func TestReadFormats(t *testing.T) {
	want := testPackets(40)
	cases := []struct {
		name  string
		in    []byte
		resol time.Duration // timestamps compared at this resolution
		ng    bool
	}{
		{"pcap-le-micro", pcapBytes(want, binary.LittleEndian, false), time.Microsecond, false},
		{"pcap-be-micro", pcapBytes(want, binary.BigEndian, false), time.Microsecond, false},
		{"pcap-le-nano", pcapBytes(want, binary.LittleEndian, true), time.Nanosecond, false},
		{"pcap-be-nano", pcapBytes(want, binary.BigEndian, true), time.Nanosecond, false},
		{"pcap-gzip", gz(pcapBytes(want, binary.LittleEndian, true)), time.Nanosecond, false},
		{"pcap-zstd", zst(pcapBytes(want, binary.BigEndian, false)), time.Microsecond, false},
		{"pcapng-two-ifaces", pcapngBytes(want), time.Microsecond, true},
		{"pcapng-zstd", zst(pcapngBytes(want)), time.Microsecond, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, bad := readAll(t, c.in)
			if len(bad) != 0 {
				t.Fatalf("unexpected damage: %v", bad[0])
			}
			if len(got) != len(want) {
				t.Fatalf("got %d packets, want %d", len(got), len(want))
			}
			for i := range want {
				w, g := want[i], got[i]
				wd, wlt, wlen := w.Data, pkthdr.LinkEthernet, w.OrigLen
				if c.ng {
					wlen = len(w.Data)
					if i%2 == 1 {
						wd, wlt, wlen = w.Data[14:], pkthdr.LinkRaw, len(w.Data)-14
					}
					if g.Interface != i%2 {
						t.Errorf("packet %d: interface %d", i, g.Interface)
					}
				}
				if !bytes.Equal(g.Data, wd) || g.LinkType != wlt || g.OrigLen != wlen {
					t.Fatalf("packet %d: got lt=%d len=%d orig=%d, want lt=%d len=%d orig=%d", i, g.LinkType, len(g.Data), g.OrigLen, wlt, len(wd), wlen)
				}
				// Binary-fraction timestamps round; allow one microsecond.
				if d := g.Timestamp.Sub(w.Timestamp.Truncate(c.resol)); d < -time.Microsecond || d > time.Microsecond {
					t.Fatalf("packet %d: time %v, want %v", i, g.Timestamp, w.Timestamp)
				}
			}
		})
	}
}

func TestReadDamage(t *testing.T) {
	pkts := testPackets(30)
	good := pcapBytes(pkts, binary.LittleEndian, false)
	recOff := func(i int) int { // byte offset of record i
		off := 24
		for j := 0; j < i; j++ {
			off += 16 + len(pkts[j].Data)
		}
		return off
	}
	cases := []struct {
		name      string
		in        []byte
		wantPkts  int // at least this many recovered
		wantFirst int64
	}{
		{"truncated-last-record", good[:len(good)-5], 29, int64(recOff(29))},
		{"truncated-header", good[:recOff(29)+7], 29, int64(recOff(29))},
		{"hostile-caplen", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[recOff(10)+8:], 0xfffffff0)
			return b
		}(), 29, int64(recOff(10))},
		{"garbage-inserted", func() []byte {
			b := append([]byte(nil), good[:recOff(12)]...)
			b = append(b, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x01}, 40)...)
			return append(b, good[recOff(12):]...)
		}(), 30, int64(recOff(12))},
		{"zeroed-region", func() []byte {
			b := bytes.Clone(good)
			clear(b[recOff(5)+3 : recOff(7)+10])
			return b
		}(), 27, int64(recOff(5))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, bad := readAll(t, c.in)
			if len(bad) == 0 {
				t.Fatal("damage not reported")
			}
			if bad[0].Offset != c.wantFirst {
				t.Errorf("first damage at %d, want %d (%v)", bad[0].Offset, c.wantFirst, bad[0])
			}
			if len(got) < c.wantPkts {
				t.Errorf("recovered %d packets, want >= %d", len(got), c.wantPkts)
			}
			// Whatever was recovered must be real packets, in order.
			seen := map[string]bool{}
			for _, p := range pkts {
				seen[string(p.Data)] = true
			}
			for i, p := range got {
				if !seen[string(p.Data)] {
					t.Fatalf("recovered packet %d is not one of the originals", i)
				}
			}
		})
	}
}

func TestReadNgDamage(t *testing.T) {
	good := pcapngBytes(testPackets(20))
	b := bytes.Clone(good)
	// Break the length of a block in the middle: trailer no longer matches.
	idx := bytes.Index(b[200:], []byte{0, 0, 0, 6}) + 200
	binary.BigEndian.PutUint32(b[idx+4:], 0x7ffffff0)
	got, bad := readAll(t, b)
	if len(bad) == 0 || bad[0].Offset != int64(idx) {
		t.Fatalf("damage = %v, want one at %d", bad, idx)
	}
	if len(got) != 19 {
		t.Errorf("recovered %d packets, want 19", len(got))
	}
	got, bad = readAll(t, good[:len(good)-9])
	if len(bad) != 1 || len(got) != 19 {
		t.Errorf("truncated pcapng: %d packets, %d errors; want 19 and 1", len(got), len(bad))
	}
}

func TestUnknownFormat(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("ab"), []byte("hello world, not a capture")} {
		if _, err := NewReader(bytes.NewReader(in)); !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("%q: err = %v, want ErrUnknownFormat", in, err)
		}
	}
}

func TestWriterRoundTrip(t *testing.T) {
	pkts := testPackets(25)
	for _, nanos := range []bool{false, true} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, pkthdr.LinkEthernet, 65535, nanos)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if err := w.WritePacket(p.Timestamp, p.Data, p.OrigLen); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(buf.Bytes(), pcapBytes(pkts, binary.LittleEndian, nanos)) {
			t.Errorf("nanos=%v: writer output differs from the reference encoding", nanos)
		}
	}
	var buf bytes.Buffer
	w, err := NewNgWriter(&buf, []pkthdr.LinkType{pkthdr.LinkEthernet, pkthdr.LinkRaw}, 65535)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		d := p.Data
		if i%2 == 1 {
			d = d[14:]
		}
		w.WritePacket(i%2, p.Timestamp, d, len(d))
	}
	got, bad := readAll(t, buf.Bytes())
	if len(bad) != 0 || len(got) != len(pkts) {
		t.Fatalf("pcapng round trip: %d packets, %d errors", len(got), len(bad))
	}
	for i := range got {
		if !got[i].Timestamp.Equal(pkts[i].Timestamp) || got[i].Interface != i%2 {
			t.Fatalf("packet %d: %v iface %d", i, got[i].Timestamp, got[i].Interface)
		}
	}
}

// TestAgainstTcpdump reads generated captures and compares every packet's
// timestamp and lengths with what tcpdump prints. It needs no shared data.
func TestAgainstTcpdump(t *testing.T) {
	tcpdump := testenv.Tool(t, "tcpdump")
	dir := t.TempDir()
	files := map[string][]byte{
		"le-micro.pcap": pcapBytes(testPackets(50), binary.LittleEndian, false),
		"be-nano.pcap":  pcapBytes(testPackets(50), binary.BigEndian, true),
		// (tcpdump refuses pcapng mixing link types; TestReadFormats covers it.)
	}
	var paths []string
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	compareWithTcpdump(t, tcpdump, paths)
}

// TestAgainstTcpdumpShared is TestAgainstTcpdump on every shared capture.
func TestAgainstTcpdumpShared(t *testing.T) {
	tcpdump := testenv.Tool(t, "tcpdump")
	shared, _ := filepath.Glob(filepath.Join(testenv.SharedDir(t), "pcaps", "*", "*.pcap*"))
	more, _ := filepath.Glob(filepath.Join(testenv.SharedDir(t), "pcaps", "*", "*", "*.*cap*"))
	paths := append(shared, more...)
	if len(paths) < 8 {
		t.Fatalf("only %d shared captures found", len(paths))
	}
	compareWithTcpdump(t, tcpdump, paths)
}

func compareWithTcpdump(t *testing.T, tcpdump string, paths []string) {
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			cmd := exec.Command(tcpdump, "-r", p, "-nn", "-tt", "--time-stamp-precision=nano", "-q", "-e")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			// tcpdump exits 1 on a truncated last record, after printing the rest.
			truncated := strings.Contains(stderr.String(), "truncated")
			if err != nil && !truncated {
				t.Fatalf("tcpdump: %v: %s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got, bad := readAll(t, raw)
			if truncated != (len(bad) != 0) {
				t.Fatalf("tcpdump truncated=%v (%s), we reported %v", truncated, strings.TrimSpace(stderr.String()), bad)
			}
			if len(got) != len(lines) {
				t.Fatalf("%d packets, tcpdump saw %d", len(got), len(lines))
			}
			for i, l := range lines {
				ts := strings.Fields(l)[0]
				if want := fmt.Sprintf("%d.%09d", got[i].Timestamp.Unix(), got[i].Timestamp.Nanosecond()); ts != want {
					// tcpdump converts binary fractions with its own rounding.
					if got[i].LinkType != pkthdr.LinkRaw {
						t.Fatalf("packet %d: time %s, tcpdump %s", i, want, ts)
					}
				}
			}
		})
	}
}

// bigPackets returns small packets with a few large ones among them:
// longer than libpcap's 262,144 bytes and than the read buffer, up to
// and past MaxRecord.
func bigPackets(sizes ...int) []Packet {
	pkts := testPackets(2 * len(sizes))
	for i, n := range sizes {
		p := &pkts[2*i+1]
		d := make([]byte, n)
		copy(d, p.Data)
		for j := len(p.Data); j < n; j++ {
			d[j] = byte(j*31 + i)
		}
		p.Data, p.OrigLen = d, n+7
	}
	return pkts
}

// TestReadLargeRecords: packets up to MaxRecord are read whole, from pcap
// (any compression) and pcapng; a longer one is cut to MaxRecord and named
// in Cut with its offset.
func TestReadLargeRecords(t *testing.T) {
	pkts := bigPackets(300000, 3<<20, MaxRecord, MaxRecord+1000)
	raw := pcapBytes(pkts, binary.LittleEndian, true)
	binary.LittleEndian.PutUint32(raw[16:], 64<<20) // snaplen: the file claims them
	for name, in := range map[string][]byte{"pcap": raw, "gzip": gz(raw), "zstd": zst(raw)} {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		var got []Packet
		for {
			p, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			p.Data = bytes.Clone(p.Data)
			got = append(got, p)
		}
		if len(got) != len(pkts) {
			t.Fatalf("%s: %d packets of %d", name, len(got), len(pkts))
		}
		off := int64(24)
		for i := range pkts {
			want := pkts[i].Data
			if len(want) > MaxRecord {
				want = want[:MaxRecord]
				if len(r.Cut) != 1 || r.Cut[0].Offset != off {
					t.Errorf("%s: cut %v, want one at %d", name, r.Cut, off)
				}
			}
			if !bytes.Equal(got[i].Data, want) || got[i].OrigLen != pkts[i].OrigLen || got[i].Offset != off {
				t.Fatalf("%s: packet %d: %d bytes (want %d), orig %d, offset %d (want %d)", name, i, len(got[i].Data), len(want), got[i].OrigLen, got[i].Offset, off)
			}
			off += 16 + int64(len(pkts[i].Data))
		}
		r.Close()
	}
	ng := bigPackets(300000, 3<<20)
	got, bad := readAll(t, pcapngBytes(ng))
	if len(bad) != 0 || len(got) != len(ng) {
		t.Fatalf("pcapng: %d packets, damage %v", len(got), bad)
	}
	for i := range ng {
		want := ng[i].Data
		if i%2 == 1 { // the raw-IP interface drops the Ethernet header
			want = want[14:]
		}
		if !bytes.Equal(got[i].Data, want) {
			t.Errorf("pcapng packet %d: %d bytes, want %d", i, len(got[i].Data), len(want))
		}
	}
}

// TestReadNgLargeLengthDamage: a pcapng block length damaged into a large,
// well-formed value is found out by its trailer, and the bytes read past
// the buffer to check it are searched again: one packet is lost, not the
// megabytes after it.
func TestReadNgLargeLengthDamage(t *testing.T) {
	pkts := testPackets(400)
	for i := range pkts {
		pkts[i].Data = append(pkts[i].Data, make([]byte, 5000)...)
	}
	good := pcapngBytes(pkts)
	b := bytes.Clone(good)
	idx := bytes.Index(b[20000:], []byte{0, 0, 0, 6}) + 20000
	binary.BigEndian.PutUint32(b[idx+4:], 4<<20)
	got, bad := readAll(t, b)
	if len(bad) == 0 || bad[0].Offset != int64(idx) {
		t.Fatalf("damage %v, want at %d", bad, idx)
	}
	if len(got) != len(pkts)-1 {
		t.Errorf("%d packets of %d", len(got), len(pkts))
	}
}

// TestReadSmallBuffer reads the same inputs, intact and damaged, with the
// reader's buffer at its size and at 64 bytes, where every record takes
// the path of those longer than the buffer: the packets and the damage
// reported are the same.
func TestReadSmallBuffer(t *testing.T) {
	pkts := testPackets(60)
	ng := pcapngBytes(pkts)
	badLen := bytes.Clone(ng)
	idx := bytes.Index(badLen[300:], []byte{0, 0, 0, 6}) + 300
	binary.BigEndian.PutUint32(badLen[idx+4:], 2048)
	p := pcapBytes(pkts, binary.LittleEndian, true)
	badRec := bytes.Clone(p)
	badRec[24+16+70+3] ^= 0xff
	for name, in := range map[string][]byte{"pcap": p, "pcapng": ng, "pcapng bad length": badLen, "pcap damaged": badRec, "pcap cut": p[:len(p)-9], "pcapng cut": ng[:len(ng)-9]} {
		want, wantBad := readAll(t, in)
		func() {
			defer func(n int) { readBuffer = n }(readBuffer)
			readBuffer = 64
			got, gotBad := readAll(t, in)
			if len(got) != len(want) || len(gotBad) != len(wantBad) {
				t.Fatalf("%s: %d packets and %d damages with a small buffer, %d and %d without", name, len(got), len(gotBad), len(want), len(wantBad))
			}
			for i := range want {
				if !bytes.Equal(got[i].Data, want[i].Data) || got[i].Offset != want[i].Offset {
					t.Fatalf("%s: packet %d differs", name, i)
				}
			}
			for i := range wantBad {
				if *gotBad[i] != *wantBad[i] {
					t.Errorf("%s: damage %d: %v, want %v", name, i, gotBad[i], wantBad[i])
				}
			}
		}()
	}
}

// TestUnsupportedLinkType: a pcap file of a link type nwhealth does not
// read fails to open, naming the type; in pcapng such an interface is
// named once, at its first packet, its packets are skipped and counted,
// and the other interfaces' packets are all read.
func TestUnsupportedLinkType(t *testing.T) {
	one := testPackets(1)
	b := pcapBytes(one, binary.LittleEndian, false)
	binary.LittleEndian.PutUint32(b[20:], 147)
	_, err := NewReader(bytes.NewReader(b))
	var ul *UnsupportedLinkError
	if !errors.As(err, &ul) || ul.LinkType != 147 || !strings.Contains(err.Error(), "link type 147 not supported") {
		t.Fatalf("pcap of link type 147: %v", err)
	}

	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "links", "unsupported.pcapng"))
	if len(files) != 1 {
		t.Fatal("testdata/links/unsupported.pcapng missing")
	}
	in, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var pkts int
	var bad []*CorruptError
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			bad = append(bad, ce)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.LinkType != pkthdr.LinkEthernet {
			t.Errorf("packet of link type %d handed out", p.LinkType)
		}
		pkts++
	}
	if pkts != 2 || len(bad) != 1 || r.SkippedPackets != 2 {
		t.Fatalf("%d packets, %d errors %v, %d skipped; want 2, one, 2", pkts, len(bad), bad, r.SkippedPackets)
	}
	if !strings.Contains(bad[0].Reason, "interface 1: link type 147 not supported") {
		t.Errorf("reason %q does not name the interface and type", bad[0].Reason)
	}
}
