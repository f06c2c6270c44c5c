package store

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nwhealth/nwhealth/internal/bigbuf"
	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapfilter"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"golang.org/x/sys/unix"
)

// Selector picks packets. Within one field the values are alternatives
// (any host of Hosts); across fields all must hold (a host AND a port).
// Hosts and Nets form one address group. Address, port, protocol and VLAN
// selectors look through VLAN tags and into tunnels: each of the address
// group, ports and protocols matches the innermost IP header or the
// outermost one of a tunnelled packet, as the index keys both
// (docs/store.md). Filter has exactly tcpdump's semantics (outer headers).
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
	o := &p.Outer // IPVersion 0 unless the packet was inside an IP tunnel
	if s.hasAddr() {
		inner := (p.IPVersion != 0 || p.ARP) && (s.addrMatch(p.Src) || s.addrMatch(p.Dst))
		if !inner && (o.IPVersion == 0 || !s.addrMatch(o.Src()) && !s.addrMatch(o.Dst())) {
			return false
		}
	}
	if len(s.Ports) > 0 {
		inner := p.HasPorts && (slices.Contains(s.Ports, p.SrcPort) || slices.Contains(s.Ports, p.DstPort))
		if !inner && (!o.HasPorts || !slices.Contains(s.Ports, o.SrcPort) && !slices.Contains(s.Ports, o.DstPort)) {
			return false
		}
	}
	if len(s.Protos) > 0 {
		inner := p.IPVersion != 0 && slices.Contains(s.Protos, p.Proto)
		if !inner && (o.IPVersion == 0 || !slices.Contains(s.Protos, o.Proto)) {
			return false
		}
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

// quickHosts returns the selector's IPv4 hosts and whether rejectIPv4
// applies: the address group is hosts only (no networks).
func (s *Selector) quickHosts() ([][4]byte, bool) {
	if len(s.Hosts) == 0 || len(s.Nets) > 0 {
		return nil, false
	}
	var v4 [][4]byte
	for _, h := range s.Hosts {
		if h.Is4() {
			v4 = append(v4, h.As4())
		}
	}
	return v4, true
}

// rejectIPv4 tells, from a few fixed bytes, that a plain IPv4 packet (no
// VLAN tag) names none of hosts4, the selector's IPv4 hosts (quickHosts):
// the usual case for the packets of a host query's blocks, which then skip
// header parsing. It answers false whenever it cannot tell, leaving the
// packet to Match.
// Parsing such a packet gives these addresses, or no IP at all: both fail
// the address group, unless the packet may be a tunnel
// (pkthdr.MayTunnelIPv4), whose inner addresses the group also matches.
func rejectIPv4(hosts4 [][4]byte, lt pkthdr.LinkType, data []byte) bool {
	ip := data
	switch lt {
	case pkthdr.LinkEthernet:
		if len(data) < 14 || data[12] != 0x08 || data[13] != 0x00 {
			return false
		}
		ip = data[14:]
	case pkthdr.LinkRaw, pkthdr.LinkIPv4:
	default:
		return false
	}
	if len(ip) < 20 || ip[0]>>4 != 4 || pkthdr.MayTunnelIPv4(ip) {
		return false
	}
	src, dst := [4]byte(ip[12:16]), [4]byte(ip[16:20])
	for _, h := range hosts4 {
		if h == src || h == dst {
			return false
		}
	}
	return true
}

// needsHeaders reports whether matching looks inside packets (beyond
// their time and the tcpdump filter, which reads the bytes itself).
func (s *Selector) needsHeaders() bool {
	return s.hasAddr() || len(s.Ports) > 0 || len(s.Protos) > 0 || len(s.VLANs) > 0
}

// timeOnly reports whether the selector is a time range and nothing else.
func (s *Selector) timeOnly() bool { return !s.needsHeaders() && s.Filter.Empty() }

// Match applies the whole selector, parsing the packet into scratch.
func (s *Selector) Match(pk *pcapio.Packet, scratch *pkthdr.Packet) bool {
	if s.needsHeaders() {
		pkthdr.Parse(pk.LinkType, pk.Data, scratch)
		if !s.MatchParsed(pk.Timestamp, scratch) {
			return false
		}
	} else {
		if !s.From.IsZero() && pk.Timestamp.Before(s.From) {
			return false
		}
		if !s.To.IsZero() && !pk.Timestamp.Before(s.To) {
			return false
		}
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

	// unapplied is the first shard's link type the filter cannot apply
	// to (a *pcapfilter.UnappliedError); applied counts the shards it can.
	unapplied error
	applied   int
	// Batch lets RunRecords hand out runs of consecutive records (Count >
	// 1) where no other block interleaves: a pcap writer copies them in
	// one write.
	Batch bool
	// MemoryLimit bounds the bytes of blocks a run holds (0:
	// DefaultMemoryLimit): half for blocks read ahead, all for the
	// blocks that overlap in time. Past it, the rest is delivered in
	// passes over the blocks left (slower, in the same order).
	MemoryLimit int64

	hosts4 [][4]byte // the IPv4 hosts, for rejectIPv4 when quick
	quick  bool

	fetch  *rangeFetcher // ranged reads of object-store blocks, ahead of the readers
	tocBuf []byte        // reused by the shards' table-of-contents reads
	idxBuf []byte        // reused by the shards' index lookups
	arenas chan []byte
	ents   chan []entry // match lists, recycled like the arenas
	// coldOnce closes cold when a read finds data outside the page cache:
	// only then is prefetching worth its system calls.
	coldOnce sync.Once
	cold     chan struct{}
	noProbe  atomic.Bool  // the kernel or file system cannot tell
	next     atomic.Int64 // first task not yet handed to a reader
}

func (pl *Plan) markCold() { pl.coldOnce.Do(func() { close(pl.cold) }) }

// cacheProbe reads a shard file asking the kernel not to wait for the
// disk (RWF_NOWAIT): a read that would wait marks the plan cold, and is
// then done normally. A warm query so makes no prefetch calls at all, and
// a cold one starts prefetching at its first miss.
type cacheProbe struct {
	f  *os.File
	fd int
	pl *Plan
}

func (c *cacheProbe) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if !c.pl.noProbe.Load() && len(p) > 0 {
		m, err := readNoWait(c.fd, p, off)
		switch {
		case err == nil && m == len(p):
			return m, nil
		case err == nil && m > 0:
			n = m // the rest is not cached
			c.pl.markCold()
		case err == nil:
			// End of file: the plain read below says so.
		case errors.Is(err, unix.EAGAIN):
			c.pl.markCold()
		default: // no RWF_NOWAIT here: always prefetch, as without a probe
			c.pl.noProbe.Store(true)
			c.pl.markCold()
		}
	}
	m, err := c.f.ReadAt(p[n:], off+int64(n))
	return n + m, err
}

type planShard struct {
	file ShardFile
	f    blockFile
	sh   *pcapio.Shard
}

type blockTask struct {
	shard *planShard
	block int
	meta  pcapio.BlockMeta
}

// PlanQuery resolves sel against several stores: time-pruned shards, their
// indexes, and the blocks left to read. Close the plan when done.
func PlanQuery(stores []Reader, sel Selector) (*Plan, error) {
	pl := &Plan{sel: sel, cold: make(chan struct{})}
	pl.hosts4, pl.quick = sel.quickHosts()
	for _, st := range stores {
		l, err := st.listFrom(sel.From)
		if err != nil {
			pl.Close()
			return nil, err
		}
		pl.Damage = append(pl.Damage, l.Skipped...)
		var shards []ShardFile
		for _, sf := range l.Shards {
			if sf.Overlaps(sel.From, sel.To) {
				shards = append(shards, sf)
			}
		}
		if r, ok := st.(*Remote); ok {
			// Manifests, headers, tables of contents and indexes of an
			// object store are fetched in parallel (and cached), not one
			// round trip after another.
			if err := r.prepare(shards, pl.indexable()); err != nil {
				pl.Close()
				return nil, err
			}
		}
		for _, sf := range shards {
			if err := pl.addShard(st, sf); err != nil {
				if fatal(err) {
					pl.Close()
					return nil, err
				}
				if errors.Is(err, os.ErrNotExist) && sf.Sensor == "" {
					continue // removed by retention meanwhile
				}
				pl.Damage = append(pl.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: reason(err)})
			}
		}
	}
	// A filter tcpdump cannot compile for any shard's link type would
	// match nothing: refuse it (some shards of other types: damage).
	if pl.unapplied != nil && pl.applied == 0 {
		pl.Close()
		return nil, pl.unapplied
	}
	sort.SliceStable(pl.tasks, func(i, j int) bool { return pl.tasks[i].meta.First < pl.tasks[j].meta.First })
	pl.Scanned = len(pl.tasks)
	// Object store blocks start coming while the caller opens its output.
	pl.fetch = newRangeFetcher(pl.tasks)
	pl.fetch.start()
	return pl, nil
}

