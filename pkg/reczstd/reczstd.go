// Package reczstd compresses a block of packet records into one standard
// zstd frame (RFC 8878), cheaply: instead of searching the whole history
// for matches at every byte, it compares each record with one earlier
// record of the same block, the last one the caller gave the same key
// (the same flow and direction), where the headers repeat at the same
// offsets, as header compression does (RFC 1144). A match that reaches the
// end of a record is carried into the next record when the bytes go on
// matching (the flows interleave in the same order). Sequences are coded
// with zstd's predefined tables (RLE mode for a code that never changes in
// a block: a frame's first sequence, whose offset is new, gets a block of
// its own when the rest all repeat its offset) and literals are stored
// raw, so no table is built per block.
//
// Small packets then cost a word comparison per 8 bytes and one or two
// sequences each, a fraction of a general-purpose matcher's cost, and the
// output is an ordinary zstd frame any decoder reads. Payloads that repeat
// at other offsets are not found: callers compress blocks that gain little
// here with a general-purpose encoder (Gain tells them).
package reczstd

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unsafe"
)

// Frame constants (RFC 8878).
const (
	magic = 0xfd2fb528
	// fhdSingle4 is a frame header descriptor: single segment, 4-byte
	// content size, no checksum, no dictionary.
	fhdSingle4 = 0xa0
	// maxBlock is the most content one zstd block holds (and a compressed
	// block's own size may not exceed): a frame of more is cut into blocks.
	maxBlock = 128 << 10
	// MaxFrame bounds what one Encoder describes: positions and offsets
	// stay in 31 bits, and offsets within what the predefined offset
	// table codes (below 2^28).
	MaxFrame = 1 << 27
	// maxSeq bounds a sequence's match (and, when a match is extended,
	// the literals before it with it), so a match always fits a block;
	// literal runs are not bounded here: the block writer sends long
	// ones as raw blocks.
	maxSeq = maxBlock / 2
	// minMatch is the shortest match worth a sequence: one costs about
	// 3 bytes in the predefined tables.
	minMatch = 6
	// refBits sizes the key table: more slots than the records a 64 KiB
	// block of small packets holds.
	refBits = 12
)

type sequence struct {
	litLen, matchLen, offset uint32
}

type ref struct {
	gen        uint32
	key        uint32
	start, end int32
}

// Encoder gathers the sequences of one block as its records are added,
// and writes the block as a frame. The zero value is ready; it is not
// safe for concurrent use.
type Encoder struct {
	seqs     []sequence
	litStart int // where the literals after the last match begin
	size     int // bytes of the block described so far
	last     ref // the previous record
	refs     *[1 << refBits]ref
	gen      uint32
	lits     int // literal bytes in seqs
	failed   bool
	run      []uint32 // Encode's scratch: alike sequences from each on

	// Encode's scratch.
	codes []seqCode
}

type seqCode struct {
	// pad is never set: with no padding in the struct, two codes are
	// equal when their two words are (repeats).
	ll, ml, of, pad  uint8
	llX, mlX, offVal uint32
}

// Reset starts a new block.
func (e *Encoder) Reset() {
	e.seqs = e.seqs[:0]
	e.litStart, e.size, e.lits = 0, 0, 0
	e.last = ref{}
	e.gen++
	e.failed = false
	if e.gen == 0 { // wrapped: stale slots could look current
		clear(e.refs[:])
		e.gen = 1
	}
}

