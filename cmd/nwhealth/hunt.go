package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/texttable"
	"github.com/spf13/cobra"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
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
	from, to    string
	clickhouse  string
	sensors     []string
	fleet       fleetFlags
	now         func() time.Time
	ctx         context.Context
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

--clickhouse clickhouse://HOST:PORT/DB hunts over the flow records many
sensors exported (docs/fleet.md), --sensor GLOB (repeatable) picking
sensors; the findings are those hunt --store gives over the same flows.

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
			if (len(o.sensors) > 0 || o.fleet.ca != "") && o.clickhouse == "" {
				return usagef("--sensor and --ca go with --clickhouse")
			}
			if o.format != "table" && o.format != "jsonl" {
				return usagef("--format must be table or jsonl, not %q", o.format)
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
	f.StringArrayVar(&o.stores, "store", nil, "store directory: hunt reads its flow records (repeatable)")
	f.StringVar(&o.from, "from", "", "with --store: start time (RFC 3339, date, or relative like -24h)")
	f.StringVar(&o.to, "to", "", "with --store: end time")
	f.StringVar(&o.clickhouse, "clickhouse", "", "hunt over the flow database (clickhouse://HOST:PORT/DB, docs/fleet.md)")
	f.StringArrayVar(&o.sensors, "sensor", nil, "with --clickhouse: sensors to hunt over, by name or glob (repeatable; default all)")
	o.fleet.register(cmd, false)
	f.StringArrayVar(&o.pcaps, "pcap", nil, "pcap/pcapng files (gzip/zstd too; - for stdin): several after one --pcap, or repeat it")
	f.StringArrayVar(&o.zeeks, "zeek", nil, "Zeek logs (conn, http, ssl, dns; any order), TSV or JSON lines, gzipped or not: several after one --zeek, or repeat it")
	multiValue(f, "pcap", "zeek")
	f.StringSliceVar(&o.internal, "internal", nil, "inside networks (default RFC 1918 and ULA)")
	f.StringVar(&o.allowFile, "allow", "", "allow list: IPs, CIDRs, domains, *.domain")
	f.StringVar(&o.assetsFile, "assets", "", "asset inventory YAML (cidr/host, name, criticality, owner, role)")
	f.StringVar(&o.format, "format", "table", "output: table or jsonl")
	f.StringVar(&o.failOn, "fail-on", "", "exit 10 when a finding reaches this severity (low, medium, high, critical)")
	f.StringVar(&o.minSeverity, "min-severity", "low", "report findings from this severity up")
	f.IntVar(&o.top, "top", 30, "table: rows of findings to show (0 = all)")
	f.BoolVar(&o.periodic, "periodic", true, "score periodic check-ins (beacons)")
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

	m := hunt.New(cfg)
	in := pipeline.Input{Pcaps: o.pcaps, Zeek: o.zeeks}
	if len(o.stores) > 0 || o.clickhouse != "" {
		sf := selectorFlags{from: o.from, to: o.to}
		if in.Selector, err = sf.selector(o.now()); err != nil {
			return err
		}
	}
	if len(o.stores) > 0 {
		if in.Stores, err = openStores(o.stores); err != nil {
			return err
		}
	}
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	var dmg pipeline.Damage
	if o.clickhouse != "" {
		// The heavy part runs in ClickHouse (docs/fleet.md).
		fleet, closeDB, ferr := openFleet(o.ctx, o.clickhouse, &o.fleet, o.sensors, in.Selector)
		if ferr != nil {
			return ferr
		}
		defer closeDB()
		err = pipeline.HuntFleet(o.ctx, fleet, m)
	} else {
		dmg, err = pipeline.Flows(o.ctx, in, m.Add)
	}
	if o.ctx.Err() != nil {
		return interrupted(o.ctx)
	}
	if err != nil {
		return err
	}
	if o.records != nil {
		m.AddAll(o.records)
	}
	res := m.Score()
	if o.ctx.Err() != nil {
		return interrupted(o.ctx) // nothing printed: the ranking is of part of the input
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
	actions := report.Recommend(subjects)

	switch o.format {
	case "jsonl":
		err = writeHuntJSONL(o.s.out, shown, actions, inv)
	default:
		err = writeHuntTable(o.s.out, res, shown, actions, inv, o.top)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.s.errOut, "hunt: %d records, %d internal hosts, %d channels measured, %d findings shown\n",
		res.Records, res.Hosts, res.Channels, len(shown))
	printDamage(o.s.errOut, "hunt", dmg)
	if failOn >= 0 {
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
	return nil
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

// writeHuntJSONL writes the findings, then the actions: the records of
// pkg/jsonl that report writes too.
func writeHuntJSONL(w io.Writer, fs []hunt.Finding, acts []report.Action, inv *assets.Inventory) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range fs {
		a, known := inv.Lookup(fs[i].Inside())
		if err := enc.Encode(report.NewFindingRecord(findingID(i), &fs[i], a, known)); err != nil {
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

func writeHuntTable(w io.Writer, res hunt.Result, fs []hunt.Finding, acts []report.Action, inv *assets.Inventory, top int) error {
	fmt.Fprintf(w, "Hunt over %s to %s: %d records, %d internal hosts, %d channels measured (population weight %.2f)\n\n",
		res.First.Format(time.RFC3339), res.Last.Format(time.RFC3339), res.Records, res.Hosts, res.Channels, res.PopulationWeight)
	if len(fs) == 0 {
		fmt.Fprintln(w, "No findings.")
		return nil
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
	if len(acts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nRecommended actions (urgency x business criticality):")
	t = texttable.New(w, true, "Priority", "Escalation", "Action", "Target", "Host", "Criticality", "Why")
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
