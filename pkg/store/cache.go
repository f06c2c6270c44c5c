package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nwhealth/nwhealth/internal/safepath"
)

// objCache keeps copies of immutable objects (manifests, indexes, flow
// files, shard headers and tables of contents) in a local directory, so
// that a second query over the same shards asks the object store for
// blocks only. Names are checked object keys; the total is bounded, the
// least recently used going first.
//
// nwhealth may run as root over a cache directory others can write to
// (a shared --cache): below the directory given, nothing is followed.
// Every directory and file is opened relative to its parent's descriptor
// with O_NOFOLLOW; a directory must be this user's or the given
// directory's owner's (as for a store: root reading through a user's
// cache); a cached file is used only if it is a regular file of one of
// them with one link and the expected size. Anything else under a cache name (a planted link, a
// hard link, a FIFO, another user's file) is unlinked and the object
// fetched anew: a cache holds nothing worth keeping.
type objCache struct {
	base  string // the directory given (followed, as the user gave it)
	sub   string // endpoint, bucket and prefix below base, slash-separated
	dir   string // base/sub, for messages
	owner uint32 // base's owner
	limit int64
	mu    sync.Mutex
	total int64 // -1 until counted
}

// DefaultCacheSize bounds a cache when --cache-size is not given.
const DefaultCacheSize = 2 << 30

// DefaultCacheDir is where a reader caches objects by default: under
// DefaultDir.
func DefaultCacheDir() string { return filepath.Join(DefaultDir(), "objects") }

// DefaultDir holds the default cache and spools: nwhealth in the user's
// cache directory. Without one (no HOME nor XDG_CACHE_HOME, as for a
// systemd service without User=) it is /var/cache/nwhealth for root and
// a directory of the user's own in the temporary directory for others,
// never a name shared by every user there: anyone could have made
// /tmp/nwhealth first, and owned the evidence spooled in it.
func DefaultDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "nwhealth")
	}
	if os.Geteuid() == 0 {
		return "/var/cache/nwhealth"
	}
	return filepath.Join(os.TempDir(), "nwhealth-"+strconv.Itoa(os.Geteuid()))
}

// PrepareDefaultDir makes DefaultDir (0700) when missing and checks that
// it is this user's own: a directory, not a link, owned by this user,
// writable by no one else. Commands call it before using a default
// cache or spool.
func PrepareDefaultDir() error {
	d := DefaultDir()
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("default cache directory: %w", err)
	}
	return checkOwnDir(d)
}

// checkOwnDir is PrepareDefaultDir's test of a directory.
func checkOwnDir(d string) error {
	var st unix.Stat_t
	if err := unix.Lstat(d, &st); err != nil {
		return &os.PathError{Op: "stat", Path: d, Err: err}
	}
	var why string
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		why = fileKind(st.Mode)
	case int(st.Uid) != os.Geteuid():
		why = fmt.Sprintf("owned by uid %d, not this user (%d)", st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		why = fmt.Sprintf("writable by others (mode %04o)", st.Mode&0o7777)
	default:
		return nil
	}
	return &CacheError{d, why + "; not used for the default cache and spool (give --cache and --spool, or fix it)"}
}

// CacheError says why the cache could not be used.
type CacheError struct {
	Path   string
	Reason string
}

func (e *CacheError) Error() string { return "cache " + e.Path + ": " + e.Reason }

func openCache(base, sub string, limit int64) (*objCache, error) {
	if limit <= 0 {
		limit = DefaultCacheSize
	}
	// The directory given is followed, but not through another user's
	// link in a shared sticky directory (--cache /tmp/x planted first).
	if err := safepath.CheckLinks(base); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &objCache{base: base, sub: sub, dir: filepath.Join(base, filepath.FromSlash(sub)), limit: limit, total: -1}
	var st unix.Stat_t
	if err := unix.Stat(base, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: base, Err: err}
	}
	c.owner = st.Uid
	fd, err := c.openDir("", true)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return c, nil
}

