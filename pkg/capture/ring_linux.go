//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"golang.org/x/sys/unix"
)

// frameSize is tp_frame_size. TPACKET_V3 packs packets of any size into a
// block, so it only has to divide the block and hold a header.
const frameSize = 2048

// dropAll is a BPF program that accepts nothing: each socket carries it
// from creation until every worker has joined the fanout group, so no
// packet slips in unfiltered or reaches two workers.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// Capture is an open capture: sockets bound, rings mapped, filters set.
type Capture struct {
	cfg      Config
	linkType pkthdr.LinkType
	ifindex  int
	fanoutID int // -1 without fanout
	workers  []*worker

	stop     atomic.Bool // read by the workers between blocks
	stopOnce sync.Once

	mu      sync.Mutex
	started bool          // Run was called
	runDone chan struct{} // closed when Run returns
	closed  bool
}

// worker owns one socket and its ring.
type worker struct {
	fd int
	// file holds fd in the Go runtime's poller, so a worker waiting for a
	// block parks its goroutine instead of blocking a thread in poll(2)
	// (which makes the scheduler hand its P to another thread each time).
	file      *os.File
	rc        syscall.RawConn
	ring      []byte
	blockSize int
	nblocks   int
	cur       int // next block to read
	stats     counters
}

// Open prepares a capture on cfg.Interface. The sockets belong to the
// network namespace of the calling thread; everything after Open may run
// anywhere. Capturing needs CAP_NET_RAW.
func Open(cfg Config) (_ *Capture, err error) {
	cfg, err = cfg.withDefaults(os.Getpagesize())
	if err != nil {
		return nil, err
	}
	c := &Capture{cfg: cfg, fanoutID: -1}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for i := 0; i < cfg.Workers; i++ {
		w, err := c.openWorker(i)
		if err != nil {
			return nil, fmt.Errorf("capture on %s: worker %d: %w", cfg.Interface, i, err)
		}
		c.workers = append(c.workers, w)
	}
	// Every socket is in the group now: switch each from drop-all to the
	// real program. A packet that arrived before this was dropped by the
	// filter, before capture began; none was seen twice.
	var filter []unix.SockFilter
	for _, in := range cfg.Filter {
		filter = append(filter, unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K})
	}
	if filter == nil && cfg.SnapLen < maxSnapLen {
		// Let the kernel truncate: a filter's return value is the number
		// of bytes it copies into the ring.
		filter = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(cfg.SnapLen)}}
	}
	for i, w := range c.workers {
		if filter == nil {
			err = detachFilter(w.fd)
		} else {
			err = attachFilter(w.fd, filter)
		}
		if err != nil {
			return nil, fmt.Errorf("capture on %s: worker %d: set filter: %w", cfg.Interface, i, err)
		}
	}
	return c, nil
}

// openWorker creates one socket: drop-all filter first, then ring, bind,
// promiscuous mode (first worker) and fanout membership.
func (c *Capture) openWorker(i int) (_ *worker, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", os.NewSyscallError("socket", err))
	}
	w := &worker{fd: fd}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	// Protocol 0 receives nothing until bind; the filter guards what
	// follows until Open switches to the real one.
	if err := attachFilter(fd, dropAll); err != nil {
		return nil, fmt.Errorf("drop-all filter: %w", err)
	}
	if i == 0 {
		if c.ifindex, c.linkType, err = interfaceInfo(fd, c.cfg.Interface); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("TPACKET_V3: %w", err)
	}
	// Room in front of each frame to put back a VLAN tag the kernel took out.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, vlanTagLen); err != nil {
		return nil, fmt.Errorf("PACKET_RESERVE: %w", err)
	}
	w.blockSize, w.nblocks = c.cfg.BlockSize, c.cfg.blocksPerWorker()
	req := unix.TpacketReq3{
		Block_size:     uint32(w.blockSize),
		Block_nr:       uint32(w.nblocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(w.blockSize / frameSize * w.nblocks),
		Retire_blk_tov: uint32(c.cfg.BlockTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("ring of %d blocks of %d bytes: %w", w.nblocks, w.blockSize, err)
	}
	w.ring, err = unix.Mmap(fd, 0, w.blockSize*w.nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap ring: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: c.ifindex}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	if i == 0 && c.cfg.Promiscuous {
		mreq := unix.PacketMreq{Ifindex: int32(c.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return nil, fmt.Errorf("promiscuous mode: %w", err)
		}
	}
	if c.cfg.Workers > 1 {
		if err := c.joinFanout(fd); err != nil {
			return nil, err
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("non-blocking: %w", err)
	}
	w.file = os.NewFile(uintptr(fd), "packet socket")
	if w.rc, err = w.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("register with the poller: %w", err)
	}
	if err := w.file.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("register with the poller: %w", err)
	}
	return w, nil
}

// joinFanout puts fd in this capture's fanout group. The first socket asks
// the kernel for an unused group id, so two captures never share a group.
func (c *Capture) joinFanout(fd int) error {
	const mode = unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_DEFRAG
	if c.fanoutID < 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (mode|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16); err != nil {
			return fmt.Errorf("create fanout group: %w", err)
		}
		v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
		if err != nil {
			return fmt.Errorf("read fanout group id: %w", err)
		}
		c.fanoutID = v & 0xffff
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, mode<<16|c.fanoutID); err != nil {
		return fmt.Errorf("join fanout group %d: %w", c.fanoutID, err)
	}
	return nil
}

