// Package ndr reads Network Data Representation (NDR 2.0, DCE 1.1 RPC
// chapter 14, as MS-RPCE uses it) from untrusted DCE/RPC stub bytes.
//
// The Reader follows the Decbuf idea: every read is bounds-checked, the
// first failure is sticky (later reads return zero values), and nothing is
// allocated from a count the input claims until that count has been checked
// against the bytes that remain. Alignment is relative to the start of the
// stub, which DCE/RPC places on an 8-byte boundary.
//
// Pointers: a top-level [unique] or [ptr] pointer's referent follows it
// directly; an embedded pointer's referent is deferred until the end of the
// construct (top-level parameter or pointer referent) that contains it, and
// deferred referents are read depth first, as MIDL and pidl marshal them.
// Decoders express this with Construct and Defer:
//
//	r.Construct(func() {          // a structure passed by value or by pointer
//		n := r.U32()
//		if r.Ptr() {             // embedded unique pointer
//			r.Defer(func() { name = r.WString() })
//		}
//	})
//
// Defer outside any Construct runs the referent at once (a top-level
// pointer).
package ndr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on what a claimed count may make the reader do.
const (
	// CountLimit bounds any conformant or varying count, whatever remains.
	CountLimit = 1 << 24
	// maxDepth bounds Construct nesting (hostile self-referencing data
	// cannot recurse, but a decoder bug must not blow the stack either).
	maxDepth = 64
)

// Errors a Reader can stop on.
var (
	ErrShort    = errors.New("ndr: stub too short")
	ErrCount    = errors.New("ndr: count exceeds remaining bytes")
	ErrVarying  = errors.New("ndr: varying array offset or length out of range")
	ErrDepth    = errors.New("ndr: constructs nested too deeply")
	ErrNullRef  = errors.New("ndr: null reference pointer")
	ErrMismatch = errors.New("ndr: inconsistent value")
)

// Reader reads NDR values from one stub.
type Reader struct {
	buf   []byte
	off   int
	order binary.ByteOrder
	ndr64 bool
	err   error
	// frames holds, for each open Construct, the referents deferred so far.
	frames [][]func()
}

// NewReader returns a Reader over stub. bigEndian comes from the PDU's data
// representation label.
func NewReader(stub []byte, bigEndian bool) *Reader {
	r := &Reader{buf: stub, order: binary.LittleEndian}
	if bigEndian {
		r.order = binary.BigEndian
	}
	return r
}

// SetNDR64 switches to the NDR64 transfer syntax (MS-RPCE 2.2.5), which a
// context negotiated when its bind_ack accepted transfer syntax
// 71710533-beba-4937-8319-b5dbef9ccc36: pointers, conformances, offsets
// and counts become 8 bytes (aligned 8) and enums 4 bytes.
func (r *Reader) SetNDR64(on bool) { r.ndr64 = on }

// NDR64 reports whether the reader decodes NDR64.
func (r *Reader) NDR64() bool { return r.ndr64 }

// PtrSize is the wire size of a pointer referent ID: 4, or 8 in NDR64.
func (r *Reader) PtrSize() int {
	if r.ndr64 {
		return 8
	}
	return 4
}

// AlignP aligns to a pointer's alignment, as a structure holding pointers
// is aligned before its first member.
func (r *Reader) AlignP() { r.Align(r.PtrSize()) }

// Enum reads an enumerated value: 16 bits in NDR, 32 bits in NDR64 (and
// for [v1_enum] types, which callers read with U32).
func (r *Reader) Enum() uint32 {
	if r.ndr64 {
		return r.U32()
	}
	return uint32(r.U16())
}

// U3264 reads an __int3264 (DWORD_PTR, ULONG_PTR, SIZE_T): 32 bits in NDR,
// 64 in NDR64.
func (r *Reader) U3264() uint64 { return r.size() }

// Switch reads the 32-bit discriminant of a union whose arms hold
// pointers: NDR64 aligns such a union (discriminant included) to 8.
func (r *Reader) Switch() uint32 {
	r.AlignP()
	return r.U32()
}

