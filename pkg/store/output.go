package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OutputError says an output path would write into a store: a query
// writing over one of its own shards destroys what it reads.
type OutputError struct {
	Path  string
	Store string
	What  string
}

func (e *OutputError) Error() string {
	return fmt.Sprintf("output %s %s of the store %s: refusing to write there", e.Path, e.What, e.Store)
}

// CheckOutput refuses an output path that lies inside a store (any of
// stores, or any directory above it that is a store), whatever links
// lead there, or that is another name (a hard link) of a store file.
// Outputs belong elsewhere: nothing but a writer may change a store.
func CheckOutput(path string, stores []*Store) error {
	// Where the file is, or would be created: links resolved.
	target := path
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if real, err := filepath.EvalSymlinks(path); err == nil {
			target = real
		}
	case errors.Is(err, os.ErrNotExist):
		if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
			target = filepath.Join(dir, filepath.Base(path))
		}
	default:
		return nil // the output's own error will say what is wrong
	}
	target, _ = filepath.Abs(target)
	for _, st := range stores {
		root, err := filepath.EvalSymlinks(st.Dir)
		if err != nil {
			continue
		}
		root, _ = filepath.Abs(root)
		if within(target, root) {
			return &OutputError{Path: path, Store: st.Dir, What: "is inside"}
		}
	}
	for dir := filepath.Dir(target); ; dir = filepath.Dir(dir) {
		if looksLikeStore(dir) {
			return &OutputError{Path: path, Store: dir, What: "is inside"}
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	// A hard link elsewhere to a store file: writing it in place would
	// change the store file.
	if fi != nil && fi.Mode().IsRegular() {
		for _, st := range stores {
			names, err := st.names()
			if err != nil {
				continue
			}
			for _, n := range names {
				if sfi, err := os.Lstat(filepath.Join(st.shardsPath(), n)); err == nil && os.SameFile(fi, sfi) {
					return &OutputError{Path: path, Store: st.Dir, What: "is another name of " + n}
				}
			}
		}
	}
	return nil
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// looksLikeStore reports whether dir is a store a writer has used: a
// shards directory and a LOCK.
func looksLikeStore(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, shardsDir))
	if err != nil || !fi.IsDir() {
		return false
	}
	_, err = os.Lstat(filepath.Join(dir, lockName))
	return err == nil
}
