package rpcops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// MS-WMIO: the encoding of a CIM class or instance that IWbemServices
// calls carry as IWbemClassObject pointers (OBJREF_CUSTOM of class
// WbemClassObject). Enough is decoded to name the class and read the
// property values of an instance: the CommandLine of Win32_Process.Create
// in-parameters, the Query of an __EventFilter, the CommandLineTemplate or
// ScriptText of an event consumer. All integers are little-endian.

var errWMIO = errors.New("wmio: malformed object")

const wmioSignature = 0x12345678

// wmiObject is a decoded CIM object.
type wmiObject struct {
	class    string
	super    string
	instance bool
	props    []wmiProp
}

type wmiProp struct {
	name  string
	typ   uint32
	value string // "" when null
	set   bool
}

// prop returns a property's value.
func (o *wmiObject) prop(name string) string {
	for _, p := range o.props {
		if strings.EqualFold(p.name, name) {
			return p.value
		}
	}
	return ""
}

// wmioDictionary is the MS-WMIO 2.2.69 dictionary of well-known strings.
var wmioDictionary = []string{`"`, "key", "NADA", "read", "write", "volatile", "provider", "dynamic", "cimwin32", "DWORD", "CIMTYPE"}

// heapString reads the EncodedString a heap reference points to.
func heapString(heap []byte, ref uint32) (string, bool) {
	if ref&0x80000000 != 0 {
		i := int(ref & 0x7fffffff)
		if i < len(wmioDictionary) {
			return wmioDictionary[i], true
		}
		return "", false
	}
	if int64(ref) >= int64(len(heap)) {
		return "", false
	}
	s, _, ok := encodedString(heap[ref:])
	return s, ok
}

// encodedString decodes an EncodedString (flag 0: 8-bit characters, 1:
// UTF-16LE; NUL-terminated) and returns it with its encoded length.
func encodedString(b []byte) (string, int, bool) {
	if len(b) < 1 {
		return "", 0, false
	}
	switch b[0] {
	case 0:
		for i := 1; i < len(b); i++ {
			if b[i] == 0 {
				rs := make([]rune, 0, i-1)
				for _, c := range b[1:i] {
					rs = append(rs, rune(c))
				}
				return string(rs), i + 1, true
			}
		}
	case 1:
		var u []uint16
		for i := 1; i+1 < len(b); i += 2 {
			c := binary.LittleEndian.Uint16(b[i:])
			if c == 0 {
				return string(utf16.Decode(u)), i + 2, true
			}
			u = append(u, c)
		}
	}
	return "", 0, false
}

// CIM types (MS-WMIO 2.2.31).
const (
	cimSint16   = 2
	cimSint32   = 3
	cimReal32   = 4
	cimReal64   = 5
	cimString   = 8
	cimBoolean  = 11
	cimObject   = 13
	cimSint8    = 16
	cimUint8    = 17
	cimUint16   = 18
	cimUint32   = 19
	cimSint64   = 20
	cimUint64   = 21
	cimDatetime = 101
	cimRef      = 102
	cimChar16   = 103
	cimArray    = 0x2000
	cimInherit  = 0x4000
)

func cimSize(t uint32) int {
	if t&cimArray != 0 {
		return 4
	}
	switch t &^ cimInherit {
	case cimSint8, cimUint8:
		return 1
	case cimSint16, cimUint16, cimChar16, cimBoolean:
		return 2
	case cimSint64, cimUint64, cimReal64:
		return 8
	}
	return 4
}

// classPart is a parsed ClassPart (MS-WMIO 2.2.15).
type classPart struct {
	name     string
	super    string
	props    []classProp
	ndvt     []byte // NdTable then ValueTable (class defaults)
	heap     []byte
	length   int
	ndLength int
}

type classProp struct {
	name   string
	typ    uint32
	order  uint16
	offset uint32
}

