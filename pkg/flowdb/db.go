package flowdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DB is a connection to the flow database: the server in the URL, and for
// a cluster every server of it (for DDL and retention, which ClickHouse
// without ZooKeeper does not spread by itself).
type DB struct {
	cfg     Config
	conn    driver.Conn
	version string
	feat    features
	nodes   []node // cluster servers; empty for one server
	// noTLS: the flows table predates the certificate columns (schema
	// version 1, read as it is): readers ask for their defaults instead.
	noTLS bool
}

type node struct {
	addr string
	conn driver.Conn
}

// Open connects to the server of cfg and checks that it answers.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	conn, err := dial(ctx, cfg, cfg.Addr())
	if err != nil {
		return nil, err
	}
	db := &DB{cfg: cfg, conn: conn}
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&db.version); err != nil {
		conn.Close()
		return nil, db.wrap("read version", err)
	}
	db.feat = featuresFor(db.version)
	if cfg.Cluster != "" {
		if err := db.openNodes(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func dial(ctx context.Context, cfg Config, addr string) (driver.Conn, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.Native, // 18.16 does not take the driver's HTTP batches
		Addr:     []string{addr},
		Auth:     clickhouse.Auth{Database: "default", Username: cfg.User, Password: cfg.Password},
		TLS:      tc,
		// Compressed blocks: the rows are repetitive and the link may be a WAN.
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:  10 * time.Second,
		MaxOpenConns: 4,
		ClientInfo:   clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{"nwhealth", ""}}},
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s@%s: %w", cfg.User, addr, cleanErr(err, cfg.Password))
	}
	return conn, nil
}

// cleanErr makes sure no error text carries the password (a server may
// echo what it was sent).
func cleanErr(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}

func (db *DB) wrap(what string, err error) error {
	return fmt.Errorf("clickhouse %s: %s: %w", db.cfg.String(), what, cleanErr(err, db.cfg.Password))
}

// openNodes connects to every server of the cluster named in the URL.
func (db *DB) openNodes(ctx context.Context) error {
	rows, err := db.conn.Query(ctx, "SELECT host_address, port FROM system.clusters WHERE cluster = '"+db.cfg.Cluster+"' ORDER BY shard_num, replica_num")
	if err != nil {
		return db.wrap("list cluster", err)
	}
	var addrs []string
	for rows.Next() {
		var host string
		var port uint16
		if err := rows.Scan(&host, &port); err != nil {
			rows.Close()
			return db.wrap("list cluster", err)
		}
		addrs = append(addrs, fmt.Sprintf("%s:%d", bracket(host), port))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return db.wrap("list cluster", err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("clickhouse %s: no cluster %q in system.clusters (remote_servers)", db.cfg.String(), db.cfg.Cluster)
	}
	for _, a := range addrs {
		c, err := dial(ctx, db.cfg, a)
		if err != nil {
			return err
		}
		db.nodes = append(db.nodes, node{addr: a, conn: c})
	}
	return nil
}

func bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// Close closes every connection.
func (db *DB) Close() error {
	for _, n := range db.nodes {
		n.conn.Close()
	}
	return db.conn.Close()
}

// Name names the server and database for messages (no password).
func (db *DB) Name() string { return db.cfg.String() }

// Version is the server's version().
func (db *DB) Version() string { return db.version }

// each runs fn on every server that holds tables: the cluster's servers,
// or the one server.
func (db *DB) each(fn func(addr string, c driver.Conn) error) error {
	if len(db.nodes) == 0 {
		return fn(db.cfg.Addr(), db.conn)
	}
	for _, n := range db.nodes {
		if err := fn(n.addr, n.conn); err != nil {
			return err
		}
	}
	return nil
}

// Ensure creates the database and tables where missing (every server of a
// cluster) and checks the schema version. ttlDays > 0 asks recent servers
// to drop old rows themselves. Only what is missing is created, so once
// an administrator has made the tables a sensor needs no CREATE right.
func (db *DB) Ensure(ctx context.Context, ttlDays int) error {
	d := db.cfg.Database
	return db.each(func(addr string, c driver.Conn) error {
		have, err := db.tables(ctx, c)
		if err != nil {
			return err
		}
		if have == nil {
			if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+d); err != nil {
				return db.wrap("create database on "+addr, err)
			}
			have = map[string]bool{}
		}
		// Refuse before touching anything when a newer nwhealth was here.
		if err := db.checkTables(ctx, c, have, true); err != nil {
			return err
		}
		for _, t := range tablesDDL(d, db.cfg.Cluster, db.feat, ttlDays) {
			if have[t.table] {
				continue
			}
			if err := c.Exec(ctx, t.sql); err != nil {
				return db.wrap("create table "+t.table+" on "+addr, err)
			}
		}
		if err := db.upgrade(ctx, addr, c); err != nil {
			return err
		}
		var n uint64
		if err := c.QueryRow(ctx, "SELECT count() FROM "+d+"."+tableSchema+" WHERE version >= "+fmt.Sprint(SchemaVersion)).Scan(&n); err != nil {
			return db.wrap("read schema version on "+addr, err)
		}
		if n > 0 {
			return nil
		}
		b, err := c.PrepareBatch(ctx, "INSERT INTO "+d+"."+tableSchema+" ("+columnNames(schemaColumns)+")")
		if err != nil {
			return db.wrap("write schema version on "+addr, err)
		}
		if err := b.Append(uint32(SchemaVersion), time.Now().UTC().Truncate(time.Second), fmt.Sprintf("nwhealth schema %d", SchemaVersion)); err != nil {
			b.Abort()
			return db.wrap("write schema version", err)
		}
		if err := b.Send(); err != nil {
			return db.wrap("write schema version on "+addr, err)
		}
		return nil
	})
}

