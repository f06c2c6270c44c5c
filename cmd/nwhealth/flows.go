package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, subcommand{"flows", newFlowsCmd}) }

type flowsOptions struct {
	streams
	stores []string
	remote remoteFlags
	sel    selectorFlags
	format string
	now    func() time.Time
	// --export: the flow database, and what goes with it.
	export    string
	maxAge    string
	batchRows int
	ctx       context.Context
}

func newFlowsCmd(s streams) *cobra.Command {
	o := &flowsOptions{streams: s, now: time.Now}
	cmd := &cobra.Command{
		Use:   "flows --store DIR [selectors] [--format table|jsonl|zeek] [--export clickhouse://HOST:PORT/DB]",
		Short: "List the flow records kept beside the packets",
		Long: `Flows prints the store's flow records (one per TCP connection or UDP/ICMP
exchange, with packets and bytes each way, TCP flags, and the TLS SNI, HTTP
Host or DNS name when visible) that overlap the time range and match the
selectors. --format zeek writes a Zeek conn.log (TSV) that Zeek tools and
RITA read.

--export clickhouse://[USER@]HOST[:PORT]/DB[?secure=true&cluster=NAME] copies
the flow records of every sealed shard in the time range to ClickHouse
(docs/format/clickhouse.md), creating the database and tables if missing.
Shards already exported are skipped, so a re-run after a failure exports
exactly what is missing. A shard of an s3:// store goes under the sensor
that wrote it (--sensor GLOB picks sensors, as for reading); a local
store's under --sensor NAME (default: the host name). The password comes
from CLICKHOUSE_PASSWORD, the file CLICKHOUSE_PASSWORD_FILE names, or the
URL (which ps shows every local user: warned about), and is never printed;
--ca trusts a private CA for ?secure=true as for an https object store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ctx = cmd.Context()
			return runFlows(o)
		},
	}
	cmd.Flags().StringArrayVar(&o.stores, "store", nil, "store directory or s3://BUCKET/PREFIX (repeatable)")
	o.remote.registerRead(cmd.Flags())
	o.sel.register(cmd, false)
	cmd.Flags().StringVar(&o.format, "format", "", "table, jsonl or zeek (default: table on a terminal, jsonl otherwise)")
	cmd.Flags().StringVar(&o.export, "export", "", "copy the flow records to this ClickHouse database (clickhouse://HOST:PORT/DB)")
	cmd.Flags().StringVar(&o.maxAge, "max-age", "", "with --export: drop days older than this before the newest exported one (e.g. 90d)")
	cmd.Flags().IntVar(&o.batchRows, "batch-rows", pipeline.DefaultBatchRows, "with --export: flow records per INSERT")
	cmd.Flags().MarkHidden("batch-rows")
	return cmd
}

func runFlows(o *flowsOptions) error {
	if o.export == "" && o.maxAge != "" {
		return usagef("--max-age goes with --export")
	}
	if o.export != "" {
		sel, err := o.sel.selector(o.now())
		if err != nil {
			return err
		}
		return runExport(o, sel)
	}
	format := o.format
	if format == "" {
		format = "jsonl"
		if isTerminal(o.out) {
			format = "table"
		}
	}
	if format != "table" && format != "jsonl" && format != "zeek" {
		return usagef("--format must be table, jsonl or zeek")
	}
	sel, err := o.sel.selector(o.now())
	if err != nil {
		return err
	}
	stores, err := openStores(context.Background(), o.stores, &o.remote)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(o.out, 1<<16)
	var emit func(*flow.Record) error
	var finish func() error
	switch format {
	case "jsonl":
		enc := json.NewEncoder(bw)
		emit = func(r *flow.Record) error { return enc.Encode(flowJSON(r)) }
		finish = func() error { return nil }
	case "zeek":
		fmt.Fprint(bw, zeekHeader(o.now()))
		emit = func(r *flow.Record) error { _, err := io.WriteString(bw, zeekLine(r)); return err }
		finish = func() error {
			_, err := fmt.Fprintf(bw, "#close\t%s\n", o.now().UTC().Format("2006-01-02-15-04-05"))
			return err
		}
	default:
		var rows [][]string
		emit = func(r *flow.Record) error { rows = append(rows, flowRow(r)); return nil }
		finish = func() error {
			return writeTable(textOut(bw), []string{"first", "duration", "proto", "orig", "resp", "vlan", "pkts o/r", "bytes o/r", "state", "name"}, rows)
		}
	}
	runErr := store.Flows(stores, sel, pipeline.NewFlowTable, emit)
	var dmg *store.DamageError
	if runErr != nil && !errors.As(runErr, &dmg) {
		return runErr
	}
	if err := finish(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if dmg != nil {
		for _, d := range dmg.Damage {
			fmt.Fprintln(o.errOut, "nwhealth: damaged:", d)
		}
		return partialError{fmt.Sprintf("%d damaged places skipped", len(dmg.Damage))}
	}
	return nil
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1, 58:
		return "icmp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

func hostPort(a netip.Addr, p uint16, proto uint8) string {
	if proto != 6 && proto != 17 && proto != 132 {
		return a.String()
	}
	return netip.AddrPortFrom(a, p).String()
}

func flowRow(r *flow.Record) []string {
	name := r.Name
	if name != "" {
		name += " (" + r.NameSource.String() + ")"
	}
	vlan := ""
	if r.VLAN != 0 {
		vlan = strconv.Itoa(int(r.VLAN))
	}
	return []string{r.First.UTC().Format("2006-01-02T15:04:05.000Z"), r.Duration().Round(time.Millisecond).String(), protoName(r.Proto),
		hostPort(r.Orig, r.OrigPort, r.Proto), hostPort(r.Resp, r.RespPort, r.Proto), vlan,
		fmt.Sprintf("%d/%d", r.OrigPkts, r.RespPkts), fmt.Sprintf("%d/%d", r.OrigBytes, r.RespBytes), r.State(), name}
}

func tcpFlags(f uint8) string {
	var b strings.Builder
	for i, c := range "FSRPAUEC" {
		if f&(1<<i) != 0 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// flowJSON is one flow's JSON Lines record.
func flowJSON(r *flow.Record) jsonl.Flow {
	l := jsonl.Flow{Type: jsonl.TypeFlow, TS: jsonl.Time(r.First), End: jsonl.Time(r.Last),
		Duration: r.Duration().Seconds(), Proto: protoName(r.Proto), Orig: r.Orig.String(), OrigPort: r.OrigPort,
		Resp: r.Resp.String(), RespPort: r.RespPort, VLAN: r.VLAN, OrigPkts: r.OrigPkts, RespPkts: r.RespPkts,
		OrigBytes: r.OrigBytes, RespBytes: r.RespBytes, OrigData: r.OrigData, RespData: r.RespData, State: r.State(),
		Name: r.Name, NameSource: r.NameSource.String(), Partial: r.Partial}
	if r.Proto == 6 {
		l.OrigFlags, l.RespFlags = tcpFlags(r.OrigFlags), tcpFlags(r.RespFlags)
	}
	for _, a := range r.Answers {
		l.Answers = append(l.Answers, a.String())
	}
	l.HTTPTarget, l.ProxyDest, l.Bursts = r.HTTPTarget, r.ProxyDest, r.Bursts.N
	c := r.TLS
	l.TLSNoSNI, l.CertSeen, l.CertSelfSigned = c.NoSNI(), c.Seen(), c.SelfSigned()
	l.CertIssuerAbsent, l.CertSubjectCN, l.CertIssuerCN = c.Flags&flow.TLSIssuerAbsent != 0, c.SubjectCN, c.IssuerCN
	if r.Bursts.N > 1 {
		for _, ms := range r.Bursts.At {
			l.BurstStarts = append(l.BurstStarts, r.First.Add(time.Duration(ms)*time.Millisecond).UTC().Format(time.RFC3339Nano))
		}
	}
	return l
}

const zeekFields = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents"
const zeekTypes = "time\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]"

func zeekHeader(now time.Time) string {
	return "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t" +
		now.UTC().Format("2006-01-02-15-04-05") + "\n#fields\t" + zeekFields + "\n#types\t" + zeekTypes + "\n"
}

// zeekUID derives a stable connection id from the flow's identity.
func zeekUID(r *flow.Record) string {
	h := fnv.New128a()
	fmt.Fprintf(h, "%s|%d|%s|%d|%d|%d", r.Orig, r.OrigPort, r.Resp, r.RespPort, r.Proto, r.First.UnixNano())
	sum := h.Sum(nil)
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte{'C'}
	for _, half := range [][]byte{sum[:8], sum[8:]} {
		v := binary.BigEndian.Uint64(half)
		for i := 0; i < 9; i++ {
			b = append(b, digits[v%62])
			v /= 62
		}
	}
	return string(b)
}

// zeekHistory approximates Zeek's history letters from flag unions (the
// order of events is not kept).
func zeekHistory(r *flow.Record) string {
	if r.Proto != 6 {
		var b strings.Builder
		if r.OrigPkts > 0 {
			b.WriteByte('D')
		}
		if r.RespPkts > 0 {
			b.WriteByte('d')
		}
		return b.String()
	}
	var b strings.Builder
	o, s := r.OrigFlags, r.RespFlags
	if o&0x02 != 0 {
		b.WriteByte('S')
	}
	if s&0x02 != 0 && s&0x10 != 0 {
		b.WriteByte('h')
	}
	if o&0x10 != 0 {
		b.WriteByte('A')
	}
	if r.OrigData > 0 {
		b.WriteByte('D')
	}
	if r.RespData > 0 {
		b.WriteByte('d')
	}
	if o&0x01 != 0 {
		b.WriteByte('F')
	}
	if s&0x01 != 0 {
		b.WriteByte('f')
	}
	if o&0x04 != 0 {
		b.WriteByte('R')
	}
	if s&0x04 != 0 {
		b.WriteByte('r')
	}
	return b.String()
}

func zeekService(r *flow.Record) string {
	switch r.NameSource {
	case flow.NameSNI:
		return "ssl"
	case flow.NameHTTP:
		return "http"
	case flow.NameDNS:
		if r.RespPort == 53 || r.RespPort == 5353 || r.RespPort == 5355 {
			return "dns"
		}
	}
	return "-"
}

func zeekLine(r *flow.Record) string {
	state := r.State()
	if state == "" {
		state = "SF"
		if r.RespPkts == 0 {
			state = "S0"
		}
	}
	proto := protoName(r.Proto)
	hist := zeekHistory(r)
	if hist == "" {
		hist = "-"
	}
	return fmt.Sprintf("%d.%06d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%.6f\t%d\t%d\t%s\t-\t-\t0\t%s\t%d\t%d\t%d\t%d\t-\n",
		r.First.Unix(), r.First.Nanosecond()/1000, zeekUID(r), r.Orig, r.OrigPort, r.Resp, r.RespPort, proto, zeekService(r),
		r.Duration().Seconds(), r.OrigData, r.RespData, state, hist, r.OrigPkts, r.OrigBytes, r.RespPkts, r.RespBytes)
}
