package ringtest

import (
	"encoding/binary"
	"time"
)

// Flood is a stream of small UDP frames laid into ring blocks, as the
// capture bench (scripts/bench-capture.sh) sends them: from 198.18.0.1 to
// 198.18.0.2, port 9, over Flows source ports; with Flows 0 every frame
// opens a new flow, as a spoofed flood does: source address (in
// 10.0.0.0/8) and port scattered, no two frames of 2^40 alike.
type Flood struct {
	Flows    int
	FrameLen int           // bytes per frame, at least 42 (default 64)
	Gap      time.Duration // between frames' time stamps (default 500 ns: 2 Mpps)
	// Jitter, when set, adds to each time stamp a fixed pseudo-random
	// offset in [0, Jitter), as a live link's time stamps vary: evenly
	// spaced ones code cheaper than the kernel's. Up to Gap, time stamps
	// stay in order.
	Jitter time.Duration
	next   uint64
	ts     time.Time
}

// Offsets in a frame: Ethernet, IPv4 (no options), UDP.
const (
	ipOff    = 14
	ipCsum   = ipOff + 10
	ipSrc    = ipOff + 12
	udpSport = ipOff + 20
)

// NewFlood starts a flood at start.
func NewFlood(flows, frameLen int, start time.Time) *Flood {
	if frameLen < udpSport+8 {
		frameLen = 64
	}
	return &Flood{Flows: flows, FrameLen: frameLen, Gap: 500 * time.Nanosecond, ts: start}
}

// Frame returns frame number i (from 0) and its time stamp.
func (f *Flood) Frame(i uint64) []byte {
	b := make([]byte, f.FrameLen)
	f.template(b)
	f.vary(b, i)
	return b
}

// Time is frame i's time stamp.
func (f *Flood) Time(i uint64) time.Time {
	t := f.ts.Add(time.Duration(i) * f.Gap)
	if f.Jitter > 0 {
		// A multiplicative hash of the frame number: the same offsets in
		// every run, so instruction counts stay comparable.
		t = t.Add(time.Duration((i * 0x9e3779b97f4a7c15 >> 24) % uint64(f.Jitter)))
	}
	return t
}

func (f *Flood) template(b []byte) {
	copy(b, []byte{
		0x02, 0x6e, 0x77, 0x68, 0xff, 0xfe, // destination: not the receiver
		0x02, 0x6e, 0x77, 0x68, 0x00, 0x0a, // source
		0x08, 0x00, // IPv4
		0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, // length, DF, TTL 64, UDP
		198, 18, 0, 1, 198, 18, 0, 2,
		0x04, 0, 0, 9, 0, 0, 0, 0, // ports, length, no checksum
	})
	binary.BigEndian.PutUint16(b[ipOff+2:], uint16(len(b)-ipOff))
	binary.BigEndian.PutUint16(b[udpSport+4:], uint16(len(b)-udpSport))
}

// vary writes frame i's flow fields and the IP checksum.
func (f *Flood) vary(b []byte, i uint64) {
	if f.Flows > 0 {
		b[udpSport+1] = byte(i % uint64(f.Flows))
		b[udpSport] = 0x04 + byte(i%uint64(f.Flows)>>8)
	} else {
		// An odd multiplier is a bijection on 40 bits: 24 of address, 16
		// of port, every frame's pair distinct and scattered.
		x := (i * 0x9e3779b97f4b) & (1<<40 - 1)
		binary.BigEndian.PutUint16(b[udpSport:], uint16(x))
		binary.BigEndian.PutUint32(b[ipSrc:], 10<<24|uint32(x>>16))
	}
	h := b[ipOff : ipOff+20]
	h[10], h[11] = 0, 0
	var sum uint32
	for j := 0; j < 20; j += 2 {
		sum += uint32(h[j])<<8 | uint32(h[j+1])
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	binary.BigEndian.PutUint16(b[ipCsum:], ^uint16(sum))
}

// Block lays out a block of blockSize bytes holding as many frames as fit,
// for Fill to fill again and again.
func (f *Flood) Block(blockSize int) []byte {
	n := (blockSize - HeaderSize) / Stride(f.FrameLen)
	pkts := make([]Packet, n)
	for i := range pkts {
		pkts[i].Frame = make([]byte, f.FrameLen)
		f.template(pkts[i].Frame)
	}
	return Block(blockSize, 0, pkts)
}

// Fill writes the next frames' flow fields and time stamps into the
// packets of blk (laid out by Block) and hands the block over (status
// user, as the kernel does). It returns the number of frames.
func (f *Flood) Fill(blk []byte) int {
	ne := binary.NativeEndian
	n := int(ne.Uint32(blk[blkNumPkts:]))
	stride := Stride(f.FrameLen)
	off := HeaderSize
	for range n {
		h := blk[off : off+stride]
		SetTime(h, f.Time(f.next))
		f.vary(h[Mac:Mac+f.FrameLen], f.next)
		f.next++
		off += stride
	}
	SetStatus(blk, StatusUser)
	return n
}

// Count is the number of frames filled so far.
func (f *Flood) Count() uint64 { return f.next }
