package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

func codec(t testing.TB) (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc, dec
}

// build adds random keys to 300 blocks and returns the builder with the
// expected postings.
func build(seed int64) (*Builder, map[Key][]uint32) {
	rng := rand.New(rand.NewSource(seed))
	b := NewBuilder()
	want := map[Key][]uint32{}
	pool := []Key{Proto(6), Proto(17), VLAN(100), EtherType(0x0806)}
	for i := 0; i < 200; i++ {
		pool = append(pool, Addr(netip.AddrFrom4([4]byte{10, 0, byte(i / 50), byte(i)})))
	}
	for i := 0; i < 30; i++ {
		pool = append(pool, Addr(netip.MustParseAddr("2001:db8::1").Next()), Port(uint16(rng.Intn(65536))))
	}
	for blk := uint32(0); blk < 300; blk++ {
		seen := map[Key]bool{}
		for p := 0; p < 40; p++ {
			keys := []Key{pool[rng.Intn(len(pool))], pool[rng.Intn(len(pool))], pool[rng.Intn(len(pool))]}
			b.Add(keys)
			if p%7 == 0 {
				b.Add(keys) // a repeated packet takes the fast path
			}
			for _, k := range keys {
				if !seen[k] {
					seen[k] = true
					want[k] = append(want[k], blk)
				}
			}
		}
		b.EndBlock(int64(blk)*10, int64(blk)*10+9)
	}
	return b, want
}

func TestRoundTrip(t *testing.T) {
	enc, dec := codec(t)
	b, want := build(1)
	ix, err := Open(b.Encode(enc), dec)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Blocks != 300 || ix.First != 0 || ix.Last != 2999 {
		t.Fatalf("header: blocks %d first %d last %d", ix.Blocks, ix.First, ix.Last)
	}
	// Every key, an absent one, and a /24 range as the union of its
	// addresses' postings.
	lookupAll(t, ix, want)
}

// TestCompressedBody: large bodies are stored compressed (header flag
// clear); such an index reads the same.
func TestCompressedBody(t *testing.T) {
	enc, dec := codec(t)
	b, want := build(5)
	raw := b.Encode(enc)
	if binary.LittleEndian.Uint16(raw[6:])&flagRawBody == 0 {
		t.Fatal("a small index body should be stored raw")
	}
	stored := enc.EncodeAll(raw[headerLen:], nil)
	h := bytes.Clone(raw[:headerLen])
	binary.LittleEndian.PutUint16(h[6:], 0)
	putHeader(h, 300, binary.LittleEndian.Uint32(raw[12:]), uint32(len(raw)-headerLen), stored)
	want0 := append(h, stored...)
	ix, err := Open(want0, dec)
	if err != nil {
		t.Fatal(err)
	}
	lookupAll(t, ix, want)
	// Encode itself compresses a body over rawBodyMax the same way.
	defer func(m int) { rawBodyMax = m }(rawBodyMax)
	rawBodyMax = 1 << 10
	b, _ = build(5)
	if got := b.Encode(enc); !bytes.Equal(got, want0) {
		t.Fatalf("Encode over rawBodyMax: %d bytes, want %d", len(got), len(want0))
	}
}

func TestSetAlgebra(t *testing.T) {
	cases := []struct{ a, b, union, inter []uint32 }{
		{[]uint32{1, 3, 5}, []uint32{2, 3, 6}, []uint32{1, 2, 3, 5, 6}, []uint32{3}},
		{nil, []uint32{1}, []uint32{1}, []uint32{}},
		{[]uint32{0, 9}, []uint32{0, 9}, []uint32{0, 9}, []uint32{0, 9}},
	}
	for _, c := range cases {
		if got := Union(c.a, c.b); !slices.Equal(got, c.union) {
			t.Errorf("Union(%v,%v) = %v", c.a, c.b, got)
		}
		if got := Intersect(c.a, c.b); !slices.Equal(got, c.inter) {
			t.Errorf("Intersect(%v,%v) = %v", c.a, c.b, got)
		}
	}
}

