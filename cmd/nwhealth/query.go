package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nwhealth/nwhealth/internal/outfile"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"query", newQueryCmd}) }

type queryOptions struct {
	streams
	stores []string
	remote remoteFlags
	sel    selectorFlags
	write  string
	stats  bool
	now    func() time.Time
}

func newQueryCmd(s streams) *cobra.Command {
	o := &queryOptions{streams: s, now: time.Now}
	cmd := &cobra.Command{
		Use:   "query --store DIR [selectors] -w FILE|-",
		Short: "Pull stored packets as a pcap stream in time order",
		Long: `Query writes the stored packets that match every given selector, in time
order, as a pcap stream (pcapng when the matches mix link types) that
tcpdump -r - and tshark -r - read. Repeated values of one selector are
alternatives (--host A --host B: either), and --host and --net together
are one address selector (--host A --net N: A or anything in N);
different selectors must all hold (an address AND a port).
--host, --net, --port, --proto and --vlan look through VLAN tags;
--filter is a tcpdump expression with exactly tcpdump's semantics.
Only the blocks the index names are read, so cost follows the matches.
An existing -w file is replaced by a new one with its permissions (a
program still reading it keeps the old contents); one with other links,
another owner or extended attributes is truncated in place instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runQuery(o) },
	}
	cmd.Flags().StringArrayVar(&o.stores, "store", nil, "store directory or s3://BUCKET/PREFIX (repeatable: stores are merged by time)")
	o.remote.registerRead(cmd.Flags())
	o.sel.register(cmd, true)
	cmd.Flags().StringVarP(&o.write, "write", "w", "", "output file, - for standard output")
	cmd.Flags().BoolVar(&o.stats, "stats", false, "print the packets, blocks read and bytes fetched from object stores on stderr")
	return cmd
}

func runQuery(o *queryOptions) error {
	if o.write == "" {
		return usagef("-w FILE or -w - is required")
	}
	if o.write == "-" && isTerminal(o.out) {
		return usagef("refusing to write a binary pcap to a terminal: redirect it or use -w FILE")
	}
	sel, err := o.sel.selector(o.now())
	if err != nil {
		return err
	}
	stores, err := openStores(context.Background(), o.stores, &o.remote)
	if err != nil {
		return err
	}
	if o.write != "-" {
		if err := outfile.CheckPath(o.write); err != nil {
			return usagef("-w %v: redirect it or name a file", err)
		}
		if err := store.CheckOutput(o.write, store.Locals(stores)); err != nil {
			return usageError{err}
		}
	}
	// The output is created (an existing file replaced or truncated) on a
	// goroutine of its own while the query is planned and run.
	var out *outfile.Writer
	if o.write == "-" {
		out = outfile.New(o.out)
	} else {
		out = outfile.Create(o.write)
	}
	defer out.Close()
	plan, err := store.PlanQuery(stores, sel)
	if err != nil {
		return err
	}
	defer plan.Close()

	emit, err := packetSink(out, plan)
	if err != nil {
		return err
	}
	var n uint64
	plan.Batch = true
	runErr := plan.RunRecords(func(r *store.Record) error {
		n += uint64(r.Count)
		return emit(r)
	})
	if err := out.Close(); err != nil {
		if errors.Is(err, outfile.ErrTerminal) {
			return usageError{err}
		}
		return fmt.Errorf("write output: %w", err)
	}
	var dmg *store.DamageError
	if runErr != nil && !errors.As(runErr, &dmg) {
		return runErr
	}
	if o.stats || isTerminal(o.errOut) {
		fmt.Fprintf(o.errOut, "%d packets from %d of %d blocks", n, plan.Scanned, plan.Total)
		var fetched, requests int64
		for _, st := range stores {
			if r, ok := st.(*store.Remote); ok {
				fetched += r.BytesRead.Load()
				requests += r.Requests.Load()
			}
		}
		if fetched > 0 || requests > 0 {
			fmt.Fprintf(o.errOut, "; %d bytes fetched from object stores in %d requests", fetched, requests)
		}
		fmt.Fprintln(o.errOut)
	}
	if n := sel.Filter.Unframed(); n > 0 {
		fmt.Fprintf(o.errOut, "nwhealth: %d PPP frames without HDLC framing (ff 03) were not matched by --filter: libpcap's programs read PPP after it; select them with --host, --net, --port or --proto\n", n)
	}
	if dmg != nil {
		for _, d := range dmg.Damage {
			fmt.Fprintln(o.errOut, "nwhealth: damaged:", d)
		}
		return partialError{fmt.Sprintf("%d damaged places skipped; everything else was delivered", len(dmg.Damage))}
	}
	return nil
}

// packetSink picks pcap for one link type, pcapng when the plan mixes them.
// Records stored at the output's precision are copied as they are.
func packetSink(w io.Writer, plan *store.Plan) (func(*store.Record) error, error) {
	lts := plan.LinkType
	snap := plan.Snaplen
	if snap == 0 {
		snap = pcapio.MaxPacket
	}
	if len(lts) <= 1 {
		lt := pkthdr.LinkEthernet
		if len(lts) == 1 {
			lt = lts[0]
		}
		pw, err := pcapio.NewWriter(w, lt, snap, plan.Nanos)
		if err != nil {
			return nil, err
		}
		return func(r *store.Record) error {
			if r.Nanos == plan.Nanos {
				_, err := w.Write(r.Raw)
				return err
			}
			return eachRecord(r, func(p pcapio.Packet) error { return pw.WritePacket(p.Timestamp, p.Data, p.OrigLen) })
		}, nil
	}
	nw, err := pcapio.NewNgWriter(w, lts, snap)
	if err != nil {
		return nil, err
	}
	ids := map[pkthdr.LinkType]int{}
	for i, lt := range lts {
		ids[lt] = i
	}
	return func(r *store.Record) error {
		return eachRecord(r, func(p pcapio.Packet) error { return nw.WritePacket(ids[p.LinkType], p.Timestamp, p.Data, p.OrigLen) })
	}, nil
}

// eachRecord calls fn for every packet of a record run.
func eachRecord(r *store.Record, fn func(pcapio.Packet) error) error {
	if r.Count <= 1 {
		return fn(r.Packet)
	}
	var err error
	perr := pcapio.Records(r.Raw, r.Packet.LinkType, r.Nanos, func(p pcapio.Packet) bool {
		err = fn(p)
		return err == nil
	})
	if err != nil {
		return err
	}
	return perr
}
