// Package store keeps packets in a directory of indexed, compressed pcap
// shards (docs/format/store.md): it writes them, recovers interrupted ones,
// applies retention, and answers queries. It wires pcapio (shards), index
// (postings) and flow (records); analysis packages never import it.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// File name pieces (docs/format/store.md).
const (
	shardsDir  = "shards"
	extShard   = ".shard"
	extOpen    = ".shard.open"
	extIndex   = ".idx"
	extFlows   = ".flows"
	extTmp     = ".tmp"
	nameTime   = "20060102T150405Z"
	lockName   = "LOCK"
	reserveNam = "RESERVE"
)

// ErrNotStore means the directory is not a store.
var ErrNotStore = errors.New("not an nwhealth store")

// Store is a store directory opened for reading. Reading never locks:
// queries run while a writer appends.
type Store struct {
	Dir string
}

// Open opens an existing store.
func Open(dir string) (*Store, error) {
	fi, err := os.Stat(filepath.Join(dir, shardsDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (no %s directory)", dir, ErrNotStore, shardsDir)
		}
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotStore)
	}
	return &Store{Dir: dir}, nil
}

// Create makes the store directory if needed and opens it.
func Create(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, shardsDir), 0o755); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	return Open(dir)
}

// ShardFile names one shard in a store.
type ShardFile struct {
	Base   string // path without extension
	Writer string
	Seq    uint32
	Sealed bool
	// First and Last bound the packet times (second precision) for sealed
	// shards; zero for open ones.
	First, Last time.Time
	Size        int64
}

// ShardPath is the path of the packet file.
func (f ShardFile) ShardPath() string {
	if f.Sealed {
		return f.Base + extShard
	}
	return f.Base + extOpen
}

// IndexPath is the path of the index file (sealed shards only).
func (f ShardFile) IndexPath() string { return f.Base + extIndex }

// FlowsPath is the path of the flow file (sealed shards only).
func (f ShardFile) FlowsPath() string { return f.Base + extFlows }

// Name is the shard's file name without directory.
func (f ShardFile) Name() string { return filepath.Base(f.ShardPath()) }

// Overlaps reports whether the shard may hold packets in [from, to).
// Zero bounds are open. Open shards always may.
func (f ShardFile) Overlaps(from, to time.Time) bool {
	if !f.Sealed {
		return true
	}
	if !from.IsZero() && f.Last.Before(from) {
		return false
	}
	if !to.IsZero() && !f.First.Before(to) {
		return false
	}
	return true
}

func sealedBase(dir string, first, last time.Time, writer string, seq uint32) string {
	name := fmt.Sprintf("%s_%s_%s-%08d", first.UTC().Truncate(time.Second).Format(nameTime),
		ceilSecond(last).UTC().Format(nameTime), writer, seq)
	return filepath.Join(dir, shardsDir, name)
}

func openBase(dir, writer string, seq uint32) string {
	return filepath.Join(dir, shardsDir, fmt.Sprintf("%s-%08d", writer, seq))
}

func ceilSecond(t time.Time) time.Time {
	if t.Truncate(time.Second).Equal(t) {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}

// parseName recognises shard file names; ok is false for other files.
func parseName(dir, name string) (ShardFile, bool) {
	var f ShardFile
	var stem string
	switch {
	case strings.HasSuffix(name, extOpen):
		stem = strings.TrimSuffix(name, extOpen)
	case strings.HasSuffix(name, extShard):
		stem = strings.TrimSuffix(name, extShard)
		f.Sealed = true
	default:
		return f, false
	}
	idpart := stem
	if f.Sealed {
		parts := strings.SplitN(stem, "_", 3)
		if len(parts) != 3 {
			return f, false
		}
		var err1, err2 error
		f.First, err1 = time.Parse(nameTime, parts[0])
		f.Last, err2 = time.Parse(nameTime, parts[1])
		if err1 != nil || err2 != nil {
			return f, false
		}
		idpart = parts[2]
	}
	dash := strings.LastIndexByte(idpart, '-')
	if dash <= 0 {
		return f, false
	}
	seq, err := strconv.ParseUint(idpart[dash+1:], 10, 32)
	if err != nil {
		return f, false
	}
	f.Writer, f.Seq = idpart[:dash], uint32(seq)
	f.Base = filepath.Join(dir, shardsDir, stem)
	return f, true
}

// Shards lists the store's shards, sealed ones ordered by first time, then
// open ones.
func (s *Store) Shards() ([]ShardFile, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, shardsDir))
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	var out []ShardFile
	for _, e := range ents {
		f, ok := parseName(s.Dir, e.Name())
		if !ok {
			continue
		}
		if fi, err := e.Info(); err == nil {
			f.Size = fi.Size()
		} else {
			continue // removed by retention while listing
		}
		out = append(out, f)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Sealed != b.Sealed {
			return a.Sealed
		}
		if !a.First.Equal(b.First) {
			return a.First.Before(b.First)
		}
		if a.Writer != b.Writer {
			return a.Writer < b.Writer
		}
		return a.Seq < b.Seq
	})
	return out, nil
}

// nextSeq returns one more than the highest sequence number used by writer.
func (s *Store) nextSeq(writer string) (uint32, error) {
	shards, err := s.Shards()
	if err != nil {
		return 0, err
	}
	var next uint32
	for _, f := range shards {
		if f.Writer == writer && f.Seq >= next {
			next = f.Seq + 1
		}
	}
	return next, nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFileAtomic writes data to path through a temporary file, fsync and
// rename (the directory is synced by the caller once per seal).
func writeFileAtomic(path string, data []byte) error {
	tmp := path + extTmp
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