// Add describes the record block[start:], just appended to the block,
// whose key is key (records with equal keys look alike: the same flow and
// direction; 0 when there is none). Records must be added in order, each
// starting where the previous one ended.
func (e *Encoder) Add(block []byte, start int, key uint32) {
	end := len(block)
	if start != e.size || end > MaxFrame {
		e.failed = true
		e.size = -1
		return
	}
	if e.refs == nil {
		e.refs = new([1 << refBits]ref)
		e.gen = max(e.gen, 1)
	}
	e.size = end
	pos := start
	n0 := len(e.seqs)
	// The reference: the last record with this key, else the previous one.
	r := e.last
	if key != 0 {
		slot := &e.refs[(key*0x9e3779b1)>>(32-refBits)]
		if slot.gen == e.gen && slot.key == key {
			r = *slot
		}
		*slot = ref{gen: e.gen, key: key, start: int32(start), end: int32(end)}
	}
	e.last = ref{gen: e.gen, start: int32(start), end: int32(end)}
	d := 0
	if r.gen == e.gen {
		d = start - int(r.start)
	}
	// Carry a match that ended with the previous record on, when its
	// offset is not the reference's (the scan below extends it when it is).
	if n0 > 0 && e.litStart == start && int(e.seqs[n0-1].offset) != d {
		s := &e.seqs[n0-1]
		m := matchLen(block, pos, int(s.offset), min(end, pos+maxSeq-int(s.litLen+s.matchLen)))
		s.matchLen += uint32(m)
		pos += m
		e.litStart = pos
	}
	if d == 0 {
		return
	}
	stop := min(end, int(r.end)+d) // where the reference runs out
	// One pass over the record a word at a time against the reference:
	// a word's XOR tells where equal bytes begin and end, so runs are
	// found to the byte without looking at bytes one by one.
	m := -1 // where the current run of equal bytes began, if one runs
	for ; pos+8 <= stop; pos += 8 {
		x := load64(block, pos) ^ load64(block, pos-d)
		if x == 0 {
			if m < 0 {
				m = pos
			}
			// Through equal bytes two words at a time.
			for pos+24 <= stop && (load64(block, pos+8)^load64(block, pos+8-d))|(load64(block, pos+16)^load64(block, pos+16-d)) == 0 {
				pos += 16
			}
			continue
		}
		if tz := bits.TrailingZeros64(x) >> 3; m >= 0 {
			if e.worth(m, pos+tz) {
				if !e.push(m, pos+tz, d) && !e.extend(m, pos+tz, d) { // the run ends in this word
					e.newMatch(m, pos+tz, d)
				}
			}
		} else if tz >= minMatch || tz > 0 && pos == e.litStart {
			if !e.extend(pos, pos+tz, d) {
				e.newMatch(pos, pos+tz, d)
			}
		}
		m = -1
		if lz := bits.LeadingZeros64(x) >> 3; lz > 0 {
			m = pos + 8 - lz // a run begins after the word's last difference
		}
	}
	// The last few bytes: the word that ends at stop, its bytes before
	// pos (already seen) shifted out.
	if k := stop - pos; k > 0 {
		if stop-8 < 0 || stop-8-d < 0 {
			for ; pos < stop; pos++ { // a record shorter than a word at the start
				if block[pos] != block[pos-d] {
					if m >= 0 {
						e.match(m, pos, d)
					}
					m = -1
				} else if m < 0 {
					m = pos
				}
			}
		} else {
			x := (load64(block, stop-8) ^ load64(block, stop-8-d)) >> (64 - 8*k)
			if x == 0 {
				if m < 0 {
					m = pos
				}
			} else {
				if tz := bits.TrailingZeros64(x) >> 3; m >= 0 && e.worth(m, pos+tz) {
					if !e.extend(m, pos+tz, d) {
						e.newMatch(m, pos+tz, d)
					}
				}
				m = -1
				if lz := bits.LeadingZeros64(x)>>3 - (8 - k); lz > 0 {
					m = stop - lz
				}
			}
		}
	}
	if m >= 0 && e.worth(m, stop) {
		if !e.push(m, stop, d) && !e.extend(m, stop, d) {
			e.newMatch(m, stop, d)
		}
	}
	e.quantize(n0)
}

// worth reports whether match(a, b, d) may record anything: a run long
// enough for a sequence, or one that may go on from the last match. A
// record's short equal runs (a few bytes between changed fields) are
// turned down here, inline, instead of by a call.
func (e *Encoder) worth(a, b int) bool {
	return b-a >= minMatch || a == e.litStart && b > a
}

// quantize rounds up the literal run of the record's sequence, when the
// record added one (n0 is where its sequences begin), to a multiple of
// litQuantum bytes, taking them from the end of the match before it.
// Records alike but for a field that changes from packet to packet (a
// flow's packets but for a time stamp's low bytes) then give equal
// sequences, which Encode sends in RLE mode: no bits and little work a
// sequence. Records that differ in several places are left as they are:
// their sequences differ anyway.
func (e *Encoder) quantize(n0 int) {
	if len(e.seqs) != n0+1 || n0 == 0 {
		return
	}
	s, p := &e.seqs[n0], &e.seqs[n0-1]
	pad := (litQuantum - s.litLen%litQuantum) % litQuantum
	if s.litLen == 0 || pad == 0 || p.matchLen < pad+minMatch {
		return
	}
	p.matchLen -= pad
	s.litLen += pad
	e.lits += int(pad)
}

