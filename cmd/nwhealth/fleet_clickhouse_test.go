package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/chserver"
	"github.com/nwhealth/nwhealth/internal/demogen"
	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// fleetStore builds a store from the built-in sample network, cut into
// many small shards (so an export has many to do), and returns it.
func fleetStore(t testing.TB, start time.Time, dur time.Duration, seed uint64, shardSize int64) string {
	t.Helper()
	return fleetStoreShapes(t, start, dur, seed, shardSize, demogen.Shapes{})
}

// fleetStoreShapes is fleetStore with more command-and-control shapes.
func fleetStoreShapes(t testing.TB, start time.Time, dur time.Duration, seed uint64, shardSize int64, shapes demogen.Shapes) string {
	t.Helper()
	var pcap bytes.Buffer
	if _, err := demogen.Generate(&pcap, demogen.Config{Seed: seed, Start: start, Duration: dur, Workstations: 12, Shapes: shapes}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewWriter(store.WriterOptions{ID: "imp", ShardSize: shardSize, NewFlows: pipeline.NewFlowTable})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapio.NewReader(&pcap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(w, "demo", r, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// storeTotals are the store's flow count and byte sums as flows --format
// jsonl prints them: what the database must count after an export.
type flowTotals struct {
	Flows            int
	OrigIP, RespData uint64
}

// A flag among dirs is passed with its value (--sensor NAME, --cache DIR).
func storeTotals(t *testing.T, dirs ...string) flowTotals {
	t.Helper()
	args := []string{"flows", "--format", "jsonl"}
	for i := 0; i < len(dirs); i++ {
		if strings.HasPrefix(dirs[i], "-") && i+1 < len(dirs) {
			args = append(args, dirs[i], dirs[i+1])
			i++
			continue
		}
		args = append(args, "--store", dirs[i])
	}
	code, out, errOut := nwh(t, nil, args...)
	if code != 0 {
		t.Fatalf("flows: exit %d: %s", code, errOut)
	}
	var tot flowTotals
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var l jsonl.Flow
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		tot.Flows++
		tot.OrigIP += l.OrigBytes
		tot.RespData += l.RespData
	}
	if tot.Flows == 0 {
		t.Fatal("store has no flows")
	}
	return tot
}

// dbTotals asks the server itself, through clickhouse-client, what the
// database counts (the exactly-once filter of docs/format/clickhouse.md).
func dbTotals(t *testing.T, s *chserver.Server, db string, local bool) flowTotals {
	t.Helper()
	shards := db + ".flow_shards"
	if local {
		shards += "_local"
	}
	q := fmt.Sprintf("SELECT count(), sum(orig_ip_bytes), sum(resp_bytes) FROM %s.flows WHERE (sensor, shard, batch) IN "+
		"(SELECT sensor, shard, min(batch) FROM %s GROUP BY sensor, shard) FORMAT TSV", db, shards)
	f := strings.Fields(s.Client(context.Background(), q))
	if len(f) != 3 {
		t.Fatalf("clickhouse-client: %q", f)
	}
	n, _ := strconv.Atoi(f[0])
	a, _ := strconv.ParseUint(f[1], 10, 64)
	b, _ := strconv.ParseUint(f[2], 10, 64)
	return flowTotals{n, a, b}
}

func TestExportClickHouse(t *testing.T) {
	dir := fleetStore(t, time.Date(2026, 3, 2, 23, 30, 0, 0, time.UTC), time.Hour, 3, 512<<10) // crosses midnight
	want := storeTotals(t, dir)
	for _, mode := range []string{"single", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			var s *chserver.Server
			url := ""
			if mode == "single" {
				s = chserver.Start(t, 0, chserver.Options{})
				url = s.URL("", "", "fleet")
			} else {
				ss := chserver.StartCluster(t, "nwh", 2, chserver.Options{})
				s, url = ss[1], ss[1].URL("", "", "fleet")+"?cluster=nwh"
			}
			code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", "edge-1")
			if code != 0 {
				t.Fatalf("export: exit %d\n%s", code, errOut)
			}
			if !strings.Contains(errOut, "0 already there") {
				t.Errorf("first export: %s", errOut)
			}
			if got := dbTotals(t, s, "fleet", mode == "cluster"); got != want {
				t.Errorf("database counts %+v, store %+v", got, want)
			}
			// Again: nothing new.
			code, _, errOut = nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", "edge-1")
			if code != 0 || !strings.Contains(errOut, ": 0 shards (0 flow records) exported") {
				t.Errorf("second export: exit %d: %s", code, errOut)
			}
			if got := dbTotals(t, s, "fleet", mode == "cluster"); got != want {
				t.Errorf("after a second export the database counts %+v, store %+v", got, want)
			}
			// Retention: the first day goes, the second stays.
			code, _, errOut = nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", "edge-1", "--max-age", "10m")
			if code != 0 || !strings.Contains(errOut, "dropped 1 days (2026-03-02") {
				t.Errorf("retention: exit %d: %s", code, errOut)
			}
			left := strings.TrimSpace(s.Client(context.Background(), "SELECT min(day) FROM fleet.flows"))
			if left != "2026-03-03" {
				t.Errorf("after retention the oldest day is %s", left)
			}
		})
	}
}

// TestExportFaults: a server stopped mid-export, a wrong password, a
// read-only user, a schema from a newer nwhealth, TLS.
func TestExportFaults(t *testing.T) {
	dir := fleetStore(t, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), time.Hour, 4, 128<<10)
	want := storeTotals(t, dir)
	const secret = "s3cr3t-Pa55"
	s := chserver.Start(t, 0, chserver.Options{TLS: true, Users: []chserver.User{
		{Name: "sensor", Password: secret}, {Name: "analyst", Password: secret, Readonly: true}}})
	ctx := context.Background()

	t.Run("wrong password", func(t *testing.T) {
		for _, env := range []bool{false, true} {
			url := s.URL("sensor", "wrong-"+secret, "fleet")
			if env {
				url = s.URL("sensor", "", "fleet")
				t.Setenv("CLICKHOUSE_PASSWORD", "wrong-"+secret)
			}
			code, out, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url)
			if code != 1 || strings.Contains(out+errOut, secret) || !strings.Contains(errOut, "password") {
				t.Errorf("env %v: exit %d, want 1 without the password:\n%s%s", env, code, out, errOut)
			}
		}
	})
	t.Run("read-only user", func(t *testing.T) {
		code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", s.URL("analyst", secret, "fleet"))
		if code != 1 || strings.Contains(errOut, secret) || !strings.Contains(errOut, "readonly") {
			t.Errorf("exit %d, want 1 and the server's refusal:\n%s", code, errOut)
		}
	})
	t.Run("tls", func(t *testing.T) {
		url := fmt.Sprintf("clickhouse://sensor@127.0.0.1:%d/tlsdb?secure=true", s.TLSPort)
		t.Setenv("CLICKHOUSE_PASSWORD", secret)
		code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url)
		if code != 1 || !strings.Contains(errOut, "certificate") {
			t.Errorf("without --ca: exit %d, want 1 for an unknown CA:\n%s", code, errOut)
		}
		code, _, errOut = nwh(t, nil, "flows", "--store", dir, "--export", url, "--ca", s.CA())
		if code != 0 {
			t.Fatalf("with --ca: exit %d\n%s", code, errOut)
		}
		if got := dbTotals(t, s, "tlsdb", false); got != want {
			t.Errorf("database counts %+v, store %+v", got, want)
		}
	})
	t.Run("newer schema", func(t *testing.T) {
		url := s.URL("sensor", secret, "newer")
		if code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url); code != 0 {
			t.Fatalf("export: exit %d\n%s", code, errOut)
		}
		s.Client(ctx, "INSERT INTO newer.nwhealth_schema VALUES (3, now(), 'nwhealth schema 3')")
		code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url)
		if code != 1 || !strings.Contains(errOut, "schema version 3 was written by a newer nwhealth") {
			t.Errorf("exit %d, want 1 and a refusal:\n%s", code, errOut)
		}
	})
	t.Run("server stopped mid-export", func(t *testing.T) {
		url := s.URL("sensor", secret, "killed")
		// One shard per INSERT, in a child process, so the server can be
		// stopped between two inserts.
		cmd := exec.Command(os.Args[0], "flows", "--store", dir, "--export", url, "--batch-rows", "1")
		cmd.Env = append(os.Environ(), "NWHEALTH_TEST_MAIN=1")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			out, err := exec.Command("clickhouse-client", "--port", strconv.Itoa(s.Port), "--user", "sensor", "--password", secret,
				"--query", "SELECT count() FROM killed.flow_shards").Output()
			if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n >= 3 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.Kill()
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if code != 1 || strings.Contains(errOut.String(), secret) {
			t.Errorf("export with the server gone: %v, exit %d (want 1):\n%s", err, code, errOut.String())
		}
		s.Restart()
		partial := dbTotals(t, s, "killed", false)
		if partial.Flows >= want.Flows {
			t.Fatalf("the server was stopped after the export finished (%d of %d flows): no fault tested", partial.Flows, want.Flows)
		}
		c, _, e := nwh(t, nil, "flows", "--store", dir, "--export", url)
		if c != 0 || strings.Contains(e, " 0 already there") {
			t.Fatalf("re-run: exit %d\n%s", c, e)
		}
		if got := dbTotals(t, s, "killed", false); got != want {
			t.Errorf("after the re-run the database counts %+v, store %+v", got, want)
		}
	})
}

