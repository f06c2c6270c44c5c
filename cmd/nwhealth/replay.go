package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/atomicfile"
	"github.com/nwhealth/nwhealth/internal/texttable"
	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"replay", newReplayCmd}) }

// replayOptions holds the flags of `nwhealth replay` and its dependencies.
type replayOptions struct {
	pcaps     []string
	store     []string
	remote    remoteFlags
	sel       selectorFlags
	follow    bool
	iface     string
	ringSize  string
	format    string
	graph     string
	all       bool
	stats     bool
	statEvery time.Duration
	assets    string
	secrets   string   // --ntlm-secrets: a path, never a secret
	keytabs   []string // --keytab: paths, never keys

	s streams
	// open returns a packet source per capture file; tests replace it.
	open func(path string) (*replay.DamagedSource, io.Closer, error)
	// live opens an interface; nil when unsupported.
	live func(cfg replay.LiveConfig) (replay.Source, io.Closer, error)
	ctx  context.Context
	// ready, when set, is called once the input is open (tests).
	ready func()
}

func newReplayCmd(s streams) *cobra.Command {
	o := &replayOptions{s: s, open: replay.OpenFile, live: openLive}
	cmd := &cobra.Command{
		Use:   "replay [--pcap FILE... | --store DIR [--from --to --host] [--follow] | -i IFACE]",
		Short: "Reconstruct Windows remote operations (SMB, DCE/RPC, WinRM) with who ran them",
		Long: `replay turns SMB, DCE/RPC and WinRM traffic into the remote operations an intruder
ran on Windows machines: service creation, scheduled tasks, WMI and DCOM
execution, registry, SAMR/LSA/SRVSVC reconnaissance, DCSync, files copied to
admin shares, commands run over WinRM, remote-execution pipes (PsExec,
RemCom, winexe) and named-pipe C2 channels over SMB. Each operation names its account
(NTLMSSP, Kerberos or HTTP Basic), source,
target, time, decoded arguments, ATT&CK technique and phase; after the
timeline, each host's phases are told in order as a story.

Input: --pcap FILE... (pcap or pcapng, plain or gzip/zstd, several merged
by time), --store DIR with --from/--to/--host/--net/--port selecting the
stored traffic, or live: -i IFACE, or --store DIR --follow while capture
writes to it (operations printed as they complete).

Output: a table, or --format jsonl with one object per line: "operation"
objects (ts, src, dst, user, domain, auth, interface, operation, target,
command, technique, phase, encrypted, evidence), then "attack" objects
(named attacks across operations: Zerologon, coercion, PrintNightmare,
DCSync, DCShadow, certificates for another account, named-pipe C2
channels), "story" objects (the
per-host story) and a "stats" object (docs/format/jsonl.md). Plumbing calls
(handle closes, IPC$ connects) are hidden unless --all. --graph FILE.dot
writes who operated on whom for Graphviz. Replication between domain
controllers (seen serving Kerberos, LDAP, DRSUAPI or Netlogon, or named in
--assets) is listed, not flagged as DCSync.

WinRM (HTTP 5985, 47001, or any port whose client sends POST /wsman) gives a
session per connection with its account and encrypted message counts, and
in clear (or decrypted) each WS-Management request: shells, the commands
run (cmd, PowerShell remoting pipelines), WMI calls; HTTPS 5986 is named by
port and server name only.

Sealed DCE/RPC (packet privacy), SMB3-encrypted sessions and encrypted WinRM
messages show names only, unless --ntlm-secrets FILE gives the password or
NT hash of their NTLM account, or --keytab FILE the key of the Kerberos
service (or machine account) their ticket is for: their calls are then
decrypted and decoded
("sealed": "decrypted", or "decrypted": "smb3" or "winrm" for what an SMB3
session or WinRM message carried; flag D), or marked undecryptable (wrong
secret, lost PDU; flag U). Secrets go in the file,
never on the command line, and are never printed.

Exit codes: 0 ok, 1 error, 2 usage, 3 damaged input or incomplete streams,
5 disk full, 130/143 a capture or store replay stopped by SIGINT/SIGTERM
(nothing printed, no --graph file). Live (-i, --follow) runs end with
SIGINT/SIGTERM and exit 0.`,
		Example: `  nwhealth replay --pcap psexec.pcapng
  nwhealth replay --pcap day1.pcap day2.pcap --format jsonl | jq 'select(.phase=="execution")'
  nwhealth replay --pcap incident.pcapng --graph hosts.dot && dot -Tsvg hosts.dot > hosts.svg
  nwhealth replay -i eth0`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pcaps = append(o.pcaps, args...)
			if o.ctx == nil {
				o.ctx = cmd.Context()
			}
			return runReplay(o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.pcaps, "pcap", nil, "capture files to read (pcap or pcapng; - for stdin): several after one --pcap, or repeat it")
	multiValue(f, "pcap")
	f.StringArrayVar(&o.store, "store", nil, "read from a store directory or s3://BUCKET/PREFIX (repeatable)")
	o.remote.registerRead(f)
	f.StringVar(&o.sel.from, "from", "", "with --store: start time (RFC 3339, date, or relative like -2h)")
	f.StringVar(&o.sel.to, "to", "", "with --store: end time")
	f.StringArrayVar(&o.sel.hosts, "host", nil, "with --store: only traffic of this IP (repeatable)")
	f.StringArrayVar(&o.sel.nets, "net", nil, "with --store: only traffic of this CIDR (repeatable)")
	f.UintSliceVar(&o.sel.ports, "port", nil, "with --store: only this port (repeatable)")
	f.BoolVar(&o.follow, "follow", false, "with --store: keep reading as capture writes (from --from, else from now)")
	f.StringVarP(&o.iface, "interface", "i", "", "capture live from this interface (needs root)")
	f.StringVar(&o.ringSize, "ring-size", "32MiB", "with -i: kernel ring memory")
	f.StringVar(&o.format, "format", "table", "output format: table or jsonl")
	f.StringVar(&o.graph, "graph", "", "write a Graphviz graph of hosts and who operated on whom to this file")
	f.BoolVar(&o.all, "all", false, "also show plumbing calls (handle closes, binds, IPC$ connects)")
	f.StringVar(&o.assets, "assets", "", "asset inventory YAML: hosts with role \"domain controller\" replicate without being flagged as DCSync")
	registerNTLMSecrets(f, &o.secrets)
	registerKeytab(f, &o.keytabs)
	f.BoolVar(&o.stats, "stats", false, "print pipeline statistics on stderr at the end (live: every --stats-every)")
	f.DurationVar(&o.statEvery, "stats-every", time.Minute, "live mode: interval of the statistics line")
	handlesSignals(cmd)
	return cmd
}

func runReplay(o *replayOptions) error {
	if o.format != "table" && o.format != "jsonl" {
		return usagef("--format must be table or jsonl, not %q", o.format)
	}
	inputs := 0
	for _, set := range []bool{len(o.pcaps) > 0, len(o.store) > 0, o.iface != ""} {
		if set {
			inputs++
		}
	}
	if inputs != 1 {
		return usagef("give exactly one input: --pcap FILE..., --store DIR or -i IFACE")
	}
	ring, err := parseSize(o.ringSize)
	if err != nil {
		return usagef("--ring-size: %v", err)
	}
	if o.statEvery <= 0 {
		return usagef("--stats-every %v: want a positive interval", o.statEvery)
	}
	if o.follow && len(o.store) == 0 {
		return usagef("--follow needs --store")
	}
	selecting := o.sel.from != "" || o.sel.to != "" || len(o.sel.hosts) > 0 || len(o.sel.nets) > 0 || len(o.sel.ports) > 0
	if selecting && len(o.store) == 0 {
		return usagef("--from, --to, --host, --net and --port select from a --store")
	}
	var inv *assets.Inventory
	if o.assets != "" {
		if inv, err = assets.LoadInventory(o.assets); err != nil {
			return err
		}
	}
	secrets, err := loadNTLMSecrets(o.secrets, o.s.errOut, "replay")
	if err != nil {
		return err
	}
	keys, err := loadKeytabs(o.keytabs, o.s.errOut, "replay")
	if err != nil {
		return err
	}
	cfg := replay.Config{Secrets: secrets, Keys: keys}
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	// A failed write to the output stops a live run too (cancel with
	// the write error), instead of decoding on into a full disk.
	ctx, cancel := context.WithCancelCause(o.ctx)
	defer cancel(nil)

	var (
		src     replay.Source
		closers []io.Closer
		packets *pipeline.Packets
	)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	live := o.iface != "" || o.follow
	if o.iface != "" {
		if o.live == nil {
			return errors.New("live capture is not supported on this system")
		}
		s, c, err := o.live(replay.LiveConfig{Interface: o.iface, RingSize: ring, Promiscuous: true})
		if err != nil {
			return liveOpenError(fmt.Errorf("open %s: %w", o.iface, err))
		}
		src, closers = s, append(closers, c)
	} else {
		in := pipeline.Input{Pcaps: o.pcaps, OpenCapture: o.open}
		if len(o.store) > 0 {
			if in.Selector, err = o.sel.selector(time.Now()); err != nil {
				return err
			}
			if in.Stores, err = openStores(ctx, o.store, &o.remote); err != nil {
				return err
			}
		}
		packets, err = pipeline.OpenPackets(ctx, in, pipeline.PacketOptions{Follow: o.follow, FromEnd: o.sel.from == ""})
		if err != nil {
			return err
		}
		src, closers = packets, append(closers, packets)
	}

	if o.follow {
		// Everything stored so far was passed over (or, with --from, is
		// being read): say so, as what comes next is live.
		fmt.Fprintf(o.s.errOut, "replay: following %s (stop with SIGINT or SIGTERM)\n", strings.Join(o.store, ", "))
	}
	if o.ready != nil {
		o.ready()
	}
	out := newReplayWriter(o)
	stories := replay.NewStories()
	var ops []replay.Operation
	emit := func(op replay.Operation) {
		if !live {
			ops = append(ops, op) // sorted by time at the end
			return
		}
		if replay.AttackCandidate(&op) && len(ops) < maxLiveCandidates {
			ops = append(ops, op) // for the attacks told at the end
		}
		stories.Add(&op)
		if !op.Noise || o.all {
			out.operation(&op) // as soon as it completes
			if out.err != nil {
				cancel(out.err)
			}
		}
	}
	var st replay.Stats
	if live {
		st, err = runLive(ctx, o, src, cfg, emit)
		out.attacks = replay.DetectAttacks(ops, replay.DCSet(st.DomainControllers, inv.DomainControllers()...))
	} else {
		st, err = replay.Run(ctx, src, cfg, emit)
		if o.ctx.Err() != nil {
			// Stopped by a signal: what was read is not the input, and
			// a partial timeline is not written as if it were.
			return interrupted(o.ctx)
		}
		sortOps(ops)
		// Now that the whole capture said which hosts act as domain
		// controllers, their replication is listed, not flagged.
		dcs := replay.DCSet(st.DomainControllers, inv.DomainControllers()...)
		replay.MarkReplication(ops, dcs)
		out.attacks = replay.DetectAttacks(ops, dcs)
		for i := range ops {
			stories.Add(&ops[i])
			if !ops[i].Noise || o.all {
				out.operation(&ops[i])
			}
		}
	}
	if errors.Is(err, context.Canceled) {
		err = nil // live: SIGINT or SIGTERM is how a live run ends
	}
	out.finish(stories, st)
	if out.err != nil {
		return fmt.Errorf("write output: %w", out.err)
	}
	if o.graph != "" {
		if gerr := writeGraph(o.graph, stories); gerr != nil {
			return gerr
		}
	}
	if o.stats {
		fmt.Fprintln(o.s.errOut, replayStatsLine(st, o.iface != ""))
	}
	if err != nil {
		return partialError{fmt.Sprintf("capture damaged, operations before the damage were reported: %v", err)}
	}
	if packets != nil {
		packets.Finish()
		d := packets.Damage()
		if !d.Empty() || len(d.Unused) > 0 {
			printDamage(o.s.errOut, "replay", d)
		}
		if !d.Empty() {
			return partialError{fmt.Sprintf("%d damaged places in the input were skipped; every valid packet was replayed", d.Count)}
		}
	}
	if st.Damaged() {
		fmt.Fprintf(o.s.errOut, "nwhealth: some input was not captured or could not be decoded: %s\n", replayStatsLine(st, o.iface != ""))
		for _, g := range st.GapPlaces {
			fmt.Fprintln(o.s.errOut, "nwhealth: gap inside a stream:", g)
		}
		if n := int(st.Gaps) - len(st.GapPlaces); n > 0 {
			fmt.Fprintf(o.s.errOut, "nwhealth: ... %d more gaps\n", n)
		}
		return partialError{"incomplete streams: operations may be missing or partial"}
	}
	return nil
}

// maxLiveCandidates bounds the operations a live run keeps to tell its
// attacks when it stops.
const maxLiveCandidates = 1 << 16

// runLive runs the pipeline on a live source, printing the statistics
// line every --stats-every when --stats is given.
func runLive(ctx context.Context, o *replayOptions, src replay.Source, cfg replay.Config, emit func(replay.Operation)) (replay.Stats, error) {
	last := time.Now()
	return replay.RunLive(ctx, src, cfg, 250*time.Millisecond, emit, func(st replay.Stats) {
		if o.stats && time.Since(last) >= o.statEvery {
			last = time.Now()
			fmt.Fprintln(o.s.errOut, replayStatsLine(st, o.iface != ""))
		}
	})
}

func statsLine(st replay.Stats) string {
	line := fmt.Sprintf("stats: packets=%d conns=%d operations=%d encrypted=%d conns_expired=%d calls_expired=%d gaps=%d resyncs=%d dropped_bytes=%d decode_errors=%d conns_midstream=%d conns_open_at_end=%d gaps_at_end=%d unframed_bytes=%d",
		st.Packets, st.Conns, st.Operations, st.EncryptedCalls, st.ConnsExpired, st.CallsExpired, st.Gaps, st.Resyncs, st.DroppedBytes, st.DecodeErrors,
		st.ConnsMidstream, st.ConnsOpenAtEnd, st.GapsAtEnd, st.UnframedBytes)
	if st.KernelDrops > 0 {
		line += fmt.Sprintf(" kernel_drops=%d", st.KernelDrops)
	}
	if st.DecryptedCalls > 0 || st.UndecryptableCalls > 0 {
		line += fmt.Sprintf(" decrypted=%d undecryptable=%d", st.DecryptedCalls, st.UndecryptableCalls)
	}
	if st.SMB3Decrypted > 0 || st.SMB3Undecryptable > 0 {
		line += fmt.Sprintf(" smb3_decrypted=%d smb3_undecryptable=%d", st.SMB3Decrypted, st.SMB3Undecryptable)
	}
	if st.WinRMDecrypted > 0 || st.WinRMUndecryptable > 0 {
		line += fmt.Sprintf(" winrm_decrypted=%d winrm_undecryptable=%d", st.WinRMDecrypted, st.WinRMUndecryptable)
	}
	if st.KerberosDecrypted > 0 || st.KerberosUndecryptable > 0 {
		line += fmt.Sprintf(" kerberos_decrypted=%d kerberos_undecryptable=%d", st.KerberosDecrypted, st.KerberosUndecryptable)
	}
	return line
}

// replayStatsLine is statsLine that also shows, for a live interface
// (capture), that the kernel dropped nothing.
func replayStatsLine(st replay.Stats, capture bool) string {
	if capture && st.KernelDrops == 0 {
		return statsLine(st) + " kernel_drops=0"
	}
	return statsLine(st)
}

// sortOps orders operations by start time; ties keep a stable order by
// endpoints and name so golden files do not flap.
func sortOps(ops []replay.Operation) {
	sort.SliceStable(ops, func(i, j int) bool {
		a, b := &ops[i], &ops[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.End != b.End {
			return a.End.Before(b.End)
		}
		if a.Src != b.Src {
			return a.Src.Less(b.Src)
		}
		if a.SrcPort != b.SrcPort {
			return a.SrcPort < b.SrcPort
		}
		if a.Dst != b.Dst {
			return a.Dst.Less(b.Dst)
		}
		if a.DstPort != b.DstPort {
			return a.DstPort < b.DstPort
		}
		for _, c := range [][2]string{{a.Kind, b.Kind}, {a.Pipe, b.Pipe}, {a.Interface, b.Interface}, {a.Operation, b.Operation}, {a.Target, b.Target}, {a.Command, b.Command}} {
			if c[0] != c[1] {
				return c[0] < c[1]
			}
		}
		return false
	})
}

// writeGraph writes the Graphviz file whole or not at all.
func writeGraph(path string, st *replay.Stories) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	defer f.Abort()
	if err := st.WriteDOT(f); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return f.Commit()
}

// replayWriter prints operations as a table (rows collected until the
// end, or one small table per operation in live mode) or as JSON lines.
type replayWriter struct {
	o       *replayOptions
	text    io.Writer // standard output for the table, controls replaced
	enc     *json.Encoder
	rows    [][]string
	attacks []replay.Attack
	err     error // the first failed write
}

func (w *replayWriter) check(err error) {
	if w.err == nil {
		w.err = err
	}
}

func newReplayWriter(o *replayOptions) *replayWriter {
	w := &replayWriter{o: o, text: textOut(o.s.out)}
	if o.format == "jsonl" {
		w.enc = json.NewEncoder(o.s.out)
		w.enc.SetEscapeHTML(false)
	}
	return w
}

func (w *replayWriter) operation(op *replay.Operation) {
	if w.enc != nil {
		w.check(w.enc.Encode(jsonl.NewOperation(op)))
		return
	}
	row := tableRow(op)
	if w.o.iface != "" {
		_, err := fmt.Fprintln(w.text, strings.Join(row, "  "))
		w.check(err)
		return
	}
	w.rows = append(w.rows, row)
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func tableRow(op *replay.Operation) []string {
	what := op.Target
	if op.Command != "" {
		if what != "" {
			what += ": "
		}
		what += op.Command
	} else if out := op.Field("output"); out != "" {
		what += ": " + out // a command's output read back
	}
	if op.Kind == "pipe" && op.Operation == "pipe channel" {
		// A channel's use is its evidence: messages each way, schedule,
		// the framework its name is the default of.
		parts := []string{op.Field("messages")}
		if s, _, _ := strings.Cut(op.Field("schedule"), " ("); s != "" {
			parts = append(parts, s)
		}
		if fw := op.Field("framework"); fw != "" {
			parts = append(parts, fw)
		}
		what += " (" + strings.Join(parts, "; ") + ")"
	}
	if op.SHA256 != "" {
		what += fmt.Sprintf(" (%d bytes, sha256 %s)", op.Size, op.SHA256[:16])
	} else if op.Size > 0 {
		what += fmt.Sprintf(" (%d bytes)", op.Size)
	}
	flags := ""
	if op.Encrypted {
		flags += "E"
	}
	switch op.Sealed {
	case replay.SealedDecrypted:
		flags += "D"
	case replay.SealedUndecryptable:
		flags += "U"
	}
	if op.Decrypted != "" && op.Sealed == "" {
		flags += "D" // opened from an encrypted SMB3 session
	}
	if op.Partial {
		flags += "P"
	}
	user := op.Account()
	switch {
	case user == "" && op.Service != "":
		user = "? (" + op.Service + ")"
	case op.AccountVia == "ticket", op.AccountVia == "keytab":
		user += " (via " + op.AccountVia + ")"
	}
	return []string{
		op.Time.UTC().Format("2006-01-02 15:04:05.000"),
		jsonl.Addr(op.Src) + " -> " + jsonl.Addr(op.Dst),
		user, op.Auth, op.Interface, op.Operation, clip(what, 90),
		op.Technique, op.Phase, flags,
	}
}

func (w *replayWriter) finish(st *replay.Stories, stats replay.Stats) {
	hosts := st.Hosts()
	if w.enc != nil {
		for i := range w.attacks {
			w.check(w.enc.Encode(jsonl.NewAttack(&w.attacks[i])))
		}
		for i := range hosts {
			w.check(w.enc.Encode(jsonl.NewStory(&hosts[i])))
		}
		w.check(w.enc.Encode(jsonl.NewStats(stats)))
		return
	}
	out := w.text
	if w.o.iface == "" {
		if len(w.rows) == 0 {
			fmt.Fprintln(out, "no remote operations found")
		} else {
			t := texttable.New(out, false, "time (UTC)", "src -> dst", "account", "auth", "interface", "operation", "target / command", "att&ck", "phase", "flags")
			for _, r := range w.rows {
				t.Append(r...)
			}
			t.Render()
			fmt.Fprintln(out, "flags: E arguments encrypted, D decrypted with --ntlm-secrets or --keytab, U not decryptable with them, P partial (request, reply or content not fully captured)")
		}
	}
	if len(w.attacks) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Attacks:")
		for _, a := range w.attacks {
			id := a.Technique
			if a.CVE != "" {
				id = a.CVE + ", " + id
			}
			fmt.Fprintf(out, "  [%s] %s, %s (%s): %s\n", strings.ToUpper(a.Severity), a.Name, a.Verdict, id, a.Summary)
			for _, r := range a.Evidence {
				fmt.Fprintf(out, "      %s  %s -> %s  %s %s %s %s\n", r.Time.Format("2006-01-02 15:04:05.000"), r.Src, r.Dst, r.Interface, r.Operation, r.Target, r.Status)
			}
		}
	}
	if len(hosts) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Progression per host:")
		for _, h := range hosts {
			fmt.Fprintf(out, "  %s: %s\n", h.Host, h.Story())
		}
	}
}

// openLive opens an interface for live replay.
func openLive(cfg replay.LiveConfig) (replay.Source, io.Closer, error) {
	l, err := replay.OpenLive(cfg)
	if err != nil {
		return nil, nil, err
	}
	return l, l, nil
}
