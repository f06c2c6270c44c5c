// Package capture records packets from a live Linux interface through
// AF_PACKET TPACKET_V3 rings, one ring per worker, spread by PACKET_FANOUT.
//
// Each worker walks a whole ring block at a time and hands every packet to
// its own Sink without copying, allocating, locking or making a system call
// per packet; it waits, parked in the runtime poller, only when no block is
// ready. See docs/capture.md for the design and measured cost.
//
// Use: Open (which must run in the network namespace of the interface),
// then Run with one Sink per worker until the context is cancelled, then
// Close.
package capture

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// Sink receives captured packets. Each worker has its own, so a Sink needs
// no locking.
type Sink interface {
	// WritePacket stores one packet; data is only valid during the call.
	WritePacket(ts time.Time, data []byte, origLen int) error
	// Flush makes everything written so far durable and visible to readers
	// (called when a ring block is retired with no new data for a while, so
	// a quiet link still flushes, and once when Run ends).
	Flush() error
}

// NanoSink is a Sink that also takes time stamps as nanoseconds since the
// epoch, which the kernel gives: the walk then builds no time.Time per
// packet. Run calls WritePacketNanos instead of WritePacket.
type NanoSink interface {
	Sink
	WritePacketNanos(ns int64, data []byte, origLen int) error
}

// FrameSink is a Sink that takes a run of a ring block's packets in one
// call: the walk then makes one call a run instead of one a packet, and
// the sink its per-call checks once a run. Run calls WriteFrames instead
// of WritePacket or WritePacketNanos.
type FrameSink interface {
	Sink
	// Frames returns the buffer the walk gathers a run in (its length is
	// the longest run), the same one on every call.
	Frames() []pcapio.Frame
	// WriteFrames stores a run in order and returns how many frames it
	// stored; with an error, those and no more.
	WriteFrames(fs []pcapio.Frame) (int, error)
}

// Config describes a capture. Zero fields take the defaults below.
type Config struct {
	// Interface is the name of the interface to capture on (required).
	Interface string
	// Workers is how many sockets, rings and sinks share the traffic; with
	// more than one they form a PACKET_FANOUT group hashing on the flow
	// (both directions of a flow reach the same worker; IP fragments are
	// reassembled for hashing).
	Workers int
	// SnapLen caps the bytes kept of each packet (default and maximum
	// 262144, as libpcap).
	SnapLen int
	// RingSize is the ring memory of all workers together, in bytes
	// (default 256 MiB, as tcpdump -B 262144); each worker gets an equal
	// share, rounded down to whole blocks, at least MinBlocks.
	RingSize int64
	// BlockSize is the size of one ring block: a multiple of the page size
	// (default 512 KiB: it holds a whole packet at the largest snap length,
	// and the kernel zeroes smaller, lower-order blocks at set-up for less
	// than the 1 MiB ones used before).
	BlockSize int
	// BlockTimeout is how long the kernel keeps a partly filled block
	// before handing it over, so packets on a quiet link still arrive
	// promptly (default 50 ms; whole milliseconds).
	BlockTimeout time.Duration
	// FlushInterval is the longest a packet on a quiet or slow link waits
	// in a sink before Flush is called (default 1 s).
	FlushInterval time.Duration
	// Promiscuous asks the interface to pass frames not addressed to it.
	Promiscuous bool
	// Filter is a classic BPF program run by the kernel before a packet
	// reaches the ring; nil keeps everything. Its return value is the
	// number of bytes kept, so a program compiled with the snap length
	// also truncates in the kernel.
	Filter []Instruction
}

