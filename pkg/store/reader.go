package store

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/nwhealth/nwhealth/pkg/objstore"
)

// Reader is a store to read: a local directory (*Store) or a prefix of an
// object store (*Remote). Queries (PlanQuery), flow records (Flows) and
// descriptions (Info) read through it, so nothing above this package
// branches on the kind of store. Only this package implements it.
type Reader interface {
	// Location names the store for messages: a directory or an s3:// URL.
	Location() string
	// List lists the shards, sealed ones ordered by first time, writer
	// and sequence (an object store's sensor by sensor), then open ones.
	List() (Listing, error)
	// Info describes the store; verify reads and checks everything.
	Info(verify bool) (InfoReport, error)

	// listFrom is List limited to shards that may hold packets at or
	// after from (zero: all).
	listFrom(from time.Time) (Listing, error)
	// openShard opens a shard's packet file.
	openShard(sf ShardFile) (blockFile, error)
	// openIndex opens a sealed shard's index file.
	openIndex(sf ShardFile) (blockFile, error)
	// readFlows reads a sealed shard's flow file whole.
	readFlows(sf ShardFile) ([]byte, error)
}

// blockFile is an opened store file.
type blockFile interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// localFile is a file of a local store.
type localFile struct {
	f    *os.File
	size int64
}

func (l *localFile) ReadAt(p []byte, off int64) (int, error) { return l.f.ReadAt(p, off) }
func (l *localFile) Size() int64                             { return l.size }
func (l *localFile) Close() error                            { return l.f.Close() }

func openLocal(f *os.File, err error) (blockFile, error) {
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &localFile{f: f, size: fi.Size()}, nil
}

// Location is the store directory.
func (s *Store) Location() string { return s.Dir }

func (s *Store) listFrom(time.Time) (Listing, error) { return s.List() }

func (s *Store) openShard(sf ShardFile) (blockFile, error) {
	return openLocal(s.openShardFile(sf.Name(), forRead))
}

func (s *Store) openIndex(sf ShardFile) (blockFile, error) {
	return openLocal(s.openShardFile(sf.indexName(), forRead))
}

func (s *Store) readFlows(sf ShardFile) ([]byte, error) {
	return s.readShardFile(sf.flowsName(), maxFlowFile)
}

// fatal reports whether a read error ends a whole query rather than
// skipping one part of a store as damage: the object store cannot be
// reached or refuses us, or the command was stopped.
func fatal(err error) bool {
	return errors.Is(err, objstore.ErrUnavailable) || errors.Is(err, objstore.ErrDenied) ||
		errors.Is(err, objstore.ErrNoBucket) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Locals returns the local stores among readers (outputs are checked
// against them; followers read them).
func Locals(readers []Reader) []*Store {
	var out []*Store
	for _, r := range readers {
		if s, ok := r.(*Store); ok {
			out = append(out, s)
		}
	}
	return out
}