func TestDamage(t *testing.T) {
	enc, dec := codec(t)
	b, _ := build(2)
	good := b.Encode(enc)
	cases := []struct {
		name string
		mut  func([]byte) []byte
		want error
	}{
		{"short", func(x []byte) []byte { return x[:20] }, ErrNotIndex},
		{"magic", func(x []byte) []byte { x[0] = 'X'; return x }, ErrNotIndex},
		{"header-crc", func(x []byte) []byte { x[9]++; return x }, ErrCorrupt},
		{"body-flip", func(x []byte) []byte { x[len(x)-3] ^= 0x40; return x }, ErrCorrupt},
		{"truncated-body", func(x []byte) []byte { return x[:len(x)-10] }, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(c.mut(bytes.Clone(good)), dec)
			if !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// checkLookups looks up a few keys of an index opened from fuzzed bytes:
// errors are fine, panics are not, and postings must increase and stay
// below the block count.
func checkLookups(t *testing.T, ix *Index) {
	for _, k := range []Key{Port(80), Proto(6), Addr(netip.MustParseAddr("10.0.0.1"))} {
		l, err := ix.Lookup(k)
		if err != nil {
			continue
		}
		for i, v := range l {
			if int(v) >= ix.Blocks || (i > 0 && v <= l[i-1]) {
				t.Fatalf("posting %v invalid for %d blocks", l, ix.Blocks)
			}
		}
	}
	ix.Range(KindIPv4, [16]byte{}, [16]byte{255, 255, 255, 255})
}

func FuzzOpen(f *testing.F) {
	enc, dec := codec(f)
	b, _ := build(3)
	f.Add(b.Encode(enc))
	small := NewBuilder()
	small.Add([]Key{Port(80), Proto(6)})
	small.EndBlock(1, 2)
	f.Add(small.Encode(enc))
	f.Add(floodBuilder(3000, 100).Encode(enc))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := Open(data, dec)
		if err != nil {
			return
		}
		checkLookups(t, ix)
		sameAsOpenAt(t, ix, data)
	})
}

// sameAsOpenAt: an index that Open accepts (it checks every byte) reads
// the same through OpenAt, key for key, without errors.
func sameAsOpenAt(t *testing.T, ix *Index, data []byte) {
	at, err := OpenAt(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatalf("Open accepts, OpenAt: %v", err)
	}
	for kind := range ix.sects {
		var all [16]byte
		for i := range all {
			all[i] = 0xff
		}
		want, err := ix.Range(kind, [16]byte{}, all)
		if err != nil {
			t.Fatalf("kind %d: Open's Range: %v", kind, err)
		}
		got, err := at.Range(kind, [16]byte{}, all)
		if err != nil || len(got) != len(want) {
			t.Fatalf("kind %d: OpenAt's Range: %d lists (%v), Open's %d", kind, len(got), err, len(want))
		}
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Fatalf("kind %d key %d: OpenAt %v, Open %v", kind, i, got[i], want[i])
			}
		}
	}
}

// FuzzOpenBody reaches the body decoder past the checksums, which random
// bytes rarely satisfy: the fuzzer mutates a body and the test frames it.
func FuzzOpenBody(f *testing.F) {
	enc, dec := codec(f)
	b, _ := build(4)
	good := b.Encode(enc)
	body := good[headerLen:]
	f.Add(body, uint32(300), uint32(4))
	f.Fuzz(func(t *testing.T, body []byte, blocks, sects uint32) {
		stored := body // the header copied from good says the body is raw
		h := bytes.Clone(good[:headerLen])
		putHeader(h, blocks, sects%300, uint32(len(body)), stored)
		ix, err := Open(append(h, stored...), dec)
		if err != nil {
			return
		}
		for k := range ix.sects {
			ix.Range(k, [16]byte{}, [16]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255})
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r       *bytes.Reader
	bytes   int
	reads   int
	lastOff int // the last read's offset
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.bytes += len(p)
	c.reads++
	c.lastOff = int(off)
	return c.r.ReadAt(p, off)
}

// lookupAll looks up every key of want and a /24 range in ix.
func lookupAll(t *testing.T, ix *Index, want map[Key][]uint32) {
	t.Helper()
	for k, w := range want {
		got, err := ix.Lookup(k)
		if err != nil || !slices.Equal(got, w) {
			t.Fatalf("key %v: got %v (%v), want %v", k, got, err, w)
		}
	}
	if got, err := ix.Lookup(Addr(netip.MustParseAddr("192.168.1.1"))); got != nil || err != nil {
		t.Errorf("absent key: %v %v", got, err)
	}
	lists, err := ix.Range(KindIPv4, [16]byte{10, 0, 1, 0}, [16]byte{10, 0, 1, 255})
	if err != nil {
		t.Fatal(err)
	}
	var direct [][]uint32
	for i := 50; i < 100; i++ {
		direct = append(direct, want[Addr(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}))])
	}
	if !slices.Equal(Union(lists...), Union(direct...)) {
		t.Errorf("range union differs from the direct union")
	}
}

