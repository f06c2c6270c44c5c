package reczstd

import "math/bits"

// The zstd sequence codes (RFC 8878 section 3.1.1.3.2.1.1) and the
// predefined FSE distributions of their symbols (section 3.1.1.3.2.2).
// The encoder uses the predefined tables (or RLE mode, for a code that
// never changes in a block): no table is described, so there is nothing
// to count or normalise per block.

// Literal length codes: baseline and extra bits.
var llBase, llBits [64]uint32 // 36 codes; 64 so that c&63 needs no bounds check

// Match length codes (baselines are match lengths, 3 and up).
var mlBase, mlBits [64]uint32 // 53 codes

// The most extra bits of any code up to c, by c (for a bound from codes
// ORed together, which is at least the largest of them).
var llBitsUpTo, mlBitsUpTo [64]uint32

// Small values' codes, looked up; larger ones follow from the top bit.
var llCodeSmall [64]uint8
var mlCodeSmall [128]uint8 // by match length - 3

var (
	llNorm = []int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
		-1, -1, -1, -1}
	mlNorm = []int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1,
		-1, -1, -1, -1, -1}
	ofNorm = []int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}
)

// Accuracy logs of the predefined distributions.
const (
	llLog = 6
	mlLog = 6
	ofLog = 5
)

var llTable, mlTable, ofTable = buildCTable(llNorm, llLog), buildCTable(mlNorm, mlLog), buildCTable(ofNorm, ofLog)

// The tables as transitions: for a state (as an index below the table's
// size) and a symbol, the bits to write (their number in the low 4 bits)
// and the next state (above them). One lookup a symbol.
// Arrays, not pointers: the coding loop indexes them at fixed addresses
// (no pointer to load and check a sequence).
var llNext, mlNext, ofNext = *llTable.transitions(), *mlTable.transitions(), *ofTable.transitions()

func (t *cTable) transitions() *[64][64]uint16 {
	var tr [64][64]uint16
	size := uint32(1) << t.log
	for idx := range size {
		for s := range 64 {
			tt := t.sym[s]
			state := idx + size
			n := (state + tt.nbBits) >> 16
			next := uint32(t.state[(int32(state>>(n&31))+tt.findState)&63])
			tr[idx][s] = uint16((next-size)<<4 | n)
		}
	}
	return &tr
}

func init() {
	fill := func(base, nb []uint32, start uint32, extra []uint32) {
		n := len(base) - len(extra)
		for i := range n {
			base[i], nb[i] = start+uint32(i), 0
		}
		v := start + uint32(n)
		for i, e := range extra {
			base[n+i], nb[n+i] = v, e
			v += 1 << e
		}
	}
	fill(llBase[:36], llBits[:36], 0, []uint32{1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	fill(mlBase[:53], mlBits[:53], 3, []uint32{1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	for c := range 64 {
		llBitsUpTo[c], mlBitsUpTo[c] = llBits[c], mlBits[c]
		if c > 0 {
			llBitsUpTo[c] = max(llBitsUpTo[c], llBitsUpTo[c-1])
			mlBitsUpTo[c] = max(mlBitsUpTo[c], mlBitsUpTo[c-1])
		}
	}
	for c := range 36 {
		for v := llBase[c]; v < llBase[c]+1<<llBits[c] && v < uint32(len(llCodeSmall)); v++ {
			llCodeSmall[v] = uint8(c)
		}
	}
	for c := range 53 {
		for v := mlBase[c] - 3; v < mlBase[c]-3+1<<mlBits[c] && v < uint32(len(mlCodeSmall)); v++ {
			mlCodeSmall[v] = uint8(c)
		}
	}
}

// llCode is the code of a literal length (below 2^17).
func llCode(n uint32) uint8 {
	if n < uint32(len(llCodeSmall)) {
		return llCodeSmall[n]
	}
	return uint8(bits.Len32(n) - 1 + 19)
}

// mlCode is the code of a match length (3 to 2^17+2).
func mlCode(n uint32) uint8 {
	v := n - 3
	if v < uint32(len(mlCodeSmall)) {
		return mlCodeSmall[v]
	}
	return uint8(bits.Len32(v) - 1 + 36)
}

// cTable is an FSE compression table (zstd's FSE_CTable). The tables
// are fixed arrays of 64 (the most states and symbols the predefined
// distributions have), so that masked indexes need no bounds checks.
type cTable struct {
	log   uint32
	state [64]uint16
	sym   [64]symbolTT
}

type symbolTT struct {
	findState int32
	nbBits    uint32 // deltaNbBits
}

// buildCTable is zstd's FSE_buildCTable for a normalised distribution:
// symbols are spread over the states exactly as the decoder spreads them.
func buildCTable(norm []int16, log uint32) *cTable {
	size := 1 << log
	mask := size - 1
	step := size>>1 + size>>3 + 3
	high := size - 1
	cumul := make([]int, len(norm)+1)
	symbol := make([]uint8, size)
	for u := 1; u <= len(norm); u++ {
		if norm[u-1] == -1 { // low probability: the last states
			cumul[u] = cumul[u-1] + 1
			symbol[high] = uint8(u - 1)
			high--
		} else {
			cumul[u] = cumul[u-1] + int(norm[u-1])
		}
	}
	pos := 0
	for s, n := range norm {
		for range max(int(n), 0) {
			symbol[pos] = uint8(s)
			pos = (pos + step) & mask
			for pos > high {
				pos = (pos + step) & mask
			}
		}
	}
	t := &cTable{log: log}
	for u := range size {
		s := symbol[u]
		t.state[cumul[s]] = uint16(size + u)
		cumul[s]++
	}
	total := int32(0)
	for s, n := range norm {
		switch n {
		case 0:
			t.sym[s].nbBits = (log+1)<<16 - 1<<log
		case -1, 1:
			t.sym[s].nbBits = log<<16 - 1<<log
			t.sym[s].findState = total - 1
			total++
		default:
			maxBitsOut := log - uint32(bits.Len32(uint32(n)-1)-1)
			minStatePlus := uint32(n) << maxBitsOut
			t.sym[s].nbBits = maxBitsOut<<16 - minStatePlus
			t.sym[s].findState = total - int32(n)
			total += int32(n)
		}
	}
	return t
}

// initState is FSE_initCState2: the state after the first symbol (the
// last one of the block), which costs no bits.
func (t *cTable) initState(s uint8) uint32 {
	tt := t.sym[s&63]
	nb := (tt.nbBits + 1<<15) >> 16
	v := nb<<16 - tt.nbBits
	return uint32(t.state[(int32(v>>(nb&31))+tt.findState)&63])
}
