package pipeline

import (
	"context"
	"testing"

	"github.com/nwhealth/nwhealth/internal/chserver"
	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// TestExportObjectStoreToClickHouse: two sensors' shards in an S3 bucket
// (versitygw) go to a real ClickHouse, each under the sensor that wrote
// it; a local store that is one sensor's copy of its shards adds none
// twice; a second pass exports nothing; and a --sensor glob picks the same
// sensors from the database as from the bucket.
func TestExportObjectStoreToClickHouse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, pkts := sample(t, dir)
	half := len(pkts) / 2
	stA := shardedStore(t, t.TempDir(), pkts[:half])
	stB := shardedStore(t, t.TempDir(), pkts[half:])
	wantA, wantB := storeFlowCount(t, stA), storeFlowCount(t, stB)
	filesA, _ := stA.Shards()
	filesB, _ := stB.Shards()

	srv := s3test.Start(t)
	const url = "s3://nwh/fleet"
	for sensor, st := range map[string]*store.Store{"dc1-a": stA, "dc2-b": stB} {
		if _, err := store.Push(st, url, store.UploadOptions{Config: s3test.Config(srv.Endpoint), Sensor: sensor, Keep: true}); err != nil {
			t.Fatal(err)
		}
	}
	remote, err := store.OpenRemote(url, store.RemoteOptions{Config: s3test.Config(srv.Endpoint), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}

	ch := chserver.Start(t, 0, chserver.Options{})
	cfg, err := flowdb.ParseURL(ch.URL("", "", "fleet"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := flowdb.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ensure(ctx, 0); err != nil {
		t.Fatal(err)
	}

	// The local store is dc1-a's spool: the same shards as its objects.
	ex := &Exporter{Sink: db, Sensor: "dc1-a", Stores: []store.Reader{stA, remote}, BatchRows: 5000}
	st, dmg, err := ex.Run(ctx)
	if err != nil || !dmg.Empty() {
		t.Fatal(err, dmg)
	}
	if want := len(filesA) + len(filesB); st.Shards != want || st.Records != wantA+wantB {
		t.Fatalf("exported %+v, want %d shards and %d records", st, want, wantA+wantB)
	}
	// A fresh exporter (another analyst, a restart) finds every shard there.
	ex = &Exporter{Sink: db, Stores: []store.Reader{remote}}
	if st, _, err := ex.Run(ctx); err != nil || st.Shards != 0 || st.Skipped != len(filesA)+len(filesB) {
		t.Fatalf("second pass: %+v %v", st, err)
	}

	count := func(globs ...string) map[string]int {
		got := map[string]int{}
		if err := db.Records(ctx, flowdb.Query{Sensors: globs}, func(sensor, _ string, _ *flow.Record) error {
			got[sensor]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, c := range []struct {
		globs        []string
		wantA, wantB int
	}{
		{nil, wantA, wantB},
		{[]string{"dc1-*"}, wantA, 0},
		{[]string{"dc[12]-?"}, wantA, wantB},
		{[]string{"dc[^1]-*"}, 0, wantB},
		{[]string{"dc1_a"}, 0, 0}, // '_' is a literal, not LIKE's any character
		{[]string{"dc1-a", "dc2-b"}, wantA, wantB},
	} {
		got := count(c.globs...)
		if got["dc1-a"] != c.wantA || got["dc2-b"] != c.wantB || len(got) > 2 {
			t.Errorf("--sensor %q: %v, want dc1-a %d, dc2-b %d", c.globs, got, c.wantA, c.wantB)
		}
		// The bucket picks the same sensors.
		r, err := store.OpenRemote(url, store.RemoteOptions{Config: s3test.Config(srv.Endpoint), Sensors: c.globs, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		sensors, err := r.Sensors()
		if err != nil {
			t.Fatal(err)
		}
		var fromDB []string
		for _, s := range []string{"dc1-a", "dc2-b"} {
			if got[s] > 0 {
				fromDB = append(fromDB, s)
			}
		}
		if len(sensors) != len(fromDB) || (len(sensors) > 0 && sensors[0] != fromDB[0]) {
			t.Errorf("--sensor %q: bucket has %v, database %v", c.globs, sensors, fromDB)
		}
	}
}
