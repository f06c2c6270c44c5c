package flow

import (
	"math/bits"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Admission under pressure (Options.DropSingles). Once the table is full,
// a one-packet flow is not recorded (it would be evicted by the next new
// flow before most flows see a second packet), yet entering it costs an
// eviction, an entry and its lists. So while the table is full, a new
// flow whose first packet needs nothing but counters waits in a held
// slot: a direct-mapped array as large as the table, allocated the first
// time the table fills. Its second packet admits it into the table with
// the first packet's counts, flags, start time and burst; a flow pushed
// out of its slot by another, still waiting at Flush, or whose second
// packet comes after its idle timeout or as a new connection after a
// reset, is counted in Stats.Unrecorded, as a one-packet flow ending in
// the table is. While the table has room, nothing waits.

// held is a first packet waiting for its flow's second.
type held struct {
	k     key
	ns    int64
	seq   uint32 // TCP sequence number
	wire  uint32 // bytes on the wire
	pay   uint32 // payload bytes
	mark  uint32 // Handle.Mark while waiting; the entry's once admitted
	op    uint16 // originator's port
	rp    uint16 // responder's port
	flags uint8  // TCP flags
	bits  uint8  // heldUsed | ...
}

const (
	heldUsed     = 1 << iota
	heldFromA    // the packet came from the key's a side
	heldOrigIsA  // the originator is the key's a side
	heldTCP      // TCP with ports
	heldNameDone // no name search for this flow (after the first packet)
	// heldUnoriented: a packet with ports whose originator is left to
	// admit (most held flows never get a second packet, and orient is a
	// good part of a held packet's cost); op and rp are unset, and
	// heldOrigIsA and heldNameDone are decided there. With
	// heldNameIfOrig, the name search ends with the first packet if its
	// sender originates (a UDP payload other than DNS).
	heldUnoriented
	heldNameIfOrig
)

// admSlot picks a held slot: hash bits the table's own probe start and
// the recent cache do not use.
func (b *Builder) admSlot(h uint64) int { return int((h >> 32) & uint64(len(b.adm)-1)) }

// holdable reports whether a new flow's first packet may wait in a held
// slot: under pressure, and its only effect on a new entry is counters
// (the name search on its payload would give up at once or not start:
// a DNS message or a client's first TCP payload enters the table as it
// always did). It returns whether the name search ends with this packet.
func (b *Builder) holdable(p *pkthdr.Packet, data []byte, icmp, senderIsOrig bool) (ok, nameDone bool) {
	if !p.HasPorts || icmp {
		return true, true
	}
	if p.Payload < 0 || p.PayloadN <= 0 || p.Payload+p.PayloadN > len(data) {
		return true, false // names() would return at once
	}
	if isDNSPort(p.SrcPort) || isDNSPort(p.DstPort) {
		return false, false
	}
	tcp := p.Proto == pkthdr.ProtoTCP
	if !senderIsOrig {
		return true, false // the responder's payload is not searched
	}
	if tcp {
		return false, false
	}
	return true, true // UDP other than DNS from the originator: nothing to find
}

// hold keeps a new flow's first packet in its held slot, counting a flow
// pushed out of the slot as unrecorded; ok is false when the packet must
// enter the table instead.
func (b *Builder) hold(k *key, h uint64, p *pkthdr.Packet, fromA bool, flags uint8, icmp bool, data []byte, origLen int, payload uint64, ns int64) (Handle, bool) {
	bt := uint8(heldUsed)
	var op, rp uint16
	tcp := p.Proto == pkthdr.ProtoTCP
	switch {
	case p.HasPorts && !icmp && (p.Payload < 0 || p.PayloadN <= 0 || p.Payload+p.PayloadN > len(data)):
		// No payload to search: holdable whoever originates.
		bt |= heldUnoriented
	case p.HasPorts && !icmp && !tcp && !isDNSPort(p.SrcPort) && !isDNSPort(p.DstPort):
		bt |= heldUnoriented | heldNameIfOrig
	default:
		senderIsOrig, o, r := orient(p, flags, icmp, data)
		ok, nameDone := b.holdable(p, data, icmp, senderIsOrig)
		if !ok {
			return Handle{}, false
		}
		op, rp = o, r
		if fromA == senderIsOrig {
			bt |= heldOrigIsA
		}
		if nameDone {
			bt |= heldNameDone
		}
	}
	if b.adm == nil {
		b.adm = bigSlice[held](1 << bits.Len(uint(b.o.MaxFlows-1)))
	}
	i := b.admSlot(h)
	s := &b.adm[i]
	if s.bits&heldUsed != 0 {
		b.stats.Unrecorded++
		b.held--
	}
	if fromA {
		bt |= heldFromA
	}
	if tcp && p.HasPorts {
		bt |= heldTCP
	}
	*s = held{k: *k, ns: ns, seq: p.TCPSeq, wire: uint32(p.WireLen(origLen)), pay: uint32(payload), op: op, rp: rp, flags: flags, bits: bt}
	b.held++
	b.stats.Flows++
	b.full = true
	// No ID: the flow's later packets get its entry's, so none shares
	// this one's, and a slot's ID would be reused by the next flow to
	// take the slot (an unrelated flow that the store's record encoder
	// would take for this one's earlier packets).
	return Handle{Mark: &s.mark}, true
}

// admit takes a flow's first packet from s, its held slot: the flow enters the
// table (evicting its oldest flow if full) with that packet counted, and
// admit returns its entry. A held flow the packet cannot continue (idle
// past its timeout, or a new connection after a reset) is counted
// unrecorded, its slot freed, and admit returns -1.
func (b *Builder) admit(s *held, h uint64, ns int64, isTCP bool, flags uint8) int32 {
	tcp := s.bits&heldTCP != 0
	to := b.o.UDPIdleTimeout
	if tcp {
		to = b.o.IdleTimeout
		if s.flags&pkthdr.TCPRst != 0 {
			to = min(closeLinger, b.o.IdleTimeout)
		}
	}
	if ns-s.ns > int64(to) ||
		isTCP && flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn && s.flags&pkthdr.TCPRst != 0 {
		b.stats.Unrecorded++
		b.release(s)
		return -1
	}
	if b.open >= b.o.MaxFlows {
		b.evictOldest()
	}
	if s.bits&heldUnoriented != 0 {
		s.orient()
	}
	idx := b.openEntry(&s.k, h, s.ns, s.bits&heldOrigIsA != 0, tcp, s.bits&heldNameDone != 0, s.op, s.rp)
	e := b.at(idx)
	e.mark = s.mark
	// The first packet, as AddParsedNanos counts it.
	fromOrig := (s.bits&heldFromA != 0) == e.origIsA
	if fromOrig {
		e.origPkts, e.origBytes, e.origData, e.origFlags = 1, uint64(s.wire), uint64(s.pay), s.flags
	} else {
		e.respPkts, e.respBytes, e.respData, e.respFlags = 1, uint64(s.wire), uint64(s.pay), s.flags
	}
	if tcp {
		e.rst = s.flags&pkthdr.TCPRst != 0
		if s.flags&pkthdr.TCPFin != 0 {
			e.origFin, e.respFin = fromOrig, !fromOrig
		}
	}
	if s.pay > 0 {
		b.data(e, s.ns, s.seq, uint64(s.pay), fromOrig, tcp)
	}
	// Its list, placed at the back as of now (lists are ordered by when
	// an entry was moved).
	e.movedNS = max(ns, s.ns)
	if want := b.listOf(e); want != listOther {
		b.lists[listOther].remove(b, idx)
		e.list = want
		b.lists[want].pushBack(b, idx)
	}
	b.release(s)
	return idx
}

// orient decides a held packet's originator as hold would have with
// orient and holdable: its flags and its sender's ports are in the slot.
func (s *held) orient() {
	pa, pb := uint16(s.k.meta>>48), uint16(s.k.meta>>32)
	sp, dp := pa, pb
	fromA := s.bits&heldFromA != 0
	if !fromA {
		sp, dp = pb, pa
	}
	tcp := s.bits&heldTCP != 0
	senderIsOrig := true
	switch {
	case tcp && s.flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn:
	case tcp && s.flags&(pkthdr.TCPSyn|pkthdr.TCPAck) == pkthdr.TCPSyn|pkthdr.TCPAck:
		senderIsOrig = false
	default:
		senderIsOrig = senderOriginates(tcp, sp, dp)
	}
	s.op, s.rp = sp, dp
	if !senderIsOrig {
		s.op, s.rp = dp, sp
	}
	if fromA == senderIsOrig {
		s.bits |= heldOrigIsA
	}
	if s.bits&heldNameIfOrig != 0 && senderIsOrig {
		s.bits |= heldNameDone
	}
}

func (b *Builder) release(s *held) {
	*s = held{}
	b.held--
}

// dropHeld counts every flow still waiting as unrecorded (Flush).
func (b *Builder) dropHeld() {
	if b.held == 0 {
		return
	}
	b.stats.Unrecorded += uint64(b.held)
	// b.held counts the used slots. A flood's seal finds most of them
	// used: the array cleared whole costs less than testing each slot.
	if b.held >= len(b.adm)/4 {
		clear(b.adm)
	} else {
		for i := range b.adm {
			if b.adm[i].bits&heldUsed != 0 {
				b.adm[i] = held{}
			}
		}
	}
	b.held = 0
}
