package store

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/reczstd"
)

// FlowTable builds flow records from parsed packets (flow.Builder) and
// writes them, encoded, into a shard's flow file.
type FlowTable interface {
	AddParsedNanos(ns int64, p *pkthdr.Packet, data []byte, origLen int) flow.Handle
	// AddAheadNanos is AddParsedNanos with the packet's flow key already
	// computed (flow.Ahead.Look) when a is not nil.
	AddAheadNanos(ns int64, p *pkthdr.Packet, data []byte, origLen int, a *flow.Ahead) flow.Handle
	ExpireInto(now time.Time, fw *flow.FileWriter) // ended and timed-out flows
	FlushInto(fw *flow.FileWriter)                 // everything still open
	Stats() flow.Stats
}

// resettable is a FlowTable that can be emptied for another shard,
// keeping its memory (flow.Builder): the writer hands a sealed shard's
// table to the next shard, as it does the index builder.
type resettable interface {
	FlowTable
	Reset()
}

// WriterOptions tune a Writer. Zero values take the defaults.
type WriterOptions struct {
	ID            string        // "imp" for imports, "cNN" for capture workers
	BlockSize     int           // raw bytes per block (default 32 KiB)
	ShardSize     int64         // raw bytes per shard before it is sealed (default 1 GiB)
	ShardSpan     time.Duration // packet-time span per shard (0: no limit)
	FlushInterval time.Duration // a block older than this (wall clock) is written out (0: only when full)
	Snaplen       uint32        // snapshot length for shard headers (default 262144)
	Compressors   int           // goroutines compressing blocks (default GOMAXPROCS)
	// Inline compresses each block on the caller's goroutine instead of a
	// pool: capture runs one writer per worker, where handing every block
	// to another goroutine costs more than it saves.
	Inline bool
	Level  zstd.EncoderLevel
	// SyncAhead starts the disk write-back of each shard as it is written
	// (sync_file_range), so the fsync that seals it waits for the last
	// few megabytes instead of the whole shard: an import overlaps its
	// disk writes with compression. Capture leaves write-back to the
	// kernel's flusher threads, which cost the capture process nothing.
	SyncAhead bool
	NewFlows  func() FlowTable // nil: no flow records
	OnSeal    func(ShardFile)  // called after each shard is sealed
}

func (o *WriterOptions) defaults() {
	if o.ID == "" {
		o.ID = "imp"
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 32 << 10
	}
	// A block below this always has room for one more record of the
	// largest size (docs/format/shard.md).
	o.BlockSize = min(o.BlockSize, pcapio.MaxBlockRaw-pcapio.MaxRecord-16)
	if o.ShardSize <= 0 {
		o.ShardSize = 1 << 30
	}
	if o.Snaplen == 0 {
		o.Snaplen = pcapio.MaxPacket
	}
	if o.Compressors <= 0 {
		o.Compressors = runtime.GOMAXPROCS(0)
	}
	if o.Level == 0 {
		o.Level = zstd.SpeedFastest
	}
}

// WriterStats counts what a Writer took and stored.
type WriterStats struct {
	Packets  uint64 // packets taken (counted as their block ends)
	RawBytes uint64 // pcap record bytes taken, before compression
	// StoredPackets and StoredRaw count the packets (and their record
	// bytes) of the blocks on disk: fewer than taken when a write failed
	// (disk full), and what recovery kept of a failed shard.
	StoredPackets uint64
	StoredRaw     uint64
	Stored        uint64 // block bytes on disk
	Blocks        uint64
	Sealed        int    // shards sealed, by recovery too
	Unparsed      uint64 // frames with no IP header found (stored all the same)
	// WiFi counts 802.11 frames by kind (pkthdr.WiFiKind): those with
	// IP (data, A-MSDU: the first subframe read) and those without,
	// protected (encrypted, not read), null, management and control.
	WiFi      [pkthdr.WiFiOther + 1]uint64
	Recovered int    // of Sealed, shards sealed by recovery after a write failure
	Cut       uint64 // packets longer than pcapio.MaxRecord, stored cut to it
	// FlowsEvicted counts flows ended early because a shard's flow table
	// was full, and FlowsUnrecorded the one-packet flows a table that had
	// been full left without a record (flow.Options.DropSingles); both
	// from sealed shards. Their packets are stored all the same.
	FlowsEvicted, FlowsUnrecorded uint64
	LastPacket                    time.Time
}

// UnsealedError says a shard could not be sealed after a write failure:
// its blocks are on disk and readable, but it stays open (no trailer,
// index or flows) until store repair seals it.
type UnsealedError struct {
	Shard string
	Err   error
}

func (e *UnsealedError) Error() string {
	return fmt.Sprintf("shard %s could not be sealed after the write failure (%v): its packets stay readable; run nwhealth store repair once the cause is fixed", e.Shard, e.Err)
}

func (e *UnsealedError) Unwrap() error { return e.Err }

// Unsealed marks the error for the exit-code mapping: the store is not
// in the sealed, valid state a full disk otherwise leaves.
func (e *UnsealedError) Unsealed() bool { return true }

// CutError says a packet was longer than a store record holds; its first
// pcapio.MaxRecord bytes were stored.
type CutError struct{ Len int }

func (e *CutError) Error() string {
	return fmt.Sprintf("packet of %d captured bytes is longer than the %d a store keeps: its first %d stored", e.Len, pcapio.MaxRecord, pcapio.MaxRecord)
}

type shardKey struct {
	lt    pkthdr.LinkType
	nanos bool
}

// openShard is a shard being filled. Fields above the line belong to the
// packet path; the writer goroutine only touches them after a seal job
// hands the shard over.
type openShard struct {
	key      shardKey
	seq      uint32
	snaplen  uint32
	ix       *index.Builder
	flows    FlowTable
	flowFile flow.FileWriter
	block    []byte
	rz       *reczstd.Encoder // the block's records, for the record encoder
	bFirst   int64
	bLast    int64
	bPkts    int
	bStarted time.Time
	blocks   int
	raw      int64 // record bytes of the ended blocks
	first    int64 // packet time of the shard's first packet
	sealAt   int64 // the first packet time past the shard's span

	// writer goroutine
	file     *os.File
	name     string // of the open file in the shards directory
	sw       *pcapio.ShardWriter
	failed   bool
	synced   int64  // bytes whose write-back has been started (SyncAhead)
	kept     uint64 // packets in the blocks written
	keptRaw  uint64
	keptDisk uint64
}

