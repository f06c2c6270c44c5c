package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"store", newStoreCmd}) }

func newStoreCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Describe, verify or repair a store",
		// Runnable with no arguments, so that cobra checks them: a
		// misspelt subcommand is an unknown command (exit 2), not help.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2 // cobra sets it only when it suggests itself
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("store needs a subcommand: info, repair or push")
		},
	}
	cmd.AddCommand(newStoreInfoCmd(s), newStoreRepairCmd(s), newStorePushCmd(s))
	return cmd
}

type storeInfoOptions struct {
	streams
	stores []string
	remote remoteFlags
	verify bool
	shards bool
	format string
}

func newStoreInfoCmd(s streams) *cobra.Command {
	o := &storeInfoOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "info --store DIR [--verify]",
		Short: "Shards, time span, packets, raw vs stored bytes, index size, damage",
		Long: `Info summarises a store. --verify reads every block, index and flow
file and checks their checksums and structure; damage is listed and the
exit status is 3.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runStoreInfo(o) },
	}
	cmd.Flags().StringArrayVar(&o.stores, "store", nil, "store directory or s3://BUCKET/PREFIX (repeatable)")
	o.remote.registerRead(cmd.Flags())
	cmd.Flags().BoolVar(&o.verify, "verify", false, "read and check every block, index and flow file")
	cmd.Flags().BoolVar(&o.shards, "shards", false, "list every shard")
	cmd.Flags().StringVar(&o.format, "format", "table", "table or jsonl")
	return cmd
}

func runStoreInfo(o *storeInfoOptions) error {
	if o.format != "table" && o.format != "jsonl" {
		return usagef("--format must be table or jsonl")
	}
	stores, err := openStores(context.Background(), o.stores, &o.remote)
	if err != nil {
		return err
	}
	var damage int
	for _, st := range stores {
		rep, err := st.Info(o.verify)
		if err != nil {
			return err
		}
		damage += len(rep.Damage)
		if o.format == "jsonl" {
			printInfoJSON(o, st.Location(), rep)
		} else {
			printInfoTable(o, st.Location(), rep)
		}
	}
	if damage > 0 {
		return partialError{fmt.Sprintf("%d damaged places found", damage)}
	}
	return nil
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func printInfoTable(o *storeInfoOptions, dir string, r store.InfoReport) {
	sealed := 0
	for _, s := range r.Shards {
		if s.Sealed {
			sealed++
		}
	}
	raw := int64(r.RawBytes)
	fmt.Fprintf(o.out, "store      %s\n", dir)
	fmt.Fprintf(o.out, "shards     %d (%d sealed, %d open)\n", len(r.Shards), sealed, len(r.Shards)-sealed)
	fmt.Fprintf(o.out, "time span  %s .. %s (%s)\n", fmtTime(r.First), fmtTime(r.Last), r.Last.Sub(r.First).Round(time.Second))
	fmt.Fprintf(o.out, "packets    %d\n", r.Packets)
	fmt.Fprintf(o.out, "raw        %s\n", humanBytes(raw))
	fmt.Fprintf(o.out, "stored     %s (%.1f%% of raw)\n", humanBytes(r.StoredBytes), pct(r.StoredBytes, raw))
	fmt.Fprintf(o.out, "index      %s (%.2f%% of raw)\n", humanBytes(r.IndexBytes), pct(r.IndexBytes, raw))
	fmt.Fprintf(o.out, "flows      %s (%.2f%% of raw)\n", humanBytes(r.FlowBytes), pct(r.FlowBytes, raw))
	if r.Verified {
		fmt.Fprintf(o.out, "verified   %d blocks, %d indexes, %d flow files: %d damaged\n", r.BlocksChecked, r.IndexesChecked, r.FlowsChecked, len(r.Damage))
	}
	for _, d := range r.Damage {
		fmt.Fprintf(o.out, "damaged    %s\n", d)
	}
	if o.shards && len(r.Shards) > 0 {
		var rows [][]string
		for _, s := range r.Shards {
			state := "sealed"
			if !s.Sealed {
				state = "open"
			}
			rows = append(rows, []string{s.Name, state, fmtTime(s.First), fmtTime(s.Last), fmt.Sprint(s.Blocks), fmt.Sprint(s.Packets),
				humanBytes(int64(s.RawBytes)), humanBytes(s.StoredBytes), humanBytes(s.IndexBytes)})
		}
		fmt.Fprintln(o.out)
		writeTable(o.out, []string{"shard", "state", "first", "last", "blocks", "packets", "raw", "stored", "index"}, rows)
	}
}

func printInfoJSON(o *storeInfoOptions, dir string, r store.InfoReport) {
	enc := json.NewEncoder(o.out)
	if o.shards {
		for _, s := range r.Shards {
			enc.Encode(jsonl.Shard{Type: jsonl.TypeShard, Store: dir, Name: s.Name, Sealed: s.Sealed, First: jsonl.Time(s.First),
				Last: jsonl.Time(s.Last), Blocks: s.Blocks, Packets: s.Packets, RawBytes: s.RawBytes, StoredBytes: s.StoredBytes,
				IndexBytes: s.IndexBytes, FlowBytes: s.FlowBytes})
		}
	}
	for _, d := range r.Damage {
		enc.Encode(jsonl.Damage{Type: jsonl.TypeDamage, Store: dir, Shard: d.Shard, Block: d.Block, Offset: d.Offset, Reason: d.Reason})
	}
	enc.Encode(jsonl.Store{Type: jsonl.TypeStore, Store: dir, Shards: len(r.Shards), First: jsonl.Time(r.First), Last: jsonl.Time(r.Last),
		Packets: r.Packets, RawBytes: r.RawBytes, StoredBytes: r.StoredBytes, IndexBytes: r.IndexBytes,
		FlowBytes: r.FlowBytes, Verified: r.Verified, Damaged: len(r.Damage)})
}

type storeRepairOptions struct {
	streams
	store string
}

func newStoreRepairCmd(s streams) *cobra.Command {
	o := &storeRepairOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "repair --store DIR",
		Short: "Seal shards left open by a writer that died, and mend damaged shards, indexes and flow files",
		Long: `Repair takes the store's writer lock, seals every shard a killed writer
left open (keeping every complete, intact block) and rebuilds missing index
and flow files. Writers do this themselves when they start.

It also mends sealed shards: a damaged shard header or pcap header frame is
rewritten, a missing or damaged trailer (a shard cut short) is rebuilt from
the intact blocks, and the index and flow files of shards whose index is in
an older format (version 1, read whole by every query; version 2, without
the keys of hosts inside tunnels), damaged or missing,
or whose flow file is damaged or missing, are rebuilt from the blocks: run
it once on a store written by an older nwhealth, or after store info
--verify reports damage. Files that are not regular files, or belong to
another user, are named and left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runStoreRepair(o) },
	}
	cmd.Flags().StringVar(&o.store, "store", "", "store directory")
	return cmd
}