// match records that block[a:b] equals the bytes d before it, as a
// sequence when it is long enough to be worth one (several when it is
// longer than a sequence may be).
func (e *Encoder) match(a, b, d int) {
	if !e.extend(a, b, d) {
		e.newMatch(a, b, d)
	}
}

// extend is match's common case, inlined into Add's scan: a run right
// after a match of the same offset goes on (a flow's record past the few
// bytes that changed).
func (e *Encoder) extend(a, b, d int) bool {
	n := len(e.seqs)
	if n == 0 || a != e.litStart || b <= a {
		return false
	}
	p := &e.seqs[n-1]
	if int(p.offset) != d || int(p.litLen+p.matchLen)+b-a > maxSeq {
		return false
	}
	p.matchLen += uint32(b - a)
	e.litStart = b
	return true
}

// push is newMatch's common case, inlined into Add's scan: a run after
// literals (extend takes those that start at litStart) that makes one
// sequence, with room for it.
func (e *Encoder) push(a, b, d int) bool {
	n := len(e.seqs)
	if a <= e.litStart || b-a < minMatch || b-a > maxSeq/2+minMatch || n == cap(e.seqs) {
		return false
	}
	e.seqs = e.seqs[:n+1]
	e.seqs[n] = sequence{litLen: uint32(a - e.litStart), matchLen: uint32(b - a), offset: uint32(d)}
	e.lits += a - e.litStart
	e.litStart = b
	return true
}

// newMatch is match's case of a run that starts sequences of its own.
func (e *Encoder) newMatch(a, b, d int) {
	if b-a < minMatch || a < e.litStart {
		return
	}
	for b-a > maxSeq/2+minMatch {
		e.seqs = append(e.seqs, sequence{litLen: uint32(a - e.litStart), matchLen: maxSeq / 2, offset: uint32(d)})
		e.lits += a - e.litStart
		a += maxSeq / 2
		e.litStart = a
	}
	e.seqs = append(e.seqs, sequence{litLen: uint32(a - e.litStart), matchLen: uint32(b - a), offset: uint32(d)})
	e.lits += a - e.litStart
	e.litStart = b
}

// litQuantum: Add rounds literal runs up to multiples of it.
const litQuantum = 4

// load64 reads the 8 bytes at b[i:] as a little-endian word. The callers'
// loops keep i+8 <= len(b); this is the innermost loop of the encoder,
// where a bounds check per load doubles its cost.
func load64(b []byte, i int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), i))[:])
}

// matchLen is how many bytes from b[pos:stop] equal those d bytes before
// them (0 < d <= pos, stop <= len(b)).
func matchLen(b []byte, pos, d, stop int) int {
	if d <= 0 || d > pos || stop > len(b) {
		return 0
	}
	n := pos
	for ; n+8 <= stop; n += 8 {
		if x := load64(b, n) ^ load64(b, n-d); x != 0 {
			return n - pos + bits.TrailingZeros64(x)>>3
		}
	}
	for ; n < stop && b[n] == b[n-d]; n++ {
	}
	return n - pos
}

// Gain is the bytes the sequences found so far replace: what compression
// saves, roughly, before the cost of coding them.
func (e *Encoder) Gain() int {
	return e.litStart - e.lits
}

