package ndr

import (
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf16"
)

// w builds little-endian NDR test input.
type w struct {
	b     []byte
	ndr64 bool
	big   bool
}

func (w *w) order() binary.AppendByteOrder {
	if w.big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}
func (w *w) align(n int) {
	for len(w.b)%n != 0 {
		w.b = append(w.b, 0)
	}
}
func (w *w) u8(v uint8)   { w.b = append(w.b, v) }
func (w *w) u16(v uint16) { w.align(2); w.b = w.order().AppendUint16(w.b, v) }
func (w *w) u32(v uint32) { w.align(4); w.b = w.order().AppendUint32(w.b, v) }
func (w *w) u64(v uint64) { w.align(8); w.b = w.order().AppendUint64(w.b, v) }
func (w *w) size(v uint64) {
	if w.ndr64 {
		w.u64(v)
	} else {
		w.u32(uint32(v))
	}
}
func (w *w) wstr(s string) { // conformant varying, NUL included
	u := append(utf16.Encode([]rune(s)), 0)
	w.size(uint64(len(u)))
	w.size(0)
	w.size(uint64(len(u)))
	for _, c := range u {
		w.u16(c)
	}
}

func TestScalarsAlignment(t *testing.T) {
	var in w
	in.u8(1)
	in.u16(0x0203) // at 2
	in.u32(0x04050607)
	in.u8(8)
	in.u64(0x090a0b0c0d0e0f10) // at 16
	r := NewReader(in.b, false)
	if r.U8() != 1 || r.U16() != 0x0203 || r.U32() != 0x04050607 || r.U8() != 8 || r.U64() != 0x090a0b0c0d0e0f10 {
		t.Fatalf("scalars misread: %v", r.Err())
	}
	if r.Remaining() != 0 || r.Err() != nil {
		t.Fatalf("remaining %d err %v", r.Remaining(), r.Err())
	}
}

func TestBigEndianAndUUID(t *testing.T) {
	in := w{big: true}
	in.u32(0x11223344)
	in.b = append(in.b, 0x36, 0x7a, 0xbb, 0x81, 0x98, 0x44, 0x35, 0xf1, 0xad, 0x32, 0x98, 0xf0, 0x38, 0x00, 0x10, 0x03)
	r := NewReader(in.b, true)
	if v := r.U32(); v != 0x11223344 {
		t.Fatalf("u32 %x", v)
	}
	// A big-endian GUID comes back in little-endian wire form.
	want := [16]byte{0x81, 0xbb, 0x7a, 0x36, 0x44, 0x98, 0xf1, 0x35, 0xad, 0x32, 0x98, 0xf0, 0x38, 0x00, 0x10, 0x03}
	if u := r.UUID(); u != want {
		t.Fatalf("uuid % x", u)
	}
}

func TestStickyErrorAndShort(t *testing.T) {
	r := NewReader([]byte{1, 2, 3}, false)
	if v := r.U32(); v != 0 || !errors.Is(r.Err(), ErrShort) {
		t.Fatalf("u32 on 3 bytes: %v %v", v, r.Err())
	}
	if r.U8() != 0 || r.Bytes(1) != nil || r.WString() != "" {
		t.Fatal("reads after an error must return zero values")
	}
}

func TestCountBounds(t *testing.T) {
	cases := []struct {
		name  string
		count uint32
		elem  int
		extra int
		ok    bool
	}{
		{"fits", 3, 4, 12, true},
		{"one too many", 4, 4, 12, false},
		{"huge", 0xffffffff, 1, 16, false},
		{"zero", 0, 8, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in w
			in.u32(c.count)
			in.b = append(in.b, make([]byte, c.extra)...)
			r := NewReader(in.b, false)
			n := r.Count(c.elem)
			if c.ok != (r.Err() == nil) || (c.ok && n != int(c.count)) {
				t.Fatalf("count %d -> %d, err %v", c.count, n, r.Err())
			}
			if !c.ok && !errors.Is(r.Err(), ErrCount) {
				t.Fatalf("want ErrCount, got %v", r.Err())
			}
		})
	}
}

