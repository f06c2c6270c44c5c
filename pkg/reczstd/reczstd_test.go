package reczstd

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// record is one pcap record (16-byte header and frame) and its key.
type record struct {
	b   []byte
	key uint32
}

func pcapRecord(ts time.Time, frame []byte) []byte {
	h := make([]byte, 16, 16+len(frame))
	binary.LittleEndian.PutUint32(h, uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(ts.Nanosecond()))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(frame)))
	return append(h, frame...)
}

// udpFrame is an Ethernet/IPv4/UDP frame of n bytes (n >= 42) from
// src:sport to 198.18.0.2:9, with payload filled by fill.
func udpFrame(n int, src uint32, sport uint16, fill func([]byte)) []byte {
	f := make([]byte, n)
	copy(f, []byte{
		0x02, 0, 0, 0, 0, 0x0b, // destination
		0x02, 0, 0, 0, 0, 0x0a, // source
		0x08, 0x00, // IPv4
		0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, // length, DF, TTL 64, UDP
	})
	binary.BigEndian.PutUint16(f[16:], uint16(n-14))
	binary.BigEndian.PutUint32(f[26:], src)
	copy(f[30:], []byte{198, 18, 0, 2})
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], 9)
	binary.BigEndian.PutUint16(f[38:], uint16(n-34))
	if fill != nil {
		fill(f[42:])
	}
	return f
}

// loads are the inputs every round-trip test runs: floods of small
// frames, payloads that repeat and that do not, sizes that vary, records
// that share a key without looking alike, and no keys at all.
func loads() map[string][]record {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	out := map[string][]record{}
	gen := func(name string, n int, f func(i int) ([]byte, uint32)) {
		for i := range n {
			fr, k := f(i)
			out[name] = append(out[name], record{pcapRecord(t0.Add(time.Duration(i)*500*time.Nanosecond), fr), k})
		}
	}
	gen("64 flows", 3000, func(i int) ([]byte, uint32) {
		return udpFrame(64, 198<<24|18<<16|1, uint16(1024+i%64), nil), uint32(1 + i%64)
	})
	gen("new flow each frame", 3000, func(i int) ([]byte, uint32) {
		return udpFrame(64, 10<<24|uint32(i), uint16(1024+i), nil), uint32(i + 1)
	})
	gen("random payloads", 300, func(i int) ([]byte, uint32) {
		return udpFrame(60+rng.IntN(1400), 10<<24|uint32(i%7), 53, func(p []byte) {
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
		}), uint32(1 + i%7)
	})
	gen("repeating text", 500, func(i int) ([]byte, uint32) {
		return udpFrame(200+i%300, 10<<24|1, 80, func(p []byte) {
			for j := range p {
				const text = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n"
				p[j] = text[(j+i)%len(text)]
			}
		}), 1
	})
	gen("same key, unalike", 500, func(i int) ([]byte, uint32) {
		fr := make([]byte, 14+rng.IntN(200))
		for j := range fr {
			fr[j] = byte(rng.IntN(3)) // few distinct bytes: short matches everywhere
		}
		return fr, 7
	})
	gen("no keys", 2000, func(i int) ([]byte, uint32) {
		return udpFrame(64+i%5, 10<<24|uint32(i%3), uint16(i%11), nil), 0
	})
	gen("one record", 1, func(int) ([]byte, uint32) { return udpFrame(64, 1, 2, nil), 1 })
	gen("tiny records", 4000, func(i int) ([]byte, uint32) { return []byte{byte(i % 3)}, uint32(i%2 + 1) })
	return out
}

