package flowdb

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/sensor"
)

// Query selects rows: sensors by glob (sensor.Match: the globs that pick
// sensors from an object store), flows overlapping [From, To) (zero
// bounds are open).
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
			// The glob as RE2 (ClickHouse's match() is RE2): the same names
			// as sensor.Match, which LIKE's '_' and '%' would not give. A
			// malformed glob matches nothing, as in sensor.Match.
			re, err := sensor.Regexp(g)
			if err != nil {
				ors = append(ors, "0")
				continue
			}
			ors = append(ors, "match(sensor, "+quote(re)+")")
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

// quote makes a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Records streams the selected flow records in time order (first packet,
// then sensor, shard and the record's place in its shard, which is the
// order a store reads them in), each with its sensor and shard. The record
// passed to fn is reused. Rows that do not make a valid record (a table
// written by something else, or damaged) are skipped and named in a
// *RowError returned after every good row was delivered.
func (db *DB) Records(ctx context.Context, q Query, fn func(sensor, shard string, r *flow.Record) error) error {
	sql := "SELECT sensor, shard, first_us, last_us, proto, vlan, orig, resp, orig_port, resp_port, orig_pkts, resp_pkts, " +
		"orig_ip_bytes, resp_ip_bytes, orig_bytes, resp_bytes, orig_flags, resp_flags, partial, name, name_source, answers, " +
		"bursts, burst_head, burst_ms, http_target, proxy_dest, " + db.tlsColumns() + " FROM " + db.cfg.Database + "." + tableFlows +
		" WHERE " + db.where(q) + " ORDER BY first_us, sensor, shard, seq"
	rows, err := db.conn.Query(ctx, sql)
	if err != nil {
		return db.wrap("read flows", err)
	}
	defer rows.Close()
	var row Row
	var r flow.Record
	var bad RowError
	for rows.Next() {
		if err := rows.Scan(&row.Sensor, &row.Shard, &row.First, &row.Last, &row.Proto, &row.VLAN, &row.Orig, &row.Resp,
			&row.OrigPort, &row.RespPort, &row.OrigPkts, &row.RespPkts, &row.OrigIP, &row.RespIP, &row.OrigData, &row.RespData,
			&row.OrigFlags, &row.RespFlags, &row.Partial, &row.Name, &row.NameSource, &row.Answers, &row.Bursts, &row.BurstHead,
			&row.BurstMs, &row.Target, &row.Proxy, &row.TLSFlags, &row.CertSubject, &row.CertIssuer); err != nil {
			return db.wrap("read flows", err)
		}
		if err := row.Record(&r); err != nil {
			bad.add(fmt.Sprintf("sensor %s shard %s: %v", row.Sensor, row.Shard, err))
			continue
		}
		if err := fn(row.Sensor, row.Shard, &r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return db.wrap("read flows", err)
	}
	if bad.Count > 0 {
		return &bad
	}
	return nil
}

// Row is one row of the flows table as read.
type Row struct {
	Sensor, Shard, Name, Target, Proxy string
	First, Last                        int64
	Proto, OrigFlags, RespFlags        uint8
	Partial, NameSource, BurstHead     uint8
	VLAN, OrigPort, RespPort           uint16
	Orig, Resp                         string
	OrigPkts, RespPkts, OrigIP, RespIP uint64
	OrigData, RespData                 uint64
	Answers                            []string
	Bursts                             uint32
	BurstMs                            []uint32
	TLSFlags                           uint8
	CertSubject, CertIssuer            string
	seq                                uint32 // place in the shard (Pairs)
}

// tlsColumns are the certificate columns, or their defaults for a table
// that predates them.
func (db *DB) tlsColumns() string {
	if db.noTLS {
		return "toUInt8(0), '', ''"
	}
	return "tls_flags, cert_subject, cert_issuer"
}

// Limits a row must keep, the flow file's (docs/format/flows.md).
const (
	maxAnswers   = 32
	maxName      = 255
	maxProxyDest = 255
)

// Record checks the row against the flow format's invariants and fills r.
// The database is not trusted more than a flow file: every array and
// string is bounded before it is used.
func (w *Row) Record(r *flow.Record) error {
	switch {
	case len(w.Orig) != 16 || len(w.Resp) != 16:
		return fmt.Errorf("address of %d and %d bytes, want 16", len(w.Orig), len(w.Resp))
	case w.Last < w.First:
		return fmt.Errorf("last_us %d before first_us %d", w.Last, w.First)
	case len(w.Answers) > maxAnswers:
		return fmt.Errorf("%d answers, at most %d", len(w.Answers), maxAnswers)
	case len(w.Name) > maxName || len(w.Proxy) > maxProxyDest || len(w.Target) > flow.MaxTarget:
		return fmt.Errorf("name, proxy_dest or http_target too long")
	case len(w.BurstMs) > flow.MaxBursts || int(w.BurstHead) > len(w.BurstMs) || uint64(len(w.BurstMs)) > uint64(w.Bursts):
		return fmt.Errorf("burst series of %d starts, head %d, %d bursts", len(w.BurstMs), w.BurstHead, w.Bursts)
	case w.NameSource > uint8(flow.NameSNI):
		return fmt.Errorf("name_source %d", w.NameSource)
	case flow.TLSFlags(w.TLSFlags)&^flow.TLSFlagsAll != 0 || len(w.CertSubject) > flow.MaxCN || len(w.CertIssuer) > flow.MaxCN ||
		w.TLSFlags&uint8(flow.TLSCertSeen) == 0 && (w.TLSFlags&uint8(flow.TLSSelfSigned|flow.TLSIssuerAbsent) != 0 || w.CertSubject != "" || w.CertIssuer != ""):
		return fmt.Errorf("tls_flags %#x with names of %d and %d bytes", w.TLSFlags, len(w.CertSubject), len(w.CertIssuer))
	}
	// +1: both ends were cut to the microsecond, the starts were not.
	durMs := (w.Last-w.First)/1000 + 1
	for i, ms := range w.BurstMs {
		if int64(ms) > durMs || i > 0 && ms < w.BurstMs[i-1] {
			return fmt.Errorf("burst start %d ms out of order or past the flow's end", ms)
		}
	}
	*r = flow.Record{
		First: time.UnixMicro(w.First).UTC(), Last: time.UnixMicro(w.Last).UTC(), Proto: w.Proto, VLAN: w.VLAN,
		Orig: addrFrom16([]byte(w.Orig)), Resp: addrFrom16([]byte(w.Resp)), OrigPort: w.OrigPort, RespPort: w.RespPort,
		OrigPkts: w.OrigPkts, RespPkts: w.RespPkts, OrigBytes: w.OrigIP, RespBytes: w.RespIP, OrigData: w.OrigData, RespData: w.RespData,
		OrigFlags: w.OrigFlags, RespFlags: w.RespFlags, Partial: w.Partial != 0, Name: w.Name, NameSource: flow.NameSource(w.NameSource),
		HTTPTarget: w.Target, ProxyDest: w.Proxy,
		TLS: flow.TLSCert{Flags: flow.TLSFlags(w.TLSFlags), SubjectCN: w.CertSubject, IssuerCN: w.CertIssuer},
	}
	if len(w.Answers) > 0 {
		r.Answers = make([]netip.Addr, 0, len(w.Answers))
		for _, a := range w.Answers {
			if len(a) != 16 {
				return fmt.Errorf("answer of %d bytes, want 16", len(a))
			}
			r.Answers = append(r.Answers, addrFrom16([]byte(a)))
		}
	}
	if w.Bursts > 0 || len(w.BurstMs) > 0 {
		r.Bursts = flow.Bursts{At: append([]uint32(nil), w.BurstMs...), N: w.Bursts, Head: w.BurstHead}
	}
	return nil
}

// maxPlaces bounds the bad rows named; the rest are counted.
const maxPlaces = 100

// RowError names rows that were skipped because they do not make a valid
// flow record; every other row was used.
type RowError struct {
	Places []string
	Count  int
}

func (e *RowError) add(place string) {
	e.Count++
	if len(e.Places) < maxPlaces {
		e.Places = append(e.Places, place)
	}
}

func (e *RowError) Error() string {
	if e.Count == 1 {
		return "bad flow row skipped: " + e.Places[0]
	}
	return fmt.Sprintf("%d bad flow rows skipped, first: %s", e.Count, e.Places[0])
}