func TestWString(t *testing.T) {
	for _, ndr64 := range []bool{false, true} {
		in := w{ndr64: ndr64}
		in.wstr("PSEXESVC")
		in.u32(0xdeadbeef)
		r := NewReader(in.b, false)
		r.SetNDR64(ndr64)
		if s := r.WString(); s != "PSEXESVC" {
			t.Fatalf("ndr64=%v: %q %v", ndr64, s, r.Err())
		}
		if r.U32() != 0xdeadbeef {
			t.Fatalf("ndr64=%v: misaligned after string", ndr64)
		}
	}
	// The maximum count may exceed what is transmitted (a buffer), but the
	// actual count may not exceed the maximum, nor the bytes left.
	var in w
	in.u32(260)
	in.u32(0)
	in.u32(2)
	in.u16('C')
	in.u16(0)
	if s := NewReader(in.b, false).WString(); s != "C" {
		t.Fatalf("large maximum: %q", s)
	}
	in = w{}
	in.u32(1)
	in.u32(0)
	in.u32(2)
	in.u16('C')
	in.u16(0)
	r := NewReader(in.b, false)
	if r.WString(); !errors.Is(r.Err(), ErrVarying) {
		t.Fatalf("actual > maximum: %v", r.Err())
	}
	in = w{}
	in.u32(0x7fffffff)
	in.u32(0)
	in.u32(0x7fffffff)
	r = NewReader(in.b, false)
	if r.WString(); !errors.Is(r.Err(), ErrCount) {
		t.Fatalf("actual beyond the stub: %v", r.Err())
	}
}

// TestDeferredOrder checks the NDR rule the decoders rely on: a
// structure's embedded pointers are followed by their referents after the
// structure, depth first, while a top-level pointer's referent follows it.
func TestDeferredOrder(t *testing.T) {
	// struct { wchar_t *a; struct_with_ptr *b; wchar_t *c; }
	// b -> { long n; wchar_t *d; }
	var in w
	in.u32(1) // a
	in.u32(2) // b
	in.u32(3) // c
	in.wstr("A")
	in.u32(42) // *b.n
	in.u32(4)  // *b.d
	in.wstr("D")
	in.wstr("C")
	in.u32(7) // a top-level pointer
	in.wstr("T")
	var a, c, d, top string
	var n uint32
	r := NewReader(in.b, false)
	r.Construct(func() {
		if r.Ptr() {
			r.Defer(func() { a = r.WString() })
		}
		if r.Ptr() {
			r.Defer(func() {
				n = r.U32()
				if r.Ptr() {
					r.Defer(func() { d = r.WString() })
				}
			})
		}
		if r.Ptr() {
			r.Defer(func() { c = r.WString() })
		}
	})
	if r.Ptr() {
		r.Defer(func() { top = r.WString() }) // outside a Construct: at once
	}
	if a != "A" || n != 42 || d != "D" || c != "C" || top != "T" || r.Err() != nil || r.Remaining() != 0 {
		t.Fatalf("a=%q n=%d d=%q c=%q top=%q err=%v rem=%d", a, n, d, c, top, r.Err(), r.Remaining())
	}
}

func TestNDR64(t *testing.T) {
	in := w{ndr64: true}
	in.u16(7)
	in.size(0x20000) // pointer: 8 bytes, aligned 8
	in.u32(3)        // enum: 4 bytes
	in.size(2)       // count
	in.u32(10)
	in.u32(11)
	r := NewReader(in.b, false)
	r.SetNDR64(true)
	if r.U16() != 7 || !r.Ptr() || r.Enum() != 3 {
		t.Fatalf("ndr64 scalars: %v", r.Err())
	}
	if n := r.Count(4); n != 2 || r.U32() != 10 || r.U32() != 11 || r.Remaining() != 0 {
		t.Fatalf("ndr64 array: n=%d err=%v", n, r.Err())
	}
}

