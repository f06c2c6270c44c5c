package store

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readNoWait reads from the page cache only (preadv2 with RWF_NOWAIT):
// EAGAIN when the data would need the disk. Such a read never blocks, so
// it is made as a raw system call, without telling the scheduler: a
// query makes hundreds of them, and the scheduler otherwise handed the
// processor to another thread during those that took more than 20 µs,
// only to take it back when they returned.
func readNoWait(fd int, p []byte, off int64) (int, error) {
	iov := unix.Iovec{Base: unsafe.SliceData(p)}
	iov.SetLen(len(p))
	// The offset goes in two words, low then high (zero where a word
	// holds it all), as the kernel's preadv2 takes it.
	hi := uintptr(uint64(off) >> (unsafe.Sizeof(uintptr(0))*8 - 1) >> 1)
	n, _, errno := unix.RawSyscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(off), hi, unix.RWF_NOWAIT)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
