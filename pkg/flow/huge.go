package flow

import "unsafe"

// hugePage is the size of a transparent huge page on the machines
// capture runs on (x86-64, arm64 with 4 KiB pages).
const hugePage = 2 << 20

// bigSlice returns a slice of n zero Ts for a table read at random, one
// cache miss a packet under a flood (the slots and the held array): from
// 2 MiB up its memory starts on a huge-page boundary and the kernel is
// asked to back it with huge pages (madvise, where the system leaves
// transparent huge pages to it), so that the miss is not also a TLB miss,
// which on a virtual machine costs a nested page walk. The slice is
// over-allocated by at most one huge page to align it. It is ordinary
// heap memory: madvise only changes how the kernel backs it.
func bigSlice[T any](n int) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	if n*size < hugePage {
		return make([]T, n)
	}
	s := make([]T, n+hugePage/size)
	start := int(uintptr(unsafe.Pointer(&s[0])) % hugePage)
	k := 0
	if start != 0 {
		k = (hugePage - start + size - 1) / size
	}
	s = s[k : k+n : k+n]
	adviseHuge(unsafe.Pointer(&s[0]), uintptr(n*size))
	return s
}