// Encode appends to dst a zstd frame holding content, which Add described
// record by record (bytes past what Add was told of are stored as
// literals). A frame of more than 128 KiB is cut into zstd blocks at
// sequence ends; long runs of literals go into raw blocks, and so does a
// block that would not shrink. It reports false, appending nothing, when
// the records were not described in order or the frame does not shrink;
// the caller then uses another encoder or stores the content.
func (e *Encoder) Encode(dst, content []byte) ([]byte, bool) {
	if e.failed || e.size > len(content) || e.size < 0 || len(content) > MaxFrame {
		return dst, false
	}
	base := len(dst)
	// Room for all of it in the worst case: the frame header, a header
	// and up to 7 bytes of section headers and RLE symbols for each
	// block, the literals and 16 bytes of slack, 8 bytes of bits a
	// sequence and 8 more a block.
	nblocks := 2*(len(content)/maxBlock) + 2
	out := slices.Grow(dst, 9+nblocks*(3+7+8)+len(content)+16+8*len(e.seqs))
	out = out[:cap(out)]
	at := base
	binary.LittleEndian.PutUint32(out[at:], magic)
	out[at+4] = fhdSingle4
	binary.LittleEndian.PutUint32(out[at+5:], uint32(len(content)))
	at += 9

	// run[i] counts the alike sequences starting at i: each repeats the
	// one before in its literal and match length codes and its offset,
	// with literals before it (so its offset is the first repeat offset).
	run := slices.Grow(e.run[:0], len(e.seqs)+1)[:len(e.seqs)+1]
	e.run = run
	run[len(e.seqs)] = 0
	run[0] = 0
	// longest: the longest run (a run's length is known where it
	// begins, when the sequence before it is not alike).
	// other: nonzero when a sequence after the first has another offset
	// than the first or no literals ((litLen-1)>>31 is 1 for none).
	var longest, other uint32
	if sq := e.seqs; len(sq) > 0 {
		// The sequences as values in locals: through e.seqs the loop
		// reloaded the slice after each store to run, and checked two
		// indexes a sequence.
		run := run[:len(sq)]
		r := uint32(0) // run[j+2]
		off0 := sq[0].offset
		t := sq[len(sq)-1]
		for j := len(sq) - 2; j >= 0; j-- {
			// Alike: equal codes and offset, with literals before it
			// (so that its offset is the first repeat offset). Equal
			// lengths need no code looked up: a block's records often
			// give equal sequences.
			s := sq[j]
			if t.offset == s.offset && t.litLen-1 < maxSeq-1 &&
				(t.litLen == s.litLen || llCode(t.litLen) == llCode(s.litLen)) &&
				(t.matchLen == s.matchLen || mlCode(t.matchLen) == mlCode(s.matchLen)) {
				r++
			} else {
				// A sequence alike to the one before has its offset,
				// and literals: only the others need looking at.
				other |= t.offset ^ off0 | (t.litLen-1)>>31
				longest = max(longest, r)
				r = 0
			}
			run[j+1] = r
			t = s
		}
		longest = max(longest, r)
	}
	rep := [3]uint32{1, 4, 8}
	seqs := e.seqs
	pos, lastHdr := 0, -1
	next, nextSize := 0, 0 // the sequences and bytes of a block split in two
	for done := 0; ; {
		if len(seqs) > 0 {
			// Literals that cannot share a block with their match.
			if over := int(seqs[0].litLen+seqs[0].matchLen) - maxBlock; over > 0 {
				at, lastHdr = rawBlocks(out, at, content[pos:pos+over])
				pos += over
				seqs[0].litLen -= uint32(over)
			}
		}
		// A block ends where a long run of alike sequences begins (it
		// gets blocks of its own), or where the next would not fit.
		run := e.run[done:]
		uniform := run[0] >= minRun
		size, n := 0, 0
		if next > 0 { // the rest of a block split below
			size, n, next = nextSize, next, 0
		} else {
			reps := true // the sequences after the first repeat its offset
			if done == 0 && longest < minRun && e.litStart <= maxBlock {
				// All of them fit one block and no long run begins
				// among them: what the loop below would find, known
				// from the pass above (the sequences cover the frame
				// up to litStart).
				n, size = len(seqs), e.litStart
				reps = other == 0
			} else if uniform && int(run[0]) == len(seqs) && e.litStart-pos <= maxBlock {
				// A run of alike sequences that goes on to the last one
				// and fits a block (a capture block's flows past their
				// first records): what the loop below would find, its
				// bytes those from pos to litStart. reps is not asked
				// of a uniform block.
				n, size = len(seqs), e.litStart-pos
			}
			for n < len(seqs) && size+int(seqs[n].litLen+seqs[n].matchLen) <= maxBlock {
				if n > 0 && (uniform && run[n] == 0 || !uniform && run[n] >= minRun) {
					break
				}
				reps = reps && (n == 0 || seqs[n].offset == seqs[0].offset && seqs[n].litLen != 0)
				size += int(seqs[n].litLen + seqs[n].matchLen)
				n++
			}
			if !uniform && n >= minRun && reps && seqs[0].offset != rep[0] && seqs[0].matchLen > 16 {
				// The block's first sequence alone: the rest repeat its
				// offset, and with the offset code the same in all of
				// them it is sent once (RLE mode) instead of in every
				// sequence (5 bits each with the predefined table). The
				// block of one shrinks: its match is longer than its
				// headers.
				first := int(seqs[0].litLen + seqs[0].matchLen)
				next, nextSize = n-1, size-first
				n, size = 1, first
			}
		}
		tail := 0
		if n == len(seqs) && len(content)-pos <= maxBlock {
			tail = len(content) - pos - size // the final literals fit this block
		}
		if n > 0 || tail > 0 {
			hdr := at
			var ok bool
			saved := rep
			if uniform && rep[0] == seqs[0].offset {
				at, ok = e.uniformBlock(out, at, content[pos:pos+size+tail], seqs[:n])
			} else {
				at, ok = e.block(out, at, content[pos:pos+size+tail], seqs[:n], &rep)
			}
			if !ok {
				rep = saved // the decoder sees a raw block: no offsets
				at = hdr
				at, _ = rawBlocks(out, at, content[pos:pos+size+tail])
			}
			lastHdr = hdr
			pos += size + tail
		}
		seqs = seqs[n:]
		done += n
		if len(seqs) == 0 {
			if pos < len(content) {
				at, lastHdr = rawBlocks(out, at, content[pos:])
			}
			break
		}
	}
	if lastHdr < 0 { // empty content: one empty raw block
		lastHdr = at
		out[at], out[at+1], out[at+2] = 0, 0, 0
		at += 3
	}
	out[lastHdr] |= 1 // Last_Block
	if at-base >= len(content)+9 {
		return dst[:base], false
	}
	return out[:at], true
}

