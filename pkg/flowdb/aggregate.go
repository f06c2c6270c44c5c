package flowdb

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nwhealth/nwhealth/pkg/flow"
)

// The aggregations below are what hunt pushes down (docs/fleet.md, Hunt in
// the engine): the server reads every row once per query and groups them;
// this side receives one row per channel, pair or address, so its memory
// follows channels, not flow records. Each says exactly what it computes,
// so that a model filled from them equals one filled record by record.

// Totals are the selected rows' count and time span.
type Totals struct {
	Records     int
	First, Last time.Time
}

// Totals counts the selected rows.
func (db *DB) Totals(ctx context.Context, q Query) (Totals, error) {
	var n uint64
	var first, last int64
	err := db.conn.QueryRow(ctx, "SELECT count(), min(first_us), max(last_us) FROM "+db.table(tableFlows)+" WHERE "+db.where(q)).
		Scan(&n, &first, &last)
	if err != nil {
		return Totals{}, db.wrap("count flows", err)
	}
	t := Totals{Records: int(n)}
	if n > 0 {
		t.First, t.Last = time.UnixMicro(first).UTC(), time.UnixMicro(last).UTC()
	}
	return t, nil
}

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

// Reach is the distinct clock hours (hours since the epoch) in which a
// source opened flows to a destination (through ProxyDest, when set).
type Reach struct {
	Src, Dst  netip.Addr
	ProxyDest string
	Hours     []int32 // ascending
}

// Reaches calls fn for every (source, destination, proxy destination) of
// the selected rows, ordered by source.
func (db *DB) Reaches(ctx context.Context, q Query, fn func(*Reach)) error {
	rows, err := db.conn.Query(aggCtx(ctx), "SELECT orig, resp, proxy_dest, groupUniqArray(toInt32(intDiv(first_us, 3600000000))) FROM "+
		db.table(tableFlows)+" WHERE "+db.where(q)+" GROUP BY orig, resp, proxy_dest ORDER BY orig")
	if err != nil {
		return db.wrap("aggregate reach", err)
	}
	defer rows.Close()
	var orig, resp string
	var r Reach
	for rows.Next() {
		if err := rows.Scan(&orig, &resp, &r.ProxyDest, &r.Hours); err != nil {
			return db.wrap("aggregate reach", err)
		}
		if len(orig) != 16 || len(resp) != 16 || len(r.ProxyDest) > maxProxyDest {
			continue
		}
		r.Src, r.Dst = addrFrom16([]byte(orig)), addrFrom16([]byte(resp))
		slices.Sort(r.Hours)
		fn(&r)
	}
	return rows.Err()
}

// Conn is one flow record of a channel, as much as hunt uses of it.
type Conn struct {
	First    int64 // unix nanoseconds (whole microseconds)
	Last     int64
	RespPort uint16 // the record's own (ICMP channels group codes under port 0)
	OrigPkts uint64
	RespPkts uint64
	OrigData uint64
	RespData uint64
	State    string
	Bursts   flow.Bursts
	seq      uint32
}

// Channel is one channel's flow records: every record from Src to Dst on
// Port (0 for ICMP) and Proto, with ProxyDest when the flows went through a
// forward proxy, in store order. Name is the name of the latest record
// among those with the most trusted name source (flow.NameSource), as a
// model that keeps "a name at least as trusted as the one it has" ends
// with.
type Channel struct {
	Src, Dst   netip.Addr
	Port       uint16
	Proto      uint8
	ProxyDest  string
	Name       string
	NameSource flow.NameSource
	Conns      []Conn
}

// Channels calls fn with every channel of the selected rows. The Channel
// and its Conns are reused between calls.
func (db *DB) Channels(ctx context.Context, q Query, fn func(*Channel) error) error {
	const nameOrder = "(name_source, first_us, seq)"
	sql := "SELECT orig, resp, if(proto IN (1, 58), 0, resp_port) AS port, proto, proxy_dest, " +
		"argMaxIf(name, " + nameOrder + ", name != ''), maxIf(name_source, name != ''), " +
		"groupArray(first_us), groupArray(last_us), groupArray(seq), groupArray(resp_port), groupArray(orig_pkts), groupArray(resp_pkts), " +
		"groupArray(orig_bytes), groupArray(resp_bytes), groupArray(state), groupArray(bursts), groupArray(burst_head), groupArray(burst_ms) " +
		"FROM " + db.table(tableFlows) + " WHERE " + db.where(q) + " GROUP BY orig, resp, port, proto, proxy_dest"
	rows, err := db.conn.Query(aggCtx(ctx), sql)
	if err != nil {
		return db.wrap("aggregate channels", err)
	}
	defer rows.Close()
	var (
		orig, resp string
		nsrc       uint8
		first      []int64
		last       []int64
		seq        []uint32
		rport      []uint16
		opk, rpk   []uint64
		od, rd     []uint64
		state      []string
		bursts     []uint32
		heads      []uint8
		ms         [][]uint32
		c          Channel
		order      []int
		row        Row
	)
	for rows.Next() {
		if err := rows.Scan(&orig, &resp, &c.Port, &c.Proto, &c.ProxyDest, &c.Name, &nsrc, &first, &last, &seq, &rport,
			&opk, &rpk, &od, &rd, &state, &bursts, &heads, &ms); err != nil {
			return db.wrap("aggregate channels", err)
		}
		n := len(first)
		if len(orig) != 16 || len(resp) != 16 || len(last) != n || len(seq) != n || len(rport) != n || len(opk) != n || len(rpk) != n ||
			len(od) != n || len(rd) != n || len(state) != n || len(bursts) != n || len(heads) != n || len(ms) != n ||
			len(c.Name) > maxName || len(c.ProxyDest) > maxProxyDest || nsrc > uint8(flow.NameSNI) {
			return fmt.Errorf("clickhouse %s: aggregate channels: malformed channel row", db.cfg.String())
		}
		c.Src, c.Dst, c.NameSource = addrFrom16([]byte(orig)), addrFrom16([]byte(resp)), flow.NameSource(nsrc)
		order = order[:0]
		for i := range n {
			order = append(order, i)
		}
		// Store order: by first packet, then the record's place in its shard.
		slices.SortFunc(order, func(a, b int) int { return cmp.Or(cmp.Compare(first[a], first[b]), cmp.Compare(seq[a], seq[b])) })
		c.Conns = c.Conns[:0]
		for _, i := range order {
			// The same checks as a whole row's (burst series against the
			// flow's span): the database is not trusted more than a file.
			row = Row{Orig: orig, Resp: resp, First: first[i], Last: last[i], Bursts: bursts[i], BurstHead: heads[i], BurstMs: ms[i]}
			var r flow.Record
			if err := row.Record(&r); err != nil {
				continue
			}
			c.Conns = append(c.Conns, Conn{First: first[i] * 1000, Last: last[i] * 1000, RespPort: rport[i], OrigPkts: opk[i], RespPkts: rpk[i],
				OrigData: od[i], RespData: rd[i], State: state[i], Bursts: r.Bursts, seq: seq[i]})
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
	return rows.Err()
}
