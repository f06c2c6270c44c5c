package rpcops

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// svcctl: Service Control Manager Remote Protocol (MS-SCMR). Names are the
// spec's method names without their "R" prefix.
var svcctlUUID = mustUUID("367abb81-9844-35f1-ad32-98f038001003")

func init() { builders = append(builders, registerSvcctl) }

func registerSvcctl() {
	names := make([]string, 65)
	copy(names, []string{
		"CloseServiceHandle", "ControlService", "DeleteService", "LockServiceDatabase",
		"QueryServiceObjectSecurity", "SetServiceObjectSecurity", "QueryServiceStatus",
		"SetServiceStatus", "UnlockServiceDatabase", "NotifyBootConfigStatus", "",
		"ChangeServiceConfigW", "CreateServiceW", "EnumDependentServicesW", "EnumServicesStatusW",
		"OpenSCManagerW", "OpenServiceW", "QueryServiceConfigW", "QueryServiceLockStatusW",
		"StartServiceW", "GetServiceDisplayNameW", "GetServiceKeyNameW", "",
		"ChangeServiceConfigA", "CreateServiceA", "EnumDependentServicesA", "EnumServicesStatusA",
		"OpenSCManagerA", "OpenServiceA", "QueryServiceConfigA", "QueryServiceLockStatusA",
		"StartServiceA", "GetServiceDisplayNameA", "GetServiceKeyNameA", "",
		"EnumServiceGroupW", "ChangeServiceConfig2A", "ChangeServiceConfig2W",
		"QueryServiceConfig2A", "QueryServiceConfig2W", "QueryServiceStatusEx",
		"EnumServicesStatusExA", "EnumServicesStatusExW", "", "CreateServiceWOW64A",
		"CreateServiceWOW64W", "", "NotifyServiceStatusChange", "GetNotifyResults",
		"CloseNotifyHandle", "ControlServiceExA", "ControlServiceExW", "", "", "", "",
		"QueryServiceConfigEx", "", "", "", "CreateWowService",
	})
	names[64] = "OpenSCManager2"

	w, a := false, true // wide or ANSI strings
	create := func(ansi bool, wow bool) op {
		return op{handle: true, req: func(x *dc) { svcCreateService(x, ansi, wow) }, resp: svcCreateServiceResp,
			technique: "T1569.002", phase: PhaseExecution}
	}
	change := func(ansi bool) op {
		return op{handle: true, req: func(x *dc) { svcChangeConfig(x, ansi) }}
	}
	start := func(ansi bool) op {
		return op{handle: true, req: func(x *dc) { svcStartService(x, ansi) },
			technique: "T1569.002", phase: PhaseExecution}
	}
	openSCM := func(ansi bool) op {
		return op{req: func(x *dc) { svcOpenSCManager(x, ansi) }, opens: "scm"}
	}
	openSvc := func(ansi bool) op {
		return op{handle: true, req: func(x *dc) { svcOpenService(x, ansi) }, opens: "service"}
	}
	queryConfig := func(ansi bool) op {
		return op{handle: true, req: svcQueryConfigReq, resp: func(x *dc) { svcQueryConfigResp(x, ansi) },
			technique: "T1007", phase: PhaseRecon}
	}
	nameArg := func(ansi bool, label string) op {
		return op{handle: true, req: func(x *dc) {
			s := svcString(x.r, ansi)
			x.add(label, s)
			x.d.Target = s
		}}
	}
	enum := op{handle: true, req: svcEnumServices, technique: "T1007", phase: PhaseRecon}
	enumEx := op{handle: true, req: svcEnumServicesEx, technique: "T1007", phase: PhaseRecon}
	register(&iface{name: "svcctl", uuid: svcctlUUID, names: names, pipes: []string{"svcctl", "ntsvcs"},
		ops: map[uint16]op{
			0:  {handle: true, closes: true, noise: true, resp: func(x *dc) {}},
			1:  {handle: true, req: svcControl},
			2:  {handle: true, req: func(x *dc) {}},
			6:  {handle: true, resp: svcQueryStatusResp, noise: true},
			11: change(w),
			12: create(w, false),
			14: enum,
			15: openSCM(w),
			16: openSvc(w),
			17: queryConfig(w),
			19: start(w),
			20: nameArg(w, "service"),
			21: nameArg(w, "display name"),
			23: change(a),
			24: create(a, false),
			26: enum,
			27: openSCM(a),
			28: openSvc(a),
			29: queryConfig(a),
			31: start(a),
			32: nameArg(a, "service"),
			33: nameArg(a, "display name"),
			36: {handle: true, req: func(x *dc) { svcChangeConfig2(x, a) }},
			37: {handle: true, req: func(x *dc) { svcChangeConfig2(x, w) }},
			40: {handle: true, noise: true},
			41: enumEx,
			42: enumEx,
			44: create(a, false),
			45: create(w, false),
			50: {handle: true, req: svcControl},
			51: {handle: true, req: svcControl},
			60: create(w, true),
			64: {req: svcOpenSCManager2, opens: "scm"},
		}})
}

