package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// The layout of a TPACKET_V3 ring block (linux/if_packet.h). The kernel
// writes these in the host's byte order.
//
//	struct tpacket_block_desc {        offset
//	    __u32 version;                 0
//	    __u32 offset_to_priv;          4
//	    struct tpacket_hdr_v1 {
//	        __u32 block_status;        8   TP_STATUS_KERNEL / TP_STATUS_USER | flags
//	        __u32 num_pkts;            12
//	        __u32 offset_to_first_pkt; 16  from the block start
//	        __u32 blk_len;             20  bytes used in the block
//	        __u64 seq_num;             24
//	        struct { __u32 sec, usec; } ts_first_pkt, ts_last_pkt; 32, 40
//	    } hdr;
//	};                                 48
//
//	struct tpacket3_hdr {
//	    __u32 tp_next_offset;          0   from this header; 0 on the last packet
//	    __u32 tp_sec, tp_nsec;         4, 8
//	    __u32 tp_snaplen;              12  bytes in the ring
//	    __u32 tp_len;                  16  bytes on the wire
//	    __u32 tp_status;               20
//	    __u16 tp_mac, tp_net;          24, 26 offsets from this header
//	    struct tpacket_hdr_variant1 {
//	        __u32 tp_rxhash;           28
//	        __u32 tp_vlan_tci;         32
//	        __u16 tp_vlan_tpid;        36
//	        __u16 tp_padding;          38
//	    } hv1;
//	    __u8 tp_padding[8];            40
//	};                                 48, then struct sockaddr_ll (20 bytes)
const (
	blkStatus     = 8
	blkNumPkts    = 12
	blkFirstPkt   = 16
	blkLen        = 20
	blkHeaderSize = 48

	pktNext     = 0
	pktSec      = 4
	pktNsec     = 8
	pktSnaplen  = 12
	pktLen      = 16
	pktStatus   = 20
	pktMac      = 24
	pktVlanTCI  = 32
	pktVlanTPID = 36
	pktHdrSize  = 48
	// pktMinMac is the end of tpacket3_hdr and the sockaddr_ll after it:
	// the earliest a frame can start, and the floor for a reinserted tag.
	pktMinMac = pktHdrSize + 20

	// Kernel status bits (linux/if_packet.h).
	statusUser          = 1 << 0 // TP_STATUS_USER: the block belongs to us
	statusBlockTimeout  = 1 << 5 // TP_STATUS_BLK_TMO: retired by the timer, not full
	statusVLANValid     = 1 << 4 // TP_STATUS_VLAN_VALID
	statusVLANTPIDValid = 1 << 6 // TP_STATUS_VLAN_TPID_VALID
	vlanTagLen          = 4      // an 802.1Q tag
	etherAddrsLen       = 12     // destination and source MAC
	tpid8021Q           = 0x8100 // default tag protocol
	maxSnapLen          = 262144 // libpcap's MAXIMUM_SNAPLEN
	statusKernel        = 0      // TP_STATUS_KERNEL: hand the block back
)

// ErrBadBlock reports a ring block whose headers do not fit inside it. The
// kernel never writes one: it would mean memory corruption or a ring layout
// this code does not understand, which would spoil every block after it, so
// the worker stops with this error rather than skip data silently.
var ErrBadBlock = errors.New("malformed ring block")

// blockResult counts what one block yielded.
type blockResult struct {
	packets  uint64 // handed to the sink
	bytes    uint64 // captured bytes handed to the sink
	timedOut bool   // the kernel retired the block by timer (a quiet link)
}

