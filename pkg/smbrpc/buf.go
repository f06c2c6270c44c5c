package smbrpc

import (
	"encoding/binary"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrShort is the sticky error of a reader that ran past its input.
var ErrShort = errors.New("smbrpc: message truncated")

// rd reads little-endian fields from a byte slice. A read past the end sets
// err and returns zero values, so decoders check once at the end, as
// Prometheus' encoding.Decbuf does.
type rd struct {
	b   []byte
	off int
	err error
}

func (r *rd) left() int {
	if r.off >= len(r.b) {
		return 0
	}
	return len(r.b) - r.off
}

func (r *rd) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || r.left() < n {
		r.err = ErrShort
		return false
	}
	return true
}

func (r *rd) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *rd) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *rd) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *rd) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *rd) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *rd) skip(n int) {
	if r.need(n) {
		r.off += n
	}
}

// span returns b[off:off+n] when it lies inside b, else nil and false.
func span(b []byte, off, n int) ([]byte, bool) {
	if off < 0 || n < 0 || off > len(b) || n > len(b)-off {
		return nil, false
	}
	return b[off : off+n : off+n], true
}

// UTF16 decodes little-endian UTF-16 text, dropping a trailing NUL and an odd
// final byte. Invalid surrogates become U+FFFD, as Windows tools show them.
func UTF16(b []byte) string {
	n := len(b) / 2
	if n == 0 {
		return ""
	}
	// Fast path for ASCII, the common case for names and paths.
	ascii := true
	for i := 0; i < n; i++ {
		if b[2*i+1] != 0 || b[2*i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		out := make([]byte, 0, n)
		for i := 0; i < n; i++ {
			if b[2*i] == 0 {
				break
			}
			out = append(out, b[2*i])
		}
		return string(out)
	}
	u := make([]uint16, 0, n)
	for i := 0; i < n; i++ {
		c := binary.LittleEndian.Uint16(b[2*i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// OEM decodes single-byte text up to the first NUL; bytes that are not valid
// UTF-8 are kept as Latin-1 so nothing is lost.
func OEM(b []byte) string {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}