// OpenAt answers as Open does, reading the directory, then one key table
// and the postings of each lookup: not the whole file.
func TestOpenAt(t *testing.T) {
	enc, _ := codec(t)
	b, want := build(1)
	file := b.Encode(enc)
	cr := &countingReader{r: bytes.NewReader(file)}
	ix, err := OpenAt(cr, int64(len(file)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Blocks != 300 || ix.First != 0 || ix.Last != 2999 {
		t.Fatalf("header: blocks %d first %d last %d", ix.Blocks, ix.First, ix.Last)
	}
	k := Addr(netip.AddrFrom4([4]byte{10, 0, 1, 60}))
	got, err := ix.Lookup(k)
	if err != nil || !slices.Equal(got, want[k]) {
		t.Fatalf("lookup: %v %v", got, err)
	}
	// The header read, the IPv4 key table (200 keys of 8 bytes) with its
	// chunk CRCs, and the chunks of one posting (at most a byte or two per
	// block).
	v4 := ix.sects[KindIPv4]
	if limit := headRead + 200*8 + v4.crcLen(Version, v4.postLen) + chunkLen + 2*len(want[k]); cr.bytes > limit || cr.reads != 3 {
		t.Errorf("one lookup read %d bytes in %d reads (limit %d in 3)", cr.bytes, cr.reads, limit)
	}
	lookupAll(t, ix, want)
	// The buffer is handed on, and a second index opened with it reads
	// the same.
	ix2, err := OpenAt(bytes.NewReader(file), int64(len(file)), ix.Buffer())
	if err != nil {
		t.Fatal(err)
	}
	lookupAll(t, ix2, want)

	// A key of one block reads no postings: the header and its table,
	// two reads; a range of such keys and keys with postings reads the
	// chunks of those postings only (a quarter of the section's keys,
	// not all its chunks), whole chunks, in one read more.
	b, want = build(1)
	for i := range 40 {
		k := Addr(netip.AddrFrom4([4]byte{10, 0, 1, byte(200 + i)}))
		b.Add([]Key{k})
		want[k] = []uint32{300}
	}
	b.EndBlock(3000, 3009)
	file = b.Encode(enc)
	cr = &countingReader{r: bytes.NewReader(file)}
	if ix, err = OpenAt(cr, int64(len(file)), nil); err != nil {
		t.Fatal(err)
	}
	v4 = ix.sects[KindIPv4]
	k = Addr(netip.AddrFrom4([4]byte{10, 0, 1, 210}))
	if got, err := ix.Lookup(k); err != nil || !slices.Equal(got, []uint32{300}) || cr.reads != 2 {
		t.Errorf("one-block key: %v %v in %d reads, want [300] in 2", got, err, cr.reads)
	}
	before := cr.bytes
	lists, err := ix.Range(KindIPv4, [16]byte{10, 0, 1, 0}, [16]byte{10, 0, 1, 255})
	if err != nil || len(lists) != 90 {
		t.Fatalf("range: %d lists, %v", len(lists), err)
	}
	start := cr.lastOff - headerLen - v4.postOff // in the postings
	end := start + cr.bytes - before
	if cr.reads != 3 || start < 0 || start%chunkLen != 0 || (end%chunkLen != 0 && end != v4.postLen) || end > v4.postLen || end-start >= v4.postLen {
		t.Errorf("range read postings %d to %d (of %d) in %d reads in all; want one read of whole chunks", start, end, v4.postLen, cr.reads)
	}
}

// A damaged byte in any part of an index fails the lookups that read it,
// and only those: a key table those of its kind, a postings chunk or its
// CRC those whose postings lie in that chunk (keys of one block read no
// postings), the directory the opening. Open, which checks everything,
// refuses the file.
func TestOpenAtDamage(t *testing.T) {
	enc, dec := codec(t)
	b, want := build(2)
	// Keys of one block beside the others: their reference is all they
	// need.
	for i := range 40 {
		k := Addr(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}))
		b.Add([]Key{k})
		want[k] = []uint32{300}
	}
	b.EndBlock(3000, 3009)
	good := b.Encode(enc)
	ix, err := Open(good, dec)
	if err != nil {
		t.Fatal(err)
	}
	v4 := ix.sects[KindIPv4]
	if v4.postLen < 3*chunkLen {
		t.Fatalf("IPv4 postings of %d bytes: want several chunks", v4.postLen)
	}
	// chunksOf gives the chunks key k's postings lie in (none: one block).
	chunksOf := func(k Key) (first, last int, ok bool) {
		s := ix.sects[k.Kind]
		i, found := s.find(k.V[:s.size])
		if !found {
			t.Fatalf("key %v not in the table", k)
		}
		r := s.ref(i)
		if r&refOne != 0 {
			return 0, 0, false
		}
		end := s.postingEnd(s.nextMulti(i + 1))
		return int(r) / chunkLen, (end - 1) / chunkLen, true
	}
	tableEnd := v4.tableOff + v4.n*v4.entrySize
	cases := []struct {
		name string
		off  int // in the body
		hit  func(Key) bool
		open string // Open's error names the part by its kind
	}{
		{"ipv4-table", v4.tableOff + 3, func(k Key) bool { return k.Kind == KindIPv4 }, "ipv4 key table checksum mismatch"},
		{"ipv4-chunk-0", v4.postOff + 5, inChunk(KindIPv4, 0, chunksOf), "ipv4 postings chunk 0 checksum mismatch"},
		{"ipv4-chunk-1", v4.postOff + chunkLen + 100, inChunk(KindIPv4, 1, chunksOf), "ipv4 postings chunk 1 checksum mismatch"},
		{"ipv4-last-chunk", v4.postOff + v4.postLen - 1, inChunk(KindIPv4, (v4.postLen-1)/chunkLen, chunksOf), "ipv4 postings chunk"},
		{"ipv4-chunk-crc-1", tableEnd + 4 + 2, inChunk(KindIPv4, 1, chunksOf), "ipv4 postings chunk 1 checksum mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Clone(good)
			bad[headerLen+c.off] ^= 0x10
			ix, err := OpenAt(bytes.NewReader(bad), int64(len(bad)), nil)
			if err != nil {
				t.Fatal(err)
			}
			failed, fine := 0, 0
			for k, w := range want {
				got, err := ix.Lookup(k)
				if c.hit(k) {
					failed++
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("lookup of %v through the damage: %v, %v", k, got, err)
					}
				} else if fine++; err != nil || !slices.Equal(got, w) {
					t.Errorf("lookup of %v elsewhere: %v %v, want %v", k, got, err, w)
				}
			}
			if failed == 0 || fine == 0 {
				t.Errorf("%d lookups through the damage, %d elsewhere: want some of each", failed, fine)
			}
			if _, err := Open(bad, dec); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.open) {
				t.Errorf("Open: %v, want ErrCorrupt naming %q", err, c.open)
			}
		})
	}
	// The directory is checked when opening.
	bad := bytes.Clone(good)
	bad[headerLen+5] ^= 1
	if _, err := OpenAt(bytes.NewReader(bad), int64(len(bad)), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged directory: %v", err)
	}
}

