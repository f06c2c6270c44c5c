package flow

import (
	"encoding/binary"
	"slices"
	"time"
)

// Builders with Options.Encoded write the records of ended flows straight
// from their entries into a FileWriter, in the flow file's record format
// (docs/format/flows.md), without making a Record first: the store keeps
// records encoded anyway, and a flood of new flows ends one flow a packet.

// ExpireInto is Expire writing the records into fw.
func (b *Builder) ExpireInto(now time.Time, fw *FileWriter) {
	fw.take(&b.pend)
	b.expire(now, nil, fw)
}

// FlushInto is Flush writing the records into fw.
func (b *Builder) FlushInto(fw *FileWriter) {
	fw.take(&b.pend)
	b.flush(nil, fw)
}

// Records decodes the records added so far, in the order they were added.
func (fw *FileWriter) Records() []Record {
	out := make([]Record, 0, len(fw.recs))
	for _, ref := range fw.recs {
		if r, _, ok := decodeRecord(fw.buf[ref.off:ref.end], FileVersion); ok {
			out = append(out, r)
		}
	}
	return out
}

// take moves o's records to the end of fw.
func (fw *FileWriter) take(o *FileWriter) {
	if len(o.recs) == 0 {
		return
	}
	base := len(fw.buf)
	fw.buf = append(fw.buf, o.buf...)
	for _, r := range o.recs {
		fw.note(r.first, r.last, base+r.off, base+r.end)
	}
	o.buf, o.recs = o.buf[:0], o.recs[:0]
}

// note records that fw.buf[off:end] is a record of the flow from first to
// last (ns).
func (fw *FileWriter) note(first, last int64, off, end int) {
	if len(fw.recs) == 0 || first < fw.first {
		fw.first = first
	}
	if last > fw.last {
		fw.last = last
	}
	fw.recs = append(fw.recs, recRef{first: first, last: last, off: off, end: end})
}

// addEntry appends e's record to fw, as appendRecord encodes the Record
// the entry would give.
func (b *Builder) addEntry(fw *FileWriter, e *entry, partial bool) {
	off := len(fw.buf)
	fw.buf = b.appendEntry(fw.buf, e, partial)
	fw.note(e.firstNS, e.lastNS, off, len(fw.buf))
}

func (b *Builder) appendEntry(buf []byte, e *entry, partial bool) []byte {
	le := binary.LittleEndian
	dur := e.lastNS - e.firstNS
	// Addresses as appendAddr writes them: 16 bytes unless both are IPv4
	// (or IPv4-mapped IPv6), then 4.
	v6 := uint8(e.k.meta) == 6 && !(mapped4(e.k.ahi, e.k.alo) && mapped4(e.k.bhi, e.k.blo))
	var flags byte
	if partial || e.partial {
		flags |= 1
	}
	if v6 {
		flags |= 2
	}
	ohi, olo, rhi, rlo := e.k.ahi, e.k.alo, e.k.bhi, e.k.blo
	if !e.origIsA {
		ohi, olo, rhi, rlo = rhi, rlo, ohi, olo
	}
	// The fixed part: times, protocol, flags, VLAN, addresses, ports,
	// counters, TCP flags, name source.
	n := 20 + 4 + 48 + 3
	if v6 {
		n += 32
	} else {
		n += 8
	}
	at := len(buf)
	buf = slices.Grow(buf, n+64)[:at+n] // every byte of the n is written below
	h := buf[at:]
	le.PutUint64(h, uint64(e.firstNS))
	le.PutUint64(h[8:], uint64(dur))
	h[16], h[17] = uint8(e.k.meta>>8), flags
	le.PutUint16(h[18:], uint16(e.k.meta>>16))
	h = h[20:]
	if v6 {
		binary.BigEndian.PutUint64(h, ohi)
		binary.BigEndian.PutUint64(h[8:], olo)
		binary.BigEndian.PutUint64(h[16:], rhi)
		binary.BigEndian.PutUint64(h[24:], rlo)
		h = h[32:]
	} else {
		binary.BigEndian.PutUint32(h, uint32(olo))
		binary.BigEndian.PutUint32(h[4:], uint32(rlo))
		h = h[8:]
	}
	le.PutUint16(h, e.origPort)
	le.PutUint16(h[2:], e.respPort)
	le.PutUint64(h[4:], e.origPkts)
	le.PutUint64(h[12:], e.respPkts)
	le.PutUint64(h[20:], e.origBytes)
	le.PutUint64(h[28:], e.respBytes)
	le.PutUint64(h[36:], e.origData)
	le.PutUint64(h[44:], e.respData)
	h[52], h[53], h[54] = e.origFlags, e.respFlags, byte(e.nameSource)

	var d *detail
	if e.detail != 0 {
		d = &b.details[e.detail-1]
	}
	if d == nil {
		// No name, answers, target or proxy; a short burst series.
		buf = append(buf, 0, 0)
		buf = appendBursts(buf, e.burstInl[:e.burstHead], e.burstN, e.burstHead, dur, "", "")
		return appendTLS(buf, TLSFlags(e.tls), "", "")
	}
	name := d.name
	if len(name) > 255 {
		name = name[:255]
	}
	buf = append(buf, byte(len(name)))
	buf = append(buf, name...)
	buf = appendAnswers(buf, d.answers)
	var kept []uint32
	if d.bursts != nil {
		if e.burstRing != 0 {
			finishBursts(d.bursts, int(e.burstRing))
			e.burstRing = 0
		}
		kept = d.bursts
	} else {
		kept = e.burstInl[:e.burstHead]
	}
	buf = appendBursts(buf, kept, e.burstN, e.burstHead, dur, d.httpTarget, d.proxyDest)
	return appendTLS(buf, TLSFlags(e.tls), d.subjectCN, d.issuerCN)
}

// mapped4 reports whether the 16-byte address hi, lo is IPv4-mapped.
func mapped4(hi, lo uint64) bool { return hi == 0 && lo>>32 == 0xffff }