func parseClassPart(b []byte) (c classPart, err error) {
	le := binary.LittleEndian
	if len(b) < 13 {
		return c, errWMIO
	}
	c.length = int(le.Uint32(b))
	if c.length < 13 || c.length > len(b) {
		return c, errWMIO
	}
	b = b[:c.length]
	nameRef := le.Uint32(b[5:])
	ndvtLen := int(le.Uint32(b[9:]))
	p := 13
	// DerivationList: EncodingLength (itself included), then the superclass
	// names, nearest first.
	if p+4 > len(b) {
		return c, errWMIO
	}
	dl := int(le.Uint32(b[p:]))
	if dl < 4 || p+dl > len(b) {
		return c, errWMIO
	}
	if s, _, ok := encodedString(b[p+4 : p+dl]); ok {
		c.super = s
	}
	p += dl
	// ClassQualifierSet
	if p+4 > len(b) {
		return c, errWMIO
	}
	ql := int(le.Uint32(b[p:]))
	if ql < 4 || p+ql > len(b) {
		return c, errWMIO
	}
	p += ql
	// PropertyLookupTable
	if p+4 > len(b) {
		return c, errWMIO
	}
	count := int(le.Uint32(b[p:]))
	p += 4
	if count < 0 || count > (len(b)-p)/8 {
		return c, errWMIO
	}
	lookups := b[p : p+8*count]
	p += 8 * count
	if ndvtLen < 0 || p+ndvtLen > len(b) {
		return c, errWMIO
	}
	c.ndvt = b[p : p+ndvtLen]
	p += ndvtLen
	if p+4 > len(b) {
		return c, errWMIO
	}
	hl := int(le.Uint32(b[p:]) & 0x7fffffff)
	p += 4
	if hl > len(b)-p {
		hl = len(b) - p
	}
	c.heap = b[p : p+hl]
	c.name, _ = heapString(c.heap, nameRef)
	if count > 0 {
		c.ndLength = (count-1)/4 + 1
	}
	for i := 0; i < count; i++ {
		nref := le.Uint32(lookups[8*i:])
		iref := le.Uint32(lookups[8*i+4:])
		name, ok := heapString(c.heap, nref)
		if !ok || int64(iref)+10 > int64(len(c.heap)) {
			return c, errWMIO
		}
		info := c.heap[iref:]
		c.props = append(c.props, classProp{name: name, typ: le.Uint32(info),
			order: le.Uint16(info[4:]), offset: le.Uint32(info[6:])})
	}
	return c, nil
}

// value renders the value of property p from a NdTable+ValueTable and its
// heap; ok is false when the value is null.
func (c *classPart) value(p classProp, ndvt, heap []byte) (string, bool) {
	le := binary.LittleEndian
	if int(p.order)/4 < c.ndLength && int(p.order)/4 < len(ndvt) {
		nd := ndvt[p.order/4] >> (2 * (p.order % 4)) & 3
		if nd&1 != 0 {
			return "", false
		}
	}
	vt := ndvt[min(c.ndLength, len(ndvt)):]
	size := cimSize(p.typ)
	if int64(p.offset)+int64(size) > int64(len(vt)) {
		return "", false
	}
	v := vt[p.offset:]
	t := p.typ &^ cimInherit
	if t&cimArray != 0 {
		return wmioArray(t&^cimArray, le.Uint32(v), heap)
	}
	switch t {
	case cimString, cimDatetime, cimRef:
		ref := le.Uint32(v)
		if ref == 0xffffffff {
			return "", false
		}
		return heapString(heap, ref)
	case cimObject:
		ref := le.Uint32(v)
		if ref == 0xffffffff || ref == 0 {
			return "", false
		}
		return "(object)", true
	case cimBoolean:
		return fmt.Sprint(le.Uint16(v) != 0), true
	case cimSint8:
		return fmt.Sprint(int8(v[0])), true
	case cimUint8:
		return fmt.Sprint(v[0]), true
	case cimSint16:
		return fmt.Sprint(int16(le.Uint16(v))), true
	case cimUint16, cimChar16:
		return fmt.Sprint(le.Uint16(v)), true
	case cimSint32:
		return fmt.Sprint(int32(le.Uint32(v))), true
	case cimUint32:
		return fmt.Sprint(le.Uint32(v)), true
	case cimSint64:
		return fmt.Sprint(int64(le.Uint64(v))), true
	case cimUint64:
		return fmt.Sprint(le.Uint64(v)), true
	}
	return fmt.Sprintf("(cim type %d)", t), true
}