// literals writes a raw literals section of nlit bytes: the bytes before
// each sequence's match, then those after the last.
func literals(out []byte, at, nlit int, content []byte, seqs []sequence) int {
	switch {
	case nlit < 32:
		out[at] = byte(nlit << 3)
		at++
	case nlit < 4096:
		out[at], out[at+1] = byte(1<<2|nlit<<4), byte(nlit>>4)
		at += 2
	default:
		out[at], out[at+1], out[at+2] = byte(3<<2|nlit<<4), byte(nlit>>4), byte(nlit>>12)
		at += 3
	}
	pos := 0
	for _, s := range seqs {
		l := int(s.litLen)
		if l <= 16 && pos+16 <= len(content) {
			// Most literal runs are a few changed header bytes: two
			// word copies (into the slack) instead of a memmove call.
			copy(out[at:at+16], content[pos:pos+16])
		} else {
			copy(out[at:], content[pos:pos+l])
		}
		at += l
		pos += l + int(s.matchLen)
	}
	return at + copy(out[at:], content[pos:])
}

// seqCount writes the sequences section's count.
func seqCount(out []byte, at, n int) int {
	switch {
	case n < 128:
		out[at] = byte(n)
		return at + 1
	case n < 0x7f00:
		out[at], out[at+1] = byte(n>>8+128), byte(n)
		return at + 2
	}
	out[at], out[at+1], out[at+2] = 0xff, byte(n-0x7f00), byte((n-0x7f00)>>8)
	return at + 3
}

// minRun is the fewest alike sequences (Encode) that get blocks of their
// own.
const minRun = 32

// uniformBlock writes one compressed block of sequences that are all
// alike and whose offset is the first repeat offset: every code is sent
// once in RLE mode, so the bit stream holds only their extra bits.
func (e *Encoder) uniformBlock(out []byte, at int, content []byte, seqs []sequence) (int, bool) {
	hdr := at
	at += 3
	start := at
	nlit := len(content)
	for _, s := range seqs {
		nlit -= int(s.matchLen)
	}
	at = literals(out, at, nlit, content, seqs)
	n := len(seqs)
	at = seqCount(out, at, n)
	ll, ml := llCode(seqs[0].litLen), mlCode(seqs[0].matchLen)
	out[at], out[at+1], out[at+2], out[at+3] = modeRLE<<6|modeRLE<<4|modeRLE<<2, ll, 0, ml // offset code 0: repeat offset 1
	at += 4
	llb, lln := llBase[ll&63], llBits[ll&63]
	mlb, mln := mlBase[ml&63], mlBits[ml&63]
	var acc uint64
	var nb uint
	k := uint(lln + mln) // at most 32 bits a sequence (16 and 16)
	for i := n - 1; i >= 0; i-- {
		// Extra bits of the literal length, then of the match length (the
		// offset has none), the last sequence first. Whole 32-bit words
		// are written as they fill: with under 32 bits pending and at
		// most 32 added a sequence, the accumulator never overflows.
		s := &seqs[i]
		acc |= (uint64(s.litLen-llb) | uint64(s.matchLen-mlb)<<(lln&63)) << (nb & 63)
		if nb += k; nb >= 32 {
			binary.LittleEndian.PutUint32(out[at:], uint32(acc))
			at += 4
			acc >>= 32
			nb -= 32
		}
	}
	acc |= 1 << (nb & 63) // the end mark
	nb++
	binary.LittleEndian.PutUint64(out[at:], acc)
	at += int(nb+7) >> 3
	size := at - start
	if size >= len(content) || size > maxBlock {
		return hdr, false
	}
	h := uint32(size)<<3 | 2<<1 // compressed
	out[hdr], out[hdr+1], out[hdr+2] = byte(h), byte(h>>8), byte(h>>16)
	return at, true
}

