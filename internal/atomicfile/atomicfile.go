// Package atomicfile writes an output file that appears whole or not at
// all: the bytes go to a hidden temporary file beside the target, every
// write and the close are checked, and only Commit renames it into place.
// A command that fails or is interrupted calls Abort (or nothing: a
// deferred Abort after Commit does nothing), and the target keeps what it
// held before.
//
// A target that exists and is not a regular file (a terminal, /dev/null,
// a FIFO, /dev/stdout) is written directly: there is nothing to replace.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nwhealth/nwhealth/internal/filemode"
	"github.com/nwhealth/nwhealth/internal/safepath"
)

// File is an output being written. It is an io.Writer for one goroutine.
type File struct {
	path   string   // the target, symlinks resolved
	tmp    string   // "" when writing the target directly
	f      *os.File // the temporary file, or the target
	err    error    // the first write error
	closed bool
}

// Create starts writing path. An existing regular file keeps its
// permission bits (and owner, for root); a new one holds evidence and is
// made as filemode says (0600, or 0640 in a set-group-ID directory), less
// the umask. A symbolic link is followed: the
// file it names is replaced, the link stays; but not another user's link
// in a shared sticky directory such as /tmp (safepath.CheckLinks).
func Create(path string) (*File, error) {
	if err := safepath.CheckLinks(path); err != nil {
		return nil, err
	}
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		target = resolved
	}
	fi, err := os.Stat(target)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		f, err := os.OpenFile(target, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &File{path: path, f: f}, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	dir, base := filepath.Split(target)
	perm := filemode.ForPath(target)
	if fi != nil {
		perm = fi.Mode().Perm()
	}
	for range 100 {
		tmp := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36)+".tmp")
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create %s beside %s: %w", filepath.Base(tmp), path, err)
		}
		if fi != nil {
			// The umask narrowed the mode given to open: take the old
			// file's exactly, and its owner when we may.
			if err := f.Chmod(perm); err != nil {
				f.Close()
				os.Remove(tmp)
				return nil, err
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
				_ = f.Chown(int(st.Uid), int(st.Gid))
			}
		}
		return &File{path: target, tmp: tmp, f: f}, nil
	}
	return nil, fmt.Errorf("create a temporary file beside %s: names exhausted", path)
}

// Name is the path given to Create.
func (f *File) Name() string { return f.path }

// Write writes to the temporary file. After a failed write every later one
// fails with the same error.
func (f *File) Write(p []byte) (int, error) {
	if f.closed {
		return 0, fmt.Errorf("write %s: %w", f.path, os.ErrClosed)
	}
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.f.Write(p)
	if err != nil {
		f.err = fmt.Errorf("write %s: %w", f.path, err)
	}
	return n, f.err
}

// Commit makes the output final: it syncs and closes the temporary file,
// renames it over the target and syncs the directory. On any error the
// temporary file is removed and the target is left as it was.
func (f *File) Commit() error {
	if f.closed {
		return fmt.Errorf("commit %s: %w", f.path, os.ErrClosed)
	}
	f.closed = true
	err := f.err
	if f.tmp == "" {
		if cerr := f.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", f.path, cerr)
		}
		return err
	}
	if err == nil {
		// A delayed-allocation file system reports a full disk here or
		// at close, not at write.
		if serr := f.f.Sync(); serr != nil && !errors.Is(serr, syscall.EINVAL) {
			err = fmt.Errorf("write %s: %w", f.path, serr)
		}
	}
	if cerr := f.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", f.path, cerr)
	}
	if err == nil {
		if rerr := os.Rename(f.tmp, f.path); rerr != nil {
			err = fmt.Errorf("publish %s: %w", f.path, rerr)
		}
	}
	if err != nil {
		os.Remove(f.tmp)
		return err
	}
	if d, derr := os.Open(filepath.Dir(f.path)); derr == nil {
		d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return nil
}

// Abort discards the output: the temporary file is closed and removed.
// After Commit it does nothing, so it can be deferred.
func (f *File) Abort() {
	if f.closed {
		return
	}
	f.closed = true
	f.f.Close()
	if f.tmp != "" {
		os.Remove(f.tmp)
	}
}

var _ io.Writer = (*File)(nil)
