package rpcops

// ReturnedHandle returns the context handle that the response of a call
// opens (OpenSCManagerW, OpenServiceW, CreateServiceW, OpenKey, OpenPolicy2,
// OpenDomain...), for pipelines that track handles across calls themselves
// instead of using a Session.
func ReturnedHandle(c Call) (Handle, bool) {
	var s Session
	var d Decoded
	x := s.decodeForHandles(c, &d)
	if x == nil || !x.newOK || x.newH.IsZero() {
		return Handle{}, false
	}
	return x.newH, true
}

// UsedHandle returns the context handle a request acts on (the first
// argument of the handle-based operations).
func UsedHandle(c Call) (Handle, bool) {
	i := reg()[c.Interface]
	if i == nil || !i.ops[c.Opnum].handle || c.Request == nil {
		return Handle{}, false
	}
	r := newReader(c, c.Request)
	if i.orpc {
		orpcThis(r)
	}
	h := readHandle(r)
	if r.Err() != nil {
		return Handle{}, false
	}
	return h, true
}

// decodeForHandles runs the decoders and returns their state.
func (s *Session) decodeForHandles(c Call, d *Decoded) (x *dc) {
	defer func() {
		if recover() != nil {
			x = nil
		}
	}()
	return s.decodeState(c, d)
}