// walkBlock hands every packet in one retired TPACKET_V3 block to sink,
// without copying: data points into the ring and is valid only during
// WritePacket. It trusts nothing it reads: each offset and length is checked
// against the block, so a corrupt block stops the walk with ErrBadBlock
// instead of reading outside it.
//
// For Ethernet links (ether) the kernel has removed the outer VLAN tag into
// tp_vlan_tci; like libpcap, the tag is put back in place, in the ring space
// in front of the frame, so the stored frame is the one on the wire.
// snaplen caps the bytes handed over (the kernel filter usually truncated
// them already).
func walkBlock(blk []byte, snaplen int, ether bool, sink FrameSink) (blockResult, error) {
	var res blockResult
	if len(blk) < blkHeaderSize {
		return res, fmt.Errorf("%w: %d bytes, shorter than its header", ErrBadBlock, len(blk))
	}
	status := binary.NativeEndian.Uint32(blk[blkStatus:])
	res.timedOut = status&statusBlockTimeout != 0
	n := binary.NativeEndian.Uint32(blk[blkNumPkts:])
	used := uint64(binary.NativeEndian.Uint32(blk[blkLen:]))
	if used > uint64(len(blk)) || used < blkHeaderSize {
		// blk_len is set when a block is closed; older kernels leave it
		// unset on timer retirement, so fall back to the whole block.
		used = uint64(len(blk))
	}
	blk = blk[:used]
	off := uint64(binary.NativeEndian.Uint32(blk[blkFirstPkt:]))
	// The packets go to the sink in runs, gathered in its buffer: a run is
	// stored when the buffer is full, at a malformed header (the packets
	// before it are kept, as a packet at a time they would be) and at the
	// block's end.
	var (
		run   = sink.Frames()
		nrun  int
		rbyte uint64 // the run's captured bytes
	)
	// flush stores the run gathered so far.
	flush := func() error {
		m, b, err := storeRun(sink, run[:nrun], rbyte)
		res.packets += m
		res.bytes += b
		nrun, rbyte = 0, 0
		return err
	}
	for i := uint32(0); i < n; i++ {
		if off < blkHeaderSize || off+pktHdrSize > used {
			if nrun > 0 {
				if err := flush(); err != nil {
					return res, err
				}
			}
			return res, fmt.Errorf("%w: packet %d of %d at offset %d past %d bytes", ErrBadBlock, i, n, off, used)
		}
		h := blk[off : off+pktHdrSize]
		next := uint64(binary.NativeEndian.Uint32(h[pktNext:]))
		capLen := uint64(binary.NativeEndian.Uint32(h[pktSnaplen:]))
		origLen := int(binary.NativeEndian.Uint32(h[pktLen:]))
		mac := uint64(binary.NativeEndian.Uint16(h[pktMac:]))
		start, end := off+mac, off+mac+capLen
		if mac < pktHdrSize || end > used {
			if nrun > 0 {
				if err := flush(); err != nil {
					return res, err
				}
			}
			return res, fmt.Errorf("%w: packet %d: frame [%d,%d) outside %d bytes", ErrBadBlock, i, start, end, used)
		}
		pstatus := binary.NativeEndian.Uint32(h[pktStatus:])
		tci := binary.NativeEndian.Uint32(h[pktVlanTCI:])
		if ether && (pstatus&statusVLANValid != 0 || tci != 0) && capLen >= etherAddrsLen && mac >= pktMinMac+vlanTagLen {
			tpid := uint16(tpid8021Q)
			if t := binary.NativeEndian.Uint16(h[pktVlanTPID:]); t != 0 || pstatus&statusVLANTPIDValid != 0 {
				tpid = t
			}
			// Slide the MAC addresses 4 bytes down and write the tag
			// between them and the EtherType.
			start -= vlanTagLen
			copy(blk[start:start+etherAddrsLen], blk[start+vlanTagLen:start+vlanTagLen+etherAddrsLen])
			binary.BigEndian.PutUint16(blk[start+etherAddrsLen:], tpid)
			binary.BigEndian.PutUint16(blk[start+etherAddrsLen+2:], uint16(tci))
			origLen += vlanTagLen
		}
		data := blk[start:end]
		if len(data) > snaplen {
			data = data[:snaplen]
		}
		sec, nsec := int64(binary.NativeEndian.Uint32(h[pktSec:])), int64(binary.NativeEndian.Uint32(h[pktNsec:]))
		if nrun == len(run) {
			if err := flush(); err != nil {
				return res, err
			}
		}
		// Field by field: a composite literal is built on the stack and
		// copied.
		f := &run[nrun]
		f.Nanos, f.Data, f.OrigLen = sec*1e9+nsec, data, origLen
		nrun++
		rbyte += uint64(len(data))
		if next == 0 {
			if i+1 < n {
				if nrun > 0 {
					if err := flush(); err != nil {
						return res, err
					}
				}
				return res, fmt.Errorf("%w: packet %d of %d has no successor", ErrBadBlock, i, n)
			}
			break
		}
		off += next
	}
	if nrun > 0 {
		if err := flush(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// storeRun hands run, of bytes captured bytes, to s and returns how many
// packets and captured bytes it stored.
func storeRun(s FrameSink, run []pcapio.Frame, bytes uint64) (uint64, uint64, error) {
	m, err := s.WriteFrames(run)
	if m < len(run) {
		bytes = 0
		for _, f := range run[:max(m, 0)] {
			bytes += uint64(len(f.Data))
		}
	}
	return uint64(m), bytes, err
}

// WalkBlock hands every packet of one retired TPACKET_V3 block to sink,
// as a worker does, and returns how many it handed over. It is the worker's
// own walk, exported for harnesses that replay laid-out blocks
// (pkg/capture/ringtest) through a sink without a socket. A sink that is
// not a FrameSink gets a buffer of its own on every call.
func WalkBlock(blk []byte, snaplen int, ether bool, sink Sink) (int, error) {
	res, err := walkBlock(blk, snaplen, ether, asFrameSink(sink))
	return int(res.packets), err
}

// asFrameSink returns s as a FrameSink: itself, or, for a sink that takes
// one packet a call, s behind a run buffer, so that the walk has one path.
func asFrameSink(s Sink) FrameSink {
	if fs, ok := s.(FrameSink); ok {
		return fs
	}
	ns, _ := s.(NanoSink)
	return &packetSink{Sink: s, nano: ns}
}

// packetSink hands a run to a Sink a packet at a time.
type packetSink struct {
	Sink
	nano NanoSink // the same sink if it takes nanoseconds, else nil
	buf  [walkRun]pcapio.Frame
}

// walkRun is the length of packetSink's run buffer.
const walkRun = 64

func (s *packetSink) Frames() []pcapio.Frame { return s.buf[:] }

func (s *packetSink) WriteFrames(fs []pcapio.Frame) (int, error) {
	for i, f := range fs {
		var err error
		if s.nano != nil {
			err = s.nano.WritePacketNanos(f.Nanos, f.Data, f.OrigLen)
		} else {
			err = s.WritePacket(time.Unix(0, f.Nanos), f.Data, f.OrigLen)
		}
		if err != nil {
			return i, err
		}
	}
	return len(fs), nil
}
