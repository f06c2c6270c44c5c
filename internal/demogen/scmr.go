package demogen

// Service Control Manager Remote Protocol (MS-SCMR 3.1.4): the calls a
// PsExec-like tool makes over \pipe\svcctl. Each function returns the
// request and response stubs of one call.

var ifSvcctl = rpcIface{"svcctl", mustGUID("367abb81-9844-35f1-ad32-98f038001003"), 2, 0}

// svcctl opnums.
const (
	opCloseServiceHandle = 0
	opDeleteService      = 2
	opCreateServiceW     = 12
	opOpenSCManagerW     = 15
	opStartServiceW      = 19
)

// Service constants (MS-SCMR 2.2.15, 2.2.38).
const (
	scManagerAllAccess  = 0x000f003f
	serviceAllAccess    = 0x000f01ff
	serviceWin32Own     = 0x00000010
	serviceDemandStart  = 0x00000003
	serviceErrorIgnore  = 0x00000000
	errServiceTimeout   = 1053 // ERROR_SERVICE_REQUEST_TIMEOUT: the binary is no service
	errServiceNoProblem = 0
)

// ROpenSCManagerW (opnum 15).
func scmOpenSCManager(machine string, h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.wstringPtr(machine)
	w.wstringPtr("ServicesActive")
	w.u32(scManagerAllAccess)
	v := ndrWriter{refID: replyRefs}
	v.handle(h)
	v.u32(0)
	return w.b, v.b
}

// RCreateServiceW (opnum 12): a demand-start own-process service running
// binPath as LocalSystem.
func scmCreateService(scm ctxHandle, name, display, binPath string, h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(scm)
	w.wstring(name)
	w.wstringPtr(display)
	w.u32(serviceAllAccess)
	w.u32(serviceWin32Own)
	w.u32(serviceDemandStart)
	w.u32(serviceErrorIgnore)
	w.wstring(binPath)
	w.ptr(false) // lpLoadOrderGroup
	w.ptr(false) // lpdwTagId
	w.ptr(false) // lpDependencies
	w.u32(0)     // dwDependSize
	w.ptr(false) // lpServiceStartName: LocalSystem
	w.ptr(false) // lpPassword
	w.u32(0)     // dwPwSize
	v := ndrWriter{refID: replyRefs}
	v.ptr(false) // lpdwTagId
	v.handle(h)
	v.u32(0)
	return w.b, v.b
}

// RStartServiceW (opnum 19) without arguments; status is what the SCM
// answers (1053 when the binary never reports to it).
func scmStartService(h ctxHandle, status uint32) (req, resp []byte) {
	var w ndrWriter
	w.handle(h)
	w.u32(0)     // argc
	w.ptr(false) // argv
	v := ndrWriter{refID: replyRefs}
	v.u32(status)
	return w.b, v.b
}

// RDeleteService (opnum 2).
func scmDeleteService(h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(h)
	v := ndrWriter{refID: replyRefs}
	v.u32(0)
	return w.b, v.b
}

// RCloseServiceHandle (opnum 0): the handle comes back zeroed.
func scmCloseHandle(h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(h)
	v := ndrWriter{refID: replyRefs}
	v.handle(ctxHandle{})
	v.u32(0)
	return w.b, v.b
}
