package store

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// Ranged reads of an object store's blocks (docs/format/object-store.md,
// "Reading"): once a query is planned, the blocks it will read are known,
// in the order the readers will want them. The fetcher reads them ahead
// with ranged GETs, neighbours as one range of at most fetchMaxRange
// (newRangeFetcher says which), by fetchParallel workers and at most
// fetchAhead bytes ahead of the readers; a reader waits for the range
// holding its block (queueing it itself if the fetcher has not yet), and
// a range is dropped once its blocks were read. A read outside every
// range (a block read twice by the passes of an out-of-order merge) is a
// GET of its own.
//
// fetchParallel weighs a remote endpoint's latency against the
// connections a fresh process opens: a GET to a remote service waits tens
// of milliseconds for its first byte, so a query's ranges should be in
// flight together, but each parallel GET is a connection (and a TLS
// handshake) every query pays anew. On a loopback server bound by its CPU
// 8, 16 and 32 at once measured alike. The GETs run on a fixed set of
// workers rather than a goroutine a range: a GET goes deep into net/http
// and the S3 client, and each fresh goroutine grew its stack there again
// (stack copying was a twentieth of a host query's CPU).
//
// A range's buffer is reused once its blocks were read, so a query that
// fetches many ranges touches fetchAhead bytes of fresh memory at most (a
// fresh page costs a fault and a clearing: about a tenth of a short
// query's CPU before reuse). Buffers are sized in steps of fetchBufStep:
// most ranges are a block or two of some 30 KiB, each a few bytes longer
// or shorter than the last, and a buffer of exactly a range's length
// rarely fitted the next one.
const (
	fetchGap      = 64 << 10
	fetchMaxGap   = 1 << 20
	fetchSlack    = 16 // gaps beyond fetchGap: at most 1/fetchSlack of the bytes needed
	fetchMaxRange = 4 << 20
	fetchParallel = 16
	fetchAhead    = 16 << 20
	fetchBufStep  = 64 << 10
)

type fetchRange struct {
	rs   *remoteShard
	off  int64
	n    int64
	left atomic.Int64 // bytes of its blocks not yet read
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	data []byte // nil once dropped
	err  error
	f    *rangeFetcher
}

type rangeFetcher struct {
	ranges  []*fetchRange // in the readers' order
	byShard map[*remoteShard][]*fetchRange
	queue   chan *fetchRange // begun, waiting for a worker
	mu      sync.Mutex
	cond    *sync.Cond
	used    int64 // bytes of ranges started and not dropped
	stopped chan struct{}
	stopOne sync.Once
	started atomic.Bool
	wg      sync.WaitGroup

	freeMu   sync.Mutex
	free     [][]byte // buffers of dropped ranges, for the next ones
	mapped   [][]byte // buffers outside the heap (mapFetchBuf), given back by stop
	unmapped bool
}

// buffer returns a buffer of n bytes, a dropped range's when one is large
// enough.
func (f *rangeFetcher) buffer(n int64) []byte {
	f.freeMu.Lock()
	defer f.freeMu.Unlock()
	if b := takeSmallest(&f.free, int(n)); b != nil {
		return b[:n]
	}
	size := int((n + fetchBufStep - 1) / fetchBufStep * fetchBufStep)
	b := fetchPool.get(size)
	if b == nil {
		b = mapFetchBuf(size)
	}
	if b != nil {
		f.mapped = append(f.mapped, b)
		return b[:n]
	}
	return make([]byte, n, size)
}

