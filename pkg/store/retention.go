package store

import (
	"errors"
	"os"
	"time"
)

// Retention bounds a store. Zero fields are unlimited.
type Retention struct {
	MaxSize int64         // bytes of shard, index and flow files together
	MaxAge  time.Duration // against the newest packet in the store
	// Now is the clock (zero: time.Now()). A shard ending more than
	// FutureSkew after it is not taken for the newest packet: one packet
	// of an imported capture stamped years ahead (a tap's wrong clock, or
	// a hostile file) would otherwise make every other shard too old and
	// delete the evidence.
	Now time.Time
}

// FutureSkew is how far ahead of the clock a shard may end and still
// count as the newest (sensors' clocks differ a little).
const FutureSkew = 24 * time.Hour

// horizon is the latest end a shard may have to count as the newest.
func (r Retention) horizon() time.Time {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	return now.Add(FutureSkew)
}

// Apply deletes whole sealed shards, oldest first, until the store fits.
// Open shards are never touched. It returns the shards removed.
func (r Retention) Apply(s *Store) ([]ShardFile, error) {
	if r.MaxSize <= 0 && r.MaxAge <= 0 {
		return nil, nil
	}
	shards, err := s.Shards()
	if err != nil {
		return nil, err
	}
	var total int64
	var newest time.Time
	horizon := r.horizon()
	var sealed []ShardFile
	for _, f := range shards {
		size := f.Size + s.shardFileSize(f.indexName()) + s.shardFileSize(f.flowsName())
		if !f.Sealed {
			size = f.Size
		}
		total += size
		if f.Sealed {
			f.Size = size
			sealed = append(sealed, f)
			if f.Last.After(newest) && !f.Last.After(horizon) {
				newest = f.Last
			}
		}
	}
	var removed []ShardFile
	for _, f := range sealed { // oldest first (Shards sorts by first time)
		tooOld := r.MaxAge > 0 && !newest.IsZero() && f.Last.Before(newest.Add(-r.MaxAge))
		tooBig := r.MaxSize > 0 && total > r.MaxSize
		if !tooOld && !tooBig {
			continue
		}
		// The packets go first: a shard without packets is gone, while
		// leftover index or flow files are only garbage.
		if err := s.removeShardFile(f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		s.removeShardFile(f.indexName())
		s.removeShardFile(f.flowsName())
		total -= f.Size
		removed = append(removed, f)
	}
	return removed, nil
}