// Instruction is one classic BPF instruction (struct sock_filter).
type Instruction struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Defaults and limits.
const (
	DefaultSnapLen       = maxSnapLen
	MaxSnapLen           = maxSnapLen
	DefaultRingSize      = 256 << 20
	DefaultBlockSize     = 512 << 10
	DefaultBlockTimeout  = 50 * time.Millisecond
	DefaultFlushInterval = time.Second
	MinBlocks            = 4
	MaxWorkers           = 64
)

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults(pageSize int) (Config, error) {
	if c.Interface == "" {
		return c, errors.New("capture: no interface given")
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return c, fmt.Errorf("capture: %d workers outside 1..%d", c.Workers, MaxWorkers)
	}
	if c.SnapLen == 0 {
		c.SnapLen = DefaultSnapLen
	}
	if c.SnapLen < 1 || c.SnapLen > maxSnapLen {
		return c, fmt.Errorf("capture: snap length %d outside 1..%d", c.SnapLen, maxSnapLen)
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.BlockSize < pageSize || c.BlockSize%pageSize != 0 || c.BlockSize > 1<<30 {
		return c, fmt.Errorf("capture: block size %d is not a multiple of the %d-byte page up to 1 GiB", c.BlockSize, pageSize)
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if per := c.RingSize / int64(c.Workers) / int64(c.BlockSize); per < MinBlocks {
		return c, fmt.Errorf("capture: ring size %d gives %d blocks of %d bytes per worker; need at least %d", c.RingSize, per, c.BlockSize, MinBlocks)
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	if c.BlockTimeout < time.Millisecond || c.BlockTimeout > time.Minute {
		return c, fmt.Errorf("capture: block timeout %v outside 1ms..1m", c.BlockTimeout)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.FlushInterval < 0 {
		return c, fmt.Errorf("capture: negative flush interval %v", c.FlushInterval)
	}
	if len(c.Filter) > 4096 { // BPF_MAXINSNS
		return c, fmt.Errorf("capture: filter of %d instructions exceeds the kernel's 4096", len(c.Filter))
	}
	return c, nil
}

// blocksPerWorker is the ring length of each worker.
func (c Config) blocksPerWorker() int {
	return int(c.RingSize / int64(c.Workers) / int64(c.BlockSize))
}

// Counters describe one worker, or all of them added up.
type Counters struct {
	// Packets and Bytes were handed to the sink (Bytes as captured).
	Packets, Bytes uint64
	// Blocks is the number of ring blocks walked.
	Blocks uint64
	// KernelPackets is what the kernel accepted for the ring after the
	// filter (tp_packets), including KernelDrops, the packets it had to
	// drop because the ring was full (tp_drops). Once Run has returned,
	// Packets + KernelDrops == KernelPackets unless a sink failed.
	KernelPackets, KernelDrops uint64
	// FreezeQueue counts the times the ring filled up (tp_freeze_q_cnt).
	FreezeQueue uint64
	// Flushes counts calls of Sink.Flush.
	Flushes uint64
	// LinkDowns counts the times the interface was found down; capture
	// resumes when it comes back up.
	LinkDowns uint64
}

func (c *Counters) add(o Counters) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	c.Blocks += o.Blocks
	c.KernelPackets += o.KernelPackets
	c.KernelDrops += o.KernelDrops
	c.FreezeQueue += o.FreezeQueue
	c.Flushes += o.Flushes
	c.LinkDowns += o.LinkDowns
}

// Stats is a snapshot of a capture.
type Stats struct {
	Total   Counters
	Workers []Counters
}

// counters is the live, atomically updated form of Counters, written by
// one worker (once per block, never per packet) and read by Stats.
type counters struct {
	packets, bytes, blocks                 atomic.Uint64
	kernelPackets, kernelDrops, freezeQCnt atomic.Uint64
	flushes, linkDowns                     atomic.Uint64
}

func (c *counters) load() Counters {
	return Counters{
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), Blocks: c.blocks.Load(),
		KernelPackets: c.kernelPackets.Load(), KernelDrops: c.kernelDrops.Load(),
		FreezeQueue: c.freezeQCnt.Load(), Flushes: c.flushes.Load(), LinkDowns: c.linkDowns.Load(),
	}
}

// ErrUnsupported is returned where AF_PACKET rings do not exist.
var ErrUnsupported = errors.New("live capture needs Linux AF_PACKET")
