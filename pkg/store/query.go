package store

import (
	"container/heap"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapfilter"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Selector picks packets. Within one field the values are alternatives
// (any host of Hosts); across fields all must hold (a host AND a port).
// Hosts and Nets form one address group. Address, port, protocol and VLAN
// selectors look through VLAN tags; Filter has exactly tcpdump's semantics.
type Selector struct {
	From, To time.Time // [From, To); zero is open
	Hosts    []netip.Addr
	Nets     []netip.Prefix
	Ports    []uint16
	Protos   []uint8
	VLANs    []uint16
	Filter   *pcapfilter.Filter
}

func (s *Selector) hasAddr() bool { return len(s.Hosts) > 0 || len(s.Nets) > 0 }

func (s *Selector) addrMatch(a netip.Addr) bool {
	a = a.Unmap()
	for _, h := range s.Hosts {
		if h == a {
			return true
		}
	}
	for _, n := range s.Nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// MatchParsed applies every field but Filter to a parsed packet.
func (s *Selector) MatchParsed(ts time.Time, p *pkthdr.Packet) bool {
	if !s.From.IsZero() && ts.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && !ts.Before(s.To) {
		return false
	}
	if s.hasAddr() {
		if p.IPVersion == 0 && !p.ARP {
			return false
		}
		if !s.addrMatch(p.Src) && !s.addrMatch(p.Dst) {
			return false
		}
	}
	if len(s.Ports) > 0 {
		if !p.HasPorts || (!slices.Contains(s.Ports, p.SrcPort) && !slices.Contains(s.Ports, p.DstPort)) {
			return false
		}
	}
	if len(s.Protos) > 0 && (p.IPVersion == 0 || !slices.Contains(s.Protos, p.Proto)) {
		return false
	}
	if len(s.VLANs) > 0 {
		found := false
		for i := 0; i < p.NVLAN; i++ {
			found = found || slices.Contains(s.VLANs, p.VLAN[i])
		}
		if !found {
			return false
		}
	}
	return true
}

// Match applies the whole selector, parsing the packet into scratch.
func (s *Selector) Match(pk *pcapio.Packet, scratch *pkthdr.Packet) bool {
	pkthdr.Parse(pk.LinkType, pk.Data, scratch)
	if !s.MatchParsed(pk.Timestamp, scratch) {
		return false
	}
	return s.Filter.Match(pk.LinkType, pk.Timestamp, pk.Data, pk.OrigLen)
}

// Damage reports a part of the store that could not be read.
type Damage struct {
	Shard  string
	Block  int // -1 for a whole file (index, shard header)
	Offset int64
	Reason string
}

func (d Damage) String() string {
	if d.Block < 0 {
		return fmt.Sprintf("%s: %s", d.Shard, d.Reason)
	}
	return fmt.Sprintf("%s: block %d at byte %d: %s", d.Shard, d.Block, d.Offset, d.Reason)
}

// DamageError is returned when a query or scan met damage but delivered
// everything else.
type DamageError struct{ Damage []Damage }

func (e *DamageError) Error() string {
	if len(e.Damage) == 1 {
		return "damaged data skipped: " + e.Damage[0].String()
	}
	return fmt.Sprintf("damaged data skipped in %d places (first: %s)", len(e.Damage), e.Damage[0])
}

// Plan is a query resolved to the blocks it must read.
type Plan struct {
	sel      Selector
	shards   []*planShard
	tasks    []blockTask
	Damage   []Damage
	Scanned  int // blocks to read
	Total    int // blocks in the shards considered
	Snaplen  uint32
	Nanos    bool
	LinkType []pkthdr.LinkType // distinct link types of the blocks to read, in first-seen order
}

type planShard struct {
	file ShardFile
	f    *os.File
	sh   *pcapio.Shard
}

type blockTask struct {
	shard *planShard
	block int
	first int64
}

// PlanQuery resolves sel against several stores: time-pruned shards, their
// indexes, and the blocks left to read. Close the plan when done.
func PlanQuery(stores []*Store, sel Selector) (*Plan, error) {
	pl := &Plan{sel: sel}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	for _, st := range stores {
		files, err := st.Shards()
		if err != nil {
			pl.Close()
			return nil, err
		}
		for _, sf := range files {
			if !sf.Overlaps(sel.From, sel.To) {
				continue
			}
			if err := pl.addShard(sf, dec); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // removed by retention meanwhile
				}
				pl.Damage = append(pl.Damage, Damage{Shard: sf.Name(), Block: -1, Reason: err.Error()})
			}
		}
	}
	sort.SliceStable(pl.tasks, func(i, j int) bool { return pl.tasks[i].first < pl.tasks[j].first })
	pl.Scanned = len(pl.tasks)
	return pl, nil
}

