package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// objCache keeps copies of immutable objects (manifests, indexes, flow
// files, shard headers and tables of contents) in a local directory, so
// that a second query over the same shards asks the object store for
// blocks only. Names are checked object keys; the total is bounded, the
// least recently used going first.
type objCache struct {
	dir   string
	limit int64
	mu    sync.Mutex
	total int64 // -1 until counted
}

// DefaultCacheSize bounds a cache when --cache-size is not given.
const DefaultCacheSize = 2 << 30

// DefaultCacheDir is where a reader caches objects by default: the
// user's cache directory.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "nwhealth", "objects")
}

func openCache(dir string, limit int64) (*objCache, error) {
	if limit <= 0 {
		limit = DefaultCacheSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &objCache{dir: dir, limit: limit, total: -1}, nil
}

// open returns the cached copy of name of exactly size bytes, filling it
// with fill (which writes the bytes, checking them) when absent.
func (c *objCache) open(name string, size int64, fill func(w io.Writer) error) (*os.File, error) {
	path := filepath.Join(c.dir, filepath.FromSlash(name))
	if f, err := openCached(path, size); err == nil {
		now := time.Now()
		os.Chtimes(path, now, now) // recently used
		return f, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fill-*")
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	cw := &countWriter{w: tmp, limit: size}
	err = fill(cw)
	if err == nil && cw.n != size {
		err = fmt.Errorf("%d bytes, %d expected", cw.n, size)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("cache: %w", err)
	}
	c.added(size)
	return openCached(path, size)
}

// openCached opens a cache file without following links, if it is a
// regular file of the expected size.
func openCached(path string, size int64) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		f.Close()
		return nil, errors.New("not a cached copy")
	}
	return f, nil
}

// countWriter refuses more than limit bytes: a server sending more than
// the manifest says fills no disk.
type countWriter struct {
	w     io.Writer
	n     int64
	limit int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.limit {
		return 0, fmt.Errorf("more than the %d bytes expected", c.limit)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// added counts a new file and, past the limit, removes the least
// recently used files down to 80% of it.
func (c *objCache) added(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= 0 {
		c.total += n
		if c.total <= c.limit {
			return
		}
	}
	type ent struct {
		path string
		size int64
		at   time.Time
	}
	var ents []ent
	var total int64
	filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			ents = append(ents, ent{p, fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
		return nil
	})
	if total > c.limit {
		sort.Slice(ents, func(i, j int) bool { return ents[i].at.Before(ents[j].at) })
		for _, e := range ents {
			if total <= c.limit*8/10 {
				break
			}
			if os.Remove(e.path) == nil {
				total -= e.size
			}
		}
	}
	c.total = total
}
