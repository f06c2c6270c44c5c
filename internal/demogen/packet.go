package demogen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// node is one end of a conversation as the capture point (a span port on
// the core switch) sees it: its address, the MAC its frames carry (the
// router's for outside addresses) and the TTL its packets arrive with.
type node struct {
	addr netip.Addr
	mac  [6]byte
	ttl  uint8
}

// packet is one captured frame.
type packet struct {
	t    time.Time
	data []byte
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// Ethernet II + IPv4 with DF set; the IP and transport checksums are
// computed, so the frame passes every checksum validation.
func ipv4Frame(src, dst node, ipid uint16, proto byte, l4 []byte) []byte {
	f := make([]byte, 14+20+len(l4))
	copy(f[0:6], dst.mac[:])
	copy(f[6:12], src.mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(ip[4:], ipid)
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8] = src.ttl
	ip[9] = proto
	s, d := src.addr.As4(), dst.addr.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip, 0)))
	seg := f[34:]
	copy(seg, l4)
	// Pseudo-header: addresses, protocol, transport length.
	ps := sum16(ip[12:20], uint32(proto)+uint32(len(l4)))
	ck := ^fold(sum16(seg, ps))
	switch proto {
	case 6:
		binary.BigEndian.PutUint16(seg[16:], ck)
	case 17:
		if ck == 0 {
			ck = 0xffff // RFC 768: zero means no checksum
		}
		binary.BigEndian.PutUint16(seg[6:], ck)
	}
	return f
}