func (pl *Plan) addShard(st Reader, sf ShardFile) error {
	// An open shard sealed between listing and opening is not found
	// (os.ErrNotExist): the caller skips it, and the next query finds it
	// under its new name.
	f, err := st.openShard(sf)
	if err != nil {
		return err
	}
	var ra io.ReaderAt = f
	if lf, ok := f.(*localFile); ok {
		// Blocks are read with pread, not through a memory map: a query
		// reads each block once, and faulting mapped pages in costs more
		// than the copy (several times more on virtual machines).
		ra = &cacheProbe{f: lf.f, fd: int(lf.f.Fd()), pl: pl}
	}
	sh, err := pcapio.OpenShardTOC(ra, f.Size())
	if err != nil {
		f.Close()
		if !sf.Sealed && errors.Is(err, pcapio.ErrShardTruncated) {
			return nil // just created: nothing in it yet
		}
		return err
	}
	// A shard whose link type the filter cannot apply to (tcpdump cannot
	// compile it for NFLOG, or vlan for raw IP) is not read, and says so.
	if err := pl.sel.Filter.Check(sh.Header.LinkType); err != nil {
		f.Close()
		if pl.unapplied == nil {
			pl.unapplied = err
		}
		pl.Damage = append(pl.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: err.Error() + " (its packets were not read)"})
		return nil
	}
	pl.applied++
	if sf.Sealed && !sh.Sealed {
		pl.Damage = append(pl.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: "trailer missing or damaged; blocks read by walking the file"})
	}
	ps := &planShard{file: sf, f: f, sh: sh}
	pl.shards = append(pl.shards, ps)

	// Index first: the blocks that hold the selected keys, then their time.
	// Planning then costs what the matches cost, not what the shard holds.
	var cand []uint32
	indexed := false
	if sf.Sealed && sh.Sealed && pl.indexable() {
		ix, ixf, err := pl.openIndex(st, sf)
		if err == nil {
			defer ixf.Close()
		}
		switch {
		case err == nil && ix.Blocks == sh.NumBlocks():
			if sel, err := pl.indexBlocks(ix); err == nil {
				cand, indexed = sel, true
			} else {
				pl.Damage = append(pl.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: "index: " + err.Error() + " (blocks scanned instead)"})
			}
			pl.idxBuf = ix.Buffer()
		case err == nil:
			pl.Damage = append(pl.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: "index covers a different number of blocks (blocks scanned instead)"})
		case !errors.Is(err, os.ErrNotExist):
			pl.Damage = append(pl.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: "index: " + reason(err) + " (blocks scanned instead)"})
		}
	}
	timed := !pl.sel.From.IsZero() || !pl.sel.To.IsZero()
	if !indexed && !timed {
		// Every block is read: take the whole table at once, checked
		// against its CRC, so that a damaged one sends the reader walking
		// the blocks instead of reading wrong places.
		if err := sh.LoadTOC(); err != nil {
			pl.Damage = append(pl.Damage, Damage{Shard: sf.Name(), Block: -1, Reason: "trailer missing or damaged; blocks read by walking the file"})
		}
	}
	pl.Total += sh.NumBlocks()
	from, to := pl.sel.From.UnixNano(), pl.sel.To.UnixNano()
	n := len(pl.tasks)
	add := func(b uint32, m pcapio.BlockMeta) {
		// An implausible entry is not trusted to prune: its block is read,
		// and its header reports the damage.
		if sh.Plausible(m) && ((!pl.sel.From.IsZero() && m.Last < from) || (!pl.sel.To.IsZero() && m.First >= to)) {
			return
		}
		pl.tasks = append(pl.tasks, blockTask{shard: ps, block: int(b), meta: m})
	}
	if indexed {
		// At most one task per candidate: grown once, not by doubling
		// (each doubling is fresh memory).
		pl.tasks = slices.Grow(pl.tasks, len(cand))
		pl.tocBuf, err = sh.Entries(cand, pl.tocBuf, add)
	} else {
		// A time range looks at every entry, a chunk of the table at a
		// time (loading it whole cost a millisecond of fresh memory per
		// 1 GiB shard), and reads only the blocks it keeps.
		pl.tocBuf, err = sh.AllEntries(pl.tocBuf, add)
	}
	if err != nil {
		return err
	}
	if len(pl.tasks) > n {
		if !slices.Contains(pl.LinkType, sh.Header.LinkType) {
			pl.LinkType = append(pl.LinkType, sh.Header.LinkType)
		}
		pl.Nanos = pl.Nanos || sh.Header.Nanos
		pl.Snaplen = max(pl.Snaplen, sh.Header.Snaplen)
	}
	return nil
}

