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

// addrWords splits an address into the halves of its 16-byte form.
func addrWords(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// timeout classes: each list is ordered by last activity, so expiry looks
// only at list fronts.
const (
	listTCP = iota
	listOther
	listClosed
	nLists
)

type entry struct {
	rec Record
	// first and last packet times in ns: the record's time.Time fields are
	// filled when it is handed out (time.Time arithmetic is slow per packet).
	firstNS, lastNS int64
	// movedNS is when the entry was last put at the back of its list; the
	// lists are ordered by it.
	movedNS    int64
	k          key
	prev, next *entry
	// lastDataNS is when new payload was last seen (bursts, below).
	lastDataNS int64
	nameBuf    []byte // name search over the first client payload segments

	// Small fields together, so that the entry stays in a small size class.
	origIsA bool
	tcp     bool // TCP with ports: follows the TCP timeouts
	list    uint8
	// TCP state.
	origFin, respFin, rst bool
	nameDone              bool
	dnsNamed              bool // Name came from this flow's own DNS question
	nameSegs              uint8
	seqKnown              uint8 // bit 0: seqEndO, bit 1: seqEndR, bit 2: lastDataNS
	burstRing             uint8
	origNextSeq           uint32 // expected next client sequence for the name search
	// Bursts (docs/format/flows.md): the end of each side's sequence
	// space so far, so that only new payload counts (retransmissions and
	// keepalive probes do not); where the next start goes in the tail ring
	// once MaxBursts are kept (burstRing). burstInl holds the first starts
	// without an allocation: most flows have one.
	seqEndO, seqEndR uint32
	burstInl         [2]uint32
}

type list struct{ head, tail *entry }

func (l *list) pushBack(e *entry) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *list) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// Builder turns packets into flow records. It is not safe for concurrent
// use. Records are handed to the emit functions of Expire and Flush and
// belong to the caller from then on.
type Builder struct {
	o       Options
	flows   map[key]*entry
	lists   [nLists]list
	pending []*Record // ended by Add (reuse, active timeout, eviction), emitted at the next Expire/Flush
	pkt     pkthdr.Packet
	stats   Stats
	// dns maps an answered address to the name asked for, in two
	// generations so that the cache stays bounded without an LRU.
	dnsCur, dnsOld map[netip.Addr]string
	dnsMsg         DNSMessage
	// recent is a direct-mapped cache in front of flows: interleaved
	// packets of a few busy flows (the common case on a link) then cost a
	// cheap hash and one key comparison instead of hashing the whole key.
	recent [256]*entry
}

// slot picks a recent-cache slot: the top bits of the products depend on
// every bit of the key.
func (k *key) slot() int {
	h := (k.ahi^k.alo)*0x9e3779b97f4a7c15 ^ (k.bhi^k.blo)*0xc2b2ae3d27d4eb4f ^ k.meta*0xd6e8feb86659fd93
	return int(h >> 56)
}

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
	return &Builder{o: o, flows: make(map[key]*entry, 1024), dnsCur: map[netip.Addr]string{}}
}

// Stats returns the counters so far.
func (b *Builder) Stats() Stats { return b.stats }