// wmioArray renders a string array (count, references, strings) or the
// size of another array.
func wmioArray(t uint32, ref uint32, heap []byte) (string, bool) {
	le := binary.LittleEndian
	if ref == 0xffffffff || int64(ref)+4 > int64(len(heap)) {
		return "", false
	}
	n := int(le.Uint32(heap[ref:]))
	if t != cimString {
		return fmt.Sprintf("(array of %d)", n), true
	}
	if n > (len(heap)-int(ref)-4)/4 {
		return "", false
	}
	var parts []string
	for i := 0; i < n && i < maxListed; i++ {
		s, ok := heapString(heap, le.Uint32(heap[int(ref)+4+4*i:]))
		if ok {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; "), true
}

// parseWMIObject decodes an EncodingUnit (the data of an OBJREF_CUSTOM of
// class WbemClassObject).
func parseWMIObject(b []byte) (*wmiObject, error) {
	le := binary.LittleEndian
	if len(b) < 9 || le.Uint32(b) != wmioSignature {
		return nil, errWMIO
	}
	n := int(le.Uint32(b[4:]))
	b = b[8:]
	if n < len(b) {
		b = b[:n]
	}
	if len(b) == 0 {
		return nil, errWMIO
	}
	flags := b[0]
	p := 1
	if flags&0x04 != 0 { // Decoration: server and namespace
		for i := 0; i < 2; i++ {
			_, l, ok := encodedString(b[p:])
			if !ok {
				return nil, errWMIO
			}
			p += l
		}
	}
	o := &wmiObject{instance: flags&0x01 == 0}
	if !o.instance {
		// ParentClass then CurrentClass, each a ClassPart and a MethodsPart.
		for i := 0; i < 2; i++ {
			c, err := parseClassPart(b[p:])
			if err != nil {
				return nil, err
			}
			p += c.length
			if p+4 > len(b) {
				return nil, errWMIO
			}
			ml := int(le.Uint32(b[p:])) // MethodsPart EncodingLength
			if ml < 4 || ml > len(b)-p {
				return nil, errWMIO
			}
			p += ml
			if i == 1 {
				o.class, o.super = c.name, c.super
				for _, cp := range c.props {
					v, ok := c.value(cp, c.ndvt, c.heap)
					o.props = append(o.props, wmiProp{name: cp.name, typ: cp.typ, value: v, set: ok})
				}
			}
		}
		return o, nil
	}
	c, err := parseClassPart(b[p:])
	if err != nil {
		return nil, err
	}
	p += c.length
	o.class, o.super = c.name, c.super
	// The instance part: EncodingLength, InstanceFlags, InstanceClassName,
	// NdTable+InstanceData, InstanceQualifierSet, then the InstanceHeap,
	// which runs to the end.
	if p+9 > len(b) {
		return nil, errWMIO
	}
	end := p + int(le.Uint32(b[p:]))
	if end > len(b) || end < p+9 {
		end = len(b)
	}
	q := p + 9
	ndvt := len(c.ndvt)
	if q+ndvt+4 > end {
		return nil, errWMIO
	}
	data := b[q : q+ndvt]
	q += ndvt
	ql := int(le.Uint32(b[q:]))
	if ql < 4 || q+ql > end {
		return nil, errWMIO
	}
	q += ql
	heap, ok := findHeap(b[:end], q)
	if !ok {
		return nil, errWMIO
	}
	if name, ok := heapString(heap, le.Uint32(b[p+5:])); ok && name != "" {
		o.class = name
	}
	for _, cp := range c.props {
		v, set := c.value(cp, data, heap)
		if !set {
			// A default comes from the class.
			if nd := ndFlag(data, cp.order, c.ndLength); nd&2 != 0 {
				v, set = c.value(cp, c.ndvt, c.heap)
			}
		}
		o.props = append(o.props, wmiProp{name: cp.name, typ: cp.typ, value: v, set: set})
	}
	return o, nil
}

func ndFlag(ndvt []byte, order uint16, ndLength int) byte {
	if int(order)/4 >= ndLength || int(order)/4 >= len(ndvt) {
		return 0
	}
	return ndvt[order/4] >> (2 * (order % 4)) & 3
}

// findHeap locates the heap that ends the instance: after the qualifier
// set an InstancePropQualifierSet flag may precede it; the heap's length
// (with its top bit set) must reach the end exactly.
func findHeap(b []byte, from int) ([]byte, bool) {
	le := binary.LittleEndian
	for p := from; p+4 <= len(b) && p <= from+64; p++ {
		v := le.Uint32(b[p:])
		if v&0x80000000 != 0 && p+4+int(v&0x7fffffff) == len(b) {
			return b[p+4:], true
		}
	}
	return nil, false
}

// wmiStrings is the fallback when an object does not parse: the printable
// encoded strings it holds.
func wmiStrings(b []byte) []string {
	var out []string
	for i := 0; i < len(b) && len(out) < maxListed; i++ {
		if b[i] > 1 {
			continue
		}
		s, l, ok := encodedString(b[i:])
		if ok && len(s) >= 4 && printable(s) {
			out = append(out, s)
			i += l - 1
		}
	}
	return out
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xfffd {
			return false
		}
	}
	return true
}
