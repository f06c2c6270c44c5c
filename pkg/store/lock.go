package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// Lock is an exclusive writer lock on a store (flock on LOCK). The kernel
// drops it when the process dies, so a killed writer never leaves a stale
// lock behind.
type Lock struct{ f *os.File }

// AcquireLock takes the store's writer lock or returns *LockedError.
func AcquireLock(dir string) (*Lock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock store: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}

// HeldByOther reports whether a writer currently holds the store's lock.
func HeldByOther(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockName))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