// rawBlocks writes b as raw blocks at out[at:] and returns where they end
// and where the last one's header is.
func rawBlocks(out []byte, at int, b []byte) (int, int) {
	last := at
	for len(b) > 0 {
		n := min(len(b), maxBlock)
		h := uint32(n) << 3 // raw
		last = at
		out[at], out[at+1], out[at+2] = byte(h), byte(h>>8), byte(h>>16)
		at += 3 + copy(out[at+3:], b[:n])
		b = b[n:]
	}
	return at, last
}

// block writes one compressed block holding content (the sequences' bytes
// and, after them, literals) at out[at:]. It reports false when the block
// would not be smaller than its content.
func (e *Encoder) block(out []byte, at int, content []byte, seqs []sequence, rep *[3]uint32) (int, bool) {
	hdr := at
	at += 3
	start := at
	nlit := len(content)
	for _, s := range seqs {
		nlit -= int(s.matchLen)
	}
	at = literals(out, at, nlit, content, seqs)
	n := len(seqs)
	at = seqCount(out, at, n)
	if n > 0 {
		at = e.sequences(out, at, seqs, rep)
	}
	// A compressed block may hold no more than its content and 128 KiB
	// (Block_Maximum_Size; a single-segment frame's content size sets
	// the window).
	size := at - start
	if size >= len(content) || size > maxBlock {
		return hdr, false
	}
	h := uint32(size)<<3 | 2<<1 // compressed
	out[hdr], out[hdr+1], out[hdr+2] = byte(h), byte(h>>8), byte(h>>16)
	return at, true
}

// Symbol compression modes (RFC 8878 section 3.1.1.3.2.1).
const (
	modePredefined = 0
	modeRLE        = 1
)