var (
	svcTypes = []flagName{
		{0x1, "KERNEL_DRIVER"}, {0x2, "FILE_SYSTEM_DRIVER"}, {0x10, "WIN32_OWN_PROCESS"},
		{0x20, "WIN32_SHARE_PROCESS"}, {0x50, "USER_OWN_PROCESS"}, {0x60, "USER_SHARE_PROCESS"},
		{0x100, "INTERACTIVE_PROCESS"},
	}
	svcStartTypes = map[uint32]string{0: "BOOT_START", 1: "SYSTEM_START", 2: "AUTO_START",
		3: "DEMAND_START", 4: "DISABLED", 0xffffffff: "NO_CHANGE"}
	svcErrorControl = map[uint32]string{0: "IGNORE", 1: "NORMAL", 2: "SEVERE", 3: "CRITICAL", 0xffffffff: "NO_CHANGE"}
	svcControls     = map[uint32]string{1: "STOP", 2: "PAUSE", 3: "CONTINUE", 4: "INTERROGATE",
		5: "SHUTDOWN", 6: "PARAMCHANGE", 7: "NETBINDADD", 8: "NETBINDREMOVE", 9: "NETBINDENABLE",
		10: "NETBINDDISABLE", 15: "PRESHUTDOWN"}
	svcStates = map[uint32]string{1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING",
		5: "CONTINUE_PENDING", 6: "PAUSE_PENDING", 7: "PAUSED"}
)

// svcString reads a top-level [string] (reference) string argument.
func svcString(r *ndr.Reader, ansi bool) string {
	if ansi {
		return r.AString()
	}
	return r.WString()
}

// svcStringPtr reads a top-level [string, unique] string argument.
func svcStringPtr(r *ndr.Reader, ansi bool) string {
	if !r.Ptr() {
		return ""
	}
	return svcString(r, ansi)
}

func svcOpenSCMArgs(r *ndr.Reader, ansi bool) (machine, db string, access uint32) {
	machine = svcStringPtr(r, ansi)
	db = svcStringPtr(r, ansi)
	access = r.U32()
	return
}

func svcOpenSCManager(x *dc, ansi bool) {
	machine, db, access := svcOpenSCMArgs(x.r, ansi)
	x.add("machine", machine)
	x.add("database", db)
	x.add("access", hex32(access))
	x.d.Target = machine
}

func svcOpenSCManager2(x *dc) {
	db := svcStringPtr(x.r, false)
	x.add("database", db)
	x.add("access", hex32(x.r.U32()))
}

func svcOpenService(x *dc, ansi bool) {
	name := svcString(x.r, ansi)
	x.add("service", name)
	x.add("access", hex32(x.r.U32()))
	x.d.Target = name
}

type svcCreate struct {
	name, display, binPath, group, account string
	access, typ, start, errCtl             uint32
	hasPassword                            bool
}

