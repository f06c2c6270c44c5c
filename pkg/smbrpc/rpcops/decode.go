package rpcops

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// Decode decodes one call without any connection state. It never panics:
// damaged or short stubs give partial results.
func Decode(c Call) Decoded {
	var s Session
	return s.Decode(c)
}

// Session holds what one DCE/RPC association has revealed so far, so that
// calls on a context handle can name what the handle was opened on: the
// SCM machine and service names, registry key paths, SAMR domains, users
// and groups, LSA policy and secret handles, event logs. The zero value is
// ready to use. It is not safe for concurrent use. Its memory is bounded
// (maxHandles, and those of Shared).
type Session struct {
	handles map[Handle]handleInfo

	// Shared is what the connections of one capture learn for each other
	// (DCOM objects, account names): give every Session of a capture the
	// same one. Nil: the Session keeps its own.
	Shared *Shared
}

// Handle is an RPC context handle (MS-RPCE 2.2.4.6 / policy_handle): 4 bytes
// of attributes then a 16-byte UUID.
type Handle [20]byte

// IsZero reports an all-zero (closed or null) handle.
func (h Handle) IsZero() bool { return h == Handle{} }

// handleInfo is what a handle was opened on.
type handleInfo struct {
	kind string // "scm", "service", "key", "policy", "server", "domain", "user", "group", "alias", "secret", "eventlog", ...
	name string // service name, full key path, domain name...
	sid  string // SAMR domain SID (domain handles) or account SID
	// For SAMR handles: the domain the object belongs to.
	domName, domSID string
}

const maxHandles = 4096

func (s *Session) remember(h Handle, hi handleInfo) {
	if h.IsZero() {
		return
	}
	if s.handles == nil {
		s.handles = map[Handle]handleInfo{}
	}
	if len(s.handles) >= maxHandles {
		// A client that never closes its handles: forget an arbitrary
		// half rather than grow without bound.
		n := 0
		for k := range s.handles {
			delete(s.handles, k)
			if n++; n >= maxHandles/2 {
				break
			}
		}
	}
	s.handles[h] = hi
}

func (s *Session) learn(key, name string) { s.shared().learn(key, name) }

func (s *Session) lookup(key string) string { return s.shared().names[key] }

func (s *Session) shared() *Shared {
	if s.Shared == nil {
		s.Shared = NewShared()
	}
	return s.Shared
}

// Decode decodes one call and updates the session: handles the response
// returns are remembered with what they were opened on, handles the call
// closes are forgotten.
func (s *Session) Decode(c Call) (d Decoded) {
	defer func() {
		// The decoders are fuzzed not to panic; this is the contract's
		// last line of defence, keeping what was decoded so far.
		if p := recover(); p != nil {
			d.Fields = append(d.Fields, Field{"decode error", fmt.Sprint("internal: ", p)})
		}
	}()
	s.decodeState(c, &d)
	return d
}

// dc is the state of decoding one call.
type dc struct {
	s  *Session
	c  Call
	d  *Decoded
	r  *ndr.Reader
	op op

	// The handle the request acts on, and what it was opened on.
	h     Handle
	hInfo handleInfo
	hOK   bool

	// The handle the response returns and what it will refer to.
	newH    Handle
	newInfo handleInfo
	newOK   bool

	// Facts the request decoder leaves for the response decoder.
	reqName     string
	reqNames    []string
	reqRIDs     []uint32
	reqLevel    uint32
	reqClass    [16]byte
	reqHasClass bool
	reqObject   [16]byte
	reqIIDs     [][16]byte
}