// sequences writes the sequences' modes and bit stream into out at at and
// returns where they end. Offsets are resolved as the decoder will resolve
// them (repeat offsets included), in order; then the bit stream is written
// from the last sequence back to the first, as zstd's
// ZSTD_encodeSequences does. A code that is the same in every sequence
// is sent once, in RLE mode, and costs no bits.
func (e *Encoder) sequences(out []byte, at int, seqs []sequence, rep *[3]uint32) int {
	codes := slices.Grow(e.codes[:0], len(seqs))[:len(seqs)]
	e.codes = codes
	rep0, rep1, rep2 := rep[0], rep[1], rep[2]
	// The codes seen, ORed and ANDed, packed ll | ml<<8 | of<<16: two
	// values the loop carries instead of six.
	var or3 uint32
	and3 := ^uint32(0)
	for i := range seqs {
		s, c := &seqs[i], &codes[i]
		if i >= 2 && s.litLen != 0 && s.offset == rep0 && *s == seqs[i-2] && codes[i-2].of == 0 {
			// The sequence before last again (a flood's records give
			// two that alternate), its offset the first repeat offset as
			// then (code 0, with literals): the same codes, already
			// counted in or3 and and3.
			*c = codes[i-2]
			continue
		}
		ll, ml := llCode(s.litLen), mlCode(s.matchLen)
		c.ll, c.ml = ll, ml
		c.llX, c.mlX = s.litLen-llBase[ll&63], s.matchLen-mlBase[ml&63]
		o := s.offset
		if s.litLen != 0 && o == rep0 {
			// The first repeat offset, most sequences: offset code 0,
			// no extra bits.
			c.of, c.offVal = 0, 0
			w := uint32(ll) | uint32(ml)<<8
			or3, and3 = or3|w, and3&w
			continue
		}
		var ov uint32
		switch {
		case s.litLen != 0 && o == rep1, s.litLen == 0 && o == rep2:
			ov = 2
			if s.litLen == 0 {
				rep0, rep1, rep2 = rep2, rep0, rep1
			} else {
				rep0, rep1 = rep1, rep0
			}
		case s.litLen != 0 && o == rep2:
			ov = 3
			rep0, rep1, rep2 = rep2, rep0, rep1
		case s.litLen == 0 && o == rep1:
			ov = 1
			rep0, rep1 = rep1, rep0
		case s.litLen == 0 && o == rep0-1:
			ov = 3
			rep0, rep1, rep2 = o, rep0, rep1
		default:
			ov = o + 3
			rep0, rep1, rep2 = o, rep0, rep1
		}
		of := uint8(bits.Len32(ov) - 1)
		c.of, c.offVal = of, ov-1<<of
		w := uint32(ll) | uint32(ml)<<8 | uint32(of)<<16
		or3, and3 = or3|w, and3&w
	}
	rep[0], rep[1], rep[2] = rep0, rep1, rep2
	llAll, mlAll, ofAll := uint8(or3), uint8(or3>>8), uint8(or3>>16)
	llAny, mlAny, ofAny := uint8(and3), uint8(and3>>8), uint8(and3>>16)
	// A code is the same throughout when its OR and AND agree.
	llRLE, mlRLE, ofRLE := llAll == llAny, mlAll == mlAny, ofAll == ofAny
	var modes byte
	if llRLE {
		modes |= modeRLE << 6
	}
	if ofRLE {
		modes |= modeRLE << 4
	}
	if mlRLE {
		modes |= modeRLE << 2
	}
	out[at] = modes
	at++
	// The RLE symbols follow in the order LL, OF, ML.
	if llRLE {
		out[at] = llAll
		at++
	}
	if ofRLE {
		out[at] = ofAll
		at++
	}
	if mlRLE {
		out[at] = mlAll
		at++
	}

	// The bit stream. Each flush stores the whole 8-byte accumulator and
	// keeps its whole bytes; the bits between flushes stay below 64 (at
	// most 17 of states and 16 of literal length, then 16 of match
	// length and 27 of offset, offsets being below 2^27).
	var acc uint64
	var nb uint
	add := func(v uint32, n uint32) {
		acc |= uint64(v) << (nb & 63)
		nb += uint(n)
	}
	flush := func() {
		binary.LittleEndian.PutUint64(out[at:], acc)
		at += int(nb >> 3)
		acc >>= (nb &^ 7) & 63
		nb &= 7
	}
	// States as indexes below their table's size.
	last := codes[len(codes)-1]
	var sLL, sML, sOF uint32
	if !mlRLE {
		sML = mlTable.initState(last.ml) - 1<<mlLog
	}
	if !ofRLE {
		sOF = ofTable.initState(last.of) - 1<<ofLog
	}
	if !llRLE {
		sLL = llTable.initState(last.ll) - 1<<llLog
	}
	add(last.llX, llBits[last.ll&63])
	add(last.mlX, mlBits[last.ml&63])
	flush()
	add(last.offVal, uint32(last.of))
	flush()
	codes = codes[:len(codes)-1]
	// A sequence's bits fit the accumulator between two flushes when its
	// extra bits are few: at most 7 left over, 17 of states (6, 6 and 5)
	// and 40 extra. A code's extra bits are at most those of the ORed
	// codes' and below; short lengths and repeat offsets have none.
	extra := llBitsUpTo[llAll&63] + mlBitsUpTo[mlAll&63] + uint32(ofAll)
	oneFlush := extra <= 40
	// hist holds the states before each of the last cycle sequences
	// coded one by one (since counts them), packed as in state below.
	var hist [cycle]uint32
	since := 0
	for i := len(codes) - 1; i >= 0; i-- {
		c := &codes[i]
		hist[i%cycle] = sLL | sML<<8 | sOF<<16
		since++
		if !ofRLE {
			t := ofNext[sOF&63][c.of&63]
			n := uint32(t & 15)
			add(sOF&(1<<n-1), n)
			sOF = uint32(t >> 4)
		}
		if !mlRLE {
			t := mlNext[sML&63][c.ml&63]
			n := uint32(t & 15)
			add(sML&(1<<n-1), n)
			sML = uint32(t >> 4)
		}
		if !llRLE {
			t := llNext[sLL&63][c.ll&63]
			n := uint32(t & 15)
			add(sLL&(1<<n-1), n)
			sLL = uint32(t >> 4)
		}
		if extra != 0 {
			add(c.llX, llBits[c.ll&63])
			if !oneFlush {
				flush()
			}
			add(c.mlX, mlBits[c.ml&63])
			add(c.offVal, uint32(c.of))
		}
		flush()
		// The states are back where they were cycle sequences ago and
		// the next cycle sequences repeat those: each such run writes the
		// same bits and brings the states back again (a flood's records,
		// two sequences each whose codes alternate, get there within a
		// few sequences). Their bits are worked out once and copied.
		if since >= cycle && i >= cycle && sLL|sML<<8|sOF<<16 == hist[(i+cycle-1)%cycle] && repeats(codes[i-cycle:i+cycle]) {
			since = 0
			w, wn, ok := cycleBits(codes[i:i+cycle], sLL, sML, sOF, llRLE, mlRLE, ofRLE, extra != 0)
			if !ok {
				continue
			}
			for i >= cycle && repeats(codes[i-cycle:i+cycle]) {
				acc |= w[0] << (nb & 63)
				nb += wn[0]
				flush()
				acc |= w[1] << (nb & 63)
				nb += wn[1]
				flush()
				acc |= w[2] << (nb & 63)
				nb += wn[2]
				flush()
				acc |= w[3] << (nb & 63)
				nb += wn[3]
				flush()
				i -= cycle
			}
		}
	}
	if !mlRLE {
		add(sML, mlLog)
	}
	if !ofRLE {
		add(sOF, ofLog)
	}
	if !llRLE {
		add(sLL, llLog)
	}
	add(1, 1) // the end mark
	flush()
	if nb > 0 {
		out[at] = byte(acc)
		at++
	}
	return at
}

