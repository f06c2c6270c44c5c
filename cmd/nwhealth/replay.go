package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nwhealth/nwhealth/internal/texttable"
	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"replay", newReplayCmd}) }

// replayOptions holds the flags of `nwhealth replay` and its dependencies.
type replayOptions struct {
	pcaps     []string
	store     []string
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
		Short: "Reconstruct Windows remote operations (SMB, DCE/RPC) with who ran them",
		Long: `replay turns SMB and DCE/RPC traffic into the remote operations an intruder
ran on Windows machines: service creation, scheduled tasks, WMI and DCOM
execution, registry, SAMR/LSA/SRVSVC reconnaissance, DCSync, files copied to
admin shares. Each operation names its account (NTLMSSP or Kerberos), source,
target, time, decoded arguments, ATT&CK technique and phase; after the
timeline, each host's phases are told in order as a story.

Input: --pcap FILE... (pcap or pcapng, plain or gzip/zstd, several merged
by time), --store DIR with --from/--to/--host/--net/--port selecting the
stored traffic, or live: -i IFACE, or --store DIR --follow while capture
writes to it (operations printed as they complete).

Output: a table, or --format jsonl with one object per line: "operation"
objects (ts, src, dst, user, domain, auth, interface, operation, target,
command, technique, phase, encrypted, evidence), then "host" objects (the
per-host story) and a "stats" object. Plumbing calls (handle closes, IPC$
connects) are hidden unless --all. --graph FILE.dot writes who operated on
whom for Graphviz.`,
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
	f.StringSliceVar(&o.pcaps, "pcap", nil, "capture files to read (pcap or pcapng; repeat or comma-separate; - for stdin)")
	f.StringArrayVar(&o.store, "store", nil, "read from a store directory (repeatable)")
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
	f.BoolVar(&o.stats, "stats", false, "print pipeline statistics on stderr at the end (live: every --stats-every)")
	f.DurationVar(&o.statEvery, "stats-every", time.Minute, "live mode: interval of the statistics line")
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
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(o.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		src     replay.Source
		closers []io.Closer
	)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	live := o.iface != "" || o.follow
	var damaged []*replay.DamagedSource
	var query *store.QuerySource
	var follower *store.Follower
	switch {
	case o.iface != "":
		if o.live == nil {
			return errors.New("live capture is not supported on this system")
		}
		s, c, err := o.live(replay.LiveConfig{Interface: o.iface, RingSize: ring, Promiscuous: true})
		if err != nil {
			return fmt.Errorf("open %s: %w", o.iface, err)
		}
		src, closers = s, append(closers, c)
	case len(o.store) > 0:
		sel, err := o.sel.selector(time.Now())
		if err != nil {
			return err
		}
		stores, err := openStores(o.store)
		if err != nil {
			return err
		}
		if o.follow {
			follower, err = store.Follow(ctx, stores, sel, o.sel.from == "", 0)
			if err != nil {
				return err
			}
			src, closers = follower, append(closers, follower)
			break
		}
		plan, err := store.PlanQuery(stores, sel)
		if err != nil {
			return err
		}
		query = plan.Source()
		src, closers = query, append(closers, query)
	default:
		var srcs []replay.Source
		for _, p := range o.pcaps {
			s, c, err := o.open(p)
			if err != nil {
				return fmt.Errorf("open capture: %w", err)
			}
			srcs, closers = append(srcs, s), append(closers, c)
			damaged = append(damaged, s)
		}
		src = replay.Merge(srcs...)
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
		}
	}
	var st replay.Stats
	if live {
		st, err = runLive(ctx, o, src, emit)
		out.attacks = replay.DetectAttacks(ops, replay.DCSet(st.DomainControllers, inv.DomainControllers()...))
	} else {
		st, err = replay.Run(ctx, src, replay.Config{}, emit)
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
		err = nil
	}
	out.finish(stories, st)
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
	var inputDamage []string
	for _, d := range damaged {
		for _, ce := range d.Damage {
			inputDamage = append(inputDamage, fmt.Sprintf("%s: %v", d.Name, ce))
		}
	}
	if query != nil {
		var de *store.DamageError
		if errors.As(query.Err(), &de) {
			for _, d := range de.Damage {
				inputDamage = append(inputDamage, d.String())
			}
		}
	}
	if follower != nil {
		for _, d := range follower.Damage {
			inputDamage = append(inputDamage, d.String())
		}
	}
	if len(inputDamage) > 0 {
		for i, d := range inputDamage {
			if i == 10 {
				fmt.Fprintf(o.s.errOut, "nwhealth: ... %d more damaged places\n", len(inputDamage)-10)
				break
			}
			fmt.Fprintln(o.s.errOut, "nwhealth: damaged input skipped:", d)
		}
		return partialError{fmt.Sprintf("%d damaged places in the input were skipped; every valid packet was replayed", len(inputDamage))}
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
func runLive(ctx context.Context, o *replayOptions, src replay.Source, emit func(replay.Operation)) (replay.Stats, error) {
	last := time.Now()
	return replay.RunLive(ctx, src, replay.Config{}, 250*time.Millisecond, emit, func(st replay.Stats) {
		if o.stats && time.Since(last) >= o.statEvery {
			last = time.Now()
			fmt.Fprintln(o.s.errOut, replayStatsLine(st, o.iface != ""))
		}
	})
}

func statsLine(st replay.Stats) string {
	line := fmt.Sprintf("stats: packets=%d conns=%d operations=%d encrypted=%d conns_expired=%d calls_expired=%d gaps=%d resyncs=%d dropped_bytes=%d decode_errors=%d conns_midstream=%d conns_open_at_end=%d gaps_at_end=%d",
		st.Packets, st.Conns, st.Operations, st.EncryptedCalls, st.ConnsExpired, st.CallsExpired, st.Gaps, st.Resyncs, st.DroppedBytes, st.DecodeErrors,
		st.ConnsMidstream, st.ConnsOpenAtEnd, st.GapsAtEnd)
	if st.KernelDrops > 0 {
		line += fmt.Sprintf(" kernel_drops=%d", st.KernelDrops)
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

func writeGraph(path string, st *replay.Stories) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	if err := st.WriteDOT(f); err != nil {
		f.Close()
		return fmt.Errorf("write graph %s: %w", path, err)
	}
	return f.Close()
}

// replayWriter prints operations as a table (rows collected until the
// end, or one small table per operation in live mode) or as JSON lines.
type replayWriter struct {
	o       *replayOptions
	enc     *json.Encoder
	rows    [][]string
	attacks []replay.Attack
}

func newReplayWriter(o *replayOptions) *replayWriter {
	w := &replayWriter{o: o}
	if o.format == "jsonl" {
		w.enc = json.NewEncoder(o.s.out)
		w.enc.SetEscapeHTML(false)
	}
	return w
}

// jsonOp is the jsonl form of an operation (the "operation" type).
type jsonOp struct {
	Type        string          `json:"type"`
	TS          string          `json:"ts"`
	End         string          `json:"end"`
	Src         string          `json:"src"`
	SrcPort     uint16          `json:"src_port"`
	Dst         string          `json:"dst"`
	DstPort     uint16          `json:"dst_port"`
	User        string          `json:"user"`
	Domain      string          `json:"domain"`
	Workstation string          `json:"workstation,omitempty"`
	Auth        string          `json:"auth"`
	Service     string          `json:"service,omitempty"`
	AccountVia  string          `json:"account_via,omitempty"`
	Transport   string          `json:"transport"`
	Pipe        string          `json:"pipe,omitempty"`
	Share       string          `json:"share,omitempty"`
	Kind        string          `json:"kind"`
	Interface   string          `json:"interface"`
	Opnum       *int            `json:"opnum,omitempty"`
	Operation   string          `json:"operation"`
	Target      string          `json:"target"`
	Command     string          `json:"command"`
	Fields      []replay.Field  `json:"fields,omitempty"`
	Technique   string          `json:"technique"`
	Phase       string          `json:"phase"`
	Status      *string         `json:"status,omitempty"`
	Encrypted   bool            `json:"encrypted"`
	Partial     bool            `json:"partial"`
	Noise       bool            `json:"noise,omitempty"`
	Size        int64           `json:"size,omitempty"`
	SHA256      string          `json:"sha256,omitempty"`
	Evidence    replay.Evidence `json:"evidence"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (w *replayWriter) operation(op *replay.Operation) {
	if w.enc != nil {
		j := jsonOp{
			Type: "operation", TS: rfc3339(op.Time), End: rfc3339(op.End),
			Src: addrString(op.Src), SrcPort: op.SrcPort, Dst: addrString(op.Dst), DstPort: op.DstPort,
			User: op.User, Domain: op.Domain, Workstation: op.Workstation, Auth: op.Auth, Service: op.Service, AccountVia: op.AccountVia,
			Transport: op.Transport, Pipe: op.Pipe, Share: op.Share, Kind: op.Kind,
			Interface: op.Interface, Operation: op.Operation, Target: op.Target, Command: op.Command,
			Fields: op.Fields, Technique: op.Technique, Phase: op.Phase,
			Encrypted: op.Encrypted, Partial: op.Partial, Noise: op.Noise,
			Size: op.Size, SHA256: op.SHA256, Evidence: op.Evidence(),
		}
		if op.Opnum >= 0 {
			n := op.Opnum
			j.Opnum = &n
		}
		if op.HasStatus {
			s := fmt.Sprintf("0x%08x", op.Status)
			j.Status = &s
		}
		w.enc.Encode(j)
		return
	}
	row := tableRow(op)
	if w.o.iface != "" {
		fmt.Fprintln(w.o.s.out, strings.Join(row, "  "))
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
	if op.Partial {
		flags += "P"
	}
	user := op.Account()
	switch {
	case user == "" && op.Service != "":
		user = "? (" + op.Service + ")"
	case op.AccountVia == "ticket":
		user += " (via ticket)"
	}
	return []string{
		op.Time.UTC().Format("2006-01-02 15:04:05.000"),
		addrString(op.Src) + " -> " + addrString(op.Dst),
		user, op.Auth, op.Interface, op.Operation, clip(what, 90),
		op.Technique, op.Phase, flags,
	}
}

func (w *replayWriter) finish(st *replay.Stories, stats replay.Stats) {
	hosts := st.Hosts()
	if w.enc != nil {
		for _, a := range w.attacks {
			w.enc.Encode(a)
		}
		for _, h := range hosts {
			w.enc.Encode(struct {
				Type string `json:"type"`
				replay.HostStory
				Story string `json:"story"`
			}{"host", h, h.Story()})
		}
		w.enc.Encode(struct {
			Type string `json:"type"`
			replay.Stats
		}{"stats", stats})
		return
	}
	out := w.o.s.out
	if w.o.iface == "" {
		if len(w.rows) == 0 {
			fmt.Fprintln(out, "no remote operations found")
		} else {
			t := texttable.New(out, false, "time (UTC)", "src -> dst", "account", "auth", "interface", "operation", "target / command", "att&ck", "phase", "flags")
			for _, r := range w.rows {
				t.Append(r...)
			}
			t.Render()
			fmt.Fprintln(out, "flags: E arguments encrypted, P partial (request, reply or content not fully captured)")
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
