package flow

import "unsafe"

// hugePage is the size of a transparent huge page on the machines
// capture runs on (x86-64, arm64 with 4 KiB pages).
const hugePage = 2 << 20

// bigSlice returns a slice of n zero Ts for a table read at random, one
// cache miss a packet under a flood (the slots and the held array): from
// 2 MiB up it starts at a huge-page boundary (within an element past it)
// and the kernel is asked to back it with huge pages (madvise, where the
// system leaves transparent huge pages to it), so that the miss is not
// also a TLB miss, which on a virtual machine costs a nested page walk.
// The slice is over-allocated by at most one huge page to align it. It
// is ordinary heap memory: madvise only changes how the kernel backs it.
func bigSlice[T any](n int) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	if n*size < hugePage {
		return make([]T, n)
	}
	all := make([]T, n+hugePage/size)
	// The first element at or past a huge-page boundary: exactly on it
	// when size divides its offset (8-byte slots), within size bytes past
	// it otherwise (72-byte held slots); the bytes before it belong to
	// all, so the page from that boundary is advised whole.
	start := int(uintptr(unsafe.Pointer(&all[0])) % hugePage)
	k := 0
	if start != 0 {
		k = (hugePage - start + size - 1) / size
	}
	adviseHuge(unsafe.Pointer(&all[0]), uintptr(len(all)*size))
	return all[k : k+n : k+n]
}