// SwitchEnum reads an enumerated union discriminant (16 bits in NDR, 32 in
// NDR64), aligned as Switch.
func (r *Reader) SwitchEnum() uint32 {
	r.AlignP()
	return r.Enum()
}

// size reads a conformance, offset or count: 32 bits, 64 in NDR64.
func (r *Reader) size() uint64 {
	if r.ndr64 {
		return r.U64()
	}
	return uint64(r.U32())
}

// Err returns the first error met, nil when every read so far succeeded.
func (r *Reader) Err() error { return r.err }

// Offset is the current read position from the start of the stub.
func (r *Reader) Offset() int { return r.off }

// Remaining is the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// BigEndian reports the byte order being read.
func (r *Reader) BigEndian() bool { return r.order == binary.BigEndian }

// Fail records err (with the offset) unless an earlier error is recorded.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("at offset %d: %w", r.off, err)
	}
}

// Failf records a formatted ErrMismatch.
func (r *Reader) Failf(format string, a ...any) {
	r.Fail(fmt.Errorf("%w: %s", ErrMismatch, fmt.Sprintf(format, a...)))
}

// Align skips padding to a multiple of n (1, 2, 4 or 8).
func (r *Reader) Align(n int) {
	if r.err != nil || n <= 1 {
		return
	}
	pad := (n - r.off%n) % n
	if pad > r.Remaining() {
		r.off = len(r.buf)
		r.Fail(ErrShort)
		return
	}
	r.off += pad
}