func (s *Session) decodeState(c Call, d *Decoded) *dc {
	var zero [16]byte
	objClass, objKnown := s.shared().class(c.Object)
	if reg()[c.Interface] == nil && c.Object != zero {
		// A call on a DCOM object whose bind was not captured: the IPID
		// says which interface it is.
		if _, iid, ok := s.Shared.Object(c.Object); ok && reg()[iid] != nil {
			c.Interface = iid
		}
	}
	i := reg()[c.Interface]
	d.Operation = OpName(c.Interface, c.Opnum)
	if i == nil {
		d.Interface = WellKnownName(c.Interface)
		if d.Interface == "" {
			d.Interface = UUIDString(c.Interface)
		}
	} else {
		d.Interface = i.name
	}
	if len(c.Response) >= 4 {
		d.Status = statusOf(c.Response, c.BigEndian)
	}
	if i == nil {
		return nil
	}
	o := i.ops[c.Opnum]
	d.Technique, d.Phase, d.Noise = o.technique, o.phase, o.noise
	x := &dc{s: s, c: c, d: d, op: o}

	if c.Request != nil {
		x.r = newReader(c, c.Request)
		if i.orpc {
			orpcThis(x.r)
		}
		if o.handle {
			x.h = readHandle(x.r)
			x.hInfo, x.hOK = s.handles[x.h]
			if x.hOK && x.hInfo.name != "" {
				d.Target = x.hInfo.name
			}
		}
		if o.req != nil {
			o.req(x)
		}
		x.warn("request", len(c.Request))
	}
	if c.Interface == wbemServicesUUID {
		wmiNamespace(x)
	}
	if objKnown && d.Target == "" {
		d.Target = ClassName(objClass)
		if d.Target == "" {
			d.Target = "{" + UUIDString(objClass) + "}"
		}
	}
	if len(c.Response) > 4 {
		x.r = newReader(c, c.Response)
		if i.orpc {
			orpcThat(x.r)
		}
		switch {
		case o.resp != nil:
			o.resp(x)
		case o.opens != "":
			x.returns(readHandle(x.r), handleInfo{kind: o.opens, name: d.Target})
		}
		if o.resp != nil || o.opens != "" {
			x.warn("response", len(c.Response))
		}
	}
	if x.newOK && d.Status == 0 && c.Response != nil {
		s.remember(x.newH, x.newInfo)
	}
	if o.closes && x.hOK && c.Response != nil && d.Status == 0 {
		delete(s.handles, x.h)
	}
	return x
}

// warn records a decoding failure as a field, so a partial result says so.
func (x *dc) warn(which string, n int) {
	if err := x.r.Err(); err != nil {
		x.add("decode error", fmt.Sprintf("%s (%d bytes): %v", which, n, err))
	}
}

// maxField bounds a field's value (the command keeps its full text).
const maxField = 4096

// add appends a field unless its value is empty.
func (x *dc) add(name, value string) {
	if value == "" {
		return
	}
	x.d.Fields = append(x.d.Fields, Field{name, truncate(value, maxField)})
}

// returns records the handle a response returns.
func (x *dc) returns(h Handle, hi handleInfo) {
	x.newH, x.newInfo, x.newOK = h, hi, true
}

func newReader(c Call, stub []byte) *ndr.Reader {
	r := ndr.NewReader(stub, c.BigEndian)
	r.SetNDR64(c.NDR64)
	return r
}

// readHandle reads a context handle (aligned 4).
func readHandle(r *ndr.Reader) (h Handle) {
	r.Align(4)
	copy(h[:], r.Bytes(20))
	return h
}

// statusOf is the return value of a call: the last four bytes of the
// response stub (every operation here returns a DWORD, NTSTATUS, HRESULT or
// error_status_t after its out parameters).
func statusOf(resp []byte, big bool) uint32 {
	t := resp[len(resp)-4:]
	if big {
		return binary.BigEndian.Uint32(t)
	}
	return binary.LittleEndian.Uint32(t)
}

// wstr reads a top-level [string, unique] wchar_t* parameter.
func wstrPtr(r *ndr.Reader) (s string) {
	if r.Ptr() {
		s = r.WString()
	}
	return s
}

// hex32 renders a flags or access value.
func hex32(v uint32) string { return fmt.Sprintf("0x%08x", v) }

// flagNames renders the set bits of v with names, unknown bits in hex.
func flagNames(v uint32, names []flagName) string {
	if v == 0 {
		return "0"
	}
	var parts []string
	for _, f := range names {
		if f.bit != 0 && v&f.bit == f.bit {
			parts = append(parts, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		parts = append(parts, hex32(v))
	}
	return strings.Join(parts, "|")
}

type flagName struct {
	bit  uint32
	name string
}

// lazyTable is a table of names built on first use: a map literal at
// package level is built when any nwhealth command starts, replay or not.
type lazyTable[K comparable, V any] struct {
	once  sync.Once
	m     map[K]V
	build func() map[K]V
}

func (t *lazyTable[K, V]) get() map[K]V {
	t.once.Do(func() { t.m = t.build() })
	return t.m
}

// enumName renders an enumerated value with its name when known.
func enumName(v uint32, names map[uint32]string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprint(v)
}

// truncate bounds a value shown in a field.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes)", len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// hexTrunc renders binary data as hex, at most n bytes.
func hexTrunc(b []byte, n int) string {
	if len(b) <= n {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x… (%d bytes)", b[:n], len(b))
}
