// Package store keeps packets in a directory of indexed, compressed pcap
// shards (docs/format/store.md): it writes them, recovers interrupted ones,
// applies retention, and answers queries. It wires pcapio (shards), index
// (postings) and flow (records); analysis packages never import it.
package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/filemode"
	"golang.org/x/sys/unix"
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
// queries run while a writer appends. Every file is opened through the
// store's directories, opened anew for each operation (files.go).
type Store struct {
	Dir   string
	owner uint32 // uid owning the store directory
}

// Open opens an existing store.
func Open(dir string) (*Store, error) {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s: %w (%v)", dir, ErrNotStore, err)
		}
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	s := &Store{Dir: dir, owner: st.Uid}
	d, err := s.openDir(shardsDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (no %s directory)", dir, ErrNotStore, shardsDir)
		}
		return nil, err
	}
	d.close()
	return s, nil
}

// Create makes the store directory if needed and opens it. Directories it
// makes are 0750 with the set-group-ID bit (filemode.MakeDir): no access
// for others, and a group given to the store later passes to its files.
// An existing directory keeps its mode.
func Create(dir string) (*Store, error) {
	if err := filemode.MakeDir(dir); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	err = filemode.MakeDirAt(root, shardsDir)
	unix.Close(root)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "create store: mkdir", Path: filepath.Join(dir, shardsDir), Err: err}
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
	// Sensor is the sensor that wrote a shard of an object store ("" in
	// a local store); Base is then the objects' key without extension.
	Sensor string
}

// Label names the shard in messages: its file name, after its sensor in
// an object store.
func (f ShardFile) Label() string {
	if f.Sensor != "" {
		return f.Sensor + "/" + f.Name()
	}
	return f.Name()
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

// stem is the name without extension, shared by shard, index and flows.
func (f ShardFile) stem() string { return filepath.Base(f.Base) }

func (f ShardFile) indexName() string { return f.stem() + extIndex }
func (f ShardFile) flowsName() string { return f.stem() + extFlows }

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

// shardStem is a sealed shard's name without extension.
func shardStem(first, last time.Time, writer string, seq uint32) string {
	return fmt.Sprintf("%s_%s_%s-%08d", first.UTC().Truncate(time.Second).Format(nameTime),
		ceilSecond(last).UTC().Format(nameTime), writer, seq)
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

// validWriter reports whether a writer id may be part of a file name:
// one to eight ASCII letters and digits.
func validWriter(id string) bool {
	if len(id) == 0 || len(id) > 8 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// parseName recognises shard file names; ok is false for other files.
// Every part is checked: a name is only ever built from these parts
// (shardStem, openBase), never from what a file says.
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
		if err1 != nil || err2 != nil || f.First.Format(nameTime) != parts[0] || f.Last.Format(nameTime) != parts[1] {
			return f, false
		}
		idpart = parts[2]
	}
	dash := strings.LastIndexByte(idpart, '-')
	if dash <= 0 || !validWriter(idpart[:dash]) {
		return f, false
	}
	digits := idpart[dash+1:]
	if len(digits) < 8 || len(digits) > 10 || strings.TrimLeft(digits, "0123456789") != "" {
		return f, false
	}
	seq, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || fmt.Sprintf("%08d", seq) != digits {
		return f, false
	}
	f.Writer, f.Seq = idpart[:dash], uint32(seq)
	f.Base = filepath.Join(dir, shardsDir, stem)
	return f, true
}

// Listing is what a look at the shards directory found.
type Listing struct {
	Shards []ShardFile // sealed ones ordered by first time, then open ones
	// Skipped names the entries with shard names that are not regular
	// files (a FIFO would hang every reader): nothing reads them.
	Skipped []Damage
	// Incomplete names the shards of an object store whose objects were
	// found without their manifest: an upload that did not finish.
	Incomplete []string
}

// Shards lists the store's shards, sealed ones ordered by first time, then
// open ones. Entries that are not regular files are left out (List
// names them).
func (s *Store) Shards() ([]ShardFile, error) {
	l, err := s.List()
	return l.Shards, err
}

// List lists the store's shards and names what it skipped.
func (s *Store) List() (Listing, error) {
	var l Listing
	ents, err := s.readDir()
	if err != nil {
		return l, err
	}
	for _, e := range ents {
		f, ok := parseName(s.Dir, e.Name())
		if !ok {
			continue
		}
		if !e.Type().IsRegular() {
			l.Skipped = append(l.Skipped, Damage{Shard: e.Name(), Block: -1, Reason: fmt.Sprintf("%s, not a regular file; skipped", modeKind(e.Type()))})
			continue
		}
		if fi, err := e.Info(); err == nil {
			f.Size = fi.Size()
		} else {
			continue // removed by retention while listing
		}
		l.Shards = append(l.Shards, f)
	}
	sort.SliceStable(l.Shards, func(i, j int) bool {
		a, b := l.Shards[i], l.Shards[j]
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
	return l, nil
}

// readDir reads the shards directory through its descriptor.
func (s *Store) readDir() ([]os.DirEntry, error) {
	dir, err := s.openDir(shardsDir)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dir.fd), dir.path)
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list shards in %s: %w", s.shardsPath(), err)
	}
	return ents, nil
}

func modeKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// nextSeq returns one more than the highest sequence number used by writer.
func (s *Store) nextSeq(writer string) (uint32, error) {
	shards, err := s.Shards()
	if err != nil {
		return 0, err
	}
	next := s.seqFloors()[writer]
	for _, f := range shards {
		if f.Writer == writer && f.Seq >= next {
			if f.Seq == math.MaxUint32 {
				return 0, fmt.Errorf("store %s: sequence numbers of writer %s used up (%s)", s.Dir, writer, f.Name())
			}
			next = f.Seq + 1
		}
	}
	return next, nil
}