// inChunk returns whether a key of kind has postings in chunk c.
func inChunk(kind Kind, c int, chunksOf func(Key) (int, int, bool)) func(Key) bool {
	return func(k Key) bool {
		if k.Kind != kind {
			return false
		}
		first, last, ok := chunksOf(k)
		return ok && first <= c && c <= last
	}
}

// Indexes written by older versions (testdata/vN.idx, the same keys as
// build(7), each encoded by its version's writer) still read: version 1
// whole, by both Open and OpenAt; versions 2 and 3 in parts through
// OpenAt. Version 3 changed which keys a writer adds, not version 2's
// bytes.
func TestOldVersions(t *testing.T) {
	_, want := build(7)
	files := map[int][]byte{}
	for _, v := range []int{1, 2, 3} {
		file, err := os.ReadFile(fmt.Sprintf("testdata/v%d.idx", v))
		if err != nil {
			t.Fatal(err)
		}
		files[v] = file
		if got, err := FileVersion(bytes.NewReader(file)); err != nil || got != v {
			t.Fatalf("testdata/v%d.idx: FileVersion %d, %v", v, got, err)
		}
		for name, open := range map[string]func() (*Index, error){
			"Open":   func() (*Index, error) { return Open(file, nil) },
			"OpenAt": func() (*Index, error) { return OpenAt(bytes.NewReader(file), int64(len(file)), nil) },
		} {
			ix, err := open()
			if err != nil {
				t.Fatalf("version %d, %s: %v", v, name, err)
			}
			lookupAll(t, ix, want)
		}
	}
	if a, b := files[2], files[3]; len(a) != len(b) || !bytes.Equal(a[6:40], b[6:40]) || !bytes.Equal(a[headerLen:], b[headerLen:]) {
		t.Errorf("version 3's fixture differs from version 2's beyond the version field")
	}
	// The same keys as version 4: what a store keeps of a version 3
	// index's shard after a rebuild reads the same.
	enc, dec := codec(t)
	b, _ := build(7)
	now := b.Encode(enc)
	if v := binary.LittleEndian.Uint16(now[4:]); v != Version || Version != 4 {
		t.Fatalf("encoded version %d", v)
	}
	ix, err := Open(now, dec)
	if err != nil {
		t.Fatal(err)
	}
	lookupAll(t, ix, want)
}

// FuzzOpenAt: whatever the file, OpenAt and its lookups return errors,
// never panic, and only give increasing postings below the block count.
func FuzzOpenAt(f *testing.F) {
	enc, _ := codec(f)
	b, _ := build(3)
	f.Add(b.Encode(enc))
	f.Add(floodBuilder(3000, 100).Encode(enc))
	for _, name := range []string{"testdata/v1.idx", "testdata/v2.idx", "testdata/v3.idx"} {
		if old, err := os.ReadFile(name); err == nil {
			f.Add(old)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := OpenAt(bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			return
		}
		checkLookups(t, ix)
		if whole, err := Open(data, nil); err == nil {
			sameAsOpenAt(t, whole, data)
		}
	})
}