// openIndex opens an index file for lookups, which read only the parts
// they need into the plan's buffer, reused from shard to shard. Close the
// file when done with the index.
func (pl *Plan) openIndex(st Reader, sf ShardFile) (*index.Index, blockFile, error) {
	f, err := st.openIndex(sf)
	if err != nil {
		return nil, nil, err
	}
	ix, err := index.OpenAt(f, f.Size(), pl.idxBuf)
	if err == nil {
		return ix, f, nil
	}
	f.Close()
	return nil, nil, err
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

// Close releases the shard files and the buffers.
func (pl *Plan) Close() {
	bigbuf.Put(pl.idxBuf)
	bigbuf.Put(pl.tocBuf)
	pl.idxBuf, pl.tocBuf = nil, nil
	if pl.arenas != nil {
		for len(pl.arenas) > 0 {
			bigbuf.Put(<-pl.arenas)
		}
	}
	pl.fetch.stop()
	for _, s := range pl.shards {
		s.f.Close()
	}
	pl.shards = nil
}

// blockResult holds one block's matching packets, sorted by time: data is
// the block's records (decompressed, or stored ones where they were read),
// which the entries point at.
type blockResult struct {
	task  int
	ents  []entry // pointer-free, so the garbage collector skips it
	arena []byte  // the buffer holding data, returned to the plan after
	data  []byte  // the block's records
	lt    pkthdr.LinkType
	nanos bool
	pos   int
	dmg   *Damage
	fatal error       // the store could not be read at all (object store down)
	held  int64       // memory counted for the block (bytes)
	ready atomic.Bool // read: the fields above are set
}

// bytes is the memory a read block holds.
func (r *blockResult) bytes() int64 {
	return int64(cap(r.arena)) + int64(cap(r.ents))*int64(unsafe.Sizeof(entry{}))
}

type entry struct {
	ts   int64
	off  uint32 // of the record in data
	n    uint32 // record length, header included
	orig uint32
}

// getArena takes a block buffer from the plan's free list. Blocks in
// flight are bounded by the read-ahead window, and so are the buffers; a
// free list (rather than a sync.Pool, which the collector empties) keeps
// reusing the same memory.
func (pl *Plan) getArena() []byte {
	select {
	case b := <-pl.arenas:
		return b[:0]
	default:
		return nil
	}
}

// release returns a block's buffers once the merge is done with it.
func (pl *Plan) release(r *blockResult) {
	pl.putArena(r.arena)
	if r.ents != nil {
		select {
		case pl.ents <- r.ents:
		default:
		}
	}
	r.arena, r.data, r.ents = nil, nil, nil
}

func (pl *Plan) putArena(b []byte) {
	if b == nil {
		return
	}
	select {
	case pl.arenas <- b:
	default:
		bigbuf.Put(b)
	}
}

// Record is a matching packet: the decoded Packet and its pcap record as
// stored (16-byte header then data), with the record's time precision, so
// a pcap writer of the same precision can copy it as is.
type Record struct {
	Packet pcapio.Packet
	Raw    []byte
	Nanos  bool
	// Count is the number of consecutive records in Raw: more than one
	// only when the plan's Batch is set, and Packet is then the first.
	Count int
}

// Run reads the planned blocks in parallel and calls emit with every
// matching packet in time order (ties keep storage order). Data is valid
// only during the call. It returns *DamageError after delivering
// everything readable if any block was damaged; an error from emit stops
// the run and is returned.
func (pl *Plan) Run(emit func(p pcapio.Packet) error) error {
	return pl.RunRecords(func(r *Record) error { return emit(r.Packet) })
}

// RunRecords is Run handing out each packet's stored pcap record too.
//
// Blocks are read by GOMAXPROCS goroutines: the caller's, which also
// merges, and helpers. Each claims the next block in plan order within a
// window ahead of the merge; the merge, when the block it needs is not
// done, reads another claimable block instead of waiting. Goroutines so
// meet only when one runs out of work: handing every block from one to
// another cost as much here as the second core saved.
func (pl *Plan) RunRecords(emit func(r *Record) error) error {
	helpers := runtime.GOMAXPROCS(0) - 1
	// Blocks differ in cost (a compressed one decodes about ten times
	// slower than a stored one is used): the window must let a goroutine
	// work past a slow block instead of waiting at its edge. Four blocks
	// per goroutine cost a host query 0.5-0.8 ms of 8 on two cores; eight
	// do not, and sixteen gain nothing more. The memory is a block buffer
	// (48 KiB for 32 KiB blocks) per block in the window.
	depth := int64(8 * (helpers + 1))
	results := make([]blockResult, len(pl.tasks))
	for i := range results {
		results[i].task = i
	}
	pl.arenas = make(chan []byte, depth+int64(helpers)+2)
	pl.ents = make(chan []entry, depth+int64(helpers)+2)
	limit := pl.MemoryLimit
	if limit <= 0 {
		limit = DefaultMemoryLimit
	}
	run := &runState{pl: pl, results: results, depth: depth, aheadLimit: limit / 2,
		notify: make(chan struct{}, 1), room: make(chan struct{}, 1), stop: make(chan struct{})}
	prefetched := make(chan struct{})
	go func() { defer close(prefetched); pl.prefetch(run.stop) }()
	defer func() { <-prefetched }()
	var wg sync.WaitGroup
	for range helpers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.help()
		}()
	}
	run.reader = pcapio.NewBlockReader()
	rest, tail, err := pl.merge(run, limit, emit)
	run.stopped.Store(true)
	close(run.stop)
	wg.Wait()
	// Blocks left in the merge by an error, or read ahead of it.
	for i := range results {
		pl.release(&results[i])
	}
	if err == nil && tail >= 0 {
		// More blocks overlap in time than the memory allows: the rest
		// goes in passes.
		err = pl.passes(run, rest, tail, limit, emit)
	}
	run.reader.Close()
	if err != nil {
		return err
	}
	for i := range results {
		if d := results[i].dmg; d != nil {
			pl.Damage = append(pl.Damage, *d)
		}
	}
	if len(pl.Damage) > 0 {
		return &DamageError{Damage: pl.Damage}
	}
	return nil
}