type jobKind int

const (
	jobOpen jobKind = iota
	jobBlock
	jobSeal
	jobBarrier
)

type job struct {
	kind  jobKind
	sh    *openShard
	raw   []byte // until compressed, then back in the pool
	rawN  int    // raw length
	num   int
	first int64
	last  int64
	pkts  int
	rz    *reczstd.Encoder
	enc   pcapio.EncodedBlock
	done  chan struct{} // compression finished (blocks) / barrier reached / sealed
	// held: enc.Bytes lie in an inline writer's hold buffer (handOff),
	// not a buffer of their own; hold is that buffer, on the last block
	// of a hand-off, for the write loop to return once it is written.
	held bool
	hold []byte
}

// Writer appends packets to a store. Packets enter on the caller's
// goroutine (parse, index, flows, buffer); full blocks are compressed by a
// pool and written in order by one goroutine, which also seals shards, so
// the packet path never waits on fsync.
type Writer struct {
	st    *Store
	opts  WriterOptions
	enc   *zstd.Encoder
	nanos bool
	lt    pkthdr.LinkType // WritePacketNanos's link type
	cur   map[shardKey]*openShard
	last  *openShard
	seq   uint32

	jobs      chan *job
	compressQ chan *job
	free      chan []byte
	wg        sync.WaitGroup
	failure   atomic.Pointer[error]
	unsealed  []error // shards recovery could not seal (statsMu)
	closed    bool

	parsed pkthdr.Packet
	// A lookahead group's parsed packets, whether Parse found IP, and
	// their flow keys (lookAhead).
	pkts     [aheadGroup]pkthdr.Packet
	parsedIP [aheadGroup]bool
	looks    [aheadGroup]flow.Ahead
	// checked is the packet count when missing last looked at the
	// recent-flow cache's misses; aheadGroups counts the groups stored in
	// lookahead; aheadAlways puts every group of two packets or more in
	// lookahead (tests).
	checked     uint64
	aheadGroups uint64
	aheadAlways bool
	count       uint64
	frames      []pcapio.Frame // Frames' buffer
	encBuf      chan []byte
	rzFree      chan *reczstd.Encoder
	// ixFree holds a sealed shard's index builder for the next shard:
	// under a flood its logs hold millions of entries, and growing new
	// ones each shard cost page faults and copies.
	ixFree chan *index.Builder
	// flowsFree does the same for a sealed shard's flow table: a flood
	// fills each shard's to its bound (some 34 MiB with its held slots).
	flowsFree chan resettable
	// ixOut is the last index file's memory, for the next seal's (the
	// writer goroutine's): up to some 20 MiB for a flood's million keys.
	ixOut []byte
	// The write loop's batch of blocks and the buffer they are written
	// from (writeBlocks), and how many writes of blocks it made.
	batch       []*job
	encs        []pcapio.EncodedBlock
	wbuf        []byte
	blockWrites int
	// held are an inline writer's compressed blocks not yet queued for the
	// write loop, heldAt the wall time of their oldest packet, hold their
	// bytes end to end, and enc the buffer each is compressed into first
	// (handOff). holdFree has the hold buffers the write loop is done
	// with, of the holds made.
	held     []*job
	heldAt   time.Time
	hold     []byte
	enc1     []byte
	holdFree chan []byte
	holds    int
	// sealing is closed when the last shard queued for sealing is sealed.
	sealing chan struct{}

	// Packet-path counters are atomics so a stats line can read them
	// while packets flow; the rest is under statsMu. The packet path
	// counts in pend and publishes when a block ends: atomic operations on
	// every packet cost more than the rest of the bookkeeping.
	pend     pendingStats
	packets  atomic.Uint64
	rawBytes atomic.Uint64
	unparsed atomic.Uint64
	lastTS   atomic.Int64
	statsMu  sync.Mutex
	stats    WriterStats
}

// pendingStats are the packet-path counters not yet published.
type pendingStats struct {
	packets, rawBytes, unparsed uint64
	lastTS                      int64
}

// publish adds the pending counters to the ones Stats reads.
func (w *Writer) publish() {
	pd := &w.pend
	if pd.packets == 0 && pd.unparsed == 0 {
		return
	}
	w.packets.Add(pd.packets)
	w.rawBytes.Add(pd.rawBytes)
	w.unparsed.Add(pd.unparsed)
	if pd.lastTS > w.lastTS.Load() {
		w.lastTS.Store(pd.lastTS)
	}
	*pd = pendingStats{lastTS: pd.lastTS}
}

// ErrWriterClosed is returned by writes after Close.
var ErrWriterClosed = errors.New("store writer closed")

// NewWriter starts a writer. The caller must hold the store's lock
// (AcquireLock) for as long as the writer lives.
func (s *Store) NewWriter(opts WriterOptions) (*Writer, error) {
	opts.defaults()
	if !validWriter(opts.ID) {
		return nil, fmt.Errorf("writer id %q: want 1 to 8 ASCII letters and digits", opts.ID)
	}
	seq, err := s.nextSeq(opts.ID)
	if err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(opts.Level), zstd.WithEncoderConcurrency(opts.Compressors), zstd.WithNoEntropyCompression(true),
		zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	depth := 2 * opts.Compressors
	// The pools hold every block buffer that can be out at once, so that
	// none is dropped and allocated anew: the queue's jobs, the write
	// loop's batch (the sender may refill the queue meanwhile), one held
	// by a sender waiting on the full queue, and the open shards' blocks;
	// a pool keeps only buffers that were needed. Pools as small as the
	// queue dropped two buffers in every eight a capture worker filled
	// (its write loop drains the queue only when the worker waits on it):
	// some 40 bytes of garbage a small packet, the collections and page
	// faults that follow (docs/PERFORMANCE.md, Capture).
	pool := depth + 4 + maxBatch + 4
	queue := depth + 4
	if opts.Inline {
		// A hand-off of held blocks fits in the queue at once.
		queue += maxBatch
	}
	w := &Writer{
		st: s, opts: opts, enc: enc, cur: map[shardKey]*openShard{}, seq: seq, nanos: true,
		jobs:      make(chan *job, queue),
		holdFree:  make(chan []byte, maxHolds),
		compressQ: make(chan *job, depth),
		free:      make(chan []byte, pool),
		encBuf:    make(chan []byte, pool),
		rzFree:    make(chan *reczstd.Encoder, pool),
		ixFree:    make(chan *index.Builder, 1),
		flowsFree: make(chan resettable, 1),
	}
	w.ensureReserve()
	if !opts.Inline {
		for range opts.Compressors {
			w.wg.Add(1)
			go w.compressor()
		}
	}
	w.wg.Add(1)
	go w.writeLoop()
	return w, nil
}

