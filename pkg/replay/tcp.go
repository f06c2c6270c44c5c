package replay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/smbrpc"
	"github.com/nwhealth/nwhealth/pkg/winrm"
)

// flowKey names a TCP connection by its two endpoints, lower first.
type flowKey struct{ a, b netip.AddrPort }

func makeKey(x, y netip.AddrPort) flowKey {
	if x.Addr().Less(y.Addr()) || (x.Addr() == y.Addr() && x.Port() < y.Port()) {
		return flowKey{x, y}
	}
	return flowKey{y, x}
}

// protoKind is what a connection carries.
type protoKind uint8

const (
	protoUnknown protoKind = iota
	protoSMB               // NetBIOS session service framing SMB (139, 445)
	protoRPC               // DCE/RPC connection-oriented (ncacn_ip_tcp)
	protoKrb               // Kerberos over TCP (88)
	protoHTTP              // WinRM: HTTP messages (5985, 47001, or POST /wsman)
	protoTLS               // WinRM over HTTPS (5986): TLS records
	protoIgnore            // something else: followed no further
)

// maxProbes is how many payload-carrying packets of an unknown connection
// are checked for a DCE/RPC or SMB message start before it is ignored.
const maxProbes = 4

// appHandler is the protocol state of a followed connection.
type appHandler interface {
	frame(p *Pipeline, dir int, msg []byte, ts time.Time)
	gap(p *Pipeline, dir int)
	expire(p *Pipeline, before time.Time)
	close(p *Pipeline, expired bool)
}

// tcpDir is one direction's reassembly state.
type tcpDir struct {
	init     bool
	next     uint32 // next sequence number expected
	ooo      []segment
	oooBytes int
	acked    uint32 // highest ack the peer sent for this direction
	ackValid bool
}

type segment struct {
	seq  uint32
	data []byte
	ts   time.Time
}

// conn is one TCP connection. Direction 0 is client to server.
type conn struct {
	client, server netip.AddrPort
	first, last    time.Time
	kind           protoKind
	probes         int
	dirs           [2]tcpDir
	fr             [2]*framer
	app            appHandler
	fin            [2]bool
	midstream      bool // its SYN was not captured: open before the capture began
}

func seqLT(a, b uint32) bool { return int32(a-b) < 0 }

// wellKnown reports ports whose side is the server.
func (p *Pipeline) wellKnown(ap netip.AddrPort) bool {
	switch ap.Port() {
	case 445, 139, 135, 88, portWinRM, portWinRMTLS, portWinRMLocal:
		return true
	}
	_, ok := p.epmPorts[ap]
	return ok
}

func (p *Pipeline) tcpPacket(h *pkthdr.Packet, payload []byte, ts time.Time) {
	src := netip.AddrPortFrom(h.Src, h.SrcPort)
	dst := netip.AddrPortFrom(h.Dst, h.DstPort)
	k := makeKey(src, dst)
	c := p.conns[k]
	syn := h.TCPFlags&pkthdr.TCPSyn != 0
	ack := h.TCPFlags&pkthdr.TCPAck != 0
	if syn && ack {
		switch h.SrcPort {
		case 389, 636, 3268, 3269: // LDAP and the global catalog answer
			p.actsAsDC(h.Src)
		}
	}
	if c == nil {
		if len(payload) == 0 && !syn {
			return // a bare ACK or FIN of a connection we never saw carry data
		}
		if len(p.conns) >= p.cfg.MaxConns {
			p.evictOldest()
		}
		c = &conn{first: ts, midstream: !syn}
		switch {
		case syn && !ack:
			c.client, c.server = src, dst
		case syn && ack:
			c.client, c.server = dst, src
		case p.wellKnown(dst):
			c.client, c.server = src, dst
		case p.wellKnown(src):
			c.client, c.server = dst, src
		case dst.Port() < src.Port():
			c.client, c.server = src, dst
		default:
			c.client, c.server = dst, src
		}
		p.classify(c)
		p.conns[k] = c
	}
	c.last = ts
	if c.kind == protoIgnore {
		return
	}
	dir := 0
	if src != c.client {
		dir = 1
	}
	d, o := &c.dirs[dir], &c.dirs[1-dir]
	if ack && (!o.ackValid || seqLT(o.acked, h.TCPAck)) {
		o.acked, o.ackValid = h.TCPAck, true
	}
	if syn {
		d.init, d.next = true, h.TCPSeq+1
		return
	}
	// This packet acknowledges bytes of the other direction we hold no
	// copy of: they were lost from the capture. Stop waiting for them, and
	// deliver what followed them first, since this packet answers it.
	if len(o.ooo) > 0 && o.ackValid && !seqLT(o.acked, o.ooo[0].seq) {
		p.skipHole(c, 1-dir)
	}
	if len(payload) > 0 {
		if c.kind == protoUnknown && !p.probe(c, dir, payload) {
			return
		}
		if !d.init {
			d.init, d.next = true, h.TCPSeq
		}
		p.segment(c, dir, h.TCPSeq, payload, ts)
	}
	if h.TCPFlags&(pkthdr.TCPFin|pkthdr.TCPRst) != 0 {
		c.fin[dir] = true
		if h.TCPFlags&pkthdr.TCPRst != 0 || (c.fin[0] && c.fin[1]) {
			p.dropConn(k, c, false)
		}
	}
}