// openDir opens the directory rel (slash-separated, under sub), one
// component at a time without following links, creating what is missing
// when create is set.
func (c *objCache) openDir(rel string, create bool) (int, error) {
	fd, err := unix.Open(c.base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: c.base, Err: err}
	}
	at := c.base
	for _, name := range strings.Split(path.Join(c.sub, rel), "/") {
		if name == "" || name == "." {
			continue
		}
		at = filepath.Join(at, name)
		next, err := c.openSubdir(fd, name, at, create)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// openSubdir opens (or makes) the directory name in dfd. A link or a file
// in its place is unlinked and a directory made (create only); a
// directory of another user is refused.
func (c *objCache) openSubdir(dfd int, name, at string, create bool) (int, error) {
	if name == ".." || !plainName(name) {
		return -1, &CacheError{at, "not a plain name"}
	}
	for try := 0; ; try++ {
		if create {
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return -1, &os.PathError{Op: "mkdir", Path: at, Err: err}
			}
		}
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if (errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)) && create && try == 0 {
			// Something planted: removed (the link itself), then made anew.
			if err := unix.Unlinkat(dfd, name, 0); err != nil {
				return -1, &os.PathError{Op: "remove", Path: at, Err: err}
			}
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return -1, &CacheError{at, "not a directory of its own (a link or a file)"}
			}
			return -1, &os.PathError{Op: "open", Path: at, Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, &os.PathError{Op: "stat", Path: at, Err: err}
		}
		if !c.allowed(st.Uid) {
			unix.Close(fd)
			return -1, &CacheError{at, fmt.Sprintf("owned by uid %d, neither the cache's owner (%d) nor this user; not used", st.Uid, c.owner)}
		}
		return fd, nil
	}
}

// open returns the cached copy of name of exactly size bytes, filling it
// with fill (which writes the bytes, checking them) when absent.
//
// A copy this user made is used as it is: only this user or root could
// have written its bytes (0600). A copy the cache directory's owner made
// (root reading through an analyst's shared cache) is that user's word:
// they could have written any bytes of the right size, hiding packets
// behind a forged index or manifest. So it is used only if it hashes to
// sum, the object's SHA-256 from its manifest (indexes and flow files);
// without one (manifests, shard heads, tables of contents) it is fetched
// anew, and this user's copy replaces it.
func (c *objCache) open(name string, size int64, sum string, fill func(w io.Writer) error) (*os.File, error) {
	rel, base := path.Split(name)
	dfd, err := c.openDir(rel, true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	at := filepath.Join(c.dir, filepath.FromSlash(name))
	if !plainName(base) {
		return nil, &CacheError{at, "not a plain name"}
	}
	if f, ok := c.openCached(dfd, base, at, size, sum); ok {
		// Recently used: the descriptor's times, not a path's.
		now := unix.NsecToTimeval(time.Now().UnixNano())
		unix.Futimes(int(f.Fd()), []unix.Timeval{now, now})
		return f, nil
	}
	tmp, tmpName, err := createCacheTemp(dfd, ".fill-", c.dir)
	if err != nil {
		return nil, err
	}
	cw := &countWriter{w: tmp, limit: size}
	err = fill(cw)
	if err == nil && cw.n != size {
		err = fmt.Errorf("%d bytes, %d expected", cw.n, size)
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		// Whatever has the name (a stale or planted entry) is replaced:
		// rename replaces a link, never writes through it.
		err = unix.Renameat(dfd, tmpName, dfd, base)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmpName, 0)
		return nil, err
	}
	c.added(size)
	f, ok := c.openCached(dfd, base, at, size, "")
	if !ok {
		return nil, &CacheError{at, "changed while being filled"}
	}
	return f, nil
}

