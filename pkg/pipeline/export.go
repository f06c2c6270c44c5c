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
// one Exporter and runs a pass after each seal.
type Exporter struct {
	Sink   ShardSink
	Sensor string
	Stores []*store.Store
	// Selector's time range picks shards; a shard is exported whole or not
	// at all, so address, port and protocol selectors do not apply.
	Selector  store.Selector
	BatchRows int // 0: DefaultBatchRows

	done    map[string]bool // shards known exported (loaded once from the sink)
	damaged map[string]bool // damaged shards already reported
}

// Run exports every sealed shard that the sink does not have yet, oldest
// first. Damaged flow files are skipped and named in Damage (newly found
// ones only, when the Exporter is reused); they are tried again next pass.
func (e *Exporter) Run(ctx context.Context) (ExportStats, Damage, error) {
	var st ExportStats
	var dmg Damage
	if e.done == nil {
		done, err := e.Sink.Exported(ctx, e.Sensor)
		if err != nil {
			return st, dmg, err
		}
		e.done = done
	}
	if e.damaged == nil {
		e.damaged = map[string]bool{}
	}
	type shard struct {
		st *store.Store
		sf store.ShardFile
	}
	var todo []shard
	for _, s := range e.Stores {
		files, err := s.Shards()
		if err != nil {
			return st, dmg, fmt.Errorf("%s: %w", s.Dir, err)
		}
		for _, sf := range files {
			if !sf.Sealed || !sf.Overlaps(e.Selector.From, e.Selector.To) {
				continue
			}
			if e.done[shardID(sf)] {
				st.Skipped++
				continue
			}
			todo = append(todo, shard{s, sf})
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
			e.done[p.Name] = true
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
		recs, err := t.st.ShardRecords(sf)
		var de *store.DamageError
		if errors.As(err, &de) {
			// Exporting the records before the damage would mark the shard
			// done for good; leave it for after a repair.
			st.Damaged++
			if !e.damaged[sf.Name()] {
				e.damaged[sf.Name()] = true
				dmg.addStore(err)
			}
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by retention since the listing
		}
		if err != nil {
			return st, dmg, fmt.Errorf("shard %s: %w", sf.Name(), err)
		}
		pending = append(pending, flowdb.Shard{Sensor: e.Sensor, Name: shardID(sf), First: sf.First, Last: sf.Last, Records: recs})
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