// runState coordinates the goroutines reading a plan's blocks.
type runState struct {
	pl      *Plan
	results []blockResult
	depth   int64 // blocks that may be read ahead of the merge
	// activated counts the blocks the merge has taken: blocks below
	// activated+depth may be claimed (pl.next is the next to claim).
	activated atomic.Int64
	waiting   atomic.Int32  // helpers waiting for room in the window
	stopped   atomic.Bool   // the merge is over
	notify    chan struct{} // a helper finished a block
	room      chan struct{} // the merge took a block
	stop      chan struct{}
	reader    *pcapio.BlockReader // the merging goroutine's
	scratch   pkthdr.Packet
	// ahead counts the bytes of the blocks read but not yet taken by the
	// merge; claims stop at aheadLimit.
	ahead      atomic.Int64
	aheadLimit int64
}

// claim takes the next block of the plan if the window allows, or
// returns -1. Besides the window's count of blocks, the bytes of the
// blocks read ahead are bounded (aheadLimit), unless force: the merge
// itself needs the next block.
func (run *runState) claim(force bool) int {
	pl := run.pl
	for {
		i := pl.next.Load()
		if i >= int64(len(pl.tasks)) || i >= run.activated.Load()+run.depth {
			return -1
		}
		if !force && run.ahead.Load() > run.aheadLimit {
			return -1
		}
		if pl.next.CompareAndSwap(i, i+1) {
			return int(i)
		}
	}
}