// InterfaceLinkType returns the pcap link type capture reads from an
// interface (in the calling thread's network namespace).
func InterfaceLinkType(name string) (pkthdr.LinkType, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", name, err)
	}
	defer unix.Close(fd)
	_, lt, err := interfaceInfo(fd, name)
	return lt, err
}

// interfaceInfo returns the index and pcap link type of an interface.
func interfaceInfo(fd int, name string) (int, pkthdr.LinkType, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, 0, fmt.Errorf("interface %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, 0, fmt.Errorf("interface %q: %w", name, err)
	}
	index := int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, 0, fmt.Errorf("interface %q: hardware type: %w", name, err)
	}
	lt, ok := LinkTypeForARPHRD(ifr.Uint16())
	if !ok {
		return 0, 0, fmt.Errorf("interface %q: link type ARPHRD %d not supported", name, ifr.Uint16())
	}
	return index, lt, nil
}

// LinkType is the pcap link type of the frames Run hands to the sinks.
func (c *Capture) LinkType() pkthdr.LinkType { return c.linkType }

// Workers is the number of workers, and of sinks Run needs.
func (c *Capture) Workers() int { return len(c.workers) }

// Config returns the configuration in effect, defaults filled in.
func (c *Capture) Config() Config { return c.cfg }

// Run captures until ctx is cancelled or a sink fails, handing worker i's
// packets to sinks[i]. On cancel each worker stops taking new packets,
// hands every packet the kernel already accepted to its sink, and flushes
// it. The returned Stats are final; the error is the first sink or ring
// failure (the other workers are then stopped the same way). Run may be
// called once.
func (c *Capture) Run(ctx context.Context, sinks []Sink) (Stats, error) {
	if len(sinks) != len(c.workers) {
		return c.Stats(), fmt.Errorf("capture: %d sinks for %d workers", len(sinks), len(c.workers))
	}
	for i, s := range sinks {
		if s == nil {
			return c.Stats(), fmt.Errorf("capture: sink %d is nil", i)
		}
	}
	c.mu.Lock()
	if c.closed || c.started {
		c.mu.Unlock()
		return c.Stats(), errors.New("capture: Run called twice or after Close")
	}
	c.started = true
	c.runDone = make(chan struct{})
	defer close(c.runDone)
	c.mu.Unlock()
	defer context.AfterFunc(ctx, c.requestStop)()
	errs := make([]error, len(c.workers))
	var wg sync.WaitGroup
	for i, w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.runWorker(w, sinks[i]); err != nil {
				errs[i] = fmt.Errorf("capture on %s: worker %d: %w", c.cfg.Interface, i, err)
				c.requestStop()
			}
		}()
	}
	wg.Wait()
	return c.Stats(), errors.Join(errs...)
}

// requestStop tells every worker to finish: the flag is read between
// blocks and before a worker parks; an expired deadline wakes those parked.
func (c *Capture) requestStop() {
	c.stopOnce.Do(func() {
		c.stop.Store(true)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		for _, w := range c.workers {
			_ = w.file.SetReadDeadline(time.Now())
		}
	})
}

