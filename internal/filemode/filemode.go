// Package filemode decides the permission bits of the files nwhealth
// creates that hold evidence: store files, spooled shards and outputs
// (pcap, reports, graphs). Captured packets carry credentials, mail and
// files, and a sensor writes them as root; what the umask lets through
// (usually 0644) would give them to every local user.
//
// One rule: others get nothing; the group may read only where a
// directory with the set-group-ID bit chose the group (a store directory
// made for an analysts' group, as Stenographer's packet directories
// belong to its group), since only then is the group a deliberate choice
// and not whatever primary group the writer happens to have.
package filemode

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	// Private is a new evidence file's mode outside a set-group-ID
	// directory: the owner only.
	Private = 0o600
	// Group is its mode in a set-group-ID directory: the owner, and the
	// directory's group to read.
	Group = 0o640
	// Dir is the mode of a directory made for evidence, with
	// unix.S_ISGID added so its files inherit its group.
	Dir = 0o750
)

// ForDirMode is the mode of a new evidence file in a directory of the
// given raw mode (unix.Stat_t.Mode).
func ForDirMode(dirMode uint32) uint32 {
	if dirMode&unix.S_ISGID != 0 {
		return Group
	}
	return Private
}

// ForFd is the mode of a new evidence file in the open directory dfd.
// A directory that cannot be described gets the private mode.
func ForFd(dfd int) uint32 {
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return Private
	}
	return ForDirMode(st.Mode)
}

// ForPath is the mode of a new evidence file at path (its directory is
// looked at, links followed as the open will follow them).
func ForPath(path string) os.FileMode {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &st); err != nil {
		return Private
	}
	return os.FileMode(ForDirMode(st.Mode))
}

// MakeDir creates path and its missing parents for evidence: Dir less
// the umask, and the set-group-ID bit on the directories it creates, so
// that the group given to a new store later (chgrp) passes to every
// file written in it. A directory that exists is left as it is: its
// owner chose its mode.
func MakeDir(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(path)
	if parent != path {
		if err := MakeDir(parent); err != nil {
			return err
		}
	}
	if err := unix.Mkdir(path, Dir); err != nil {
		if err == unix.EEXIST {
			if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return &os.PathError{Op: "mkdir", Path: path, Err: err}
	}
	return SetGroupInherit(path)
}

// SetGroupInherit adds the set-group-ID bit to a directory just made
// (mkdir ignores it in the mode given), keeping the mode the umask left.
// The directory is opened without following a link, and changed through
// that descriptor: a name swapped for a link meanwhile (in a directory
// others may write to) changes nothing elsewhere.
func SetGroupInherit(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := unix.Fchmod(fd, st.Mode&0o777|unix.S_ISGID); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// MakeDirAt creates name in the open directory dfd for evidence, as
// MakeDir does; unix.EEXIST when the name is taken (left as it is).
func MakeDirAt(dfd int, name string) error {
	if err := unix.Mkdirat(dfd, name, Dir); err != nil {
		return err
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return unix.Fchmod(fd, st.Mode&0o777|unix.S_ISGID)
}