// takeSmallest removes and returns the smallest buffer of bufs with room
// for n bytes, or nil.
func takeSmallest(bufs *[][]byte, n int) []byte {
	l := *bufs
	best := -1
	for i, b := range l {
		if cap(b) >= n && (best < 0 || cap(b) < cap(l[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b := l[best]
	l[best] = l[len(l)-1]
	*bufs = l[:len(l)-1]
	return b
}

// recycle keeps a dropped range's buffer; the list is bounded by the
// ranges that can be held at once. A mapped buffer not kept stays mapped
// until stop: the list only grows past its bound when many ranges drop
// at once, and they are few.
func (f *rangeFetcher) recycle(b []byte) {
	f.freeMu.Lock()
	if !f.unmapped && len(f.free) < 2*fetchParallel {
		f.free = append(f.free, b)
	}
	f.freeMu.Unlock()
}

// newRangeFetcher groups the remote blocks of tasks into ranges; nil when
// no task is remote.
//
// Which neighbours share a range weighs a GET against the bytes between
// them: gaps up to fetchGap always (a GET costs more than 64 KiB of
// transfer on any store), then larger gaps up to fetchMaxGap, smallest
// first, while the bytes of those gaps stay within fetchSlack of the
// bytes the blocks need. The bound is relative, so that a query reads at
// most a sixteenth more than its blocks and the 64 KiB gaps whatever its
// size: a host's blocks lie in clusters over the hours, and the GETs
// saved are the clusters nearly touching (7% to 21% of a host query's
// GETs in the fleet bench, for 4% to 6% more bytes). A range is at most
// fetchMaxRange.
func newRangeFetcher(tasks []blockTask) *rangeFetcher {
	f := &rangeFetcher{byShard: map[*remoteShard][]*fetchRange{}, stopped: make(chan struct{})}
	f.cond = sync.NewCond(&f.mu)
	type block struct {
		rs     *remoteShard
		off, n int64
		gap    int64 // from the shard's previous block's end; -1: none, or behind it
		merge  bool
	}
	var blocks []block
	end := map[*remoteShard]int64{}
	var need int64
	for _, t := range tasks {
		rs, ok := t.shard.f.(*remoteShard)
		if !ok {
			continue
		}
		off, n := t.meta.Offset, int64(pcapio.BlockSpan(t.meta))
		if off < 0 || n <= 0 || off+n > rs.size {
			continue // implausible: its own read reports it
		}
		gap := int64(-1)
		if e, ok := end[rs]; ok && off >= e {
			gap = off - e
		}
		end[rs] = off + n
		need += n
		blocks = append(blocks, block{rs: rs, off: off, n: n, gap: gap, merge: gap >= 0 && gap <= fetchGap})
	}
	var wide []int // blocks after a gap worth weighing
	for i, b := range blocks {
		if b.gap > fetchGap && b.gap <= fetchMaxGap {
			wide = append(wide, i)
		}
	}
	sort.SliceStable(wide, func(i, j int) bool { return blocks[wide[i]].gap < blocks[wide[j]].gap })
	var extra int64
	for _, i := range wide {
		if extra+blocks[i].gap > need/fetchSlack {
			break
		}
		extra += blocks[i].gap
		blocks[i].merge = true
	}
	open := map[*remoteShard]*fetchRange{}
	for _, b := range blocks {
		if cur := open[b.rs]; cur != nil && b.merge && b.off+b.n-cur.off <= fetchMaxRange {
			cur.n = b.off + b.n - cur.off
			cur.left.Add(b.n)
			continue
		}
		r := &fetchRange{rs: b.rs, off: b.off, n: b.n, done: make(chan struct{}), f: f}
		r.left.Store(b.n)
		open[b.rs] = r
		f.ranges = append(f.ranges, r)
		f.byShard[b.rs] = append(f.byShard[b.rs], r)
	}
	if len(f.ranges) == 0 {
		return nil
	}
	f.queue = make(chan *fetchRange, len(f.ranges))
	for rs, l := range f.byShard {
		sort.SliceStable(l, func(i, j int) bool { return l[i].off < l[j].off })
		rs.fetch = f
	}
	return f
}

// start begins fetching in order, within the memory bound.
func (f *rangeFetcher) start() {
	if f == nil || !f.started.CompareAndSwap(false, true) {
		return
	}
	workers := min(fetchParallel, len(f.ranges))
	f.wg.Add(1 + workers)
	go func() {
		defer f.wg.Done()
		for _, r := range f.ranges {
			f.mu.Lock()
			for f.used > 0 && f.used+r.n > fetchAhead && !f.isStopped() {
				f.cond.Wait()
			}
			f.mu.Unlock()
			if f.isStopped() {
				return
			}
			r.begin()
		}
	}()
	for range workers {
		go func() {
			defer f.wg.Done()
			for {
				select {
				case r := <-f.queue:
					r.fetch()
				case <-f.stopped:
					return
				}
			}
		}()
	}
}

func (f *rangeFetcher) isStopped() bool {
	select {
	case <-f.stopped:
		return true
	default:
		return false
	}
}

// stop ends fetching and drops what is held.
func (f *rangeFetcher) stop() {
	if f == nil {
		return
	}
	f.stopOne.Do(func() {
		close(f.stopped)
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	f.wg.Wait()
	for _, r := range f.ranges {
		r.mu.Lock()
		r.data = nil
		r.mu.Unlock()
	}
	// No worker runs and no range holds a buffer: readers copy from a
	// range only under its lock, and find it dropped now.
	f.freeMu.Lock()
	f.unmapped = true
	fetchPool.put(f.mapped)
	f.mapped, f.free = nil, nil
	f.freeMu.Unlock()
}

// fetchPool keeps mapped range buffers from one plan to the next in a
// process (report and replay plan many), up to fetchPoolMax bytes; the
// rest is unmapped. A one-shot query so never unmaps at its end: unmapping
// a host query's 12 MB took 1.2-1.7 ms, its exit frees them anyway.
var fetchPool mappedPool

const fetchPoolMax = fetchAhead + fetchMaxRange

type mappedPool struct {
	mu    sync.Mutex
	bufs  [][]byte
	bytes int64
}

// get takes the smallest buffer of at least n bytes, or returns nil.
func (p *mappedPool) get(n int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := takeSmallest(&p.bufs, n)
	if b == nil {
		return nil
	}
	p.bytes -= int64(cap(b))
	return b[:cap(b)]
}

// put keeps buffers while the pool has room and unmaps the others.
func (p *mappedPool) put(bufs [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bufs {
		if p.bytes+int64(cap(b)) <= fetchPoolMax {
			p.bufs = append(p.bufs, b[:cap(b)])
			p.bytes += int64(cap(b))
			continue
		}
		unmapFetchBuf(b)
	}
}

// begin queues the range for a worker once, whoever asks first.
func (r *fetchRange) begin() {
	r.once.Do(func() {
		f := r.f
		f.mu.Lock()
		f.used += r.n
		f.mu.Unlock()
		f.queue <- r // never blocks: room for every range
		f.start()    // a reader may ask before the plan started it
	})
}

// fetch reads the range with one GET, on a worker.
func (r *fetchRange) fetch() {
	defer close(r.done)
	f := r.f
	buf := f.buffer(r.n)
	if err := r.rs.get(buf, r.off); err != nil {
		f.recycle(buf)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		f.mu.Lock()
		f.used -= r.n
		f.cond.Broadcast()
		f.mu.Unlock()
		return
	}
	r.mu.Lock()
	r.data = buf
	r.mu.Unlock()
}

// drop releases the range's memory.
func (r *fetchRange) drop() {
	r.mu.Lock()
	data := r.data
	r.data = nil
	r.mu.Unlock()
	if data != nil {
		f := r.f
		f.recycle(data)
		f.mu.Lock()
		f.used -= r.n
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// read serves p at off from a range holding it; ok is false when none
// does (or it was dropped), and the caller reads it itself.
func (f *rangeFetcher) read(rs *remoteShard, p []byte, off int64) (ok bool, err error) {
	l := f.byShard[rs]
	end := off + int64(len(p))
	i := sort.Search(len(l), func(i int) bool { return l[i].off+l[i].n >= end })
	for ; i < len(l) && l[i].off <= off; i++ {
		r := l[i]
		if end > r.off+r.n {
			continue
		}
		r.begin()
		select {
		case <-r.done:
		case <-f.stopped:
			return false, nil
		}
		r.mu.Lock()
		if r.data == nil {
			e := r.err
			r.mu.Unlock()
			if e != nil {
				return true, e
			}
			return false, nil
		}
		copy(p, r.data[off-r.off:end-r.off])
		r.mu.Unlock()
		if r.left.Add(-int64(len(p))) <= 0 {
			r.drop()
		}
		return true, nil
	}
	return false, nil
}