// readAhead reads block i for the window, counting its memory.
func (run *runState) readAhead(br *pcapio.BlockReader, i int, scratch *pkthdr.Packet) {
	r := &run.results[i]
	run.pl.readBlock(br, r, scratch)
	r.held = r.bytes()
	run.ahead.Add(r.held)
	r.ready.Store(true)
}

// help is a helper goroutine: claim and read blocks until none are left
// or the merge is over.
func (run *runState) help() {
	br := pcapio.NewBlockReader()
	defer br.Close()
	var scratch pkthdr.Packet
	for !run.stopped.Load() {
		i := run.claim(false)
		if i < 0 {
			if run.pl.next.Load() >= int64(len(run.pl.tasks)) {
				return
			}
			// The window is full: wait for the merge to take a block.
			// Registering first means an activation after the claim
			// above sends a token.
			run.waiting.Add(1)
			if i = run.claim(false); i < 0 {
				select {
				case <-run.room:
				case <-run.stop:
				}
			}
			run.waiting.Add(-1)
			if i < 0 {
				continue
			}
		}
		run.readAhead(br, i, &scratch)
		select {
		case run.notify <- struct{}{}:
		default:
		}
	}
}

// await returns once block i is read, reading claimable blocks (i itself
// if nobody has) meanwhile.
func (run *runState) await(i int) {
	r := &run.results[i]
	for !r.ready.Load() {
		// Blocks are claimed in order: if i is the next, nobody is
		// reading it, and the merge must, whatever the window holds.
		if j := run.claim(run.pl.next.Load() == int64(i)); j >= 0 {
			run.readAhead(run.reader, j, &run.scratch)
			continue
		}
		<-run.notify
	}
}

