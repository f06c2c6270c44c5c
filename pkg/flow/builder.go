package flow

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Options bound a Builder. Zero values take the defaults below.
type Options struct {
	// IdleTimeout ends a TCP connection that saw no packet for this long
	// (default 5 minutes, Zeek's tcp_inactivity_timeout).
	IdleTimeout time.Duration
	// UDPIdleTimeout ends UDP, ICMP and other flows (default 1 minute, or
	// IdleTimeout when that is shorter).
	UDPIdleTimeout time.Duration
	// ActiveTimeout cuts a flow that has lasted this long into a Partial
	// record and starts a new one (0: never).
	ActiveTimeout time.Duration
	// MaxFlows bounds the open flows; the least recently active one is
	// ended early (as Partial) and counted in Stats.Evicted (default 1<<20).
	MaxFlows int
	// DropSingles leaves out the records of one-packet flows once the
	// table has been full (an eviction), whether they are evicted, time
	// out or are still open at Flush, and counts them in
	// Stats.Unrecorded: under a flood of new flows (a scan, spoofed
	// sources) nearly every packet opens such a flow, and recording it
	// costs more than storing its packet. Flows of more packets are
	// recorded (Partial when evicted).
	DropSingles bool
	// Encoded keeps the records of flows ended while adding packets in
	// their encoded form, for ExpireInto and FlushInto, which write every
	// record straight into a FileWriter (the store's way: no Record is
	// made). Expire and Flush still work, decoding them.
	Encoded bool
}

// Defaults.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultUDPIdleTimeout = time.Minute
	DefaultMaxFlows       = 1 << 20
	// closeLinger keeps a closed TCP connection a little longer for its last
	// ACKs and retransmissions (Zeek's tcp_close_delay).
	closeLinger = 5 * time.Second
	// nameMaxSegs is how many client payload segments are searched for a
	// TLS SNI or HTTP Host: a ClientHello with post-quantum key shares
	// often spans two.
	nameMaxSegs = 2
	// nameBufMax bounds the bytes buffered per flow for that search.
	nameBufMax = 16 << 10
	// dnsCacheMax bounds each generation of the address-to-name cache.
	dnsCacheMax = 1 << 16
)

// Stats counts what a Builder saw.
type Stats struct {
	Packets uint64 // packets given
	NonIP   uint64 // packets without an IP header (ARP, STP, damaged)
	Flows   uint64 // records started
	Evicted uint64 // flows ended early by MaxFlows
	// Unrecorded counts the one-packet flows left without a record
	// (Options.DropSingles); their packets are in Packets.
	Unrecorded uint64
}

// key identifies a flow regardless of direction: the (address, port) pairs
// are stored in canonical order. It is compared and hashed on every packet,
// so it is plain words: each address as the two halves of its 16-byte form,
// the rest packed into meta (the IP version keeps IPv4 apart from
// IPv4-mapped IPv6).
type key struct {
	ahi, alo, bhi, blo uint64
	meta               uint64 // pa<<48 | pb<<32 | vlan<<16 | proto<<8 | IP version
}

func (k *key) eq(o *key) bool {
	return k.alo == o.alo && k.blo == o.blo && k.meta == o.meta && k.ahi == o.ahi && k.bhi == o.bhi
}

// timeout classes: each list is ordered by last activity, so expiry looks
// only at list fronts.
const (
	listTCP = iota
	listOther
	listClosed
	nLists
)

// entry is one open flow. It holds no pointers: the table of up to
// MaxFlows entries costs the garbage collector nothing to scan, and a
// flood of new flows allocates nothing. The few flows that need more than
// counters (a name, DNS answers, a long burst series, an HTTP target,
// bytes buffered for the name search) have a detail beside it.
type entry struct {
	k key
	// first and last packet times in ns.
	firstNS, lastNS int64
	// movedNS is when the entry was last put at the back of its list; the
	// lists are ordered by it.
	movedNS int64
	// lastDataNS is when new payload was last seen (bursts, below).
	lastDataNS int64

	origPkts, respPkts   uint64
	origBytes, respBytes uint64
	origData, respData   uint64

	prev, next int32  // in its timeout list; -1 at the ends
	detail     int32  // index in Builder.details + 1; 0: none
	mark       uint32 // Handle.Mark

	origNextSeq uint32 // expected next client sequence for the name search
	// Bursts (docs/format/flows.md): the end of each side's sequence
	// space so far, so that only new payload counts (retransmissions and
	// keepalive probes do not); the first two starts (most flows have one
	// or two); the rest live in the detail.
	seqEndO, seqEndR uint32
	burstN           uint32
	burstInl         [2]uint32

	origPort, respPort   uint16
	origFlags, respFlags uint8
	nameSource           NameSource

	origIsA bool
	tcp     bool // TCP with ports: follows the TCP timeouts
	list    uint8
	// TCP state.
	origFin, respFin, rst bool
	nameDone              bool
	dnsNamed              bool // Name came from this flow's own DNS question
	partial               bool // a continuation after an active-timeout cut
	nameSegs              uint8
	seqKnown              uint8 // bit 0: seqEndO, bit 1: seqEndR, bit 2: lastDataNS
	burstRing             uint8 // where the next start goes in the tail ring
	burstHead             uint8
	// tls holds the flow's TLSFlags (bits 0-2) and where the search for
	// the server's certificate stands (tlsState): only flows whose client
	// began with a ClientHello search, so others pay one test a packet.
	tls uint8
}

// The certificate search's states, in entry.tls.
const (
	tlsState   = 3 << 4
	tlsWait    = 1 << 4 // ClientHello seen; the server's first payload not yet
	tlsCollect = 2 << 4 // buffering the server's bytes in sequence
)

// detail is what a flow keeps beyond its entry, when it needs it.
type detail struct {
	name       string
	answers    []netip.Addr
	bursts     []uint32 // all kept starts, once there are more than two
	httpTarget string
	proxyDest  string
	nameBuf    []byte // name search over the first client payload segments
	// The leaf certificate's names, and the server's first bytes while
	// the certificate is searched for.
	subjectCN, issuerCN string
	certBuf             []byte
}

type list struct{ head, tail int32 }

// entriesChunk is how many entries are allocated at a time: the table
// grows without copying what it holds.
const entriesChunk = 1 << 10

