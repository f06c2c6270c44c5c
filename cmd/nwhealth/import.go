package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"import", newImportCmd}) }

type importOptions struct {
	streams
	store     string
	files     []string
	maxSize   string
	maxAge    string
	blockSize string
	format    string
	upload    uploadFlags
}

func newImportCmd(s streams) *cobra.Command {
	o := &importOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "import --store DIR|s3://BUCKET/PREFIX FILE...",
		Short: "Add pcap/pcapng files (gzip or zstd compressed too) to a store",
		Long: `Import reads pcap (microsecond or nanosecond, either byte order) and pcapng
(several interfaces) files, plain or gzip/zstd compressed, "-" for standard
input, and stores their packets as indexed, compressed shards with flow
records. Damaged input is reported with its byte offset; every valid packet
is kept and the exit status is 3.

With --store s3://BUCKET/PREFIX the shards are written to a local spool
(--spool) and uploaded as each seals, under --sensor's prefix; import
ends when they are uploaded (or --upload-wait passes: the rest wait in
the spool for the next run, exit 1). --max-size and --max-age then apply
to the sensor's partitions in the bucket.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = args
			return runImport(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store directory (created if missing) or s3://BUCKET/PREFIX")
	o.upload.register(f, 10*time.Minute)
	f.StringVar(&o.maxSize, "max-size", "", "after import, delete the oldest shards beyond this size (e.g. 500G)")
	f.StringVar(&o.maxAge, "max-age", "", "after import, delete shards older than this before the newest packet (e.g. 30d)")
	f.StringVar(&o.blockSize, "block-size", "32K", "raw bytes per compressed block (smaller: faster selective queries; larger: better compression)")
	f.StringVar(&o.format, "format", "table", "summary format: table or jsonl")
	return cmd
}

func (o *importOptions) retention() (store.Retention, error) {
	var r store.Retention
	var err error
	if r.MaxSize, err = parseSize(o.maxSize); err != nil {
		return r, usagef("--max-size: %v", err)
	}
	if o.maxAge != "" {
		if r.MaxAge, err = parseAge("--max-age", o.maxAge); err != nil {
			return r, err
		}
	}
	return r, nil
}

func runImport(o *importOptions) error {
	if o.store == "" {
		return usagef("--store is required")
	}
	if o.format != "table" && o.format != "jsonl" {
		return usagef("--format must be table or jsonl")
	}
	ret, err := o.retention()
	if err != nil {
		return err
	}
	bs, err := parseSize(o.blockSize)
	if err != nil || bs < 4096 || bs > 8<<20 {
		return usagef("--block-size: want 4K to 8M")
	}
	stdin := 0
	for _, f := range o.files {
		if f == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return usagef("standard input (-) can be read once")
	}
	dir := o.store
	var uo store.UploadOptions
	remote := objstore.IsURL(o.store)
	if remote {
		if uo, dir, err = o.upload.prepare(o.store, "import"); err != nil {
			return err
		}
		uo.Retention, uo.Log = ret, o.errOut
		ret = store.Retention{} // the spool empties itself
	}
	st, err := store.Create(dir)
	if err != nil {
		return err
	}
	lock, err := store.AcquireLock(dir)
	if err != nil {
		return err
	}
	defer lock.Release()
	reps, recErr := st.Recover(pipeline.NewFlowTable)
	for _, r := range reps {
		reportRecovery(o.errOut, r)
	}
	if recErr != nil {
		fmt.Fprintln(o.errOut, "nwhealth: recovery:", recErr)
	}
	var up *store.Uploader
	wopts := store.WriterOptions{ID: "imp", BlockSize: int(bs), NewFlows: pipeline.NewFlowTable, SyncAhead: true}
	if remote {
		// Shards a killed import left in the spool go first.
		if up, err = store.NewUploader(st, o.store, uo); err != nil {
			return err
		}
		if err := up.Start(); err != nil {
			return err
		}
		defer up.Close(0)
		wopts.OnSeal = up.Add
	}
	w, err := st.NewWriter(wopts)
	if err != nil {
		return err
	}
	inputs := make([]store.Input, len(o.files))
	for i, name := range o.files {
		inputs[i] = store.Input{Name: name, Open: func() (*pcapio.Reader, error) { return openInput(name, o.in) }}
	}
	results, failure := store.ImportAll(w, inputs, newProgress(o.errOut))
	// Close's error is the writer's failure (which ImportAll returned
	// too) and whatever sealing after it could not do.
	if err := w.Close(); err != nil {
		failure = err
	}
	stats := w.Stats()
	removed, rerr := ret.Apply(st)
	if rerr != nil && failure == nil {
		failure = rerr
	}
	printImport(o, results, stats, removed)
	if up != nil {
		uerr := up.Close(o.upload.uploadWait)
		out := o.out
		if o.format == "jsonl" {
			out = o.errOut
		}
		printUpload(out, up.Location(), up.Stats())
		if failure == nil {
			failure = uerr
		}
	}
	if failure != nil {
		return failure
	}
	damaged, unread := 0, 0
	for _, r := range results {
		damaged += len(r.Damage)
		if r.Err != nil {
			unread++
		}
	}
	if unread > 0 {
		return fmt.Errorf("%d of %d inputs could not be read to their end (named above); the others were imported", unread, len(results))
	}
	if damaged > 0 {
		return partialError{fmt.Sprintf("%d damaged places skipped; every valid packet was stored", damaged)}
	}
	if recErr != nil {
		return partialError{"the store holds files recovery could not seal or use (named above); run nwhealth store repair"}
	}
	return nil
}

// wifiSummary says what became of the 802.11 frames a store writer
// counted (store.WriterStats.WiFi), or "" when there were none. Encrypted
// Wi-Fi is stored but not read: saying how much keeps an empty hunt from
// being taken for a quiet network.
func wifiSummary(w [pkthdr.WiFiOther + 1]uint64) string {
	if w[pkthdr.WiFiData]+w[pkthdr.WiFiAMSDU]+w[pkthdr.WiFiProtected]+w[pkthdr.WiFiMgmt]+w[pkthdr.WiFiControl]+w[pkthdr.WiFiNull] == 0 {
		return ""
	}
	return fmt.Sprintf("802.11: %d data frames read (%d A-MSDUs, first subframe only), %d protected (encrypted, not read), %d management, %d control, %d null",
		w[pkthdr.WiFiData]+w[pkthdr.WiFiAMSDU], w[pkthdr.WiFiAMSDU], w[pkthdr.WiFiProtected], w[pkthdr.WiFiMgmt], w[pkthdr.WiFiControl], w[pkthdr.WiFiNull])
}

// openInput opens a capture file or, for "-", standard input.
func openInput(name string, stdin io.Reader) (*pcapio.Reader, error) {
	if name == "-" {
		r, err := pcapio.NewReader(stdin)
		if err != nil {
			return nil, fmt.Errorf("standard input: %w", err)
		}
		return r, nil
	}
	return pcapio.OpenFile(name)
}

func inputSize(name string) int64 {
	if name == "-" || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".zst") {
		return 0 // offsets are in decompressed bytes: no meaningful total
	}
	if fi, err := os.Stat(name); err == nil {
		return fi.Size()
	}
	return 0
}

func reportRecovery(w io.Writer, r store.RecoveryReport) {
	msg := fmt.Sprintf("recovered %s: %d blocks, %d packets kept", r.Shard, r.Blocks, r.Packets)
	if r.Did != "sealed" {
		msg = fmt.Sprintf("repaired %s (%s): %d blocks, %d packets", r.Shard, r.Did, r.Blocks, r.Packets)
	}
	if r.LostBytes > 0 {
		msg += fmt.Sprintf("; %d damaged or trailing bytes not kept", r.LostBytes)
	}
	if r.LostReason != "" {
		msg += " (" + r.LostReason + ")"
	}
	fmt.Fprintln(w, "nwhealth:", msg)
}

func printImport(o *importOptions, results []store.ImportResult, st store.WriterStats, removed []store.ShardFile) {
	if o.format == "jsonl" {
		enc := json.NewEncoder(o.out)
		for _, r := range results {
			rec := jsonl.Import{Type: jsonl.TypeImport, File: r.File, Packets: r.Packets}
			for _, d := range r.Damage {
				rec.Damage = append(rec.Damage, jsonl.ImportDamage{Offset: d.Offset, Reason: d.Reason})
			}
			if r.Err != nil {
				rec.Error = r.Err.Error()
			}
			enc.Encode(rec)
		}
		enc.Encode(jsonl.ImportSummary{Type: jsonl.TypeImportSummary, Packets: st.StoredPackets, RawBytes: st.StoredRaw,
			Stored: st.Stored, Sealed: st.Sealed, Removed: len(removed), NoIP: st.Unparsed,
			WiFiProtected: st.WiFi[pkthdr.WiFiProtected], WiFiManagement: st.WiFi[pkthdr.WiFiMgmt],
			WiFiControl: st.WiFi[pkthdr.WiFiControl], WiFiNull: st.WiFi[pkthdr.WiFiNull], WiFiAMSDU: st.WiFi[pkthdr.WiFiAMSDU]})
		return
	}
	for _, r := range results {
		fmt.Fprintf(o.out, "%s: %d packets read", r.File, r.Packets)
		if len(r.Damage) > 0 {
			fmt.Fprintf(o.out, ", %d damaged places skipped", len(r.Damage))
		}
		if r.Err != nil {
			fmt.Fprintf(o.out, "; not read to its end: %v", r.Err)
		}
		fmt.Fprintln(o.out)
		for i, d := range r.Damage {
			if i == 10 {
				fmt.Fprintf(o.out, "  ... %d more\n", len(r.Damage)-10)
				break
			}
			fmt.Fprintf(o.out, "  damaged at byte %d: %s\n", d.Offset, d.Reason)
		}
	}
	ratio := 0.0
	if st.StoredRaw > 0 {
		ratio = float64(st.Stored) / float64(st.StoredRaw)
	}
	// What is on disk and sealed, not what was read: after a write
	// failure the two differ.
	fmt.Fprintf(o.out, "stored %d packets, %s raw in %s (%.1f%%), %d shards sealed\n",
		st.StoredPackets, humanBytes(int64(st.StoredRaw)), humanBytes(int64(st.Stored)), 100*ratio, st.Sealed)
	if line := wifiSummary(st.WiFi); line != "" {
		fmt.Fprintln(o.out, line)
	}
	if lost := st.Packets - min(st.Packets, st.StoredPackets); lost > 0 {
		fmt.Fprintf(o.out, "%d packets read were not stored (the write failed)\n", lost)
	}
	if len(removed) > 0 {
		fmt.Fprintf(o.out, "retention removed %d shards\n", len(removed))
	}
}

// progress draws a one-line progress display on a terminal, and nothing
// otherwise.
type progress struct {
	w     io.Writer
	on    bool
	name  string
	total int64
	begun time.Time
	last  time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w, on: isTerminal(w)} }

// Start, Update and Done follow store.ImportAll.
func (p *progress) Start(name string) {
	p.name, p.total, p.begun, p.last = name, inputSize(name), time.Now(), time.Time{}
}

func (p *progress) Update(off int64) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	rate := float64(off) / time.Since(p.begun).Seconds() / (1 << 20)
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s: %5.1f%% %8.1f MiB/s", p.name, 100*float64(off)/float64(p.total), rate)
	} else {
		fmt.Fprintf(p.w, "\r%s: %s %8.1f MiB/s", p.name, humanBytes(off), rate)
	}
}

func (p *progress) Done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
