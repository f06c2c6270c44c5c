package flowdb

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ClickHouse/clickhouse-go/v2"
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

// Pairs calls fn with every (source, destination) pair of the selected
// rows, ordered by source and destination. The Pair and its records are
// reused between calls; a record's slices stay valid until fn returns.
func (db *DB) Pairs(ctx context.Context, q Query, fn func(*Pair) error) error {
	where := db.where(q)
	sql := "SELECT orig, resp, groupArray(first_us), groupArray(last_us), groupArray(seq), groupArray(resp_port), groupArray(proto), " +
		"groupArray(orig_pkts), groupArray(resp_pkts), groupArray(orig_flags), groupArray(resp_flags), groupArray(orig_bytes), " +
		"groupArray(resp_bytes), groupArray(bursts), groupArray(if(bursts >= 2, burst_head, 0)), " +
		"groupArray(if(bursts >= 2, burst_ms, emptyArrayUInt32())), groupArray(proxy_dest) " +
		"FROM " + db.table(tableFlows) + " WHERE " + where + " GROUP BY orig, resp ORDER BY orig, resp"
	rows, err := db.conn.Query(aggCtx(ctx), sql)
	if err != nil {
		return db.wrap("aggregate pairs", err)
	}
	defer rows.Close()
	// The names, a row per named channel, in the same order: merged in as
	// the pairs go by.
	const order = "(name_source, first_us, seq)"
	nrows, err := db.conn.Query(aggCtx(ctx), "SELECT orig, resp, if(proto IN (1, 58), 0, resp_port) AS port, proto, proxy_dest, "+
		"argMax(name, "+order+"), max(name_source), argMax(first_us, "+order+"), argMax(seq, "+order+") FROM "+db.table(tableFlows)+
		" WHERE "+where+" AND "+nameOK+" GROUP BY orig, resp, port, proto, proxy_dest ORDER BY orig, resp")
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
		orig, resp       string
		first, last      []int64
		seq              []uint32
		rport            []uint16
		proto, of, rf    []uint8
		opk, rpk, od, rd []uint64
		bursts           []uint32
		heads            []uint8
		ms               [][]uint32
		proxy            []string
		p                Pair
		idx              []int
		row              Row
	)
	for rows.Next() {
		if err := rows.Scan(&orig, &resp, &first, &last, &seq, &rport, &proto, &opk, &rpk, &of, &rf, &od, &rd, &bursts, &heads, &ms, &proxy); err != nil {
			return db.wrap("aggregate pairs", err)
		}
		n := len(first)
		if len(orig) != 16 || len(resp) != 16 || len(last) != n || len(seq) != n || len(rport) != n || len(proto) != n || len(opk) != n ||
			len(rpk) != n || len(of) != n || len(rf) != n || len(od) != n || len(rd) != n || len(bursts) != n || len(heads) != n ||
			len(ms) != n || len(proxy) != n {
			return fmt.Errorf("clickhouse %s: aggregate pairs: malformed row", db.cfg.String())
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
		idx = idx[:0]
		for i := range n {
			idx = append(idx, i)
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Or(cmp.Compare(first[a], first[b]), cmp.Compare(seq[a], seq[b])) })
		p.Src, p.Dst = addrFrom16([]byte(orig)), addrFrom16([]byte(resp))
		p.Records = p.Records[:0]
		for _, i := range idx {
			// The checks of a whole row: the database is trusted no more
			// than a flow file.
			row = Row{Orig: orig, Resp: resp, First: first[i], Last: last[i], Proto: proto[i], RespPort: rport[i], OrigPkts: opk[i],
				RespPkts: rpk[i], OrigFlags: of[i], RespFlags: rf[i], OrigData: od[i], RespData: rd[i], Bursts: bursts[i],
				BurstHead: heads[i], BurstMs: ms[i], Proxy: proxy[i]}
			for _, nm := range names {
				port := rport[i]
				if proto[i] == 1 || proto[i] == 58 {
					port = 0
				}
				if nm.first == first[i] && nm.seq == seq[i] && nm.port == port && nm.proto == proto[i] && nm.proxy == proxy[i] {
					row.Name, row.NameSource = nm.name, nm.source
				}
			}
			var r flow.Record
			if err := row.Record(&r); err != nil {
				continue
			}
			p.Records = append(p.Records, r)
		}
		if err := fn(&p); err != nil {
			return err
		}
	}
	return rows.Err()
}