// upgrade adds the columns of later schema versions that a flows table of
// an earlier one lacks (docs/format/clickhouse.md, Upgrades): on the
// table itself, or on a cluster's local and Distributed tables, which
// must agree. ADD COLUMN fills old rows with the column's default (zero,
// empty), which is what an older record means: nothing seen.
func (db *DB) upgrade(ctx context.Context, addr string, c driver.Conn) error {
	d := db.cfg.Database
	for _, t := range []string{tableFlows + localSuffix, tableFlows} {
		have, err := db.columns(ctx, c, t)
		if err != nil {
			return err
		}
		if len(have) == 0 {
			continue // no such table on this server
		}
		for _, col := range flowColumns {
			if col.since == 0 || have[col.name] {
				continue
			}
			if err := c.Exec(ctx, "ALTER TABLE "+d+"."+t+" ADD COLUMN "+columnDDL(col, db.feat)); err != nil {
				return db.wrap("add column "+col.name+" to "+t+" on "+addr, err)
			}
		}
	}
	return nil
}

// columns lists a table's columns on one server (none when the table does
// not exist).
func (db *DB) columns(ctx context.Context, c driver.Conn, table string) (map[string]bool, error) {
	rows, err := c.Query(ctx, "SELECT name FROM system.columns WHERE database = "+quote(db.cfg.Database)+" AND table = "+quote(table))
	if err != nil {
		return nil, db.wrap("list columns of "+table, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, db.wrap("list columns of "+table, err)
		}
		have[name] = true
	}
	return have, rows.Err()
}

// Check verifies that the database holds a schema this nwhealth reads,
// and notes which columns a reader may ask for: a database still at an
// older version (no sensor has exported since) is read as it is.
func (db *DB) Check(ctx context.Context) error {
	have, err := db.tables(ctx, db.conn)
	if err != nil {
		return err
	}
	if have == nil {
		return fmt.Errorf("clickhouse %s: no database %s (export with nwhealth flows --export first)", db.cfg.String(), db.cfg.Database)
	}
	if err := db.checkTables(ctx, db.conn, have, false); err != nil {
		return err
	}
	cols, err := db.columns(ctx, db.conn, tableFlows)
	if err != nil {
		return err
	}
	db.noTLS = !cols["tls_flags"]
	return nil
}

// tables lists the database's tables on one server; nil when the
// database does not exist.
func (db *DB) tables(ctx context.Context, c driver.Conn) (map[string]bool, error) {
	d := db.cfg.Database
	var dbs uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = "+quote(d)).Scan(&dbs); err != nil {
		return nil, db.wrap("list databases", err)
	}
	if dbs == 0 {
		return nil, nil
	}
	rows, err := c.Query(ctx, "SELECT name FROM system.tables WHERE database = "+quote(d))
	if err != nil {
		return nil, db.wrap("list tables", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, db.wrap("list tables", err)
		}
		have[name] = true
	}
	return have, rows.Err()
}