// classify picks a connection's protocol from its server port.
func (p *Pipeline) classify(c *conn) {
	switch c.server.Port() {
	case 445, 139:
		p.follow(c, protoSMB)
	case 88:
		p.follow(c, protoKrb)
	case 135:
		p.follow(c, protoRPC)
	case portWinRM, portWinRMLocal:
		p.follow(c, protoHTTP)
	case portWinRMTLS:
		p.follow(c, protoTLS)
	default:
		if _, ok := p.epmPorts[c.server]; ok {
			p.follow(c, protoRPC)
		}
	}
}

// probe recognises DCE/RPC (on any port) or SMB by the first bytes of a
// payload; after maxProbes misses the connection is ignored.
func (p *Pipeline) probe(c *conn, dir int, b []byte) bool {
	if _, _, ok := smbrpc.DCERPCHeader(b); ok {
		p.follow(c, protoRPC)
		c.dirs[dir].init = false // start reassembly at this PDU
		c.dirs[1-dir] = tcpDir{}
		return true
	}
	if len(b) >= 8 && b[0] == 0 && smbrpc.SMBProto(b[4:]) != 0 {
		p.follow(c, protoSMB)
		c.dirs[dir].init = false
		c.dirs[1-dir] = tcpDir{}
		return true
	}
	if winrm.IsWSManRequest(b) {
		p.follow(c, protoHTTP)
		c.dirs[dir].init = false
		c.dirs[1-dir] = tcpDir{}
		return true
	}
	c.probes++
	if c.probes >= maxProbes {
		c.kind = protoIgnore
	}
	return false
}

func (p *Pipeline) follow(c *conn, k protoKind) {
	c.kind = k
	c.fr[0] = &framer{kind: k, max: p.cfg.MaxStreamBuffer}
	c.fr[1] = &framer{kind: k, max: p.cfg.MaxStreamBuffer}
	switch k {
	case protoSMB:
		c.app = newSMBConn(c)
	case protoRPC:
		c.app = newRPCTCP(p, c)
	case protoKrb:
		c.app = &krbConn{c: c}
	case protoHTTP, protoTLS:
		c.app = newWinRMConn(c, k == protoTLS)
	}
	p.stats.Conns++
	if c.midstream {
		p.stats.ConnsMidstream++
	}
	p.apps[c] = struct{}{}
}

// evictOldest drops the least recently active connection to stay under
// MaxConns.
func (p *Pipeline) evictOldest() {
	var ok flowKey
	var oc *conn
	for k, c := range p.conns {
		if oc == nil || c.last.Before(oc.last) {
			ok, oc = k, c
		}
	}
	if oc != nil {
		p.stats.ConnsEvicted++
		p.dropConn(ok, oc, true)
	}
}

// segment places one payload in its direction's byte stream.
func (p *Pipeline) segment(c *conn, dir int, seq uint32, b []byte, ts time.Time) {
	d := &c.dirs[dir]
	diff := int32(seq - d.next)
	switch {
	case diff == 0:
		p.deliver(c, dir, b, ts)
	case diff < 0:
		if int(-diff) >= len(b) {
			return // retransmission of bytes already delivered
		}
		p.deliver(c, dir, b[-diff:], ts)
	default:
		if d.ackValid && !seqLT(d.acked, seq) {
			// The peer already acknowledged past the hole: the bytes in it
			// were not captured and will not come.
			p.hole(c, dir, seq)
			p.deliver(c, dir, b, ts)
			break
		}
		if int(diff) > 64<<20 {
			// Far ahead of anything plausible: a new stream on a reused
			// tuple, or garbage. Restart here.
			p.hole(c, dir, seq)
			p.deliver(c, dir, b, ts)
			break
		}
		cp := append([]byte(nil), b...)
		i := sort.Search(len(d.ooo), func(i int) bool { return !seqLT(d.ooo[i].seq, seq) })
		d.ooo = append(d.ooo, segment{})
		copy(d.ooo[i+1:], d.ooo[i:])
		d.ooo[i] = segment{seq: seq, data: cp, ts: ts}
		d.oooBytes += len(cp)
		p.buffered += int64(len(cp))
		if d.oooBytes > p.cfg.MaxOutOfOrder || len(d.ooo) > 256 {
			p.skipHole(c, dir)
		}
		return
	}
	p.drain(c, dir)
}