// SetNanos selects the timestamp precision of the shards that follow
// (import keeps the precision of its source; capture uses nanoseconds).
func (w *Writer) SetNanos(nanos bool) { w.nanos = nanos }

// SetLinkType sets the link type of the packets WritePacketNanos stores
// (a capture worker's writer takes one link type for all its packets).
func (w *Writer) SetLinkType(lt pkthdr.LinkType) { w.lt = lt }

// Err is the first failure of the writer goroutine, if any.
func (w *Writer) Err() error {
	if p := w.failure.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *Writer) fail(err error) {
	w.failure.CompareAndSwap(nil, &err)
}

// Stats returns a snapshot of the counters. Packets count from the end of
// their block (full, flushed or sealed), at most a flush interval late.
func (w *Writer) Stats() WriterStats {
	w.statsMu.Lock()
	st := w.stats
	w.statsMu.Unlock()
	st.Packets, st.RawBytes, st.Unparsed = w.packets.Load(), w.rawBytes.Load(), w.unparsed.Load()
	if ns := w.lastTS.Load(); ns != 0 {
		st.LastPacket = time.Unix(0, ns).UTC()
	}
	return st
}

// Write stores one packet. data is only read during the call. A packet
// longer than pcapio.MaxRecord is stored cut to it, and Write returns a
// *CutError after storing it; other errors mean nothing was stored.
func (w *Writer) Write(ts time.Time, lt pkthdr.LinkType, data []byte, origLen int) error {
	return w.WriteNanos(ts.UnixNano(), lt, data, origLen)
}

// WriteNanos is Write with the time stamp in nanoseconds since the epoch.
// It sets the link type of later WritePacketNanos calls to lt.
func (w *Writer) WriteNanos(ns int64, lt pkthdr.LinkType, data []byte, origLen int) error {
	w.lt = lt
	return w.WritePacketNanos(ns, data, origLen)
}

// WritePacketNanos is WriteNanos of a packet of the link type set last
// (SetLinkType, or the last Write or WriteNanos): WriteFrames of one.
func (w *Writer) WritePacketNanos(ns int64, data []byte, origLen int) error {
	f := [1]pcapio.Frame{{Nanos: ns, Data: data, OrigLen: origLen}}
	_, err := w.WriteFrames(f[:])
	return err
}

// Frames returns a buffer of frames to fill and pass to WriteFrames (a
// capture sink's run, capture.FrameSink), the same one on every call.
func (w *Writer) Frames() []pcapio.Frame {
	if w.frames == nil {
		w.frames = make([]pcapio.Frame, frameRun)
	}
	return w.frames
}

// frameRun is the length of Frames' buffer: enough that a call's cost a
// packet is small, few enough that the run (40 bytes a frame) stays in
// the first-level cache.
const frameRun = 64

// WriteFrames stores packets of the link type set last, in order, and
// returns how many it stored. It is capture's per-packet path: a capture
// sink that embeds the writer hands the ring walk this method itself
// (capture.FrameSink), one call for a run of a block's packets, so the
// call and the checks below that need not be made per packet are made
// once a run. It stops at the first error: after storing a packet cut to
// pcapio.MaxRecord, with a *CutError (that packet counted); with other
// errors before storing the packet.
func (w *Writer) WriteFrames(fs []pcapio.Frame) (int, error) {
	if w.closed {
		return 0, ErrWriterClosed
	}
	// The writer goroutine fails asynchronously: a packet stored in the
	// same run as one checked here is no later to learn of it than one
	// stored in the open block.
	if err := w.Err(); err != nil {
		return 0, err
	}
	count0 := w.count
	// Under a flood every packet's flow-table slot is a cache miss. In
	// lookahead, a group's packets are parsed and their flow keys hashed
	// first, and the table reads all their slots at once (lookAhead), so
	// that the misses overlap; the packets are then stored one by one,
	// the table handed the keys already computed. Packets of a few busy
	// flows hit the table's recent-flow cache instead, and for them the
	// run is stored whole, as it comes.
	var n int
	var err error
	ft := w.missing(len(fs))
	if ft == nil {
		n, err = w.writeFrames(fs)
	}
	for ft != nil && n < len(fs) {
		g := fs[n:min(n+aheadGroup, len(fs))]
		w.lookAhead(ft, g)
		m, gerr := w.writeAhead(g)
		n += m
		if gerr != nil {
			err = gerr
			break
		}
		if ft = w.missing(len(fs) - n); ft == nil && n < len(fs) {
			m, err = w.writeFrames(fs[n:])
			n += m
		}
	}
	w.flushIfDue(count0)
	return n, err
}

