package demogen

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// ndrWriter marshals little-endian NDR 2.0 stubs (DCE 1.1 RPC chapter 14,
// as MS-RPCE uses it): the inverse of pkg/smbrpc/ndr's Reader, with the
// same Construct/Defer model of pointer referents. A top-level [unique]
// pointer's referent follows it at once; the referents of pointers
// embedded in a structure follow the whole structure, depth first.
// Alignment is relative to the start of the stub.
type ndrWriter struct {
	b      []byte
	frames [][]func()
	refID  uint32
}

// replyRefs starts the referent IDs of a response after those of its
// request: full pointers ([ptr]) with an ID the request used would be
// taken for the same referent, already marshalled, and left out.
const replyRefs = 0x400

func (w *ndrWriter) align(n int) {
	for len(w.b)%n != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *ndrWriter) u8(v uint8) { w.b = append(w.b, v) }

func (w *ndrWriter) u16(v uint16) {
	w.align(2)
	w.b = binary.LittleEndian.AppendUint16(w.b, v)
}

func (w *ndrWriter) u32(v uint32) {
	w.align(4)
	w.b = binary.LittleEndian.AppendUint32(w.b, v)
}

func (w *ndrWriter) u64(v uint64) {
	w.align(8)
	w.b = binary.LittleEndian.AppendUint64(w.b, v)
}

func (w *ndrWriter) raw(b []byte) { w.b = append(w.b, b...) }

// uuid writes a GUID (aligned 4) given in its wire form.
func (w *ndrWriter) uuid(u guid) {
	w.align(4)
	w.b = append(w.b, u[:]...)
}

// handle writes a 20-byte context handle.
func (w *ndrWriter) handle(h ctxHandle) {
	w.align(4)
	w.b = append(w.b, h[:]...)
}

// ptr writes a unique pointer's referent ID (0 for null) and reports
// whether the caller must write the referent.
func (w *ndrWriter) ptr(nonNull bool) bool {
	if !nonNull {
		w.u32(0)
		return false
	}
	w.refID += 4
	w.u32(0x00020000 + w.refID - 4)
	return true
}

// construct writes one marshalling unit: fn writes the scalars of a
// top-level parameter or of a pointer's referent; the referents fn
// deferred follow, each as its own unit.
func (w *ndrWriter) construct(fn func()) {
	w.frames = append(w.frames, nil)
	fn()
	i := len(w.frames) - 1
	deferred := w.frames[i]
	w.frames = w.frames[:i]
	for _, d := range deferred {
		w.construct(d)
	}
}

// deferRef schedules fn, which writes a pointer's referent, for the end of
// the enclosing construct; outside any construct it writes it at once.
func (w *ndrWriter) deferRef(fn func()) {
	if len(w.frames) == 0 {
		w.construct(fn)
		return
	}
	i := len(w.frames) - 1
	w.frames[i] = append(w.frames[i], fn)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// wstring writes a [string] wchar_t* referent: conformant and varying,
// with its terminating NUL counted.
func (w *ndrWriter) wstring(s string) {
	u := utf16le(s)
	n := uint32(len(u)/2 + 1)
	w.u32(n)
	w.u32(0)
	w.u32(n)
	w.raw(u)
	w.raw([]byte{0, 0})
}

// wstringPtr writes a top-level [string, unique] wchar_t* (null when s is
// "").
func (w *ndrWriter) wstringPtr(s string) {
	if w.ptr(s != "") {
		w.wstring(s)
	}
}

// unicodeString writes an RPC_UNICODE_STRING embedded in the current
// construct: lengths in bytes without a NUL, the buffer deferred.
func (w *ndrWriter) unicodeString(s string) {
	u := utf16le(s)
	w.align(4)
	w.u16(uint16(len(u)))
	w.u16(uint16(len(u)))
	if w.ptr(true) {
		w.deferRef(func() {
			n := uint32(len(u) / 2)
			w.u32(n)
			w.u32(0)
			w.u32(n)
			w.raw(u)
		})
	}
}

// sid writes an RPC_SID with its conformance (the referent of a PRPC_SID).
func (w *ndrWriter) sid(s string) {
	rev, auth, subs := parseSID(s)
	w.u32(uint32(len(subs)))
	w.sidBody(rev, auth, subs)
}

func (w *ndrWriter) sidBody(rev uint8, auth uint64, subs []uint32) {
	w.u8(rev)
	w.u8(uint8(len(subs)))
	for i := 5; i >= 0; i-- {
		w.u8(byte(auth >> (8 * i)))
	}
	for _, v := range subs {
		w.u32(v)
	}
}

// sidBytes is a SID in its binary (NT4SID) form.
func sidBytes(s string) []byte {
	rev, auth, subs := parseSID(s)
	b := []byte{rev, byte(len(subs))}
	for i := 5; i >= 0; i-- {
		b = append(b, byte(auth>>(8*i)))
	}
	for _, v := range subs {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

// parseSID reads S-1-5-21-... (the SIDs here are constants of the sample).
func parseSID(s string) (rev uint8, auth uint64, subs []uint32) {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || parts[0] != "S" {
		panic(fmt.Sprintf("demogen: bad sid %q", s))
	}
	r, _ := strconv.ParseUint(parts[1], 10, 8)
	a, _ := strconv.ParseUint(parts[2], 10, 48)
	for _, p := range parts[3:] {
		v, _ := strconv.ParseUint(p, 10, 32)
		subs = append(subs, uint32(v))
	}
	return uint8(r), a, subs
}

// guid is a UUID in its wire form: the first three fields little-endian,
// as DCE/RPC PDUs and little-endian NDR carry it.
type guid [16]byte

func mustGUID(s string) guid {
	var u guid
	s = strings.Trim(s, "{}")
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		panic("demogen: bad uuid " + s)
	}
	var raw [16]byte
	for i := range raw {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			panic("demogen: bad uuid " + s)
		}
		raw[i] = byte(v)
	}
	u[0], u[1], u[2], u[3] = raw[3], raw[2], raw[1], raw[0]
	u[4], u[5] = raw[5], raw[4]
	u[6], u[7] = raw[7], raw[6]
	copy(u[8:], raw[8:])
	return u
}

func (u guid) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(u[0:]),
		binary.LittleEndian.Uint16(u[4:]), binary.LittleEndian.Uint16(u[6:]), u[8:10], u[10:16])
}

// ctxHandle is an RPC context handle: attributes then a UUID.
type ctxHandle [20]byte

func newHandle(r *rng) ctxHandle {
	var h ctxHandle
	r.fill(h[4:])
	return h
}