// runWorker is one worker's loop: walk every ready block, park when none
// is, flush when the link is quiet, and on stop drain what the kernel still
// holds.
func (c *Capture) runWorker(w *worker, sink Sink) error {
	ether := c.linkType == pkthdr.LinkEthernet
	snaplen := c.cfg.SnapLen
	frames := asFrameSink(sink)
	// Wake at least every second so the kernel's 32-bit counters are
	// collected long before they could wrap.
	idle := min(c.cfg.FlushInterval, time.Second)
	var (
		dirty     bool // packets handed over since the last Flush
		lastFlush = time.Now()
		lastStats = lastFlush
		stopping  bool
		walked    uint64
	)
	flush := func() error {
		dirty, lastFlush = false, time.Now()
		w.stats.flushes.Add(1)
		return sink.Flush()
	}
	for {
		if blk := w.block(w.cur); w.ready(blk) {
			res, err := walkBlock(blk, snaplen, ether, frames)
			w.release(blk)
			w.cur = (w.cur + 1) % w.nblocks
			w.stats.blocks.Add(1)
			w.stats.packets.Add(res.packets)
			w.stats.bytes.Add(res.bytes)
			if err != nil {
				return err
			}
			dirty = dirty || res.packets > 0
			if res.timedOut || stopping {
				now := time.Now()
				if now.Sub(lastStats) >= time.Second {
					w.readKernelStats()
					lastStats = now
				}
				if dirty && now.Sub(lastFlush) >= c.cfg.FlushInterval {
					if err := flush(); err != nil {
						return err
					}
				}
			} else if walked++; walked%64 == 0 && time.Since(lastStats) >= time.Second {
				// A busy link never lets the worker sleep: collect the
				// kernel's counters between blocks instead.
				w.readKernelStats()
				lastStats = time.Now()
			}
			continue
		}
		if !stopping && c.stop.Load() {
			// Take no new packets; what the kernel accepted already sits in
			// the ring or in the block it is filling, which its timer
			// retires within two block timeouts.
			stopping = true
			if err := attachFilter(w.fd, dropAll); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			idle = 2*c.cfg.BlockTimeout + 50*time.Millisecond
			continue
		}
		ready, err := w.wait(idle, stopping, &c.stop)
		if err != nil {
			return err
		}
		if ready {
			continue
		}
		// Quiet for a whole interval.
		if stopping {
			// Nothing left in the ring: the worker is done.
			w.readKernelStats()
			return flush()
		}
		if err := w.checkLink(); err != nil {
			return err
		}
		w.readKernelStats()
		lastStats = time.Now()
		if dirty {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// wait parks until the current block is ready or, unless draining, a stop
// is requested (true), or until timeout passes (false). The kernel wakes
// the socket each time it retires a block.
func (w *worker) wait(timeout time.Duration, draining bool, stop *atomic.Bool) (bool, error) {
	if err := w.file.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return false, fmt.Errorf("wait: %w", err)
	}
	woken := func() bool { return w.ready(w.block(w.cur)) || (!draining && stop.Load()) }
	err := w.rc.Read(func(uintptr) bool { return woken() })
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return woken(), nil
	}
	if err != nil {
		return false, fmt.Errorf("wait: %w", err)
	}
	return true, nil
}

func (w *worker) block(i int) []byte {
	return w.ring[i*w.blockSize : (i+1)*w.blockSize : (i+1)*w.blockSize]
}

// ready reports whether the kernel has handed the block to us. The atomic
// load orders the reads of the block after the kernel's writes.
func (w *worker) ready(blk []byte) bool {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&blk[blkStatus])))&statusUser != 0
}

// release hands the block back to the kernel, after all reads of it.
func (w *worker) release(blk []byte) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&blk[blkStatus])), statusKernel)
}

// readKernelStats adds the kernel's counters, which reset on every read.
func (w *worker) readKernelStats() {
	st, err := unix.GetsockoptTpacketStatsV3(w.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return
	}
	w.stats.kernelPackets.Add(uint64(st.Packets))
	w.stats.kernelDrops.Add(uint64(st.Drops))
	w.stats.freezeQCnt.Add(uint64(st.Freeze_q_cnt))
}

// checkLink reads (and clears) the socket's pending error. ENETDOWN means
// the interface went down: the kernel resumes delivery when it comes back
// up, so the worker counts it and carries on; any other error ends it.
func (w *worker) checkLink() error {
	errno, err := unix.GetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		return fmt.Errorf("socket error: %w", err)
	case errno == 0:
		return nil
	case errno == int(unix.ENETDOWN):
		w.stats.linkDowns.Add(1)
		return nil
	}
	return fmt.Errorf("socket error: %w", unix.Errno(errno))
}

// Stats returns the counters so far. Kernel counters are collected by the
// workers about once a second, so they may lag Packets by that much.
func (c *Capture) Stats() Stats {
	s := Stats{Workers: make([]Counters, len(c.workers))}
	for i, w := range c.workers {
		s.Workers[i] = w.stats.load()
		s.Total.add(s.Workers[i])
	}
	return s
}

// Close releases the sockets, rings and promiscuous mode. If Run is still
// going, Close stops it the way a cancel does and waits for it to return.
func (c *Capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if c.runDone != nil {
		c.mu.Unlock()
		c.requestStop()
		<-c.runDone
		c.mu.Lock()
	}
	c.closed = true
	var errs []error
	for _, w := range c.workers {
		errs = append(errs, w.close())
	}
	return errors.Join(errs...)
}

func (w *worker) close() error {
	var errs []error
	if w.ring != nil {
		errs = append(errs, unix.Munmap(w.ring))
		w.ring = nil
	}
	// Closing the socket also leaves promiscuous mode and the group.
	if w.file != nil {
		errs = append(errs, w.file.Close())
		w.file, w.fd = nil, -1
	} else if w.fd >= 0 {
		errs = append(errs, unix.Close(w.fd))
		w.fd = -1
	}
	return errors.Join(errs...)
}

func attachFilter(fd int, prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
}

func detachFilter(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
