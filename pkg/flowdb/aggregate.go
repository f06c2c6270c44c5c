package flowdb

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nwhealth/nwhealth/pkg/flow"
)

// The aggregations below are what hunt pushes down (docs/fleet.md, Hunt in
// the engine): the server reads every row once per query and groups them;
// this side receives one row per channel, pair or address, so its memory
// follows channels, not flow records. Each says exactly what it computes,
// so that a model filled from them equals one filled record by record.

func (db *DB) table(t string) string { return db.cfg.Database + "." + t }

// aggCtx limits result blocks to a few thousand rows: a block of channels
// with their per-connection arrays is what this side holds at once.
func aggCtx(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_block_size": 4096}))
}

// DNSAnswer is what DNS said of an address: the name of the latest record
// (in store order) whose answers held it.
type DNSAnswer struct {
	Addr netip.Addr
	Name string
}

// DNSAnswers calls fn for every address some record's DNS answers gave,
// with the name of the latest such record.
func (db *DB) DNSAnswers(ctx context.Context, q Query, fn func(DNSAnswer)) error {
	rows, err := db.conn.Query(aggCtx(ctx), "SELECT a, argMax(name, (first_us, seq)) FROM "+db.table(tableFlows)+
		" ARRAY JOIN answers AS a WHERE "+db.where(q)+" AND name != '' GROUP BY a")
	if err != nil {
		return db.wrap("aggregate DNS answers", err)
	}
	defer rows.Close()
	var a, name string
	for rows.Next() {
		if err := rows.Scan(&a, &name); err != nil {
			return db.wrap("aggregate DNS answers", err)
		}
		if len(a) != 16 || len(name) > maxName {
			continue
		}
		fn(DNSAnswer{Addr: addrFrom16([]byte(a)), Name: name})
	}
	return rows.Err()
}

// NameAddr is the first DNS answer of the latest record (in store order)
// that named Name with answers.
type NameAddr struct {
	Name string
	Addr netip.Addr
}

// NameAddrs calls fn for every name some record's DNS answers were for.
func (db *DB) NameAddrs(ctx context.Context, q Query, fn func(NameAddr)) error {
	rows, err := db.conn.Query(aggCtx(ctx), "SELECT name, argMax(answers[1], (first_us, seq)) FROM "+db.table(tableFlows)+
		" WHERE "+db.where(q)+" AND name != '' AND notEmpty(answers) GROUP BY name")
	if err != nil {
		return db.wrap("aggregate DNS names", err)
	}
	defer rows.Close()
	var name, a string
	for rows.Next() {
		if err := rows.Scan(&name, &a); err != nil {
			return db.wrap("aggregate DNS names", err)
		}
		if len(a) != 16 || len(name) > maxName {
			continue
		}
		fn(NameAddr{Name: name, Addr: addrFrom16([]byte(a))})
	}
	return rows.Err()
}

// nameOK leaves out names that are address literals (a Host header that
// names an address): an IPv6 literal has a colon, which no host name has
// (ports are stripped), an IPv4 literal is four decimal numbers.
const nameOK = "name != '' AND position(name, ':') = 0 AND NOT match(name, '^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')"

// Pair is every flow record from Src to Dst, in store order (by first
// packet, then place in the shard), with what hunt reads of a record:
// times, protocol, responder port, packets, payload bytes, TCP flags,
// burst series (of two or more bursts), proxy destination. Names are
// left out but one per channel (Src, Dst, port, protocol, proxy
// destination): the record that a model keeping "a name at least as
// trusted as the one it has, and not an address literal" takes last keeps
// its name. DNS answers are left out (DNSAnswers gives them).
type Pair struct {
	Src, Dst netip.Addr
	Records  []flow.Record
}

// pairName is the name a channel ends with, and the record that has it.
type pairName struct {
	orig, resp string
	port       uint16
	proto      uint8
	proxy      string
	name       string
	source     uint8
	first      int64
	seq        uint32
}

// le is a column as fixed-width little-endian bytes (reinterpretAsString
// drops trailing zero bytes; toFixedString puts them back, and concat
// keeps them).
func le(col string, n int) string {
	return fmt.Sprintf("toFixedString(reinterpretAsString(%s), %d)", col, n)
}