// deliver hands in-order bytes to the direction's framer.
func (p *Pipeline) deliver(c *conn, dir int, b []byte, ts time.Time) {
	c.dirs[dir].next += uint32(len(b))
	if c.fr[dir] == nil {
		return
	}
	c.fr[dir].push(p, b, func(msg []byte) { c.app.frame(p, dir, msg, ts) })
}

// drain delivers queued segments that have become contiguous.
func (p *Pipeline) drain(c *conn, dir int) {
	d := &c.dirs[dir]
	for len(d.ooo) > 0 {
		s := d.ooo[0]
		diff := int32(s.seq - d.next)
		if diff > 0 {
			return
		}
		d.ooo = d.ooo[1:]
		d.oooBytes -= len(s.data)
		p.buffered -= int64(len(s.data))
		if int(-diff) < len(s.data) {
			p.deliver(c, dir, s.data[-diff:], s.ts)
		}
	}
	d.ooo = nil
}

// skipHole gives up on the missing bytes before the first queued segment.
func (p *Pipeline) skipHole(c *conn, dir int) {
	d := &c.dirs[dir]
	if len(d.ooo) == 0 {
		return
	}
	p.hole(c, dir, d.ooo[0].seq)
	p.drain(c, dir)
}

// maxGapPlaces bounds the gaps named in the stats.
const maxGapPlaces = 10

// hole records that the stream jumps to seq, telling the framer to find
// its place again.
func (p *Pipeline) hole(c *conn, dir int, seq uint32) {
	p.stats.Gaps++
	if len(p.stats.GapPlaces) < maxGapPlaces {
		from, to := c.client, c.server
		if dir == 1 {
			from, to = to, from
		}
		p.stats.GapPlaces = append(p.stats.GapPlaces, fmt.Sprintf("%s -> %s at %s: %d bytes not captured",
			from, to, p.now.UTC().Format(time.RFC3339Nano), seq-c.dirs[dir].next))
	}
	c.dirs[dir].next = seq
	if c.fr[dir] != nil {
		c.fr[dir].reset(p)
	}
	if c.app != nil {
		c.app.gap(p, dir)
	}
}

// framer cuts one direction's byte stream into messages: NetBIOS session
// packets, DCE/RPC fragments or Kerberos records. After a gap or garbage
// it scans for the next plausible message start.
type framer struct {
	kind protoKind
	buf  []byte
	lost bool
	skip int // bytes of an oversized message still to discard
	max  int
	// synced is set once the stream was seen at a message boundary: a
	// message framed, or a gap after which the boundary is lost. Bytes
	// skipped before that are not the protocol as far as the capture
	// shows (a connection joined mid-message, or another protocol on the
	// port): nothing was lost, so they are unframed, not dropped.
	synced bool
}

func (f *framer) reset(p *Pipeline) {
	p.buffered -= int64(len(f.buf))
	f.buf = f.buf[:0]
	f.lost = true
	f.skip = 0
	f.synced = true
}

// skipped counts n bytes passed over looking for a message start.
func (f *framer) skipped(p *Pipeline, n int) {
	if f.synced {
		p.stats.DroppedBytes += uint64(n)
	} else {
		p.stats.UnframedBytes += uint64(n)
	}
}

func (f *framer) release(p *Pipeline) {
	p.buffered -= int64(len(f.buf))
	f.buf = nil
}

// frameLen returns the length of the message at the start of b: 0 when
// more bytes are needed to tell, -1 when b does not start with one.
func (f *framer) frameLen(b []byte) int {
	switch f.kind {
	case protoSMB:
		if len(b) < smbrpc.NBHeaderLen {
			return 0
		}
		typ, l, ok := smbrpc.NBHeader(b)
		if !ok {
			return -1
		}
		switch typ {
		case smbrpc.NBSessionMessage:
			if l < 4 {
				return -1
			}
			if len(b) >= 8 && smbrpc.SMBProto(b[4:]) == 0 {
				return -1
			}
		case smbrpc.NBKeepAlive, smbrpc.NBPositiveResponse:
			// RFC 1002 4.3: the control packets have fixed lengths, and a
			// session request carries two encoded names of 34 to 255
			// bytes; anything else is not a message start (mid-message
			// bytes of a connection joined late must not pass for one).
			if l != 0 {
				return -1
			}
		case smbrpc.NBNegativeResponse:
			if l != 1 {
				return -1
			}
		case smbrpc.NBRetarget:
			if l != 6 {
				return -1
			}
		case smbrpc.NBSessionRequest:
			if l < 68 || l > 510 {
				return -1
			}
		}
		return smbrpc.NBHeaderLen + l
	case protoRPC:
		if len(b) < smbrpc.DCERPCHeaderLen {
			if b[0] != 5 || (len(b) > 1 && b[1] > 1) {
				return -1
			}
			return 0
		}
		_, fl, ok := smbrpc.DCERPCHeader(b)
		if !ok {
			return -1
		}
		return fl
	case protoKrb:
		if len(b) < 4 {
			return 0
		}
		l := int(binary.BigEndian.Uint32(b) & 0x7fffffff)
		if l == 0 || l > 1<<20 {
			return -1
		}
		return 4 + l
	case protoHTTP:
		n := winrm.MessageLen(b)
		if n > int64(f.max) {
			return f.max + 1 // too large to hold: the framer skips it
		}
		return int(n)
	case protoTLS:
		return winrm.TLSRecordLen(b)
	}
	return -1
}

