// Package bigbuf hands out large byte buffers from memory that the kernel
// may back with transparent huge pages (madvise MADV_HUGEPAGE), and takes
// them back for reuse.
//
// A query's buffers (compressed and decompressed blocks, index files) are
// a few megabytes touched once: on a virtual machine, where each page
// fault is a trip to the hypervisor (12 us measured), faulting them in 4
// KiB at a time cost more than reading the data. A 2 MiB huge page is one
// fault. Where huge pages are unavailable the memory is ordinary, and
// without mmap (other systems) buffers come from the Go heap.
//
// Buffers hold bytes only (the garbage collector does not scan them) and
// are never returned to the system: Put them back when done, and never
// use one after Put.
package bigbuf

import (
	"sync"
)

// class is the granularity of buffer sizes: fine enough that a query's
// buffers (blocks of 32 KiB and a bit) stay within one huge page, whose
// first touch costs from 0.15 to 4 ms on the machines we measure.
const class = 16 << 10

// region is how much memory is mapped at a time.
const region = 4 << 20

var (
	mu    sync.Mutex
	free  = map[int][][]byte{} // by capacity
	cur   []byte               // the unused rest of the current region
	inUse int64                // bytes handed out and not put back
)

// InUse returns the bytes of the buffers handed out and not put back:
// what a query holds in blocks, which the Go heap's statistics do not
// see.
func InUse() int64 {
	mu.Lock()
	defer mu.Unlock()
	return inUse
}

// Get returns a buffer of length n, capacity n rounded up to 16 KiB,
// contents undefined.
func Get(n int) []byte {
	c := (n + class - 1) / class * class
	if c == 0 {
		c = class
	}
	mu.Lock()
	defer mu.Unlock()
	inUse += int64(c)
	if l := free[c]; len(l) > 0 {
		b := l[len(l)-1]
		free[c] = l[:len(l)-1]
		return b[:n]
	}
	if c > region/4 {
		return mapRegion(c)[:n:c]
	}
	if len(cur) < c {
		cur = mapRegion(region)
	}
	b := cur[:n:c]
	cur = cur[c:]
	return b
}

// Put takes a buffer from Get back. Other buffers are ignored.
func Put(b []byte) {
	c := cap(b)
	if c == 0 || c%class != 0 {
		return
	}
	mu.Lock()
	free[c] = append(free[c], b[:0])
	inUse -= int64(c)
	mu.Unlock()
}
