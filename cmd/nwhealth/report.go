package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nwhealth/nwhealth/internal/atomicfile"
	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/blocklist"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/report"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
)

func init() { subcommands = append(subcommands, subcommand{"report", newReportCmd}) }

type reportOptions struct {
	s           streams
	pcaps       []string
	zeeks       []string
	stores      []string
	remote      remoteFlags
	from, to    string
	internal    []string
	allowFile   string
	assetsFile  string
	format      string
	output      string
	failOn      string
	minSeverity string
	title       string
	clickhouse  string
	secrets     string // --ntlm-secrets: a path, never a secret
	ntlm        *ntlmseal.Secrets
	keytabs     []string // --keytab: paths, never keys
	keys        *krbseal.Keys
	now         func() time.Time
	ctx         context.Context
	intel       intelFlags
	nets        []netip.Prefix // the inside networks, from --internal
}

func newReportCmd(s streams) *cobra.Command {
	o := &reportOptions{s: s, now: time.Now}
	cmd := &cobra.Command{
		Use:   "report --store DIR [--from T] [--to T] [--clickhouse URL [--sensor GLOB]] | --pcap FILE... [--zeek FILE...]",
		Short: "One incident view joining replay and hunt: compromised hosts, what was done, who else is touched, what to do first",
		Long: `report runs hunt and replay over the same traffic, once each, and joins
them by host and time (docs/report.md): per host its role (stepping stone,
beaconing, lateral source, target), the highest phase of the attack model it
reached and its progression, the accounts used, the hosts it reached (impact
scope) and the evidence windows to pull with nwhealth query; per external
controller the inside hosts talking to it; and the recommended actions,
ordered by urgency x business criticality (--assets), each with its
escalation level and the findings and operations behind it.

Input: --store DIR with --from/--to (hunt reads the flow records, replay the
packets of the range), or --pcap FILE... (both read the same packets in one
pass); --zeek FILE... adds conn.log rows to hunt. --clickhouse URL hunts over
the flow database of many sensors instead (docs/fleet.md), and replay reads
the packets of the --store directories or s3:// stores; --sensor GLOB picks
the same sensors from both.

Output (--format): table (default), jsonl, html (one self-contained page:
timeline, progression per host, graph of hosts and operations, actions),
stix (a STIX 2.1 bundle) or blocklist (--as nft|squid|plain: what the
"block destination" actions and matched indicators name); -o FILE writes
to a file.

--indicators FILE... retro-hunts shared threat intelligence (STIX 2.1
bundles, plain lists) over the same flow records: matches are findings
(I1...) that feed the hosts, progression and actions, and the STIX output
carries a sighting of each matched partner indicator (docs/intel.md).
--apply nft loads the block list with nft -f.

Exit codes: 0 ok, 1 error, 2 usage, 3 input was damaged and skipped,
5 disk full, 10 the incident reaches --fail-on, 130/143 stopped by
SIGINT/SIGTERM (nothing printed, no -o file written).`,
		Example: `  nwhealth report --store /var/lib/nwhealth --from -24h --assets assets.yaml
  nwhealth report --pcap day.pcap --format html -o report.html
  nwhealth report --store DIR --format stix -o bundle.json
  nwhealth report --store DIR --from -1h --format jsonl --fail-on high   # cron`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.ctx == nil {
				o.ctx = cmd.Context()
			}
			return runReport(o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.stores, "store", nil, "store directory or s3://BUCKET/PREFIX: hunt reads its flow records, replay its packets (repeatable)")
	o.remote.registerRead(f)
	f.StringVar(&o.from, "from", "", "with --store: start time (RFC 3339, date, or relative like -24h)")
	f.StringVar(&o.to, "to", "", "with --store: end time")
	f.StringArrayVar(&o.pcaps, "pcap", nil, "pcap/pcapng files (gzip/zstd too), merged by time: several after one --pcap, or repeat it")
	f.StringArrayVar(&o.zeeks, "zeek", nil, "Zeek logs (conn, http, ssl, dns; any order), more flow records for hunt: several after one --zeek, or repeat it")
	multiValue(f, "pcap", "zeek")
	f.StringSliceVar(&o.internal, "internal", nil, "inside networks (default RFC 1918 and ULA)")
	f.StringVar(&o.allowFile, "allow", "", "allow list: IPs, CIDRs, domains, *.domain")
	f.StringVar(&o.assetsFile, "assets", "", "asset inventory YAML (cidr/host, name, criticality, owner, role)")
	f.StringVar(&o.format, "format", "table", "output: table, jsonl, html, stix or blocklist (--as)")
	f.StringVarP(&o.output, "output", "o", "", "write to this file (default standard output)")
	f.StringVar(&o.failOn, "fail-on", "", "exit 10 when the incident reaches this severity (low, medium, high, critical)")
	f.StringVar(&o.minSeverity, "min-severity", "medium", "leave out findings, and hosts outside a compromised host's impact scope, below this")
	f.StringVar(&o.title, "title", "", "title of the HTML page and STIX report")
	o.intel.register(cmd)
	registerNTLMSecrets(f, &o.secrets)
	registerKeytab(f, &o.keytabs)
	f.StringVar(&o.clickhouse, "clickhouse", "", "hunt over the flow database (clickhouse://HOST:PORT/DB) instead of the stores' flow records")
	handlesSignals(cmd)
	return cmd
}

func runReport(o *reportOptions) error {
	failOn := hunt.Severity(-1)
	if o.failOn != "" {
		var err error
		if failOn, err = hunt.ParseSeverity(o.failOn); err != nil {
			return usagef("--fail-on: %v", err)
		}
	}
	var err error
	if o.ntlm, err = loadNTLMSecrets(o.secrets, o.s.errOut, "report"); err != nil {
		return err
	}
	if o.keys, err = loadKeytabs(o.keytabs, o.s.errOut, "report"); err != nil {
		return err
	}
	inc, st, damage, err := analyzeReport(o)
	if err != nil {
		return err
	}
	if err := writeReport(o, inc); err != nil {
		return err
	}
	fmt.Fprintf(o.s.errOut, "report: %d flow records, %d packets replayed, %d operations, %d findings; %d hosts (%d compromised), %d controllers, %d actions\n",
		inc.Records, st.Packets, len(inc.Operations), len(inc.Findings), len(inc.Hosts), inc.Compromised, len(inc.Controllers), len(inc.Actions))
	printDamage(o.s.errOut, "report", damage)
	intelErr := o.intel.report(o.s.errOut, "report", len(inc.Intel))
	if failOn >= 0 && len(inc.Hosts)+len(inc.Controllers) > 0 && inc.Severity >= failOn {
		return findingsError{fmt.Sprintf("incident at %s (--fail-on %s)", inc.Severity, failOn)}
	}
	if !damage.Empty() {
		return partialError{fmt.Sprintf("%d damaged places in the input were skipped", damage.Count)}
	}
	if st.Damaged() {
		for _, g := range st.GapPlaces {
			fmt.Fprintln(o.s.errOut, "report: gap inside a stream:", g)
		}
		return partialError{"incomplete streams: replay may have missed operations (" + statsLine(st) + ")"}
	}
	return intelErr
}

// analyzeReport checks the options, runs hunt and replay over the input and
// builds the incident.
func analyzeReport(o *reportOptions) (*report.Incident, replay.Stats, pipeline.Damage, error) {
	var st replay.Stats
	if len(o.pcaps) == 0 && len(o.stores) == 0 {
		return nil, st, pipeline.Damage{}, usagef("report needs --store or --pcap input (--zeek only adds to hunt)")
	}
	if len(o.pcaps) > 0 && len(o.stores) > 0 {
		return nil, st, pipeline.Damage{}, usagef("give --store or --pcap, not both")
	}
	if (o.from != "" || o.to != "") && len(o.stores) == 0 {
		return nil, st, pipeline.Damage{}, usagef("--from and --to select from a --store")
	}
	if o.clickhouse != "" && len(o.zeeks) > 0 {
		return nil, st, pipeline.Damage{}, usagef("--clickhouse gives hunt its flow records: not with --zeek")
	}
	if err := o.remote.checkSensors(); err != nil {
		return nil, st, pipeline.Damage{}, err
	}
	if len(o.remote.sensors) > 0 && o.clickhouse == "" && !anyURL(o.stores) {
		return nil, st, pipeline.Damage{}, usagef("--sensor picks sensors of an s3:// store or of --clickhouse")
	}
	switch o.format {
	case "table", "jsonl", "html", "stix", "blocklist":
	default:
		return nil, st, pipeline.Damage{}, usagef("--format must be table, jsonl, html, stix or blocklist, not %q", o.format)
	}
	if o.output == "" && (o.format == "html" || o.format == "stix") && isTerminal(o.s.out) {
		return nil, st, pipeline.Damage{}, usagef("--format %s writes a file: give -o FILE", o.format)
	}
	cfg := hunt.Config{}
	for _, c := range o.internal {
		for _, part := range strings.Split(c, ",") {
			p, err := parseCIDR(strings.TrimSpace(part))
			if err != nil {
				return nil, st, pipeline.Damage{}, usagef("--internal %q: %v", part, err)
			}
			cfg.Internal = append(cfg.Internal, p)
		}
	}
	minSev, err := hunt.ParseSeverity(o.minSeverity)
	if err != nil {
		return nil, st, pipeline.Damage{}, usagef("--min-severity: %v", err)
	}
	var allow *assets.AllowList
	if o.allowFile != "" {
		if allow, err = assets.LoadAllow(o.allowFile); err != nil {
			return nil, st, pipeline.Damage{}, err
		}
		cfg.Allowed = allow.Allows
	}
	var inv *assets.Inventory
	if o.assetsFile != "" {
		if inv, err = assets.LoadInventory(o.assetsFile); err != nil {
			return nil, st, pipeline.Damage{}, err
		}
	}
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	if err := o.intel.check(o.format); err != nil {
		return nil, st, pipeline.Damage{}, err
	}
	if err := o.intel.load(o.s.in, o.s.errOut, "report"); err != nil {
		return nil, st, pipeline.Damage{}, err
	}
	m := hunt.New(cfg)
	ops, st, damage, err := reportInputs(o.ctx, o, m)
	if err != nil {
		return nil, st, damage, err
	}
	inc := report.Build(report.Input{Hunt: m.Score(), Contacts: m.Contacts, Operations: ops, Inventory: inv,
		Internal: cfg.Internal, MinSeverity: minSev, Allowed: cfg.Allowed, DomainControllers: st.DomainControllers,
		Intel: o.intel.matches()})
	o.nets = cfg.Internal
	return inc, st, damage, nil
}

// reportInputs runs hunt and replay over the input once each: a capture's
// packets are read once and feed both the flow builder and the replay
// pipeline; a store gives hunt its flow records and replay its packets of
// the range.
func reportInputs(ctx context.Context, o *reportOptions, m *hunt.Model) ([]replay.Operation, replay.Stats, pipeline.Damage, error) {
	in := pipeline.Input{Pcaps: o.pcaps, Zeek: o.zeeks, ZeekDNS: pipeline.HuntDNS(m)}
	if len(o.stores) > 0 {
		var err error
		sf := selectorFlags{from: o.from, to: o.to}
		if in.Selector, err = sf.selector(o.now()); err != nil {
			return nil, replay.Stats{}, pipeline.Damage{}, err
		}
		rf := o.remote
		if !anyURL(o.stores) {
			rf.sensors = nil // local stores are read whole: the globs pick from --clickhouse
		}
		if in.Stores, err = openStores(ctx, o.stores, &rf); err != nil {
			return nil, replay.Stats{}, pipeline.Damage{}, err
		}
	}
	flows := o.intel.tee(m.Add)
	var dbDamage pipeline.Damage
	if o.clickhouse != "" {
		// Hunt (and the indicators) from the flow database (docs/fleet.md);
		// packets from the input.
		cfg, err := flowDBConfig("--clickhouse", o.clickhouse, o.remote.ca, o.s.errOut, "report")
		if err != nil {
			return nil, replay.Stats{}, pipeline.Damage{}, err
		}
		if dbDamage, err = huntClickHouse(ctx, cfg, &o.remote, in.Selector, m, o.intel.coll); err != nil {
			if ctx.Err() != nil {
				return nil, replay.Stats{}, pipeline.Damage{}, interrupted(ctx)
			}
			return nil, replay.Stats{}, pipeline.Damage{}, err
		}
		flows = nil
	}
	src, err := pipeline.OpenPackets(ctx, in, pipeline.PacketOptions{Flows: flows})
	if err != nil {
		return nil, replay.Stats{}, pipeline.Damage{}, err
	}
	defer src.Close()
	var ops []replay.Operation
	st, err := replay.Run(ctx, src, replay.Config{Secrets: o.ntlm, Keys: o.keys}, func(op replay.Operation) { ops = append(ops, op) })
	src.Finish()
	damage := src.Damage()
	damage.Places = append(damage.Places, dbDamage.Places...)
	damage.Counts = append(damage.Counts, dbDamage.Counts...)
	damage.Count += dbDamage.Count
	if ctx.Err() != nil {
		return nil, st, damage, interrupted(ctx)
	}
	if err != nil {
		// Not a damaged record (those are skipped): the input ended badly.
		damage.Places = append(damage.Places, err.Error())
		damage.Count++
	}
	sortOps(ops)
	return ops, st, damage, nil
}

// writeReport renders the incident; a file is written beside its name and
// renamed when whole, so a reader never sees half a page, and a failed or
// interrupted run leaves the old file as it was.
func writeReport(o *reportOptions, inc *report.Incident) error {
	w := o.s.out
	var f *atomicfile.File
	if o.output != "" && o.output != "-" {
		var err error
		if f, err = atomicfile.Create(o.output); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		defer f.Abort()
		w = f
	}
	meta := report.Meta{Title: o.title, Generated: o.now().UTC(), Inputs: reportInputNames(o)}
	var err error
	switch o.format {
	case "jsonl":
		err = report.WriteJSONL(w, inc)
	case "html":
		err = report.WriteHTML(w, inc, meta)
	case "stix":
		err = report.WriteSTIX(w, inc, meta)
	case "blocklist":
		err = o.blocklist(w, inc, meta, true)
	default:
		err = report.WriteTable(textOut(w), inc)
	}
	if err == nil && o.format != "blocklist" && o.intel.apply != "" {
		err = o.blocklist(w, inc, meta, false)
	}
	if err == nil && o.ctx != nil && o.ctx.Err() != nil {
		return interrupted(o.ctx) // the deferred Abort drops the file
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if f != nil {
		return f.Commit()
	}
	return nil
}

// blocklist lists what the incident asks to block; write says whether
// to write it (else it is only applied).
func (o *reportOptions) blocklist(w io.Writer, inc *report.Incident, meta report.Meta, write bool) error {
	l := blocklist.New(o.nets)
	l.AddIncident(inc)
	return o.intel.writeBlocklist(o.ctx, w, o.s.errOut, l, blockHeader(meta.Generated, meta.Inputs), write)
}

func reportInputNames(o *reportOptions) []string {
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
	if o.clickhouse != "" {
		d := "flow database " + flowDBName(o.clickhouse)
		if len(o.remote.sensors) > 0 {
			d += " sensors " + strings.Join(o.remote.sensors, ",")
		}
		in = append(in, d)
	}
	for _, f := range o.intel.files {
		in = append(in, "indicators "+filepath.Base(f))
	}
	return in
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