// scratch returns a new file in the cache directory, already unlinked:
// it goes when closed, whatever happens to the process.
func (c *objCache) scratch() (*os.File, error) {
	dfd, err := c.openDir("", true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	f, name, err := createCacheTemp(dfd, ".verify-", c.dir)
	if err != nil {
		return nil, err
	}
	unix.Unlinkat(dfd, name, 0)
	return f, nil
}

// allowed reports whether uid may own the cache's directories and files.
func (c *objCache) allowed(uid uint32) bool { return uid == c.owner || int(uid) == os.Geteuid() }

// createCacheTemp creates a new file of this user only (0600) in dfd.
func createCacheTemp(dfd int, prefix, dir string) (*os.File, string, error) {
	for range 100 {
		var r [8]byte
		rand.Read(r[:])
		name := prefix + hex.EncodeToString(r[:])
		fd, err := unix.Openat(dfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, "", &os.PathError{Op: "create", Path: filepath.Join(dir, name), Err: err}
		}
		return os.NewFile(uintptr(fd), filepath.Join(dir, name)), name, nil
	}
	return nil, "", &CacheError{dir, "no free temporary name"}
}

// openCached opens a cache file without following links, if it is a
// regular file of an allowed owner with one link and the expected size,
// and, when another user (the cache's owner) made it, with the SHA-256
// sum (none: not used). An entry that is none of these is unlinked.
func (c *objCache) openCached(dfd int, name, at string, size int64, sum string) (*os.File, bool) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, false
	}
	if err != nil {
		unix.Unlinkat(dfd, name, 0) // a link (ELOOP), or unreadable
		return nil, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || !c.allowed(st.Uid) || st.Nlink != 1 || st.Size != size {
		unix.Close(fd)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil, false // a directory is left alone; the rename fails
		}
		unix.Unlinkat(dfd, name, 0)
		return nil, false
	}
	unix.SetNonblock(fd, false)
	f := os.NewFile(uintptr(fd), at)
	if int(st.Uid) != os.Geteuid() && !hashesTo(f, sum) {
		f.Close()
		unix.Unlinkat(dfd, name, 0)
		return nil, false
	}
	return f, true
}

// hashesTo reports whether f's bytes have the SHA-256 sum (hex), and
// leaves f at its start. An empty sum matches nothing.
func hashesTo(f *os.File, sum string) bool {
	if sum == "" {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
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

// cacheEntry is a file of the cache: its directory (slash-separated,
// under sub) and name.
type cacheEntry struct {
	dir, name string
	size      int64
	at        int64 // modification time, ns
}

// walk lists the regular files under the cache's directory, descending
// only into real directories (descriptor by descriptor, no link
// followed).
func (c *objCache) walk() []cacheEntry {
	var out []cacheEntry
	var visit func(fd int, rel string, depth int)
	visit = func(fd int, rel string, depth int) {
		f := os.NewFile(uintptr(fd), rel)
		names, _ := f.Readdirnames(-1)
		for _, n := range names {
			var st unix.Stat_t
			if unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				out = append(out, cacheEntry{rel, n, st.Size, st.Mtim.Nano()})
			case unix.S_IFDIR:
				// Keys have a few segments; a deeper tree is not ours.
				if depth < 16 {
					if sfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
						visit(sfd, path.Join(rel, n), depth+1)
					}
				}
			}
		}
		f.Close()
	}
	if fd, err := c.openDir("", false); err == nil {
		visit(fd, "", 0)
	}
	return out
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
	ents := c.walk()
	var total int64
	for _, e := range ents {
		total += e.size
	}
	if total > c.limit {
		sort.Slice(ents, func(i, j int) bool { return ents[i].at < ents[j].at })
		for _, e := range ents {
			if total <= c.limit*8/10 {
				break
			}
			// Unlinked relative to its directory, opened anew without
			// following links: a directory swapped for a link since the
			// walk takes nothing outside the cache with it.
			dfd, err := c.openDir(e.dir, false)
			if err != nil {
				continue
			}
			if unix.Unlinkat(dfd, e.name, 0) == nil {
				total -= e.size
			}
			unix.Close(dfd)
		}
	}
	c.total = total
}