// TestAddPacketMatchesKeys: the per-kind paths of AddPacket (ports by
// array, IPv4 by table, the rest by map; the signature cache in front)
// and of AddFlowPacket index exactly the keys Keys gives, for IPv4, IPv6, IPv4-mapped IPv6,
// VLAN-tagged, tunnelled (outer keys too), ARP and non-IP frames, and for a flood of new ports and
// addresses in blocks of 500 packets.
func TestAddPacketMatchesKeys(t *testing.T) {
	enc, dec := codec(t)
	rng := rand.New(rand.NewSource(7))
	var pkts []pkthdr.Packet
	floodAt := -1 // a flood packet's index
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.7"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("fe80::2")}
	for i := range 20000 {
		var p pkthdr.Packet
		switch rng.Intn(6) {
		case 0: // non-IP
			p.EtherType = uint16(0x88cc + rng.Intn(2))
		case 1: // ARP
			p.EtherType, p.ARP = 0x0806, true
			p.Src, p.Dst = addrs[rng.Intn(2)], addrs[rng.Intn(2)]
		case 2: // a flood: new source and port in every packet
			if floodAt < 0 && i > 4000 {
				floodAt = i
			}
			// Its protocol (UDP-Lite) and destination are its own, so
			// that only its packets give those keys.
			p.IPVersion, p.Proto, p.HasPorts = 4, 136, true
			p.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			p.Dst = netip.MustParseAddr("203.0.113.9")
			p.SrcPort, p.DstPort = uint16(i), 9
		default:
			p.IPVersion, p.Proto = 4, uint8([]int{1, 6, 17, 58}[rng.Intn(4)])
			p.Src, p.Dst = addrs[rng.Intn(len(addrs))], addrs[rng.Intn(len(addrs))]
			if !p.Src.Is4() {
				p.IPVersion = 6
			}
			p.HasPorts = p.Proto == 6 || p.Proto == 17
			if p.HasPorts {
				p.SrcPort, p.DstPort = uint16(rng.Intn(3)), uint16(rng.Intn(65536))
			}
		}
		if p.IPVersion != 0 && rng.Intn(3) == 0 {
			// Inside a tunnel: endpoints drawn apart from the inner
			// addresses, so one inner signature comes with several.
			ends := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:ffff::9")}
			src := ends[rng.Intn(3)]
			dst := ends[rng.Intn(2)]
			p.Outer = pkthdr.Outer{IPVersion: 4, Proto: pkthdr.ProtoGRE}
			if src.Is6() {
				p.Outer.IPVersion, dst = 6, src
			}
			p.Outer.SetAddrs(src, dst)
			if rng.Intn(2) == 0 {
				ports := []uint16{pkthdr.PortVXLAN, pkthdr.PortGTPU, pkthdr.PortTeredo, pkthdr.PortVXLANGPE, pkthdr.PortL2TP}
				p.Outer.Proto, p.Outer.HasPorts, p.Outer.SrcPort, p.Outer.DstPort = pkthdr.ProtoUDP, true, uint16(40000+rng.Intn(3)), ports[rng.Intn(len(ports))]
			}
		}
		if rng.Intn(4) == 0 {
			p.NVLAN = 1 + rng.Intn(2)
			p.VLAN = [2]uint16{uint16(rng.Intn(4)), uint16(rng.Intn(4))}
		}
		pkts = append(pkts, p)
	}
	// c adds as the store does (AddFlowPacket, its untagged IPv4 path
	// among the others).
	a, b, c := NewBuilder(), NewBuilder(), NewBuilder()
	var keys []Key
	for i := range pkts {
		a.AddPacket(&pkts[i])
		a.AddPacket(&pkts[i]) // the signature cache
		keys = Keys(keys[:0], &pkts[i])
		b.Add(keys)
		c.AddFlowPacket(&pkts[i])
		if i%500 == 499 {
			a.EndBlock(int64(i), int64(i))
			b.EndBlock(int64(i), int64(i))
			c.EndBlock(int64(i), int64(i))
		}
	}
	ea, eb, ec := a.Encode(enc), b.Encode(enc), c.Encode(enc)
	if !bytes.Equal(ea, eb) {
		t.Fatalf("AddPacket and Add(Keys) give different encodings (%d and %d bytes)", len(ea), len(eb))
	}
	if !bytes.Equal(ec, eb) {
		t.Fatalf("AddFlowPacket and Add(Keys) give different encodings (%d and %d bytes)", len(ec), len(eb))
	}
	// A block a packet: each packet's keys alone, none supplied by
	// another packet of its block.
	b1, c1 := NewBuilder(), NewBuilder()
	for i := range 3000 {
		b1.Add(Keys(keys[:0], &pkts[i]))
		c1.AddFlowPacket(&pkts[i])
		b1.EndBlock(int64(i), int64(i))
		c1.EndBlock(int64(i), int64(i))
	}
	if eb, ec := b1.Encode(enc), c1.Encode(enc); !bytes.Equal(ec, eb) {
		t.Fatalf("a packet a block: AddFlowPacket and Add(Keys) give different encodings (%d and %d bytes)", len(ec), len(eb))
	}
	ix, err := Open(ea, dec)
	if err != nil {
		t.Fatal(err)
	}
	// A flood port is in exactly the block of its packet.
	if got, err := ix.Lookup(Port(uint16(floodAt))); err != nil || !slices.Contains(got, uint32(floodAt/500)) {
		t.Errorf("port %d in blocks %v: %v", floodAt, got, err)
	}
	if a.Keys() < 10000 {
		t.Errorf("only %d keys", a.Keys())
	}
	// A builder Reset for the next shard (the store reuses them) starts
	// over: the same packets give the same bytes, none of the first
	// shard's keys or per-block caches left behind.
	a.Reset()
	for i := range pkts {
		a.AddPacket(&pkts[i])
		if i%500 == 499 {
			a.EndBlock(int64(i), int64(i))
		}
	}
	// The store seals into the last index file's memory: stale bytes
	// there, or too little room, change nothing.
	dirty := bytes.Repeat([]byte{0xa5}, len(ea)+100)
	for _, dst := range [][]byte{nil, dirty[:0], dirty[:10:10]} {
		if again := a.EncodeTo(dst, enc); !bytes.Equal(again, ea) {
			t.Fatalf("after Reset, into %d bytes of room: %d bytes, want the first encoding's %d", cap(dst), len(again), len(ea))
		}
	}
}