func svcCreateArgs(r *ndr.Reader, ansi, wow bool) (a svcCreate) {
	a.name = svcString(r, ansi)
	a.display = svcStringPtr(r, ansi)
	a.access = r.U32()
	a.typ = r.U32()
	a.start = r.U32()
	a.errCtl = r.U32()
	a.binPath = svcString(r, ansi)
	a.group = svcStringPtr(r, ansi)
	if r.Ptr() { // lpdwTagId
		r.U32()
	}
	if r.Ptr() { // lpDependencies
		r.Skip(r.Count(1))
	}
	r.U32() // dwDependSize
	a.account = svcStringPtr(r, ansi)
	if r.Ptr() { // lpPassword (encrypted with the session key)
		n := r.Count(1)
		r.Skip(n)
		a.hasPassword = n > 0
	}
	r.U32() // dwPwSize
	if wow {
		r.U16() // dwServiceWowType
	}
	return a
}

func svcCreateService(x *dc, ansi, wow bool) {
	a := svcCreateArgs(x.r, ansi, wow)
	x.d.Target = a.name
	x.reqName = a.name
	x.add("service", a.name)
	x.add("display name", a.display)
	x.add("binary path", a.binPath)
	x.add("service type", flagNames(a.typ, svcTypes))
	x.add("start type", enumName(a.start, svcStartTypes))
	x.add("error control", enumName(a.errCtl, svcErrorControl))
	x.add("account", a.account)
	if a.hasPassword {
		x.add("password", "set (encrypted)")
	}
	x.add("load order group", a.group)
	x.add("access", hex32(a.access))
	svcCommand(x, a.binPath, a.start)
}

// svcCommand sets the command a service runs and classifies it: a service
// that starts by itself at boot persists (T1543.003); one started on demand
// is how PsExec, smbexec and friends execute (T1569.002).
func svcCommand(x *dc, binPath string, start uint32) {
	x.d.Command = binPath
	if inner := smbexecCommand(binPath); inner != "" {
		x.add("smbexec command", inner)
	}
	if start <= 2 { // BOOT, SYSTEM or AUTO start
		x.d.Technique, x.d.Phase = "T1543.003", PhasePersist
		x.add("technique also", "T1569.002 (service execution)")
	} else {
		x.d.Technique, x.d.Phase = "T1569.002", PhaseExecution
	}
}

