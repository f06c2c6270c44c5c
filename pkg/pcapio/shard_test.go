package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// buildShard writes pkts into blocks of per packets and seals it unless open.
func buildShard(t testing.TB, pkts []Packet, per int, sealed bool) []byte {
	t.Helper()
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	var buf bytes.Buffer
	sw, err := NewShardWriter(&buf, ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: 65535, Nanos: true, Created: time.Unix(1, 0), Writer: "t", Seq: 7}, enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(pkts); i += per {
		var raw []byte
		end := min(i+per, len(pkts))
		first, last := pkts[i].Timestamp.UnixNano(), pkts[i].Timestamp.UnixNano()
		for _, p := range pkts[i:end] {
			raw = AppendRecord(raw, p.Timestamp, p.Data, p.OrigLen, true)
			first, last = min(first, p.Timestamp.UnixNano()), max(last, p.Timestamp.UnixNano())
		}
		if err := sw.Append(EncodeBlock(nil, enc, raw, sw.NextBlock(), first, last, end-i)); err != nil {
			t.Fatal(err)
		}
	}
	if sealed {
		if err := sw.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func readShard(t *testing.T, b []byte) (*Shard, []Packet, []error) {
	t.Helper()
	sh, err := OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("OpenShard: %v", err)
	}
	br := NewBlockReader()
	defer br.Close()
	var out []Packet
	var errs []error
	for i := range sh.Blocks {
		raw, _, err := br.Read(sh, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(p Packet) bool {
			p.Data = bytes.Clone(p.Data)
			out = append(out, p)
			return true
		})
	}
	return sh, out, errs
}

func TestShardRoundTrip(t *testing.T) {
	pkts := testPackets(100)
	for _, sealed := range []bool{true, false} {
		b := buildShard(t, pkts, 7, sealed)
		sh, got, errs := readShard(t, b)
		if len(errs) != 0 || sh.Sealed != sealed || len(sh.Blocks) != 15 || sh.Packets != 100 {
			t.Fatalf("sealed=%v: %d blocks, %d packets, sealed %v, errors %v", sealed, len(sh.Blocks), sh.Packets, sh.Sealed, errs)
		}
		if sh.Header.Writer != "t" || sh.Header.Seq != 7 || !sh.Header.Nanos {
			t.Errorf("header %+v", sh.Header)
		}
		for i := range pkts {
			if !bytes.Equal(got[i].Data, pkts[i].Data) || !got[i].Timestamp.Equal(pkts[i].Timestamp) {
				t.Fatalf("packet %d differs", i)
			}
		}
		// zstd -dc of a shard is a valid pcap: our own reader takes it.
		dec, _ := zstd.NewReader(nil)
		plain, err := dec.DecodeAll(b, nil)
		if err != nil {
			t.Fatalf("a shard must decompress as plain zstd: %v", err)
		}
		if n := len(readAllPackets(t, plain)); n != 100 {
			t.Errorf("decompressed shard holds %d packets", n)
		}
	}
}

func readAllPackets(t *testing.T, b []byte) []Packet {
	got, bad := readAll(t, b)
	if len(bad) != 0 {
		t.Fatalf("damage: %v", bad[0])
	}
	return got
}

func TestShardDamage(t *testing.T) {
	pkts := testPackets(60)
	good := buildShard(t, pkts, 10, true)
	sh, _, _ := readShard(t, good)
	// A flipped byte inside block 2's data: that block fails its CRC,
	// the others read.
	b := bytes.Clone(good)
	b[sh.Blocks[2].Offset+blockHdrFrame+3] ^= 1
	_, got, errs := readShard(t, b)
	var be *BlockError
	if len(errs) != 1 || !errors.As(errs[0], &be) || be.Block != 2 || len(got) != 50 {
		t.Fatalf("flipped data: %d packets, errors %v", len(got), errs)
	}
	// A damaged trailer: the shard is read by walking, all blocks intact.
	b = bytes.Clone(good)
	b[len(b)-20] ^= 1
	sh2, got, errs := readShard(t, b)
	if sh2.Sealed || len(got) != 60 || len(errs) != 0 {
		t.Fatalf("damaged trailer: sealed %v, %d packets, %v", sh2.Sealed, len(got), errs)
	}
	// An open shard cut in the middle of block 4: blocks 0-3 are found and
	// the cut is reported as where recovery must truncate.
	open := buildShard(t, pkts, 10, false)
	shOpen, _, _ := readShard(t, open)
	cut := open[:shOpen.Blocks[4].Offset+30]
	sh3, got, errs := readShard(t, cut)
	if len(sh3.Blocks) != 4 || len(got) != 40 || len(errs) != 0 || sh3.End != shOpen.Blocks[4].Offset || sh3.Damage == nil {
		t.Fatalf("cut shard: %d blocks, %d packets, end %d (want %d), damage %v", len(sh3.Blocks), len(got), sh3.End, shOpen.Blocks[4].Offset, sh3.Damage)
	}
	// Neither a shard header nor a pcap header frame: not a shard.
	plain := pcapBytes(pkts, binary.LittleEndian, true)
	for _, bad := range [][]byte{nil, good[:30], plain, append([]byte("garbage!"), plain[8:]...)} {
		if _, err := OpenShard(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrNotShard) && !errors.Is(err, ErrShardTruncated) {
			t.Errorf("%d bytes of non-shard: %v", len(bad), err)
		}
	}
	// A version this build does not know, with an intact header, is refused.
	v := bytes.Clone(good)
	binary.LittleEndian.PutUint16(v[12:], 9)
	binary.LittleEndian.PutUint32(v[44:], CRC(v[8:44]))
	if _, err := OpenShard(bytes.NewReader(v), int64(len(v))); !errors.Is(err, ErrShardVersion) {
		t.Errorf("shard of version 9: %v", err)
	}
}

// TestShardHeaderDamage flips each byte of the shard header and of the
// pcap header frame in turn, in a sealed and an open shard: every block
// stays readable (the other of the two gives the link type and precision),
// and the damage is named. Both damaged at once, the file is not a shard.
func TestShardHeaderDamage(t *testing.T) {
	pkts := testPackets(60)
	for _, sealed := range []bool{true, false} {
		good := buildShard(t, pkts, 10, sealed)
		sh0, _, _ := readShard(t, good)
		firstBlock := sh0.Blocks[0].Offset
		for i := 0; i < int(firstBlock); i++ {
			b := bytes.Clone(good)
			b[i] ^= 0x41
			sh, got, errs := readShard(t, b)
			if len(got) != 60 || len(errs) != 0 || sh.Sealed != sealed {
				t.Fatalf("sealed=%v, byte %d flipped: %d packets, sealed %v, errors %v", sealed, i, len(got), sh.Sealed, errs)
			}
			if sh.HeaderDamage == "" || len(sh.Gaps) != 0 || sh.Damage != nil {
				t.Fatalf("sealed=%v, byte %d flipped: damage %q, gaps %v, walk damage %v", sealed, i, sh.HeaderDamage, sh.Gaps, sh.Damage)
			}
			if sh.Header.LinkType != pkthdr.LinkEthernet || !sh.Header.Nanos || sh.FirstBlock() != firstBlock {
				t.Fatalf("byte %d flipped: header %+v, first block at %d", i, sh.Header, sh.FirstBlock())
			}
		}
		b := bytes.Clone(good)
		b[20] ^= 1                // shard header
		b[ShardHeaderLen+12] ^= 1 // pcap header content
		if _, err := OpenShard(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotShard) {
			t.Errorf("both headers damaged: %v", err)
		}
	}
}

// TestShardResync damages block headers in the middle of shards without
// a usable trailer: the walk passes over each damaged stretch to the next
// intact block, names the stretch, and finds every other block.
func TestShardResync(t *testing.T) {
	pkts := testPackets(80)
	open := buildShard(t, pkts, 10, false)
	sh0, _, _ := readShard(t, open)
	for _, tc := range []struct {
		name   string
		damage func(b []byte)
		lost   []int // blocks lost
	}{
		{"header CRC", func(b []byte) { b[sh0.Blocks[3].Offset+20] ^= 1 }, []int{3}},
		{"magic", func(b []byte) { b[sh0.Blocks[3].Offset] ^= 1 }, []int{3}},
		{"two blocks", func(b []byte) {
			b[sh0.Blocks[2].Offset+9] ^= 1
			b[sh0.Blocks[5].Offset+40] ^= 1
		}, []int{2, 5}},
		{"adjacent blocks", func(b []byte) {
			copy(b[sh0.Blocks[4].Offset:], make([]byte, sh0.Blocks[6].Offset-sh0.Blocks[4].Offset))
		}, []int{4, 5}},
		{"first block", func(b []byte) { b[sh0.Blocks[0].Offset+30] ^= 1 }, []int{0}},
		// A header with a trailer's magic is still damage, not the end.
		{"trailer magic", func(b []byte) { b[sh0.Blocks[3].Offset] = 0x5f }, []int{3}},
	} {
		for _, sealed := range []bool{false, true} {
			b := bytes.Clone(open)
			if sealed {
				b = buildShard(t, pkts, 10, true)
				b[len(b)-30] ^= 1 // the trailer too
			}
			tc.damage(b)
			sh, got, errs := readShard(t, b)
			if sh.Sealed || len(errs) != 0 || sh.Damage != nil {
				t.Fatalf("%s (sealed %v): sealed %v, errors %v, damage %v", tc.name, sealed, sh.Sealed, errs, sh.Damage)
			}
			want := 80 - 10*len(tc.lost)
			if len(got) != want || len(sh.Blocks) != 8-len(tc.lost) || len(sh.Gaps) != len(tc.lost)-countAdjacent(tc.lost) {
				t.Fatalf("%s (sealed %v): %d packets in %d blocks (want %d), gaps %v", tc.name, sealed, len(got), len(sh.Blocks), want, sh.Gaps)
			}
			if g := sh.Gaps[0]; g.Offset != sh0.Blocks[tc.lost[0]].Offset {
				t.Errorf("%s: gap at %d, want %d", tc.name, g.Offset, sh0.Blocks[tc.lost[0]].Offset)
			}
			for _, blk := range sh.Blocks {
				if slicesContains(tc.lost, int(blk.Number)) {
					t.Errorf("%s: damaged block %d found", tc.name, blk.Number)
				}
			}
			if sh.End != sh0.Blocks[7].Offset+int64(BlockSpan(sh0.Blocks[7])) {
				t.Errorf("%s: end %d", tc.name, sh.End)
			}
		}
	}
	// A block cut off by the end of the file ends the walk: nothing is
	// looked for past it (a writer may be appending it).
	cut := open[:sh0.Blocks[6].Offset+100]
	sh, got, _ := readShard(t, cut)
	if len(got) != 60 || len(sh.Gaps) != 0 || sh.Damage == nil || sh.Damage.Offset != sh0.Blocks[6].Offset {
		t.Errorf("cut shard: %d packets, gaps %v, damage %v", len(got), sh.Gaps, sh.Damage)
	}
	// Damage to the end of the file: the walk stops there.
	tail := bytes.Clone(open)
	copy(tail[sh0.Blocks[6].Offset:], make([]byte, len(tail)-int(sh0.Blocks[6].Offset)))
	sh, got, _ = readShard(t, tail)
	if len(got) != 60 || len(sh.Gaps) != 0 || sh.Damage == nil {
		t.Errorf("zeroed tail: %d packets, gaps %v, damage %v", len(got), sh.Gaps, sh.Damage)
	}
}

func countAdjacent(l []int) int {
	n := 0
	for i := 1; i < len(l); i++ {
		if l[i] == l[i-1]+1 {
			n++
		}
	}
	return n
}

func slicesContains(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// TestLargeRecords stores packets longer than libpcap's 262,144 bytes in a
// shard and reads them back whole, up to the format's 8 MiB.
func TestLargeRecords(t *testing.T) {
	pkts := testPackets(6)
	for i, n := range []int{300000, MaxRecord, 70000} {
		d := make([]byte, n)
		copy(d, pkts[i].Data)
		for j := len(pkts[i].Data); j < n; j++ {
			d[j] = byte(j * 7)
		}
		pkts[i].Data, pkts[i].OrigLen = d, n
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	var buf bytes.Buffer
	sw, err := NewShardWriter(&buf, ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: MaxRecord, Nanos: true, Created: time.Unix(1, 0), Writer: "t"}, enc)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		raw := AppendRecord(nil, p.Timestamp, p.Data, p.OrigLen, true)
		ts := p.Timestamp.UnixNano()
		if err := sw.Append(EncodeBlock(nil, enc, raw, i, ts, ts, 1)); err != nil {
			t.Fatal(err)
		}
	}
	sw.Finish()
	sh, got, errs := readShard(t, buf.Bytes())
	if len(errs) != 0 || len(got) != len(pkts) || sh.Header.Version != ShardVersion {
		t.Fatalf("%d packets, errors %v", len(got), errs)
	}
	for i := range pkts {
		if !bytes.Equal(got[i].Data, pkts[i].Data) {
			t.Errorf("packet %d: %d bytes back of %d", i, len(got[i].Data), len(pkts[i].Data))
		}
	}
	if _, err := NewShardWriter(io.Discard, ShardHeader{Snaplen: MaxRecord + 1}, enc); err == nil {
		t.Error("a snaplen above MaxRecord was accepted")
	}
}

// TestDecodeCapped: a block whose zstd frame decodes to more than the raw
// length its header declares is damage, found without decoding past it.
func TestDecodeCapped(t *testing.T) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	var buf bytes.Buffer
	sw, _ := NewShardWriter(&buf, ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: 65535, Writer: "t"}, enc)
	bomb := make([]byte, 12<<20) // zeros: a frame of a few hundred bytes
	for _, withSize := range []bool{true, false} {
		frame := enc.EncodeAll(bomb, nil)
		if !withSize {
			var fb bytes.Buffer
			w, _ := zstd.NewWriter(&fb)
			w.Write(bomb) // streamed: no content size in the frame header
			w.Close()
			frame = fb.Bytes()
		}
		eb := EncodeBlock(nil, enc, []byte("x"), sw.NextBlock(), 1, 1, 1)
		// Replace the data frame, keeping a header that checks.
		h := eb.Bytes[:blockHdrFrame:blockHdrFrame]
		binary.LittleEndian.PutUint32(h[8+28:], 4096) // raw length
		binary.LittleEndian.PutUint32(h[8+32:], uint32(len(frame)))
		binary.LittleEndian.PutUint32(h[8+36:], CRC(frame))
		binary.LittleEndian.PutUint32(h[8+40:], CRC(h[8:8+40]))
		eb.Bytes = append(h, frame...)
		eb.Meta.RawLen, eb.Meta.DataLen, eb.Meta.DataCRC = 4096, uint32(len(frame)), CRC(frame)
		sw.Append(eb)
	}
	sw.Finish()
	sh, _, errs := readShard(t, buf.Bytes())
	if len(sh.Blocks) != 2 || len(errs) != 2 {
		t.Fatalf("%d blocks, errors %v", len(sh.Blocks), errs)
	}
	br := NewBlockReader()
	defer br.Close()
	for i := range sh.Blocks {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := br.Read(sh, i)
		runtime.ReadMemStats(&after)
		if err == nil || after.TotalAlloc-before.TotalAlloc > 1<<20 {
			t.Errorf("block %d: %v after allocating %d bytes", i, err, after.TotalAlloc-before.TotalAlloc)
		}
	}
}

