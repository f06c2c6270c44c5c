package flowdb

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/chserver"
	"github.com/nwhealth/nwhealth/pkg/flow"
)

func testRecords(base time.Time, n int) []flow.Record {
	var out []flow.Record
	for i := 0; i < n; i++ {
		r := flow.Record{
			First: base.Add(time.Duration(i) * time.Minute).Add(123456 * time.Microsecond), Proto: 6,
			Orig: netip.MustParseAddr("10.1.2.3"), Resp: netip.MustParseAddr("198.51.100.7"),
			OrigPort: uint16(40000 + i), RespPort: 443, OrigPkts: 10, RespPkts: 8, OrigBytes: 900, RespBytes: 4000,
			OrigData: 300, RespData: 3500, OrigFlags: 0x1b, RespFlags: 0x1b, Name: "c2.example", NameSource: flow.NameSNI,
			Bursts: flow.Bursts{At: []uint32{0, 60000, 120000}, N: 3, Head: 3},
		}
		r.Last = r.First.Add(2*time.Minute + 789*time.Microsecond)
		if i%3 == 1 {
			r.Orig, r.Resp = netip.MustParseAddr("fd00::5"), netip.MustParseAddr("2001:db8::53")
			r.Proto, r.OrigPort, r.RespPort, r.OrigFlags, r.RespFlags = 17, 5353, 53, 0, 0
			r.Name, r.NameSource = "www.example", flow.NameDNS
			r.Answers = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
			r.Bursts = flow.Bursts{At: []uint32{0}, N: 1, Head: 1}
		}
		if i%3 == 2 {
			r.HTTPTarget, r.ProxyDest, r.Partial, r.VLAN = "http://x.example/a?b", "x.example:80", true, 12
			r.Bursts = flow.Bursts{}
		}
		switch i % 4 {
		case 0:
			r.TLS = flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSSelfSigned | flow.TLSNoSNI, SubjectCN: "Test Server", IssuerCN: "Test Server"}
		case 2:
			r.TLS = flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSIssuerAbsent, SubjectCN: "leaf", IssuerCN: "Lab CA é"}
		}
		out = append(out, r)
	}
	return out
}

