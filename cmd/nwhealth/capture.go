package main

// TEMPORARY first version of `nwhealth capture`, written by the capture
// engine's author against capture.Sink so the engine can be run and
// benchmarked before the store writer exists. It writes plain pcap (-w);
// the lead replaces the sink with the store's shard writers (--store).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/capture/livefilter"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newCaptureCmd) }

type captureOptions struct {
	s          streams
	iface      string
	write      string
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
}

func newCaptureCmd(s streams) *cobra.Command {
	opts := &captureOptions{s: s}
	cmd := &cobra.Command{
		Use:   "capture -i IFACE -w FILE [flags]",
		Short: "Record an interface through AF_PACKET rings",
		Long: `Capture records every packet seen on an interface through TPACKET_V3 rings,
one per worker, spread over the workers by flow hash (PACKET_FANOUT).

SIGINT or SIGTERM (or --duration) stops it: every packet the kernel already
accepted is written, then packets stored and kernel drops are printed.
A stats line goes to stderr every --stats-every.

This first version writes pcap (-w FILE; with several workers FILE.0,
FILE.1, ...); writing to a store comes with the store writer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.iface == "" {
				return usagef("capture: -i IFACE is required")
			}
			if opts.write == "" {
				return usagef("capture: -w FILE is required")
			}
			if opts.format != "table" && opts.format != "jsonl" {
				return usagef("capture: --format must be table or jsonl")
			}
			if _, err := parseSize(opts.ringSize); err != nil {
				return usagef("capture: --ring-size: %v", err)
			}
			return runCapture(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.iface, "interface", "i", "", "interface to capture on")
	f.StringVarP(&opts.write, "write", "w", "", "pcap file to write (temporary, until --store)")
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

func runCapture(ctx context.Context, opts *captureOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ring, err := parseSize(opts.ringSize)
	if err != nil {
		return usagef("capture: --ring-size: %v", err)
	}
	cfg := capture.Config{
		Interface:   opts.iface,
		Workers:     opts.workers,
		SnapLen:     opts.snaplen,
		RingSize:    ring,
		Promiscuous: !opts.noPromisc,
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
		return err
	}
	defer c.Close()

	sinks := make([]capture.Sink, c.Workers())
	var files []*pcapFileSink
	defer func() {
		for _, f := range files {
			f.close()
		}
	}()
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
				writeCaptureStats(opts, "capture_progress", now, st, &prev, now.Sub(prevAt))
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
	writeCaptureStats(opts, "capture_summary", time.Now(), st, nil, 0)
	return errors.Join(runErr, closeErr)
}

// writeCaptureStats prints a stats line: on stderr for people, or a JSON
// object on stdout with --format jsonl.
func writeCaptureStats(opts *captureOptions, typ string, now time.Time, st capture.Stats, prev *capture.Counters, dt time.Duration) {
	t := st.Total
	if opts.format == "jsonl" {
		workers := make([]map[string]uint64, len(st.Workers))
		for i, w := range st.Workers {
			workers[i] = map[string]uint64{"packets": w.Packets, "kernel_drops": w.KernelDrops}
		}
		_ = json.NewEncoder(opts.s.out).Encode(map[string]any{
			"type": typ, "time": now.UTC().Format(time.RFC3339), "interface": opts.iface,
			"packets": t.Packets, "bytes": t.Bytes, "kernel_packets": t.KernelPackets,
			"kernel_drops": t.KernelDrops, "freeze_queue": t.FreezeQueue, "workers": workers,
		})
		return
	}
	if prev == nil {
		fmt.Fprintf(opts.s.errOut, "%d packets stored (%d bytes), %d dropped by the kernel\n", t.Packets, t.Bytes, t.KernelDrops)
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
