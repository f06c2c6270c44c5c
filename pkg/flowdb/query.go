package flowdb

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// Query selects rows: sensors by glob (* and ?), flows overlapping
// [From, To) (zero bounds are open).
type Query struct {
	Sensors  []string // globs; empty means every sensor
	From, To time.Time
}

// where is the WHERE clause for q, the exported-shards filter included.
func (db *DB) where(q Query) string {
	conds := []string{db.counted()}
	if len(q.Sensors) > 0 {
		var ors []string
		for _, g := range q.Sensors {
			ors = append(ors, "sensor LIKE "+quote(globToLike(g)))
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	// day prunes partitions; first_us/last_us keep exactly the overlap.
	if !q.From.IsZero() {
		us := q.From.UnixMicro()
		// A flow is in the day of its first packet: one that started the
		// day before may reach into the range.
		conds = append(conds, fmt.Sprintf("day >= toDate(%d) - 1 AND last_us >= %d", q.From.Unix(), us))
	}
	if !q.To.IsZero() {
		conds = append(conds, fmt.Sprintf("day <= toDate(%d) AND first_us < %d", q.To.Unix(), q.To.UnixMicro()))
	}
	return strings.Join(conds, " AND ")
}

// globToLike turns a shell glob into a LIKE pattern.
func globToLike(g string) string {
	var b strings.Builder
	for _, c := range g {
		switch c {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// quote makes a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Records streams the selected flow records in time order (first packet,
// then sensor and shard), each with its sensor and shard. The record
// passed to fn is reused.
func (db *DB) Records(ctx context.Context, q Query, fn func(sensor, shard string, r *flow.Record) error) error {
	sql := "SELECT sensor, shard, first_us, last_us, proto, vlan, orig, resp, orig_port, resp_port, orig_pkts, resp_pkts, " +
		"orig_ip_bytes, resp_ip_bytes, orig_bytes, resp_bytes, orig_flags, resp_flags, partial, name, name_source, answers, " +
		"bursts, burst_head, burst_ms, http_target, proxy_dest FROM " + db.cfg.Database + "." + tableFlows +
		" WHERE " + db.where(q) + " ORDER BY first_us, sensor, shard"
	rows, err := db.conn.Query(ctx, sql)
	if err != nil {
		return db.wrap("read flows", err)
	}
	defer rows.Close()
	var (
		sensor, shard, name, target, proxy string
		first, last                        int64
		proto, oflags, rflags, partial     uint8
		nsrc, head                         uint8
		vlan, oport, rport                 uint16
		orig, resp                         string
		opk, rpk, oip, rip, od, rd         uint64
		answers                            []string
		bursts                             uint32
		ms                                 []uint32
		r                                  flow.Record
	)
	for rows.Next() {
		if err := rows.Scan(&sensor, &shard, &first, &last, &proto, &vlan, &orig, &resp, &oport, &rport, &opk, &rpk,
			&oip, &rip, &od, &rd, &oflags, &rflags, &partial, &name, &nsrc, &answers, &bursts, &head, &ms, &target, &proxy); err != nil {
			return db.wrap("read flows", err)
		}
		r = flow.Record{
			First: time.UnixMicro(first).UTC(), Last: time.UnixMicro(last).UTC(), Proto: proto, VLAN: vlan,
			Orig: addrFrom16([]byte(orig)), Resp: addrFrom16([]byte(resp)), OrigPort: oport, RespPort: rport,
			OrigPkts: opk, RespPkts: rpk, OrigBytes: oip, RespBytes: rip, OrigData: od, RespData: rd,
			OrigFlags: oflags, RespFlags: rflags, Partial: partial != 0, Name: name, NameSource: flow.NameSource(nsrc),
			HTTPTarget: target, ProxyDest: proxy,
		}
		if len(answers) > 0 {
			r.Answers = make([]netip.Addr, len(answers))
			for i, a := range answers {
				r.Answers[i] = addrFrom16([]byte(a))
			}
		}
		if bursts > 0 || len(ms) > 0 {
			r.Bursts = flow.Bursts{At: append([]uint32(nil), ms...), N: bursts, Head: head}
		}
		if err := fn(sensor, shard, &r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return db.wrap("read flows", err)
	}
	return nil
}
