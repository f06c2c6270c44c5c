package flowdb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SchemaVersion is the version of docs/format/clickhouse.md this package
// writes and the highest it reads.
const SchemaVersion = 2

// schemaTLS is the version that added the certificate columns
// (flowColumnsSince).
const schemaTLS = 2

// Table names (docs/format/clickhouse.md).
const (
	tableSchema = "nwhealth_schema"
	tableFlows  = "flows"
	tableShards = "flow_shards"
	localSuffix = "_local"
)

// ErrNewerSchema is returned for a database written by a newer nwhealth.
var ErrNewerSchema = errors.New("schema from a newer nwhealth")

// ErrNotOurs is returned for a database whose flows table nwhealth did
// not make.
var ErrNotOurs = errors.New("not an nwhealth flow database")

// column is one column of a table: its name, its type on every server,
// and the codec a recent server may add (docs: Servers old and new).
type column struct {
	name, typ string
	lowCard   bool   // LowCardinality on recent servers
	codec     string // CODEC(...) on recent servers
	since     uint32 // the schema version that added it (0: the first)
}

const (
	codecTime  = "CODEC(Delta, ZSTD(1))"
	codecCount = "CODEC(T64, ZSTD(1))"
)

// flowColumns is the flows table, in insert order.
var flowColumns = []column{
	{name: "day", typ: "Date"},
	{name: "sensor", typ: "String", lowCard: true},
	{name: "shard", typ: "String"},
	{name: "batch", typ: "UInt64"},
	{name: "seq", typ: "UInt32", codec: codecCount},
	{name: "first_us", typ: "Int64", codec: codecTime},
	{name: "last_us", typ: "Int64", codec: codecTime},
	{name: "proto", typ: "UInt8"},
	{name: "vlan", typ: "UInt16"},
	{name: "orig", typ: "FixedString(16)"},
	{name: "resp", typ: "FixedString(16)"},
	{name: "orig_port", typ: "UInt16"},
	{name: "resp_port", typ: "UInt16"},
	{name: "orig_pkts", typ: "UInt64", codec: codecCount},
	{name: "resp_pkts", typ: "UInt64", codec: codecCount},
	{name: "orig_ip_bytes", typ: "UInt64", codec: codecCount},
	{name: "resp_ip_bytes", typ: "UInt64", codec: codecCount},
	{name: "orig_bytes", typ: "UInt64", codec: codecCount},
	{name: "resp_bytes", typ: "UInt64", codec: codecCount},
	{name: "orig_flags", typ: "UInt8"},
	{name: "resp_flags", typ: "UInt8"},
	{name: "state", typ: "String", lowCard: true},
	{name: "partial", typ: "UInt8"},
	{name: "name", typ: "String", lowCard: true},
	{name: "name_source", typ: "UInt8"},
	{name: "answers", typ: "Array(FixedString(16))"},
	{name: "bursts", typ: "UInt32"},
	{name: "burst_head", typ: "UInt8"},
	{name: "burst_ms", typ: "Array(UInt32)"},
	{name: "http_target", typ: "String"},
	{name: "proxy_dest", typ: "String"},
	// Version 2: the server certificate's facts (flows.md version 3).
	{name: "tls_flags", typ: "UInt8", since: schemaTLS},
	{name: "cert_subject", typ: "String", since: schemaTLS},
	{name: "cert_issuer", typ: "String", since: schemaTLS},
}

var shardColumns = []column{
	{name: "day", typ: "Date"},
	{name: "sensor", typ: "String", lowCard: true},
	{name: "shard", typ: "String"},
	{name: "batch", typ: "UInt64"},
	{name: "records", typ: "UInt64"},
	{name: "first_us", typ: "Int64"},
	{name: "last_us", typ: "Int64"},
	{name: "exported", typ: "DateTime"},
}

var schemaColumns = []column{
	{name: "version", typ: "UInt32"},
	{name: "created", typ: "DateTime"},
	{name: "writer", typ: "String"},
}

// features are what a server's release allows beyond 18.16's SQL.
type features struct {
	lowCard bool // LowCardinality stable (19.x experimental, 20.1 on by default)
	codecs  bool // column codecs (19.1; T64 19.x)
	ttl     bool // table TTL (19.6)
}

// featuresFor maps version() to features. Everything newer is taken from
// 20.1 on, where all three are stable, so the test of the new path and the
// servers in production agree; anything older gets the 18.16 SQL.
func featuresFor(version string) features {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 20 {
		return features{}
	}
	return features{lowCard: true, codecs: true, ttl: true}
}

func columnsDDL(cols []column, f features) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(",\n  ")
		}
		typ := c.typ
		if c.lowCard && f.lowCard {
			typ = "LowCardinality(" + typ + ")"
		}
		b.WriteString(c.name + " " + typ)
		if c.codec != "" && f.codecs {
			b.WriteString(" " + c.codec)
		}
	}
	return b.String()
}

// columnDDL is one column's definition, as columnsDDL writes it.
func columnDDL(c column, f features) string {
	return columnsDDL([]column{c}, f)
}

func columnNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// mergeTreeDDL is the CREATE statement of a flows or flow_shards table
// (the table itself on one server, the local table of a cluster).
// ttlDays > 0 adds a TTL on servers that have it.
func mergeTreeDDL(db, table string, cols []column, orderBy string, f features, ttlDays int) string {
	s := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (\n  %s\n) ENGINE = MergeTree\nPARTITION BY day\nORDER BY (%s)",
		db, table, columnsDDL(cols, f), orderBy)
	if f.ttl && ttlDays > 0 {
		s += fmt.Sprintf("\nTTL day + INTERVAL %d DAY", ttlDays)
	}
	return s
}

func schemaDDL(db string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (\n  %s\n) ENGINE = TinyLog", db, tableSchema, columnsDDL(schemaColumns, features{}))
}

func distributedDDL(db, table, cluster string, cols []column, f features) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (\n  %s\n) ENGINE = Distributed(%s, %s, %s, cityHash64(sensor))",
		db, table, columnsDDL(cols, f), cluster, db, table+localSuffix)
}

const (
	flowsOrder  = "sensor, orig, resp, resp_port, proto, first_us"
	shardsOrder = "sensor, shard"
)

// ddl is the CREATE statement of one table.
type ddl struct{ table, sql string }

// tablesDDL lists the statements that create a server's tables: the
// MergeTree tables named as docs say for one server, or for a cluster the
// local tables and the Distributed tables over them.
func tablesDDL(db, cluster string, f features, ttlDays int) []ddl {
	if cluster == "" {
		return []ddl{
			{tableSchema, schemaDDL(db)},
			{tableFlows, mergeTreeDDL(db, tableFlows, flowColumns, flowsOrder, f, ttlDays)},
			{tableShards, mergeTreeDDL(db, tableShards, shardColumns, shardsOrder, f, ttlDays)},
		}
	}
	return []ddl{
		{tableSchema, schemaDDL(db)},
		{tableFlows + localSuffix, mergeTreeDDL(db, tableFlows+localSuffix, flowColumns, flowsOrder, f, ttlDays)},
		{tableShards + localSuffix, mergeTreeDDL(db, tableShards+localSuffix, shardColumns, shardsOrder, f, ttlDays)},
		{tableFlows, distributedDDL(db, tableFlows, cluster, flowColumns, f)},
		{tableShards, distributedDDL(db, tableShards, cluster, shardColumns, f)},
	}
}
