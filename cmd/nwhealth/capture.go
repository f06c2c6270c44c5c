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
	"sync"
	"syscall"
	"time"

	"github.com/nwhealth/nwhealth/internal/filemode"
	"github.com/nwhealth/nwhealth/internal/safepath"
	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/capture/capstore"
	"github.com/nwhealth/nwhealth/pkg/capture/livefilter"
	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
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
	upload     uploadFlags
	// --flows-to: the flow database each sealed shard's records go to.
	flowsTo string
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
-w FILE writes plain pcap instead of a store (FILE.N per worker).

--store s3://BUCKET/PREFIX records into a local spool (--spool) and
uploads each shard as it seals, under --sensor's prefix. While the object
store is down, capture goes on into the spool and uploads retry with
backoff; past --spool-max the oldest waiting shards are dropped, counted
and named. --max-size and --max-age then apply to the sensor's
partitions in the bucket. At the end capture waits --upload-wait for the
uploads left; what is still waiting stays in the spool for the next run
(exit 1).

--flows-to clickhouse://HOST:PORT/DB ships each sealed shard's flow records
to ClickHouse as it seals (docs/format/clickhouse.md), under --sensor's
name. While the database is unreachable the stores keep everything (with
an s3:// store, the bucket keeps what the spool uploaded); shipping resumes
by itself, and a capture starting on a store exports whatever an earlier
one could not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCapture(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.iface, "interface", "i", "", "interface to capture on")
	f.StringArrayVar(&opts.stores, "store", nil, "store directory or s3://BUCKET/PREFIX (repeatable: shards spread over stores by worker)")
	opts.upload.register(f, time.Minute)
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
	f.StringVar(&opts.flowsTo, "flows-to", "", "ship each sealed shard's flow records to this ClickHouse database (clickhouse://HOST:PORT/DB)")
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
	urls := 0
	for _, s := range opts.stores {
		if objstore.IsURL(s) {
			urls++
		}
	}
	if urls > 1 && opts.upload.spool != "" {
		return usagef("capture: --spool names the spool of one s3:// store; with several, each gets its default spool")
	}
	if len(opts.stores) > 0 {
		if opts.shardLen, err = parseSize(opts.shardSize); err != nil || opts.shardLen < 1<<20 {
			return usagef("capture: --shard-size %q: want at least 1M", opts.shardSize)
		}
	}
	if opts.flowsTo != "" {
		if len(opts.stores) == 0 {
			return usagef("capture: --flows-to needs --store (flow records are built with the shards)")
		}
		if _, err := flowdb.ParseURL(opts.flowsTo, nil); err != nil {
			return usageError{err}
		}
		if _, err := opts.upload.sensorName(); err != nil {
			return err
		}
	}
	return nil
}