// Builder turns packets into flow records. It is not safe for concurrent
// use. Records are handed to the emit functions of Expire and Flush and
// belong to the caller from then on.
type Builder struct {
	o Options
	// The open flows: entries in chunks, found through an open-addressing
	// table of slots (linear probing; each slot is the low 32 bits of the
	// key's hash and the entry's index + 1, 0 when empty).
	chunks  [][]entry
	used    int // chunks handed out since NewBuilder or Reset
	free    []int32
	slots   []uint64
	open    int
	details []detail
	freeDet []int32
	lists   [nLists]list
	// pending holds records ended by Add (reuse, active timeout, eviction),
	// emitted at the next Expire/Flush; pend holds them encoded instead
	// (Options.Encoded).
	pending []pendingRecord
	pend    FileWriter
	full    bool // the table has been full (Options.DropSingles)
	pkt     pkthdr.Packet
	stats   Stats
	// dns maps an answered address to the name asked for, in two
	// generations so that the cache stays bounded without an LRU.
	dnsCur, dnsOld map[netip.Addr]string
	dnsMsg         DNSMessage
	// hs is scratch for the handshake bytes of a certificate search.
	hs []byte
	// spare holds search buffers (names, certificates) of flows whose
	// search ended, for the next flow: most TLS flows need one, and a
	// fresh 16 KiB each is garbage at every connection rate.
	spare [][]byte
	// adm holds the first packets of new flows while the table is full
	// (admit.go); held counts the slots in use.
	adm  []held
	held int
	// recent is a direct-mapped cache in front of the table: interleaved
	// packets of a few busy flows (the common case on a link) then cost a
	// cheap hash and one key comparison instead of a probe.
	recent [256]recentFlow
	// missed counts packets that missed the recent cache (MissedSince);
	// touched keeps what Touch read, so that its reads are not dropped.
	missed  uint32
	touched uint64
	// pre is the next packet's key, handed over by AddAheadNanos.
	pre *Ahead
}

// recentFlow is a recent-cache slot: an entry and its index (entries
// never move; a freed one leaves the cache).
type recentFlow struct {
	e   *entry
	idx int32
	// h is the low half of the entry's key hash, compared before its key:
	// under a flood the slot's entry is another flow's, and reading its
	// key was a cache miss in every packet.
	h uint32
}

type pendingRecord struct {
	r  Record
	at [2]uint32 // the burst starts of a short series
}