// activate counts block r taken by the merge and tells waiting helpers
// that the window moved.
func (run *runState) activate(r *blockResult) {
	run.ahead.Add(-r.held)
	run.activated.Add(1)
	if run.waiting.Load() > 0 {
		select {
		case run.room <- struct{}{}:
		default:
		}
	}
}

// prefetchLimit bounds how far ahead the kernel is asked to read.
const prefetchLimit = 512 << 20

// prefetchRun bounds one prefetch request: blocks that lie one after the
// other in a shard (a time range reads runs of them) are asked for
// together, up to this much, so that the first of them arrive soon.
const prefetchRun = 8 << 20

// fadvise is unix.Fadvise; tests replace it to see the requests.
var fadvise = unix.Fadvise

// prefetch asks the kernel to start reading the planned blocks once a read
// has missed the page cache: on a cold cache the blocks of a selective
// query are scattered, and queued reads complete in parallel instead of
// one block at a time. Adjacent blocks make one request: an hour of
// traffic took 427 calls of 24 us each, competing with the readers.
func (pl *Plan) prefetch(stop <-chan struct{}) {
	select {
	case <-pl.cold:
	case <-stop:
		return
	}
	var total int64
	var run *planShard // the shard of the pending request [from, to)
	var from, to int64
	flush := func() {
		if run != nil {
			if lf, ok := run.f.(*localFile); ok {
				fadvise(int(lf.f.Fd()), from, to-from, unix.FADV_WILLNEED)
			}
		}
	}
	// Blocks already handed to readers are being read: start after them.
	for i := int(pl.next.Load()); i < len(pl.tasks); i++ {
		t := pl.tasks[i]
		if i&63 == 0 {
			select {
			case <-stop:
				return
			default:
			}
		}
		m := t.meta
		n := int64(pcapio.BlockSpan(m))
		if total += n; total > prefetchLimit {
			break
		}
		if t.shard == run && m.Offset == to && to+n-from <= prefetchRun {
			to += n
			continue
		}
		flush()
		run, from, to = t.shard, m.Offset, m.Offset+n
	}
	flush()
}

