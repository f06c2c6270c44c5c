// Command capcost feeds a fixed flood of small frames through capture's
// store path exactly as a capture worker runs it: ring blocks laid out as
// the kernel fills them (pkg/capture/ringtest), the worker's block walk,
// and the store sink capture uses (pkg/capture/capstore: header parsing,
// index, flow records, block framing, zstd, shard files). It is the fixed
// input for counting instructions per packet (scripts/capcost.sh runs it
// under valgrind's cachegrind at two sizes and takes the difference, so
// start-up and the final seal cancel out), a measure that does not depend
// on what else the machine is doing. It runs with capture's runtime
// settings (capstore.SetRuntime: a scheduler thread per worker, capture's
// GOGC), so its CPU seconds are comparable with a capture's.
//
//	capcost -mode store -flows 64 -packets 2000000 -dir DIR
//	capcost -mode gen ...      only lay out the frames (subtracted)
//	capcost -pcap FILE ...     write the same frames as a pcap (for tcpdump)
//	capcost -workers 2 ...     two workers, each its own frames and writer:
//	                           the rate they store together, against one's
//	capcost -gap 1700ns -jitter 40ns ...
//	                           time stamps spaced and varying as the live
//	                           bench's are (the default, an even 500 ns,
//	                           codes cheaper)
//
// It lives outside cmd/ so the product binary carries no generator.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/capture/capstore"
	"github.com/nwhealth/nwhealth/pkg/capture/ringtest"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/store"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	mode      string
	flows     int
	packets   uint64
	frameLen  int
	dir, pcap string
	blockSize int
	maxFlows  int
	profile   string
	workers   int
	ring      int
	gap       time.Duration
	jitter    time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("capcost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.mode, "mode", "store", "gen (lay out frames only), walk (and walk the blocks into a counting sink) or store")
	fs.IntVar(&o.flows, "flows", 64, "source ports to cycle over; 0: a new flow in every frame")
	fs.Uint64Var(&o.packets, "packets", 1_000_000, "frames to send (rounded up to whole ring blocks)")
	fs.IntVar(&o.frameLen, "frame", 64, "bytes per frame")
	fs.StringVar(&o.dir, "dir", "", "store directory (mode store)")
	fs.StringVar(&o.pcap, "pcap", "", "write the frames to this pcap file instead (microsecond, as tcpdump -w)")
	fs.IntVar(&o.blockSize, "block", 1<<20, "ring block size")
	fs.IntVar(&o.maxFlows, "maxflows", 0, "flow table bound (0: capture's); a smaller one reaches a flood's steady state sooner")
	fs.IntVar(&o.workers, "workers", 1, "capture workers, each with its own frames and store writer (one goroutine each)")
	fs.IntVar(&o.ring, "ring", ringBlocks, "ring blocks cycled over: the default few stay in cache; 256 (of 1 MiB) stream through it as a live capture's ring does, evicting the flow and index tables a flood touches")
	fs.DurationVar(&o.gap, "gap", 500*time.Nanosecond, "time between frames' time stamps")
	fs.DurationVar(&o.jitter, "jitter", 0, "add a fixed pseudo-random offset below this to each time stamp, as live time stamps vary (at most -gap)")
	fs.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the run here: where the time goes, cache misses included, which instruction counts do not show")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			fmt.Fprintln(stderr, "capcost:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "capcost:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if o.workers < 1 {
		o.workers = 1
	}
	if o.ring < 1 {
		o.ring = 1
	}
	if o.gap <= 0 || o.jitter < 0 || o.jitter > o.gap {
		fmt.Fprintln(stderr, "capcost: want -gap above 0 and -jitter from 0 to -gap")
		return 2
	}
	// Capture's scheduler threads and collector setting, so that CPU
	// seconds measured here are a capture's.
	capstore.SetRuntime(o.workers)
	if o.mode == "store" && o.dir == "" && o.pcap == "" {
		fmt.Fprintln(stderr, "capcost: -mode store needs -dir")
		return 2
	}
	var err error
	if o.pcap != "" {
		err = writePcap(o)
	} else {
		err = feed(o, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "capcost:", err)
		return 1
	}
	return 0
}

