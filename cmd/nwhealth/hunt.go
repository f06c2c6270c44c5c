package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/texttable"
	"github.com/spf13/cobra"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/blocklist"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/report"
)

func init() { subcommands = append(subcommands, subcommand{"hunt", newHuntCmd}) }

type huntOptions struct {
	s           streams
	pcaps       []string
	zeeks       []string
	internal    []string
	allowFile   string
	assetsFile  string
	format      string
	failOn      string
	minSeverity string
	top         int
	periodic    bool
	stores      []string
	remote      remoteFlags
	from, to    string
	clickhouse  string
	now         func() time.Time
	ctx         context.Context
	intel       intelFlags
	// records, when set, is a further source of flow records (tests).
	records func(yield func(*flow.Record) bool)
}

func newHuntCmd(s streams) *cobra.Command {
	o := &huntOptions{s: s, now: time.Now}
	cmd := &cobra.Command{
		Use:   "hunt --store DIR [--from T] [--to T] | --clickhouse URL [--sensor GLOB] [--from T] [--to T] | --pcap FILE... | --zeek LOG...",
		Short: "Rank hosts and channels by group behaviour: beacons, lateral fan-out, scans",
		Long: `hunt finds internal hosts used as stepping stones: periodic check-ins to
destinations few other hosts use, and fan-out to internal admin ports.
Every channel (source to destination IP, and source to name) and every host
is scored 0-1 against the population of the same data (docs/hunt.md).

Findings are ranked, most suspicious first, then the recommended actions
ordered by urgency x business criticality (--assets), each with its
escalation level.

--indicators FILE... retro-hunts shared threat intelligence (STIX 2.1
bundles, plain lists of IPs, CIDRs, domains, URLs) over the same flow
records: each indicator that fired is a finding (indicator-match) with its
inside hosts, first and last seen, connections, bytes and the query that
pulls the packets (docs/intel.md). --format blocklist --as nft|squid|plain
writes what is to be blocked; --apply nft loads it with nft -f.

--clickhouse clickhouse://HOST:PORT/DB hunts over the flow records many
sensors exported (docs/fleet.md), --sensor GLOB (repeatable) picking
sensors as it does from an s3:// store; the findings are those hunt
--store gives over the same flows.

Exit codes: 0 ok, 1 error, 2 usage, 3 input was damaged and skipped,
5 disk full, 10 findings at or above --fail-on, 130/143 stopped by
SIGINT/SIGTERM (nothing printed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.pcaps) == 0 && len(o.zeeks) == 0 && len(o.stores) == 0 && o.clickhouse == "" && o.records == nil {
				return usagef("hunt needs --store, --pcap or --zeek input, or --clickhouse")
			}
			if o.clickhouse != "" && (len(o.pcaps) > 0 || len(o.zeeks) > 0 || len(o.stores) > 0) {
				return usagef("--clickhouse is the whole input: not with --store, --pcap or --zeek")
			}
			if (o.from != "" || o.to != "") && len(o.stores) == 0 && o.clickhouse == "" {
				return usagef("--from and --to select from a --store or --clickhouse")
			}
			if err := o.remote.checkSensors(); err != nil {
				return err
			}
			if len(o.remote.sensors) > 0 && o.clickhouse == "" && !anyURL(o.stores) {
				return usagef("--sensor picks sensors of an s3:// store or of --clickhouse")
			}
			if o.format != "table" && o.format != "jsonl" && o.format != "blocklist" {
				return usagef("--format must be table, jsonl or blocklist, not %q", o.format)
			}
			if err := o.intel.check(o.format); err != nil {
				return err
			}
			if o.top < 0 {
				return usagef("--top %d: want 0 (all) or more", o.top)
			}
			if o.ctx == nil {
				o.ctx = cmd.Context()
			}
			return runHunt(o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.stores, "store", nil, "store directory or s3://BUCKET/PREFIX: hunt reads its flow records (repeatable)")
	o.remote.registerRead(f)
	f.StringVar(&o.from, "from", "", "with --store: start time (RFC 3339, date, or relative like -24h)")
	f.StringVar(&o.to, "to", "", "with --store: end time")
	f.StringVar(&o.clickhouse, "clickhouse", "", "hunt over the flow database (clickhouse://HOST:PORT/DB, docs/fleet.md)")
	f.StringArrayVar(&o.pcaps, "pcap", nil, "pcap/pcapng files (gzip/zstd too; - for stdin): several after one --pcap, or repeat it")
	f.StringArrayVar(&o.zeeks, "zeek", nil, "Zeek logs (conn, http, ssl, dns; any order), TSV or JSON lines, gzipped or not: several after one --zeek, or repeat it")
	multiValue(f, "pcap", "zeek")
	f.StringSliceVar(&o.internal, "internal", nil, "inside networks (default RFC 1918 and ULA)")
	f.StringVar(&o.allowFile, "allow", "", "allow list: IPs, CIDRs, domains, *.domain")
	f.StringVar(&o.assetsFile, "assets", "", "asset inventory YAML (cidr/host, name, criticality, owner, role)")
	f.StringVar(&o.format, "format", "table", "output: table, jsonl or blocklist (--as)")
	f.StringVar(&o.failOn, "fail-on", "", "exit 10 when a finding reaches this severity (low, medium, high, critical)")
	f.StringVar(&o.minSeverity, "min-severity", "low", "report findings from this severity up")
	f.IntVar(&o.top, "top", 30, "table: rows of findings to show (0 = all)")
	f.BoolVar(&o.periodic, "periodic", true, "score periodic check-ins (beacons)")
	o.intel.register(cmd)
	handlesSignals(cmd)
	return cmd
}

func runHunt(o *huntOptions) error {
	cfg := hunt.Config{}
	for _, c := range o.internal {
		for _, part := range strings.Split(c, ",") {
			p, err := parseCIDR(strings.TrimSpace(part))
			if err != nil {
				return usagef("--internal %q: %v", part, err)
			}
			cfg.Internal = append(cfg.Internal, p)
		}
	}
	minSev, err := hunt.ParseSeverity(o.minSeverity)
	if err != nil {
		return usagef("--min-severity: %v", err)
	}
	failOn := hunt.Severity(-1)
	if o.failOn != "" {
		if failOn, err = hunt.ParseSeverity(o.failOn); err != nil {
			return usagef("--fail-on: %v", err)
		}
	}
	var allow *assets.AllowList
	if o.allowFile != "" {
		if allow, err = assets.LoadAllow(o.allowFile); err != nil {
			return err
		}
		cfg.Allowed = allow.Allows
	}
	var inv *assets.Inventory
	if o.assetsFile != "" {
		if inv, err = assets.LoadInventory(o.assetsFile); err != nil {
			return err
		}
	}

	if err := o.intel.load(o.s.in, o.s.errOut, "hunt"); err != nil {
		return err
	}

	m := hunt.New(cfg)
	sink := o.intel.tee(m.Add)
	in := pipeline.Input{Pcaps: o.pcaps, Zeek: o.zeeks, ZeekDNS: pipeline.HuntDNS(m)}
	if len(o.stores) > 0 || o.clickhouse != "" {
		sf := selectorFlags{from: o.from, to: o.to}
		if in.Selector, err = sf.selector(o.now()); err != nil {
			return err
		}
	}
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	if len(o.stores) > 0 {
		if in.Stores, err = openStores(o.ctx, o.stores, &o.remote); err != nil {
			return err
		}
	}
	var dmg pipeline.Damage
	if o.clickhouse != "" {
		cfg, cerr := flowDBConfig("--clickhouse", o.clickhouse, o.remote.ca, o.s.errOut, "hunt")
		if cerr != nil {
			return cerr
		}
		dmg, err = huntClickHouse(o.ctx, cfg, &o.remote, in.Selector, m, o.intel.coll)
	} else {
		dmg, err = pipeline.Flows(o.ctx, in, sink)
	}
	if o.ctx.Err() != nil {
		return interrupted(o.ctx)
	}
	if err != nil {
		return err
	}
	if o.records != nil {
		o.records(func(r *flow.Record) bool {
			sink(r)
			return true
		})
	}
	res := m.Score()
	if o.ctx.Err() != nil {
		return interrupted(o.ctx) // nothing printed: the ranking is of part of the input
	}
	var matches []intel.Match
	var matchIDs []string
	for _, mt := range o.intel.matches() {
		if mt.Severity >= minSev {
			matches = append(matches, mt)
			matchIDs = append(matchIDs, fmt.Sprintf("I%d", len(matches)))
		}
	}

	var shown []hunt.Finding
	for _, f := range res.Findings {
		if !o.periodic && f.Beacon && !f.Lateral && !f.Scan {
			continue
		}
		if f.Severity >= minSev {
			shown = append(shown, f)
		}
	}
	// Every finding names its action; the actions list covers medium and
	// above, where someone has to do something, each with the findings
	// behind it (numbered as shown: F1 first) and their packets.
	var subjects []report.Subject
	for i := range shown {
		f := &shown[i]
		a, _ := inv.Lookup(f.Inside())
		s := report.SubjectOf(f, a)
		f.Action = report.Primary(s)
		if f.Severity >= hunt.Medium {
			id := findingID(i)
			s.Evidence, s.Windows = []string{id}, []report.Window{report.FindingWindow(id, f)}
			subjects = append(subjects, s)
		}
	}
	for _, s := range report.IntelSubjects(matches, matchIDs, inv, cfg.Internal) {
		if s.Severity >= int(hunt.Medium) {
			subjects = append(subjects, s)
		}
	}
	actions := report.Recommend(subjects)

	switch o.format {
	case "jsonl":
		err = writeHuntJSONL(o.s.out, shown, matchIDs, matches, actions, inv)
	case "blocklist":
	default:
		err = writeHuntTable(textOut(o.s.out), res, shown, matchIDs, matches, actions, inv, o.top)
	}
	if err != nil {
		return err
	}
	if o.format == "blocklist" || o.intel.apply != "" {
		l := blocklist.New(cfg.Internal)
		l.AddSubjects(subjects)
		for i := range matches {
			l.AddMatch(matchIDs[i], &matches[i])
		}
		if err := o.intel.writeBlocklist(o.ctx, o.s.out, o.s.errOut, l, blockHeader(o.now(), huntInputNames(o)), o.format == "blocklist"); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.s.errOut, "hunt: %d records, %d internal hosts, %d channels measured, %d findings shown\n",
		res.Records, res.Hosts, res.Channels, len(shown))
	printDamage(o.s.errOut, "hunt", dmg)
	intelErr := o.intel.report(o.s.errOut, "hunt", len(matches))
	if failOn >= 0 {
		for _, mt := range matches {
			if mt.Severity >= failOn {
				return findingsError{fmt.Sprintf("indicator matches at %s or above", failOn)}
			}
		}
		for _, f := range shown {
			if f.Severity >= failOn {
				if !dmg.Empty() {
					fmt.Fprintf(o.s.errOut, "hunt: %d damaged packets or rows were skipped\n", dmg.Count)
				}
				return findingsError{fmt.Sprintf("findings at %s or above", failOn)}
			}
		}
		if failOn <= hunt.Info && len(res.Findings) > 0 {
			return findingsError{"findings at info or above"}
		}
	}
	if !dmg.Empty() {
		return partialError{fmt.Sprintf("%d damaged packets or rows were skipped", dmg.Count)}
	}
	return intelErr
}

// huntInputNames names the inputs for a block list's header.
func huntInputNames(o *huntOptions) []string {
	var in []string
	for _, s := range o.stores {
		d := "store " + filepath.Base(s)
		if o.from != "" || o.to != "" {
			d += fmt.Sprintf(" from %s to %s", orDash(o.from), orDash(o.to))
		}
		in = append(in, d)
	}
	for _, p := range o.pcaps {
		in = append(in, "pcap "+filepath.Base(p))
	}
	for _, z := range o.zeeks {
		in = append(in, "conn.log "+filepath.Base(z))
	}
	for _, f := range o.intel.files {
		in = append(in, "indicators "+filepath.Base(f))
	}
	return in
}

func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// findingID numbers the i-th finding shown, as report numbers its own.
func findingID(i int) string { return fmt.Sprintf("F%d", i+1) }

// writeHuntJSONL writes the findings, the matched indicators, then the
// actions: the records of pkg/jsonl that report writes too.
func writeHuntJSONL(w io.Writer, fs []hunt.Finding, ids []string, ms []intel.Match, acts []report.Action, inv *assets.Inventory) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range fs {
		a, known := inv.Lookup(fs[i].Inside())
		if err := enc.Encode(report.NewFindingRecord(findingID(i), &fs[i], a, known)); err != nil {
			return err
		}
	}
	for i := range ms {
		if err := enc.Encode(report.NewIndicatorMatchRecord(ids[i], &ms[i])); err != nil {
			return err
		}
	}
	for _, a := range acts {
		if err := enc.Encode(report.NewActionRecord(a)); err != nil {
			return err
		}
	}
	return nil
}

func writeHuntTable(w io.Writer, res hunt.Result, fs []hunt.Finding, ids []string, ms []intel.Match, acts []report.Action, inv *assets.Inventory, top int) error {
	fmt.Fprintf(w, "Hunt over %s to %s: %d records, %d internal hosts, %d channels measured (population weight %.2f)\n\n",
		res.First.Format(time.RFC3339), res.Last.Format(time.RFC3339), res.Records, res.Hosts, res.Channels, res.PopulationWeight)
	if len(ms) > 0 {
		fmt.Fprintln(w, "Shared indicators that matched (retro-hunt):")
		report.WriteIntelTable(w, ids, ms)
		fmt.Fprintln(w)
	}
	if len(fs) == 0 && len(acts) == 0 {
		fmt.Fprintln(w, "No findings.")
		return nil
	}
	if len(fs) == 0 {
		fmt.Fprintln(w, "No hunt findings.")
		return writeActionsTable(w, acts)
	}
	t := texttable.New(w, true, "#", "Score", "Severity", "Type", "Dir", "Source", "Destination", "Period", "Conns", "Pop", "Techniques", "Why")
	n := 0
	for i, f := range fs {
		if top > 0 && n == top {
			break
		}
		n++
		src := f.Src.String()
		if a, ok := inv.Lookup(f.Src); ok && a.Name != "" {
			src += " (" + a.Name + ")"
		}
		dst, period, pop, dir := "-", "-", "-", "-"
		if f.Kind == hunt.KindChannel {
			switch {
			case !f.Dst.IsValid():
				dst = fmt.Sprintf("%s:%d/%s", f.DstName, f.DstPort, hunt.ProtoName(f.Proto))
			case f.DstName != "":
				dst = fmt.Sprintf("%s %s:%d/%s", f.DstName, f.Dst, f.DstPort, hunt.ProtoName(f.Proto))
			default:
				dst = fmt.Sprintf("%s:%d/%s", f.Dst, f.DstPort, hunt.ProtoName(f.Proto))
			}
			if f.Via.IsValid() {
				dst += " via " + f.Via.String()
			}
			dir = map[hunt.Direction]string{hunt.Outbound: "out", hunt.Inbound: "in", hunt.Internal: "int"}[f.Direction]
			pop = fmt.Sprintf("%d/%d", f.Popularity, f.Hosts)
			if f.PeriodSec > 0 {
				period = fmt.Sprintf("%s ±%.0f%%", hunt.FormatPeriod(f.PeriodSec), 100*f.Jitter)
			}
		}
		if f.Kind == hunt.KindICMP {
			dst, dir = f.Dst.String()+"/"+hunt.ProtoName(f.Proto), "out"
			if f.DstName != "" {
				dst = f.DstName + " " + dst
			}
			pop = fmt.Sprintf("%d/%d", f.Popularity, f.Hosts)
			if f.Beacon && f.PeriodSec > 0 {
				period = hunt.FormatPeriod(f.PeriodSec)
			}
		}
		if f.Kind == hunt.KindDNS {
			dst = fmt.Sprintf("%s via %s:%d/%s", f.DstName, f.Dst, f.DstPort, hunt.ProtoName(f.Proto))
			pop = fmt.Sprintf("%d/%d", f.Popularity, f.Hosts)
			if f.Beacon && f.PeriodSec > 0 {
				period = hunt.FormatPeriod(f.PeriodSec)
			}
		}
		why := ""
		if len(f.Reasons) > 0 {
			why = f.Reasons[0]
		}
		t.Append(fmt.Sprint(i+1), fmt.Sprintf("%.2f", f.Score), f.Severity.String(), string(f.Kind), dir, src, dst, period,
			fmt.Sprint(f.Connections), pop, strings.Join(f.Attack, " "), why)
	}
	t.Render()
	if top > 0 && len(fs) > top {
		fmt.Fprintf(w, "(%d more findings: --top 0 shows all, --format jsonl gives every field)\n", len(fs)-top)
	}
	return writeActionsTable(w, acts)
}

func writeActionsTable(w io.Writer, acts []report.Action) error {
	if len(acts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nRecommended actions (urgency x business criticality):")
	t := texttable.New(w, true, "Priority", "Escalation", "Action", "Target", "Host", "Criticality", "Why")
	for _, a := range acts {
		host := a.Host.String()
		if a.HostName != "" {
			host += " (" + a.HostName + ")"
		}
		t.Append(fmt.Sprint(a.Priority), a.Escalation.String(), string(a.Kind), a.Target, host, a.Criticality.String(), a.Why)
	}
	t.Render()
	return nil
}
