package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/capture/capstore"
	"github.com/nwhealth/nwhealth/pkg/capture/livefilter"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"capture", newCaptureCmd}) }

type captureOptions struct {
	s          streams
	iface      string
	stores     []string
	write      string
	maxSize    string
	maxAge     string
	shardSize  string
	flush      time.Duration
	snaplen    int
	workers    int
	ringSize   string
	duration   time.Duration
	filter     string
	noPromisc  bool
	statsEvery time.Duration
	format     string
	// ready, when set, is called once the sockets are open (tests).
	ready func()

	// Parsed by validate.
	ring      int64
	retention store.Retention
	shardLen  int64
}

func newCaptureCmd(s streams) *cobra.Command {
	opts := &captureOptions{s: s}
	cmd := &cobra.Command{
		Use:   "capture --store DIR -i IFACE [flags]",
		Short: "Record an interface into a store (AF_PACKET TPACKET_V3 rings, fanout)",
		Long: `Capture records every packet seen on an interface through TPACKET_V3 rings,
one per worker, spread over the workers by flow hash (PACKET_FANOUT), into
the store's indexed, compressed shards with flow records. Each worker writes
its own shards; with several --store directories, worker i writes to store
i mod n, so shards spread over disks by flow hash. Packets are queryable
within --flush of their arrival.

SIGINT or SIGTERM (or --duration) stops it: every packet the kernel already
accepted is stored, open shards are sealed, and packets stored and kernel
drops are printed (exit 0). A stats line goes to stderr every --stats-every.
A full disk stops the capture: what was written is sealed, exit 5.
-w FILE writes plain pcap instead of a store (FILE.N per worker).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCapture(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.iface, "interface", "i", "", "interface to capture on")
	f.StringArrayVar(&opts.stores, "store", nil, "store directory (repeatable: shards spread over stores by worker)")
	f.StringVarP(&opts.write, "write", "w", "", "write plain pcap to this file instead of a store")
	f.StringVar(&opts.maxSize, "max-size", "", "delete the oldest sealed shards beyond this size per store (e.g. 2T)")
	f.StringVar(&opts.maxAge, "max-age", "", "delete sealed shards older than this (e.g. 30d)")
	f.StringVar(&opts.shardSize, "shard-size", "256M", "raw bytes per shard before it is sealed")
	f.DurationVar(&opts.flush, "flush", 250*time.Millisecond, "longest a packet waits before it is written (and queryable)")
	f.IntVarP(&opts.snaplen, "snaplen", "s", capture.DefaultSnapLen, "bytes kept of each packet")
	f.IntVar(&opts.workers, "workers", 1, "capture workers (sockets in a fanout group)")
	f.StringVar(&opts.ringSize, "ring-size", "256MiB", "kernel ring memory for all workers together")
	f.DurationVar(&opts.duration, "duration", 0, "stop after this long (0: until interrupted)")
	f.StringVar(&opts.filter, "filter", "", "tcpdump filter expression, run in the kernel")
	f.BoolVar(&opts.noPromisc, "no-promisc", false, "do not put the interface in promiscuous mode")
	f.DurationVar(&opts.statsEvery, "stats-every", 5*time.Second, "interval of the stats line on stderr (0: none)")
	f.StringVar(&opts.format, "format", "table", "stats output: table (lines for people) or jsonl")
	return cmd
}

// validate checks every flag before anything is opened: a bad value is a
// usage error (exit 2) even where opening the interface would fail first.
func (opts *captureOptions) validate() error {
	if opts.iface == "" {
		return usagef("capture: -i IFACE is required")
	}
	if (opts.write == "") == (len(opts.stores) == 0) {
		return usagef("capture: give --store DIR (or -w FILE for plain pcap)")
	}
	if opts.format != "table" && opts.format != "jsonl" {
		return usagef("capture: --format must be table or jsonl")
	}
	if opts.workers < 1 || opts.workers > capture.MaxWorkers {
		return usagef("capture: --workers %d: want 1 to %d", opts.workers, capture.MaxWorkers)
	}
	if opts.snaplen < 1 || opts.snaplen > capture.MaxSnapLen {
		return usagef("capture: --snaplen %d: want 1 to %d", opts.snaplen, capture.MaxSnapLen)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--flush", opts.flush}, {"--duration", opts.duration}, {"--stats-every", opts.statsEvery}} {
		if d.v < 0 {
			return usagef("capture: %s %v: want zero or a positive length", d.name, d.v)
		}
	}
	var err error
	if opts.ring, err = parseSize(opts.ringSize); err != nil {
		return usagef("capture: --ring-size: %v", err)
	}
	if opts.retention.MaxSize, err = parseSize(opts.maxSize); err != nil {
		return usagef("capture: --max-size: %v", err)
	}
	if opts.maxAge != "" {
		if opts.retention.MaxAge, err = parseAge("capture: --max-age", opts.maxAge); err != nil {
			return err
		}
	}
	if len(opts.stores) > 0 {
		if opts.shardLen, err = parseSize(opts.shardSize); err != nil || opts.shardLen < 1<<20 {
			return usagef("capture: --shard-size %q: want at least 1M", opts.shardSize)
		}
	}
	return nil
}

func runCapture(ctx context.Context, opts *captureOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := opts.validate(); err != nil {
		return err
	}
	cfg := capture.Config{
		Interface:   opts.iface,
		Workers:     opts.workers,
		SnapLen:     opts.snaplen,
		RingSize:    opts.ring,
		Promiscuous: !opts.noPromisc,
	}
	if opts.flush > 0 {
		cfg.FlushInterval = opts.flush
	}
	if opts.filter != "" {
		prog, _, err := livefilter.Compile(opts.iface, opts.snaplen, opts.filter)
		if err != nil {
			return usagef("capture: %v", err)
		}
		cfg.Filter = prog
	}
	c, err := capture.Open(cfg)
	if err != nil {
		return liveOpenError(err)
	}
	defer c.Close()
	// One scheduler thread per worker: the workers do all the heavy work
	// (ring walk, headers, index, flows and compression inline), and with
	// more, idle threads spin looking for work each time a worker hands a
	// block to its writer: 40 % more CPU per packet in the benchmark. The
	// GOMAXPROCS variable still overrides.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(c.Workers())
	}

	sinks := make([]capture.Sink, c.Workers())
	var files []*pcapFileSink
	defer func() {
		for _, f := range files {
			f.close()
		}
	}()
	var ss *storeSinks
	if len(opts.stores) > 0 {
		if ss, err = openStoreSinks(opts, c); err != nil {
			return err
		}
		defer ss.abort()
		copy(sinks, ss.sinks)
	} else {
		for i := range sinks {
			name := opts.write
			if len(sinks) > 1 {
				name = fmt.Sprintf("%s.%d", opts.write, i)
			}
			f, err := newPcapFileSink(name, c)
			if err != nil {
				return err
			}
			files = append(files, f)
			sinks[i] = f
		}
	}

	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	if opts.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.duration)
		defer cancel()
	}
	cc := c.Config()
	fmt.Fprintf(opts.s.errOut, "capturing on %s (link type %d), %d workers, ring %d MiB, snaplen %d\n",
		opts.iface, c.LinkType(), c.Workers(), cc.RingSize>>20, cc.SnapLen)
	if opts.ready != nil {
		opts.ready()
	}

	statsDone := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		if opts.statsEvery <= 0 {
			<-statsDone
			return
		}
		t := time.NewTicker(opts.statsEvery)
		defer t.Stop()
		prev, prevAt := capture.Counters{}, time.Now()
		for {
			select {
			case <-statsDone:
				return
			case now := <-t.C:
				st := c.Stats()
				writeCaptureStats(opts, jsonl.TypeCaptureProgress, now, st, &prev, now.Sub(prevAt), flowCounts{})
				prev, prevAt = st.Total, now
			}
		}
	}()
	st, runErr := c.Run(ctx, sinks)
	close(statsDone)
	<-tickerDone
	var closeErr error
	for _, f := range files {
		closeErr = errors.Join(closeErr, f.close())
	}
	files = nil
	if ss != nil {
		// Seal every open shard, even after a write failure: what reached
		// the disk stays valid.
		closeErr = errors.Join(closeErr, ss.close(opts.s.errOut))
	}
	var fl flowCounts
	if ss != nil {
		fl = ss.flowCounts()
	}
	writeCaptureStats(opts, jsonl.TypeCaptureSummary, time.Now(), st, nil, 0, fl)
	if errors.Is(runErr, syscall.ENOSPC) || errors.Is(closeErr, syscall.ENOSPC) {
		return fmt.Errorf("capture stopped, shards sealed: %w", syscall.ENOSPC)
	}
	return errors.Join(runErr, closeErr)
}

// storeSinks are one store writer per capture worker.
type storeSinks struct {
	locks   []*store.Lock
	writers []*store.Writer
	sinks   []capture.Sink
	closed  bool
}

func openStoreSinks(opts *captureOptions, c *capture.Capture) (*storeSinks, error) {
	ret, shardSize := opts.retention, opts.shardLen
	ss := &storeSinks{}
	var stores []*store.Store
	for _, dir := range opts.stores {
		st, err := store.Create(dir)
		if err != nil {
			ss.abort()
			return nil, err
		}
		lk, err := store.AcquireLock(dir)
		if err != nil {
			ss.abort()
			return nil, err
		}
		ss.locks = append(ss.locks, lk)
		reps, err := st.Recover(pipeline.NewFlowTable)
		if err != nil {
			fmt.Fprintln(opts.s.errOut, "nwhealth: recovery:", err)
		}
		for _, r := range reps {
			reportRecovery(opts.s.errOut, r)
		}
		stores = append(stores, st)
	}
	var retMu sync.Mutex
	for i := 0; i < c.Workers(); i++ {
		st := stores[i%len(stores)]
		sink, err := capstore.NewWriter(st, c.LinkType(), capstore.Options{
			Worker:    i,
			Snaplen:   uint32(c.Config().SnapLen),
			ShardSize: shardSize,
			Flush:     opts.flush,
			OnSeal: func(store.ShardFile) {
				retMu.Lock()
				defer retMu.Unlock()
				if _, err := ret.Apply(st); err != nil {
					fmt.Fprintln(opts.s.errOut, "nwhealth: retention:", err)
				}
			},
		})
		if err != nil {
			ss.abort()
			return nil, err
		}
		ss.writers = append(ss.writers, sink.W)
		ss.sinks = append(ss.sinks, sink)
	}
	return ss, nil
}

// close seals every writer's shards and releases the locks.
func (ss *storeSinks) close(errOut io.Writer) error {
	if ss.closed {
		return nil
	}
	ss.closed = true
	var err error
	for _, w := range ss.writers {
		err = errors.Join(err, w.Close())
	}
	for _, l := range ss.locks {
		l.Release()
	}
	return err
}

func (ss *storeSinks) abort() { ss.close(io.Discard) }

// flowCounts are the store writers' counts of flows a full flow table
// ended early, and of the one-packet flows left without a record once a
// table had been full (evicted, timed out or open at a seal).
type flowCounts struct{ evicted, unrecorded uint64 }

func (ss *storeSinks) flowCounts() flowCounts {
	var c flowCounts
	for _, w := range ss.writers {
		st := w.Stats()
		c.evicted += st.FlowsEvicted
		c.unrecorded += st.FlowsUnrecorded
	}
	return c
}

// writeCaptureStats prints a stats line: on stderr for people, or a JSON
// object on stdout with --format jsonl.
func writeCaptureStats(opts *captureOptions, typ string, now time.Time, st capture.Stats, prev *capture.Counters, dt time.Duration, fl flowCounts) {
	t := st.Total
	if opts.format == "jsonl" {
		rec := jsonl.Capture{Type: typ, Time: now.UTC().Format(time.RFC3339), Interface: opts.iface,
			Packets: t.Packets, Bytes: t.Bytes, KernelPackets: t.KernelPackets, KernelDrops: t.KernelDrops,
			FreezeQueue: t.FreezeQueue, Workers: []jsonl.CaptureWorker{},
			FlowsEvicted: fl.evicted, FlowsUnrecorded: fl.unrecorded}
		for _, w := range st.Workers {
			rec.Workers = append(rec.Workers, jsonl.CaptureWorker{Packets: w.Packets, KernelDrops: w.KernelDrops})
		}
		_ = json.NewEncoder(opts.s.out).Encode(rec)
		return
	}
	if prev == nil {
		fmt.Fprintf(opts.s.errOut, "%d packets stored (%d bytes), %d dropped by the kernel\n", t.Packets, t.Bytes, t.KernelDrops)
		if fl.evicted > 0 {
			fmt.Fprintf(opts.s.errOut, "flow tables full: %d flows ended early, %d one-packet flows without a flow record; their packets are stored\n",
				fl.evicted, fl.unrecorded)
		}
		if len(st.Workers) > 1 {
			for i, w := range st.Workers {
				fmt.Fprintf(opts.s.errOut, "  worker %d: %d packets, %d dropped\n", i, w.Packets, w.KernelDrops)
			}
		}
		return
	}
	rate := float64(t.Packets-prev.Packets) / dt.Seconds()
	fmt.Fprintf(opts.s.errOut, "%s  %d packets (%.0f/s), %d dropped by the kernel\n",
		now.Format("15:04:05"), t.Packets, rate, t.KernelDrops)
}

// pcapFileSink is the temporary sink: a buffered pcap file per worker.
type pcapFileSink struct {
	f  *os.File
	bw *bufio.Writer
}

func newPcapFileSink(name string, c *capture.Capture) (*pcapFileSink, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := pcapio.NewWriter(bw, c.LinkType(), uint32(c.Config().SnapLen), true); err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %s: %w", name, err)
	}
	return &pcapFileSink{f: f, bw: bw}, nil
}

func (s *pcapFileSink) WritePacket(ts time.Time, data []byte, origLen int) error {
	// Build the record straight in bufio's free space: one copy of the
	// packet, from the ring into the buffer.
	if s.bw.Available() < 16+len(data) {
		if err := s.bw.Flush(); err != nil {
			return err
		}
	}
	_, err := s.bw.Write(pcapio.AppendRecord(s.bw.AvailableBuffer(), ts, data, origLen, true))
	return err
}

func (s *pcapFileSink) Flush() error { return s.bw.Flush() }

func (s *pcapFileSink) close() error {
	if s.f == nil {
		return nil
	}
	err := errors.Join(s.bw.Flush(), s.f.Close())
	s.f = nil
	return err
}