func runStoreRepair(o *storeRepairOptions) error {
	stores, err := openStores(context.Background(), []string{o.store}, nil)
	if err != nil {
		return err
	}
	lock, err := store.AcquireLock(o.store)
	if err != nil {
		return err
	}
	defer lock.Release()
	reps, err := stores[0].(*store.Store).Repair(pipeline.NewFlowTable)
	for _, r := range reps {
		reportRecovery(o.out, r)
	}
	if len(reps) == 0 && err == nil {
		fmt.Fprintln(o.out, "nothing to repair")
	}
	if store.OnlySkipped(err) {
		return partialError{fmt.Sprintf("files left alone: %v", err)}
	}
	return err
}

type storePushOptions struct {
	streams
	store    string
	to       string
	parallel int
	upload   uploadFlags
}

func newStorePushCmd(s streams) *cobra.Command {
	o := &storePushOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "push --store DIR --to s3://BUCKET/PREFIX [--sensor NAME]",
		Short: "Upload a local store's sealed shards to an object store",
		Long: `Push copies every sealed shard of a local store, with its index and flow
records, to an object store under the sensor's prefix
(docs/format/object-store.md): each object written only if absent, the
manifest last. Shards already there are not sent again, so an interrupted
push is simply run again. The local store is left as it is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runStorePush(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "local store directory")
	f.StringVar(&o.to, "to", "", "object store: s3://BUCKET/PREFIX")
	f.IntVar(&o.parallel, "parallel", 8, "objects uploaded at once")
	f.StringVar(&o.upload.sensor, "sensor", "", "the sensor's name in the bucket (default: the host name)")
	o.upload.registerCA(f)
	return cmd
}

func runStorePush(ctx context.Context, o *storePushOptions) error {
	if o.store == "" || o.to == "" {
		return usagef("store push needs --store DIR and --to s3://BUCKET/PREFIX")
	}
	if objstore.IsURL(o.store) {
		return usagef("--store %s: push reads a local store", o.store)
	}
	if o.parallel < 1 || o.parallel > 64 {
		return usagef("--parallel %d: want 1 to 64", o.parallel)
	}
	uo, _, err := o.upload.prepare(o.to, "push")
	if err != nil {
		return err
	}
	st, err := store.Open(o.store)
	if err != nil {
		return err
	}
	uo.Parallel, uo.Log, uo.Context = o.parallel, o.errOut, ctx
	stats, err := store.Push(st, o.to, uo)
	printUpload(o.out, o.to, stats)
	return err
}