// TestExportServerFull: a server whose disk fills up mid-export refuses
// the insert; the export says so (exit 1) and counts nothing half.
func TestExportServerFull(t *testing.T) {
	testenv.Root(t)
	chserver.Binary(t)
	dir := fleetStore(t, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), 2*time.Hour, 5, 1<<20)
	data := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", data).CombinedOutput(); err != nil {
		testenv.Missing(t, "mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", data).Run() })
	s := chserver.Start(t, 0, chserver.Options{DataDir: data})
	url := s.URL("", "", "fleet")
	// The schema first, then fill the disk to within a few blocks.
	if code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--from", "2030-01-01"); code != 0 {
		t.Fatalf("schema: exit %d\n%s", code, errOut)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(data, &fs); err != nil {
		t.Fatal(err)
	}
	fill := int64(fs.Bavail)*fs.Bsize - 96<<10
	if err := os.WriteFile(filepath.Join(data, "filler"), make([]byte, fill), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--batch-rows", "2000")
	if code != 1 || !strings.Contains(errOut, "space") {
		t.Fatalf("export onto a full disk: exit %d, want 1 and the server's reason:\n%s", code, errOut)
	}
	got := dbTotals(t, s, "fleet", false)
	want := storeTotals(t, dir)
	if got.Flows >= want.Flows {
		t.Fatalf("everything fit (%d flows): no fault tested", got.Flows)
	}
	// What is counted is whole shards: the flow_shards rows' record counts
	// add up to the rows counted.
	sum := strings.TrimSpace(s.Client(context.Background(), "SELECT sum(records) FROM fleet.flow_shards"))
	if sum != strconv.Itoa(got.Flows) && !(sum == "0" && got.Flows == 0) {
		t.Errorf("flow_shards says %s records, the filter counts %d", sum, got.Flows)
	}
}