// smbexecCommand extracts the operator's command from an smbexec-style
// service binary path: %COMSPEC% /Q /c echo <command> ^> \\127.0.0.1\C$\__output 2^>^&1 > %TEMP%\execute.bat & ...
var smbexecRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)/c\s+echo\s+(.*?)\s*\^>\s*(\\\\\S+)`) })

func smbexecCommand(binPath string) string {
	m := smbexecRE().FindStringSubmatch(binPath)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

func svcCreateServiceResp(x *dc) {
	if x.r.Ptr() { // lpdwTagId
		x.r.U32()
	}
	x.returns(readHandle(x.r), handleInfo{kind: "service", name: x.reqName})
}

func svcChangeConfig(x *dc, ansi bool) {
	r := x.r
	typ, start, errCtl := r.U32(), r.U32(), r.U32()
	binPath := svcStringPtr(r, ansi)
	group := svcStringPtr(r, ansi)
	if r.Ptr() {
		r.U32()
	}
	if r.Ptr() {
		r.Skip(r.Count(1))
	}
	r.U32()
	account := svcStringPtr(r, ansi)
	pw := false
	if r.Ptr() {
		n := r.Count(1)
		r.Skip(n)
		pw = n > 0
	}
	r.U32()
	display := svcStringPtr(r, ansi)
	if typ != 0xffffffff {
		x.add("service type", flagNames(typ, svcTypes))
	}
	if start != 0xffffffff {
		x.add("start type", enumName(start, svcStartTypes))
	}
	if errCtl != 0xffffffff {
		x.add("error control", enumName(errCtl, svcErrorControl))
	}
	x.add("binary path", binPath)
	x.add("load order group", group)
	x.add("account", account)
	if pw {
		x.add("password", "set (encrypted)")
	}
	x.add("display name", display)
	switch {
	case binPath != "":
		if start == 0xffffffff {
			start = 3 // unchanged: treat as a hijack for execution
		}
		svcCommand(x, binPath, start)
	case start <= 2:
		x.d.Technique, x.d.Phase = "T1543.003", PhasePersist
	case start == 4:
		// Disabling a service (often a security product).
		x.d.Technique, x.d.Phase = "T1562.001", PhaseEvasion
	}
}

// svcChangeConfig2 decodes SC_RPC_CONFIG_INFO: the description (level 1)
// and failure actions (level 2, whose command runs when the service fails:
// a persistence trick).
func svcChangeConfig2(x *dc, ansi bool) {
	r := x.r
	r.AlignP() // SC_RPC_CONFIG_INFO holds a pointer
	level := r.U32()
	x.add("info level", fmt.Sprint(level))
	if r.Switch() != level && r.Err() == nil { // union discriminant
		r.Failf("config info discriminant differs from level %d", level)
		return
	}
	if !r.Ptr() {
		return
	}
	var desc, msg, cmd string
	r.Construct(func() {
		switch level {
		case 1:
			if r.Ptr() {
				r.Defer(func() { desc = svcString(r, ansi) })
			}
		case 2:
			r.AlignP()
			r.U32() // reset period
			if r.Ptr() {
				r.Defer(func() { msg = svcString(r, ansi) })
			}
			if r.Ptr() {
				r.Defer(func() { cmd = svcString(r, ansi) })
			}
			r.U32() // cActions
			if r.Ptr() {
				r.Defer(func() { r.Skip(8 * r.Count(8)) })
			}
		}
	})
	x.add("description", desc)
	x.add("reboot message", msg)
	x.add("failure command", cmd)
	if cmd != "" {
		x.d.Command = cmd
		x.d.Technique, x.d.Phase = "T1543.003", PhasePersist
	}
}

func svcStartService(x *dc, ansi bool) {
	r := x.r
	argc := r.U32()
	var args []string
	if r.Ptr() {
		r.Construct(func() {
			n := r.Count(r.PtrSize())
			for i := 0; i < n; i++ {
				if r.Ptr() {
					r.Defer(func() { args = append(args, svcString(r, ansi)) })
				}
			}
		})
	}
	if argc > 0 || len(args) > 0 {
		x.add("argc", fmt.Sprint(argc))
		for i, a := range args {
			x.add(fmt.Sprintf("argv[%d]", i), a)
		}
		x.d.Command = strings.Join(args, " ")
	}
}

func svcControl(x *dc) {
	c := x.r.U32()
	x.add("control", enumName(c, svcControls))
	if c == 1 {
		// Stopping services (security tools, backups) precedes tampering
		// and ransomware.
		x.d.Technique = "T1489"
	}
}

func svcQueryStatusResp(x *dc) {
	r := x.r
	r.U32() // type
	state := r.U32()
	if r.Err() == nil {
		x.add("state", enumName(state, svcStates))
	}
}

func svcQueryConfigReq(x *dc) { x.r.U32() } // cbBufSize

func svcQueryConfigResp(x *dc, ansi bool) {
	r := x.r
	var binPath, group, deps, account, display string
	var typ, start uint32
	r.Construct(func() {
		r.AlignP()
		typ, start = r.U32(), r.U32()
		r.U32() // error control
		for _, dst := range []*string{&binPath, &group} {
			if r.Ptr() {
				r.Defer(func() { *dst = svcString(r, ansi) })
			}
		}
		r.U32() // tag
		for _, dst := range []*string{&deps, &account, &display} {
			if r.Ptr() {
				r.Defer(func() { *dst = svcString(r, ansi) })
			}
		}
	})
	if r.Err() != nil && binPath == "" {
		return
	}
	x.add("binary path", binPath)
	x.add("service type", flagNames(typ, svcTypes))
	x.add("start type", enumName(start, svcStartTypes))
	x.add("account", account)
	x.add("display name", display)
	x.d.Command = binPath
}

func svcEnumServices(x *dc) {
	r := x.r
	x.add("service type", flagNames(r.U32(), svcTypes))
	x.add("service state", enumName(r.U32(), map[uint32]string{1: "ACTIVE", 2: "INACTIVE", 3: "ALL"}))
}

func svcEnumServicesEx(x *dc) {
	r := x.r
	r.U32() // info level
	x.add("service type", flagNames(r.U32(), svcTypes))
	x.add("service state", enumName(r.U32(), map[uint32]string{1: "ACTIVE", 2: "INACTIVE", 3: "ALL"}))
}
