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
// source opened flows to a destination, or asked forward proxies for a
// host (ProxyHost, the host part of a valid proxy_dest; Dst is then unset).
type Reach struct {
	Src, Dst  netip.Addr
	ProxyHost string
	Hours     []int32 // ascending
}

// proxyPort and proxyHost split proxy_dest as host:port, [v6]:port (the
// port 1-65535); a proxy_dest without a valid port has no host.
const (
	proxyPort = "extract(proxy_dest, ':([^:]*)$')"
	proxyOK   = "(match(" + proxyPort + ", '^[0-9]+$') AND toUInt64OrZero(" + proxyPort + ") BETWEEN 1 AND 65535)"
	proxyHost = "if(" + proxyOK + ", replaceRegexpOne(replaceRegexpOne(substring(proxy_dest, 1, length(proxy_dest) - length(" +
		proxyPort + ") - 1), '^[[]', ''), '[]]$', ''), '')"
	zero16 = "toFixedString('', 16)"
)

// Reaches calls fn for every (source, destination) and every (source,
// host asked of a proxy) of the selected rows, ordered by source. Rows
// with a proxy_dest that is not host:port reach nothing.
func (db *DB) Reaches(ctx context.Context, q Query, fn func(*Reach)) error {
	rows, err := db.conn.Query(aggCtx(ctx), "SELECT orig, if(proxy_dest = '', resp, "+zero16+") AS rdst, "+proxyHost+" AS phost, "+
		"groupUniqArray(toInt32(intDiv(first_us, 3600000000))) FROM "+db.table(tableFlows)+" WHERE "+db.where(q)+
		" AND (proxy_dest = '' OR phost != '') GROUP BY orig, rdst, phost ORDER BY orig")
	if err != nil {
		return db.wrap("aggregate reach", err)
	}
	defer rows.Close()
	var orig, resp string
	var r Reach
	for rows.Next() {
		if err := rows.Scan(&orig, &resp, &r.ProxyHost, &r.Hours); err != nil {
			return db.wrap("aggregate reach", err)
		}
		if len(orig) != 16 || len(resp) != 16 || len(r.ProxyHost) > maxProxyDest {
			continue
		}
		r.Src, r.Dst = addrFrom16([]byte(orig)), netip.Addr{}
		if r.ProxyHost == "" {
			r.Dst = addrFrom16([]byte(resp))
		}
		slices.Sort(r.Hours)
		fn(&r)
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

// Conn is one flow record of a channel, as much as hunt uses of it.
type Conn struct {
	First    int64 // unix nanoseconds (whole microseconds)
	Last     int64
	Dst      netip.Addr // the responder (a proxy, for a proxied channel)
	RespPort uint16     // the record's own (ICMP channels group codes under port 0)
	Proto    uint8
	OrigPkts uint64
	RespPkts uint64
	OrigData uint64
	RespData uint64
	State    string
	Bursts   flow.Bursts
}

// Channel is one channel's flow records in store order: every record from
// Src to Dst on Port (0 for ICMP) and Proto; or, when ProxyDest is set,
// every request of Src for ProxyDest through forward proxies (Dst, Port
// and Proto unset; each Conn names its proxy). Name is the name of the
// latest record among those whose name is not an address literal and has
// the most trusted source (flow.NameSource): what a model that keeps "a
// name at least as trusted as the one it has" ends with.
type Channel struct {
	Src, Dst   netip.Addr
	Port       uint16
	Proto      uint8
	ProxyDest  string
	Name       string
	NameSource flow.NameSource
	Conns      []Conn
}

// nameOK leaves out names that are address literals (a Host header that
// names an address): an IPv6 literal has a colon, which no host name has
// (ports are stripped), an IPv4 literal is four decimal numbers.
const nameOK = "name != '' AND position(name, ':') = 0 AND NOT match(name, '^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')"

// Channels calls fn with every channel of the selected rows. The Channel
// and its Conns are reused between calls.
func (db *DB) Channels(ctx context.Context, q Query, fn func(*Channel) error) error {
	const nameOrder = "(name_source, first_us, seq)"
	sql := "SELECT orig, if(proxy_dest = '', resp, " + zero16 + ") AS cdst, if(proxy_dest = '', if(proto IN (1, 58), 0, resp_port), 0) AS cport, " +
		"if(proxy_dest = '', proto, 0) AS cproto, proxy_dest, " +
		"argMaxIf(name, " + nameOrder + ", " + nameOK + "), maxIf(name_source, " + nameOK + "), " +
		"groupArray(first_us), groupArray(last_us), groupArray(seq), groupArray(resp), groupArray(resp_port), groupArray(proto), " +
		"groupArray(orig_pkts), groupArray(resp_pkts), groupArray(orig_bytes), groupArray(resp_bytes), groupArray(state), " +
		"groupArray(bursts), groupArray(burst_head), groupArray(burst_ms) " +
		"FROM " + db.table(tableFlows) + " WHERE " + db.where(q) + " GROUP BY orig, cdst, cport, cproto, proxy_dest"
	rows, err := db.conn.Query(aggCtx(ctx), sql)
	if err != nil {
		return db.wrap("aggregate channels", err)
	}
	defer rows.Close()
	var (
		orig, cdst string
		nsrc       uint8
		first      []int64
		last       []int64
		seq        []uint32
		resp       []string
		rport      []uint16
		proto      []uint8
		opk, rpk   []uint64
		od, rd     []uint64
		state      []string
		bursts     []uint32
		heads      []uint8
		ms         [][]uint32
		c          Channel
		order      []int
		row        Row
		r          flow.Record
	)
	for rows.Next() {
		if err := rows.Scan(&orig, &cdst, &c.Port, &c.Proto, &c.ProxyDest, &c.Name, &nsrc, &first, &last, &seq, &resp, &rport, &proto,
			&opk, &rpk, &od, &rd, &state, &bursts, &heads, &ms); err != nil {
			return db.wrap("aggregate channels", err)
		}
		n := len(first)
		if len(orig) != 16 || len(cdst) != 16 || len(last) != n || len(seq) != n || len(resp) != n || len(rport) != n || len(proto) != n ||
			len(opk) != n || len(rpk) != n || len(od) != n || len(rd) != n || len(state) != n || len(bursts) != n || len(heads) != n ||
			len(ms) != n || len(c.Name) > maxName || len(c.ProxyDest) > maxProxyDest || nsrc > uint8(flow.NameSNI) {
			return fmt.Errorf("clickhouse %s: aggregate channels: malformed channel row", db.cfg.String())
		}
		c.Src, c.NameSource = addrFrom16([]byte(orig)), flow.NameSource(nsrc)
		c.Dst = netip.Addr{}
		if c.ProxyDest == "" {
			c.Dst = addrFrom16([]byte(cdst))
		}
		order = order[:0]
		for i := range n {
			order = append(order, i)
		}
		// Store order: by first packet, then the record's place in its shard.
		slices.SortFunc(order, func(a, b int) int { return cmp.Or(cmp.Compare(first[a], first[b]), cmp.Compare(seq[a], seq[b])) })
		c.Conns = c.Conns[:0]
		for _, i := range order {
			// The checks of a whole row (burst series against the flow's
			// span, address lengths): the database is trusted no more than
			// a flow file.
			row = Row{Orig: orig, Resp: resp[i], First: first[i], Last: last[i], Bursts: bursts[i], BurstHead: heads[i], BurstMs: ms[i]}
			if err := row.Record(&r); err != nil {
				continue
			}
			c.Conns = append(c.Conns, Conn{First: first[i] * 1000, Last: last[i] * 1000, Dst: r.Resp, RespPort: rport[i], Proto: proto[i],
				OrigPkts: opk[i], RespPkts: rpk[i], OrigData: od[i], RespData: rd[i], State: state[i], Bursts: r.Bursts})
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
	return rows.Err()
}
