// Package ringtest lays out TPACKET_V3 ring blocks as the Linux kernel
// fills them, so that tests, benchmarks and the cost harness can feed
// capture's block walker without a socket. The layout is the kernel's for
// a SOCK_RAW socket with PACKET_RESERVE 4 on an Ethernet device (checked
// against a recorded block by pkg/capture's TestRealBlockLayout).
package ringtest

import (
	"encoding/binary"
	"time"
)

// Offsets in the block and packet headers (linux/if_packet.h).
const (
	blkStatus   = 8
	blkNumPkts  = 12
	blkFirstPkt = 16
	blkLen      = 20
	// HeaderSize is the block descriptor's size: the first packet's offset.
	HeaderSize = 48

	pktNext     = 0
	pktSec      = 4
	pktNsec     = 8
	pktSnaplen  = 12
	pktLen      = 16
	pktStatus   = 20
	pktMac      = 24
	pktVlanTCI  = 32
	pktVlanTPID = 36
	// Mac is where a frame starts after its packet header: tpacket3_hdr
	// (48), sockaddr_ll (20), the 4 reserved bytes, aligned as the kernel
	// aligns the network header.
	Mac = 86

	// StatusUser marks a block handed to user space (TP_STATUS_USER).
	StatusUser = 1
	// StatusBlockTimeout marks a block retired by the timer.
	StatusBlockTimeout = 1 << 5
)

// Packet is one packet of a block.
type Packet struct {
	TS      time.Time
	Frame   []byte // bytes in the ring (tp_snaplen of them)
	OrigLen int    // 0: len(Frame)
	TCI     uint32 // tp_vlan_tci
	TPID    uint16 // tp_vlan_tpid
	Status  uint32 // tp_status
}

// Stride is the ring space a packet of frameLen bytes takes, header
// included (the kernel aligns each header to 8 bytes).
func Stride(frameLen int) int { return (Mac + frameLen + 7) &^ 7 }

// Block returns a block of size bytes holding pkts, with the given block
// status. The packets must fit.
func Block(size int, status uint32, pkts []Packet) []byte {
	blk := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(blk[0:], 3) // TPACKET_V3
	ne.PutUint32(blk[blkStatus:], status)
	ne.PutUint32(blk[blkNumPkts:], uint32(len(pkts)))
	ne.PutUint32(blk[blkFirstPkt:], HeaderSize)
	off := HeaderSize
	for i, p := range pkts {
		h := blk[off:]
		next := Stride(len(p.Frame))
		if i == len(pkts)-1 {
			ne.PutUint32(h[pktNext:], 0)
		} else {
			ne.PutUint32(h[pktNext:], uint32(next))
		}
		SetTime(h, p.TS)
		ne.PutUint32(h[pktSnaplen:], uint32(len(p.Frame)))
		orig := p.OrigLen
		if orig == 0 {
			orig = len(p.Frame)
		}
		ne.PutUint32(h[pktLen:], uint32(orig))
		ne.PutUint32(h[pktStatus:], p.Status)
		ne.PutUint16(h[pktMac:], Mac)
		ne.PutUint16(h[pktMac+2:], Mac+14)
		ne.PutUint32(h[pktVlanTCI:], p.TCI)
		ne.PutUint16(h[pktVlanTPID:], p.TPID)
		copy(h[Mac:], p.Frame)
		off += next
	}
	ne.PutUint32(blk[blkLen:], uint32(off))
	return blk
}

// SetTime writes a packet's time stamp into its header (h starts at the
// packet's tpacket3_hdr).
func SetTime(h []byte, ts time.Time) {
	binary.NativeEndian.PutUint32(h[pktSec:], uint32(ts.Unix()))
	binary.NativeEndian.PutUint32(h[pktNsec:], uint32(ts.Nanosecond()))
}

// SetStatus sets a block's status word, as the kernel does when it hands
// the block over (StatusUser) and the walker when it gives it back (0).
func SetStatus(blk []byte, status uint32) {
	binary.NativeEndian.PutUint32(blk[blkStatus:], status)
}
