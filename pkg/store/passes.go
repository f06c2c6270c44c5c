package store

import (
	"slices"
	"time"
	"unsafe"

	"github.com/nwhealth/nwhealth/internal/bigbuf"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// DefaultMemoryLimit bounds the memory a query's merge holds in blocks
// (Plan.MemoryLimit): far above what time-ordered traffic needs (a block
// or two per writer), far below what an input out of time order could
// make it hold (an 800 KB zstd import made a 907 MB query before).
const DefaultMemoryLimit = 32 << 20

// passSource is what is left of a block to deliver: its records from pos
// on, in the order readBlock sorts them.
type passSource struct {
	task int
	pos  int
	n    int // records matching in the block, once read (0: not known)
}

// passKey orders records: time, then block (plan order), then place in
// the block. The merge delivers in this order too.
type passKey struct {
	ts   int64
	task int32
	idx  int32
}

func (a passKey) less(b passKey) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.task != b.task {
		return a.task < b.task
	}
	return a.idx < b.idx
}

// passRec is a record kept by a pass: its bytes are in the pass's arena.
// Small: a pass's budget counts it with every record, and tiny records
// (a crafted input) would otherwise take more passes.
type passRec struct {
	key  passKey
	off  uint32
	n    uint32
	orig uint32
}

// keptHeap is a max-heap: the latest kept record is the first to go.
// (Typed rather than container/heap, which boxes every element.)
type keptHeap []passRec

func (h *keptHeap) push(p passRec) {
	*h = append(*h, p)
	s := *h
	for i := len(s) - 1; i > 0; {
		up := (i - 1) / 2
		if !s[up].key.less(s[i].key) {
			break
		}
		s[up], s[i] = s[i], s[up]
		i = up
	}
}

func (h *keptHeap) pop() passRec {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && s[c].key.less(s[c+1].key) {
			c++
		}
		if !s[i].key.less(s[c].key) {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	*h = s
	return top
}

const passRecSize = int64(unsafe.Sizeof(passRec{}))

// passes delivers the rest of a plan in time order within about limit
// bytes, when more blocks overlap in time than the merge can hold (an
// input far out of time order, or very many writers' shards). Each pass
// reads, one at a time, the blocks left that may hold a record before the
// latest it keeps, and keeps the earliest records that fit (dropping the
// latest kept when over: everything at or after it waits for a later
// pass), then delivers them in order. The blocks already taken from the
// plan and not done are active; the rest is the tail, from tail on. A
// pass can cost a read of everything left, so many passes are slow; the
// memory stays bounded whatever the input.
func (pl *Plan) passes(run *runState, active []passSource, tail int, limit int64, emit func(*Record) error) error {
	// The kept records' bytes live in an arena of twice the budget,
	// compacted into a second one when full (at least half of it is then
	// records dropped since): the two are the limit. They are block
	// buffers (bigbuf), off the collected heap, whose pacing would
	// double them.
	budget := min(max(limit/4, 64<<10), 1<<30) // arena offsets are 32 bits
	arena, spare := bigbuf.Get(int(2 * budget))[:0], bigbuf.Get(int(2 * budget))[:0]
	defer func() {
		bigbuf.Put(arena)
		bigbuf.Put(spare)
	}()
	r := &blockResult{}
	var rec Record
	var kept keptHeap
	var keptBytes int64
	var hi passKey // nothing kept at or after hi
	// take reads what is left of a block and keeps its records before hi.
	take := func(s *passSource) {
		*r = blockResult{task: s.task}
		pl.readBlock(run.reader, r, &run.scratch)
		defer pl.release(r)
		if r.dmg != nil {
			if run.results[s.task].dmg == nil {
				run.results[s.task].dmg = r.dmg
			}
			s.n = -1 // nothing more to deliver
			return
		}
		s.n = len(r.ents)
		for idx := s.pos; idx < len(r.ents); idx++ {
			e := r.ents[idx]
			key := passKey{e.ts, int32(s.task), int32(idx)}
			if !key.less(hi) {
				return // the block's records are in key order
			}
			if len(arena)+int(e.n) > cap(arena) {
				arena, spare = compact(arena, spare, kept), arena[:0]
				if len(arena)+int(e.n) > cap(arena) {
					// A record larger than the room left (a packet of
					// megabytes under a small limit): room for it.
					bigger := bigbuf.Get(2 * (len(arena) + int(e.n)))
					bigger = append(bigger[:0], arena...)
					bigbuf.Put(arena)
					arena = bigger
				}
			}
			kept.push(passRec{key: key, off: uint32(len(arena)), n: e.n, orig: e.orig})
			arena = append(arena, r.data[e.off:e.off+e.n]...)
			keptBytes += int64(e.n) + passRecSize
			for keptBytes > budget && len(kept) > 1 {
				last := kept.pop()
				hi = last.key
				keptBytes -= int64(last.n) + passRecSize
			}
		}
	}
	// Blocks are in plan order, by first time: those of the tail (never
	// read yet) are taken in that order while they may hold a record
	// before hi, so that a pass touches the blocks around its stretch of
	// time, not the whole plan.
	for len(active) > 0 || tail < len(pl.tasks) {
		kept, keptBytes, arena = kept[:0], 0, arena[:0]
		hi = passKey{ts: 1<<63 - 1, task: 1<<31 - 1}
		read := make([]bool, len(active))
		for k := range active {
			if pl.tasks[active[k].task].meta.First <= hi.ts {
				read[k] = true
				take(&active[k])
			}
		}
		for ; tail < len(pl.tasks) && pl.tasks[tail].meta.First <= hi.ts; tail++ {
			active = append(active, passSource{task: tail})
			read = append(read, true)
			take(&active[len(active)-1])
		}
		// Deliver what this pass kept, in order, and move each block's
		// position past what it gave.
		out := []passRec(kept)
		slices.SortFunc(out, func(a, b passRec) int {
			if a.key.less(b.key) {
				return -1
			}
			return 1
		})
		given := map[int]int{}
		for _, p := range out {
			raw := arena[p.off : p.off+p.n : p.off+p.n]
			hdr := &pl.tasks[p.key.task].shard.sh.Header
			rec = Record{Raw: raw, Nanos: hdr.Nanos, Count: 1,
				Packet: pcapio.Packet{Timestamp: time.Unix(0, p.key.ts).UTC(), LinkType: hdr.LinkType, Data: raw[16:], OrigLen: int(p.orig)}}
			if err := emit(&rec); err != nil {
				return err
			}
			given[int(p.key.task)]++
		}
		left := active[:0]
		for k, s := range active {
			switch {
			case !read[k]:
				left = append(left, s)
			case s.n < 0: // damaged: named, and done
			default:
				if s.pos += given[s.task]; s.pos < s.n {
					left = append(left, s)
				}
			}
		}
		active = left
	}
	return nil
}

// compact copies the kept records from arena into spare (the arena the
// last compaction left), which it returns; it grows spare if need be.
func compact(arena, spare []byte, kept keptHeap) []byte {
	var n int
	for _, p := range kept {
		n += int(p.n)
	}
	if cap(spare) < n {
		bigbuf.Put(spare)
		spare = bigbuf.Get(max(n, cap(arena)))
	}
	spare = spare[:0]
	for i := range kept {
		p := &kept[i]
		off := uint32(len(spare))
		spare = append(spare, arena[p.off:p.off+p.n]...)
		p.off = off
	}
	return spare
}