func (pl *Plan) readBlock(br *pcapio.BlockReader, r *blockResult, scratch *pkthdr.Packet) {
	t := pl.tasks[r.task]
	sh := t.shard.sh
	raw, owner, hm, err := br.ReadInto(sh, t.block, t.meta, pl.getArena())
	r.arena = owner
	if err != nil && fatal(err) {
		r.fatal = err
		return
	}
	if err != nil {
		var be *pcapio.BlockError
		d := Damage{Shard: t.shard.file.Label(), Block: t.block, Offset: t.meta.Offset, Reason: err.Error()}
		if errors.As(err, &be) {
			d.Reason = be.Reason
		}
		r.dmg = &d
		return
	}
	r.lt, r.nanos = sh.Header.LinkType, sh.Header.Nanos
	r.data = raw
	// Recycled from earlier blocks, so a query matching every packet does
	// not grow a fresh list for each block (fresh memory is page faults);
	// a selective one keeps a few of a block's packets.
	select {
	case r.ents = <-pl.ents:
		r.ents = r.ents[:0]
	default:
		r.ents = nil
	}
	// A record takes at least its 16-byte header: the header's count is
	// not trusted further than the data it came with.
	if n := min(int(hm.Packets), len(raw)/16); pl.sel.timeOnly() && cap(r.ents) < n {
		// Sized once, with room for the next blocks: a list regrown by
		// append leaves the old ones behind as garbage, and each new one
		// is fresh memory.
		r.ents = make([]entry, 0, n+n/4)
	} else if r.ents == nil {
		// A selective query keeps some of a block's packets: start at
		// a size that rarely regrows.
		r.ents = make([]entry, 0, min(n, 128))
	}
	if pl.wholeBlock(hm) { // the block's own, CRC-checked header
		// Every record matches: take them as stored, without decoding.
		err = pcapio.RecordSpans(raw, r.nanos, func(off, n int, ts int64, orig uint32) {
			r.ents = append(r.ents, entry{ts: ts, off: uint32(off), n: uint32(n), orig: orig})
		})
	} else {
		err = pl.matchRecords(raw, r, scratch)
	}
	if err != nil {
		r.dmg = &Damage{Shard: t.shard.file.Label(), Block: t.block, Offset: t.meta.Offset, Reason: err.Error()}
	}
	byTime := func(a, b entry) int {
		switch {
		case a.ts < b.ts:
			return -1
		case a.ts > b.ts:
			return 1
		}
		return 0
	}
	if !slices.IsSortedFunc(r.ents, byTime) {
		slices.SortStableFunc(r.ents, byTime)
	}
}

func (r *blockResult) ts() int64 { return r.ents[r.pos].ts }

func (r *blockResult) record(rec *Record) {
	e := r.ents[r.pos]
	raw := r.data[e.off : e.off+e.n : e.off+e.n]
	rec.Raw, rec.Nanos, rec.Count = raw, r.nanos, 1
	rec.Packet = pcapio.Packet{Timestamp: time.Unix(0, e.ts).UTC(), LinkType: r.lt, Data: raw[16:], OrigLen: int(e.orig)}
}