// writeFrames stores the packets of fs one by one (WriteFrames).
func (w *Writer) writeFrames(fs []pcapio.Frame) (int, error) {
	lt := w.lt
	k := shardKey{lt, w.nanos}
	// sh is the open shard of key k, nil after a seal.
	sh := w.last
	if sh != nil && sh.key != k {
		sh = nil
	}
	for i := range fs {
		ns, data, origLen := fs[i].Nanos, fs[i].Data, fs[i].OrigLen
		var cut error
		if len(data) > pcapio.MaxRecord {
			cut = &CutError{Len: len(data)}
			data = data[:pcapio.MaxRecord]
			w.statsMu.Lock()
			w.stats.Cut++
			w.statsMu.Unlock()
		}
		if sh == nil {
			sh = w.cur[k]
			if sh == nil {
				sh = w.openShard(k, w.opts.Snaplen)
			}
			w.last = sh
		}
		if uint32(len(data)) > sh.snaplen { // cannot grow a written header: start a shard that fits
			w.sealShard(sh)
			snap := uint32(pcapio.MaxPacket)
			if len(data) > pcapio.MaxPacket {
				snap = pcapio.MaxRecord
			}
			sh = w.openShard(k, snap)
		}
		if sh.bPkts == 0 {
			if sh.blocks == 0 && sh.raw == 0 {
				sh.first = ns
				sh.sealAt = math.MaxInt64
				if w.opts.ShardSpan > 0 {
					sh.sealAt = ns + int64(w.opts.ShardSpan)
				}
			}
			sh.bFirst, sh.bLast = ns, ns
			if w.opts.FlushInterval > 0 {
				sh.bStarted = time.Now()
			}
		} else {
			sh.bFirst = min(sh.bFirst, ns)
			sh.bLast = max(sh.bLast, ns)
		}
		p := &w.parsed
		if !pkthdr.Parse(lt, data, p) && !p.ARP {
			w.pend.unparsed++
		}
		if lt != pkthdr.LinkEthernet && pkthdr.IsWiFi(lt) {
			k := pkthdr.ClassifyWiFi(lt, data)
			w.statsMu.Lock()
			w.stats.WiFi[k]++
			w.statsMu.Unlock()
		}
		var fh flow.Handle
		if sh.flows != nil && p.IPVersion != 0 {
			fh = sh.flows.AddParsedNanos(ns, p, data, origLen)
			// Ended flows leave the table as packet time goes on, so memory
			// holds open flows and compact finished records only.
			if w.count&4095 == 0 {
				sh.flows.ExpireInto(time.Unix(0, ns), &sh.flowFile)
			}
		}
		// A flow's packets have the same index keys (the flow key holds all
		// but a second VLAN tag and a tunnel's outer header): they are
		// recorded once a block a flow, so the index's check for a repeated
		// packet signature is not asked.
		if fh.Mark == nil || p.NVLAN > 1 || p.Outer.IPVersion != 0 {
			sh.ix.AddPacket(p)
		} else if blk := uint32(sh.blocks) + 1; *fh.Mark != blk {
			sh.ix.AddFlowPacket(p)
			*fh.Mark = blk
		}
		// The record encoder's key: the flow's ID, or, without a flow table,
		// a hash of the flow's key. A held first packet (ID 0) has no
		// earlier record of its flow in the block: the encoder compares it
		// with the previous record, which under a flood looks most alike.
		rk := fh.ID
		if fh.Mark == nil {
			rk = recordKey(p)
		}
		before := len(sh.block)
		sh.block = pcapio.AppendRecordNanos(sh.block, ns, data, origLen, k.nanos)
		sh.rz.Add(sh.block, before, rk)
		sh.bPkts++

		// A shard is sealed at a block's end once full (of packets or of
		// flow records), or at the first packet past its time span.
		if len(sh.block) >= w.opts.BlockSize {
			w.endBlock(sh)
			if sh.raw >= w.opts.ShardSize || sh.flowFile.Size() >= maxFlowBytes || sh.ix.Keys() >= maxIndexKeys {
				w.sealShard(sh)
				sh = nil
			}
		} else if ns >= sh.sealAt || sh.raw+int64(len(sh.block)) >= w.opts.ShardSize {
			w.sealShard(sh)
			sh = nil
		}
		w.count++
		if cut != nil {
			return i + 1, cut
		}
	}
	return len(fs), nil
}

// writeAhead is writeFrames for a group in lookahead: each packet parsed,
// and its flow key computed, by lookAhead. It is writeFrames' loop with
// those two steps taken from the group, written out again: one loop for
// both, with the choice made in each packet, cost the packets of busy
// flows (which are not looked ahead) some 30 to 70 instructions each in
// spills and branches (docs/PERFORMANCE.md, Capture).
// TestWriteFramesAhead and FuzzWriteFramesAhead hold the two to the same
// stored bytes.
func (w *Writer) writeAhead(fs []pcapio.Frame) (int, error) {
	lt := w.lt
	k := shardKey{lt, w.nanos}
	// sh is the open shard of key k, nil after a seal.
	sh := w.last
	if sh != nil && sh.key != k {
		sh = nil
	}
	for i := range fs {
		ns, data, origLen := fs[i].Nanos, fs[i].Data, fs[i].OrigLen
		var cut error
		if len(data) > pcapio.MaxRecord {
			cut = &CutError{Len: len(data)}
			data = data[:pcapio.MaxRecord]
			w.statsMu.Lock()
			w.stats.Cut++
			w.statsMu.Unlock()
		}
		if sh == nil {
			sh = w.cur[k]
			if sh == nil {
				sh = w.openShard(k, w.opts.Snaplen)
			}
			w.last = sh
		}
		if uint32(len(data)) > sh.snaplen { // cannot grow a written header: start a shard that fits
			w.sealShard(sh)
			snap := uint32(pcapio.MaxPacket)
			if len(data) > pcapio.MaxPacket {
				snap = pcapio.MaxRecord
			}
			sh = w.openShard(k, snap)
		}
		if sh.bPkts == 0 {
			if sh.blocks == 0 && sh.raw == 0 {
				sh.first = ns
				sh.sealAt = math.MaxInt64
				if w.opts.ShardSpan > 0 {
					sh.sealAt = ns + int64(w.opts.ShardSpan)
				}
			}
			sh.bFirst, sh.bLast = ns, ns
			if w.opts.FlushInterval > 0 {
				sh.bStarted = time.Now()
			}
		} else {
			sh.bFirst = min(sh.bFirst, ns)
			sh.bLast = max(sh.bLast, ns)
		}
		p := &w.pkts[i]
		if !w.parsedIP[i] && !p.ARP {
			w.pend.unparsed++
		}
		if lt != pkthdr.LinkEthernet && pkthdr.IsWiFi(lt) {
			k := pkthdr.ClassifyWiFi(lt, data)
			w.statsMu.Lock()
			w.stats.WiFi[k]++
			w.statsMu.Unlock()
		}
		var fh flow.Handle
		if sh.flows != nil && p.IPVersion != 0 {
			if ft, ok := sh.flows.(*flow.Builder); ok {
				// The table's own type, so that AddAheadNanos (a field set
				// and a call) is inlined here: through the interface a
				// flood packet made two calls (docs/PERFORMANCE.md,
				// Capture).
				fh = ft.AddAheadNanos(ns, p, data, origLen, &w.looks[i])
			} else {
				fh = sh.flows.AddAheadNanos(ns, p, data, origLen, &w.looks[i])
			}
			// Ended flows leave the table as packet time goes on, so memory
			// holds open flows and compact finished records only.
			if w.count&4095 == 0 {
				sh.flows.ExpireInto(time.Unix(0, ns), &sh.flowFile)
			}
		}
		// A flow's packets have the same index keys (the flow key holds all
		// but a second VLAN tag and a tunnel's outer header): they are
		// recorded once a block a flow, so the index's check for a repeated
		// packet signature is not asked.
		if fh.Mark == nil || p.NVLAN > 1 || p.Outer.IPVersion != 0 {
			sh.ix.AddPacket(p)
		} else if blk := uint32(sh.blocks) + 1; *fh.Mark != blk {
			sh.ix.AddFlowPacket(p)
			*fh.Mark = blk
		}
		// The record encoder's key: the flow's ID, or, without a flow table,
		// a hash of the flow's key. A held first packet (ID 0) has no
		// earlier record of its flow in the block: the encoder compares it
		// with the previous record, which under a flood looks most alike.
		rk := fh.ID
		if fh.Mark == nil {
			rk = recordKey(p)
		}
		before := len(sh.block)
		sh.block = pcapio.AppendRecordNanos(sh.block, ns, data, origLen, k.nanos)
		sh.rz.Add(sh.block, before, rk)
		sh.bPkts++

		// A shard is sealed at a block's end once full (of packets or of
		// flow records), or at the first packet past its time span.
		if len(sh.block) >= w.opts.BlockSize {
			w.endBlock(sh)
			if sh.raw >= w.opts.ShardSize || sh.flowFile.Size() >= maxFlowBytes || sh.ix.Keys() >= maxIndexKeys {
				w.sealShard(sh)
				sh = nil
			}
		} else if ns >= sh.sealAt || sh.raw+int64(len(sh.block)) >= w.opts.ShardSize {
			w.sealShard(sh)
			sh = nil
		}
		w.count++
		if cut != nil {
			return i + 1, cut
		}
	}
	return len(fs), nil
}

