package pipeline

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// memSink keeps exported shards in memory and fails on demand.
type memSink struct {
	mu      sync.Mutex
	shards  map[string]flowdb.Shard
	inserts int
	failAt  int // the insert (1-based) that fails; 0 never
	down    bool
}

var errDown = errors.New("server gone")

func (m *memSink) Exported(_ context.Context, sensor string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	out := map[string]bool{}
	for _, s := range m.shards {
		if s.Sensor == sensor {
			out[s.Name] = true
		}
	}
	return out, nil
}

func (m *memSink) Insert(_ context.Context, shards []flowdb.Shard) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inserts++
	if m.down || m.inserts == m.failAt {
		return errDown
	}
	if m.shards == nil {
		m.shards = map[string]flowdb.Shard{}
	}
	for _, s := range shards {
		key := s.Sensor + "/" + s.Name
		if _, dup := m.shards[key]; dup {
			panic("shard exported twice: " + key)
		}
		m.shards[key] = s
	}
	return nil
}

func (m *memSink) records() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, s := range m.shards {
		n += len(s.Records)
	}
	return n
}

// shardedStore writes the sample hour into many small shards.
func shardedStore(t *testing.T, dir string, pkts []pcapio.Packet) *store.Store {
	t.Helper()
	st, err := store.Create(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewWriter(store.WriterOptions{ID: "t", ShardSize: 256 << 10, NewFlows: NewFlowTable})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

func storeFlowCount(t *testing.T, st *store.Store) int {
	n := 0
	if _, err := Flows(context.Background(), Input{Stores: []store.Reader{st}}, func(*flow.Record) { n++ }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExportResumes: an insert fails half way; the next run exports
// exactly the shards that are missing, and every record once.
func TestExportResumes(t *testing.T) {
	dir := t.TempDir()
	_, pkts := sample(t, dir)
	st := shardedStore(t, dir, pkts)
	want := storeFlowCount(t, st)
	files, _ := st.Shards()
	if len(files) < 6 {
		t.Fatalf("only %d shards", len(files))
	}
	sink := &memSink{failAt: 3}
	ex := &Exporter{Sink: sink, Sensor: "s", Stores: []store.Reader{st}, BatchRows: 1}
	stats, _, err := ex.Run(context.Background())
	if !errors.Is(err, errDown) || stats.Shards != 2 {
		t.Fatalf("first run: %+v %v, want 2 shards and the failure", stats, err)
	}
	ex = &Exporter{Sink: sink, Sensor: "s", Stores: []store.Reader{st}}
	stats, dmg, err := ex.Run(context.Background())
	if err != nil || !dmg.Empty() {
		t.Fatal(err, dmg)
	}
	if stats.Skipped != 2 || stats.Shards != len(files)-2 || sink.records() != want {
		t.Fatalf("second run %+v: %d records exported, store has %d", stats, sink.records(), want)
	}
	if names := slices.Sorted(maps.Keys(sink.shards)); len(names) != len(files) {
		t.Fatalf("%d shards exported of %d", len(names), len(files))
	}
	// A selector's time range picks whole shards.
	sink2 := &memSink{}
	ex = &Exporter{Sink: sink2, Sensor: "s", Stores: []store.Reader{st}, Selector: store.Selector{To: files[0].Last}}
	if stats, _, err := ex.Run(context.Background()); err != nil || stats.Shards == 0 || stats.Shards >= len(files) {
		t.Fatalf("time range: %+v %v", stats, err)
	}
}

// TestExportSkipsDamagedShard: a damaged flow file is named, not
// exported, and tried again (and exported) once it is whole.
func TestExportSkipsDamagedShard(t *testing.T) {
	dir := t.TempDir()
	_, pkts := sample(t, dir)
	st := shardedStore(t, dir, pkts)
	files, _ := st.Shards()
	path := files[1].FlowsPath()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(good)
	bad[len(bad)-5] ^= 0xff
	os.WriteFile(path, bad, 0o644)
	sink := &memSink{}
	ex := &Exporter{Sink: sink, Sensor: "s", Stores: []store.Reader{st}}
	stats, dmg, err := ex.Run(context.Background())
	if err != nil || stats.Damaged != 1 || dmg.Count != 1 || stats.Shards != len(files)-1 {
		t.Fatalf("%+v %+v %v", stats, dmg, err)
	}
	os.WriteFile(path, good, 0o644)
	stats, _, err = ex.Run(context.Background())
	if err != nil || stats.Shards != 1 || sink.records() != storeFlowCount(t, st) {
		t.Fatalf("after repair: %+v %v", stats, err)
	}
}

// TestShipperCatchesUp: the database is down while shards seal; the
// shipper retries by itself and exports everything once it is back.
func TestShipperCatchesUp(t *testing.T) {
	dir := t.TempDir()
	_, pkts := sample(t, dir)
	st := shardedStore(t, dir, pkts)
	want := storeFlowCount(t, st)
	sink := &memSink{down: true}
	var logMu sync.Mutex
	var logs []string
	sh := &Shipper{
		Connect: func(context.Context) (ShardSink, error) { return sink, nil },
		Export:  Exporter{Sensor: "s", Stores: []store.Reader{st}},
		Logf: func(f string, a ...any) {
			logMu.Lock()
			logs = append(logs, f)
			logMu.Unlock()
		},
		MinRetry: 10 * time.Millisecond, MaxRetry: 40 * time.Millisecond,
	}
	sh.Start(context.Background())
	sh.Kick()
	time.Sleep(150 * time.Millisecond)
	if sink.records() != 0 {
		t.Fatal("exported while down")
	}
	sink.mu.Lock()
	sink.down = false
	sink.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for sink.records() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	total, err := sh.Close(time.Second)
	if err != nil || sink.records() != want || total.Records != want {
		t.Fatalf("exported %d (%+v, %v), store has %d", sink.records(), total, err, want)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if len(logs) != 2 { // one failure, one recovery: not one line per retry
		t.Errorf("logs: %q", logs)
	}
}
