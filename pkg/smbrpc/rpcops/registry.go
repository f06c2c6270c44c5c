package rpcops

import (
	"fmt"
	"strings"
	"sync"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// iface describes one RPC interface: its short name, the operation names
// in opnum order, and what is known about each decoded operation.
type iface struct {
	name  string
	uuid  [16]byte
	names []string // opnum -> name; "" for unassigned opnums
	ops   map[uint16]op
	// orpc marks a DCOM interface: request stubs begin with ORPCTHIS and
	// response stubs with ORPCTHAT (MS-DCOM 2.2.13).
	orpc bool
	// pipes are the SMB named pipes this interface is reached over, for
	// GuessInterface.
	pipes []string
}

// op is what rpcops knows about one operation beyond its name.
type op struct {
	req, resp func(x *dc)
	technique string
	phase     string
	noise     bool
	// handle: the request's first argument is a context handle.
	handle bool
	// opens: the response's first value is a new context handle of this kind
	// (unless resp sets one itself).
	opens string
	// closes: the request's handle is released.
	closes bool
	// probe reads the arguments of an operation that has no request
	// decoder, for GuessInterface (after ORPCTHIS and the handle).
	probe func(r *ndr.Reader)
}

var (
	registry map[[16]byte]*iface
	regOnce  sync.Once
	// builders are the per-interface files' register functions, which
	// their init functions add (cheaply: the tables are built by reg).
	builders []func()
)

// reg is the registry, built on first use rather than at start-up: every
// nwhealth command links this package, and building it costs half a
// millisecond that only replay needs.
func reg() map[[16]byte]*iface {
	regOnce.Do(buildRegistry)
	return registry
}

func buildRegistry() {
	registry = map[[16]byte]*iface{}
	for _, f := range builders {
		f()
	}
}

// register adds an interface; called by the per-interface files' register
// functions while reg builds the registry.
func register(i *iface) *iface {
	if _, dup := registry[i.uuid]; dup {
		panic("rpcops: interface registered twice: " + i.name)
	}
	if i.ops == nil {
		i.ops = map[uint16]op{}
	}
	registry[i.uuid] = i
	return i
}

// InterfaceName returns the short name of an interface given its wire-form
// UUID, or "" when unknown.
func InterfaceName(uuid [16]byte) string {
	if i := reg()[uuid]; i != nil {
		return i.name
	}
	return ""
}

// OpName names an operation of an interface, "opnum N" when the interface
// or the opnum is unknown.
func OpName(uuid [16]byte, opnum uint16) string {
	if i := reg()[uuid]; i != nil && int(opnum) < len(i.names) && i.names[opnum] != "" {
		return i.names[opnum]
	}
	return fmt.Sprintf("opnum %d", opnum)
}

// InterfaceUUID returns the wire-form UUID of a registered interface by its
// short name (case-insensitive).
func InterfaceUUID(name string) ([16]byte, bool) {
	for u, i := range reg() {
		if strings.EqualFold(i.name, name) {
			return u, true
		}
	}
	return [16]byte{}, false
}

// dcomNames prefixes the three IUnknown opnums every DCOM interface has
// (never called over the wire: IRemUnknown stands in for them).
func dcomNames(names ...string) []string {
	return append([]string{"QueryInterface", "AddRef", "Release"}, names...)
}