// TestCaptureFlowsTo: a capture ships its sealed shards' flows as they
// seal; with the server down it keeps capturing, and the next capture
// catches up from the store.
func TestCaptureFlowsTo(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	chserver.Binary(t)
	p := netns.NewPair(t)
	s := chserver.Start(t, 0, chserver.Options{})
	dir := filepath.Join(t.TempDir(), "store")
	opts := captureOptions{iface: p.DevB, stores: []string{dir}, snaplen: 262144, workers: 1, ringSize: "32MiB",
		shardSize: "1M", flush: 100 * time.Millisecond, statsEvery: time.Second, format: "table",
		flowsTo: s.URL("", "", "cap"), upload: uploadFlags{sensor: "cap-1"}}
	_, stderr, _ := captureRun(t, p, opts, 100_000)
	if !strings.Contains(stderr, "flows shipped: ") || strings.Contains(stderr, "not shipped") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if got, want := dbTotals(t, s, "cap", false), storeTotals(t, dir); got != want {
		t.Errorf("database counts %+v, store %+v", got, want)
	}

	s.Kill()
	_, stderr, _ = captureRun(t, p, opts, 100_000)
	if !strings.Contains(stderr, "flow export failed") || !strings.Contains(stderr, "not shipped") {
		t.Errorf("capture during the outage, stderr:\n%s", stderr)
	}
	s.Restart()
	before := dbTotals(t, s, "cap", false)
	_, stderr, _ = captureRun(t, p, opts, 1000)
	got, want := dbTotals(t, s, "cap", false), storeTotals(t, dir)
	if got != want || before.Flows >= got.Flows {
		t.Errorf("after catching up the database counts %+v (before %+v), store %+v\n%s", got, before, want, stderr)
	}
}