func (pl *Plan) addShard(sf ShardFile, dec *zstd.Decoder) error {
	f, err := os.Open(sf.ShardPath())
	if err != nil && !sf.Sealed {
		// Sealed between listing and opening: find it under its new name.
		return err
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		f.Close()
		if !sf.Sealed && errors.Is(err, pcapio.ErrShardTruncated) {
			return nil // just created: nothing in it yet
		}
		return err
	}
	if sf.Sealed && !sh.Sealed {
		pl.Damage = append(pl.Damage, Damage{Shard: sf.Name(), Block: -1, Reason: "trailer missing or damaged; blocks read by walking the file"})
	}
	ps := &planShard{file: sf, f: f, sh: sh}
	pl.shards = append(pl.shards, ps)
	pl.Total += len(sh.Blocks)

	cand := pl.timeBlocks(sh)
	if sf.Sealed && sh.Sealed && len(cand) > 0 && pl.indexable() {
		if b, err := os.ReadFile(sf.IndexPath()); err == nil {
			ix, err := index.Open(b, dec)
			if err == nil && ix.Blocks == len(sh.Blocks) {
				sel, err := pl.indexBlocks(ix)
				if err == nil {
					cand = index.Intersect(cand, sel)
				} else {
					pl.Damage = append(pl.Damage, Damage{Shard: sf.Name(), Block: -1, Reason: "index: " + err.Error() + " (blocks scanned instead)"})
				}
			} else if err != nil {
				pl.Damage = append(pl.Damage, Damage{Shard: sf.Name(), Block: -1, Reason: "index: " + err.Error() + " (blocks scanned instead)"})
			}
		}
	}
	if len(cand) > 0 {
		if !slices.Contains(pl.LinkType, sh.Header.LinkType) {
			pl.LinkType = append(pl.LinkType, sh.Header.LinkType)
		}
		pl.Nanos = pl.Nanos || sh.Header.Nanos
		pl.Snaplen = max(pl.Snaplen, sh.Header.Snaplen)
	}
	for _, b := range cand {
		pl.tasks = append(pl.tasks, blockTask{shard: ps, block: int(b), first: sh.Blocks[b].First})
	}
	return nil
}

func (pl *Plan) timeBlocks(sh *pcapio.Shard) []uint32 {
	from, to := pl.sel.From, pl.sel.To
	out := make([]uint32, 0, len(sh.Blocks))
	for i, b := range sh.Blocks {
		if !from.IsZero() && b.Last < from.UnixNano() {
			continue
		}
		if !to.IsZero() && b.First >= to.UnixNano() {
			continue
		}
		out = append(out, uint32(i))
	}
	return out
}

func (pl *Plan) indexable() bool {
	s := &pl.sel
	return s.hasAddr() || len(s.Ports) > 0 || len(s.Protos) > 0 || len(s.VLANs) > 0
}

// indexBlocks intersects the unions of each selector field's postings.
func (pl *Plan) indexBlocks(ix *index.Index) ([]uint32, error) {
	s := &pl.sel
	var groups [][]uint32
	if s.hasAddr() {
		var lists [][]uint32
		for _, h := range s.Hosts {
			l, err := ix.Lookup(index.Addr(h))
			if err != nil {
				return nil, err
			}
			lists = append(lists, l)
		}
		for _, n := range s.Nets {
			n = n.Masked()
			lo, hi := prefixRange(n)
			kind := index.KindIPv6
			if n.Addr().Unmap().Is4() {
				kind = index.KindIPv4
			}
			ls, err := ix.Range(kind, lo, hi)
			if err != nil {
				return nil, err
			}
			lists = append(lists, ls...)
		}
		groups = append(groups, index.Union(lists...))
	}
	lookupAll := func(keys []index.Key) error {
		var lists [][]uint32
		for _, k := range keys {
			l, err := ix.Lookup(k)
			if err != nil {
				return err
			}
			lists = append(lists, l)
		}
		groups = append(groups, index.Union(lists...))
		return nil
	}
	if len(s.Ports) > 0 {
		keys := make([]index.Key, len(s.Ports))
		for i, p := range s.Ports {
			keys[i] = index.Port(p)
		}
		if err := lookupAll(keys); err != nil {
			return nil, err
		}
	}
	if len(s.Protos) > 0 {
		keys := make([]index.Key, len(s.Protos))
		for i, p := range s.Protos {
			keys[i] = index.Proto(p)
		}
		if err := lookupAll(keys); err != nil {
			return nil, err
		}
	}
	if len(s.VLANs) > 0 {
		keys := make([]index.Key, len(s.VLANs))
		for i, v := range s.VLANs {
			keys[i] = index.VLAN(v)
		}
		if err := lookupAll(keys); err != nil {
			return nil, err
		}
	}
	out := groups[0]
	for _, g := range groups[1:] {
		out = index.Intersect(out, g)
	}
	return out, nil
}

// prefixRange returns the lowest and highest address of a prefix as
// left-aligned key values.
func prefixRange(p netip.Prefix) (lo, hi [16]byte) {
	a := p.Addr().Unmap()
	bits := p.Bits()
	if a.Is4() {
		b := a.As4()
		copy(lo[:], b[:])
		copy(hi[:], b[:])
		for i := bits; i < 32; i++ {
			hi[i/8] |= 0x80 >> (i % 8)
		}
		return
	}
	lo = a.As16()
	hi = lo
	for i := bits; i < 128; i++ {
		hi[i/8] |= 0x80 >> (i % 8)
	}
	return
}