// sum16 adds b as big-endian 16-bit words to sum (one's complement
// arithmetic, folded later).
func sum16(b []byte, sum uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// Window advertised after the handshake: 1026 << 8 (window scale 8).
const (
	tcpWindow = 1026
	tcpWScale = 8
	mss       = 1460
)

func tcpSegment(sport, dport uint16, seq, ack uint32, flags byte, payload []byte) []byte {
	hl := 20
	if flags&tcpSYN != 0 {
		hl = 32
	}
	h := make([]byte, hl+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	if flags&tcpACK != 0 {
		binary.BigEndian.PutUint32(h[8:], ack)
	}
	h[12] = byte(hl/4) << 4
	h[13] = flags
	if flags&tcpSYN != 0 {
		binary.BigEndian.PutUint16(h[14:], 64240)
		// MSS, NOP, window scale, NOP, NOP, SACK permitted.
		copy(h[20:], []byte{2, 4, mss >> 8, mss & 0xff, 1, 3, 3, tcpWScale, 1, 1, 4, 2})
	} else {
		binary.BigEndian.PutUint16(h[14:], tcpWindow)
	}
	copy(h[hl:], payload)
	return h
}

// tcpConn writes one TCP connection packet by packet with correct
// sequence and acknowledgement numbers. Side 0 is the client. The clock t
// moves forward as segments are sent and answered.
type tcpConn struct {
	out   *[]packet
	t     time.Time
	end   [2]node
	port  [2]uint16
	seq   [2]uint32 // next sequence number each side sends
	ipid  [2]uint16
	owe   [2]bool       // side has received data it has not acknowledged
	last  [2]time.Time  // when each side last sent data
	rtt   time.Duration // round trip between the capture point and the far side
	pace  time.Duration // time between back-to-back full segments
	delay time.Duration // delayed-ACK time of the receiver
	r     *rng
}

// newTCP starts a connection at t; rtt is the round trip through the
// capture point and rate the sender's bottleneck in bytes per second.
func newTCP(out *[]packet, r *rng, t time.Time, cli, srv node, cport, sport uint16, rtt time.Duration, rate float64) *tcpConn {
	c := &tcpConn{out: out, t: t, end: [2]node{cli, srv}, port: [2]uint16{cport, sport}, rtt: rtt, r: r}
	c.seq = [2]uint32{r.u32(), r.u32()}
	c.ipid = [2]uint16{r.u16(), r.u16()}
	c.pace = time.Duration(float64(mss+54) / rate * float64(time.Second))
	c.delay = min(rtt/2+50*time.Microsecond, 40*time.Millisecond)
	return c
}

func (c *tcpConn) emit(at time.Time, dir int, flags byte, payload []byte) {
	seg := tcpSegment(c.port[dir], c.port[1-dir], c.seq[dir], c.seq[1-dir], flags, payload)
	c.ipid[dir]++
	*c.out = append(*c.out, packet{at, ipv4Frame(c.end[dir], c.end[1-dir], c.ipid[dir], 6, seg)})
}

// handshake sends SYN, SYN-ACK and ACK.
func (c *tcpConn) handshake() {
	c.emit(c.t, 0, tcpSYN, nil)
	c.seq[0]++
	c.t = c.t.Add(c.rtt)
	c.emit(c.t, 1, tcpSYN|tcpACK, nil)
	c.seq[1]++
	c.t = c.t.Add(c.rtt/8 + 30*time.Microsecond)
	c.emit(c.t, 0, tcpACK, nil)
}

// ackOwed makes side d send the ACK it still owes, at most its delayed-ACK
// time after the data arrived.
func (c *tcpConn) ackOwed(d int) {
	if !c.owe[d] {
		return
	}
	at := c.last[1-d].Add(c.delay)
	if at.After(c.t) {
		at = c.t
	}
	c.emit(at, d, tcpACK, nil)
	c.owe[d] = false
}

// send writes data from side dir in full-size segments; the receiver
// acknowledges every second segment, and the last one when it replies or
// its delayed-ACK timer fires.
func (c *tcpConn) send(dir int, data []byte) {
	c.ackOwed(1 - dir)
	c.owe[dir] = false // data segments carry the ACK
	n := 0
	ackBy := c.t
	for len(data) > 0 {
		k := min(len(data), mss)
		flags := byte(tcpACK)
		if k == len(data) {
			flags |= tcpPSH
		}
		c.emit(c.t, dir, flags, data[:k])
		c.seq[dir] += uint32(k)
		c.last[dir] = c.t
		data = data[k:]
		n++
		if n%2 == 0 && len(data) > 0 {
			at := c.t.Add(c.delay / 4)
			seg := tcpSegment(c.port[1-dir], c.port[dir], c.seq[1-dir], c.seq[dir], tcpACK, nil)
			c.ipid[1-dir]++
			*c.out = append(*c.out, packet{at, ipv4Frame(c.end[1-dir], c.end[dir], c.ipid[1-dir], 6, seg)})
			ackBy = at
		}
		if len(data) > 0 {
			c.t = c.t.Add(c.pace)
		}
	}
	if ackBy.After(c.t) {
		c.t = ackBy
	}
	c.owe[1-dir] = true
}

// wait lets d pass; a side that owes an ACK sends it meanwhile.
func (c *tcpConn) wait(d time.Duration) {
	c.t = c.t.Add(d)
	if d > c.delay {
		c.ackOwed(0)
		c.ackOwed(1)
	}
}

// turn lets the other side answer: a round trip through the capture
// point plus its think time.
func (c *tcpConn) turn(think time.Duration) {
	c.t = c.t.Add(c.rtt + think)
}

// close sends FIN from side dir, the peer's FIN and the last ACK.
func (c *tcpConn) close(dir int) {
	c.owe[dir] = false
	c.emit(c.t, dir, tcpFIN|tcpACK, nil)
	c.seq[dir]++
	c.owe[1-dir] = false
	c.t = c.t.Add(c.rtt/2 + 40*time.Microsecond)
	c.emit(c.t, 1-dir, tcpFIN|tcpACK, nil)
	c.seq[1-dir]++
	c.t = c.t.Add(c.rtt/2 + 40*time.Microsecond)
	c.emit(c.t, dir, tcpACK, nil)
}

// udpExchange writes one request and, when resp is not nil, its answer
// after rtt.
func udpExchange(out *[]packet, r *rng, t time.Time, cli, srv node, cport, sport uint16, req, resp []byte, rtt time.Duration) {
	*out = append(*out, packet{t, ipv4Frame(cli, srv, r.u16(), 17, udpDatagram(cport, sport, req))})
	if resp != nil {
		*out = append(*out, packet{t.Add(rtt), ipv4Frame(srv, cli, r.u16(), 17, udpDatagram(sport, cport, resp))})
	}
}

func udpDatagram(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	copy(h[8:], payload)
	return h
}
