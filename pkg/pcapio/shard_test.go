package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
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
	for _, bad := range [][]byte{nil, good[:30], append([]byte("garbage!"), good[8:]...)} {
		if _, err := OpenShard(bytes.NewReader(bad), int64(len(bad))); err == nil {
			t.Errorf("%d bytes of non-shard opened", len(bad))
		}
	}
	v := bytes.Clone(good)
	binary.LittleEndian.PutUint16(v[12:], 9) // version field: the header CRC then fails too
	if _, err := OpenShard(bytes.NewReader(v), int64(len(v))); err == nil {
		t.Error("a shard with a changed header opened")
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
				if len(p.Data) > MaxPacket {
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
