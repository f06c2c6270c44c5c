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
			if f.Last.After(newest) {
				newest = f.Last
			}
		}
	}
	var removed []ShardFile
	for _, f := range sealed { // oldest first (Shards sorts by first time)
		tooOld := r.MaxAge > 0 && f.Last.Before(newest.Add(-r.MaxAge))
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