// pairRecord is one record of a pair as the server packs it: the fixed
// fields, the burst starts (when two or more bursts) and the proxy
// destination, each with a one-byte count. Arrays of numbers reach this
// side as one String a pair, not as arrays: the client library decodes an
// array value by value through reflection, ten times the server's work.
var pairRecord = "concat(" + strings.Join([]string{
	le("first_us", 8), le("last_us", 8), le("seq", 4), le("resp_port", 2), le("proto", 1),
	le("orig_pkts", 8), le("resp_pkts", 8), le("orig_flags", 1), le("resp_flags", 1),
	le("orig_bytes", 8), le("resp_bytes", 8), le("bursts", 4), le("if(bursts >= 2, burst_head, 0)", 1),
	le("toUInt8(if(bursts >= 2, length(burst_ms), 0))", 1),
	"arrayStringConcat(arrayMap(x -> concat(" + le("x", 4) + ", ''), if(bursts >= 2, burst_ms, emptyArrayUInt32())))",
	le("toUInt8(length(proxy_dest))", 1), "proxy_dest",
	"%s",
}, ", ") + ")"

// pairRecordSQL is pairRecord with the certificate facts (flag byte,
// then subject and issuer, each with a one-byte length), or their
// defaults for a table that predates them.
func (db *DB) pairRecordSQL() string {
	tls := le("toUInt8(0)", 1) + ", " + le("toUInt8(0)", 1) + ", " + le("toUInt8(0)", 1)
	if !db.noTLS {
		tls = strings.Join([]string{le("tls_flags", 1), le("toUInt8(length(cert_subject))", 1), "cert_subject",
			le("toUInt8(length(cert_issuer))", 1), "cert_issuer"}, ", ")
	}
	return strings.Replace(pairRecord, "%s", tls, 1)
}

// pairFixed is the bytes of a packed record before its burst starts.
const pairFixed = 8 + 8 + 4 + 2 + 1 + 8 + 8 + 1 + 1 + 8 + 8 + 4 + 1

// unpackPair reads a pair's packed records into rows (orig and resp
// set by the caller). Every length is checked against the bytes left.
func unpackPair(b []byte, rows []Row, orig, resp string) ([]Row, error) {
	u64 := func(p []byte) uint64 { return binary.LittleEndian.Uint64(p) }
	for len(b) > 0 {
		if len(b) < pairFixed+1 {
			return rows, fmt.Errorf("packed record of %d bytes", len(b))
		}
		w := Row{Orig: orig, Resp: resp}
		w.First, w.Last = int64(u64(b)), int64(u64(b[8:]))
		w.seq = binary.LittleEndian.Uint32(b[16:])
		w.RespPort, w.Proto = binary.LittleEndian.Uint16(b[20:]), b[22]
		w.OrigPkts, w.RespPkts = u64(b[23:]), u64(b[31:])
		w.OrigFlags, w.RespFlags = b[39], b[40]
		w.OrigData, w.RespData = u64(b[41:]), u64(b[49:])
		w.Bursts, w.BurstHead = binary.LittleEndian.Uint32(b[57:]), b[61]
		nms := int(b[pairFixed])
		b = b[pairFixed+1:]
		if len(b) < 4*nms+1 {
			return rows, fmt.Errorf("packed record: %d burst starts past the end", nms)
		}
		if nms > 0 {
			w.BurstMs = make([]uint32, nms)
			for i := range w.BurstMs {
				w.BurstMs[i] = binary.LittleEndian.Uint32(b[4*i:])
			}
		}
		b = b[4*nms:]
		np := int(b[0])
		if len(b) < 1+np {
			return rows, fmt.Errorf("packed record: proxy destination past the end")
		}
		w.Proxy = string(b[1 : 1+np])
		b = b[1+np:]
		if len(b) < 2 {
			return rows, fmt.Errorf("packed record: certificate facts past the end")
		}
		w.TLSFlags = b[0]
		b = b[1:]
		for _, s := range []*string{&w.CertSubject, &w.CertIssuer} {
			if len(b) < 1 {
				return rows, fmt.Errorf("packed record: certificate name past the end")
			}
			// The length as an int: 1+b[0] in byte arithmetic wraps to 0
			// for a name of 255 bytes.
			n := int(b[0])
			if len(b) < 1+n {
				return rows, fmt.Errorf("packed record: certificate name past the end")
			}
			*s = string(b[1 : 1+n])
			b = b[1+n:]
		}
		rows = append(rows, w)
	}
	return rows, nil
}

type sortKey struct {
	first int64
	seq   uint32
	i     int32
}