// cycle is the period of sequences' codes the coding loop of sequences
// finds (or any divisor of it: a flood's records give two sequences
// each, other loads one to four). repeats and the copy in sequences are
// written out for 8.
const cycle = 8

// repeats reads codes as words (a seqCode is two of them), and is
// written out for a cycle of 8.
var _ = [1]int{}[unsafe.Sizeof(seqCode{})-16+cycle-8]

// repeats reports whether u's first cycle codes repeat the next cycle.
func repeats(u []seqCode) bool {
	// As words, all at once: the compiler compares the structs' fields
	// one by one, byte fields as bytes. Written out: the compiler does
	// not unroll the loop.
	w := (*[32]uint64)(unsafe.Pointer(unsafe.SliceData(u[:16])))
	return (w[0]^w[16])|(w[1]^w[17])|(w[2]^w[18])|(w[3]^w[19])|
		(w[4]^w[20])|(w[5]^w[21])|(w[6]^w[22])|(w[7]^w[23])|
		(w[8]^w[24])|(w[9]^w[25])|(w[10]^w[26])|(w[11]^w[27])|
		(w[12]^w[28])|(w[13]^w[29])|(w[14]^w[30])|(w[15]^w[31]) == 0
}

// cycleBits is the bits the coding loop of sequences writes for cycle
// sequences' codes (coded last first, as the loop codes them) from the
// states given, as words of two sequences' bits each and their lengths;
// ok is false when a word would not fit the accumulator beside the bits
// a flush leaves (7).
func cycleBits(u []seqCode, sLL, sML, sOF uint32, llRLE, mlRLE, ofRLE, extra bool) (w [cycle / 2]uint64, wn [cycle / 2]uint, ok bool) {
	u = u[:cycle]
	for k := cycle - 1; k >= 0; k-- {
		c := &u[k]
		h := (cycle - 1 - k) >> 1
		add := func(v, n uint32) {
			w[h] |= uint64(v) << (wn[h] & 63)
			wn[h] += uint(n)
		}
		if !ofRLE {
			t := ofNext[sOF&63][c.of&63]
			n := uint32(t & 15)
			add(sOF&(1<<n-1), n)
			sOF = uint32(t >> 4)
		}
		if !mlRLE {
			t := mlNext[sML&63][c.ml&63]
			n := uint32(t & 15)
			add(sML&(1<<n-1), n)
			sML = uint32(t >> 4)
		}
		if !llRLE {
			t := llNext[sLL&63][c.ll&63]
			n := uint32(t & 15)
			add(sLL&(1<<n-1), n)
			sLL = uint32(t >> 4)
		}
		if extra {
			add(c.llX, llBits[c.ll&63])
			add(c.mlX, mlBits[c.ml&63])
			add(c.offVal, uint32(c.of))
		}
		if wn[h] > 56 {
			return w, wn, false
		}
	}
	return w, wn, true
}
