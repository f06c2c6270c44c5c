package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nwhealth/nwhealth/internal/filemode"
	"golang.org/x/sys/unix"
)

// A store may sit in a directory others can write to, and nwhealth runs
// as root: a planted symbolic link, hard link, FIFO or device must not
// make it read, truncate or overwrite anything but its own files. So
// every store file is opened relative to the store's directory
// descriptors (a directory swapped for a link after Open changes
// nothing), never through a link (O_NOFOLLOW), never blocking on a FIFO
// (O_NONBLOCK), and checked before use: a regular file owned by the
// store's owner or this user, and, to be written, with no other link.
// New files are created exclusively (O_EXCL) and renamed into place.

// FileError says why a file in a store was not used. Readers skip such
// files and name them (exit 3); writers refuse them.
type FileError struct {
	Path   string
	Reason string
}

func (e *FileError) Error() string { return e.Path + ": " + e.Reason }

// fileKind names a file type for messages.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a named pipe"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "not a regular file"
}

// allowed reports whether uid may own files of the store: its directory's
// owner, or this process's user (root writing a store another user made).
func (s *Store) allowed(uid uint32) bool {
	return uid == s.owner || int(uid) == os.Geteuid()
}

// access is what a store file is opened for, and so what it must be.
type access uint8

const (
	// forRead: a regular file owned as expected. A hard link is read as
	// the file it names: readers parse what they read (anything else is
	// damage) and show it only to their own user.
	forRead access = iota
	// forUpload: the same with no other link. What is uploaded leaves the
	// host: a hard link planted in a spool to any file root may read
	// (a key, a shadow file) would go to the bucket as evidence.
	forUpload
	// forWrite: read-write, with no other link (nothing is written
	// through a name for another file).
	forWrite
)

// checkFile is the test every opened store file passes.
func (s *Store) checkFile(path string, st *unix.Stat_t, acc access) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &FileError{path, fileKind(st.Mode) + ", not a regular file; skipped"}
	}
	if !s.allowed(st.Uid) {
		return &FileError{path, fmt.Sprintf("owned by uid %d, neither the store's owner (%d) nor this user; skipped", st.Uid, s.owner)}
	}
	if acc != forRead && st.Nlink != 1 {
		what := "written"
		if acc == forUpload {
			what = "uploaded"
		}
		return &FileError{path, fmt.Sprintf("has %d hard links; not %s", st.Nlink, what)}
	}
	return nil
}

// dir is a directory of the store, opened for one operation.
type dir struct {
	fd   int
	path string
}

func (d dir) close() { unix.Close(d.fd) }