// Open returns the number of flows currently open.
func (b *Builder) Open() int { return len(b.flows) }

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
	ns := ts.UnixNano()
	b.stats.Packets++
	if p.IPVersion == 0 {
		b.stats.NonIP++
		return
	}
	var vlan uint16
	if p.NVLAN > 0 {
		vlan = p.VLAN[0]
	}
	sp, dp := p.SrcPort, p.DstPort
	icmp := p.Proto == pkthdr.ProtoICMP || p.Proto == pkthdr.ProtoICMPv6
	if icmp || !p.HasPorts {
		sp, dp = 0, 0 // ICMP requests and replies share a flow
	}
	shi, slo := addrWords(p.Src)
	dhi, dlo := addrWords(p.Dst)
	// Any fixed order of the endpoints will do: it only has to put both
	// directions of a flow under one key.
	fromA := shi < dhi || shi == dhi && (slo < dlo || slo == dlo && sp <= dp)
	k := key{meta: uint64(vlan)<<16 | uint64(p.Proto)<<8 | uint64(p.IPVersion)}
	if fromA {
		k.ahi, k.alo, k.bhi, k.blo = shi, slo, dhi, dlo
		k.meta |= uint64(sp)<<48 | uint64(dp)<<32
	} else {
		k.ahi, k.alo, k.bhi, k.blo = dhi, dlo, shi, slo
		k.meta |= uint64(dp)<<48 | uint64(sp)<<32
	}
	isTCP := p.Proto == pkthdr.ProtoTCP && p.HasPorts
	var flags uint8
	if isTCP {
		flags = p.TCPFlags // zero when the header was cut short
	}

	slot := k.slot()
	e := b.recent[slot]
	if e == nil || !e.k.eq(&k) {
		e = b.flows[k]
		if e != nil {
			b.recent[slot] = e
		}
	}
	if e != nil {
		switch {
		case ns-e.lastNS > int64(b.timeout(e)):
			// Expire was not called in time: the old flow ended long ago.
			b.end(e, false)
			e = nil
		case isTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn && (e.rst || e.origFin && e.respFin):
			// A new connection reuses the ports of a closed one.
			b.end(e, false)
			e = nil
		case b.o.ActiveTimeout > 0 && ns-e.firstNS >= int64(b.o.ActiveTimeout):
			b.cut(e, ts)
		}
	}
	if e == nil {
		if len(b.flows) >= b.o.MaxFlows {
			b.evictOldest()
		}
		e = b.newEntry(k, p, fromA, flags, icmp, data, ts)
	}

	fromOrig := fromA == e.origIsA
	r := &e.rec
	if ns > e.lastNS {
		e.lastNS = ns
	}
	if ns < e.firstNS {
		e.firstNS = ns
	}
	wire := uint64(p.WireLen(origLen))
	var payload uint64
	if p.Payload >= 0 && p.L3 >= 0 && p.IPLen > 0 {
		if n := p.IPLen - (p.Payload - p.L3); n > 0 {
			payload = uint64(n)
		}
	} else if p.Payload >= 0 {
		payload = uint64(p.PayloadN)
	}
	if fromOrig {
		r.OrigPkts++
		r.OrigBytes += wire
		r.OrigData += payload
		r.OrigFlags |= flags
	} else {
		r.RespPkts++
		r.RespBytes += wire
		r.RespData += payload
		r.RespFlags |= flags
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
		e.data(ns, p, payload, fromOrig, isTCP)
	}
	if !e.nameDone && p.Payload >= 0 {
		b.names(e, p, data, fromOrig, isTCP)
	}

	// Move to the back of its timeout list, at most once per relist
	// interval: lists are ordered by when an entry was last moved, which
	// Expire corrects for (a packet then costs one comparison, not four
	// pointer writes).
	want := uint8(listOther)
	if e.tcp {
		want = listTCP
		if e.rst || e.origFin && e.respFin {
			want = listClosed
		}
	}
	if want != e.list || ns-e.movedNS > relist {
		b.lists[e.list].remove(e)
		e.list = want
		b.lists[want].pushBack(e)
		e.movedNS = ns
	}
}

// data accounts payload for the burst series: new payload after
// BurstIdle of silence both ways starts a burst.
func (e *entry) data(ns int64, p *pkthdr.Packet, payload uint64, fromOrig, isTCP bool) {
	if isTCP {
		end := p.TCPSeq + uint32(payload)
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
		e.burst(ns)
		e.seqKnown |= 4
		e.lastDataNS = ns
	}
	e.lastDataNS = max(e.lastDataNS, ns)
}

// burst records a burst start at ns.
func (e *entry) burst(ns int64) {
	bu := &e.rec.Bursts
	if bu.N < 1<<32-1 {
		bu.N++
	}
	off := uint32(min(max(ns-e.firstNS, 0)/int64(time.Millisecond), 1<<32-1))
	if len(bu.At) < MaxBursts {
		switch {
		case bu.At == nil:
			bu.At = e.burstInl[:0]
		case len(bu.At) == len(e.burstInl):
			// A third burst: a long-lived connection, worth one
			// allocation for all it can keep.
			bu.At = append(make([]uint32, 0, MaxBursts), bu.At...)
		}
		bu.At = append(bu.At, off)
		bu.Head = uint8(len(bu.At))
		return
	}
	// Full: the first half stays, the second half is a ring of the latest.
	const half = MaxBursts / 2
	bu.At[half+int(e.burstRing)] = off
	e.burstRing = (e.burstRing + 1) % half
	bu.Head = half
}

