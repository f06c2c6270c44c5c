package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// ShardSink takes whole shards' flow records: flowdb.DB, or a test's fake.
type ShardSink interface {
	// Exported names the shards of sensor already taken.
	Exported(ctx context.Context, sensor string) (map[string]bool, error)
	// Insert takes several shards at once, all or (as far as any reader
	// counts) none of each.
	Insert(ctx context.Context, shards []flowdb.Shard) error
}

// ExportStats counts what one export pass did.
type ExportStats struct {
	Shards  int // shards inserted
	Records int // their records
	Skipped int // shards already exported
	Damaged int // shards left out because their flow file is damaged
}

// DefaultBatchRows is how many records an export gathers, over as many
// shards as it takes, before one INSERT: ClickHouse makes one part per
// insert and partition, and wants them large.
const DefaultBatchRows = 200_000

// Exporter copies the flow records of stores' sealed shards to a sink,
// each shard exactly once: shards the sink already has are skipped, so a
// pass after a failure exports exactly what is missing. A capture keeps
// one Exporter and runs a pass after each seal. Stores are local or
// object stores alike; a shard found in two of them (a spool and the
// bucket it uploads to) is exported once.
type Exporter struct {
	Sink ShardSink
	// Sensor names the shards of local stores, which do not record who
	// wrote them; a shard of an object store carries its own sensor
	// (ShardFile.Sensor), which wins.
	Sensor string
	Stores []store.Reader
	// Selector's time range picks shards; a shard is exported whole or not
	// at all, so address, port and protocol selectors do not apply.
	Selector  store.Selector
	BatchRows int // 0: DefaultBatchRows

	done    map[string]map[string]bool // per sensor, shards known exported (loaded once from the sink)
	damaged map[string]bool            // damaged shards already reported
}

// exported says whether the sink has sensor's shard id, asking the sink
// for the sensor's shards the first time.
func (e *Exporter) exported(ctx context.Context, sensor, id string) (bool, error) {
	if e.done == nil {
		e.done = map[string]map[string]bool{}
	}
	done, ok := e.done[sensor]
	if !ok {
		var err error
		if done, err = e.Sink.Exported(ctx, sensor); err != nil {
			return false, err
		}
		if done == nil {
			done = map[string]bool{}
		}
		e.done[sensor] = done
	}
	return done[id], nil
}

// Run exports every sealed shard that the sink does not have yet, oldest
// first. Damaged flow files are skipped and named in Damage (newly found
// ones only, when the Exporter is reused); they are tried again next pass.
func (e *Exporter) Run(ctx context.Context) (ExportStats, Damage, error) {
	var st ExportStats
	var dmg Damage
	if e.damaged == nil {
		e.damaged = map[string]bool{}
	}
	type shard struct {
		st     store.Reader
		sf     store.ShardFile
		sensor string
	}
	var todo []shard
	seen := map[string]bool{}
	for _, s := range e.Stores {
		l, err := s.List()
		if err != nil {
			return st, dmg, fmt.Errorf("%s: %w", s.Location(), err)
		}
		for _, sf := range l.Shards {
			if !sf.Sealed || !sf.Overlaps(e.Selector.From, e.Selector.To) {
				continue
			}
			sensor := sf.Sensor
			if sensor == "" {
				sensor = e.Sensor
			}
			if sensor == "" {
				return st, dmg, fmt.Errorf("%s: a local store's shards need a sensor name", s.Location())
			}
			key := sensor + "/" + shardID(sf)
			if seen[key] {
				continue
			}
			seen[key] = true
			done, err := e.exported(ctx, sensor, shardID(sf))
			if err != nil {
				return st, dmg, err
			}
			if done {
				st.Skipped++
				continue
			}
			todo = append(todo, shard{s, sf, sensor})
		}
	}
	slices.SortStableFunc(todo, func(a, b shard) int { return a.sf.First.Compare(b.sf.First) })
	limit := e.BatchRows
	if limit <= 0 {
		limit = DefaultBatchRows
	}
	var pending []flowdb.Shard
	rows := 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := e.Sink.Insert(ctx, pending); err != nil {
			// The sink's state is unknown now: ask it again next pass.
			e.done = nil
			return err
		}
		for _, p := range pending {
			e.done[p.Sensor][p.Name] = true
			st.Shards++
			st.Records += len(p.Records)
		}
		pending, rows = nil, 0
		return nil
	}
	for _, t := range todo {
		sf := t.sf
		if err := ctx.Err(); err != nil {
			return st, dmg, err
		}
		recs, err := store.ShardRecords(t.st, sf)
		var de *store.DamageError
		if errors.As(err, &de) {
			// Exporting the records before the damage would mark the shard
			// done for good; leave it for after a repair.
			st.Damaged++
			if key := t.sensor + "/" + sf.Name(); !e.damaged[key] {
				e.damaged[key] = true
				dmg.addStore(err)
			}
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by retention (or from a spool, uploaded) since the listing
		}
		if err != nil {
			return st, dmg, err
		}
		pending = append(pending, flowdb.Shard{Sensor: t.sensor, Name: shardID(sf), First: sf.First, Last: sf.Last, Records: recs})
		rows += len(recs)
		if rows >= limit || len(pending) >= 1000 {
			if err := flush(); err != nil {
				return st, dmg, err
			}
		}
	}
	return st, dmg, flush()
}

// shardID names a shard in the flow database: its file name without
// extension, which never repeats within a store.
func shardID(sf store.ShardFile) string {
	n := sf.Name()
	return n[:len(n)-len(".shard")]
}