// checkTables reads the schema version on one server. A database without
// tables passes when creating (fresh); a flows table without a version
// table was not made by nwhealth.
func (db *DB) checkTables(ctx context.Context, c driver.Conn, have map[string]bool, creating bool) error {
	d := db.cfg.Database
	if !have[tableSchema] {
		if have[tableFlows] || have[tableFlows+localSuffix] {
			return fmt.Errorf("clickhouse %s: %w: table flows exists but %s does not", db.cfg.String(), ErrNotOurs, tableSchema)
		}
		if creating {
			return nil
		}
		return fmt.Errorf("clickhouse %s: no flow tables (export with nwhealth flows --export first)", db.cfg.String())
	}
	var v uint32
	if err := c.QueryRow(ctx, "SELECT max(version) FROM "+d+"."+tableSchema).Scan(&v); err != nil {
		return db.wrap("read schema version", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("clickhouse %s: %w: schema version %d was written by a newer nwhealth; this one reads up to %d (upgrade nwhealth)",
			db.cfg.String(), ErrNewerSchema, v, SchemaVersion)
	}
	if !creating && !have[tableFlows] {
		return fmt.Errorf("clickhouse %s: no flows table", db.cfg.String())
	}
	return nil
}

// counted is the WHERE clause that keeps the rows of exported shards
// only (docs/format/clickhouse.md, Exactly once). A batch id names one
// shard's rows of one export, so the filter is on the number alone. On a
// cluster the subquery names the local table: each server filters its own
// rows (a sensor's rows and flow_shards rows live on one server).
func (db *DB) counted() string {
	t := tableShards
	if db.cfg.Cluster != "" {
		t += localSuffix
	}
	return "batch IN (SELECT min(batch) FROM " + db.cfg.Database + "." + t + " GROUP BY sensor, shard)"
}

// DropBefore drops the daily partitions of flows and flow_shards older
// than day on every server, and returns the days dropped.
func (db *DB) DropBefore(ctx context.Context, day time.Time) ([]string, error) {
	d := db.cfg.Database
	suffix := ""
	if db.cfg.Cluster != "" {
		suffix = localSuffix
	}
	cut := day.UTC().Format("2006-01-02")
	seen := map[string]bool{}
	var dropped []string
	err := db.each(func(addr string, c driver.Conn) error {
		for _, t := range []string{tableFlows + suffix, tableShards + suffix} {
			rows, err := c.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = '"+d+"' AND table = '"+t+"' AND active")
			if err != nil {
				return db.wrap("list partitions on "+addr, err)
			}
			var parts []string
			for rows.Next() {
				var p string
				if err := rows.Scan(&p); err != nil {
					rows.Close()
					return db.wrap("list partitions", err)
				}
				day, err := partitionDay(p)
				if err != nil {
					rows.Close()
					return fmt.Errorf("clickhouse %s: table %s on %s: %w", db.cfg.String(), t, addr, err)
				}
				parts = append(parts, day)
			}
			rows.Close()
			for _, p := range parts {
				if p >= cut {
					continue
				}
				if err := c.Exec(ctx, "ALTER TABLE "+d+"."+t+" DROP PARTITION '"+p+"'"); err != nil {
					return db.wrap("drop partition "+p+" of "+t+" on "+addr, err)
				}
				if !seen[p] {
					seen[p] = true
					dropped = append(dropped, p)
				}
			}
		}
		return nil
	})
	return dropped, err
}

// ErrPartition marks a partition name that is not a day as nwhealth
// partitions its tables (PARTITION BY day): a server that is broken,
// hostile, or holds a table of that name made by something else.
var ErrPartition = errors.New("partition is not a day (YYYY-MM-DD) as nwhealth makes them; retention stopped there")

// partitionDay checks a partition name from system.parts (a Date key
// shows as '2026-03-02', quotes included, or without them) and returns
// the day as nwhealth writes it. The name comes from the server and goes
// into an ALTER statement: only a real date, written back from its
// parsed value, ever does, so no quote or other SQL passes through.
func partitionDay(p string) (string, error) {
	v := p
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = v[1 : len(v)-1]
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil || d.Format(time.DateOnly) != v {
		if len(p) > 64 {
			p = p[:64] + "..."
		}
		return "", fmt.Errorf("%q: %w", p, ErrPartition)
	}
	return d.Format(time.DateOnly), nil
}

// Newest returns the last packet time of the newest exported shard
// ending no later than notAfter (zero when there is none): retention
// counts back from it, as the store's does from its newest packet. The
// bound keeps one shard stamped years ahead (a tap's wrong clock, a
// hostile capture) from making every day too old.
func (db *DB) Newest(ctx context.Context, notAfter time.Time) (time.Time, error) {
	var us int64
	q := "SELECT max(last_us) FROM " + db.cfg.Database + "." + tableShards + " WHERE last_us <= " + strconv.FormatInt(notAfter.UnixMicro(), 10)
	if err := db.conn.QueryRow(ctx, q).Scan(&us); err != nil {
		return time.Time{}, db.wrap("read newest shard", err)
	}
	if us == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(us).UTC(), nil
}