// finishBursts puts the tail ring in time order before the record is
// handed out.
func (e *entry) finishBursts() {
	if e.burstRing == 0 {
		return
	}
	const half = MaxBursts / 2
	var tmp [half]uint32
	tail := e.rec.Bursts.At[half:]
	r := int(e.burstRing)
	n := copy(tmp[:], tail[r:])
	copy(tmp[n:], tail[:r])
	copy(tail, tmp[:])
	e.burstRing = 0
}

// relist bounds how stale an entry's place in its timeout list may get.
const relist = int64(time.Second)

// newEntry opens a flow, choosing its originator with Zeek's rules: the
// sender of a SYN, the receiver of a SYN-ACK; else, when the sender's port
// is a likely server port and the receiver's is not (or both are and the
// sender's is lower, outside a SYN-ACK), the receiver; else the sender.
func (b *Builder) newEntry(k key, p *pkthdr.Packet, fromA bool, flags uint8, icmp bool, data []byte, ts time.Time) *entry {
	senderIsOrig := true
	switch {
	case p.Proto == pkthdr.ProtoTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn:
	case p.Proto == pkthdr.ProtoTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn|pkthdr.TCPAck:
		senderIsOrig = false
	case icmp:
		senderIsOrig = !icmpIsReply(p, data)
	case p.HasPorts:
		if likelyServerPort(p.SrcPort) {
			if likelyServerPort(p.DstPort) {
				senderIsOrig = !(p.Proto == pkthdr.ProtoTCP && p.SrcPort < p.DstPort)
			} else {
				senderIsOrig = false
			}
		}
	}
	e := &entry{k: k, list: listOther}
	e.origIsA = fromA == senderIsOrig
	e.tcp = p.Proto == pkthdr.ProtoTCP && p.HasPorts
	r := &e.rec
	e.firstNS, e.lastNS = ts.UnixNano(), ts.UnixNano()
	r.Proto = p.Proto
	r.VLAN = uint16(k.meta >> 16)
	if senderIsOrig {
		r.Orig, r.Resp = p.Src, p.Dst
		r.OrigPort, r.RespPort = p.SrcPort, p.DstPort
	} else {
		r.Orig, r.Resp = p.Dst, p.Src
		r.OrigPort, r.RespPort = p.DstPort, p.SrcPort
	}
	if icmp && p.L4 >= 0 && p.L4+2 <= len(data) {
		// Zeek's convention: the request's ICMP type and the code stand in
		// for ports; a reply seen first names its request.
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
		r.OrigPort, r.RespPort = uint16(typ), uint16(data[p.L4+1])
	}
	if !p.HasPorts || icmp {
		e.nameDone = true
	}
	if name, ok := b.lookupName(r.Resp); ok {
		r.Name, r.NameSource = name, NameDNS
	}
	b.flows[k] = e
	b.lists[listOther].pushBack(e)
	e.movedNS = e.firstNS
	b.stats.Flows++
	return e
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

// setTimes fills the record's times from the entry's and puts its burst
// series in order: the record is about to be handed out.
func (e *entry) setTimes() {
	e.rec.First, e.rec.Last = time.Unix(0, e.firstNS).UTC(), time.Unix(0, e.lastNS).UTC()
	e.finishBursts()
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

// end removes e and queues its record. A TCP connection not closed by the
// protocol is Partial.
func (b *Builder) end(e *entry, partial bool) {
	b.remove(e)
	e.setTimes()
	if partial || e.list == listTCP {
		e.rec.Partial = true
	}
	b.pending = append(b.pending, &e.rec)
}

// remove unlinks e; e.list keeps naming the list it was on.
func (b *Builder) remove(e *entry) {
	b.lists[e.list].remove(e)
	delete(b.flows, e.k)
	if s := e.k.slot(); b.recent[s] == e {
		b.recent[s] = nil
	}
	e.nameBuf = nil
}

// cut queues a copy of e's record as Partial and restarts its counters at
// ts, for the active timeout.
func (b *Builder) cut(e *entry, ts time.Time) {
	e.setTimes()
	old := e.rec
	old.Partial = true
	old.Answers = append([]netip.Addr(nil), e.rec.Answers...)
	old.Bursts.At = append([]uint32(nil), e.rec.Bursts.At...) // At may live in the entry
	b.pending = append(b.pending, &old)
	r := &e.rec
	e.firstNS, e.lastNS = ts.UnixNano(), ts.UnixNano()
	r.Bursts = Bursts{}
	r.OrigPkts, r.RespPkts, r.OrigBytes, r.RespBytes, r.OrigData, r.RespData = 0, 0, 0, 0, 0, 0
	r.OrigFlags, r.RespFlags = 0, 0
	r.Answers = r.Answers[:0:0]
	r.Partial = true // a continuation did not start with the protocol's opening
}

func (b *Builder) evictOldest() {
	var old *entry
	for i := range b.lists {
		if h := b.lists[i].head; h != nil && (old == nil || h.movedNS < old.movedNS) {
			old = h
		}
	}
	if old != nil {
		b.stats.Evicted++
		b.end(old, true)
	}
}

// Expire hands over every flow that has been idle past its timeout at now
// (capture time), and records ended while adding packets. Call it regularly,
// e.g. once a capture second, to keep memory bounded.
func (b *Builder) Expire(now time.Time, emit func(*Record)) {
	b.drain(emit)
	for i := range b.lists {
		l := &b.lists[i]
		nowNS := now.UnixNano()
		for e := l.head; e != nil; e = l.head {
			to := int64(b.timeout(e))
			if nowNS-e.movedNS <= to {
				break // every later entry was moved later still
			}
			if nowNS-e.lastNS <= to {
				// Active since it was last moved: move it now. Keeping the
				// list ordered may place it a little later than its last
				// packet, which only delays a later check.
				l.remove(e)
				e.movedNS = e.lastNS
				if l.tail != nil && l.tail.movedNS > e.movedNS {
					e.movedNS = l.tail.movedNS
				}
				l.pushBack(e)
				continue
			}
			b.remove(e)
			if i == listTCP {
				e.rec.Partial = true
			}
			e.setTimes()
			emit(&e.rec)
		}
	}
}

// Flush hands over every flow still open, oldest activity first per
// timeout class. TCP connections not closed by FIN or RST are Partial.
func (b *Builder) Flush(emit func(*Record)) {
	b.drain(emit)
	for i := range b.lists {
		l := &b.lists[i]
		for e := l.head; e != nil; e = l.head {
			b.remove(e)
			if i == listTCP {
				e.rec.Partial = true
			}
			e.setTimes()
			emit(&e.rec)
		}
	}
}

func (b *Builder) drain(emit func(*Record)) {
	for i, r := range b.pending {
		emit(r)
		b.pending[i] = nil
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
	r := &e.rec
	if isDNSPort(r.RespPort) || isDNSPort(r.OrigPort) && r.Proto == pkthdr.ProtoUDP {
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
		e.nameBuf = nil
		return
	}
	e.nameSegs++
	e.origNextSeq = seq + uint32(p.PayloadN)
	buf := pl
	if len(e.nameBuf) > 0 {
		e.nameBuf = append(e.nameBuf, pl[:min(len(pl), nameBufMax-len(e.nameBuf))]...)
		buf = e.nameBuf
	}
	name, res := TLSServerName(buf)
	src := NameSNI
	var req HTTPRequest
	if res == parseNo {
		res = ParseHTTPRequest(buf, &req)
		name, src = req.Host, NameHTTP
	}
	switch {
	case res == parseOK:
		r.Name, r.NameSource = name, src
		r.HTTPTarget, r.ProxyDest = req.Target, req.Proxy
		e.nameDone, e.nameBuf = true, nil
	case res == parseMore && e.nameSegs < nameMaxSegs && p.PayloadN == int(p.IPLen-(p.Payload-p.L3)):
		// Keep the bytes only when the segment was captured whole:
		// a snap length cut leaves a hole the next segment cannot fill.
		if e.nameBuf == nil {
			e.nameBuf = append(make([]byte, 0, min(2*len(pl)+64, nameBufMax)), pl...)
		}
	default:
		e.nameDone, e.nameBuf = true, nil
	}
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
	r := &e.rec
	if !e.dnsNamed {
		r.Name, r.NameSource, e.dnsNamed = m.Name, NameDNS, true
	}
	for _, a := range m.Answers {
		if len(r.Answers) < MaxAnswers && !containsAddr(r.Answers, a) {
			r.Answers = append(r.Answers, a)
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