// start is the flood's first time stamp.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// ringBlocks is how many blocks the replayed ring has: a few, so that the
// blocks stay in cache as a busy ring's next blocks are not, roughly.
const ringBlocks = 4

func feed(o options, stdout io.Writer) error {
	var st *store.Store
	if o.mode == "store" {
		var err error
		if st, err = store.Create(o.dir); err != nil {
			return err
		}
		lk, err := store.AcquireLock(o.dir)
		if err != nil {
			return err
		}
		defer lk.Release()
	}
	// Each worker feeds its own frames to its own writer, as capture's
	// workers do behind a fanout group: with -workers 2 on two cores the
	// rate shows how the store path scales without a generator sharing
	// the cores.
	res := make([]result, o.workers)
	errs := make([]error, o.workers)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = worker(o, st, i)
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var n uint64
	for _, r := range res {
		n += r.packets
		if r.stats != nil {
			s := r.stats
			fmt.Fprintf(stdout, "%d packets, %d blocks, %d bytes raw, %d stored, %d shards, %d flows evicted, %d unrecorded\n",
				s.StoredPackets, s.Blocks, s.StoredRaw, s.Stored, s.Sealed, s.FlowsEvicted, s.FlowsUnrecorded)
		}
	}
	fmt.Fprintf(stdout, "%d packets, %d workers, %.3f s: %.2f Mpps\n", n, o.workers, wall.Seconds(), float64(n)/wall.Seconds()/1e6)
	return nil
}

type result struct {
	packets uint64
	stats   *store.WriterStats
}

// worker runs one capture worker's walk over o.packets frames into its
// store writer (or a counting sink).
func worker(o options, st *store.Store, id int) (result, error) {
	fl := newFlood(o)
	ring := make([][]byte, o.ring)
	for i := range ring {
		ring[i] = fl.Block(o.blockSize)
	}
	var sink capture.Sink = &countSink{}
	var w *store.Writer
	if st != nil {
		s, err := capstore.NewWriter(st, pkthdr.LinkEthernet, capstore.Options{
			Worker: id, Snaplen: capture.DefaultSnapLen, ShardSize: 256 << 20, Flush: 250 * time.Millisecond, MaxFlows: o.maxFlows,
		})
		if err != nil {
			return result{}, err
		}
		sink, w = s, s.Writer
	}
	var n uint64
	for i := 0; n < o.packets; i++ {
		blk := ring[i%len(ring)]
		n += uint64(fl.Fill(blk))
		if o.mode == "gen" {
			continue
		}
		if _, err := capture.WalkBlock(blk, capture.DefaultSnapLen, true, sink); err != nil {
			return result{}, err
		}
		ringtest.SetStatus(blk, 0)
	}
	if w == nil {
		return result{packets: n}, nil
	}
	if err := w.Close(); err != nil {
		return result{}, err
	}
	s := w.Stats()
	return result{packets: n, stats: &s}, nil
}

// newFlood is the generator of o's frames.
func newFlood(o options) *ringtest.Flood {
	fl := ringtest.NewFlood(o.flows, o.frameLen, start)
	fl.Gap, fl.Jitter = o.gap, o.jitter
	return fl
}

// countSink counts what the walk hands over.
type countSink struct{ n, bytes int }

func (s *countSink) WritePacket(_ time.Time, data []byte, _ int) error {
	s.n++
	s.bytes += len(data)
	return nil
}

func (s *countSink) Flush() error { return nil }

// writePcap writes the frames feed would send, rounded up the same way.
func writePcap(o options) error {
	fl := newFlood(o)
	perBlock := uint64((o.blockSize - ringtest.HeaderSize) / ringtest.Stride(o.frameLen))
	total := (o.packets + perBlock - 1) / perBlock * perBlock
	f, err := os.Create(o.pcap)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	pw, err := pcapio.NewWriter(bw, pkthdr.LinkEthernet, capture.DefaultSnapLen, false)
	if err != nil {
		f.Close()
		return err
	}
	for i := range total {
		fr := fl.Frame(i)
		if err := pw.WritePacket(fl.Time(i), fr, len(fr)); err != nil {
			f.Close()
			return err
		}
	}
	return errors.Join(bw.Flush(), f.Close())
}