func TestParseURL(t *testing.T) {
	env := func(k string) string {
		if k == PasswordEnv {
			return "fromenv"
		}
		return ""
	}
	for _, tc := range []struct {
		url  string
		want Config
		err  string
	}{
		{url: "clickhouse://h/db", want: Config{Host: "h", Port: 9000, Database: "db", User: "default", Password: "fromenv"}},
		{url: "clickhouse://u:p%40ss@h:9001/db?secure=true", want: Config{Host: "h", Port: 9001, Database: "db", User: "u", Password: "p@ss", Secure: true}},
		{url: "clickhouse://u@h/db?secure=true&cluster=fleet", want: Config{Host: "h", Port: 9440, Database: "db", User: "u", Password: "fromenv", Secure: true, Cluster: "fleet"}},
		{url: "clickhouse://[::1]:9000", want: Config{Host: "::1", Port: 9000, Database: "nwhealth", User: "default", Password: "fromenv"}},
		{url: "http://h/db", err: "scheme"},
		{url: "clickhouse://u:topsecret@h/db;drop", err: "database name"},
		{url: "clickhouse://u:topsecret@h/db?sslmode=x", err: "unknown parameter"},
		{url: "clickhouse:///db", err: "no host"},
	} {
		got, err := ParseURL(tc.url, env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "topsecret") {
				t.Errorf("%s: error shows the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.url, got, err, tc.want)
		}
		if strings.Contains(got.String(), got.Password) && got.Password != "" {
			t.Errorf("String() shows the password: %s", got)
		}
	}
	// Passwords that end the host part early when not percent-encoded:
	// refused, and no piece of them in the error or in Redact. A
	// numeric start parses as a port.
	for _, pw := range []string{"7531#Zqtopsecret", "7531?Zqtopsecret", "7531/Zqtopsecret", "top#secret", "Zq@top#secret", "top%zzsecret@x"} {
		raw := "clickhouse://sensor:" + pw + "@ch1:9000/fleet"
		_, err := ParseURL(raw, nil)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		for _, piece := range []string{"7531", "Zq", "secret"} {
			if strings.Contains(pw, piece) && (strings.Contains(err.Error(), piece) || strings.Contains(Redact(raw), piece)) {
				t.Errorf("%s: %q shown: %v; Redact %s", raw, piece, err, Redact(raw))
			}
		}
	}
	if r := Redact("clickhouse://u:p@ss@h/db"); r != "clickhouse://u:xxxxx@h/db" {
		t.Errorf("Redact of a password with '@': %s", r)
	}
	if r := Redact("clickhouse://u:topsecret@h/db"); strings.Contains(r, "topsecret") {
		t.Errorf("Redact: %s", r)
	}
	if r := Redact("clickhouse://u:top%zzsecret@h/db"); strings.Contains(r, "secret") {
		t.Errorf("Redact of a malformed URL: %s", r)
	}
}

// TestFeaturesDDL checks both SQL paths: 18.16's, and the one recent
// servers get (LowCardinality, codecs, TTL), which CI cannot run.
func TestFeaturesDDL(t *testing.T) {
	join := func(ds []ddl) string {
		var b strings.Builder
		for _, d := range ds {
			b.WriteString(d.sql + "\n")
		}
		return b.String()
	}
	old := join(tablesDDL("db", "", featuresFor("18.16.1"), 30))
	for _, bad := range []string{"LowCardinality", "CODEC", "TTL"} {
		if strings.Contains(old, bad) {
			t.Errorf("18.16 DDL uses %s:\n%s", bad, old)
		}
	}
	cur := join(tablesDDL("db", "", featuresFor("24.8.4.13"), 30))
	for _, want := range []string{"sensor LowCardinality(String)", "first_us Int64 CODEC(Delta, ZSTD(1))", "orig_pkts UInt64 CODEC(T64, ZSTD(1))", "TTL day + INTERVAL 30 DAY"} {
		if !strings.Contains(cur, want) {
			t.Errorf("current DDL lacks %q:\n%s", want, cur)
		}
	}
	if strings.Contains(join(tablesDDL("db", "", featuresFor("24.8"), 0)), "TTL") {
		t.Error("TTL without --max-age")
	}
	cl := join(tablesDDL("db", "fleet", features{}, 0))
	if !strings.Contains(cl, "Distributed(fleet, db, flows_local, cityHash64(sensor))") ||
		!strings.Contains(cl, "Distributed(fleet, db, flow_shards_local, cityHash64(sensor))") {
		t.Errorf("cluster DDL:\n%s", cl)
	}
}

func openTest(t *testing.T, url string) *DB {
	t.Helper()
	cfg, err := ParseURL(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestRoundTrip inserts records into a real server and reads them back
// field by field, on one server and on a two-server cluster.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 23, 50, 0, 0, time.UTC) // spans midnight: two partitions
	recs := testRecords(base, 30)
	for _, mode := range []string{"single", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			var url string
			var servers []*chserver.Server
			if mode == "single" {
				s := chserver.Start(t, 0, chserver.Options{})
				servers, url = []*chserver.Server{s}, s.URL("", "", "fleet")
			} else {
				servers = chserver.StartCluster(t, "nwh", 2, chserver.Options{})
				url = servers[0].URL("", "", "fleet") + "?cluster=nwh"
			}
			db := openTest(t, url)
			if err := db.Ensure(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if err := db.Ensure(ctx, 0); err != nil { // idempotent
				t.Fatal(err)
			}
			var shards []Shard
			for i, sensor := range []string{"s1", "s2", "s3", "s4"} {
				shards = append(shards, Shard{Sensor: sensor, Name: "shard" + sensor, Records: recs[i*7 : i*7+7]})
			}
			if err := db.Insert(ctx, shards); err != nil {
				t.Fatal(err)
			}
			done, err := db.Exported(ctx, "s2")
			if err != nil || !reflect.DeepEqual(done, map[string]bool{"shards2": true}) {
				t.Fatalf("exported s2: %v %v", done, err)
			}
			var got []flow.Record
			err = db.Records(ctx, Query{}, func(sensor, shard string, r *flow.Record) error {
				got = append(got, *r)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 28 {
				t.Fatalf("%d records back, want 28", len(got))
			}
			for i := range got {
				want := recs[i]
				if !reflect.DeepEqual(got[i], want) {
					t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want)
				}
			}
			if mode == "cluster" {
				// Sharded by sensor: both servers hold some rows, none holds all.
				var total int
				for _, s := range servers {
					n := strings.TrimSpace(s.Client(ctx, "SELECT count() FROM fleet.flows_local"))
					if n == "0" || n == "28" {
						t.Errorf("server %d holds %s of 28 rows: not sharded", s.Port, n)
					}
					var k int
					for _, c := range n {
						k = k*10 + int(c-'0')
					}
					total += k
				}
				if total != 28 {
					t.Errorf("local rows add up to %d", total)
				}
			}
			days, err := db.DropBefore(ctx, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
			if err != nil || !reflect.DeepEqual(days, []string{"2026-03-01"}) {
				t.Fatalf("drop: %v %v", days, err)
			}
			got = got[:0]
			db.Records(ctx, Query{}, func(_, _ string, r *flow.Record) error { got = append(got, *r); return nil })
			for _, r := range got {
				if r.First.Before(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("record of %s survived the drop", r.First)
				}
			}
			if len(got) == 0 {
				t.Error("the drop took the newer day too")
			}
		})
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestUpgradeV1: a database written at schema version 1 (no certificate
// columns) is read as it is, and the next export adds the columns (on a
// cluster's local and Distributed tables) and the version row; the old
// rows read back with no certificate facts, new rows with theirs.
func TestUpgradeV1(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	recs := testRecords(base, 8)
	for _, mode := range []string{"single", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			var url, cluster string
			var servers []*chserver.Server
			if mode == "single" {
				s := chserver.Start(t, 0, chserver.Options{})
				servers, url = []*chserver.Server{s}, s.URL("", "", "fleet")
			} else {
				servers = chserver.StartCluster(t, "nwh", 2, chserver.Options{})
				url, cluster = servers[0].URL("", "", "fleet")+"?cluster=nwh", "nwh"
			}
			// The version 1 tables, as version 1 made them.
			var v1 []column
			for _, c := range flowColumns {
				if c.since < schemaTLS {
					v1 = append(v1, c)
				}
			}
			saved := flowColumns
			flowColumns = v1
			for _, s := range servers {
				s.Client(ctx, "CREATE DATABASE fleet")
				for _, d := range tablesDDL("fleet", cluster, features{}, 0) {
					s.Client(ctx, d.sql)
				}
				s.Client(ctx, "INSERT INTO fleet.nwhealth_schema VALUES (1, now(), 'nwhealth schema 1')")
			}
			db1 := openTest(t, url)
			if err := db1.Insert(ctx, []Shard{{Sensor: "old", Name: "shard-old", Records: recs[:4]}}); err != nil {
				t.Fatal(err)
			}
			flowColumns = saved

			// A reader of today reads the version 1 database.
			readAll := func(db *DB) []flow.Record {
				t.Helper()
				if err := db.Check(ctx); err != nil {
					t.Fatal(err)
				}
				var got []flow.Record
				if err := db.Records(ctx, Query{}, func(_, _ string, r *flow.Record) error { got = append(got, *r); return nil }); err != nil {
					t.Fatal(err)
				}
				var paired int
				if err := db.Pairs(ctx, Query{}, func(p *Pair) error {
					for _, r := range p.Records {
						if r.TLS != (flow.TLSCert{}) && r.First.Before(base.Add(4*time.Minute)) {
							t.Errorf("old row with certificate facts: %+v", r.TLS)
						}
						paired++
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if paired != len(got) {
					t.Errorf("%d records in pairs, %d rows", paired, len(got))
				}
				return got
			}
			old := readAll(openTest(t, url))
			if len(old) != 4 {
				t.Fatalf("%d rows from the version 1 database", len(old))
			}
			for i, r := range old {
				want := recs[i]
				want.TLS = flow.TLSCert{}
				if !reflect.DeepEqual(r, want) {
					t.Errorf("old row %d:\n got %+v\nwant %+v", i, r, want)
				}
			}
			// The next export upgrades.
			db := openTest(t, url)
			if err := db.Ensure(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if err := db.Insert(ctx, []Shard{{Sensor: "new", Name: "shard-new", Records: recs[4:]}}); err != nil {
				t.Fatal(err)
			}
			for _, s := range servers {
				if v := strings.TrimSpace(s.Client(ctx, "SELECT max(version) FROM fleet.nwhealth_schema")); v != "2" {
					t.Errorf("server %d: schema version %s after the upgrade", s.Port, v)
				}
			}
			got := readAll(openTest(t, url))
			if len(got) != 8 {
				t.Fatalf("%d rows after the upgrade", len(got))
			}
			for i, r := range got {
				want := recs[i]
				if i < 4 {
					want.TLS = flow.TLSCert{}
				}
				if !reflect.DeepEqual(r, want) {
					t.Errorf("row %d:\n got %+v\nwant %+v", i, r, want)
				}
			}
			if got[4].TLS == (flow.TLSCert{}) {
				t.Error("no certificate facts in the new rows")
			}
		})
	}
}

// TestInsertBlocks: an insert larger than one block arrives whole.
func TestInsertBlocks(t *testing.T) {
	ctx := context.Background()
	s := chserver.Start(t, 0, chserver.Options{})
	db := openTest(t, s.URL("", "", "blocks"))
	if err := db.Ensure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	one := testRecords(base, 3)
	n := 2*blockRows + 17
	recs := make([]flow.Record, n)
	var sum uint64
	for i := range recs {
		recs[i] = one[i%3]
		recs[i].First = base.Add(time.Duration(i) * time.Millisecond)
		recs[i].Last = recs[i].First.Add(3 * time.Minute)
		recs[i].OrigBytes = uint64(i)
		sum += uint64(i)
	}
	if err := db.Insert(ctx, []Shard{{Sensor: "a", Name: "big", Records: recs[:n/2]}, {Sensor: "b", Name: "big", Records: recs[n/2:]}}); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(s.Client(ctx, "SELECT count(), sum(orig_ip_bytes), uniqExact(orig_ip_bytes) FROM blocks.flows FORMAT TSV"))
	if want := []string{fmt.Sprint(n), fmt.Sprint(sum), fmt.Sprint(n)}; !reflect.DeepEqual(got, want) {
		t.Errorf("server has %v, want %v", got, want)
	}
	k := 0
	if err := db.Records(ctx, Query{Sensors: []string{"b"}}, func(sensor, _ string, r *flow.Record) error {
		if sensor != "b" || !reflect.DeepEqual(*r, recs[n/2+k]) {
			t.Fatalf("record %d of b: %+v\nwant %+v", k, r, recs[n/2+k])
		}
		k++
		return nil
	}); err != nil || k != n-n/2 {
		t.Fatalf("%d records of b back, %v", k, err)
	}
}

// TestAggregates: the pushed-down aggregations equal the same grouping
// done here over the rows Records reads back.
func TestAggregates(t *testing.T) {
	ctx := context.Background()
	s := chserver.Start(t, 0, chserver.Options{})
	db := openTest(t, s.URL("", "", "agg"))
	if err := db.Ensure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)
	recs := testRecords(base, 300)
	names := []string{"n1.example", "1.2.3.4", "::1", "n2.example", "n3.example"}
	proxies := []string{"x.example:443", "[2001:db8::7]:8443", "no-port", "y.example:0", "y.example:99999", "y.example:3128"}
	for i := range recs {
		recs[i].RespPkts = uint64(i % 4) // some failed
		if i%7 == 0 {
			recs[i].Name, recs[i].NameSource = names[i%5], flow.NameSource(i%4)
		}
		if i%11 == 0 {
			recs[i].ProxyDest = proxies[i%6]
			recs[i].Resp = netip.AddrFrom4([4]byte{10, 9, 0, byte(i % 2)})
		}
	}
	if err := db.Insert(ctx, []Shard{{Sensor: "a", Name: "one", Records: recs[:150]}, {Sensor: "b", Name: "two", Records: recs[150:]}}); err != nil {
		t.Fatal(err)
	}
	// The expected pairs, from the rows in store order: every record but
	// its answers, and per channel the name the model would end with on
	// the record that gives it.
	type ckey struct {
		src, dst netip.Addr
		port     uint16
		proto    uint8
		proxy    string
	}
	want := map[[2]netip.Addr][]flow.Record{}
	winner := map[ckey][2]int{} // index in want[pair], name source
	dns := map[netip.Addr]string{}
	nameAddr := map[string]netip.Addr{}
	db.Records(ctx, Query{}, func(_, _ string, r *flow.Record) error {
		pk := [2]netip.Addr{r.Orig, r.Resp}
		k := ckey{r.Orig, r.Resp, r.RespPort, r.Proto, r.ProxyDest}
		if r.Proto == 1 || r.Proto == 58 {
			k.port = 0
		}
		c := *r
		c.Answers, c.Name, c.NameSource = nil, "", 0
		c.OrigPort, c.VLAN, c.OrigBytes, c.RespBytes, c.Partial, c.HTTPTarget = 0, 0, 0, 0, false, ""
		if c.Bursts.N < 2 {
			c.Bursts = flow.Bursts{N: c.Bursts.N}
		}
		want[pk] = append(want[pk], c)
		if _, err := netip.ParseAddr(r.Name); r.Name != "" && err != nil {
			if w, ok := winner[k]; !ok || int(r.NameSource) >= w[1] {
				if ok {
					want[pk][w[0]].Name, want[pk][w[0]].NameSource = "", 0
				}
				winner[k] = [2]int{len(want[pk]) - 1, int(r.NameSource)}
				want[pk][len(want[pk])-1].Name, want[pk][len(want[pk])-1].NameSource = r.Name, r.NameSource
			}
		}
		if r.Name != "" && len(r.Answers) > 0 {
			for _, a := range r.Answers {
				dns[a] = r.Name
			}
			nameAddr[r.Name] = r.Answers[0]
		}
		return nil
	})
	got := 0
	var last [2]netip.Addr
	err := db.Pairs(ctx, Query{}, func(p *Pair) error {
		got++
		pk := [2]netip.Addr{p.Src, p.Dst}
		if pk[0].Compare(last[0]) < 0 {
			t.Errorf("pair %v after %v", pk, last)
		}
		last = pk
		if !reflect.DeepEqual(p.Records, want[pk]) {
			t.Fatalf("pair %v:\n got %+v\nwant %+v", pk, p.Records, want[pk])
		}
		return nil
	})
	if err != nil || got != len(want) {
		t.Fatalf("%d pairs, want %d (%v)", got, len(want), err)
	}
	gotDNS := map[netip.Addr]string{}
	db.DNSAnswers(ctx, Query{}, func(a DNSAnswer) { gotDNS[a.Addr] = a.Name })
	if !reflect.DeepEqual(gotDNS, dns) {
		t.Errorf("DNS answers %v, want %v", gotDNS, dns)
	}
	gotNames := map[string]netip.Addr{}
	db.NameAddrs(ctx, Query{}, func(a NameAddr) { gotNames[a.Name] = a.Addr })
	if !reflect.DeepEqual(gotNames, nameAddr) {
		t.Errorf("DNS names %v, want %v", gotNames, nameAddr)
	}
}

// TestNewestBounded: a shard stamped years ahead is not the newest that
// retention counts back from (it would make every other day too old).
func TestNewestBounded(t *testing.T) {
	ctx := context.Background()
	s := chserver.Start(t, 0, chserver.Options{})
	db := openTest(t, s.URL("", "", "fleet"))
	if err := db.Ensure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	march := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	err := db.Insert(ctx, []Shard{
		{Sensor: "s1", Name: "march", Records: testRecords(march, 3)},
		{Sensor: "s1", Name: "future", Records: testRecords(future, 3)},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	got, err := db.Newest(ctx, now)
	want := testRecords(march, 3)[2].Last.Truncate(time.Microsecond)
	if err != nil || !got.Equal(want) {
		t.Errorf("newest %v, %v; want %v (the shard of 2099 left out)", got, err, want)
	}
	if got, err := db.Newest(ctx, future.Add(time.Hour)); err != nil || got.Year() != 2099 {
		t.Errorf("newest before a later bound: %v, %v", got, err)
	}
	if got, err := db.Newest(ctx, march.Add(-time.Hour)); err != nil || !got.IsZero() {
		t.Errorf("newest before every shard: %v, %v; want zero", got, err)
	}
}
