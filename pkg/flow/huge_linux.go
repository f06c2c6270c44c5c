package flow

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks for huge pages over the whole huge pages within
// [p, p+n). A refusal (no THP in the kernel) changes nothing but speed.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + n) &^ (hugePage - 1)
	if end <= start {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start), unix.MADV_HUGEPAGE)
}
