package rpcops

// Objects maps DCOM IPIDs to what they point to. It is bounded; it is not
// safe for concurrent use.
type Objects struct {
	m map[[16]byte]objectInfo
}

type objectInfo struct {
	class [16]byte // activated class; zero when unknown
	iid   [16]byte // interface the IPID points to
}

const maxObjects = 16384

// NewObjects returns an empty table.
func NewObjects() *Objects { return &Objects{m: map[[16]byte]objectInfo{}} }

func (o *Objects) add(ipid, class, iid [16]byte) {
	if o == nil || ipid == ([16]byte{}) {
		return
	}
	if len(o.m) >= maxObjects {
		clear(o.m)
	}
	o.m[ipid] = objectInfo{class, iid}
}

// class returns the class activated for an IPID, when known.
func (o *Objects) class(ipid [16]byte) ([16]byte, bool) {
	if o == nil {
		return [16]byte{}, false
	}
	info, ok := o.m[ipid]
	return info.class, ok && info.class != [16]byte{}
}

// Lookup returns the class and interface of an IPID learnt from
// activations and RemQueryInterface answers.
func (o *Objects) Lookup(ipid [16]byte) (class, iid [16]byte, ok bool) {
	if o == nil {
		return
	}
	info, ok := o.m[ipid]
	return info.class, info.iid, ok
}