// BenchmarkAddPacketFlood: a new source address and port in every packet.
func BenchmarkAddPacketFlood(b *testing.B) {
	bl := NewBuilder()
	var p pkthdr.Packet
	p.IPVersion, p.Proto, p.HasPorts, p.DstPort = 4, 17, true, 9
	p.Dst = netip.MustParseAddr("192.0.2.7")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		p.SrcPort = uint16(i)
		bl.AddPacket(&p)
		if i%800 == 799 {
			bl.EndBlock(int64(i), int64(i))
		}
	}
}

// TestSortLog: the radix sort agrees with slices.Sort on logs as the
// builder appends them (blocks in order), whose keys share bytes or not,
// sorting 16-bit keys by their low digits only.
func TestSortLog(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	var tmp []uint64
	count := new([1 << 16]uint32)
	for _, n := range []int{0, 1, 100, 5000, 70000, 200000} {
		for _, mask := range []uint64{0xffffffff, 0x0000ffff, 0xff000fff, 0x00ff00ff, 0x0a000000} {
			w := make([]uint64, n)
			blk := uint64(0)
			for i := range w {
				if rng.Intn(50) == 0 {
					blk += uint64(rng.Intn(300)) // past 256: the blocks' second byte varies
				}
				w[i] = (rng.Uint64()&mask)<<32 | blk
			}
			want := slices.Clone(w)
			slices.Sort(want)
			// Keys that fit 16 bits (a port log's) are sorted by their
			// digits below 16 only; the rest by all 32.
			keyBits := uint(32)
			if mask < 1<<16 {
				keyBits = 16
			}
			sortLog(w, &tmp, count, keyBits) // the scratch reused, as Encode does
			if !slices.Equal(w, want) {
				t.Fatalf("n %d mask %x, %d-bit keys: not sorted", n, mask, keyBits)
			}
		}
	}
}

// floodBuilder builds a shard's index as a flood gives it: n packets, a
// new source address and port in most (the rest from a few busy flows,
// IPv6 and VLAN-tagged ones among them), perBlock packets a block.
func floodBuilder(n, perBlock int) *Builder {
	return floodBuilderBy(n, perBlock, (*Builder).AddPacket, nil)
}

// floodBuilderBy is floodBuilder adding each packet with add; with want
// not nil, it also records there each key's blocks from Keys.
func floodBuilderBy(n, perBlock int, add func(*Builder, *pkthdr.Packet), want map[Key][]uint32) *Builder {
	rng := rand.New(rand.NewSource(18))
	busy := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::5")}
	b := NewBuilder()
	for i := range n {
		var p pkthdr.Packet
		p.IPVersion, p.Proto, p.HasPorts = 4, 17, true
		if rng.Intn(8) == 0 {
			p.Src, p.Dst = busy[rng.Intn(3)], busy[rng.Intn(3)]
			if !p.Src.Is4() || !p.Dst.Is4() {
				p.Src, p.Dst, p.IPVersion = busy[2], busy[2], 6
			}
			p.Proto = uint8([]int{6, 17}[rng.Intn(2)])
			p.SrcPort, p.DstPort = uint16(rng.Intn(4)), 443
			if rng.Intn(3) == 0 {
				p.NVLAN, p.VLAN[0] = 1, uint16(rng.Intn(3))
			}
		} else {
			x := uint64(i) * 0x9e3779b97f4b & (1<<40 - 1)
			p.Src = netip.AddrFrom4([4]byte{10, byte(x >> 32), byte(x >> 24), byte(x >> 16)})
			p.Dst = busy[0]
			p.SrcPort, p.DstPort = uint16(x), 9
		}
		add(b, &p)
		if want != nil {
			for _, k := range Keys(nil, &p) {
				if l := want[k]; len(l) == 0 || l[len(l)-1] != uint32(i/perBlock) {
					want[k] = append(l, uint32(i/perBlock))
				}
			}
		}
		if i%perBlock == perBlock-1 || i == n-1 {
			b.EndBlock(int64(i), int64(i))
		}
	}
	return b
}