func TestSID(t *testing.T) {
	var in w
	in.u32(5) // conformance
	in.u8(1)
	in.u8(5)
	in.b = append(in.b, 0, 0, 0, 0, 0, 5)
	for _, v := range []uint32{21, 4228717743, 1032521047, 1810997296, 512} {
		in.u32(v)
	}
	r := NewReader(in.b, false)
	if s := r.SID(); s != "S-1-5-21-4228717743-1032521047-1810997296-512" {
		t.Fatalf("sid %q %v", s, r.Err())
	}
	// A sub-authority count that disagrees with the conformance is refused.
	in.b[5] = 4
	r = NewReader(in.b, false)
	if r.SID(); r.Err() == nil {
		t.Fatal("mismatched SID accepted")
	}
}

func TestUnicodeString(t *testing.T) {
	for _, ndr64 := range []bool{false, true} {
		in := w{ndr64: ndr64}
		in.u32(99)
		in.align(in.ptrSize())
		in.u16(8)
		in.u16(10)
		in.size(0x20000)
		in.size(5)
		in.size(0)
		in.size(4)
		for _, c := range "HKLM" {
			in.u16(uint16(c))
		}
		r := NewReader(in.b, false)
		r.SetNDR64(ndr64)
		var s string
		r.Construct(func() {
			r.U32()
			r.UnicodeString(&s)
		})
		if s != "HKLM" || r.Err() != nil {
			t.Fatalf("ndr64=%v: %q %v", ndr64, s, r.Err())
		}
	}
}

func (w *w) ptrSize() int {
	if w.ndr64 {
		return 8
	}
	return 4
}

func TestDepthLimit(t *testing.T) {
	r := NewReader(make([]byte, 16), false)
	var nest func(int)
	nest = func(d int) { r.Construct(func() { nest(d + 1) }) }
	nest(0)
	if !errors.Is(r.Err(), ErrDepth) {
		t.Fatalf("unbounded nesting: %v", r.Err())
	}
}

// FuzzReader drives the reader with a program taken from the input itself
// over the rest of the input: whatever the bytes, no read may panic or
// allocate beyond what the stub holds.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, []byte{0x05, 0, 0, 0, 0, 0, 0, 0, 0x05, 0, 0, 0, 'a', 0, 'b', 0})
	f.Add([]byte{6, 7, 8, 9, 10}, []byte("\x02\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, prog, stub []byte) {
		r := NewReader(stub, len(prog) > 0 && prog[0]&0x80 != 0)
		r.SetNDR64(len(prog) > 0 && prog[0]&0x40 != 0)
		var run func(p []byte, depth int)
		run = func(p []byte, depth int) {
			for i, op := range p {
				switch op % 16 {
				case 0:
					r.U8()
				case 1:
					r.U16()
				case 2:
					r.U32()
				case 3:
					r.U64()
				case 4:
					r.WString()
				case 5:
					r.AString()
				case 6:
					r.SID()
				case 7:
					r.Skip(r.Count(1))
				case 8:
					var s string
					r.UnicodeString(&s)
				case 9:
					if r.Ptr() && depth < 8 {
						rest := p[i+1:]
						r.Defer(func() { run(rest[:min(len(rest), 4)], depth+1) })
					}
				case 10:
					r.Construct(func() {})
				case 11:
					r.UUID()
				case 12:
					r.VaryingUpTo(r.MaxCount(), 2)
				case 13:
					r.Enum()
				case 14:
					r.Switch()
				case 15:
					r.Align(int(op>>4)%9 + 1)
				}
			}
		}
		r.Construct(func() { run(prog, 0) })
		if r.Offset() > len(stub) {
			t.Fatalf("offset %d beyond stub %d", r.Offset(), len(stub))
		}
	})
}