// TestHuntClickHouseEqualsStore: hunt over the flow database gives the
// findings hunt --store gives over the same flows, field by field, on one
// server and on a cluster, and the report joins it with replay. The
// network has a DNS beacon (a stub resolver's query a minute, each a
// fresh name): its DNS finding needs every question of the host's one
// channel to the resolver, where the channels keep one name.
func TestHuntClickHouseEqualsStore(t *testing.T) {
	dir := fleetStoreShapes(t, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), 4*time.Hour, 7, 1<<20, demogen.Shapes{DNSBeacon: true})
	code, want, errOut := nwh(t, nil, "hunt", "--store", dir, "--format", "jsonl", "--min-severity", "info")
	if code != 0 {
		t.Fatalf("hunt --store: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(want, `"kind":"dns"`) || !strings.Contains(want, `"dst_name":"example.com"`) {
		t.Fatalf("hunt --store found no DNS beacon to compare:\n%s", want)
	}
	t.Logf("hunt --store: %d lines", strings.Count(want, "\n"))
	if strings.Count(want, "\n") < 3 {
		t.Fatalf("hunt --store found too little to compare:\n%s", want)
	}
	const secret = "an4lyst"
	for _, mode := range []string{"single", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			var s *chserver.Server
			var url, reader string
			users := []chserver.User{{Name: "analyst", Password: secret, Readonly: true}}
			if mode == "single" {
				s = chserver.Start(t, 0, chserver.Options{Users: users})
				url, reader = s.URL("", "", "fleet"), s.URL("analyst", secret, "fleet")
			} else {
				ss := chserver.StartCluster(t, "nwh", 2, chserver.Options{Users: users})
				s = ss[0]
				url, reader = s.URL("", "", "fleet")+"?cluster=nwh", s.URL("analyst", secret, "fleet")+"?cluster=nwh"
			}
			for _, sensor := range []string{"edge-1", "other"} {
				if code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", sensor); code != 0 {
					t.Fatalf("export: exit %d\n%s", code, errOut)
				}
			}
			code, got, errOut := nwh(t, nil, "hunt", "--clickhouse", reader, "--sensor", "edge-*", "--format", "jsonl", "--min-severity", "info")
			if code != 0 {
				t.Fatalf("hunt --clickhouse: exit %d\n%s", code, errOut)
			}
			if strings.Contains(errOut, secret) {
				t.Errorf("stderr shows the password: %s", errOut)
			}
			compareLines(t, got, want)
			// A time range: the same range from the store.
			args := []string{"--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T11:00:00Z", "--format", "jsonl", "--min-severity", "info"}
			_, wantR, _ := nwh(t, nil, append([]string{"hunt", "--store", dir}, args...)...)
			_, gotR, _ := nwh(t, nil, append([]string{"hunt", "--clickhouse", reader, "--sensor", "edge-1"}, args...)...)
			compareLines(t, gotR, wantR)
			// Shared indicators (an address, a network, a name): the same
			// matches from the database as from the store.
			ind := filepath.Join(t.TempDir(), "indicators.txt")
			if err := os.WriteFile(ind, []byte("# partner list\n203.0.113.77\n198.18.0.0/16\ncdn-sync.example.net\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args = []string{"--indicators", ind, "--format", "jsonl", "--min-severity", "info"}
			_, wantI, _ := nwh(t, nil, append([]string{"hunt", "--store", dir}, args...)...)
			if n := strings.Count(wantI, `"type":"indicator-match"`); n != 3 {
				t.Fatalf("hunt --store --indicators: %d indicator matches, want 3:\n%s", n, wantI)
			}
			code, gotI, errOut := nwh(t, nil, append([]string{"hunt", "--clickhouse", reader, "--sensor", "edge-1"}, args...)...)
			if code != 0 {
				t.Fatalf("hunt --clickhouse --indicators: exit %d\n%s", code, errOut)
			}
			compareLines(t, gotI, wantI)
			// Report: hunt from the database, replay from the store's packets.
			_, wantRep, errOut := nwh(t, nil, "report", "--store", dir, "--format", "jsonl", "--min-severity", "info")
			code, gotRep, errOut2 := nwh(t, nil, "report", "--store", dir, "--clickhouse", reader, "--sensor", "edge-1", "--format", "jsonl", "--min-severity", "info")
			if code != 0 {
				t.Fatalf("report --clickhouse: exit %d\n%s", code, errOut2)
			}
			compareLines(t, gotRep, wantRep)
			_ = errOut
		})
	}
}