// TestEncodeStable: an index's bytes do not change with the builder's
// inner workings. The digests are of the version 4 encodings written by
// the builder of 2026-12-08 (the version 3 builder's, 2026-12-07, with
// version 4's table entries), and the test decodes each against the keys
// Keys gives for the same packets, block by block, so a digest vouches
// for bytes that were checked; a new builder must give the very same.
func TestEncodeStable(t *testing.T) {
	enc, dec := codec(t)
	for _, tc := range []struct {
		n, perBlock int
		want        string
		keys        int // Keys() before encoding: a store seals a shard by it
	}{
		{3000, 100, "a9ebdb5fccbef706fac73c73df7a62b8411c9d70242256559090a7ff4b861323", 5490},       // logs below the radix sort's threshold
		{200000, 800, "dd9828291c02944237658a8981324edb4fa2b726c7f3aa4402aa3d8a02ed860f", 352482},   // a flood's shard: radix-sorted logs, ports in many blocks
		{300000, 70000, "e7c2e4bb5c866061bce8b2c7c3875dab163545cc6234a7f63a569a28fc675771", 511694}, // few blocks, every port in each
	} {
		want := map[Key][]uint32{}
		b := floodBuilderBy(tc.n, tc.perBlock, (*Builder).AddPacket, want)
		if b.Keys() != tc.keys {
			t.Errorf("%d packets, %d a block: %d keys, want %d", tc.n, tc.perBlock, b.Keys(), tc.keys)
		}
		file := b.Encode(enc)
		sum := sha256.Sum256(file)
		if got := hex.EncodeToString(sum[:]); got != tc.want {
			t.Errorf("%d packets, %d a block: encoding's SHA-256 %s, want %s", tc.n, tc.perBlock, got, tc.want)
		}
		// Every key's blocks as the packets give them, and no other key
		// (each section's count).
		ix, err := Open(file, dec)
		if err != nil {
			t.Fatal(err)
		}
		perKind := map[Kind]int{}
		for k, w := range want {
			perKind[k.Kind]++
			if got, err := ix.Lookup(k); err != nil || !slices.Equal(got, w) {
				t.Fatalf("%d packets, %d a block: key %v in %v (%v), want %v", tc.n, tc.perBlock, k, got, err, w)
			}
		}
		for kind, s := range ix.sects {
			if s.n != perKind[kind] {
				t.Errorf("%d packets, %d a block: %d keys of kind %d, the packets have %d", tc.n, tc.perBlock, s.n, kind, perKind[kind])
			}
		}
		// Without the signature check every repeated packet logs its
		// keys again (the busy hosts' packets repeat many times a block):
		// more keys held, the same index written.
		b = floodBuilderBy(tc.n, tc.perBlock, (*Builder).AddFlowPacket, nil)
		if b.Keys() < tc.keys {
			t.Errorf("%d packets, %d a block, AddFlowPacket: %d keys, fewer than AddPacket's %d", tc.n, tc.perBlock, b.Keys(), tc.keys)
		}
		if again := b.Encode(enc); !bytes.Equal(again, file) {
			t.Errorf("%d packets, %d a block, AddFlowPacket: a different encoding", tc.n, tc.perBlock)
		}
	}
}

