package store

import "golang.org/x/sys/unix"

// mapFetchBuf maps n bytes for a range buffer outside the Go heap, its
// pages populated by the kernel at once; nil when the map fails (the
// caller allocates on the heap). Ranges were most of a host query's heap:
// on the heap they started three collections where the same query over a
// local store runs none, and each fresh page was a fault of its own.
func mapFetchBuf(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil
	}
	return b
}

func unmapFetchBuf(b []byte) { unix.Munmap(b[:cap(b)]) }
