// Package reczstd compresses a block of packet records into one standard
// zstd frame (RFC 8878), cheaply: instead of searching the whole history
// for matches at every byte, it compares each record with one earlier
// record of the same block, the last one the caller gave the same key
// (the same flow and direction), where the headers repeat at the same
// offsets, as header compression does (RFC 1144). A match that reaches the
// end of a record is carried into the next record when the bytes go on
// matching (the flows interleave in the same order). Sequences are coded
// with zstd's predefined tables (RLE mode for a code that never changes in
// a block) and literals are stored raw, so no table is built per block.
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
	// MaxBlock is the most content one zstd block holds; Encode handles
	// blocks up to this size.
	MaxBlock = 128 << 10
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

	// Encode's scratch.
	codes []seqCode
}

type seqCode struct {
	ll, ml, of       uint8
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
	if start != e.size || end > MaxBlock {
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
	// Carry a match that ended with the previous record on.
	if n := len(e.seqs); n > 0 && e.litStart == start {
		s := &e.seqs[n-1]
		m := matchLen(block, pos, int(s.offset), end)
		s.matchLen += uint32(m)
		pos += m
		e.litStart = pos
	}
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
	if r.gen != e.gen {
		return
	}
	d := start - int(r.start)
	stop := min(end, int(r.end)+d) // where the reference runs out
	for pos+minMatch <= stop {
		var x uint64
		if pos+8 <= stop {
			x = load64(block, pos) ^ load64(block, pos-d)
		} else {
			x = tail64(block, pos, d, stop)
		}
		if x&0xff != 0 {
			// Differing bytes: skip to the first equal one, 8 at a time
			// through payloads that differ throughout.
			z := (x - lows) & ^x & highs
			if z == 0 {
				pos += 8
			} else {
				pos += bits.TrailingZeros64(z) >> 3
			}
			continue
		}
		m := matchLen(block, pos, d, stop)
		if m < minMatch {
			pos += m
			continue
		}
		e.seqs = append(e.seqs, sequence{litLen: uint32(pos - e.litStart), matchLen: uint32(m), offset: uint32(d)})
		e.lits += pos - e.litStart
		pos += m
		e.litStart = pos
	}
}

// Bytes of ones and of high bits, for finding a zero byte in a word.
const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load64 reads the 8 bytes at b[i:] as a little-endian word. The callers'
// loops keep i+8 <= len(b); this is the innermost loop of the encoder,
// where a bounds check per load doubles its cost.
func load64(b []byte, i int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), i))[:])
}