// aheadGroup is how many packets WriteFrames parses before storing the
// first of them: enough flow-table misses in flight to hide most of their
// latency, few enough that the group's parsed packets stay in the
// first-level cache.
const aheadGroup = 16

// missing returns the open shard's flow table when most packets since
// the last call missed its recent-flow cache (a flood, a scan) and a
// group of the n packets that follow (at least two) is worth reading
// ahead; nil otherwise.
func (w *Writer) missing(n int) *flow.Builder {
	sh := w.last
	if sh == nil || n < 2 || sh.key != (shardKey{w.lt, w.nanos}) {
		return nil
	}
	ft, ok := sh.flows.(*flow.Builder)
	if !ok {
		return nil
	}
	since := w.count - w.checked
	w.checked = w.count
	if missed := uint64(ft.MissedSince()); 2*missed < since || since == 0 {
		if !w.aheadAlways {
			return nil
		}
	}
	return ft
}

// lookAhead parses the packets of the group fs (at most aheadGroup) into
// w.pkts and computes the flow keys of those with IP into w.looks, as
// writeFrames would one by one (a packet longer than pcapio.MaxRecord is
// parsed as cut to it), and ft, the open shard's table, reads their slots
// (Touch). The keys do not depend on the table: they serve the next
// shard's if a seal comes within the group.
func (w *Writer) lookAhead(ft *flow.Builder, fs []pcapio.Frame) {
	lt := w.lt
	for j := range fs {
		data := fs[j].Data
		if len(data) > pcapio.MaxRecord {
			data = data[:pcapio.MaxRecord]
		}
		p := &w.pkts[j]
		w.parsedIP[j] = pkthdr.Parse(lt, data, p)
		if p.IPVersion != 0 {
			w.looks[j].Look(p, data)
		}
	}
	ft.Touch(w.looks[:len(fs)])
	w.aheadGroups++
}

// flushIfDue looks for blocks older than the flush interval once every
// 256 packets: it is called after a run of packets that began at packet
// count0.
func (w *Writer) flushIfDue(count0 uint64) {
	if w.opts.FlushInterval > 0 && w.count>>8 != count0>>8 {
		w.flushOld(time.Now())
	}
}

// flushOld writes out blocks that have waited longer than FlushInterval,
// open or held.
func (w *Writer) flushOld(now time.Time) {
	for _, sh := range w.cur {
		if sh.bPkts > 0 && now.Sub(sh.bStarted) >= w.opts.FlushInterval {
			w.endBlock(sh)
		}
	}
	if len(w.held) > 0 && now.Sub(w.heldAt) >= w.opts.FlushInterval {
		w.handOff()
	}
}

// Flush writes out every partly filled block and waits until all blocks so
// far are on disk (visible to readers). Capture calls it when the link is
// quiet, so packets are queryable within the flush interval.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrWriterClosed
	}
	for _, sh := range w.cur {
		if sh.bPkts > 0 {
			w.endBlock(sh)
		}
	}
	w.handOff()
	b := &job{kind: jobBarrier, done: make(chan struct{})}
	w.jobs <- b
	<-b.done
	return w.Err()
}

// EndBlocks hands every partly filled block to the disk pipeline without
// waiting for it: readers see the packets within milliseconds.
func (w *Writer) EndBlocks() {
	if w.closed {
		return
	}
	for _, sh := range w.cur {
		if sh.bPkts > 0 {
			w.endBlock(sh)
		}
	}
	w.handOff()
}

// FlushIfOld is Flush limited to blocks older than the flush interval; it
// does not wait for the disk.
func (w *Writer) FlushIfOld() {
	if !w.closed && w.opts.FlushInterval > 0 {
		w.flushOld(time.Now())
	}
}

func (w *Writer) openShard(k shardKey, snaplen uint32) *openShard {
	sh := &openShard{key: k, seq: w.seq, snaplen: snaplen, ix: w.getIndex(), block: w.getBuf(), rz: w.getRZ()}
	w.seq++
	if w.opts.NewFlows != nil {
		select {
		case ft := <-w.flowsFree:
			ft.Reset()
			sh.flows = ft
		default:
			sh.flows = w.opts.NewFlows()
		}
	}
	w.cur[k] = sh
	w.last = sh
	w.handOff() // jobs reach the write loop in order
	w.jobs <- &job{kind: jobOpen, sh: sh}
	return sh
}

func (w *Writer) getBuf() []byte {
	select {
	case b := <-w.free:
		return b[:0]
	default:
		// Room for the block and a typical packet past its end; append grows
		// the rare block that ends with a larger one.
		return make([]byte, 0, w.opts.BlockSize+w.opts.BlockSize/4+16)
	}
}

func (w *Writer) getRZ() *reczstd.Encoder {
	select {
	case e := <-w.rzFree:
		e.Reset()
		return e
	default:
		return new(reczstd.Encoder)
	}
}

