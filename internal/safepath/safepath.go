// Package safepath checks an output path before it is written through.
//
// An output named by the user may lead through a symbolic link planted by
// someone else in a directory all users share (/tmp): root writing its
// report to /tmp/report.html must not replace /etc/passwd because another
// user linked the name there first. Linux refuses to follow such links
// when fs.protected_symlinks is 1, but not every host sets it, and a
// path resolved in user space (filepath.EvalSymlinks, then a rename)
// bypasses it anyway. CheckLinks applies the same rule itself.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrSharedLink marks a link not followed.
var ErrSharedLink = errors.New("a symbolic link of another user in a directory others may write to; not followed")

// maxLinks bounds the links followed, as the kernel's 40.
const maxLinks = 40

// CheckLinks follows path's symbolic links (every component) and refuses
// one that lies in a sticky directory others may write to, unless it
// belongs to this user or to the directory's owner (the rule of
// fs.protected_symlinks). A path that does not exist, or stops existing
// part way, is fine up to there: what is created is created by the
// caller's own open.
func CheckLinks(path string) error {
	p, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for links := 0; ; {
		parts := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
		cur := "/"
		followed := false
		for i, part := range parts {
			if part == "" {
				continue
			}
			next := filepath.Join(cur, part)
			fi, err := os.Lstat(next)
			if err != nil {
				return nil // missing (or unreadable): nothing further to follow
			}
			if fi.Mode()&fs.ModeSymlink == 0 {
				cur = next
				continue
			}
			if err := mayFollow(cur, next, fi); err != nil {
				return err
			}
			if links++; links > maxLinks {
				return fmt.Errorf("%s: too many symbolic links", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return nil
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			p = filepath.Join(append([]string{target}, parts[i+1:]...)...)
			followed = true
			break
		}
		if !followed {
			return nil
		}
	}
}

// mayFollow is the protected_symlinks rule for the link at link in dir.
func mayFollow(dir, link string, lfi fs.FileInfo) error {
	dfi, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	ds, ok1 := dfi.Sys().(*syscall.Stat_t)
	ls, ok2 := lfi.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return nil
	}
	shared := dfi.Mode()&fs.ModeSticky != 0 && dfi.Mode().Perm()&0o002 != 0
	if !shared || int(ls.Uid) == os.Geteuid() || ls.Uid == ds.Uid {
		return nil
	}
	return fmt.Errorf("%s (uid %d, in %s): %w", link, ls.Uid, dir, ErrSharedLink)
}