// Pairs calls fn with every (source, destination) pair of the selected
// rows, ordered by source and destination. The Pair and its records are
// reused between calls; a record's slices stay valid until fn returns.
// Rows that do not make valid records are skipped and named in a
// *RowError returned after every good pair was delivered.
func (db *DB) Pairs(ctx context.Context, q Query, fn func(*Pair) error) error {
	where := db.where(q)
	sql := "SELECT orig, resp, arrayStringConcat(groupArray(" + db.pairRecordSQL() + ")) " +
		"FROM " + db.table(tableFlows) + " WHERE " + where + " GROUP BY orig, resp ORDER BY orig, resp"
	// The names, a row per named channel, in the same order: merged in as
	// the pairs go by. Both queries start at once: a query returns when
	// its first block is ready, after the server's whole aggregation.
	const order = "(name_source, first_us, seq)"
	type result struct {
		rows driver.Rows
		err  error
	}
	named := make(chan result, 1)
	go func() {
		r, err := db.conn.Query(aggCtx(ctx), "SELECT orig, resp, if(proto IN (1, 58), 0, resp_port) AS port, proto, proxy_dest, "+
			"argMax(name, "+order+"), max(name_source), argMax(first_us, "+order+"), argMax(seq, "+order+") FROM "+db.table(tableFlows)+
			" WHERE "+where+" AND "+nameOK+" GROUP BY orig, resp, port, proto, proxy_dest ORDER BY orig, resp")
		named <- result{r, err}
	}()
	rows, err := db.conn.Query(aggCtx(ctx), sql)
	nr := <-named
	if err != nil {
		if nr.rows != nil {
			nr.rows.Close()
		}
		return db.wrap("aggregate pairs", err)
	}
	defer rows.Close()
	nrows, err := nr.rows, nr.err
	if err != nil {
		return db.wrap("aggregate names", err)
	}
	defer nrows.Close()
	var (
		next    pairName
		hasNext bool
		names   []pairName
	)
	readName := func() error {
		hasNext = nrows.Next()
		if !hasNext {
			return nrows.Err()
		}
		return nrows.Scan(&next.orig, &next.resp, &next.port, &next.proto, &next.proxy, &next.name, &next.source, &next.first, &next.seq)
	}
	if err := readName(); err != nil {
		return db.wrap("aggregate names", err)
	}
	var (
		orig, resp string
		packed     []byte
		recs       []Row
		keys       []sortKey
		p          Pair
	)
	var bad RowError
	for rows.Next() {
		if err := rows.Scan(&orig, &resp, &packed); err != nil {
			return db.wrap("aggregate pairs", err)
		}
		// A bad row is skipped and named, the rest used: the database is
		// input like a flow file (a pair's names left unread are passed
		// over by the next pair's).
		if len(orig) != 16 || len(resp) != 16 {
			bad.add(fmt.Sprintf("a pair with addresses of %d and %d bytes", len(orig), len(resp)))
			continue
		}
		if recs, err = unpackPair(packed, recs[:0], orig, resp); err != nil {
			bad.add(fmt.Sprintf("pair %v -> %v: %v", addrFrom16([]byte(orig)), addrFrom16([]byte(resp)), err))
			continue
		}
		// This pair's names (both queries are ordered by orig, resp).
		names = names[:0]
		for hasNext && (next.orig < orig || next.orig == orig && next.resp < resp) {
			if err := readName(); err != nil {
				return db.wrap("aggregate names", err)
			}
		}
		for hasNext && next.orig == orig && next.resp == resp {
			names = append(names, next)
			if err := readName(); err != nil {
				return db.wrap("aggregate names", err)
			}
		}
		// Store order: by first packet, then the record's place in its
		// shard (sorting small keys, not the rows).
		keys = keys[:0]
		for i := range recs {
			keys = append(keys, sortKey{recs[i].First, recs[i].seq, int32(i)})
		}
		slices.SortFunc(keys, func(a, b sortKey) int { return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.seq, b.seq)) })
		p.Src, p.Dst = addrFrom16([]byte(orig)), addrFrom16([]byte(resp))
		if cap(p.Records) < len(recs) {
			p.Records = make([]flow.Record, 0, len(recs))
		}
		p.Records = p.Records[:0]
		for _, k := range keys {
			w := &recs[k.i]
			port := w.RespPort
			if w.Proto == 1 || w.Proto == 58 {
				port = 0
			}
			for _, nm := range names {
				if nm.first == w.First && nm.seq == w.seq && nm.port == port && nm.proto == w.Proto && nm.proxy == w.Proxy {
					w.Name, w.NameSource = nm.name, nm.source
				}
			}
			// The checks of a whole row: the database is trusted no more
			// than a flow file.
			p.Records = p.Records[:len(p.Records)+1]
			if err := w.Record(&p.Records[len(p.Records)-1]); err != nil {
				p.Records = p.Records[:len(p.Records)-1]
				bad.add(fmt.Sprintf("pair %v -> %v, record at %d µs: %v", p.Src, p.Dst, w.First, err))
			}
		}
		if err := fn(&p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return db.wrap("aggregate pairs", err)
	}
	if bad.Count > 0 {
		return &bad
	}
	return nil
}