func (w *Writer) getIndex() *index.Builder {
	select {
	case b := <-w.ixFree:
		b.Reset()
		return b
	default:
		return index.NewBuilder()
	}
}

func (w *Writer) putIndex(b *index.Builder) {
	select {
	case w.ixFree <- b:
	default:
	}
}

func (w *Writer) putRZ(e *reczstd.Encoder) {
	select {
	case w.rzFree <- e:
	default:
	}
}

func (w *Writer) putBuf(b []byte) {
	select {
	case w.free <- b:
	default:
	}
}

func (w *Writer) endBlock(sh *openShard) {
	if sh.bPkts == 0 {
		return
	}
	// The block's packets are counted here rather than one by one: the
	// counters are published at a block's end anyway.
	w.pend.packets += uint64(sh.bPkts)
	w.pend.rawBytes += uint64(len(sh.block))
	w.pend.lastTS = max(w.pend.lastTS, sh.bLast)
	sh.raw += int64(len(sh.block))
	w.publish()
	sh.ix.EndBlock(sh.bFirst, sh.bLast)
	j := &job{kind: jobBlock, sh: sh, raw: sh.block, rz: sh.rz, num: sh.blocks, first: sh.bFirst, last: sh.bLast, pkts: sh.bPkts, done: make(chan struct{})}
	sh.blocks++
	sh.block = w.getBuf()
	sh.rz = w.getRZ()
	sh.bPkts = 0
	if w.opts.Inline {
		w.holdBlock(j, sh.bStarted)
		return
	}
	w.jobs <- j
	w.compressQ <- j
}

// holdBlock compresses an inline writer's block and holds it: its bytes
// are appended to the hold buffer, so that held blocks take the memory
// they need rather than a block-sized buffer each.
func (w *Writer) holdBlock(j *job, started time.Time) {
	j.enc = pcapio.EncodeBlock(w.enc1, blockCompressor{j.rz, w.enc}, j.raw, j.num, j.first, j.last, j.pkts)
	w.enc1 = j.enc.Bytes[:0]
	w.putRZ(j.rz)
	j.rz = nil
	j.rawN = len(j.raw)
	w.putBuf(j.raw)
	j.raw = nil
	if w.hold == nil {
		// Two hand-offs queued at most: then the packet path waits for
		// the disk, as on a full queue.
		select {
		case w.hold = <-w.holdFree:
		default:
			if w.holds < maxHolds {
				w.holds++
				w.hold = []byte{}
			} else {
				w.hold = <-w.holdFree
			}
		}
	}
	// Growing the buffer leaves the blocks held before in the old one,
	// which they keep alive until written.
	n := len(w.hold)
	w.hold = append(w.hold, j.enc.Bytes...)
	j.enc.Bytes = w.hold[n:len(w.hold):len(w.hold)]
	j.held = true
	close(j.done)
	if len(w.held) == 0 || started.Before(w.heldAt) {
		w.heldAt = started
	}
	w.held = append(w.held, j)
	if len(w.held) >= maxBatch || len(w.hold) >= maxWrite {
		w.handOff()
	}
	// Yield once a block. A worker draining a backlog never waits for the
	// ring, and with one processor the collector's worker, which finishes
	// a cycle's marking, runs only when it yields: meanwhile every pointer
	// the packet path stores goes through the write barrier (capcost, 64
	// flows: some 35 instructions a packet). The queue, when it was full
	// every few blocks, made it wait as often.
	runtime.Gosched()
}

// handOff queues the held blocks for the write loop. An inline writer
// (a capture worker's) holds its compressed blocks until it has maxBatch
// of them or maxWrite bytes, until the oldest packet in them is
// FlushInterval old (the age at which an open block is ended), or until a
// flush, a seal, a new shard or Close: so a busy link's blocks reach the
// disk in one write per maxBatch blocks, not one per ring block, and the
// write loop is woken, and wakes the Go runtime's monitor thread with its
// system call, that much less often. A packet waits no longer than
// FlushInterval, as in an open block (docs/store.md).
func (w *Writer) handOff() {
	if len(w.held) == 0 {
		return
	}
	w.held[len(w.held)-1].hold = w.hold[:0]
	w.hold = nil
	for i, j := range w.held {
		w.jobs <- j
		w.held[i] = nil
	}
	w.held = w.held[:0]
}

func (w *Writer) encode(j *job) {
	var dst []byte
	select {
	case dst = <-w.encBuf:
	default:
	}
	j.enc = pcapio.EncodeBlock(dst, blockCompressor{j.rz, w.enc}, j.raw, j.num, j.first, j.last, j.pkts)
	w.putRZ(j.rz)
	j.rz = nil
	// The encoded block is a copy (stored blocks too): the raw buffer
	// serves the next block at once instead of waiting for the disk.
	j.rawN = len(j.raw)
	w.putBuf(j.raw)
	j.raw = nil
	close(j.done)
}

// blockCompressor writes a block with the record encoder when its matches
// already remove most of the block (small packets, whose headers repeat:
// the per-packet cost of a flood), and with the general zstd encoder
// otherwise (payloads that repeat at other offsets, which only it finds).
// Either way the block is one standard zstd frame.
type blockCompressor struct {
	rz  *reczstd.Encoder
	enc *zstd.Encoder
}

// rzShare: the record encoder is used when its matches cover at least
// 1 - 1/rzShare of the block, so the general encoder could shrink it by
// at most that much more.
const rzShare = 4

func (c blockCompressor) EncodeAll(src, dst []byte) []byte {
	if c.rz.Gain() >= len(src)-len(src)/rzShare {
		if out, ok := c.rz.Encode(dst, src); ok {
			return out
		}
	}
	return c.enc.EncodeAll(src, dst)
}

// recordKey names a packet's flow and direction for the record encoder:
// the packets of one flow in one direction have alike headers.
func recordKey(p *pkthdr.Packet) uint32 {
	if p.IPVersion == 0 {
		return uint32(p.EtherType) // non-IP: one key per EtherType
	}
	shi, slo, dhi, dlo := p.AddrWords()
	h := (shi^slo)*0x9e3779b97f4a7c15 ^ (dhi^dlo)*0xc2b2ae3d27d4eb4f ^
		(uint64(p.SrcPort)<<24|uint64(p.DstPort)<<8|uint64(p.Proto))*0xd6e8feb86659fd93
	return uint32(h>>32) | 1
}

