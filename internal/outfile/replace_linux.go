package outfile

import (
	"os"
	"syscall"

	"github.com/nwhealth/nwhealth/internal/filemode"
	"golang.org/x/sys/unix"
)

// replaceMin is the size from which an existing output file is replaced
// rather than truncated: below it truncation costs little.
const replaceMin = 1 << 20

// create opens path for writing as os.Create does, except that a new file
// holds evidence (filemode: 0600, or 0640 in a set-group-ID directory)
// and a large
// existing file is replaced by a new one instead of truncated in place.
// Truncating frees the old blocks and page-cache pages before the first
// byte is written (5 ms for 14 MiB here, more with online discard);
// replacing unlinks the old file while holding it open, and release,
// called on another goroutine, drops the last reference, so that work
// overlaps the query. A program still reading the old file (a capture
// viewer showing the previous result) keeps its data instead of seeing it
// cut off.
//
// The new file gets the old one's permission bits and group. A file that
// is not a plain regular file owned by the user, has other links or
// extended attributes (ACLs, security labels) is truncated as before, so
// that nothing about it changes but its contents.
func create(path string) (f *os.File, release func(), err error) {
	if old, perm, gid, ok := replaceable(path); ok {
		if err := os.Remove(path); err == nil {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
			if err != nil {
				old.Close()
				return nil, nil, err
			}
			// The umask may have narrowed the mode, the directory's
			// set-group-ID bit changed the group: restore both.
			if err := f.Chmod(perm); err == nil {
				_ = f.Chown(-1, gid)
			}
			return f, func() { old.Close() }, nil
		}
		old.Close()
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filemode.ForPath(path))
	return f, nil, err
}

// replaceable opens path if it may be replaced (see create), checking
// the open file itself so that a file swapped in meanwhile is not taken
// for it.
func replaceable(path string) (*os.File, os.FileMode, int, bool) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < replaceMin {
		return nil, 0, 0, false
	}
	old, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, 0, false
	}
	ofi, err := old.Stat()
	st, ok := ofi.Sys().(*syscall.Stat_t)
	if err != nil || !ok || !os.SameFile(fi, ofi) || st.Nlink != 1 ||
		int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() ||
		ofi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
		old.Close()
		return nil, 0, 0, false
	}
	if n, err := unix.Flistxattr(int(old.Fd()), nil); err != nil || n > 0 {
		old.Close()
		return nil, 0, 0, false
	}
	return old, ofi.Mode().Perm(), int(st.Gid), true
}