// openDir opens the store directory (sub "") or a directory in it, never
// through a link at sub, and checks its owner. Operations open it anew
// rather than keep it: nothing in a store holds a descriptor past the
// call, and a directory swapped for a link between calls is refused.
func (s *Store) openDir(sub string) (dir, error) {
	path := filepath.Join(s.Dir, sub)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return dir{}, &FileError{path, "not a directory of its own (a link or a file)"}
		}
		return dir{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return dir{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if !s.allowed(st.Uid) {
		unix.Close(fd)
		return dir{}, &FileError{path, fmt.Sprintf("owned by uid %d, neither the store's owner (%d) nor this user", st.Uid, s.owner)}
	}
	return dir{fd, path}, nil
}

// openAt opens name in d with the checks above for acc; forWrite opens
// it read-write.
func (s *Store) openAt(d dir, name string, acc access) (*os.File, error) {
	path := filepath.Join(d.path, name)
	if !plainName(name) {
		return nil, &FileError{path, "not a plain file name"}
	}
	flags := unix.O_RDONLY
	if acc == forWrite {
		flags = unix.O_RDWR
	}
	fd, err := unix.Openat(d.fd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &FileError{path, "a symbolic link; not followed"}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := s.checkFile(path, &st, acc); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Regular files ignore O_NONBLOCK, but clear it all the same: the
	// flag only had to keep the open from waiting on a FIFO.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openShardFile opens a file of the shards directory.
func (s *Store) openShardFile(name string, acc access) (*os.File, error) {
	d, err := s.openDir(shardsDir)
	if err != nil {
		return nil, err
	}
	defer d.close()
	return s.openAt(d, name, acc)
}

// createAt creates a new file in d; it fails if anything, a link
// included, has the name. Its mode follows filemode: 0600, or 0640 in a
// set-group-ID directory (the store's group may read).
func createAt(d dir, name string) (*os.File, error) {
	path := filepath.Join(d.path, name)
	if !plainName(name) {
		return nil, &FileError{path, "not a plain file name"}
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, filemode.ForFd(d.fd))
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// createShardFile creates a new file in the shards directory.
func (s *Store) createShardFile(name string) (*os.File, error) {
	d, err := s.openDir(shardsDir)
	if err != nil {
		return nil, err
	}
	defer d.close()
	return createAt(d, name)
}

// readShardFile reads a whole file of the shards directory, refusing one
// larger than limit.
func (s *Store) readShardFile(name string, limit int64) ([]byte, error) {
	f, err := s.openShardFile(name, forRead)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, &FileError{f.Name(), fmt.Sprintf("%d bytes, more than such a file holds (%d)", fi.Size(), limit)}
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return b, nil
}

// statShardFile describes a name in the shards directory without following
// a link.
func (s *Store) statShardFile(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	d, err := s.openDir(shardsDir)
	if err != nil {
		return st, err
	}
	defer d.close()
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "stat", Path: filepath.Join(d.path, name), Err: err}
	}
	return st, nil
}

// shardFileExists reports whether anything has the name.
func (s *Store) shardFileExists(name string) bool {
	_, err := s.statShardFile(name)
	return err == nil
}

// shardFileSize is the size of a regular file, 0 for anything else.
func (s *Store) shardFileSize(name string) int64 {
	st, err := s.statShardFile(name)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0
	}
	return st.Size
}

// removeAt unlinks a name (a link itself, never its target).
func removeAt(d dir, name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

// removeShardFile unlinks a name in the shards directory.
func (s *Store) removeShardFile(name string) error {
	d, err := s.openDir(shardsDir)
	if err != nil {
		return err
	}
	defer d.close()
	return removeAt(d, name)
}

// ErrExists is returned when a rename would replace a file.
var ErrExists = errors.New("already exists; not replaced")

// renameAt renames within d. With noReplace an existing target is never
// replaced: ErrExists.
func renameAt(d dir, from, to string, noReplace bool) error {
	path := filepath.Join(d.path, to)
	if !noReplace {
		if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
			return &os.PathError{Op: "rename " + from + " to", Path: path, Err: err}
		}
		return nil
	}
	err := unix.Renameat2(d.fd, from, d.fd, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE on this file system: a hard link fails the
		// same way when the name is taken.
		if err = unix.Linkat(d.fd, from, d.fd, to, 0); err == nil {
			err = unix.Unlinkat(d.fd, from, 0)
		}
	}
	switch {
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: %w", path, ErrExists)
	case err != nil:
		return &os.PathError{Op: "rename " + from + " to", Path: path, Err: err}
	}
	return nil
}

// renameShardFile renames within the shards directory.
func (s *Store) renameShardFile(from, to string, noReplace bool) error {
	d, err := s.openDir(shardsDir)
	if err != nil {
		return err
	}
	defer d.close()
	return renameAt(d, from, to, noReplace)
}

// syncShards makes renames in the shards directory durable.
func (s *Store) syncShards() error {
	d, err := s.openDir(shardsDir)
	if err != nil {
		return err
	}
	defer d.close()
	if err := unix.Fsync(d.fd); err != nil {
		return &os.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// writeShardFileAtomic writes data to name through a temporary file,
// fsync and rename (the directory is synced by the caller once per seal).
// A stale temporary file, or anything planted under its name, is removed
// first, never written through.
func (s *Store) writeShardFileAtomic(name string, data []byte) error {
	d, err := s.openDir(shardsDir)
	if err != nil {
		return err
	}
	defer d.close()
	tmp := name + extTmp
	if err := removeAt(d, tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := createAt(d, tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		removeAt(d, tmp)
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		removeAt(d, tmp)
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		removeAt(d, tmp)
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	return renameAt(d, tmp, name, false)
}

// plainName reports whether name names a file in its directory: no
// separator, not "." or "..", not empty.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/') && !strings.ContainsRune(name, 0)
}

func (s *Store) shardsPath() string { return filepath.Join(s.Dir, shardsDir) }

// openRootFile opens (creating if missing) a file directly in the store
// directory (LOCK, RESERVE) for writing. Anything but a regular file with
// one link owned as expected under that name is removed and replaced by
// a new file: the caller holds the store's lock, and these files carry
// nothing worth keeping.
func (s *Store) openRootFile(name string) (*os.File, error) {
	d, err := s.openDir("")
	if err != nil {
		return nil, err
	}
	defer d.close()
	f, err := s.openAt(d, name, forWrite)
	if err == nil {
		return f, nil
	}
	var fe *FileError
	if !errors.As(err, &fe) && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if fe != nil {
		if err := removeAt(d, name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return createAt(d, name)
}

// removeRootFile unlinks a name in the store directory.
func (s *Store) removeRootFile(name string) error {
	d, err := s.openDir("")
	if err != nil {
		return err
	}
	defer d.close()
	return removeAt(d, name)
}

// OnlySkipped reports whether err is made only of *FileError: files that
// were named and left alone, everything else having been done (exit 3,
// not a failure).
func OnlySkipped(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case *FileError:
		return true
	case interface{ Unwrap() []error }:
		n := 0
		for _, x := range e.Unwrap() {
			if x == nil {
				continue
			}
			if !OnlySkipped(x) {
				return false
			}
			n++
		}
		return n > 0
	case interface{ Unwrap() error }:
		return OnlySkipped(e.Unwrap())
	}
	return false
}