func (w *Writer) sealShard(sh *openShard) {
	w.endBlock(sh)
	delete(w.cur, sh.key)
	if w.last == sh {
		w.last = nil
	}
	w.handOff()
	// One shard sealed at a time while the next fills, however far the
	// packet path runs ahead of the disk (held blocks let it): the sealed
	// shard's flow table and index builder then serve the shard after it,
	// and the writer keeps at most two of each (docs/capture.md, Floods).
	if w.sealing != nil {
		<-w.sealing
	}
	w.sealing = make(chan struct{})
	w.jobs <- &job{kind: jobSeal, sh: sh, done: w.sealing}
}

// Close seals every open shard and waits for the disk. The returned error
// is the first write failure, if any (what was written before it is
// sealed), joined with an *UnsealedError for each shard that could not
// be sealed after it.
func (w *Writer) Close() error {
	if w.closed {
		return w.closeErr()
	}
	for _, sh := range w.cur {
		w.sealShard(sh)
	}
	w.handOff()
	w.closed = true
	close(w.compressQ)
	close(w.jobs)
	w.wg.Wait()
	w.enc.Close()
	return w.closeErr()
}

func (w *Writer) closeErr() error {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return errors.Join(append([]error{w.Err()}, w.unsealed...)...)
}

func (w *Writer) compressor() {
	defer w.wg.Done()
	for j := range w.compressQ {
		w.encode(j)
	}
}

// writeLoop performs jobs in order: it is the only goroutine touching
// files, so a shard's blocks land in sequence.
func (w *Writer) writeLoop() {
	defer w.wg.Done()
	var next *job
	for {
		j := next
		if j == nil {
			var ok bool
			if j, ok = <-w.jobs; !ok {
				return
			}
		}
		next = nil
		switch j.kind {
		case jobOpen:
			w.doOpen(j.sh)
		case jobBlock:
			next = w.writeBlocks(j)
		case jobSeal:
			w.doSeal(j.sh)
			close(j.done)
		case jobBarrier:
			close(j.done)
		}
	}
}

func (w *Writer) doOpen(sh *openShard) {
	if w.Err() != nil {
		sh.failed = true
		return
	}
	sh.name = filepath.Base(openBase(w.st.Dir, w.opts.ID, sh.seq)) + extOpen
	f, err := w.st.createShardFile(sh.name)
	if err != nil {
		sh.failed = true
		w.fail(fmt.Errorf("create shard: %w", err))
		return
	}
	hdr := pcapio.ShardHeader{LinkType: sh.key.lt, Snaplen: sh.snaplen, Nanos: sh.key.nanos, Created: time.Now(), Writer: w.opts.ID, Seq: sh.seq}
	sw, err := pcapio.NewShardWriter(f, hdr, w.enc)
	if err != nil {
		f.Close()
		w.st.removeShardFile(sh.name)
		sh.failed = true
		w.fail(fmt.Errorf("create shard %s: %w", f.Name(), err))
		return
	}
	sh.file, sh.sw = f, sw
}

// maxBatch bounds the blocks writeBlocks gathers, and those an inline
// writer holds; maxWrite bounds the bytes of one write (the batch buffer)
// and of the blocks held.
var maxBatch = 64

const maxWrite = 1 << 20

// maxHolds is how many hold buffers an inline writer has: the one it
// fills and two handed off.
const maxHolds = 3

// writeBlocks writes j's block and the blocks of its shard queued behind
// it, already there, with one write (of at most maxWrite bytes): a
// capture worker hands its held blocks over together (handOff), and each
// write costs a system call that wakes the runtime's monitor thread.
// Nothing waits for more blocks to come. It returns the first queued job
// that is not one of them, for the loop to do next (nil if none).
func (w *Writer) writeBlocks(j *job) *job {
	batch := append(w.batch[:0], j)
	var next *job
gather:
	for len(batch) < maxBatch {
		select {
		case nj, ok := <-w.jobs:
			if !ok {
				break gather // closed: the loop's next receive ends it
			}
			if nj.kind != jobBlock || nj.sh != j.sh {
				next = nj
				break gather
			}
			batch = append(batch, nj)
		default:
			break gather
		}
	}
	for _, b := range batch {
		<-b.done
	}
	// Writes of at most maxWrite bytes (or one block).
	for rest := batch; len(rest) > 0; {
		n, size := 1, len(rest[0].enc.Bytes)
		for n < len(rest) && size+len(rest[n].enc.Bytes) <= maxWrite {
			size += len(rest[n].enc.Bytes)
			n++
		}
		w.doBlocks(rest[:n])
		rest = rest[n:]
	}
	for i, b := range batch {
		switch {
		case b.hold != nil:
			select {
			case w.holdFree <- b.hold:
			default:
			}
		case b.held:
		default:
			select {
			case w.encBuf <- b.enc.Bytes:
			default:
			}
		}
		batch[i] = nil
	}
	w.batch = batch[:0]
	return next
}

// doBlocks appends a batch of one shard's blocks with one write. If it
// fails (a full disk), the file is cut back and the blocks are appended
// one at a time, so every block that fits is kept, as without batches.
func (w *Writer) doBlocks(batch []*job) {
	sh := batch[0].sh
	if sh.failed || sh.sw == nil {
		return
	}
	if len(batch) > 1 {
		encs := w.encs[:0]
		for _, j := range batch {
			encs = append(encs, j.enc)
		}
		var err error
		w.wbuf, err = sh.sw.AppendBlocks(encs, w.wbuf)
		clear(encs)
		w.encs = encs[:0]
		w.blockWrites++
		if err == nil {
			for _, j := range batch {
				w.blockWritten(j)
			}
			return
		}
		// Cut off the part of the batch that reached the file, and write
		// the next block where the cut is: the file is not opened for
		// appending, so its offset still points past the partial write,
		// and a block written there would leave a hole before it.
		if err := cutBack(sh); err != nil {
			sh.failed = true
			w.fail(fmt.Errorf("shard %s at byte %d: %w", sh.name, sh.sw.Size(), err))
			return
		}
	}
	for _, j := range batch {
		if w.doBlock(j); sh.failed {
			return
		}
	}
}

func (w *Writer) doBlock(j *job) {
	sh := j.sh
	if sh.failed || sh.sw == nil {
		return
	}
	w.blockWrites++
	if err := sh.sw.Append(j.enc); err != nil {
		// Cut off whatever part of the block reached the file; the shard
		// is sealed by recovery from its complete blocks.
		sh.file.Truncate(sh.sw.Size())
		sh.failed = true
		w.fail(fmt.Errorf("shard %s at byte %d: %w", sh.name, sh.sw.Size(), err))
		return
	}
	w.blockWritten(j)
}

