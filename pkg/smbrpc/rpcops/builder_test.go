package rpcops

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf16"
)

// mustHex decodes a recorded stub written as hex.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sb builds NDR stubs for hand-made fixtures, in NDR or NDR64. The test
// writes values in wire order, deferred referents included, as the
// comments of each fixture say.
type sb struct {
	b     []byte
	ndr64 bool
	big   bool // big-endian data representation
	refid uint32
}

func (s *sb) order() binary.AppendByteOrder {
	if s.big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func newSB(ndr64 bool) *sb { return &sb{ndr64: ndr64, refid: 0x20000} }

func (s *sb) bytes() []byte { return append([]byte(nil), s.b...) }

func (s *sb) align(n int) *sb {
	for len(s.b)%n != 0 {
		s.b = append(s.b, 0)
	}
	return s
}
func (s *sb) alignP() *sb { return s.align(s.ptrSize()) }
func (s *sb) ptrSize() int {
	if s.ndr64 {
		return 8
	}
	return 4
}
func (s *sb) u8(v uint8) *sb   { s.b = append(s.b, v); return s }
func (s *sb) u16(v uint16) *sb { s.align(2); s.b = s.order().AppendUint16(s.b, v); return s }
func (s *sb) u32(v uint32) *sb { s.align(4); s.b = s.order().AppendUint32(s.b, v); return s }
func (s *sb) u64(v uint64) *sb { s.align(8); s.b = s.order().AppendUint64(s.b, v); return s }
func (s *sb) raw(b []byte) *sb { s.b = append(s.b, b...); return s }
func (s *sb) zeros(n int) *sb  { s.b = append(s.b, make([]byte, n)...); return s }

// enum writes an NDR enum (16 bits, 32 in NDR64).
func (s *sb) enum(v uint32) *sb {
	if s.ndr64 {
		return s.u32(v)
	}
	return s.u16(uint16(v))
}

// size writes a conformance, offset or count.
func (s *sb) size(v int) *sb {
	if s.ndr64 {
		return s.u64(uint64(v))
	}
	return s.u32(uint32(v))
}

// ptr writes a non-null referent ID; null a null pointer.
func (s *sb) ptr() *sb {
	s.refid += 4
	return s.size(int(s.refid))
}
func (s *sb) null() *sb { return s.size(0) }

func (s *sb) uuid(text string) *sb {
	u := mustUUID(text)
	s.align(4)
	s.b = append(s.b, u[:]...)
	return s
}

func (s *sb) handle(h Handle) *sb {
	s.align(4)
	s.b = append(s.b, h[:]...)
	return s
}

// wstr writes a conformant varying UTF-16 string with its NUL ([string]
// wchar_t* referent).
func (s *sb) wstr(v string) *sb {
	u := append(utf16.Encode([]rune(v)), 0)
	s.size(len(u)).size(0).size(len(u))
	for _, c := range u {
		s.u16(c)
	}
	return s
}

// wstrp writes a top-level [string, unique] wchar_t*.
func (s *sb) wstrp(v string) *sb { return s.ptr().wstr(v) }

// astr writes a conformant varying 8-bit string with its NUL.
func (s *sb) astr(v string) *sb {
	s.size(len(v) + 1).size(0).size(len(v) + 1)
	s.b = append(s.b, v...)
	s.b = append(s.b, 0)
	return s
}

// ustrHdr writes the scalars of an RPC_UNICODE_STRING (referent deferred).
func (s *sb) ustrHdr(v string) *sb {
	n := 2 * len(utf16.Encode([]rune(v)))
	s.alignP().u16(uint16(n)).u16(uint16(n))
	if v == "" {
		return s.null()
	}
	return s.ptr()
}

// ustrBody writes the deferred buffer of an RPC_UNICODE_STRING (no NUL).
func (s *sb) ustrBody(v string) *sb {
	if v == "" {
		return s
	}
	u := utf16.Encode([]rune(v))
	s.size(len(u)).size(0).size(len(u))
	for _, c := range u {
		s.u16(c)
	}
	return s
}

// ustr writes a top-level RPC_UNICODE_STRING with its buffer.
func (s *sb) ustr(v string) *sb { return s.ustrHdr(v).ustrBody(v) }

// sid writes an RPC_SID referent (conformance first).
func (s *sb) sid(text string) *sb {
	parts := strings.Split(text, "-")[1:] // S-1-5-21-...
	subs := parts[2:]
	s.size(len(subs))
	s.u8(1).u8(uint8(len(subs)))
	var auth uint64
	for _, c := range parts[1] {
		auth = auth*10 + uint64(c-'0')
	}
	for i := 5; i >= 0; i-- {
		s.u8(uint8(auth >> (8 * i)))
	}
	for _, p := range subs {
		var v uint64
		for _, c := range p {
			v = v*10 + uint64(c-'0')
		}
		s.u32(uint32(v))
	}
	return s
}

// orpcThis writes an ORPCTHIS without extensions; orpcThat an ORPCTHAT.
func (s *sb) orpcThis() *sb {
	return s.alignP().u16(5).u16(7).u32(0).u32(0).uuid("11111111-2222-3333-4444-555555555555").null()
}
func (s *sb) orpcThat() *sb { return s.alignP().u32(0).null() }

// bstr writes a top-level BSTR (unique pointer to a FLAGGED_WORD_BLOB).
func (s *sb) bstr(v string) *sb {
	u := utf16.Encode([]rune(v))
	s.ptr().size(len(u)).u32(uint32(2 * len(u))).u32(uint32(len(u)))
	for _, c := range u {
		s.u16(c)
	}
	return s
}

// status appends a return value.
func (s *sb) status(v uint32) *sb { return s.u32(v) }

func h(b byte) (x Handle) {
	for i := 4; i < 20; i++ {
		x[i] = b
	}
	return x
}

// want is what a fixture must decode to; empty strings are not checked,
// except Technique and Phase, which are always compared.
type want struct {
	iface, op, target, command string
	technique, phase           string
	noise                      bool
	fields                     map[string]string // each must be present with this value
}

func check(t *testing.T, d Decoded, w want) {
	t.Helper()
	if w.iface != "" && d.Interface != w.iface {
		t.Errorf("interface %q, want %q", d.Interface, w.iface)
	}
	if w.op != "" && d.Operation != w.op {
		t.Errorf("operation %q, want %q", d.Operation, w.op)
	}
	if w.target != "" && d.Target != w.target {
		t.Errorf("target %q, want %q", d.Target, w.target)
	}
	if w.command != "" && d.Command != w.command {
		t.Errorf("command %q, want %q", d.Command, w.command)
	}
	if d.Technique != w.technique || d.Phase != w.phase {
		t.Errorf("technique/phase %q/%q, want %q/%q", d.Technique, d.Phase, w.technique, w.phase)
	}
	if d.Noise != w.noise {
		t.Errorf("noise %v, want %v", d.Noise, w.noise)
	}
	got := map[string][]string{}
	for _, f := range d.Fields {
		got[f.Name] = append(got[f.Name], f.Value)
		if f.Name == "decode error" {
			t.Errorf("decode error: %s", f.Value)
		}
	}
	for k, v := range w.fields {
		found := false
		for _, g := range got[k] {
			found = found || g == v
		}
		if !found {
			t.Errorf("field %q = %q missing; have %q", k, v, got[k])
		}
	}
	if t.Failed() {
		t.Logf("decoded: %+v", d)
	}
}