// take returns the next n bytes or nil (recording ErrShort).
func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.Remaining() {
		r.Fail(ErrShort)
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// Bytes returns the next n bytes (no alignment) without copying; nil on error.
func (r *Reader) Bytes(n int) []byte { return r.take(n) }

// Skip advances n bytes.
func (r *Reader) Skip(n int) { r.take(n) }

// U8 reads an unsigned 8-bit integer (also boolean, char, byte).
func (r *Reader) U8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// U16 reads an aligned unsigned 16-bit integer (short, wchar_t).
func (r *Reader) U16() uint16 {
	r.Align(2)
	b := r.take(2)
	if b == nil {
		return 0
	}
	return r.order.Uint16(b)
}

// U32 reads an aligned unsigned 32-bit integer (long, DWORD, enum16 is U16).
func (r *Reader) U32() uint32 {
	r.Align(4)
	b := r.take(4)
	if b == nil {
		return 0
	}
	return r.order.Uint32(b)
}

// U64 reads an aligned unsigned 64-bit integer (hyper, FILETIME as one).
func (r *Reader) U64() uint64 {
	r.Align(8)
	b := r.take(8)
	if b == nil {
		return 0
	}
	return r.order.Uint64(b)
}

// UUID reads a GUID (aligned 4) and returns it in its little-endian wire
// form, whatever the stub's byte order, so it compares with bind UUIDs.
func (r *Reader) UUID() (u [16]byte) {
	r.Align(4)
	b := r.take(16)
	if b == nil {
		return u
	}
	copy(u[:], b)
	if r.order == binary.BigEndian {
		u[0], u[1], u[2], u[3] = u[3], u[2], u[1], u[0]
		u[4], u[5] = u[5], u[4]
		u[6], u[7] = u[7], u[6]
	}
	return u
}

// Ptr reads a unique or full pointer's referent ID and reports whether it
// is non-null. The caller then reads or defers the referent.
func (r *Reader) Ptr() bool { return r.size() != 0 }

// RefPtr reads an embedded [ref] pointer (which has a wire representation
// when embedded) and fails on null.
func (r *Reader) RefPtr() bool {
	if r.size() == 0 && r.err == nil {
		r.Fail(ErrNullRef)
	}
	return r.err == nil
}

// Construct reads one marshalling unit: fn reads the scalars of a top-level
// parameter or of a pointer's referent, and the referents of the pointers fn
// met are then read in order, each as its own unit (depth first).
func (r *Reader) Construct(fn func()) {
	if r.err != nil {
		return
	}
	if len(r.frames) >= maxDepth {
		r.Fail(ErrDepth)
		return
	}
	r.frames = append(r.frames, nil)
	fn()
	i := len(r.frames) - 1
	deferred := r.frames[i]
	r.frames = r.frames[:i]
	for _, d := range deferred {
		if r.err != nil {
			return
		}
		r.Construct(d)
	}
}

// Defer schedules fn, which reads a pointer's referent, for the end of the
// enclosing Construct; outside any Construct it runs fn at once (the
// referent of a top-level pointer follows the pointer).
func (r *Reader) Defer(fn func()) {
	if r.err != nil {
		return
	}
	if len(r.frames) == 0 {
		r.Construct(fn)
		return
	}
	i := len(r.frames) - 1
	r.frames[i] = append(r.frames[i], fn)
}

// Count reads a conformance (maximum count) and checks that count elements
// of at least minSize bytes each can still follow. It returns 0 on error.
func (r *Reader) Count(minSize int) int {
	n := r.size()
	if n > CountLimit {
		n = CountLimit + 1 // fails below
	}
	return r.checkCount(uint32(n), minSize)
}

// CheckCount validates a count obtained elsewhere (e.g. a conformance
// hoisted to the front of a conformant structure) against the remaining
// bytes, returning 0 and recording ErrCount when it cannot fit.
func (r *Reader) CheckCount(n uint32, minSize int) int { return r.checkCount(n, minSize) }

func (r *Reader) checkCount(n uint32, minSize int) int {
	if r.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > CountLimit || int64(n)*int64(minSize) > int64(r.Remaining()) {
		r.Fail(ErrCount)
		return 0
	}
	return int(n)
}

// MaxCount reads the conformance of a conformant varying array, which only
// bounds the actual count that follows (the space allocated for a string may
// exceed what is transmitted), so it is not checked against the remaining
// bytes; it returns -1 when the read failed.
func (r *Reader) MaxCount() int64 {
	n := r.size()
	if r.err != nil {
		return -1
	}
	return int64(min(n, 1<<62))
}

// Varying reads the offset and actual count of a varying array whose
// maximum is max (max < 0: no conformance to check against) and checks the
// actual count against the remaining bytes.
func (r *Reader) Varying(max int64, elemSize int) int {
	off := min(r.size(), CountLimit+1)
	n := min(r.size(), CountLimit+1)
	if r.err != nil {
		return 0
	}
	if max >= 0 && int64(off)+int64(n) > max {
		r.Fail(ErrVarying)
		return 0
	}
	return r.checkCount(uint32(n), elemSize)
}

// VaryingUpTo is Varying for lists whose elements are useful one by one
// (enumeration results): an actual count larger than the remaining bytes
// allow is clamped instead of failing, so a short stub still yields its
// first elements (the reads past the end then fail as usual).
func (r *Reader) VaryingUpTo(maxCount int64, elemSize int) int {
	off := min(r.size(), CountLimit+1)
	n := min(r.size(), CountLimit+1)
	if r.err != nil {
		return 0
	}
	if maxCount >= 0 && int64(off)+int64(n) > maxCount {
		r.Fail(ErrVarying)
		return 0
	}
	return min(int(n), r.Remaining()/max(elemSize, 1))
}

// CountUpTo is Count for lists: the conformance is clamped to the elements
// the remaining bytes can hold.
func (r *Reader) CountUpTo(minSize int) int {
	n := min(r.size(), CountLimit+1)
	if r.err != nil {
		return 0
	}
	return min(int(n), r.Remaining()/max(minSize, 1))
}

// WString reads a conformant varying string of UTF-16 code units (a [string]
// wchar_t* referent, or the buffer of an RPC_UNICODE_STRING) and returns it
// without its terminating NUL.
func (r *Reader) WString() string {
	max := r.MaxCount()
	n := r.Varying(max, 2)
	return r.utf16(n)
}

// VaryingWString reads a varying (not conformant) UTF-16 string.
func (r *Reader) VaryingWString() string {
	n := r.Varying(-1, 2)
	return r.utf16(n)
}

// UTF16 reads n UTF-16 code units (aligned 2) and returns the text up to the
// first NUL.
func (r *Reader) UTF16(n int) string {
	if r.checkCount(uint32(min(n, CountLimit+1)), 2) != n {
		return ""
	}
	return r.utf16(n)
}

func (r *Reader) utf16(n int) string {
	if n == 0 || r.err != nil {
		return ""
	}
	r.Align(2)
	b := r.take(2 * n)
	if b == nil {
		return ""
	}
	return DecodeUTF16(b, r.order == binary.BigEndian)
}

// AString reads a conformant varying string of 8-bit characters (a [string]
// char* referent) without its terminating NUL.
func (r *Reader) AString() string {
	max := r.MaxCount()
	n := r.Varying(max, 1)
	return r.chars(n)
}

// Chars reads n 8-bit characters and returns the text up to the first NUL.
func (r *Reader) Chars(n int) string { return r.chars(n) }

func (r *Reader) chars(n int) string {
	b := r.take(n)
	if i := indexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return Latin1(b)
}

// UnicodeString reads an RPC_UNICODE_STRING (Length, MaximumLength, unique
// pointer to a conformant varying buffer) embedded in the current construct
// and stores the text into *dst when the deferred buffer is read.
func (r *Reader) UnicodeString(dst *string) {
	r.AlignP()
	r.U16() // Length in bytes; the buffer's actual count is authoritative
	r.U16()
	if r.Ptr() {
		r.Defer(func() {
			max := r.MaxCount()
			n := r.Varying(max, 2)
			*dst = r.utf16(n)
		})
	}
}

// AnsiString reads an RPC_STRING / STRING (Length, MaximumLength, pointer
// to a conformant varying char buffer) into *dst.
func (r *Reader) AnsiString(dst *string) {
	r.AlignP()
	r.U16()
	r.U16()
	if r.Ptr() {
		r.Defer(func() {
			max := r.MaxCount()
			n := r.Varying(max, 1)
			*dst = r.chars(n)
		})
	}
}

// SID reads an RPC_SID whose conformance has not been read yet (the referent
// of a PRPC_SID) and renders it as S-1-5-21-...
func (r *Reader) SID() string {
	n := r.Count(4)
	return r.SIDBody(n)
}

// SIDBody reads an RPC_SID after its conformance n (hoisted by the caller).
func (r *Reader) SIDBody(n int) string {
	rev := r.U8()
	sub := r.U8()
	auth := r.take(6)
	if r.err != nil {
		return ""
	}
	if int(sub) != n {
		r.Failf("sid sub-authority count %d, conformance %d", sub, n)
		return ""
	}
	var a uint64
	for _, c := range auth {
		a = a<<8 | uint64(c)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-", rev)
	if a >= 1<<32 {
		fmt.Fprintf(&sb, "0x%012X", a)
	} else {
		fmt.Fprintf(&sb, "%d", a)
	}
	for i := 0; i < n; i++ {
		v := r.U32()
		if r.err != nil {
			return ""
		}
		fmt.Fprintf(&sb, "-%d", v)
	}
	return sb.String()
}

// DecodeUTF16 turns UTF-16 bytes into a string, stopping at the first NUL;
// unpaired surrogates become U+FFFD.
func DecodeUTF16(b []byte, bigEndian bool) string {
	order := binary.ByteOrder(binary.LittleEndian)
	if bigEndian {
		order = binary.BigEndian
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := order.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// Latin1 renders 8-bit text: valid UTF-8 as is, anything else byte by byte
// as Latin-1 (ANSI code pages are unknowable here).
func Latin1(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = rune(c)
	}
	return string(rs)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// DecodeUTF16Multi turns UTF-16LE bytes holding several NUL-terminated
// strings (REG_MULTI_SZ) into text with NUL separators kept.
func DecodeUTF16Multi(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.LittleEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}