// FuzzShard opens arbitrary bytes as a shard and reads every block: it
// must never panic or allocate beyond its bounds.
func FuzzShard(f *testing.F) {
	pkts := testPackets(20)
	f.Add(buildShard(f, pkts, 6, true))
	f.Add(buildShard(f, pkts, 6, false))
	f.Add(buildShard(f, pkts[:1], 1, true)[:70])
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := OpenShard(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		br := NewBlockReader()
		defer br.Close()
		for i := range sh.Blocks {
			raw, _, err := br.Read(sh, i)
			if err != nil {
				continue
			}
			Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(p Packet) bool {
				if len(p.Data) > MaxRecord {
					t.Fatalf("record of %d bytes", len(p.Data))
				}
				return true
			})
		}
	})
}

func TestLazyEntries(t *testing.T) {
	// Enough blocks for the table to span several chunks of tocChunk.
	pkts := testPackets(3 * tocChunk / trailerEntry)
	b := buildShard(t, pkts, 1, true)
	full, err := OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, lazyOpen := range []bool{true, false} {
		sh, err := OpenShardTOC(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if !lazyOpen {
			if err := sh.LoadTOC(); err != nil {
				t.Fatal(err)
			}
		}
		var got []BlockMeta
		if _, err := sh.AllEntries(nil, func(i uint32, m BlockMeta) {
			if int(i) != len(got) {
				t.Fatalf("entry %d given as %d", len(got), i)
			}
			got = append(got, m)
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(full.Blocks) {
			t.Fatalf("lazy=%v: %d entries, want %d", lazyOpen, len(got), len(full.Blocks))
		}
		for i := range got {
			if got[i] != full.Blocks[i] {
				t.Fatalf("lazy=%v: entry %d = %+v, want %+v", lazyOpen, i, got[i], full.Blocks[i])
			}
		}
		// Entries for a sparse list gives the same entries: entries close
		// together and far apart, at chunk edges, a run longer than a
		// chunk, a repeat.
		const chunk = tocChunk / trailerEntry
		want := []uint32{0, 5, 5 + tocGap, 6 + 2*tocGap + 1, chunk - 1, chunk, chunk}
		for i := uint32(chunk + 2); i < 2*chunk+10; i++ {
			want = append(want, i)
		}
		want = append(want, uint32(len(got)-1))
		var n int
		if _, err := sh.Entries(want, nil, func(i uint32, m BlockMeta) {
			if i != want[n] || m != full.Blocks[i] {
				t.Fatalf("Entries: %d: block %d %+v", n, i, m)
			}
			n++
		}); err != nil || n != len(want) {
			t.Fatalf("Entries: %d of %d, %v", n, len(want), err)
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.n += len(p)
	return c.r.ReadAt(p, off)
}

// A few scattered entries cost a few reads of about a page each, not
// chunks of the table.
func TestEntriesReadsLittle(t *testing.T) {
	pkts := testPackets(3 * tocChunk / trailerEntry)
	b := buildShard(t, pkts, 1, true)
	cr := &countingReader{r: bytes.NewReader(b)}
	sh, err := OpenShardTOC(cr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	opened := cr.n
	want := []uint32{3, 700, 1500, 2900, 4000, 5500}
	if _, err := sh.Entries(want, nil, func(uint32, BlockMeta) {}); err != nil {
		t.Fatal(err)
	}
	if read := cr.n - opened; read > len(want)*trailerEntry {
		t.Errorf("%d bytes read for %d scattered entries", read, len(want))
	}
}

// Blocks that compression barely shrinks are written as stored frames:
// standard zstd, decoded by any decoder, and read in place by
// BlockReader. Compressible blocks stay compressed; blocks over 128 KiB
// take several raw blocks and the ordinary decoder.
func TestStoredBlocks(t *testing.T) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	dec, _ := zstd.NewReader(nil)
	rng := rand.New(rand.NewSource(1))
	records := func(n, size int, random bool) []byte {
		var raw []byte
		for i := 0; i < n; i++ {
			data := make([]byte, size)
			if random {
				rng.Read(data)
			}
			raw = AppendRecord(raw, time.Unix(1700000000, int64(i)), data, size, true)
		}
		return raw
	}
	// Packets whose first plain bytes repeat (headers) and the rest are
	// random (encrypted payload): compression saves about plain/size.
	partly := func(n, size, plain int) []byte {
		var raw []byte
		for i := 0; i < n; i++ {
			data := make([]byte, size)
			rng.Read(data[plain:])
			raw = AppendRecord(raw, time.Unix(1700000000, int64(i)), data, size, true)
		}
		return raw
	}
	cases := []struct {
		name    string
		raw     []byte
		stored  bool // a stored frame
		inPlace bool // read without decompressing
	}{
		{"incompressible", records(20, 1500, true), true, true},
		{"compressible", records(20, 1500, false), false, false},
		{"large-incompressible", records(200, 1500, true), true, false},
		// The threshold is 1/storeGain of the block.
		{"saves-a-twelfth", partly(20, 1500, 1500/12), true, true},
		{"saves-a-fifth", partly(20, 1500, 1500/5), false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eb := EncodeBlock(nil, enc, c.raw, 0, 1, 2, 20)
			data := eb.Bytes[blockHdrFrame:]
			isStored := len(data) > 4 && data[4] == storedFHD
			if isStored != c.stored {
				t.Fatalf("stored frame %v, want %v (%d of %d bytes)", isStored, c.stored, len(data), len(c.raw))
			}
			if len(data) > len(c.raw)+storedHdr+rawBlockHeader*(len(c.raw)/maxRawBlock+1) {
				t.Errorf("%d bytes for %d raw", len(data), len(c.raw))
			}
			// Any zstd decoder reads it.
			plain, err := dec.DecodeAll(data, nil)
			if err != nil || !bytes.Equal(plain, c.raw) {
				t.Fatalf("zstd decode: %v", err)
			}
			if _, ok := zstdFrameLen(data); !ok {
				t.Errorf("frame length not found")
			}
			// Through a shard and BlockReader.
			var buf bytes.Buffer
			sw, err := NewShardWriter(&buf, ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: 65535, Nanos: true, Created: time.Unix(1, 0), Writer: "t"}, enc)
			if err != nil {
				t.Fatal(err)
			}
			if err := sw.Append(eb); err != nil {
				t.Fatal(err)
			}
			if err := sw.Finish(); err != nil {
				t.Fatal(err)
			}
			sh, err := OpenShard(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			br := NewBlockReader()
			defer br.Close()
			raw, owner, _, err := br.ReadInto(sh, 0, sh.Block(0), nil)
			if err != nil || !bytes.Equal(raw, c.raw) {
				t.Fatalf("ReadInto: %v", err)
			}
			// In place: the records lie within the buffer the block was
			// read into, after the block header and frame header.
			inPlace := &owner[:blockHdrFrame+storedHdr+rawBlockHeader+1][blockHdrFrame+storedHdr+rawBlockHeader] == &raw[0]
			if inPlace != c.inPlace {
				t.Errorf("read in place %v, want %v", inPlace, c.inPlace)
			}
		})
	}
	// A damaged stored frame (a raw block header that lies) is not taken
	// in place: the decoder reports it.
	eb := EncodeBlock(nil, enc, records(20, 1500, true), 0, 1, 2, 20)
	data := eb.Bytes[blockHdrFrame:]
	data[9] ^= 0x08 // block size off by one
	if _, ok := storedContent(data, eb.Meta.RawLen); ok {
		t.Errorf("a frame whose block size disagrees taken in place")
	}
}

// FuzzStoredContent: storedContent accepts only frames that decode, by
// any zstd decoder, to what it returns.
func FuzzStoredContent(f *testing.F) {
	f.Add(appendStored(nil, []byte("records")), uint32(7))
	f.Add(appendStored(nil, nil), uint32(0))
	dec, _ := zstd.NewReader(nil)
	f.Fuzz(func(t *testing.T, frame []byte, rawLen uint32) {
		content, ok := storedContent(frame, rawLen)
		if !ok {
			return
		}
		plain, err := dec.DecodeAll(frame, nil)
		if err != nil || !bytes.Equal(plain, content) || len(content) != int(rawLen) {
			t.Fatalf("taken in place as %q, decodes to %q (%v)", content, plain, err)
		}
	})
}

// TestMendBlockHeader flips each byte of a block's header frame in turn:
// the header rebuilt from the intact data is the original, byte for byte.
// A stretch whose data is damaged too, or that holds two blocks, is not
// mended.
func TestMendBlockHeader(t *testing.T) {
	pkts := testPackets(60)
	b := buildShard(t, pkts, 10, false)
	sh, _, _ := readShard(t, b)
	m := sh.Blocks[3]
	span := int64(BlockSpan(m))
	orig := bytes.Clone(b[m.Offset : m.Offset+blockHdrFrame])
	for i := 0; i < blockHdrFrame; i++ {
		stretch := bytes.Clone(b[m.Offset : m.Offset+span])
		stretch[i] ^= 0x24
		hdr, got, ok := MendBlockHeader(stretch, 3, true)
		if i >= 8+36 && i < 8+40 {
			// The data CRC field: nothing vouches for the data.
			if ok {
				t.Fatalf("byte %d (data CRC) flipped: mended", i)
			}
			continue
		}
		if !ok || !bytes.Equal(hdr, orig) || got.Packets != 10 {
			t.Fatalf("byte %d flipped: ok %v, header equal %v", i, ok, bytes.Equal(hdr, orig))
		}
	}
	bad := bytes.Clone(b[m.Offset : m.Offset+span])
	bad[20] ^= 1
	bad[blockHdrFrame+12] ^= 1 // the data frame too
	if _, _, ok := MendBlockHeader(bad, 3, true); ok {
		t.Error("a block with damaged data was mended")
	}
	two := bytes.Clone(b[m.Offset : m.Offset+span+int64(BlockSpan(sh.Blocks[4]))])
	two[20] ^= 1
	if _, _, ok := MendBlockHeader(two, 3, true); ok {
		t.Error("a stretch of two blocks was mended as one")
	}
	// A flipped byte in the data's raw block (records still parse), and
	// one in the header: the data is not vouched for, so not mended.
	content := bytes.Clone(b[m.Offset : m.Offset+span])
	content[20] ^= 1
	content[len(content)-3] ^= 1
	if _, _, ok := MendBlockHeader(content, 3, true); ok {
		t.Error("a block with changed content was mended")
	}
}

// FuzzMendBlockHeader: any stretch is refused or gives a header that
// checks and describes the stretch's data.
func FuzzMendBlockHeader(f *testing.F) {
	b := buildShard(f, testPackets(20), 5, false)
	sh, _ := OpenShard(bytes.NewReader(b), int64(len(b)))
	m := sh.Blocks[1]
	f.Add(b[m.Offset : m.Offset+int64(BlockSpan(m))])
	f.Add(b[m.Offset : m.Offset+int64(BlockSpan(m))+60])
	f.Fuzz(func(t *testing.T, stretch []byte) {
		hdr, meta, ok := MendBlockHeader(stretch, 7, true)
		if !ok {
			return
		}
		got, reason := parseBlockHeader(hdr)
		if reason != "" || got.Number != 7 || int(got.DataLen) != len(stretch)-blockHdrFrame || got.DataCRC != CRC(stretch[blockHdrFrame:]) || got.Packets != meta.Packets {
			t.Fatalf("mended header %+v (%s) does not describe the stretch", got, reason)
		}
	})
}

// TestAppendRecordNanos: the nanosecond form writes what AppendRecord
// writes, in both precisions and before 1970.
func TestAppendRecordNanos(t *testing.T) {
	for _, ts := range []time.Time{time.Unix(0, 0), time.Unix(1700000000, 999_999_999), time.Unix(-5, 123_456_789), time.Unix(1, 1)} {
		for _, nanos := range []bool{true, false} {
			data := []byte("frame bytes")
			a := AppendRecord([]byte("x"), ts, data, 60, nanos)
			b := AppendRecordNanos([]byte("x"), ts.UnixNano(), data, 60, nanos)
			if !bytes.Equal(a, b) {
				t.Errorf("%v nanos=%v: % x, want % x", ts, nanos, b, a)
			}
		}
	}
}

// failAfter accepts n bytes, then fails every write (a full disk).
type failAfter struct {
	bytes.Buffer
	n int
}

var errFull = errors.New("no space left")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.Len()+len(p) > f.n {
		k := f.n - f.Len()
		f.Buffer.Write(p[:k])
		return k, errFull
	}
	return f.Buffer.Write(p)
}

// TestAppendBlocks: blocks appended in batches make the same shard, byte
// for byte and block for block, as blocks appended one at a time; a batch
// that fails counts none of its blocks, and the shard cut back to Size()
// and finished reads back every block appended before it.
func TestAppendBlocks(t *testing.T) {
	pkts := testPackets(100)
	want := buildShard(t, pkts, 7, true) // 15 blocks
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	var blocks []EncodedBlock
	for i := 0; i < len(pkts); i += 7 {
		var raw []byte
		end := min(i+7, len(pkts))
		first, last := pkts[i].Timestamp.UnixNano(), pkts[i].Timestamp.UnixNano()
		for _, p := range pkts[i:end] {
			raw = AppendRecord(raw, p.Timestamp, p.Data, p.OrigLen, true)
			first, last = min(first, p.Timestamp.UnixNano()), max(last, p.Timestamp.UnixNano())
		}
		blocks = append(blocks, EncodeBlock(nil, enc, raw, len(blocks), first, last, end-i))
	}
	hdr := ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: 65535, Nanos: true, Created: time.Unix(1, 0), Writer: "t", Seq: 7}
	for _, batches := range [][]int{{15}, {1, 14}, {4, 4, 4, 3}, {1, 1, 13}} {
		var out bytes.Buffer
		sw, err := NewShardWriter(&out, hdr, enc)
		if err != nil {
			t.Fatal(err)
		}
		var buf []byte
		at := 0
		for _, n := range batches {
			if buf, err = sw.AppendBlocks(blocks[at:at+n], buf); err != nil {
				t.Fatal(err)
			}
			at += n
		}
		if err := sw.Finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("batches %v: shard differs from blocks appended one by one (%d bytes, want %d)", batches, out.Len(), len(want))
		}
	}

	// A full disk in the second batch: the first batch's blocks are kept.
	fw := &failAfter{n: 1 << 30}
	sw, err := NewShardWriter(fw, hdr, enc)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := sw.AppendBlocks(blocks[:5], nil)
	if err != nil {
		t.Fatal(err)
	}
	size := sw.Size()
	fw.n = int(size) + len(blocks[5].Bytes) + 3 // room for one block of the next batch and a little
	if _, err := sw.AppendBlocks(blocks[5:9], buf); !errors.Is(err, errFull) {
		t.Fatalf("batch on a full disk: error %v, want %v", err, errFull)
	}
	if sw.Size() != size || sw.NextBlock() != 5 {
		t.Fatalf("after a failed batch: size %d, next block %d; want %d and 5 (nothing counted)", sw.Size(), sw.NextBlock(), size)
	}
	fw.Truncate(int(sw.Size()))
	fw.n = 1 << 30
	if err := sw.Finish(); err != nil {
		t.Fatal(err)
	}
	sh, got, errs := readShard(t, fw.Bytes())
	if len(errs) != 0 || !sh.Sealed || len(sh.Blocks) != 5 || len(got) != 35 {
		t.Fatalf("shard cut back after the failed batch: %d blocks, %d packets, sealed %v, errors %v; want 5 blocks of 35 packets", len(sh.Blocks), len(got), sh.Sealed, errs)
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, pkts[i].Data) || !got[i].Timestamp.Equal(pkts[i].Timestamp) {
			t.Fatalf("packet %d differs", i)
		}
	}
}
