package reczstd

import (
	"bytes"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestLongMatchSplit: a record that repeats its reference for longer
// than a sequence may describe (maxSeq: each sequence fits a block) is
// cut by newMatch into matches of maxSeq/2, each after no literals and
// with the offset of the one before. Records of large identical frames
// (64 KiB of zeros, of a byte pattern, and frames longer than a block)
// make such runs; the frame must decode, with klauspost/compress and the
// zstd command, to exactly its content, and its sequences must show the
// cuts and keep to the bounds.
func TestLongMatchSplit(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	pattern := func(b []byte) {
		for i := range b {
			b[i] = byte(i % 251)
		}
	}
	var all, allRaw [][]byte
	for _, c := range []struct {
		name    string
		size    int              // frame bytes
		fill    func([]byte)     // payload; nil: zeros
		records int              // in the block
		key     func(int) uint32 // of record i
		cuts    int              // cut matches in the block
	}{
		// Each record after the first matches the one before from its
		// time stamp's last byte to its end: 64 KiB and more in one run,
		// cut twice.
		{"64 KiB zeros, one key", 64 << 10, nil, 4, func(int) uint32 { return 1 }, 2 * 3},
		{"64 KiB zeros, no key", 64 << 10, nil, 4, func(int) uint32 { return 0 }, 2 * 3},
		{"64 KiB pattern, one key", 64 << 10, pattern, 4, func(int) uint32 { return 1 }, 2 * 3},
		// Two flows in turn: the reference is two records back (the
		// second flow's first record has the first's as its reference).
		{"64 KiB zeros, two keys", 64 << 10, nil, 6, func(i int) uint32 { return uint32(i%2 + 1) }, 2 * 5},
		// A frame longer than a zstd block (a jumbo or reassembled
		// record, snap length 256 KiB): a run cut eight times.
		{"256 KiB zeros", 256 << 10, nil, 3, func(int) uint32 { return 1 }, 8 * 2},
		// At the cut and just past it: a record's run is its frame and
		// 13 bytes of pcap headers around it (its lengths, the next
		// record's seconds and a byte of its nanoseconds), 9 for the
		// last record. maxSeq/2+minMatch bytes stay one match; one more
		// is cut.
		{"run at the cut", maxSeq/2 + minMatch - 13, nil, 5, func(int) uint32 { return 1 }, 0},
		{"runs just past the cut", maxSeq/2 + minMatch + 1 - 9, nil, 5, func(int) uint32 { return 1 }, 1 * 4},
	} {
		var e Encoder
		var raw []byte
		for i := range c.records {
			start := len(raw)
			raw = append(raw, pcapRecord(t0.Add(time.Duration(i)*time.Millisecond), udpFrame(c.size, 10<<24|1, 1024, c.fill))...)
			e.Add(raw, start, c.key(i))
		}
		// The sequences: they cover the described bytes, each match
		// fits a block and zstd's longest match (131074: literals too
		// many for one block Encode sends as raw blocks), and the cuts
		// are there.
		covered, cuts := 0, 0
		for i, s := range e.seqs {
			covered += int(s.litLen + s.matchLen)
			if s.matchLen < minMatch || s.matchLen > maxSeq || s.offset == 0 || int(s.offset) > covered-int(s.matchLen) {
				t.Fatalf("%s: sequence %d %+v out of bounds", c.name, i, s)
			}
			if i > 0 && s.litLen == 0 && s.offset == e.seqs[i-1].offset {
				if e.seqs[i-1].matchLen != maxSeq/2 {
					t.Fatalf("%s: sequence %d %+v goes on from %+v, which is not a cut of maxSeq/2", c.name, i, s, e.seqs[i-1])
				}
				cuts++
			}
		}
		if covered != e.litStart || e.litStart > len(raw) {
			t.Fatalf("%s: sequences cover %d bytes, litStart %d, content %d", c.name, covered, e.litStart, len(raw))
		}
		if cuts != c.cuts {
			t.Errorf("%s: %d cut matches, want %d: %+v", c.name, cuts, c.cuts, e.seqs)
		}
		f, ok := e.Encode(nil, raw)
		if !ok {
			t.Fatalf("%s: Encode refused %d bytes with %d bytes of matches", c.name, len(raw), e.Gain())
		}
		if len(f) > len(raw)/c.records+len(raw)/10 {
			t.Errorf("%s: %d bytes -> %d: the repeats did not shrink", c.name, len(raw), len(f))
		}
		var seqs int
		for _, b := range blockShapes(t, f) {
			seqs += b.seqs
		}
		if seqs != len(e.seqs) {
			t.Errorf("%s: the frame's blocks hold %d sequences, the encoder made %d", c.name, seqs, len(e.seqs))
		}
		got, err := dec.DecodeAll(f, nil)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%s: %d bytes decoded to %d: %v", c.name, len(raw), len(got), err)
		}
		all, allRaw = append(all, f), append(allRaw, raw)
	}
	zstdDecodes(t, "longmatch", all, allRaw)
}