// compareLines compares JSON Lines output line by line.
func compareLines(t *testing.T, got, want string) {
	t.Helper()
	g, w := strings.Split(strings.TrimSpace(got), "\n"), strings.Split(strings.TrimSpace(want), "\n")
	if len(g) != len(w) {
		t.Errorf("%d lines, want %d", len(g), len(w))
	}
	for i := 0; i < min(len(g), len(w)); i++ {
		if g[i] != w[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, g[i], w[i])
			return
		}
	}
}

// TestFleetS3ToClickHouse: flows --export from an s3:// store puts each
// shard under the sensor that wrote it; --sensor GLOB picks the same
// sensors from the database as from the bucket (hunt gives the same
// findings either way); a local store exported as one of those sensors
// adds nothing twice.
func TestFleetS3ToClickHouse(t *testing.T) {
	_, url, storeA, storeB, cache := fleetSetup(t)
	s := chserver.Start(t, 0, chserver.Options{})
	db := s.URL("", "", "fleet")
	_, errOut := mustRun(t, 0, "flows", "--store", url, "--cache", cache, "--export", db)
	if !strings.Contains(errOut, "0 already there") || strings.Contains(errOut, "local stores as sensor") {
		t.Errorf("export: %s", errOut)
	}
	if got, want := dbTotals(t, s, "fleet", false), storeTotals(t, storeA, storeB); got != want {
		t.Errorf("database counts %+v, local stores %+v", got, want)
	}
	sensors := strings.Fields(s.Client(context.Background(), "SELECT DISTINCT sensor FROM fleet.flow_shards ORDER BY sensor FORMAT TSV"))
	if strings.Join(sensors, " ") != "a b" {
		t.Errorf("sensors in the database: %q, want a b", sensors)
	}
	// Store A is sensor a's shards: exported as "a", it is all there.
	_, errOut = mustRun(t, 0, "flows", "--store", storeA, "--export", db, "--sensor", "a")
	if !strings.Contains(errOut, `as sensor "a"`) || !strings.Contains(errOut, ": 0 shards (0 flow records) exported") {
		t.Errorf("local store A as sensor a: %s", errOut)
	}
	_, errOut = mustRun(t, 2, "flows", "--store", storeA, "--export", db, "--sensor", "a*")
	if !strings.Contains(errOut, "one sensor name") {
		t.Errorf("a glob for a local store: %s", errOut)
	}
	for _, glob := range []string{"[ab]", "a", "[b]", "?"} {
		fromBucket, _ := mustRun(t, 0, "hunt", "--store", url, "--cache", cache, "--sensor", glob, "--format", "jsonl", "--min-severity", "info")
		fromDB, _ := mustRun(t, 0, "hunt", "--clickhouse", db, "--sensor", glob, "--format", "jsonl", "--min-severity", "info")
		if glob == "[ab]" && strings.Count(fromBucket, "\n") == 0 {
			t.Fatalf("--sensor %s: hunt found nothing to compare", glob)
		}
		compareLines(t, fromDB, fromBucket)
	}
	mustRun(t, 2, "hunt", "--clickhouse", db, "--sensor", "[")
}

