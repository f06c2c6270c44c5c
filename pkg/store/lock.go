package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LockedError says another process is writing to the store.
type LockedError struct {
	Dir string
	PID int // the holder, when it wrote its pid
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("store %s is being written by another process (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("store %s is being written by another process", e.Dir)
}

// Locked marks the error for the exit-code mapping.
func (e *LockedError) Locked() bool { return true }

// Lock is an exclusive writer lock on a store. The lock of record is a
// flock on the store directory itself: a file can be deleted or replaced
// under a running writer (a second writer then locked a new LOCK file and
// both wrote), the directory cannot while it is the one we hold. LOCK is
// kept for the holder's pid, and locked too, so that a writer of an
// older nwhealth, which locks only LOCK, is kept out as well. The kernel
// drops both locks when the process dies: a killed writer leaves no stale
// lock.
type Lock struct {
	dir  *os.File
	file *os.File
}

// AcquireLock takes the store's writer lock or returns *LockedError.
func AcquireLock(dir string) (*Lock, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockedError{Dir: dir, PID: lockPID(dir)}
		}
		return nil, fmt.Errorf("lock store %s: %w", dir, err)
	}
	st, err := Open(dir)
	if err != nil {
		d.Close()
		return nil, err
	}
	// Whatever LOCK is (a link planted to make us truncate its target, a
	// FIFO), the directory lock is ours: a LOCK that is not our kind of
	// file is replaced, never written through.
	f, err := st.openRootFile(lockName)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockedError{Dir: dir, PID: lockPID(dir)}
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{dir: d, file: f}, nil
}

// lockPID reads the pid a writer left in LOCK, without following a link
// or waiting on a FIFO; 0 when there is none.
func lockPID(dir string) int {
	fd, err := unix.Open(filepath.Join(dir, lockName), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0
	}
	b := make([]byte, 32)
	n, _ := unix.Pread(fd, b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:max(n, 0)])))
	return pid
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.dir == nil {
		return nil
	}
	unix.Flock(int(l.file.Fd()), unix.LOCK_UN)
	err := l.file.Close()
	unix.Flock(int(l.dir.Fd()), unix.LOCK_UN)
	if derr := l.dir.Close(); err == nil {
		err = derr
	}
	l.dir, l.file = nil, nil
	return err
}

// HeldByOther reports whether a writer currently holds the store's lock.
func HeldByOther(dir string) bool {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return false
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(d.Fd()), unix.LOCK_UN)
	// An older writer locks only LOCK.
	fd, err := unix.Open(filepath.Join(dir, lockName), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(fd, unix.LOCK_UN)
	return false
}
