package rpcops

// Shared holds what one connection of a capture reveals that the others
// need, so the pipeline shares one between all its Sessions:
//
//   - DCOM IPIDs: the activation on port 135 (or a RemQueryInterface, a
//     class factory, an IDispatch result) returns the IPIDs that later calls
//     on another TCP connection use as their object UUID; each is tied to
//     the class activated and the interface it points to.
//   - Names: domain and account SIDs and RIDs learnt from LSA and SAMR
//     lookups and enumerations, IDispatch member names by DISPID, WMI
//     namespaces by IWbemServices IPID.
//
// It is bounded; it is not safe for concurrent use.
type Shared struct {
	objects map[[16]byte]objectInfo
	names   map[string]string
}

type objectInfo struct {
	class [16]byte // activated class; zero when unknown
	iid   [16]byte // interface the IPID points to
}

const (
	maxObjects = 16384
	maxNames   = 16384
)

// NewShared returns an empty table.
func NewShared() *Shared {
	return &Shared{objects: map[[16]byte]objectInfo{}, names: map[string]string{}}
}

func (o *Shared) add(ipid, class, iid [16]byte) {
	if ipid == ([16]byte{}) {
		return
	}
	if len(o.objects) >= maxObjects {
		clear(o.objects)
	}
	o.objects[ipid] = objectInfo{class, iid}
}

// class returns the class activated for an IPID, when known.
func (o *Shared) class(ipid [16]byte) ([16]byte, bool) {
	info, ok := o.objects[ipid]
	return info.class, ok && info.class != [16]byte{}
}

// Object returns the class and interface of an IPID learnt from
// activations, RemQueryInterface answers and returned interface pointers.
func (o *Shared) Object(ipid [16]byte) (class, iid [16]byte, ok bool) {
	info, ok := o.objects[ipid]
	return info.class, info.iid, ok
}

func (o *Shared) learn(key, name string) {
	if name == "" {
		return
	}
	if len(o.names) >= maxNames {
		clear(o.names)
	}
	o.names[key] = name
}
