package bigbuf

import "testing"

func TestGetPut(t *testing.T) {
	a := Get(100)
	if len(a) != 100 || cap(a) != class {
		t.Fatalf("Get(100): len %d cap %d", len(a), cap(a))
	}
	for i := range a {
		a[i] = byte(i)
	}
	b := Get(class + 1)
	if cap(b) != 2*class {
		t.Fatalf("Get(64K+1): cap %d", cap(b))
	}
	if &a[:cap(a)][cap(a)-1] == &b[0] || overlap(a, b) {
		t.Fatal("buffers overlap")
	}
	Put(a)
	c := Get(10)
	if &c[:1][0] != &a[:1][0] {
		t.Error("a buffer put back was not reused")
	}
	big := Get(3 << 20) // beyond a region's quarter: mapped on its own
	big[len(big)-1] = 1
	if cap(big) != 3<<20 {
		t.Fatalf("Get(3 MiB): cap %d", cap(big))
	}
	Put(big)
	Put(make([]byte, 10)) // not ours: ignored
	if got := Get(0); cap(got) != class {
		t.Fatalf("Get(0): cap %d", cap(got))
	}
}

func overlap(a, b []byte) bool {
	a, b = a[:cap(a)], b[:cap(b)]
	pa, pb := &a[0], &b[0]
	for i := range a {
		if &a[i] == pb {
			return true
		}
	}
	for i := range b {
		if &b[i] == pa {
			return true
		}
	}
	return false
}