var smbSig = []byte("SMB")

// resync returns the offset of the next plausible message start in b, or
// -1.
func (f *framer) resync(b []byte) int {
	switch f.kind {
	case protoSMB:
		for off := 0; ; {
			i := bytes.Index(b[off:], smbSig)
			if i < 0 {
				return -1
			}
			i += off
			if i >= 5 && b[i-5] == 0 && smbrpc.SMBProto(b[i-1:]) != 0 {
				return i - 5
			}
			off = i + 1
		}
	case protoHTTP:
		return winrm.Resync(b)
	case protoTLS:
		for i := 0; i+winrm.TLSRecordHeaderLen <= len(b); i++ {
			if b[i] == 23 && b[i+1] == 3 && b[i+2] >= 1 && b[i+2] <= 4 && winrm.TLSRecordLen(b[i:]) > 0 {
				return i
			}
		}
	case protoRPC:
		for i := 0; i+smbrpc.DCERPCHeaderLen <= len(b); i++ {
			j := bytes.IndexByte(b[i:], 5)
			if j < 0 {
				return -1
			}
			i += j
			if _, _, ok := smbrpc.DCERPCHeader(b[i:]); ok {
				return i
			}
		}
	}
	return -1
}

// need returns how many more bytes complete the message held in the
// buffer, 0 when none is partly held.
func (f *framer) need() int {
	if len(f.buf) == 0 || f.lost || f.skip > 0 {
		return 0
	}
	if n := f.frameLen(f.buf); n > len(f.buf) {
		return n - len(f.buf)
	}
	return 0
}

// push appends stream bytes and emits every complete message. Messages
// handed to emit alias the framer's buffer or b: handlers copy what they
// keep.
func (f *framer) push(p *Pipeline, b []byte, emit func([]byte)) {
	if f.skip > 0 {
		n := min(f.skip, len(b))
		f.skip -= n
		b = b[n:]
		if f.skip == 0 {
			f.lost = true // be sure of the boundary after the skipped message
		}
	}
	if len(b) == 0 {
		return
	}
	data := b
	fromBuf := len(f.buf) > 0
	if fromBuf {
		f.buf = append(f.buf, b...)
		p.buffered += int64(len(b))
		data = f.buf
	}
	pos := 0
	for pos < len(data) {
		rest := data[pos:]
		if f.lost {
			i := f.resync(rest)
			if i < 0 {
				keep := 16
				if len(rest) > keep {
					f.skipped(p, len(rest)-keep)
					pos = len(data) - keep
				}
				break
			}
			pos += i
			f.lost = false
			p.stats.Resyncs++
			continue
		}
		n := f.frameLen(rest)
		if n < 0 {
			// Not a message start (perhaps a candidate resync accepted
			// whose length is impossible): step past it and scan again.
			f.lost = true
			pos++
			f.skipped(p, 1)
			continue
		}
		if n == 0 {
			break
		}
		if n > f.max || (n > len(rest) && p.buffered+int64(n) > p.cfg.MaxBuffered) {
			// Too large to hold: drop the message, keep the stream's place.
			p.stats.DroppedBytes += uint64(n)
			if n <= len(rest) {
				pos += n
				continue
			}
			f.skip = n - len(rest)
			pos = len(data)
			break
		}
		if n > len(rest) {
			break
		}
		emit(rest[:n])
		f.synced = true
		pos += n
	}
	if pos > len(data) {
		pos = len(data)
	}
	left := data[pos:]
	if fromBuf {
		p.buffered -= int64(pos)
		if cap(f.buf) > 1<<20 && len(left) < 64<<10 {
			f.buf = append([]byte(nil), left...) // give a large message's buffer back
			return
		}
		f.buf = append(f.buf[:0], left...)
		return
	}
	if len(left) > 0 {
		f.buf = append(f.buf[:0], left...)
		p.buffered += int64(len(left))
	}
}