// hash mixes every bit of the key into every bit of the hash: the table
// uses its low bits, and a flood's keys differ in a few (a port, an
// address's last byte), which a weak mix would leave in clusters that
// linear probing walks.
func (k *key) hash() uint64 {
	h := (k.ahi^k.alo)*0x9e3779b97f4a7c15 ^ (k.bhi^k.blo)*0xc2b2ae3d27d4eb4f ^ k.meta*0xd6e8feb86659fd93
	// MurmurHash3's 64-bit finaliser.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

// slot picks a recent-cache slot.
func slot(h uint64) int { return int(h>>8) & 255 }

// NewBuilder returns a Builder with o's limits.
func NewBuilder(o Options) *Builder {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.UDPIdleTimeout <= 0 {
		o.UDPIdleTimeout = min(DefaultUDPIdleTimeout, o.IdleTimeout)
	}
	if o.MaxFlows <= 0 {
		o.MaxFlows = DefaultMaxFlows
	}
	b := &Builder{o: o, slots: make([]uint64, 1024), dnsCur: map[netip.Addr]string{}}
	for i := range b.lists {
		b.lists[i] = list{-1, -1}
	}
	return b
}

// Reset empties b for another shard as NewBuilder would return it (with
// b's options),
// keeping its memory: under a flood each shard's table fills to its bound
// (23 MiB of entries, 9 MiB of held slots, 2 MiB of slots), and a new one
// a shard paid a page fault for every 4 KiB of it, and the garbage
// collector the rest. Entries are handed out in a new builder's order (so
// flow IDs, and the record encoder's keys, are the same). Reset is meant
// for a builder emptied by Flush or FlushInto; one with flows still open
// is replaced whole, dropping them.
func (b *Builder) Reset() {
	if b.open > 0 || b.held > 0 || len(b.pending) > 0 || len(b.pend.recs) > 0 {
		*b = *NewBuilder(b.o)
		return
	}
	nb := NewBuilder(b.o)
	nb.chunks, nb.free = b.chunks, b.free[:0]
	nb.slots = b.slots // emptied by flush, and as large as the last shard needed
	nb.details, nb.freeDet = b.details[:0], b.freeDet[:0]
	nb.pending = b.pending[:0]
	nb.pend = FileWriter{buf: b.pend.buf[:0], recs: b.pend.recs[:0]}
	nb.hs, nb.spare = b.hs[:0], b.spare
	nb.adm = b.adm // emptied by flush (dropHeld)
	*b = *nb
}

// Stats returns the counters so far.
func (b *Builder) Stats() Stats { return b.stats }

// Open returns the number of flows currently open.
func (b *Builder) Open() int { return b.open }

func (b *Builder) at(i int32) *entry {
	u := uint32(i)
	return &b.chunks[u/entriesChunk][u%entriesChunk]
}

// find returns the index of k's entry, or -1.
func (b *Builder) find(k *key, h uint64) int32 {
	mask := uint64(len(b.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := b.slots[i]
		if s == 0 {
			return -1
		}
		if uint32(s>>32) == uint32(h) {
			if idx := int32(uint32(s)) - 1; b.at(idx).k.eq(k) {
				return idx
			}
		}
	}
}

// insert puts entry idx, whose key hashes to h, in the table.
func (b *Builder) insert(idx int32, h uint64) {
	if 2*(b.open+1) > len(b.slots) {
		b.grow()
	}
	mask := uint64(len(b.slots) - 1)
	i := h & mask
	for b.slots[i] != 0 {
		i = (i + 1) & mask
	}
	b.slots[i] = uint64(uint32(h))<<32 | uint64(idx+1)
	b.open++
}

func (b *Builder) grow() {
	old := b.slots
	b.slots = bigSlice[uint64](2 * len(old))
	mask := uint64(len(b.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := (s >> 32) & mask
		for b.slots[i] != 0 {
			i = (i + 1) & mask
		}
		b.slots[i] = s
	}
}

// unlink takes entry idx, whose key hashes to h, out of the table, moving
// later entries of its probe run back (no tombstones).
func (b *Builder) unlink(idx int32, h uint64) {
	mask := uint64(len(b.slots) - 1)
	i := h & mask
	want := uint64(idx + 1)
	for uint32(b.slots[i]) != uint32(want) {
		i = (i + 1) & mask
	}
	for j := i; ; {
		b.slots[i] = 0
		for {
			j = (j + 1) & mask
			s := b.slots[j]
			if s == 0 {
				b.open--
				return
			}
			// Move s back to i unless its home lies cyclically in (i, j].
			home := (s >> 32) & mask
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				b.slots[i] = s
				i = j
				break
			}
		}
	}
}

// newIndex takes a free entry, growing the table of entries if needed.
func (b *Builder) newIndex() int32 {
	if n := len(b.free); n > 0 {
		idx := b.free[n-1]
		b.free = b.free[:n-1]
		return idx
	}
	n := b.used
	if n == len(b.chunks) {
		b.chunks = append(b.chunks, make([]entry, entriesChunk))
	}
	b.used++
	for i := entriesChunk - 1; i > 0; i-- {
		b.free = append(b.free, int32(n*entriesChunk+i))
	}
	return int32(n * entriesChunk)
}

func (b *Builder) det(e *entry) *detail {
	if e.detail == 0 {
		if n := len(b.freeDet); n > 0 {
			e.detail = b.freeDet[n-1] + 1
			b.freeDet = b.freeDet[:n-1]
		} else {
			b.details = append(b.details, detail{})
			e.detail = int32(len(b.details))
		}
	}
	return &b.details[e.detail-1]
}

func (l *list) pushBack(b *Builder, idx int32) {
	e := b.at(idx)
	e.prev, e.next = l.tail, -1
	if l.tail >= 0 {
		b.at(l.tail).next = idx
	} else {
		l.head = idx
	}
	l.tail = idx
}

func (l *list) remove(b *Builder, idx int32) {
	e := b.at(idx)
	if e.prev >= 0 {
		b.at(e.prev).next = e.next
	} else {
		l.head = e.next
	}
	if e.next >= 0 {
		b.at(e.next).prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

// Add decodes one captured frame and accounts it to its flow.
func (b *Builder) Add(ts time.Time, lt pkthdr.LinkType, data []byte, origLen int) {
	if !pkthdr.Parse(lt, data, &b.pkt) {
		b.stats.Packets++
		b.stats.NonIP++
		return
	}
	b.AddParsed(ts, &b.pkt, data, origLen)
}

// AddParsed accounts a frame the caller already parsed with pkthdr.Parse.
func (b *Builder) AddParsed(ts time.Time, p *pkthdr.Packet, data []byte, origLen int) {
	b.AddParsedNanos(ts.UnixNano(), p, data, origLen)
}

// Handle names the open flow a packet was accounted to.
type Handle struct {
	// Mark is a word the caller may keep on the open flow, zero when the
	// flow opens (the store keeps the index block where the flow's keys
	// were last recorded, so that it records them once a block).
	Mark *uint32
	// ID names the flow and the packet's direction among the open flows
	// (an ended flow's may be reused); 0 for a first packet held under
	// pressure (Options.DropSingles), which no other packet shares.
	ID uint32
}

// Ahead is a packet's flow key and its hash, computed before the packet's
// turn so that its table slots can be read ahead (Touch). Both depend on
// the packet alone, not on a table: one Ahead serves any Builder.
type Ahead struct {
	k     key
	h     uint64
	fromA bool // the sender is the key's a side
}

// Look fills a with the flow key and hash of p, a packet with an IP
// header (parsed from data by pkthdr.Parse).
func (a *Ahead) Look(p *pkthdr.Packet, data []byte) {
	var vlan uint16
	if p.NVLAN > 0 {
		vlan = p.VLAN[0]
	}
	sp, dp := p.SrcPort, p.DstPort
	icmp := p.Proto == pkthdr.ProtoICMP || p.Proto == pkthdr.ProtoICMPv6
	if icmp || !p.HasPorts {
		sp, dp = 0, 0
		if icmp {
			// A request and its replies share a flow, each kind of
			// error has its own (Zeek's ICMP connections): an
			// unreachable answering a ping is no reply of the ping.
			sp = icmpFamily(p, data)
			dp = sp
		}
	}
	shi, slo, dhi, dlo := p.AddrWords()
	// Any fixed order of the endpoints will do: it only has to put both
	// directions of a flow under one key.
	fromA := shi < dhi || shi == dhi && (slo < dlo || slo == dlo && sp <= dp)
	k := &a.k
	k.meta = uint64(vlan)<<16 | uint64(p.Proto)<<8 | uint64(p.IPVersion)
	if fromA {
		k.ahi, k.alo, k.bhi, k.blo = shi, slo, dhi, dlo
		k.meta |= uint64(sp)<<48 | uint64(dp)<<32
	} else {
		k.ahi, k.alo, k.bhi, k.blo = dhi, dlo, shi, slo
		k.meta |= uint64(dp)<<48 | uint64(sp)<<32
	}
	a.h, a.fromA = k.hash(), fromA
}

// Touch reads, for each packet of as in turn, its table slot and, while
// first packets are held, its held slot, keeping what it read. Under a
// flood each is a cache miss in an array of megabytes: read here, a group
// of packets' misses are in flight together, and AddAheadNanos then finds
// the lines in the cache instead of each packet waiting for its own.
// Nothing changes in b but the word the reads are summed into.
func (b *Builder) Touch(as []Ahead) {
	mask := uint64(len(b.slots) - 1)
	var sum uint64
	for i := range as {
		sum += b.slots[as[i].h&mask]
	}
	if b.held > 0 {
		hm := uint64(len(b.adm) - 1)
		for i := range as {
			// The slot's key and its bits, which the packet reads first:
			// 72 bytes may span two cache lines.
			s := &b.adm[(as[i].h>>32)&hm]
			sum += s.k.ahi + uint64(s.bits)
		}
	}
	b.touched = sum
}

// MissedSince returns how many packets missed the recent cache since the
// last call: when most of a group did, the next group's slots are worth
// reading ahead (Touch); when they hit, their flows' lines are in the
// cache already and reading ahead only costs.
func (b *Builder) MissedSince() int {
	n := b.missed
	b.missed = 0
	return int(n)
}

// AddAheadNanos is AddParsedNanos of a packet whose flow key and hash a
// holds (Look on the same packet), or, with a nil, computes them.
func (b *Builder) AddAheadNanos(ns int64, p *pkthdr.Packet, data []byte, origLen int, a *Ahead) Handle {
	b.pre = a
	return b.AddParsedNanos(ns, p, data, origLen)
}

// AddParsedNanos is AddParsed with the time in nanoseconds since the
// epoch; it returns the flow's handle (zero for a packet without IP).
func (b *Builder) AddParsedNanos(ns int64, p *pkthdr.Packet, data []byte, origLen int) Handle {
	b.stats.Packets++
	if p.IPVersion == 0 {
		b.stats.NonIP++
		b.pre = nil
		return Handle{}
	}
	var k key
	var h uint64
	var fromA bool
	icmp := p.Proto == pkthdr.ProtoICMP || p.Proto == pkthdr.ProtoICMPv6
	if a := b.pre; a != nil {
		b.pre = nil
		k, h, fromA = a.k, a.h, a.fromA
	} else {
		// Look's computation, inline: a call here cost the packets of
		// busy flows, which are not read ahead, some 12 to 28 of their
		// 285 instructions in the table (docs/PERFORMANCE.md, Capture).
		// TestLookAsAdd holds the two the same.
		var vlan uint16
		if p.NVLAN > 0 {
			vlan = p.VLAN[0]
		}
		sp, dp := p.SrcPort, p.DstPort
		if icmp || !p.HasPorts {
			sp, dp = 0, 0
			if icmp {
				sp = icmpFamily(p, data)
				dp = sp
			}
		}
		shi, slo, dhi, dlo := p.AddrWords()
		fromA = shi < dhi || shi == dhi && (slo < dlo || slo == dlo && sp <= dp)
		k.meta = uint64(vlan)<<16 | uint64(p.Proto)<<8 | uint64(p.IPVersion)
		if fromA {
			k.ahi, k.alo, k.bhi, k.blo = shi, slo, dhi, dlo
			k.meta |= uint64(sp)<<48 | uint64(dp)<<32
		} else {
			k.ahi, k.alo, k.bhi, k.blo = dhi, dlo, shi, slo
			k.meta |= uint64(dp)<<48 | uint64(sp)<<32
		}
		h = k.hash()
	}
	isTCP := p.Proto == pkthdr.ProtoTCP && p.HasPorts
	var flags uint8
	if isTCP {
		flags = p.TCPFlags // zero when the header was cut short
	}

	// A new flow's packet misses the cache in the table's slot and, once
	// the table has been full, in its held slot: both are read here,
	// before either is needed, so that the two misses overlap instead of
	// following one another.
	first := b.slots[h&uint64(len(b.slots)-1)]
	var hs *held
	var hbits uint8
	if b.held > 0 {
		hs = &b.adm[b.admSlot(h)]
		hbits = hs.bits
	}
	rc := &b.recent[slot(h)]
	e, idx := rc.e, rc.idx
	if e == nil || rc.h != uint32(h) || !e.k.eq(&k) {
		b.missed++
		e, idx = nil, -1
		if first != 0 {
			idx = b.find(&k, h)
		}
		if idx >= 0 {
			e = b.at(idx)
			rc.e, rc.idx, rc.h = e, idx, uint32(h)
		}
	}
	if e == nil && hs != nil {
		// Most such packets under a flood open another new flow: the
		// slot is looked at here, inline, before admit is called.
		if hbits&heldUsed == 0 || !hs.k.eq(&k) {
			idx = -1
		} else if idx = b.admit(hs, h, ns, isTCP, flags); idx >= 0 {
			e = b.at(idx)
			rc.e, rc.idx, rc.h = e, idx, uint32(h)
		}
	}
	if e != nil {
		switch {
		case ns-e.lastNS > int64(b.timeout(e)):
			// Expire was not called in time: the old flow ended long ago.
			b.end(idx, false)
			e = nil
		case isTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn && (e.rst || e.origFin && e.respFin):
			// A new connection reuses the ports of a closed one.
			b.end(idx, false)
			e = nil
		case b.o.ActiveTimeout > 0 && ns-e.firstNS >= int64(b.o.ActiveTimeout):
			b.cut(e, ns)
		}
	}
	var payload uint64
	if p.Payload >= 0 && p.L3 >= 0 && p.IPLen > 0 {
		if n := p.IPLen - (p.Payload - p.L3); n > 0 {
			payload = uint64(n)
		}
	} else if p.Payload >= 0 {
		payload = uint64(p.PayloadN)
	}
	if e == nil {
		if b.open >= b.o.MaxFlows {
			if b.o.DropSingles {
				if hd, ok := b.hold(&k, h, p, fromA, flags, icmp, data, origLen, payload, ns); ok {
					return hd
				}
			}
			b.evictOldest()
		}
		idx = b.newEntry(&k, h, p, fromA, flags, icmp, data, ns)
		e = b.at(idx)
		rc = &b.recent[slot(h)] // eviction may have cleared it
		rc.e, rc.idx, rc.h = e, idx, uint32(h)
	}

	fromOrig := fromA == e.origIsA
	if ns > e.lastNS {
		e.lastNS = ns
	}
	if ns < e.firstNS {
		e.firstNS = ns
	}
	wire := uint64(p.WireLen(origLen))
	if fromOrig {
		e.origPkts++
		e.origBytes += wire
		e.origData += payload
		e.origFlags |= flags
	} else {
		e.respPkts++
		e.respBytes += wire
		e.respData += payload
		e.respFlags |= flags
	}

	if isTCP {
		if flags&pkthdr.TCPRst != 0 {
			e.rst = true
		}
		if flags&pkthdr.TCPFin != 0 {
			if fromOrig {
				e.origFin = true
			} else {
				e.respFin = true
			}
		}
	}
	if payload > 0 {
		if !isTCP && e.seqKnown&4 != 0 && ns-e.lastDataNS < int64(BurstIdle) {
			// data's case of a packet within its flow's burst, inline:
			// no sequence numbers to track, no burst to start.
			e.lastDataNS = max(e.lastDataNS, ns)
		} else {
			b.data(e, ns, p.TCPSeq, payload, fromOrig, isTCP)
		}
	}
	if !e.nameDone && p.Payload >= 0 {
		b.names(e, p, data, fromOrig, isTCP)
	} else if e.tls&tlsState != 0 && !fromOrig && p.Payload >= 0 {
		b.serverCert(e, p, data)
	}

	// Move to the back of its timeout list, at most once per relist
	// interval: lists are ordered by when an entry was last moved, which
	// Expire corrects for (a packet then costs one comparison, not four
	// pointer writes).
	if want := b.listOf(e); want != e.list || ns-e.movedNS > relist {
		b.lists[e.list].remove(b, idx)
		e.list = want
		b.lists[want].pushBack(b, idx)
		e.movedNS = ns
	}
	id := uint32(idx)<<1 + 1
	if fromA {
		id++
	}
	return Handle{Mark: &e.mark, ID: id}
}

// listOf is the timeout list e belongs in.
func (b *Builder) listOf(e *entry) uint8 {
	if !e.tcp {
		return listOther
	}
	if e.rst || e.origFin && e.respFin {
		return listClosed
	}
	return listTCP
}

// data accounts payload for the burst series: new payload after
// BurstIdle of silence both ways starts a burst.
func (b *Builder) data(e *entry, ns int64, seq uint32, payload uint64, fromOrig, isTCP bool) {
	if isTCP {
		end := seq + uint32(payload)
		bit, last := uint8(1), &e.seqEndO
		if !fromOrig {
			bit, last = 2, &e.seqEndR
		}
		if e.seqKnown&bit != 0 && int32(end-*last) <= 0 {
			return // nothing new: a retransmission or a keepalive probe
		}
		e.seqKnown |= bit
		*last = end
	}
	if e.seqKnown&4 == 0 || ns-e.lastDataNS >= int64(BurstIdle) {
		b.burst(e, ns)
		e.seqKnown |= 4
		e.lastDataNS = ns
	}
	e.lastDataNS = max(e.lastDataNS, ns)
}

// burst records a burst start at ns.
func (b *Builder) burst(e *entry, ns int64) {
	if e.burstN < 1<<32-1 {
		e.burstN++
	}
	off := uint32(min(max(ns-e.firstNS, 0)/int64(time.Millisecond), 1<<32-1))
	kept := int(e.burstHead)
	if kept < len(e.burstInl) {
		e.burstInl[kept] = off
		e.burstHead++
		return
	}
	d := b.det(e)
	if d.bursts == nil {
		// A third burst: a long-lived connection, worth one allocation
		// for all it can keep.
		d.bursts = append(make([]uint32, 0, MaxBursts), e.burstInl[:]...)
	}
	if len(d.bursts) < MaxBursts {
		d.bursts = append(d.bursts, off)
		e.burstHead = uint8(len(d.bursts))
		return
	}
	// Full: the first half stays, the second half is a ring of the latest.
	const half = MaxBursts / 2
	d.bursts[half+int(e.burstRing)] = off
	e.burstRing = (e.burstRing + 1) % half
	e.burstHead = half
}

// relist bounds how stale an entry's place in its timeout list may get.
const relist = int64(time.Second)

// newEntry opens a flow for its first packet.
func (b *Builder) newEntry(k *key, h uint64, p *pkthdr.Packet, fromA bool, flags uint8, icmp bool, data []byte, ns int64) int32 {
	senderIsOrig, op, rp := orient(p, flags, icmp, data)
	b.stats.Flows++
	return b.openEntry(k, h, ns, fromA == senderIsOrig, p.Proto == pkthdr.ProtoTCP && p.HasPorts, !p.HasPorts || icmp, op, rp)
}

// orient chooses a new flow's originator with Zeek's rules: the sender of
// a SYN, the receiver of a SYN-ACK; else, when the sender's port is a
// likely server port and the receiver's is not (or both are and the
// sender's is lower, outside a SYN-ACK), the receiver; else the sender.
// It returns the originator's and responder's ports (for ICMP, the type
// and code, Zeek's convention).
func orient(p *pkthdr.Packet, flags uint8, icmp bool, data []byte) (senderIsOrig bool, origPort, respPort uint16) {
	senderIsOrig = true
	switch {
	case p.Proto == pkthdr.ProtoTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn:
	case p.Proto == pkthdr.ProtoTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn|pkthdr.TCPAck:
		senderIsOrig = false
	case icmp:
		senderIsOrig = !icmpIsReply(p, data)
	case p.HasPorts:
		senderIsOrig = senderOriginates(p.Proto == pkthdr.ProtoTCP, p.SrcPort, p.DstPort)
	}
	if senderIsOrig {
		origPort, respPort = p.SrcPort, p.DstPort
	} else {
		origPort, respPort = p.DstPort, p.SrcPort
	}
	if icmp && p.L4 >= 0 && p.L4+2 <= len(data) {
		// A reply seen first names its request.
		typ := data[p.L4]
		if !senderIsOrig {
			switch {
			case p.Proto == pkthdr.ProtoICMPv6 && typ == 129:
				typ = 128
			case p.Proto == pkthdr.ProtoICMP && typ == 0:
				typ = 8
			case p.Proto == pkthdr.ProtoICMP:
				typ-- // timestamp, information and mask replies follow their requests
			}
		}
		origPort, respPort = uint16(typ), uint16(data[p.L4+1])
	}
	return senderIsOrig, origPort, respPort
}

// senderOriginates is orient's rule for a packet with ports that is not
// a TCP SYN or SYN-ACK: the sender originates unless its port is a likely
// server port and the receiver's is not (or both are and, for TCP, the
// sender's is lower).
func senderOriginates(tcp bool, sp, dp uint16) bool {
	if !likelyServerPort(sp) {
		return true
	}
	return likelyServerPort(dp) && !(tcp && sp < dp)
}

// openEntry puts a new flow with key k (hash h), first seen at ns, in the
// table, with no packet counted yet. The key comes by pointer and the
// entry is cleared in place before its fields are set: a key by value
// with the other arguments spilled to the stack at each call, and the
// entry built as a literal was assembled on the stack and copied, some 45
// instructions a new flow (docs/PERFORMANCE.md, Capture).
func (b *Builder) openEntry(k *key, h uint64, ns int64, origIsA, tcp, nameDone bool, origPort, respPort uint16) int32 {
	idx := b.newIndex()
	e := b.at(idx)
	*e = entry{}
	e.k = *k
	e.list, e.prev, e.next = listOther, -1, -1
	e.firstNS, e.lastNS, e.movedNS = ns, ns, ns
	e.origIsA, e.tcp, e.nameDone = origIsA, tcp, nameDone
	e.origPort, e.respPort = origPort, respPort
	if len(b.dnsCur)+len(b.dnsOld) > 0 {
		v := uint8(k.meta)
		resp := wordsAddr(k.bhi, k.blo, v)
		if !origIsA {
			resp = wordsAddr(k.ahi, k.alo, v)
		}
		if name, ok := b.lookupName(resp); ok {
			b.det(e).name, e.nameSource = name, NameDNS
		}
	}
	b.insert(idx, h)
	b.lists[listOther].pushBack(b, idx)
	return idx
}

// icmpFamily is the ICMP message kind a packet's flow is keyed by: the
// request type for requests and their replies (echo, timestamp,
// information, address mask; ICMPv6 echo and neighbour discovery), the
// type itself for errors and the rest. A later fragment carries no ICMP
// header: it is taken for an echo's (errors are never fragmented, RFC
// 1812 holds them to 576 bytes, and large ICMP is echo: ping -s, tunnels).
func icmpFamily(p *pkthdr.Packet, data []byte) uint16 {
	v6 := p.Proto == pkthdr.ProtoICMPv6
	if p.L4 < 0 || p.L4 >= len(data) {
		if v6 {
			return 128
		}
		return 8
	}
	t := data[p.L4]
	switch {
	case !v6 && t == 0:
		return 8
	case !v6 && (t == 14 || t == 16 || t == 18):
		return uint16(t - 1)
	case v6 && (t == 129 || t == 134 || t == 136):
		return uint16(t - 1)
	}
	return uint16(t)
}

func icmpIsReply(p *pkthdr.Packet, data []byte) bool {
	if p.L4 < 0 || p.L4 >= len(data) {
		return false
	}
	t := data[p.L4]
	if p.Proto == pkthdr.ProtoICMP {
		switch t {
		case 0, 14, 16, 18: // echo, timestamp, information, address mask replies
			return true
		}
		return false
	}
	return t == 129 // ICMPv6 echo reply
}

// wordsAddr is the address whose 16-byte form is hi, lo, of IP version v.
func wordsAddr(hi, lo uint64, v uint8) netip.Addr {
	if v == 4 {
		return netip.AddrFrom4([4]byte{byte(lo >> 24), byte(lo >> 16), byte(lo >> 8), byte(lo)})
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// record fills r with e's record, the burst series in time order in at
// (when the series is short) or in the detail's own slice, which moves to
// r: the entry is about to go.
func (b *Builder) record(e *entry, r *Record, at []uint32) {
	v := uint8(e.k.meta)
	a, c := wordsAddr(e.k.ahi, e.k.alo, v), wordsAddr(e.k.bhi, e.k.blo, v)
	if !e.origIsA {
		a, c = c, a
	}
	*r = Record{
		First: time.Unix(0, e.firstNS).UTC(), Last: time.Unix(0, e.lastNS).UTC(),
		Proto: uint8(e.k.meta >> 8), Orig: a, Resp: c, OrigPort: e.origPort, RespPort: e.respPort,
		VLAN:     uint16(e.k.meta >> 16),
		OrigPkts: e.origPkts, RespPkts: e.respPkts, OrigBytes: e.origBytes, RespBytes: e.respBytes,
		OrigData: e.origData, RespData: e.respData, OrigFlags: e.origFlags, RespFlags: e.respFlags,
		NameSource: e.nameSource, Partial: e.partial,
	}
	r.Bursts.N, r.Bursts.Head = e.burstN, e.burstHead
	r.TLS.Flags = TLSFlags(e.tls) & TLSFlagsAll
	if e.detail != 0 {
		d := &b.details[e.detail-1]
		r.Name, r.Answers, r.HTTPTarget, r.ProxyDest = d.name, d.answers, d.httpTarget, d.proxyDest
		r.TLS.SubjectCN, r.TLS.IssuerCN = d.subjectCN, d.issuerCN
		if d.bursts != nil {
			r.Bursts.At = d.bursts
			if e.burstRing != 0 {
				finishBursts(d.bursts, int(e.burstRing))
				e.burstRing = 0
			}
			return
		}
	}
	if n := int(e.burstHead); n > 0 {
		r.Bursts.At = append(at[:0], e.burstInl[:n]...)
	}
}

// finishBursts puts the tail ring (starting at r) in time order.
func finishBursts(at []uint32, r int) {
	const half = MaxBursts / 2
	var tmp [half]uint32
	tail := at[half:]
	n := copy(tmp[:], tail[r:])
	copy(tmp[n:], tail[:r])
	copy(tail, tmp[:])
}

// timeout is how long e may stay idle.
func (b *Builder) timeout(e *entry) time.Duration {
	switch e.list {
	case listTCP:
		return b.o.IdleTimeout
	case listClosed:
		return min(closeLinger, b.o.IdleTimeout)
	}
	return b.o.UDPIdleTimeout
}

// end removes entry idx and queues its record. A TCP connection not closed
// by the protocol is Partial.
func (b *Builder) end(idx int32, partial bool) {
	e := b.at(idx)
	if b.o.Encoded {
		b.addEntry(&b.pend, e, partial || e.list == listTCP)
		b.remove(idx, e)
		return
	}
	b.pending = append(b.pending, pendingRecord{})
	pr := &b.pending[len(b.pending)-1]
	b.record(e, &pr.r, pr.at[:0])
	if partial || e.list == listTCP {
		pr.r.Partial = true
	}
	if b.inlineBursts(e) {
		pr.r.Bursts.At = nil // in pr.at: set again when emitted (the slice may move)
	}
	b.remove(idx, e)
}

// inlineBursts reports whether e's burst series is the short one kept in
// the entry (a record made from it points into the at given to record).
func (b *Builder) inlineBursts(e *entry) bool {
	return e.detail == 0 || b.details[e.detail-1].bursts == nil
}

// remove unlinks entry idx and frees it and its detail, whose slices went
// out with its record.
func (b *Builder) remove(idx int32, e *entry) {
	b.lists[e.list].remove(b, idx)
	h := e.k.hash()
	b.unlink(idx, h)
	if rc := &b.recent[slot(h)]; rc.e == e {
		*rc = recentFlow{}
	}
	if e.detail != 0 {
		b.details[e.detail-1] = detail{}
		b.freeDet = append(b.freeDet, e.detail-1)
		e.detail = 0
	}
	b.free = append(b.free, idx)
}

// cut queues e's record as Partial and restarts its counters at ns, for
// the active timeout. The record takes the detail's slices; the
// continuation keeps the name.
func (b *Builder) cut(e *entry, ns int64) {
	if b.o.Encoded {
		b.addEntry(&b.pend, e, true)
	} else {
		b.pending = append(b.pending, pendingRecord{})
		pr := &b.pending[len(b.pending)-1]
		b.record(e, &pr.r, pr.at[:0])
		pr.r.Partial = true
		if b.inlineBursts(e) {
			pr.r.Bursts.At = nil // in pr.at: set again when emitted (the slice may move)
		}
	}
	if e.detail != 0 {
		d := &b.details[e.detail-1]
		d.bursts, d.answers = nil, nil
	}
	e.firstNS, e.lastNS = ns, ns
	e.burstN, e.burstHead, e.burstRing = 0, 0, 0
	e.origPkts, e.respPkts, e.origBytes, e.respBytes, e.origData, e.respData = 0, 0, 0, 0, 0, 0
	e.origFlags, e.respFlags = 0, 0
	e.partial = true // a continuation did not start with the protocol's opening
}

func (b *Builder) evictOldest() {
	old := int32(-1)
	var oldNS int64
	for i := range b.lists {
		if h := b.lists[i].head; h >= 0 && (old < 0 || b.at(h).movedNS < oldNS) {
			old, oldNS = h, b.at(h).movedNS
		}
	}
	if old < 0 {
		return
	}
	b.stats.Evicted++
	b.full = true
	if b.dropSingle(old) {
		return
	}
	b.end(old, true)
}

// dropSingle removes entry idx without a record, and counts it, when it
// is a one-packet flow the table no longer records (Options.DropSingles).
func (b *Builder) dropSingle(idx int32) bool {
	e := b.at(idx)
	if !b.full || !b.o.DropSingles || e.origPkts+e.respPkts != 1 {
		return false
	}
	b.stats.Unrecorded++
	b.remove(idx, e)
	return true
}

// emitEntry hands entry idx's record to emit, or writes it into fw, and
// removes the entry.
func (b *Builder) emitEntry(idx int32, partial bool, emit func(*Record), fw *FileWriter) {
	if b.dropSingle(idx) {
		return
	}
	e := b.at(idx)
	if fw != nil {
		b.addEntry(fw, e, partial)
		b.remove(idx, e)
		return
	}
	r := new(Record)
	b.record(e, r, nil)
	if partial {
		r.Partial = true
	}
	b.remove(idx, e)
	emit(r)
}

// Expire hands over every flow that has been idle past its timeout at now
// (capture time), and records ended while adding packets. Call it regularly,
// e.g. once a capture second, to keep memory bounded.
func (b *Builder) Expire(now time.Time, emit func(*Record)) {
	b.drain(emit)
	b.expire(now, emit, nil)
}

func (b *Builder) expire(now time.Time, emit func(*Record), fw *FileWriter) {
	nowNS := now.UnixNano()
	for i := range b.lists {
		l := &b.lists[i]
		for idx := l.head; idx >= 0; idx = l.head {
			e := b.at(idx)
			to := int64(b.timeout(e))
			if nowNS-e.movedNS <= to {
				break // every later entry was moved later still
			}
			if nowNS-e.lastNS <= to {
				// Active since it was last moved: move it now. Keeping the
				// list ordered may place it a little later than its last
				// packet, which only delays a later check.
				l.remove(b, idx)
				e.movedNS = e.lastNS
				if l.tail >= 0 && b.at(l.tail).movedNS > e.movedNS {
					e.movedNS = b.at(l.tail).movedNS
				}
				l.pushBack(b, idx)
				continue
			}
			b.emitEntry(idx, i == listTCP, emit, fw)
		}
	}
}

// Flush hands over every flow still open, oldest activity first per
// timeout class. TCP connections not closed by FIN or RST are Partial.
func (b *Builder) Flush(emit func(*Record)) {
	b.drain(emit)
	b.flush(emit, nil)
}

// flush ends every open flow, list by list as emitEntry would, and
// empties the table at once rather than unlinking entry by entry (a
// flood's shard is sealed with a full table). Entries and details are
// freed in the order one-by-one removal frees them, so a builder used on
// hands out the same entries.
func (b *Builder) flush(emit func(*Record), fw *FileWriter) {
	b.dropHeld()
	for i := range b.lists {
		l := &b.lists[i]
		for idx := l.head; idx >= 0; {
			e := b.at(idx)
			next := e.next
			switch {
			case b.full && b.o.DropSingles && e.origPkts+e.respPkts == 1: // dropSingle
				b.stats.Unrecorded++
			case fw != nil:
				b.addEntry(fw, e, i == listTCP)
			default:
				r := new(Record)
				b.record(e, r, nil)
				if i == listTCP {
					r.Partial = true
				}
				emit(r)
			}
			e.prev, e.next = -1, -1
			if e.detail != 0 {
				b.details[e.detail-1] = detail{}
				b.freeDet = append(b.freeDet, e.detail-1)
				e.detail = 0
			}
			b.free = append(b.free, idx)
			idx = next
		}
		*l = list{-1, -1}
	}
	clear(b.slots)
	b.open = 0
	b.recent = [256]recentFlow{}
}

func (b *Builder) drain(emit func(*Record)) {
	for _, ref := range b.pend.recs {
		r, _, ok := decodeRecord(b.pend.buf[ref.off:ref.end], FileVersion)
		if ok {
			emit(&r)
		}
	}
	b.pend.buf, b.pend.recs = b.pend.buf[:0], b.pend.recs[:0]
	for i := range b.pending {
		pr := &b.pending[i]
		r := &pr.r
		if n := int(r.Bursts.Head); r.Bursts.At == nil && n > 0 {
			r.Bursts.At = pr.at[:n]
		}
		c := *r
		if r.Bursts.At != nil && &r.Bursts.At[0] == &pr.at[0] {
			c.Bursts.At = append([]uint32(nil), r.Bursts.At...)
		}
		emit(&c)
		*pr = pendingRecord{}
	}
	b.pending = b.pending[:0]
}

// names looks for the flow's name in its first payload bytes.
func (b *Builder) names(e *entry, p *pkthdr.Packet, data []byte, fromOrig, isTCP bool) {
	end := p.Payload + p.PayloadN
	if end > len(data) || p.PayloadN <= 0 {
		return
	}
	pl := data[p.Payload:end]
	if isDNSPort(e.respPort) || isDNSPort(e.origPort) && uint8(e.k.meta>>8) == pkthdr.ProtoUDP {
		b.dns(e, pl, isTCP)
		return
	}
	if !isTCP || !fromOrig {
		if !isTCP && fromOrig {
			e.nameDone = true // UDP other than DNS: QUIC SNI is encrypted
		}
		return
	}
	// Client payload: the first bytes, possibly over two segments.
	seq := p.TCPSeq
	if e.nameSegs > 0 && seq != e.origNextSeq {
		if seq-e.origNextSeq > 1<<31 { // retransmission of what we have
			return
		}
		e.nameDone = true // a gap: give up rather than parse garbage
		b.dropNameBuf(e)
		return
	}
	e.nameSegs++
	e.origNextSeq = seq + uint32(p.PayloadN)
	buf := pl
	if e.detail != 0 && len(b.details[e.detail-1].nameBuf) > 0 {
		d := &b.details[e.detail-1]
		d.nameBuf = append(d.nameBuf, pl[:min(len(pl), nameBufMax-len(d.nameBuf))]...)
		buf = d.nameBuf
	}
	var sni bool
	name, res := clientHelloName(buf, &sni)
	if res != parseMore && clientHelloStart(buf) {
		// A whole ClientHello: look for the server's certificate. The
		// name search is over, so origNextSeq is free for the server's
		// sequence.
		e.tls |= tlsWait
		if !sni {
			e.tls |= uint8(TLSNoSNI)
		}
	}
	src := NameSNI
	var req HTTPRequest
	if res == parseNo {
		res = ParseHTTPRequest(buf, &req)
		name, src = req.Host, NameHTTP
	}
	switch {
	case res == parseOK:
		d := b.det(e)
		d.name, e.nameSource = name, src
		d.httpTarget, d.proxyDest = req.Target, req.Proxy
		e.nameDone = true
		b.freeSearchBuf(&d.nameBuf)
	case res == parseMore && e.nameSegs < nameMaxSegs && p.PayloadN == int(p.IPLen-(p.Payload-p.L3)):
		// Keep the bytes only when the segment was captured whole:
		// a snap length cut leaves a hole the next segment cannot fill.
		if d := b.det(e); d.nameBuf == nil {
			d.nameBuf = append(b.searchBuf(), pl...)
		}
	default:
		e.nameDone = true
		b.dropNameBuf(e)
	}
}

// serverCert buffers the server's first payload, in sequence order, until
// its certificate can be read or the search fails (cert.go).
func (b *Builder) serverCert(e *entry, p *pkthdr.Packet, data []byte) {
	end := p.Payload + p.PayloadN
	if end > len(data) || p.PayloadN <= 0 {
		return
	}
	pl := data[p.Payload:end]
	seq := p.TCPSeq
	if e.tls&tlsState == tlsCollect && seq != e.origNextSeq {
		if seq-e.origNextSeq > 1<<31 { // retransmission of what we have
			return
		}
		b.endCert(e) // a gap: give up rather than parse garbage
		return
	}
	e.origNextSeq = seq + uint32(p.PayloadN)
	d := b.det(e)
	buf := pl
	if len(d.certBuf) > 0 {
		d.certBuf = append(d.certBuf, pl[:min(len(pl), certBufMax-len(d.certBuf))]...)
		buf = d.certBuf
	}
	c, res, hs := ServerCertificate(buf, b.hs)
	b.hs = hs[:0]
	switch {
	case res == parseOK:
		e.tls |= uint8(c.Flags)
		d.subjectCN, d.issuerCN = c.SubjectCN, c.IssuerCN
		b.endCert(e)
	case res == parseMore && len(buf) < certBufMax && p.PayloadN == int(p.IPLen-(p.Payload-p.L3)):
		// As for names: only a segment captured whole can be continued.
		if d.certBuf == nil {
			d.certBuf = append(b.searchBuf(), pl...)
		}
		e.tls = e.tls&^tlsState | tlsCollect
	default:
		if c.Seen() {
			// Out of room after the leaf: keep what it said, without
			// judging a chain not seen whole.
			e.tls |= uint8(c.Flags)
			d.subjectCN, d.issuerCN = c.SubjectCN, c.IssuerCN
		}
		b.endCert(e)
	}
}

// endCert ends e's certificate search and frees its buffer.
func (b *Builder) endCert(e *entry) {
	e.tls &^= tlsState
	if e.detail != 0 {
		b.freeSearchBuf(&b.details[e.detail-1].certBuf)
	}
}

func (b *Builder) dropNameBuf(e *entry) {
	if e.detail != 0 {
		b.freeSearchBuf(&b.details[e.detail-1].nameBuf)
	}
}

// searchBufSize is the capacity of a search buffer: the larger bound.
const searchBufSize = max(nameBufMax, certBufMax)

// maxSpare bounds the spare search buffers kept (1 MiB).
const maxSpare = 64

// searchBuf returns an empty search buffer, a spare one when there is.
func (b *Builder) searchBuf() []byte {
	if n := len(b.spare); n > 0 {
		buf := b.spare[n-1]
		b.spare = b.spare[:n-1]
		return buf
	}
	return make([]byte, 0, searchBufSize)
}

// freeSearchBuf keeps *buf for the next search and clears it: nothing was
// taken from it that refers to its bytes (names are copied out).
func (b *Builder) freeSearchBuf(buf *[]byte) {
	if cap(*buf) == searchBufSize && len(b.spare) < maxSpare {
		b.spare = append(b.spare, (*buf)[:0])
	}
	*buf = nil
}

// dns reads the question and answers of DNS messages; the first message
// with a question names the flow. TCP messages are read from the start of
// a segment only (the common case of one message a segment).
func (b *Builder) dns(e *entry, pl []byte, isTCP bool) {
	if isTCP {
		if len(pl) < 2 {
			return
		}
		n := int(binary.BigEndian.Uint16(pl))
		pl = pl[2:]
		if n < len(pl) {
			pl = pl[:n]
		}
	}
	m := &b.dnsMsg
	m.Response, m.Name, m.Answers = false, "", m.Answers[:0]
	if !ParseDNS(pl, m) {
		return
	}
	d := b.det(e)
	if !e.dnsNamed {
		d.name, e.nameSource, e.dnsNamed = m.Name, NameDNS, true
	}
	for _, a := range m.Answers {
		if len(d.answers) < MaxAnswers && !containsAddr(d.answers, a) {
			d.answers = append(d.answers, a)
		}
		b.storeName(a, m.Name)
	}
}

func (b *Builder) storeName(a netip.Addr, name string) {
	if len(b.dnsCur) >= dnsCacheMax {
		b.dnsOld, b.dnsCur = b.dnsCur, make(map[netip.Addr]string, dnsCacheMax/4)
	}
	b.dnsCur[a] = name
}

func (b *Builder) lookupName(a netip.Addr) (string, bool) {
	if s, ok := b.dnsCur[a]; ok {
		return s, true
	}
	s, ok := b.dnsOld[a]
	return s, ok
}

func isDNSPort(p uint16) bool { return p == 53 || p == 5353 || p == 5355 }

// likelyServerPort approximates Zeek's likely_server_ports: the ports its
// analyzers register, and the well-known range.
func likelyServerPort(p uint16) bool {
	if p < 1024 {
		return true
	}
	switch p {
	case 1080, 1194, 1433, 1521, 1723, 1812, 1883, 2049, 2375, 2376, 3128, 3306, 3389, 5060, 5061,
		5222, 5353, 5355, 5432, 5671, 5672, 5900, 5985, 5986, 6379, 6443, 6667, 8000, 8008, 8080,
		8081, 8443, 8883, 8888, 9200, 27017:
		return true
	}
	return false
}