// TestCaptureS3FlowsTo: a capture into an s3:// store (and a local one)
// with the flow database down uploads its shards, which leave the spool;
// the next capture ships every shard's flows all the same, the uploaded
// ones read back from the bucket, under --sensor's name.
func TestCaptureS3FlowsTo(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	chserver.Binary(t)
	srv := s3test.Start(t)
	srv.Env(t)
	p := netns.NewPair(t)
	s := chserver.Start(t, 0, chserver.Options{})
	dir := t.TempDir()
	url, local, cache := "s3://nwh/capture", filepath.Join(dir, "local"), filepath.Join(dir, "cache")
	opts := captureOptions{iface: p.DevB, stores: []string{url, local}, snaplen: 262144, workers: 2, ringSize: "64MiB",
		shardSize: "1M", flush: 100 * time.Millisecond, statsEvery: 0, format: "table", flowsTo: s.URL("", "", "cap")}
	opts.upload.sensor, opts.upload.spool, opts.upload.uploadWait = "cap3", filepath.Join(dir, "spool"), time.Minute
	opts.upload.cache = filepath.Join(dir, "shipcache") // where the shipper caches the bucket's objects
	s.Kill()
	_, stderr, _ := captureRun(t, p, opts, 100_000)
	if !strings.Contains(stderr, "uploaded") || !strings.Contains(stderr, "not shipped") {
		t.Errorf("capture with the database down said:\n%s", stderr)
	}
	if l, _ := filepath.Glob(filepath.Join(dir, "spool", "shards", "*.flows")); len(l) != 0 {
		t.Fatalf("spool left with %v", l)
	}
	s.Restart()
	_, stderr, _ = captureRun(t, p, opts, 1000)
	if strings.Contains(stderr, "not shipped") {
		t.Errorf("capture with the database back said:\n%s", stderr)
	}
	want := storeTotals(t, url, "--sensor", "cap3", "--cache", cache, local)
	if got := dbTotals(t, s, "cap", false); got != want {
		t.Errorf("database counts %+v, stores %+v\n%s", got, want, stderr)
	}
	if sensors := strings.TrimSpace(s.Client(context.Background(), "SELECT DISTINCT sensor FROM cap.flow_shards FORMAT TSV")); sensors != "cap3" {
		t.Errorf("sensors in the database: %q", sensors)
	}
}

