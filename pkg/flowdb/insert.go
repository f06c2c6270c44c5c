package flowdb

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nwhealth/nwhealth/pkg/flow"
)

// Shard is one shard's flow records, as exported.
type Shard struct {
	Sensor string
	Name   string // shard file name without extension
	// First and Last bound the shard's packets; they date a shard without
	// records (its flow_shards row still says it was exported).
	First, Last time.Time
	Records     []flow.Record
}

// Exported returns the shards of sensor that have a flow_shards row: the
// ones an export skips.
func (db *DB) Exported(ctx context.Context, sensor string) (map[string]bool, error) {
	rows, err := db.conn.Query(ctx, "SELECT DISTINCT shard FROM "+db.cfg.Database+"."+tableShards+" WHERE sensor = ?", sensor)
	if err != nil {
		return nil, db.wrap("list exported shards", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, db.wrap("list exported shards", err)
		}
		out[s] = true
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("list exported shards", err)
	}
	return out, nil
}

// syncInsert makes a Distributed table's insert return only once every
// server holds the rows, so a flow_shards row never lands before the rows
// it names (docs: Sharded deployment). One server ignores it.
func (db *DB) insertCtx(ctx context.Context) context.Context {
	if db.cfg.Cluster == "" {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// Insert writes the records of several shards as one INSERT (large blocks
// are what ClickHouse wants), then their flow_shards rows. A failure
// before the second insert leaves rows that no query counts; the shards
// are exported again by the next run.
func (db *DB) Insert(ctx context.Context, shards []Shard) error {
	if len(shards) == 0 {
		return nil
	}
	// One batch id per shard, though many shards share an INSERT: a batch
	// then names one shard's rows, and readers filter on it alone.
	batches := make([]uint64, len(shards))
	for i := range batches {
		batches[i] = newBatchID()
	}
	n := 0
	for _, s := range shards {
		n += len(s.Records)
	}
	ictx := db.insertCtx(ctx)
	if n > 0 {
		b, err := db.conn.PrepareBatch(ictx, "INSERT INTO "+db.cfg.Database+"."+tableFlows+" ("+columnNames(flowColumns)+")")
		if err != nil {
			return db.wrap("insert flows", err)
		}
		// One INSERT, sent as blocks of blockRows: the server squashes them
		// into large parts while this side builds the next block, and
		// memory holds one block of columns, not the whole batch.
		cols := newFlowCols(min(n, blockRows))
		flush := func() error {
			// The columns of flowColumns (a test writes an older schema's).
			for i, v := range cols.slices()[:len(flowColumns)] {
				if err := b.Column(i).Append(v); err != nil {
					return fmt.Errorf("column %s: %w", flowColumns[i].name, err)
				}
			}
			cols.reset()
			return b.Flush()
		}
		for j, s := range shards {
			for i := range s.Records {
				cols.add(s.Sensor, s.Name, batches[j], i, &s.Records[i])
				if len(cols.first) == blockRows {
					if err := flush(); err != nil {
						b.Abort()
						return db.wrap(fmt.Sprintf("insert %d flow records of %d shards", n, len(shards)), err)
					}
				}
			}
		}
		if err := flush(); err != nil {
			b.Abort()
			return db.wrap(fmt.Sprintf("insert %d flow records of %d shards", n, len(shards)), err)
		}
		if err := b.Send(); err != nil {
			return db.wrap(fmt.Sprintf("insert %d flow records of %d shards", n, len(shards)), err)
		}
	}
	b, err := db.conn.PrepareBatch(ictx, "INSERT INTO "+db.cfg.Database+"."+tableShards+" ("+columnNames(shardColumns)+")")
	if err != nil {
		return db.wrap("insert flow_shards", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for j, s := range shards {
		// The records' span when there are records, else the shard's own.
		var first, last int64
		if len(s.Records) == 0 && !s.First.IsZero() {
			first, last = s.First.UnixMicro(), s.Last.UnixMicro()
		}
		for i := range s.Records {
			f, l := s.Records[i].First.UnixMicro(), s.Records[i].Last.UnixMicro()
			if i == 0 || f < first {
				first = f
			}
			if i == 0 || l > last {
				last = l
			}
		}
		if err := b.Append(dayOf(first), s.Sensor, s.Name, batches[j], uint64(len(s.Records)), first, last, now); err != nil {
			b.Abort()
			return db.wrap("insert flow_shards", err)
		}
	}
	if err := b.Send(); err != nil {
		return db.wrap("insert flow_shards", err)
	}
	return nil
}

func newBatchID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1 // never 0, which no export writes
}

// dayOf is the UTC day of a microsecond time, as a Date column takes it.
func dayOf(us int64) time.Time {
	return time.UnixMicro(us).UTC().Truncate(24 * time.Hour)
}

// blockRows is the rows of one block sent to the server.
const blockRows = 1 << 16

// addr16 is an address as the schema stores it: 16 bytes, IPv4 mapped.
func addr16(a netip.Addr) []byte {
	if !a.IsValid() {
		return make([]byte, 16)
	}
	b := a.As16()
	return b[:]
}

// addrFrom16 reverses addr16 (an IPv4-mapped address reads as IPv4).
func addrFrom16(b []byte) netip.Addr {
	if len(b) != 16 {
		return netip.Addr{}
	}
	return netip.AddrFrom16([16]byte(b)).Unmap()
}

// flowCols holds the flows table column-wise: appending whole columns
// costs the driver one call each instead of reflection on every value.
type flowCols struct {
	day                                  []time.Time
	sensor, shard                        []string
	batch                                []uint64
	seq                                  []uint32
	first, last                          []int64
	proto, oflags, rflags, partial, nsrc []uint8
	burstHead                            []uint8
	vlan, oport, rport                   []uint16
	orig, resp                           [][]byte
	opkts, rpkts, oip, rip, odata, rdata []uint64
	state, name, target, proxy           []string
	tls                                  []uint8
	subject, issuer                      []string
	answers                              [][][]byte
	bursts                               []uint32
	burstMs                              [][]uint32
	addrs                                []byte // backing of orig, resp and answers
	lastDay                              time.Time
	lastDayUs                            int64
	lastDayEnd                           int64
}

func newFlowCols(n int) *flowCols {
	return &flowCols{
		day: make([]time.Time, 0, n), sensor: make([]string, 0, n), shard: make([]string, 0, n), batch: make([]uint64, 0, n), seq: make([]uint32, 0, n),
		first: make([]int64, 0, n), last: make([]int64, 0, n), proto: make([]uint8, 0, n), vlan: make([]uint16, 0, n),
		orig: make([][]byte, 0, n), resp: make([][]byte, 0, n), oport: make([]uint16, 0, n), rport: make([]uint16, 0, n),
		opkts: make([]uint64, 0, n), rpkts: make([]uint64, 0, n), oip: make([]uint64, 0, n), rip: make([]uint64, 0, n),
		odata: make([]uint64, 0, n), rdata: make([]uint64, 0, n), oflags: make([]uint8, 0, n), rflags: make([]uint8, 0, n),
		state: make([]string, 0, n), partial: make([]uint8, 0, n), name: make([]string, 0, n), nsrc: make([]uint8, 0, n),
		answers: make([][][]byte, 0, n), bursts: make([]uint32, 0, n), burstHead: make([]uint8, 0, n),
		burstMs: make([][]uint32, 0, n), target: make([]string, 0, n), proxy: make([]string, 0, n),
	}
}

func (c *flowCols) add(sensor, shard string, batch uint64, seq int, r *flow.Record) {
	first := r.First.UnixMicro()
	// Records come in time order: the day changes rarely.
	if c.lastDayEnd == 0 || first < c.lastDayUs || first >= c.lastDayEnd {
		c.lastDay = dayOf(first)
		c.lastDayUs = c.lastDay.UnixMicro()
		c.lastDayEnd = c.lastDayUs + int64(24*time.Hour/time.Microsecond)
	}
	c.day = append(c.day, c.lastDay)
	c.sensor = append(c.sensor, sensor)
	c.shard = append(c.shard, shard)
	c.batch = append(c.batch, batch)
	c.seq = append(c.seq, uint32(seq))
	c.first = append(c.first, first)
	c.last = append(c.last, r.Last.UnixMicro())
	c.proto = append(c.proto, r.Proto)
	c.vlan = append(c.vlan, r.VLAN)
	c.orig = append(c.orig, c.addr(r.Orig))
	c.resp = append(c.resp, c.addr(r.Resp))
	c.oport = append(c.oport, r.OrigPort)
	c.rport = append(c.rport, r.RespPort)
	c.opkts = append(c.opkts, r.OrigPkts)
	c.rpkts = append(c.rpkts, r.RespPkts)
	c.oip = append(c.oip, r.OrigBytes)
	c.rip = append(c.rip, r.RespBytes)
	c.odata = append(c.odata, r.OrigData)
	c.rdata = append(c.rdata, r.RespData)
	c.oflags = append(c.oflags, r.OrigFlags)
	c.rflags = append(c.rflags, r.RespFlags)
	c.state = append(c.state, r.State())
	var partial uint8
	if r.Partial {
		partial = 1
	}
	c.partial = append(c.partial, partial)
	c.name = append(c.name, r.Name)
	c.nsrc = append(c.nsrc, uint8(r.NameSource))
	var ans [][]byte
	if len(r.Answers) > 0 {
		ans = make([][]byte, len(r.Answers))
		for i, a := range r.Answers {
			ans[i] = c.addr(a)
		}
	}
	c.answers = append(c.answers, ans)
	c.bursts = append(c.bursts, r.Bursts.N)
	c.burstHead = append(c.burstHead, r.Bursts.Head)
	ms := r.Bursts.At
	if ms == nil {
		ms = []uint32{}
	}
	c.burstMs = append(c.burstMs, ms)
	c.target = append(c.target, r.HTTPTarget)
	c.proxy = append(c.proxy, r.ProxyDest)
	c.tls = append(c.tls, uint8(r.TLS.Flags))
	c.subject = append(c.subject, r.TLS.SubjectCN)
	c.issuer = append(c.issuer, r.TLS.IssuerCN)
}

// addr stores a's 16 bytes in the block's address buffer. The buffer is
// never grown in place while slices point into it: a full one is left to
// them and a new one started.
func (c *flowCols) addr(a netip.Addr) []byte {
	if len(c.addrs)+16 > cap(c.addrs) {
		c.addrs = make([]byte, 0, 16*4096)
	}
	b := a.As16()
	if !a.IsValid() {
		b = [16]byte{}
	}
	c.addrs = append(c.addrs, b[:]...)
	return c.addrs[len(c.addrs)-16:]
}

// reset empties the columns for the next block, keeping their memory.
func (c *flowCols) reset() {
	c.day, c.sensor, c.shard, c.batch, c.seq = c.day[:0], c.sensor[:0], c.shard[:0], c.batch[:0], c.seq[:0]
	c.first, c.last, c.proto, c.vlan = c.first[:0], c.last[:0], c.proto[:0], c.vlan[:0]
	clear(c.orig)
	clear(c.resp)
	clear(c.answers)
	clear(c.burstMs)
	c.orig, c.resp, c.oport, c.rport = c.orig[:0], c.resp[:0], c.oport[:0], c.rport[:0]
	c.opkts, c.rpkts, c.oip, c.rip = c.opkts[:0], c.rpkts[:0], c.oip[:0], c.rip[:0]
	c.odata, c.rdata, c.oflags, c.rflags = c.odata[:0], c.rdata[:0], c.oflags[:0], c.rflags[:0]
	c.state, c.partial, c.name, c.nsrc = c.state[:0], c.partial[:0], c.name[:0], c.nsrc[:0]
	c.answers, c.bursts, c.burstHead = c.answers[:0], c.bursts[:0], c.burstHead[:0]
	c.burstMs, c.target, c.proxy = c.burstMs[:0], c.target[:0], c.proxy[:0]
	c.tls, c.subject, c.issuer = c.tls[:0], c.subject[:0], c.issuer[:0]
	c.addrs = nil
}

// slices lists the columns in flowColumns order.
func (c *flowCols) slices() []any {
	return []any{c.day, c.sensor, c.shard, c.batch, c.seq, c.first, c.last, c.proto, c.vlan, c.orig, c.resp,
		c.oport, c.rport, c.opkts, c.rpkts, c.oip, c.rip, c.odata, c.rdata, c.oflags, c.rflags,
		c.state, c.partial, c.name, c.nsrc, c.answers, c.bursts, c.burstHead, c.burstMs, c.target, c.proxy,
		c.tls, c.subject, c.issuer}
}