// Close releases the shard files.
func (pl *Plan) Close() {
	for _, s := range pl.shards {
		s.f.Close()
	}
	pl.shards = nil
}

// blockResult holds one block's matching packets, sorted by time.
type blockResult struct {
	task  int
	pkts  []pcapio.Packet
	arena []byte
	pos   int
	dmg   *Damage
	done  chan struct{}
}

// Run reads the planned blocks in parallel and calls emit with every
// matching packet in time order (ties keep storage order). Data is valid
// only during the call. It returns *DamageError after delivering
// everything readable if any block was damaged; an error from emit stops
// the run and is returned.
func (pl *Plan) Run(emit func(p pcapio.Packet) error) error {
	workers := runtime.GOMAXPROCS(0)
	depth := 4 * workers
	results := make([]*blockResult, len(pl.tasks))
	for i := range results {
		results[i] = &blockResult{task: i, done: make(chan struct{})}
	}
	work := make(chan *blockResult, depth)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := pcapio.NewBlockReader()
			defer br.Close()
			var scratch pkthdr.Packet
			for r := range work {
				pl.readBlock(br, r, &scratch)
				close(r.done)
			}
		}()
	}
	// The feeder stays at most depth blocks ahead of the merge, so memory is
	// bounded however large the result.
	window := make(chan struct{}, depth)
	go func() {
		defer close(work)
		for _, r := range results {
			select {
			case window <- struct{}{}:
			case <-stop:
				return
			}
			work <- r
		}
	}()
	err := pl.merge(results, window, emit)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.dmg != nil {
			pl.Damage = append(pl.Damage, *r.dmg)
		}
	}
	if len(pl.Damage) > 0 {
		return &DamageError{Damage: pl.Damage}
	}
	return nil
}

func (pl *Plan) readBlock(br *pcapio.BlockReader, r *blockResult, scratch *pkthdr.Packet) {
	t := pl.tasks[r.task]
	sh := t.shard.sh
	raw, _, err := br.Read(sh, t.block)
	if err != nil {
		var be *pcapio.BlockError
		d := Damage{Shard: t.shard.file.Name(), Block: t.block, Offset: sh.Blocks[t.block].Offset, Reason: err.Error()}
		if errors.As(err, &be) {
			d.Reason = be.Reason
		}
		r.dmg = &d
		return
	}
	lt := sh.Header.LinkType
	err = pcapio.Records(raw, lt, sh.Header.Nanos, func(p pcapio.Packet) bool {
		if !pl.sel.Match(&p, scratch) {
			return true
		}
		start := len(r.arena)
		r.arena = append(r.arena, p.Data...)
		p.Data = nil
		p.Offset = int64(start)
		r.pkts = append(r.pkts, p)
		return true
	})
	if err != nil {
		r.dmg = &Damage{Shard: t.shard.file.Name(), Block: t.block, Offset: sh.Blocks[t.block].Offset, Reason: err.Error()}
	}
	// Slices into the arena are made only now: appends may have moved it.
	for i := range r.pkts {
		p := &r.pkts[i]
		end := len(r.arena)
		if i+1 < len(r.pkts) {
			end = int(r.pkts[i+1].Offset)
		}
		p.Data = r.arena[p.Offset:end:end]
	}
	sort.SliceStable(r.pkts, func(i, j int) bool { return r.pkts[i].Timestamp.Before(r.pkts[j].Timestamp) })
}

type cursorHeap []*blockResult

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].pkts[h[i].pos].Timestamp, h[j].pkts[h[j].pos].Timestamp
	if !a.Equal(b) {
		return a.Before(b)
	}
	return h[i].task < h[j].task
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*blockResult)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge activates blocks in order of their first timestamp: block i joins
// the heap once the heap's earliest packet is not before block i's first,
// so no later block can hold an earlier packet than the one emitted.
func (pl *Plan) merge(results []*blockResult, window chan struct{}, emit func(pcapio.Packet) error) error {
	h := &cursorHeap{}
	next := 0
	activate := func() {
		r := results[next]
		<-r.done
		next++
		if len(r.pkts) > 0 {
			heap.Push(h, r)
		} else {
			<-window
		}
	}
	for {
		for next < len(results) && (h.Len() == 0 || !(*h)[0].pkts[(*h)[0].pos].Timestamp.Before(time.Unix(0, pl.tasks[next].first))) {
			activate()
		}
		if h.Len() == 0 {
			return nil
		}
		r := (*h)[0]
		if err := emit(r.pkts[r.pos]); err != nil {
			return err
		}
		r.pos++
		if r.pos == len(r.pkts) {
			heap.Pop(h)
			r.pkts, r.arena = nil, nil
			<-window
		} else {
			heap.Fix(h, 0)
		}
	}
}