// TestHuntClickHouseBadRow: a row that is no valid flow record (written by
// something else, or damaged) is skipped and named, every other row used,
// exit 3; the indicators' pass over the same rows counts it once.
func TestHuntClickHouseBadRow(t *testing.T) {
	dir := fleetStore(t, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), 2*time.Hour, 9, 1<<20)
	s := chserver.Start(t, 0, chserver.Options{})
	url := s.URL("", "", "fleet")
	if code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", "edge-1"); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	code, want, errOut := nwh(t, nil, "hunt", "--clickhouse", url, "--format", "jsonl", "--min-severity", "info")
	if code != 0 {
		t.Fatalf("hunt: exit %d\n%s", code, errOut)
	}
	// A copy of one row that ends before it begins.
	ctx := context.Background()
	var cols []string
	for _, l := range strings.Split(strings.TrimSpace(s.Client(ctx, "DESCRIBE TABLE fleet.flows")), "\n") {
		cols = append(cols, strings.Fields(l)[0])
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = c
		if c == "last_us" {
			sel[i] = "first_us - 1000000"
		}
	}
	s.Client(ctx, fmt.Sprintf("INSERT INTO fleet.flows (%s) SELECT %s FROM fleet.flows WHERE proto = 6 LIMIT 1",
		strings.Join(cols, ", "), strings.Join(sel, ", ")))

	ind := filepath.Join(t.TempDir(), "indicators.txt")
	if err := os.WriteFile(ind, []byte("203.0.113.77\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--indicators", ind}} {
		args := append([]string{"hunt", "--clickhouse", url, "--format", "jsonl", "--min-severity", "info"}, extra...)
		code, got, errOut := nwh(t, nil, args...)
		if code != 3 {
			t.Fatalf("%v: exit %d (want 3)\n%s", extra, code, errOut)
		}
		if !strings.Contains(errOut, "flow database: pair ") || !strings.Contains(errOut, "before first_us") || !strings.Contains(errOut, "1 damaged") {
			t.Errorf("%v: stderr does not name the bad row once:\n%s", extra, errOut)
		}
		if extra == nil {
			compareLines(t, got, want) // the copy was skipped; everything else used
		}
	}
}

// TestHuntClickHouseCertificates: real RAT captures whose channels are
// identified by their servers' certificates give the same findings from
// the flow database as from the store (and from the packets), the
// certificate reason included.
func TestHuntClickHouseCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	var pcaps []string
	for _, f := range []string{"Traces__30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap", "Traces__9596cf60-0da6-47a7-a375-1f25ae32d843.pcap"} {
		pcaps = append(pcaps, testenv.SharedFile(t, "pcaps", "real-lab", "corelight-c2", "zeek-asyncrat-detector", f))
	}
	if code, _, errOut := nwh(t, nil, append([]string{"import", "--store", dir}, pcaps...)...); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	args := []string{"--format", "jsonl", "--min-severity", "info"}
	code, want, errOut := nwh(t, nil, append([]string{"hunt", "--store", dir}, args...)...)
	if code != 0 {
		t.Fatalf("hunt --store: exit %d\n%s", code, errOut)
	}
	for _, cn := range []string{"CN=DcRat issued by CN=DcRat Server", "self-signed certificate CN=SXN Server CA"} {
		if !strings.Contains(want, cn) {
			t.Errorf("hunt --store lacks %q:\n%s", cn, want)
		}
	}
	_, fromPcap, _ := nwh(t, nil, append([]string{"hunt", "--pcap", pcaps[0], "--pcap", pcaps[1]}, args...)...)
	if strings.Count(fromPcap, "certificate CN=") != strings.Count(want, "certificate CN=") {
		t.Errorf("hunt --pcap and --store disagree on certificates:\n%s\n%s", fromPcap, want)
	}
	s := chserver.Start(t, 0, chserver.Options{})
	url := s.URL("", "", "fleet")
	if code, _, errOut := nwh(t, nil, "flows", "--store", dir, "--export", url, "--sensor", "lab"); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	code, got, errOut := nwh(t, nil, append([]string{"hunt", "--clickhouse", url}, args...)...)
	if code != 0 {
		t.Fatalf("hunt --clickhouse: exit %d\n%s", code, errOut)
	}
	compareLines(t, got, want)
}