func runCapture(ctx context.Context, opts *captureOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Stats, retention and flow shipping write to stderr from their own
	// goroutines.
	opts.s.errOut = &lockedWriter{w: opts.s.errOut}
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
	capstore.SetRuntime(c.Workers())

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
		if opts.flowsTo != "" {
			if ss.ship, err = newShipper(opts, ss); err != nil {
				return err
			}
		}
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
	if ss != nil && ss.ship != nil {
		shipped, err := ss.ship.Close(30 * time.Second)
		fmt.Fprintf(opts.s.errOut, "flows shipped: %d shards (%d records)\n", shipped.Shards, shipped.Records)
		if err != nil {
			// The capture itself succeeded: the store has every record, and
			// the next capture or flows --export ships the rest.
			fmt.Fprintf(opts.s.errOut, "nwhealth: flows of some shards not shipped (the next capture or flows --export sends them): %v\n", err)
		}
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

// newShipper starts shipping sealed shards' flows to --flows-to, under
// --sensor's name. An s3:// store's shards are read from its spool and,
// once uploaded (and gone from the spool), from the bucket: only this
// sensor's there.
func newShipper(opts *captureOptions, ss *storeSinks) (*pipeline.Shipper, error) {
	name, err := opts.upload.sensorName()
	if err != nil {
		return nil, err
	}
	cfg, err := flowDBConfig("--flows-to", opts.flowsTo, opts.upload.ca, opts.s.errOut, "capture")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	remotes := make([]*store.Remote, len(opts.stores))
	var warned bool
	stores := func(ctx context.Context) []store.Reader {
		mu.Lock()
		defer mu.Unlock()
		var out []store.Reader
		for i, d := range opts.stores {
			out = append(out, ss.stores[i])
			if !objstore.IsURL(d) {
				continue
			}
			if remotes[i] == nil {
				r, err := store.OpenRemote(d, store.RemoteOptions{Config: opts.upload.config(), Sensors: []string{name}, CacheDir: opts.upload.cache, Context: ctx})
				if err != nil {
					if !warned {
						fmt.Fprintf(opts.s.errOut, "nwhealth: flows of shards uploaded to %s wait until it answers: %v\n", d, err)
						warned = true
					}
					continue
				}
				remotes[i] = r
			}
			out = append(out, remotes[i])
		}
		return out
	}
	sh := &pipeline.Shipper{
		Connect: func(ctx context.Context) (pipeline.ShardSink, error) {
			db, err := openFlowDB(ctx, cfg)
			if err != nil {
				return nil, err
			}
			if err := db.Ensure(ctx, 0); err != nil {
				db.Close()
				return nil, err
			}
			return db, nil
		},
		Export: pipeline.Exporter{Sensor: name},
		Stores: stores,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(opts.s.errOut, "nwhealth: "+format+"\n", args...)
		},
	}
	// Its own context: a stopped capture still ships its last shards (Close).
	sh.Start(context.Background())
	return sh, nil
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// storeSinks are one store writer per capture worker.
type storeSinks struct {
	ups     []*store.Uploader // per store: nil for a local one
	wait    time.Duration
	stores  []*store.Store // per store: the local one, or the spool of an s3:// one
	ship    *pipeline.Shipper
	locks   []*store.Lock
	writers []*store.Writer
	sinks   []capture.Sink
	closed  bool
}

func openStoreSinks(opts *captureOptions, c *capture.Capture) (*storeSinks, error) {
	ret, shardSize := opts.retention, opts.shardLen
	ss := &storeSinks{}
	var stores []*store.Store
	// An object store is written through a spool of its own, a local
	// store like the others, and uploaded from there.
	dirs := append([]string(nil), opts.stores...)
	uos := make([]store.UploadOptions, len(dirs))
	ss.ups = make([]*store.Uploader, len(dirs))
	for i, d := range dirs {
		if !objstore.IsURL(d) {
			continue
		}
		var err error
		if uos[i], dirs[i], err = opts.upload.prepare(d, "capture"); err != nil {
			return nil, err
		}
		uos[i].Retention, uos[i].Log = ret, opts.s.errOut
		ss.wait = opts.upload.uploadWait
	}
	for _, dir := range dirs {
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
	ss.stores = stores
	for i, uo := range uos {
		if uo.Sensor == "" {
			continue
		}
		up, err := store.NewUploader(stores[i], opts.stores[i], uo)
		if err != nil {
			ss.abort()
			return nil, err
		}
		ss.ups[i] = up
		if err := up.Start(); err != nil {
			ss.abort()
			return nil, err
		}
	}
	var retMu sync.Mutex
	for i := 0; i < c.Workers(); i++ {
		st, up := stores[i%len(stores)], ss.ups[i%len(stores)]
		sink, err := capstore.NewWriter(st, c.LinkType(), capstore.Options{
			Worker:    i,
			Snaplen:   uint32(c.Config().SnapLen),
			ShardSize: shardSize,
			Flush:     opts.flush,
			OnSeal: func(sf store.ShardFile) {
				if up != nil {
					up.Add(sf)
				} else {
					retMu.Lock()
					if _, err := ret.Apply(st); err != nil {
						fmt.Fprintln(opts.s.errOut, "nwhealth: retention:", err)
					}
					retMu.Unlock()
				}
				if ss.ship != nil {
					ss.ship.Kick()
				}
			},
		})
		if err != nil {
			ss.abort()
			return nil, err
		}
		ss.writers = append(ss.writers, sink.Writer)
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
	for _, up := range ss.ups {
		if up != nil {
			uerr := up.Close(ss.wait)
			printUpload(errOut, up.Location(), up.Stats())
			err = errors.Join(err, uerr)
		}
	}
	for _, l := range ss.locks {
		l.Release()
	}
	return err
}

func (ss *storeSinks) abort() {
	ss.wait = 0
	ss.close(io.Discard)
}

// flowCounts are the store writers' counts of flows a full flow table
// ended early, and of the one-packet flows left without a record once a
// table had been full (evicted, timed out or open at a seal); and of a
// monitor interface's 802.11 frames by kind.
type flowCounts struct {
	evicted, unrecorded uint64
	wifi                [pkthdr.WiFiOther + 1]uint64
}

func (ss *storeSinks) flowCounts() flowCounts {
	var c flowCounts
	for _, w := range ss.writers {
		st := w.Stats()
		c.evicted += st.FlowsEvicted
		c.unrecorded += st.FlowsUnrecorded
		for k, n := range st.WiFi {
			c.wifi[k] += n
		}
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
		if line := wifiSummary(fl.wifi); line != "" {
			fmt.Fprintln(opts.s.errOut, line)
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
	// Captured packets: not through another user's link in /tmp, and
	// nobody else's to read (filemode).
	if err := safepath.CheckLinks(name); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filemode.ForPath(name))
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