// tail64 is the XOR of the bytes b[pos:stop] and b[pos-d:stop-d] (fewer
// than 8), with the bytes past stop set to differ.
func tail64(b []byte, pos, d, stop int) uint64 {
	x := ^uint64(0)
	for i := range stop - pos {
		x &^= 0xff << (8 * i)
		x |= uint64(b[pos+i]^b[pos+i-d]) << (8 * i)
	}
	return x
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

// Encode appends to dst a zstd frame holding block, which Add described
// record by record (bytes past what Add was told of are stored as
// literals). It reports false, appending nothing, when the block is too
// large for one zstd block, was not described in order, or does not
// shrink; the caller then uses another encoder or stores the block.
func (e *Encoder) Encode(dst, block []byte) ([]byte, bool) {
	if e.failed || len(block) > MaxBlock || e.size > len(block) || e.size < 0 {
		return dst, false
	}
	nlit := e.lits + len(block) - e.litStart
	n := len(e.seqs)
	// Room for all of it: frame, block and literals headers (12), the
	// literals and 16 bytes of slack for word copies, the sequences
	// header and RLE symbols (7), at most 8 bytes of bits a sequence
	// and the final states (8).
	base := len(dst)
	out := slices.Grow(dst, 12+3+nlit+16+7+8*n+8)
	out = out[:cap(out)]
	at := base
	binary.LittleEndian.PutUint32(out[at:], magic)
	out[at+4] = fhdSingle4
	binary.LittleEndian.PutUint32(out[at+5:], uint32(len(block)))
	bh := at + 9
	at += 12 // the block header is filled at the end
	content := at

	// Literals section: raw.
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
	for _, s := range e.seqs {
		l := int(s.litLen)
		if l <= 16 && pos+16 <= len(block) {
			// Most literal runs are a few changed header bytes: two
			// word copies (into the slack) instead of a memmove call.
			copy(out[at:at+16], block[pos:pos+16])
		} else {
			copy(out[at:], block[pos:pos+l])
		}
		at += l
		pos += l + int(s.matchLen)
	}
	at += copy(out[at:], block[pos:])

	// Sequences section.
	switch {
	case n < 128:
		out[at] = byte(n)
		at++
	case n < 0x7f00:
		out[at], out[at+1] = byte(n>>8+128), byte(n)
		at += 2
	default:
		out[at], out[at+1], out[at+2] = 0xff, byte(n-0x7f00), byte((n-0x7f00)>>8)
		at += 3
	}
	if n > 0 {
		at = e.sequences(out, at)
	}
	// A compressed block may hold no more than the frame's content
	// (Block_Maximum_Size, which a single-segment frame's content size
	// sets): a block that does not shrink is refused, for the caller to
	// store.
	size := at - content
	if size >= len(block) {
		return dst[:base], false
	}
	h := uint32(size)<<3 | 2<<1 | 1 // compressed, last block
	out[bh], out[bh+1], out[bh+2] = byte(h), byte(h>>8), byte(h>>16)
	return out[:at], true
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
func (e *Encoder) sequences(out []byte, at int) int {
	codes := slices.Grow(e.codes[:0], len(e.seqs))[:len(e.seqs)]
	e.codes = codes
	rep0, rep1, rep2 := uint32(1), uint32(4), uint32(8)
	var llAll, mlAll, ofAll uint8 // codes seen, ORed
	var llAny, mlAny, ofAny uint8 // and ANDed
	llAny, mlAny, ofAny = 0xff, 0xff, 0xff
	for i, s := range e.seqs {
		c := &codes[i]
		c.ll, c.ml = llCode(s.litLen), mlCode(s.matchLen)
		c.llX, c.mlX = s.litLen-llBase[c.ll&63], s.matchLen-mlBase[c.ml&63]
		o := s.offset
		var ov uint32
		switch {
		case s.litLen != 0 && o == rep0:
			ov = 1
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
		c.of = uint8(bits.Len32(ov) - 1)
		c.offVal = ov - 1<<c.of
		llAll, mlAll, ofAll = llAll|c.ll, mlAll|c.ml, ofAll|c.of
		llAny, mlAny, ofAny = llAny&c.ll, mlAny&c.ml, ofAny&c.of
	}
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
	// length and 17 of offset, offsets being below 2^17).
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
	last := codes[len(codes)-1]
	var sLL, sML, sOF uint32
	if !mlRLE {
		sML = mlTable.initState(last.ml)
	}
	if !ofRLE {
		sOF = ofTable.initState(last.of)
	}
	if !llRLE {
		sLL = llTable.initState(last.ll)
	}
	add(last.llX, llBits[last.ll&63])
	add(last.mlX, mlBits[last.ml&63])
	flush()
	add(last.offVal, uint32(last.of))
	flush()
	for i := len(codes) - 2; i >= 0; i-- {
		c := codes[i]
		var v, n uint32
		if !ofRLE {
			v, n, sOF = ofTable.encode(sOF, c.of)
			add(v, n)
		}
		if !mlRLE {
			v, n, sML = mlTable.encode(sML, c.ml)
			add(v, n)
		}
		if !llRLE {
			v, n, sLL = llTable.encode(sLL, c.ll)
			add(v, n)
		}
		add(c.llX, llBits[c.ll&63])
		flush()
		add(c.mlX, mlBits[c.ml&63])
		add(c.offVal, uint32(c.of))
		flush()
	}
	if !mlRLE {
		add(sML&(1<<mlLog-1), mlLog)
	}
	if !ofRLE {
		add(sOF&(1<<ofLog-1), ofLog)
	}
	if !llRLE {
		add(sLL&(1<<llLog-1), llLog)
	}
	add(1, 1) // the end mark
	flush()
	if nb > 0 {
		out[at] = byte(acc)
		at++
	}
	return at
}