// TestClickHousePasswordSources: a password in the URL works and is
// warned about (every local user sees a command line), never printed;
// CLICKHOUSE_PASSWORD_FILE names a file holding it (warned about when
// others may read it); a missing, empty or many-line file, or both
// variables set, is refused before anything connects.
func TestClickHousePasswordSources(t *testing.T) {
	dir := fleetStore(t, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), time.Hour, 5, 1<<20)
	const secret = "f1le-Pa55-w0rd"
	s := chserver.Start(t, 0, chserver.Options{Users: []chserver.User{{Name: "sensor", Password: secret}}})
	files := t.TempDir()
	file := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good", secret+"\n", 0o600)
	loose := file("loose", secret+"\r\n", 0o644)
	wrong := file("wrong", "wrong-"+secret+"\n", 0o600)
	for _, c := range []struct {
		name     string
		url      string
		env      map[string]string
		code     int
		warn     string // on stderr, "" for no warning
		notWarn  bool
		contains string
	}{
		{"in the URL", s.URL("sensor", secret, "pw1"), nil, 0, "seen by every local user", false, ""},
		{"environment", s.URL("sensor", "", "pw2"), map[string]string{"CLICKHOUSE_PASSWORD": secret}, 0, "", true, ""},
		{"file", s.URL("sensor", "", "pw3"), map[string]string{"CLICKHOUSE_PASSWORD_FILE": good}, 0, "", true, ""},
		{"file others read", s.URL("sensor", "", "pw4"), map[string]string{"CLICKHOUSE_PASSWORD_FILE": loose}, 0, "readable by group or others", false, ""},
		{"wrong in a file", s.URL("sensor", "", "pw5"), map[string]string{"CLICKHOUSE_PASSWORD_FILE": wrong}, 1, "", true, "password"},
		{"missing file", s.URL("sensor", "", "pw6"), map[string]string{"CLICKHOUSE_PASSWORD_FILE": filepath.Join(files, "absent")}, 1, "", true, "CLICKHOUSE_PASSWORD_FILE"},
		{"empty file", s.URL("sensor", "", "pw7"), map[string]string{"CLICKHOUSE_PASSWORD_FILE": file("empty", "\n", 0o600)}, 2, "", true, "not a password file"},
		{"two lines", s.URL("sensor", "", "pw8"), map[string]string{"CLICKHOUSE_PASSWORD_FILE": file("two", secret+"\nmore\n", 0o600)}, 2, "", true, "not a password file"},
		{"both set", s.URL("sensor", "", "pw9"), map[string]string{"CLICKHOUSE_PASSWORD": secret, "CLICKHOUSE_PASSWORD_FILE": good}, 2, "", true, "both set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CLICKHOUSE_PASSWORD", "")
			t.Setenv("CLICKHOUSE_PASSWORD_FILE", "")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, out, errOut := nwh(t, nil, "flows", "--store", dir, "--export", c.url, "--sensor", "pw")
			if code != c.code {
				t.Fatalf("exit %d, want %d:\n%s", code, c.code, errOut)
			}
			if strings.Contains(out+errOut, secret) {
				t.Errorf("the password was printed:\n%s%s", out, errOut)
			}
			if c.warn != "" && !strings.Contains(errOut, c.warn) {
				t.Errorf("no warning %q:\n%s", c.warn, errOut)
			}
			if c.notWarn && strings.Contains(errOut, "warning") {
				t.Errorf("a warning:\n%s", errOut)
			}
			if !strings.Contains(errOut, c.contains) {
				t.Errorf("stderr lacks %q:\n%s", c.contains, errOut)
			}
		})
	}
}
