package store

import (
	"testing"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// rangeTasks makes tasks of blocks of span bytes at the given offsets of
// a remote shard.
func rangeTasks(rs *remoteShard, span int64, offs ...int64) []blockTask {
	ps := &planShard{f: rs}
	var out []blockTask
	for _, off := range offs {
		m := pcapio.BlockMeta{Offset: off}
		m.DataLen = uint32(span - int64(pcapio.BlockSpan(m)))
		out = append(out, blockTask{shard: ps, meta: m})
	}
	return out
}

// TestRangePlan: neighbours within 64 KiB share a range; wider gaps up to
// 1 MiB are bridged smallest first while their bytes stay within a
// sixteenth of the blocks' bytes; wider ones never; a range stops at 4
// MiB; ranges come in the readers' order.
func TestRangePlan(t *testing.T) {
	const span = 100 << 10
	rs := &remoteShard{key: "a", size: 1 << 30}
	// 40 blocks (4,000 KiB, so 250 KiB of wide gaps may be bridged): gaps
	// of 10 KiB, 300 KiB, 200 KiB and 2 MiB after the first four, the
	// rest back to back.
	offs := []int64{0}
	for i, gap := range []int64{10 << 10, 300 << 10, 200 << 10, 2 << 20} {
		offs = append(offs, offs[i]+span+gap)
	}
	for len(offs) < 40 {
		offs = append(offs, offs[len(offs)-1]+span)
	}
	f := newRangeFetcher(rangeTasks(rs, span, offs...))
	type rg struct{ off, n int64 }
	want := []rg{{offs[0], offs[1] + span - offs[0]}, {offs[2], offs[3] + span - offs[2]}, {offs[4], 36 * span}}
	if len(f.ranges) != len(want) {
		t.Fatalf("%d ranges, want %d", len(f.ranges), len(want))
	}
	for i, r := range f.ranges {
		if (rg{r.off, r.n}) != want[i] {
			t.Errorf("range %d: %d+%d, want %d+%d", i, r.off, r.n, want[i].off, want[i].n)
		}
		if r.left.Load() <= 0 || r.left.Load() > r.n {
			t.Errorf("range %d: %d bytes of blocks in %d", i, r.left.Load(), r.n)
		}
	}

	// Back to back past 4 MiB: split; a second shard's blocks interleave,
	// and ranges come in the order their first blocks are read.
	rs2 := &remoteShard{key: "b", size: 1 << 30}
	var tasks []blockTask
	for i := range 50 {
		tasks = append(tasks, rangeTasks(rs, span, int64(i)*span)...)
		tasks = append(tasks, rangeTasks(rs2, span, int64(i)*span)...)
	}
	f = newRangeFetcher(tasks)
	var got []string
	for _, r := range f.ranges {
		if r.n > fetchMaxRange {
			t.Fatalf("range of %d bytes", r.n)
		}
		got = append(got, r.rs.key)
	}
	if len(got) != 4 || got[0] != "a" || got[1] != "b" || got[2] != "a" || got[3] != "b" {
		t.Fatalf("ranges by shard %v, want a b a b", got)
	}

	// Many wide gaps: the bytes bridged stay within the budget.
	offs = offs[:0]
	var off, need int64
	for i := range 200 {
		offs = append(offs, off)
		need += span
		off += span + int64(65+i*4)<<10 // 65 KiB to 861 KiB
	}
	f = newRangeFetcher(rangeTasks(rs, span, offs...))
	var read int64
	for _, r := range f.ranges {
		read += r.n
	}
	if read-need > need/fetchSlack || len(f.ranges) >= len(offs) {
		t.Fatalf("%d ranges read %d bytes for %d: %d of gaps, budget %d", len(f.ranges), read, need, read-need, need/fetchSlack)
	}
}

// TestFetchBuffersReturned: the buffers a fetcher maps outside the heap
// all go back to the process's pool when it stops (a range dropped after
// that keeps nothing), the next fetcher takes them from there, and the
// pool keeps at most fetchPoolMax bytes.
func TestFetchBuffersReturned(t *testing.T) {
	emptyFetchPool()
	defer emptyFetchPool()
	rs := &remoteShard{key: "a", size: 1 << 30}
	f := newRangeFetcher(rangeTasks(rs, 100<<10, 0, 10<<20))
	a, b := f.buffer(100<<10), f.buffer(30<<10)
	a[len(a)-1], b[0] = 1, 2 // writable
	if cap(a) != 2*fetchBufStep || cap(b) != fetchBufStep {
		t.Fatalf("buffers of cap %d and %d", cap(a), cap(b))
	}
	mapped := len(f.mapped)
	f.recycle(b)
	f.stop()
	if len(f.mapped) != 0 || len(f.free) != 0 {
		t.Fatalf("after stop: %d mapped, %d free", len(f.mapped), len(f.free))
	}
	f.recycle(a)
	if len(f.free) != 0 {
		t.Fatal("a buffer recycled after stop was kept")
	}
	if mapped > 0 { // mapping works here
		g := newRangeFetcher(rangeTasks(rs, 100<<10, 0))
		fetchPool.mu.Lock()
		before := len(fetchPool.bufs)
		fetchPool.mu.Unlock()
		if c := g.buffer(100 << 10); cap(c) != 2*fetchBufStep {
			t.Fatalf("from the pool: cap %d", cap(c))
		}
		fetchPool.mu.Lock()
		after := len(fetchPool.bufs)
		fetchPool.mu.Unlock()
		if after != before-1 {
			t.Fatalf("pool held %d buffers, then %d: the buffer was not taken from it", before, after)
		}
		g.stop()
	}
	var bufs [][]byte
	for range 3 * fetchPoolMax / fetchMaxRange {
		if m := mapFetchBuf(fetchMaxRange); m != nil {
			bufs = append(bufs, m)
		}
	}
	fetchPool.put(bufs)
	fetchPool.mu.Lock()
	held := fetchPool.bytes
	fetchPool.mu.Unlock()
	if held > fetchPoolMax {
		t.Fatalf("pool holds %d bytes, more than %d", held, fetchPoolMax)
	}
}

// emptyFetchPool unmaps what the process's pool holds, so that a test
// sees fresh buffers whatever ran before it.
func emptyFetchPool() {
	fetchPool.mu.Lock()
	defer fetchPool.mu.Unlock()
	for _, b := range fetchPool.bufs {
		unmapFetchBuf(b)
	}
	fetchPool.bufs, fetchPool.bytes = nil, 0
}