// DNSRecords calls fn for every DNS flow record (a question name from
// DNS, to port 53 over UDP or TCP) in store order (Records' order), with
// what hunt's DNS model reads: times, addresses, protocol, ports, client
// packets, payload bytes, name and answers. Pairs keeps one name a
// channel, and a stub resolver's queries to one resolver are one channel
// whose every record names another question: hunt's DNS features need
// them all. The server sends DNS rows only, streamed; this side keeps
// nothing of them (the model bounds what it keeps). The record passed to
// fn is reused. Bad rows are skipped and named in a *RowError returned
// after every good row was delivered.
func (db *DB) DNSRecords(ctx context.Context, q Query, fn func(*flow.Record) error) error {
	sql := "SELECT first_us, last_us, proto, orig, resp, orig_port, resp_port, orig_pkts, orig_bytes, resp_bytes, name, name_source, answers FROM " +
		db.table(tableFlows) + " WHERE " + db.where(q) + fmt.Sprintf(" AND name_source = %d AND resp_port = 53 AND proto IN (6, 17) AND name != ''", flow.NameDNS) +
		" ORDER BY first_us, sensor, shard, seq"
	return db.recordRows(ctx, "DNS", sql, func(w *Row) []any {
		return []any{&w.First, &w.Last, &w.Proto, &w.Orig, &w.Resp, &w.OrigPort, &w.RespPort, &w.OrigPkts,
			&w.OrigData, &w.RespData, &w.Name, &w.NameSource, &w.Answers}
	}, fn)
}

// ICMPRecords calls fn for every ICMP echo flow record (an exchange whose
// originator sent echo requests: type 8, or 128 for ICMPv6) in store
// order, with what hunt's ICMP model reads: times, addresses, protocol,
// type and code, packets and payload bytes each way, burst series. Pairs
// carries no ICMP type (an echo is told from an error by it). The record
// passed to fn is reused. Bad rows are skipped and named in a *RowError
// returned after every good row was delivered.
func (db *DB) ICMPRecords(ctx context.Context, q Query, fn func(*flow.Record) error) error {
	sql := "SELECT first_us, last_us, proto, orig, resp, orig_port, resp_port, orig_pkts, resp_pkts, orig_bytes, resp_bytes, " +
		"bursts, burst_head, burst_ms FROM " + db.table(tableFlows) + " WHERE " + db.where(q) +
		" AND (proto = 1 AND orig_port = 8 OR proto = 58 AND orig_port = 128) ORDER BY first_us, sensor, shard, seq"
	return db.recordRows(ctx, "ICMP", sql, func(w *Row) []any {
		return []any{&w.First, &w.Last, &w.Proto, &w.Orig, &w.Resp, &w.OrigPort, &w.RespPort, &w.OrigPkts, &w.RespPkts,
			&w.OrigData, &w.RespData, &w.Bursts, &w.BurstHead, &w.BurstMs}
	}, fn)
}

// recordRows runs sql, scans each row into the columns dest names and
// hands its flow record to fn (reused between calls). A row the record's
// checks refuse (the database is trusted no more than a flow file) is
// skipped and named in a *RowError returned after every good row.
func (db *DB) recordRows(ctx context.Context, what, sql string, dest func(*Row) []any, fn func(*flow.Record) error) error {
	rows, err := db.conn.Query(aggCtx(ctx), sql)
	if err != nil {
		return db.wrap("read "+what+" flows", err)
	}
	defer rows.Close()
	var w Row
	var r flow.Record
	var bad RowError
	cols := dest(&w)
	for rows.Next() {
		if err := rows.Scan(cols...); err != nil {
			return db.wrap("read "+what+" flows", err)
		}
		if err := w.Record(&r); err != nil {
			bad.add(fmt.Sprintf("%s flow at %d µs: %v", what, w.First, err))
			continue
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return db.wrap("read "+what+" flows", err)
	}
	if bad.Count > 0 {
		return &bad
	}
	return nil
}
