package bigbuf

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// mapRegion maps n bytes (a multiple of 16 KiB) aligned to a huge page
// and asks for huge pages; failing that, it uses the Go heap.
func mapRegion(n int) []byte {
	m, err := unix.Mmap(-1, 0, n+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n)
	}
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m))) & (hugePage - 1))
	b := m[off : off+n : off+n]
	// Best effort: without THP (or with it disabled) the pages are small.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b
}