// blocks cuts records into blocks of about size bytes, as the store
// writer does, encoding each; it returns the raw blocks and their frames.
//
// A block that does not shrink is refused; blocks gives its raw bytes as
// its frame then (a caller stores such a block).
func blocks(t testing.TB, recs []record, size int) (raws, frames [][]byte) {
	var e Encoder
	var raw []byte
	end := func() {
		out, ok := e.Encode(nil, raw)
		if !ok && e.Gain() > len(raw)/2 {
			t.Fatalf("Encode refused a block of %d bytes with %d bytes of matches", len(raw), e.Gain())
		}
		if !ok {
			out = storedFrame(raw)
		}
		raws, frames = append(raws, raw), append(frames, out)
		raw = nil
		e.Reset()
	}
	for _, r := range recs {
		start := len(raw)
		raw = append(raw, r.b...)
		e.Add(raw, start, r.key)
		if len(raw) >= size {
			end()
		}
	}
	if len(raw) > 0 || len(raws) == 0 {
		end()
	}
	return raws, frames
}

// storedFrame is raw as a zstd frame of one raw block.
func storedFrame(raw []byte) []byte {
	f := binary.LittleEndian.AppendUint32(nil, magic)
	f = append(f, fhdSingle4)
	f = binary.LittleEndian.AppendUint32(f, uint32(len(raw)))
	h := uint32(len(raw))<<3 | 1
	f = append(f, byte(h), byte(h>>8), byte(h>>16))
	return append(f, raw...)
}

func TestRoundTrip(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for name, recs := range loads() {
		for _, size := range []int{1, 4 << 10, 64 << 10, 126 << 10, 300 << 10, 4 << 20} {
			raws, frames := blocks(t, recs, size)
			var in, out int
			for i, f := range frames {
				got, err := dec.DecodeAll(f, nil)
				if err != nil || !bytes.Equal(got, raws[i]) {
					t.Fatalf("%s, blocks of %d: block %d of %d bytes: decoded %d bytes: %v", name, size, i, len(raws[i]), len(got), err)
				}
				in, out = in+len(raws[i]), out+len(f)
			}
			if size == 64<<10 {
				t.Logf("%-20s %8d bytes -> %7d (%.1f%%)", name, in, out, 100*float64(out)/float64(in))
			}
		}
	}
}

// TestFloodRatio: the floods the encoder is for shrink to a small part of
// their size, the 64-flow one about as much as with the general-purpose
// encoder (klauspost/compress, fastest level).
func TestFloodRatio(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, c := range []struct {
		load           string
		ofRaw, ofOther float64
	}{{"64 flows", 0.1, 2}, {"new flow each frame", 0.25, 4}} {
		raws, frames := blocks(t, loads()[c.load], 64<<10)
		var raw, ours, general int
		for i := range raws {
			raw, ours, general = raw+len(raws[i]), ours+len(frames[i]), general+len(enc.EncodeAll(raws[i], nil))
		}
		if float64(ours) > c.ofRaw*float64(raw) || float64(ours) > c.ofOther*float64(general) {
			t.Errorf("%s: %d raw bytes -> %d; the general encoder gives %d", c.load, raw, ours, general)
		}
	}
}

// zstdBlock is what blockShapes reads of a compressed zstd block.
type zstdBlock struct {
	seqs  int
	modes byte // the sequences' symbol compression modes (LL, OF, ML)
}

// blockShapes walks a frame of ours (raw literals only) and returns its
// compressed blocks' sequence counts and modes (RFC 8878 3.1.1.3).
func blockShapes(t *testing.T, f []byte) []zstdBlock {
	t.Helper()
	var out []zstdBlock
	at := 9 // magic, descriptor, 4-byte content size
	for at+3 <= len(f) {
		h := uint32(f[at]) | uint32(f[at+1])<<8 | uint32(f[at+2])<<16
		size, typ, last := int(h>>3), h>>1&3, h&1 == 1
		at += 3
		if typ == 2 {
			b := f[at : at+size]
			var n, p int
			switch b[0] >> 2 & 3 { // raw literals' size format
			case 0, 2:
				n, p = int(b[0]>>3), 1
			case 1:
				n, p = int(b[0]>>4)|int(b[1])<<4, 2
			case 3:
				n, p = int(b[0]>>4)|int(b[1])<<4|int(b[2])<<12, 3
			}
			p += n
			var seqs int
			switch c := int(b[p]); {
			case c < 128:
				seqs, p = c, p+1
			case c < 255:
				seqs, p = (c-128)<<8|int(b[p+1]), p+2
			default:
				seqs, p = int(b[p+1])|int(b[p+2])<<8+0x7f00, p+3
			}
			var modes byte
			if seqs > 0 {
				modes = b[p]
			}
			out = append(out, zstdBlock{seqs, modes})
		}
		if typ == 1 {
			size = 1 // RLE: one byte
		}
		at += size
		if last {
			break
		}
	}
	return out
}

