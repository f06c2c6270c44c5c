package replay

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// LiveConfig describes a live capture for replay. Zero fields take the
// defaults.
type LiveConfig struct {
	Interface string
	// RingSize is the kernel ring (default 32 MiB). It rides out the
	// moments the pipeline falls behind: then the queue is full, the
	// capture worker waits for the pipeline, and the ring fills; when it
	// is full the kernel drops packets, and counts them.
	RingSize int64
	// QueueSize bounds the packets copied out of the ring and waiting for
	// the pipeline (default 8 MiB).
	QueueSize int64
	// SnapLen caps the bytes kept of each packet (default 262144).
	SnapLen     int
	Promiscuous bool
	// Filter is a classic BPF program run in the kernel; nil keeps all.
	Filter []capture.Instruction
}

// Defaults for LiveConfig.
const (
	DefaultLiveRing  = 32 << 20
	DefaultLiveQueue = 8 << 20
)

// A batch holds at most liveBatchBytes of packet data and liveBatchPackets
// packets: the capture worker fills a batch from the ring, the pipeline
// empties it, and it goes back to be filled again, so steady capture
// allocates nothing.
const (
	liveBatchBytes   = 256 << 10
	liveBatchPackets = 2048
)

// liveFlush is how long a packet on a quiet link may wait in a partly
// filled batch (the kernel retires a quiet block after 50 ms more).
const liveFlush = 100 * time.Millisecond

// Live is a live interface as a Source: a pkg/capture engine with one
// worker (TCP reassembly needs both directions of a flow in one pipeline)
// whose sink copies each packet out of the ring into a bounded queue of
// batches. Close stops it.
type Live struct {
	c        *capture.Capture
	linkType pkthdr.LinkType
	queue    chan *liveBatch // filled batches, in capture order
	free     chan *liveBatch // batches to fill
	sink     *liveSink
	cancel   context.CancelFunc
	done     chan struct{} // closed when capture ends
	err      error         // why capture ended (set before done closes)
	closing  chan struct{} // closed by Close: the sink stops waiting for the pipeline
	closed   sync.Once

	cur *liveBatch // batch Next is handing out
	pos int
}

// liveBatch is packets copied out of the ring, sharing one buffer.
type liveBatch struct {
	buf  []byte
	pkts []Packet
}

// OpenLive opens cfg.Interface for live replay and starts capturing. It
// needs CAP_NET_RAW, and must run in the network namespace of the
// interface.
func OpenLive(cfg LiveConfig) (*Live, error) {
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultLiveRing
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultLiveQueue
	}
	if cfg.SnapLen == 0 {
		cfg.SnapLen = capture.DefaultSnapLen
	}
	c, err := capture.Open(capture.Config{
		Interface: cfg.Interface, Workers: 1, SnapLen: cfg.SnapLen, RingSize: cfg.RingSize,
		Promiscuous: cfg.Promiscuous, Filter: cfg.Filter, FlushInterval: liveFlush,
	})
	if err != nil {
		return nil, err
	}
	size := max(liveBatchBytes, cfg.SnapLen)
	n := int(max(2, cfg.QueueSize/int64(size)))
	l := &Live{
		c: c, linkType: c.LinkType(),
		queue: make(chan *liveBatch, n), free: make(chan *liveBatch, n),
		done: make(chan struct{}), closing: make(chan struct{}),
	}
	for i := 0; i < n; i++ {
		l.free <- &liveBatch{buf: make([]byte, 0, size), pkts: make([]Packet, 0, liveBatchPackets)}
	}
	l.sink = &liveSink{l: l}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() {
		_, err := c.Run(ctx, []capture.Sink{l.sink})
		l.err = err
		close(l.done)
	}()
	return l, nil
}

// Next returns the next captured packet; its Data is valid until the next
// call. It blocks until one arrives, and returns io.EOF once Close was
// called and every packet captured before it was returned.
func (l *Live) Next() (Packet, error) {
	for l.cur == nil || l.pos >= len(l.cur.pkts) {
		if l.cur != nil {
			l.recycle(l.cur)
			l.cur = nil
		}
		b, err := l.nextBatch()
		if err != nil {
			return Packet{}, err
		}
		l.cur, l.pos = b, 0
	}
	l.pos++
	return l.cur.pkts[l.pos-1], nil
}

// nextBatch waits for a filled batch; after the capture ended it drains
// the queue, then reports why it ended.
func (l *Live) nextBatch() (*liveBatch, error) {
	select {
	case b := <-l.queue:
		return b, nil
	case <-l.done:
	}
	select {
	case b := <-l.queue:
		return b, nil
	default:
	}
	if l.err != nil {
		return nil, fmt.Errorf("live capture: %w", l.err)
	}
	return nil, io.EOF
}

func (l *Live) recycle(b *liveBatch) {
	b.buf, b.pkts = b.buf[:0], b.pkts[:0]
	l.free <- b // never blocks: there are as many slots as batches
}

// Close stops capturing and waits for the capture to finish; Next then
// returns the packets already queued, then io.EOF. Packets still in the
// ring when the queue is full are discarded, not waited for: nothing may
// be reading any more.
func (l *Live) Close() error {
	l.closed.Do(func() {
		close(l.closing)
		l.cancel()
		<-l.done
		if l.c != nil {
			l.c.Close()
		}
	})
	return nil
}

func (l *Live) stop() { l.Close() }

// KernelDrops returns the packets the kernel dropped so far because the
// ring was full: the pipeline fell behind for longer than the ring and the
// queue could hold. It is collected about once a second by the capture
// worker, and is final once Close returned.
func (l *Live) KernelDrops() uint64 {
	if l.c == nil {
		return 0
	}
	return l.c.Stats().Total.KernelDrops
}

// liveSink copies packets out of the ring block being walked; the ring's
// memory goes back to the kernel after the block.
type liveSink struct {
	l *Live
	b *liveBatch
}

func (s *liveSink) WritePacket(ts time.Time, data []byte, origLen int) error {
	if s.b != nil && (len(s.b.buf)+len(data) > cap(s.b.buf) || len(s.b.pkts) == cap(s.b.pkts)) {
		s.send()
	}
	if s.b == nil {
		select {
		case s.b = <-s.l.free:
		default:
			// Every batch waits for the pipeline: wait for one, so the
			// ring holds what arrives meanwhile and the kernel counts
			// what it cannot hold.
			select {
			case s.b = <-s.l.free:
			case <-s.l.closing:
				return nil
			}
		}
	}
	off := len(s.b.buf)
	s.b.buf = append(s.b.buf, data...)
	s.b.pkts = append(s.b.pkts, Packet{
		Timestamp: ts, LinkType: s.l.linkType,
		Data: s.b.buf[off:len(s.b.buf):len(s.b.buf)], OrigLen: origLen,
	})
	return nil
}

// Flush hands over a partly filled batch: the link is quiet, or capture
// is ending.
func (s *liveSink) Flush() error {
	if s.b != nil && len(s.b.pkts) > 0 {
		s.send()
	}
	return nil
}

func (s *liveSink) send() {
	s.l.queue <- s.b // never blocks: there are as many slots as batches
	s.b = nil
}