type cursorHeap []*blockResult

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].ts(), h[j].ts()
	if a != b {
		return a < b
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
//
// The heap holds every block that overlaps the current time: as many as
// writers wrote at once (a capture's fanout workers), or, for an input
// out of time order, any number. When their memory would pass limit, the
// merge stops and returns what is left to deliver: the blocks in the heap
// from their current record on (rest), and those from tail on (tail is -1
// when the merge delivered everything).
func (pl *Plan) merge(run *runState, limit int64, emit func(*Record) error) (rest []passSource, tail int, err error) {
	results := run.results
	var fatalErr error
	h := &cursorHeap{}
	next := 0
	var held int64 // memory of the blocks in the heap
	activate := func() bool {
		r := &results[next]
		run.await(next)
		next++
		if r.fatal != nil {
			fatalErr = r.fatal
			return false
		}
		// The window bounds the blocks read ahead of the merge, not those
		// in it: all the blocks overlapping the current time must be in
		// the heap together, or the merge would wait for a block that the
		// window holds back. Memory bounds them instead.
		run.activate(r)
		if len(r.ents) == 0 {
			pl.release(r)
			return true
		}
		heap.Push(h, r)
		held += r.held
		return held <= limit || h.Len() == 1
	}
	var rec Record
	for {
		for next < len(results) && (h.Len() == 0 || (*h)[0].ts() >= pl.tasks[next].meta.First) {
			if !activate() {
				if fatalErr != nil {
					return nil, -1, fatalErr
				}
				for _, r := range *h {
					rest = append(rest, passSource{task: r.task, pos: r.pos})
				}
				return rest, next, nil
			}
		}
		if h.Len() == 0 {
			return nil, -1, nil
		}
		r := (*h)[0]
		// With one block active (time-ordered data), emit its packets up to
		// the next block's start without heap work.
		limit := int64(math.MaxInt64)
		if next < len(results) {
			limit = pl.tasks[next].meta.First
		}
		for {
			if pl.Batch && h.Len() == 1 {
				// The run of records before limit that lie back to back in
				// the block (they do when it was stored in order).
				end := r.pos + 1
				for end < len(r.ents) && r.ents[end].ts < limit && r.ents[end].off == r.ents[end-1].off+r.ents[end-1].n {
					end++
				}
				if end-r.pos > 1 {
					r.record(&rec)
					last := r.ents[end-1]
					rec.Raw = r.data[r.ents[r.pos].off : last.off+last.n]
					rec.Count = end - r.pos
					if err := emit(&rec); err != nil {
						return nil, -1, err
					}
					r.pos = end
					if r.pos == len(r.ents) || r.ts() >= limit {
						break
					}
					continue
				}
			}
			r.record(&rec)
			if err := emit(&rec); err != nil {
				return nil, -1, err
			}
			r.pos++
			if h.Len() > 1 || r.pos == len(r.ents) || r.ts() >= limit {
				break
			}
		}
		if r.pos == len(r.ents) {
			heap.Pop(h)
			held -= r.held
			pl.release(r)
		} else {
			heap.Fix(h, 0)
		}
	}
}

// matchRecords keeps the records of a block that match the selector. The
// packets that rejectIPv4 turns away (most of a host query's) cost only
// their record header: no Packet, no time.Time.
func (pl *Plan) matchRecords(raw []byte, r *blockResult, scratch *pkthdr.Packet) error {
	return pcapio.RecordSpans(raw, r.nanos, func(off, n int, ts int64, orig uint32) {
		data := raw[off+16 : off+n]
		if pl.quick && rejectIPv4(pl.hosts4, r.lt, data) {
			return
		}
		p := pcapio.Packet{Timestamp: time.Unix(0, ts).UTC(), LinkType: r.lt, Data: data, OrigLen: int(orig), Offset: int64(off)}
		if pl.sel.Match(&p, scratch) {
			r.ents = append(r.ents, entry{ts: ts, off: uint32(off), n: uint32(n), orig: orig})
		}
	})
}

// wholeBlock reports whether every packet of a block matches: a time-only
// selector whose range covers the block.
func (pl *Plan) wholeBlock(m pcapio.BlockMeta) bool {
	s := &pl.sel
	return s.timeOnly() && (s.From.IsZero() || m.First >= s.From.UnixNano()) && (s.To.IsZero() || m.Last < s.To.UnixNano())
}