// cutBack truncates sh's file to the blocks appended whole and puts the
// file's offset there, for the next write.
func cutBack(sh *openShard) error {
	if err := sh.file.Truncate(sh.sw.Size()); err != nil {
		return err
	}
	_, err := sh.file.Seek(sh.sw.Size(), io.SeekStart)
	return err
}

// blockWritten counts a block appended to its shard.
func (w *Writer) blockWritten(j *job) {
	sh := j.sh
	if w.opts.SyncAhead && sh.sw.Size()-sh.synced >= syncAheadBytes {
		startWriteback(sh.file, sh.synced, sh.sw.Size()-sh.synced)
		sh.synced = sh.sw.Size()
	}
	sh.kept += uint64(j.pkts)
	sh.keptRaw += uint64(j.rawN)
	sh.keptDisk += uint64(len(j.enc.Bytes))
	w.statsMu.Lock()
	w.stats.Blocks++
	w.stats.Stored += uint64(len(j.enc.Bytes))
	w.stats.StoredPackets += uint64(j.pkts)
	w.stats.StoredRaw += uint64(j.rawN)
	w.statsMu.Unlock()
}

// maxFlowBytes seals a shard whose flow records reached it, whatever its
// packets: a flood of new flows (one record a packet, longer than the
// packet) then keeps the writer's memory bounded, and a flow file stays
// within what the record encoder compresses (reczstd.MaxFrame).
const maxFlowBytes = 64 << 20

// maxIndexKeys seals a shard whose index holds that many keys: a flood of
// spoofed sources brings a new address in every packet, and an index
// table that stays this small keeps its inserts and its encoding within
// the caches (a key costs a few times more in a table of millions).
var maxIndexKeys = 1 << 20

// syncAheadBytes is how much is written between write-back starts.
const syncAheadBytes = 8 << 20

func (w *Writer) doSeal(sh *openShard) {
	if sh.sw == nil {
		return
	}
	if !sh.failed {
		err := w.seal(sh)
		if err == nil {
			w.putIndex(sh.ix)
			sh.ix = nil
			if ft, ok := sh.flows.(resettable); ok {
				select {
				case w.flowsFree <- ft:
				default:
				}
			}
			sh.flows = nil
			return
		}
		if errors.Is(err, ErrExists) {
			// Its sealed name was taken by a planted file: the shard stays
			// open (readable) and is named, and the writer goes on, so that
			// planting a file cannot stop a capture.
			w.statsMu.Lock()
			w.unsealed = append(w.unsealed, &UnsealedError{Shard: sh.name, Err: err})
			w.statsMu.Unlock()
			return
		}
		w.fail(fmt.Errorf("seal %s: %w", sh.name, err))
	} else {
		sh.file.Close()
	}
	// A write failed (disk full, I/O error): free the reserve and seal
	// what reached the disk by recovery, which rebuilds index and flows
	// from the blocks themselves. The counts become what it kept.
	w.releaseReserve()
	rep, err := w.st.recoverShard(ShardFile{Writer: w.opts.ID, Seq: sh.seq}, sh.name, w.opts.NewFlows)
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if err != nil {
		w.unsealed = append(w.unsealed, &UnsealedError{Shard: sh.name, Err: err})
		return
	}
	w.stats.StoredPackets -= sh.kept
	w.stats.StoredRaw -= sh.keptRaw
	w.stats.Stored -= sh.keptDisk
	if rep.Blocks > 0 {
		w.stats.StoredPackets += rep.Packets
		w.stats.StoredRaw += rep.RawBytes
		w.stats.Stored += uint64(rep.StoredBytes)
		w.stats.Recovered++
		w.stats.Sealed++
	}
}

func (w *Writer) seal(sh *openShard) error {
	f := sh.file
	blocks := sh.sw.Blocks()
	if len(blocks) == 0 { // nothing was stored: drop the empty shard
		f.Close()
		return w.st.removeShardFile(sh.name)
	}
	if err := sh.sw.Finish(); err != nil {
		f.Truncate(sh.sw.Size())
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	first, last := blocks[0].First, blocks[0].Last
	for _, b := range blocks {
		first, last = min(first, b.First), max(last, b.Last)
	}
	stem := shardStem(time.Unix(0, first), time.Unix(0, last), w.opts.ID, sh.seq)
	// A sealed shard is never replaced, nor its index and flows: only
	// this writer makes names with its id and sequence, so one found
	// there was planted, and the shard stays open (readable) instead.
	if w.st.shardFileExists(stem + extShard) {
		return fmt.Errorf("%s: %w", stem+extShard, ErrExists)
	}
	ixFile := sh.ix.EncodeTo(w.ixOut, w.enc)
	w.ixOut = ixFile[:0]
	if err := w.st.writeShardFileAtomic(stem+extIndex, ixFile); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if sh.flows != nil {
		sh.flows.FlushInto(&sh.flowFile)
		fs := sh.flows.Stats()
		w.statsMu.Lock()
		w.stats.FlowsEvicted += fs.Evicted
		w.stats.FlowsUnrecorded += fs.Unrecorded
		w.statsMu.Unlock()
	}
	if err := w.st.writeShardFileAtomic(stem+extFlows, sh.flowFile.Encode(w.enc)); err != nil {
		w.st.removeShardFile(stem + extIndex)
		return fmt.Errorf("write flows: %w", err)
	}
	if err := w.st.renameShardFile(sh.name, stem+extShard, true); err != nil {
		return err
	}
	if err := w.st.syncShards(); err != nil {
		return err
	}
	w.statsMu.Lock()
	w.stats.Sealed++
	w.statsMu.Unlock()
	if w.opts.OnSeal != nil {
		sf, _ := parseName(w.st.Dir, stem+extShard)
		sf.Size = int64(sh.sw.Size())
		w.opts.OnSeal(sf)
	}
	return nil
}

// The reserve is a small file kept so that a writer that fills the disk
// can still free room to seal what it has.
const reserveSize = 1 << 20

func (w *Writer) ensureReserve() {
	f, err := w.st.openRootFile(reserveNam)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() >= reserveSize {
		return
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, reserveSize); err != nil {
		f.WriteAt(make([]byte, reserveSize), 0)
	}
}

func (w *Writer) releaseReserve() { w.st.removeRootFile(reserveNam) }