// TestOneBlockPostings: keys seen in one block only, which keep the
// block in their reference, read back as that block for block numbers of
// every varint length a posting would take (one to three bytes); keys
// logged twice in one block are such keys too, and keys of two blocks
// have postings beside them. Open checks every key table's checksum and
// each postings chunk's.
func TestOneBlockPostings(t *testing.T) {
	enc, dec := codec(t)
	const nblocks = 20001
	at := map[uint32]bool{0: true, 1: true, 127: true, 128: true, 129: true, 16383: true, 16384: true, 20000: true}
	b := NewBuilder()
	want := map[uint32][]uint32{} // address: blocks
	for blk := range uint32(nblocks) {
		if at[blk] {
			one, twice := 0x0a000000|blk, 0xc0000000|blk
			b.addV4(one)
			// Logged twice in its block, as an address the cache in
			// front of the log misses is.
			b.v4 = append(b.v4, uint64(twice)<<32|uint64(blk), uint64(twice)<<32|uint64(blk))
			want[one], want[twice] = []uint32{blk}, []uint32{blk}
		}
		if at[blk] && blk+1 < nblocks {
			want[0xc6000000|blk] = []uint32{blk, blk + 1}
			b.addV4(0xc6000000 | blk)
		}
		if blk > 0 && at[blk-1] {
			b.addV4(0xc6000000 | (blk - 1)) // a two-block key's second block
		}
		b.EndBlock(int64(blk), int64(blk))
	}
	ix, err := Open(b.Encode(enc), dec)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Blocks != nblocks {
		t.Fatalf("%d blocks, want %d", ix.Blocks, nblocks)
	}
	for a, bl := range want {
		k := Key{Kind: KindIPv4}
		binary.BigEndian.PutUint32(k.V[:4], a)
		got, err := ix.Lookup(k)
		if err != nil || !slices.Equal(got, bl) {
			t.Errorf("%08x: blocks %v (%v), want %v", a, got, err, bl)
		}
	}
}

// TestEveryByteFlip: every byte of a version 4 index is covered by a
// checksum (header, directory, key tables, postings chunks; a chunk CRC
// by its chunk), so a flipped bit anywhere makes Open refuse the file,
// and through OpenAt each lookup either fails or gives the right blocks,
// never wrong ones.
func TestEveryByteFlip(t *testing.T) {
	enc, dec := codec(t)
	b := NewBuilder()
	want := map[Key][]uint32{}
	add := func(k Key, blk uint32) {
		b.Add([]Key{k})
		if l := want[k]; len(l) == 0 || l[len(l)-1] != blk {
			want[k] = append(l, blk)
		}
	}
	const blocks = 90
	for blk := range uint32(blocks) {
		for i := range 60 { // keys in most blocks: two chunks of postings
			if (int(blk)+i)%5 != 0 {
				add(Addr(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})), blk)
			}
		}
		add(Addr(netip.AddrFrom4([4]byte{10, 1, byte(blk), 1})), blk) // one block each
		add(Port(uint16(1000+blk)), blk)
		add(Port(443), blk)
		add(Proto(uint8(6+blk%2*11)), blk)
		b.EndBlock(int64(blk), int64(blk))
	}
	good := b.Encode(enc)
	ix, err := Open(good, dec)
	if err != nil {
		t.Fatal(err)
	}
	if s := ix.sects[KindIPv4]; s.postLen <= chunkLen {
		t.Fatalf("IPv4 postings of %d bytes: want two chunks", s.postLen)
	}
	// Each kind's keys in table order, for a Range over all of them; and
	// lookups of one key each way: of one block, with postings in the
	// first chunk and in the last.
	byKind := map[Kind][]Key{}
	for k := range want {
		byKind[k.Kind] = append(byKind[k.Kind], k)
	}
	for _, ks := range byKind {
		slices.SortFunc(ks, func(a, b Key) int { return bytes.Compare(a.V[:], b.V[:]) })
	}
	var all [16]byte
	for i := range all {
		all[i] = 0xff
	}
	lookups := []Key{Addr(netip.AddrFrom4([4]byte{10, 1, 7, 1})), Addr(netip.AddrFrom4([4]byte{10, 0, 0, 1})),
		Addr(netip.AddrFrom4([4]byte{10, 0, 0, 59})), Port(443), Port(1005)}
	bad := bytes.Clone(good)
	for pos := range good {
		bad[pos] ^= 1 << (pos % 8)
		if _, err := Open(bad, dec); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotIndex) && !errors.Is(err, ErrVersion) {
			t.Fatalf("byte %d flipped: Open %v", pos, err)
		}
		if ix, err := OpenAt(bytes.NewReader(bad), int64(len(bad)), nil); err == nil {
			for kind, ks := range byKind {
				lists, err := ix.Range(kind, [16]byte{}, all)
				if err != nil {
					continue
				}
				if len(lists) != len(ks) {
					t.Fatalf("byte %d flipped: %d keys of kind %d, want %d", pos, len(lists), kind, len(ks))
				}
				for i, k := range ks {
					if !slices.Equal(lists[i], want[k]) {
						t.Fatalf("byte %d flipped: range gives %v in %v, want %v", pos, k, lists[i], want[k])
					}
				}
			}
			for _, k := range lookups {
				if got, err := ix.Lookup(k); err == nil && !slices.Equal(got, want[k]) {
					t.Fatalf("byte %d flipped: %v in %v, want %v", pos, k, got, want[k])
				}
			}
		}
		bad[pos] = good[pos]
	}
}
