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

// proxyPort and proxyHost split proxy_dest as host:port, [v6]:port (the
// port 1-65535); a proxy_dest without a valid port has no host.
const (
	proxyPort = "extract(proxy_dest, ':([^:]*)$')"
	proxyOK   = "(match(" + proxyPort + ", '^[0-9]+$') AND toUInt64OrZero(" + proxyPort + ") BETWEEN 1 AND 65535)"
	proxyHost = "if(" + proxyOK + ", replaceRegexpOne(replaceRegexpOne(substring(proxy_dest, 1, length(proxy_dest) - length(" +
		proxyPort + ") - 1), '^[[]', ''), '[]]$', ''), '')"
	zero16 = "toFixedString('', 16)"
)

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
	Failed   bool // an attempt without an answer, or refused (failedSQL)
	OrigData uint64
	RespData uint64
	Bursts   flow.Bursts // when there were two or more bursts
}

// Channel is one channel's flow records in store order: every record from
// Src to Dst on Port (0 for ICMP) and Proto; or, when ProxyDest is set,
// every request of Src for ProxyDest through forward proxies (Dst, Port
// and Proto unset; each Conn names its proxy), ProxyHost being its host
// part when ProxyDest is host:port. Name is the name of the latest record
// among those whose name is not an address literal and has the most
// trusted source (flow.NameSource): what a model that keeps "a name at
// least as trusted as the one it has" ends with.
type Channel struct {
	Src, Dst   netip.Addr
	Port       uint16
	Proto      uint8
	ProxyDest  string
	ProxyHost  string
	Name       string
	NameSource flow.NameSource
	Conns      []Conn
}

// nameOK leaves out names that are address literals (a Host header that
// names an address): an IPv6 literal has a colon, which no host name has
// (ports are stripped), an IPv4 literal is four decimal numbers.
const nameOK = "name != '' AND position(name, ':') = 0 AND NOT match(name, '^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')"

// failedSQL is a connection attempt without an answer, or refused: TCP
// without a reply or refused (conn_state S0, REJ), UDP without a reply.
const failedSQL = "(proto = 6 AND (resp_pkts = 0 OR state IN ('REJ', 'S0')) OR proto = 17 AND resp_pkts = 0 AND orig_pkts > 0)"

// Channels calls fn with every channel of the selected rows, ordered so
// that the channels of one source and destination (or one source and host
// asked of proxies) come one after another. The Channel and its Conns are
// reused between calls. Per-connection columns that cannot vary within a
// channel are sent only where they can (proxied channels, ICMP).
func (db *DB) Channels(ctx context.Context, q Query, fn func(*Channel) error) error {
	const nameOrder = "(name_source, first_us, seq)"
	const varies = "proxy_dest != '' OR proto IN (1, 58)"
	sql := "SELECT orig, if(proxy_dest = '', resp, " + zero16 + ") AS cdst, if(proxy_dest = '', if(proto IN (1, 58), 0, resp_port), 0) AS cport, " +
		"if(proxy_dest = '', proto, 0) AS cproto, proxy_dest, " + proxyHost + " AS phost, " +
		"argMaxIf(name, " + nameOrder + ", " + nameOK + "), maxIf(name_source, " + nameOK + "), " +
		"groupArray(first_us), groupArray(last_us), groupArray(seq), groupArray(toUInt8(" + failedSQL + ")), " +
		"groupArray(orig_bytes), groupArray(resp_bytes), groupArray(bursts), groupArray(if(bursts >= 2, burst_head, 0)), " +
		"groupArray(if(bursts >= 2, burst_ms, emptyArrayUInt32())), " +
		"groupArrayIf(resp, proxy_dest != ''), groupArrayIf(resp_port, " + varies + "), groupArrayIf(proto, proxy_dest != '') " +
		"FROM " + db.table(tableFlows) + " WHERE " + db.where(q) + " GROUP BY orig, cdst, cport, cproto, proxy_dest " +
		"ORDER BY orig, cdst, phost"
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
		failed     []uint8
		od, rd     []uint64
		bursts     []uint32
		heads      []uint8
		ms         [][]uint32
		resp       []string
		rport      []uint16
		proto      []uint8
		c          Channel
		order      []int
		row        Row
		r          flow.Record
	)
	for rows.Next() {
		if err := rows.Scan(&orig, &cdst, &c.Port, &c.Proto, &c.ProxyDest, &c.ProxyHost, &c.Name, &nsrc, &first, &last, &seq, &failed,
			&od, &rd, &bursts, &heads, &ms, &resp, &rport, &proto); err != nil {
			return db.wrap("aggregate channels", err)
		}
		n := len(first)
		proxied := c.ProxyDest != ""
		icmp := !proxied && (c.Proto == 1 || c.Proto == 58)
		if len(orig) != 16 || len(cdst) != 16 || len(last) != n || len(seq) != n || len(failed) != n || len(od) != n || len(rd) != n ||
			len(bursts) != n || len(heads) != n || len(ms) != n || proxied && (len(resp) != n || len(proto) != n) ||
			(proxied || icmp) && len(rport) != n || len(c.Name) > maxName || len(c.ProxyDest) > maxProxyDest || nsrc > uint8(flow.NameSNI) {
			return fmt.Errorf("clickhouse %s: aggregate channels: malformed channel row", db.cfg.String())
		}
		c.Src, c.NameSource = addrFrom16([]byte(orig)), flow.NameSource(nsrc)
		c.Dst = netip.Addr{}
		if !proxied {
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
			cn := Conn{First: first[i] * 1000, Last: last[i] * 1000, Dst: c.Dst, RespPort: c.Port, Proto: c.Proto, Failed: failed[i] != 0,
				OrigData: od[i], RespData: rd[i]}
			dst := cdst
			if proxied {
				dst, cn.Proto = resp[i], proto[i]
				if len(dst) != 16 {
					continue
				}
				cn.Dst = addrFrom16([]byte(dst))
			}
			if proxied || icmp {
				cn.RespPort = rport[i]
			}
			// The checks of a whole row (the burst series against the
			// flow's span): the database is trusted no more than a file.
			row = Row{Orig: orig, Resp: dst, First: first[i], Last: last[i], Bursts: bursts[i], BurstHead: heads[i], BurstMs: ms[i]}
			if err := row.Record(&r); err != nil {
				continue
			}
			cn.Bursts = r.Bursts
			c.Conns = append(c.Conns, cn)
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
	return rows.Err()
}