// TestOffsetSentOnce: in a flood, where every record repeats the
// previous one's offset, a frame's first sequence (a new offset) gets a
// block of its own, so that the rest send their offset code once (RLE
// mode) instead of 5 bits each.
func TestOffsetSentOnce(t *testing.T) {
	_, frames := blocks(t, loads()["new flow each frame"], 64<<10)
	for i, f := range frames {
		shapes := blockShapes(t, f)
		if len(shapes) < 2 || shapes[0].seqs != 1 || shapes[1].seqs < minRun || shapes[1].modes>>4&3 != modeRLE {
			t.Fatalf("frame %d: blocks %+v, want one sequence, then more with an RLE offset code", i, shapes)
		}
	}
}

// TestZstdOracle: the reference zstd decoder reads our frames (all of
// them concatenated, as a shard's data frames are) into the raw blocks.
func TestZstdOracle(t *testing.T) {
	for name, recs := range loads() {
		raws, frames := blocks(t, recs, 64<<10)
		if name == "64 flows" || name == "random payloads" {
			r, f := blocks(t, recs, 1<<30) // one frame of many zstd blocks
			raws, frames = append(raws, r...), append(frames, f...)
		}
		zstdDecodes(t, name, frames, raws)
	}
}

// zstdDecodes checks that the reference zstd tool reads frames, all of them
// concatenated as a shard's data frames are, into the raw blocks raws.
func zstdDecodes(t *testing.T, name string, frames, raws [][]byte) {
	t.Helper()
	zstdBin := testenv.Tool(t, "zstd")
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "_")+".zst")
	if err := os.WriteFile(path, bytes.Join(frames, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(zstdBin, "-dc", path).Output()
	if err != nil {
		t.Fatalf("%s: zstd -dc: %v", name, err)
	}
	if want := bytes.Join(raws, nil); !bytes.Equal(got, want) {
		t.Errorf("%s: zstd -dc gives %d bytes, want %d", name, len(got), len(want))
	}
}

// TestRealCaptures round-trips the records of every shared capture,
// keyed by their 5-tuple bytes as the store writer keys them.
func TestRealCaptures(t *testing.T) {
	root := testenv.SharedFile(t, "pcaps")
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer dec.Close()
	var files, in, out int
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(path, ".pcap") {
			return err
		}
		recs := classicPcap(t, path)
		if recs == nil {
			return nil
		}
		files++
		raws, frames := blocks(t, recs, 64<<10)
		for i, f := range frames {
			got, err := dec.DecodeAll(f, nil)
			if err != nil || !bytes.Equal(got, raws[i]) {
				t.Fatalf("%s: block %d does not round-trip: %v", path, i, err)
			}
			in, out = in+len(raws[i]), out+len(f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no classic pcap under %s", root)
	}
	t.Logf("%d captures: %d bytes -> %d (%.1f%%)", files, in, out, 100*float64(out)/float64(in))
}

// classicPcap returns the records of a little-endian classic pcap file of
// Ethernet frames, keyed by their IPv4 addresses and ports (nil for any
// other file).
func classicPcap(t *testing.T, path string) []record {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 && binary.LittleEndian.Uint32(b) != 0xa1b23c4d || binary.LittleEndian.Uint32(b[20:]) != 1 {
		return nil
	}
	var recs []record
	for b = b[24:]; len(b) >= 16; {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		if n > len(b)-16 {
			break
		}
		r := record{b: b[:16+n]}
		if f := b[16 : 16+n]; len(f) >= 38 && f[12] == 8 && f[13] == 0 {
			r.key = binary.LittleEndian.Uint32(f[26:])*0x9e3779b1 ^ binary.LittleEndian.Uint32(f[30:])*0x85ebca77 ^ binary.LittleEndian.Uint32(f[34:]) | 1
		}
		recs = append(recs, r)
		b = b[16+n:]
	}
	return recs
}

// TestRefusals: records not added in order and content shorter than what
// was described are refused, and the encoder works again after Reset.
func TestRefusals(t *testing.T) {
	rec := pcapRecord(time.Unix(1, 0), udpFrame(64, 1, 2, nil))
	var e Encoder
	e.Add(rec, 0, 1)
	two := append(append([]byte{}, rec...), rec...)
	e.Add(two, 1, 1) // does not start where the previous record ended
	if out, ok := e.Encode([]byte("x"), two); ok || string(out) != "x" {
		t.Errorf("records out of order: encoded %q, %v", out, ok)
	}
	e.Reset()
	e.Add(two[:len(rec)], 0, 1)
	e.Add(two, len(rec), 1)
	if _, ok := e.Encode(nil, two[:len(rec)]); ok {
		t.Error("a block shorter than described was encoded")
	}
	e.Reset()
	e.Add(two[:len(rec)], 0, 1)
	e.Add(two, len(rec), 1)
	out, ok := e.Encode(nil, two)
	if !ok {
		t.Fatal("a fresh block after Reset was refused")
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	if got, err := dec.DecodeAll(out, nil); err != nil || !bytes.Equal(got, two) {
		t.Errorf("after Reset: %v", err)
	}
}

func TestEncodeAllocatesNothing(t *testing.T) {
	raws, _ := blocks(t, loads()["64 flows"], 64<<10)
	recs := loads()["64 flows"]
	var e Encoder
	dst := make([]byte, 0, 1<<20)
	run := func() {
		e.Reset()
		var raw []byte = raws[0][:0:len(raws[0])]
		for _, r := range recs {
			if len(raw)+len(r.b) > cap(raw) {
				break
			}
			start := len(raw)
			raw = append(raw, r.b...)
			e.Add(raw, start, r.key)
		}
		dst, _ = e.Encode(dst[:0], raw)
	}
	run() // sizes the scratch space
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Errorf("%v allocations a block", n)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add([]byte("\x10\x00\x01abcdefghijklmnop\x10\x00\x01abcdefghijklmnop"), uint16(60000), uint8(0))
	f.Add(bytes.Repeat([]byte{3, 0, 0, 1, 2, 3}, 50), uint16(100), uint8(1))
	f.Add(bytes.Repeat([]byte{200, 1, 0}, 1), uint16(65535), uint8(200)) // frames of many blocks
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	f.Fuzz(func(t *testing.T, in []byte, size uint16, repeat uint8) {
		// in is a list of records: length <1b>, key <2b>, bytes; the list
		// is added repeat+1 times, in frames of about size*16 bytes.
		var e Encoder
		var raw []byte
		check := func() {
			out, ok := e.Encode(nil, raw)
			if !ok {
				if e.Gain() > len(raw)/2 {
					t.Fatalf("frame of %d bytes with %d bytes of matches refused", len(raw), e.Gain())
				}
			} else if got, err := dec.DecodeAll(out, nil); err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("frame of %d bytes: %v", len(raw), err)
			}
			raw = raw[:0]
			e.Reset()
		}
		for range int(repeat) + 1 {
			for rest := in; len(rest) >= 3; {
				n, key := int(rest[0]), uint32(binary.LittleEndian.Uint16(rest[1:]))
				rest = rest[3:]
				n = min(n, len(rest))
				start := len(raw)
				raw = append(raw, rest[:n]...)
				rest = rest[n:]
				e.Add(raw, start, key)
				if len(raw) >= 16*int(size) {
					check()
				}
			}
		}
		check()
	})
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"64 flows", "new flow each frame"} {
		recs := loads()[name]
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			var e Encoder
			raw := make([]byte, 0, 80<<10)
			dst := make([]byte, 0, 80<<10)
			var bytes int
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := recs[i%len(recs)]
				start := len(raw)
				raw = append(raw, r.b...)
				e.Add(raw, start, r.key)
				bytes += len(r.b)
				if len(raw) >= 64<<10 {
					dst, _ = e.Encode(dst[:0], raw)
					raw = raw[:0]
					e.Reset()
				}
			}
			b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// TestFramesStable: the frames' bytes do not change with the encoder's
// inner workings (stores written before and after read the same, and a
// shard's bytes stay a function of its packets). The digest is of the
// frames the encoder of 2026-12-07 wrote for every load, in blocks of
// each size (since its second round that day: a flood's first sequence in
// a block of its own); TestRoundTrip (klauspost/compress's decoder) and
// TestZstdOracle (the zstd command) check that they decode.
func TestFramesStable(t *testing.T) {
	ls := loads()
	names := make([]string, 0, len(ls))
	for name := range ls {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		for _, size := range []int{1, 4 << 10, 64 << 10, 126 << 10, 300 << 10, 4 << 20} {
			_, frames := blocks(t, ls[name], size)
			for _, f := range frames {
				h.Write(f)
			}
		}
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), "6ac35863a87ca1b438b1b16394106b4a006d7a345dc1df3495df0f28e9243e04"; got != want {
		t.Errorf("frames' SHA-256 %s, want %s", got, want)
	}
}

// TestRepeatedCodes round-trips blocks whose sequences repeat with a
// period (records of a few shapes in turn, as a flood's two sequences a
// record do), which the coding loop writes by copying the bits of one
// period once its FSE states come back: periods of one to six
// sequences, lengths with and without extra bits, offsets coded with
// their table or sent once, and runs broken by an odd record. Both
// klauspost/compress and the zstd command decode them.
func TestRepeatedCodes(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	var all, allRaw [][]byte
	for _, c := range []struct {
		name   string
		shapes [][]int // bytes of the frame changed in each shape, in turn
		keys   int     // records cycle over this many keys (0: one key each)
		shared int     // every shared-th record has key 1, the others one each
		odd    int     // every odd-th record is random (0: none)
		size   int     // frame bytes
	}{
		{"two changes", [][]int{{26, 27, 34}}, 0, 0, 0, 64},
		{"shapes alternate", [][]int{{26, 34}, {20, 21, 22, 40, 41}}, 0, 0, 0, 64},
		{"three shapes", [][]int{{26}, {30, 31, 50}, {44}}, 0, 0, 0, 96},
		{"long literals", [][]int{{20, 60}, {24, 90, 91}}, 0, 0, 0, 160},
		{"long matches", [][]int{{20}, {200}}, 0, 0, 0, 600},
		{"keys alternate", [][]int{{26, 27, 34}}, 2, 0, 0, 64},
		{"keys in threes", [][]int{{26}, {40, 41}}, 3, 0, 0, 80},
		// Offsets of 4 and 1 records back in turn: offset codes 1, 1, 0, 0.
		{"offsets coded", [][]int{{26, 27, 34}}, 0, 4, 0, 64},
		{"offsets and long lengths", [][]int{span(20, 90)}, 0, 4, 0, 600},
		// Too many bits a period to copy in two words: coded one by one.
		{"longer lengths", [][]int{span(20, 220)}, 0, 4, 0, 2400},
		{"broken runs", [][]int{{26, 27, 34}, {36}}, 0, 0, 37, 64},
	} {
		var recs []record
		for i := range 3000 {
			fr := udpFrame(c.size, 10<<24|1, 1024, nil)
			for _, b := range c.shapes[i%len(c.shapes)] {
				fr[b] = byte(i*7 + b)
			}
			if c.odd > 0 && i%c.odd == c.odd-1 {
				for j := 14; j < len(fr); j++ {
					fr[j] = byte(rng.Uint32())
				}
			}
			key := uint32(i + 2)
			switch {
			case c.keys > 0:
				key = uint32(i%c.keys + 1)
			case c.shared > 0 && i%c.shared == 0:
				key = 1
			}
			recs = append(recs, record{pcapRecord(t0.Add(time.Duration(i)*500*time.Nanosecond), fr), key})
		}
		for _, size := range []int{4 << 10, 64 << 10, 1 << 30} {
			raws, frames := blocks(t, recs, size)
			for i, f := range frames {
				got, err := dec.DecodeAll(f, nil)
				if err != nil || !bytes.Equal(got, raws[i]) {
					t.Fatalf("%s, blocks of %d: block %d of %d bytes: decoded %d bytes: %v", c.name, size, i, len(raws[i]), len(got), err)
				}
			}
			all, allRaw = append(all, frames...), append(allRaw, raws...)
		}
	}
	zstdDecodes(t, "repeated", all, allRaw)
}

// TestUniformBlockBits round-trips blocks of alike sequences sent with
// every code in RLE mode (uniformBlock), whose bit stream holds only the
// lengths' extra bits: from none to 20 a sequence, lengths that vary
// within their codes, in frames of 200 to 2,000 records. Both
// klauspost/compress and the zstd command decode them.
func TestUniformBlockBits(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var all, allRaw [][]byte
	for _, c := range []struct {
		name    string
		size    int // frame bytes
		changed int // bytes changed a record (its literals, within its code's range)
		vary    int // the changed bytes' start moves by up to this much
		n       int // records
	}{
		{"no extra bits", 20, 4, 0, 400},
		{"a time stamp's bits", 64, 2, 2, 2000},
		{"literal bits only", 30, 20, 0, 400},
		{"match bits", 600, 4, 3, 300},
		{"both, wide", 3000, 1100, 20, 200},
		{"long literals", 3000, 2100, 20, 200},
	} {
		var recs []record
		for i := range c.n {
			fr := make([]byte, c.size)
			for j := range fr {
				fr[j] = byte(j)
			}
			at := 2 + (i*7)%(c.vary+1)
			for j := at; j < at+c.changed; j++ {
				fr[j] = byte(i*13 + j)
			}
			recs = append(recs, record{pcapRecord(t0, fr), uint32(1 + i%2)})
		}
		raws, frames := blocks(t, recs, 1<<30)
		uniform := false
		for i, f := range frames {
			got, err := dec.DecodeAll(f, nil)
			if err != nil || !bytes.Equal(got, raws[i]) {
				t.Fatalf("%s: frame %d of %d bytes: decoded %d bytes: %v", c.name, i, len(raws[i]), len(got), err)
			}
			for _, b := range blockShapes(t, f) {
				uniform = uniform || b.seqs >= minRun && b.modes == modeRLE<<6|modeRLE<<4|modeRLE<<2
			}
		}
		if !uniform {
			t.Errorf("%s: no block of alike sequences with every code in RLE mode", c.name)
		}
		all, allRaw = append(all, frames...), append(allRaw, raws...)
	}
	zstdDecodes(t, "uniform", all, allRaw)
}

// span is the numbers from a up to b.
func span(a, b int) []int {
	var s []int
	for i := a; i < b; i++ {
		s = append(s, i)
	}
	return s
}
