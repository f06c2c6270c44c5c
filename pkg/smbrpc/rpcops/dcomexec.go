package rpcops

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// DCOM classes and interfaces published for remote execution or NTLM
// coercion since 2022, each named as its public source spells it:
//
//   - Windows Installer ("DCOM Upload & Execute", Deep Instinct, and
//     the tools built on it): MsiServer {000c101c-…} activated, then
//     IMsiServer::CreateCustomActionServer returns an IMsiCustomAction in a
//     new msiexec.exe, whose URT* methods write an assembly into the GAC
//     and LoadEmbeddedDLL / CallInitDLL load and run it. The opnums are the
//     vtable slots of the tools' headers (IUnknown's three first).
//   - BitLocker's BDEUILauncher (BitlockMove, r-tec 2025): a dual
//     interface whose BDEUIProcessStart starts a BitLocker UI process in
//     the interactive user's session, where a hijacked COM class loads the
//     attacker's DLL.
//   - IHxHelpPaneServer / IHxInteractiveUser (James Forshaw's "Interactive
//     User" classes, VX-API): Execute(url) opens a file: URL, i.e. runs a
//     program, in the interactive user's session.
//   - RemoteMonologue (IBM X-Force Red, 2025): ServerDataCollectorSet,
//     FileSystemImage and UpdateSession are activated (after their AppID's
//     RunAs is set to "Interactive User" over winreg) and handed a UNC path
//     through IDispatch (DataManager.Extract, WorkingDirectory,
//     AddScanPackageService): the logged-on user, or SYSTEM for
//     UpdateSession, authenticates to the attacker (T1187).
//   - ForsHops (IBM X-Force Red, 2025, after Forshaw's trapped COM
//     objects): WaaSRemediationAgent activated, its IDispatch's type
//     information walked to ITypeInfo::CreateInstance, which makes a
//     StdFont (TreatAs System.Object) inside WaaSMedicSvc, then .NET
//     reflection loads an assembly there.
//   - DCOMRunAs (Almond, 2025): PhotoAcqHWEventHandler activated in
//     another user's session (the session moniker) loads a planted DLL.
//   - htafile (mshta's class): activated remotely and given a URL moniker
//     through IPersistMoniker::Load, mshta runs the HTA the URL names.
var (
	msiServerCLS          = mustUUID("000c101c-0000-0000-c000-000000000046") // class and IMsiServer IID alike
	msiCustomActionUUID   = mustUUID("000c1025-0000-0000-c000-000000000046")
	msiRemoteAPIUUID      = mustUUID("000c1033-0000-0000-c000-000000000046")
	bdeUILauncherUUID     = mustUUID("8961f0a0-ff62-403b-91b4-7b9280241ceb")
	hxHelpPaneServerUUID  = mustUUID("8cec592c-07a1-11d9-b15e-000d56bfe6ee")
	hxInteractiveUserUUID = mustUUID("8cec595b-07a1-11d9-b15e-000d56bfe6ee")
	persistMonikerUUID    = mustUUID("79eac9c9-baf9-11ce-8c82-00aa004ba90b")
)

// trappedCLSIDs are classes whose type information leads to objects made
// inside their (privileged) server: ForsHops' WaaSRemediation.
var trappedCLSIDs = map[[16]byte]bool{}

// coerceCLSIDs are classes whose server opens a UNC path a caller hands
// it, as its RunAs identity or the machine account (RemoteMonologue, the
// MS-PLA Extract PoC), with how they are abused.
var coerceCLSIDs = map[[16]byte]string{}

// coerceMembers are the automation members RemoteMonologue hands its UNC
// path to, lower case.
var coerceMembers = map[string]bool{"extract": true, "workingdirectory": true, "addscanpackageservice": true}

func init() { builders = append(builders, registerDcomExec) }

func registerDcomExec() {
	for s, n := range map[string]string{
		"000c101c-0000-0000-c000-000000000046": "MsiServer",
		"000c1035-0000-0000-c000-000000000046": "MsiRemoteApi",
		"ab93b6f1-be76-4185-a488-a9001b105b94": "BDEUILauncher",
		"8cec58ae-07a1-11d9-b15e-000d56bfe6ee": "HxHelpPaneServer",
		"8cec58e7-07a1-11d9-b15e-000d56bfe6ee": "HxInteractiveUser",
		"3050f4d8-98b5-11cf-bb82-00aa00bdce0b": "htafile (mshta)",
		"03837546-098b-11d8-9414-505054503030": "ServerDataCollectorSet",
		"2c941fc5-975b-59be-a960-9a2a262853a5": "FileSystemImage (IMAPI2FS)",
		"4cb43d7f-7eee-4906-8698-60da1c38f2fe": "UpdateSession",
		"79eac9e0-baf9-11ce-8c82-00aa004ba90b": "URL moniker",
		"72566e27-1abb-4eb3-b4f0-eb431cb1cb32": "WaaSRemediationAgent",
		"0be35203-8f91-11ce-9de3-00aa004bb851": "StdFont",
		"00f2b433-44e4-4d88-b2b0-2698a0a91dba": "PhotoAcqHWEventHandler",
	} {
		clsidNames[mustUUID(s)] = n
	}
	for _, s := range []string{"000c101c-0000-0000-c000-000000000046", "ab93b6f1-be76-4185-a488-a9001b105b94",
		"8cec58ae-07a1-11d9-b15e-000d56bfe6ee", "8cec58e7-07a1-11d9-b15e-000d56bfe6ee",
		"3050f4d8-98b5-11cf-bb82-00aa00bdce0b", "72566e27-1abb-4eb3-b4f0-eb431cb1cb32",
		"00f2b433-44e4-4d88-b2b0-2698a0a91dba"} {
		lateralCLSIDs[mustUUID(s)] = true
	}
	trappedCLSIDs[mustUUID("72566e27-1abb-4eb3-b4f0-eb431cb1cb32")] = true
	iidNames[mustUUID("b4c1d279-966e-44e9-a9c5-ccaf4a77023d")] = "IWaaSRemediationEx"
	iidNames[mustUUID("af86e2e0-b12d-4c6a-9c5a-d7aa65101e90")] = "IInspectable"
	for _, s := range []string{"03837546-098b-11d8-9414-505054503030", "2c941fc5-975b-59be-a960-9a2a262853a5",
		"4cb43d7f-7eee-4906-8698-60da1c38f2fe"} {
		coerceCLSIDs[mustUUID(s)] = "RemoteMonologue NTLM coercion (T1187) once its AppID runs as the interactive user"
	}
	iidNames[mustUUID("000001b9-0000-0000-c000-000000000046")] = "ISpecialSystemProperties"

	exec := func(f func(x *dc)) op {
		return op{req: f, technique: "T1021.003", phase: PhaseExecution}
	}
	// IMsiServer's proxy follows IMsiConfigurationManager's vtable, which
	// the tools cast it to.
	register(&iface{name: "IMsiServer", uuid: msiServerCLS, orpc: true,
		names: dcomNames("InstallFinalize", "SetLastUsedSource", "Reboot", "DoInstall", "IsServiceInstalling",
			"RegisterUser", "RemoveRunOnceEntry", "CleanupTempPackages", "SourceListClearByType",
			"SourceListAddSource", "SourceListClearLastUsed", "RegisterCustomActionServer", "CreateCustomActionServer"),
		ops: map[uint16]op{15: {req: msiCreateCAServer, resp: msiCreateCAServerResp, technique: "T1021.003", phase: PhaseLateral}}})
	register(&iface{name: "IMsiCustomAction", uuid: msiCustomActionUUID, orpc: true,
		names: dcomNames("PrepareDLLCustomAction", "RunDLLCustomAction", "FinishDLLCustomAction", "RunScriptAction",
			"QueryPathOfRegTypeLib", "ProcessTypeLibrary", "SQLInstallDriverEx", "SQLConfigDriver", "SQLRemoveDriver",
			"SQLInstallTranslatorEx", "SQLRemoveTranslator", "SQLConfigDataSource", "SQLInstallDriverManager",
			"SQLRemoveDriverManager", "SQLInstallerError", "URTMakeFusionFullPath", "URTCarryingNDP",
			"URTUnloadFusionBinaries", "URTAddAssemblyInstallComponent", "URTIsAssemblyInstalled",
			"URTProvideGlobalAssembly", "URTCommitAssemblies", "URTUninstallAssembly", "URTGetAssemblyCacheItem",
			"URTCreateAssemblyFileStream", "URTWriteAssemblyBits", "URTCommitAssemblyStream", "URTGetFusionPath",
			"URTAreAssembliesEqual", "URTQueryAssembly", "LoadEmbeddedDLL", "CallInitDLL", "CallMessageDLL",
			"CallShutdownDLL", "UnloadEmbeddedDLL", "SetNewClientProcess", "SetRemoteAPI"),
		ops: map[uint16]op{
			3:  exec(msiPrepareDLL),
			9:  {req: msiSQLDriver, technique: "T1021.003", phase: PhaseExecution},
			21: {req: msiAssemblyComponent, technique: "T1105", phase: PhaseLateral},
			27: {req: msiAssemblyStream, technique: "T1105", phase: PhaseLateral},
			28: {req: msiAssemblyBits, technique: "T1105", phase: PhaseLateral},
			29: {technique: "T1105", phase: PhaseLateral},
			33: exec(msiLoadEmbeddedDLL),
			34: exec(msiCallInitDLL),
		}})
	register(&iface{name: "IMsiRemoteAPI", uuid: msiRemoteAPIUUID, orpc: true, names: dcomNames()})

	// IBDEUILauncher is dual: IDispatch's four methods come first.
	register(&iface{name: "IBDEUILauncher", uuid: bdeUILauncherUUID, orpc: true,
		names: dcomNames("GetTypeInfoCount", "GetTypeInfo", "GetIDsOfNames", "Invoke",
			"BDEUIProcessStart", "BDEUIContextTrigger", "GetUserLogonTime"),
		ops: map[uint16]op{
			5: {req: dispGetIDsOfNames, resp: dispGetIDsOfNamesResp},
			6: {req: dispInvoke, resp: dispInvokeResp},
			7: exec(bdeProcessStart),
			8: {req: bdeContextTrigger},
			9: {technique: "T1033", phase: PhaseRecon},
		}})
	hxExecute := exec(func(x *dc) { hxURL(x, "url") })
	register(&iface{name: "IHxHelpPaneServer", uuid: hxHelpPaneServerUUID, orpc: true,
		names: dcomNames("DisplayTask", "DisplayContents", "DisplaySearchResults", "Execute"),
		ops: map[uint16]op{
			3: {req: func(x *dc) { hxURL(x, "url") }}, 4: {req: func(x *dc) { hxURL(x, "url") }},
			5: {req: func(x *dc) { hxURL(x, "query") }}, 6: hxExecute}})
	register(&iface{name: "IHxInteractiveUser", uuid: hxInteractiveUserUUID, orpc: true,
		names: dcomNames("Execute"), ops: map[uint16]op{3: hxExecute}})
	register(&iface{name: "IPersistMoniker", uuid: persistMonikerUUID, orpc: true,
		names: dcomNames("GetClassID", "IsDirty", "Load", "Save", "SaveCompleted", "GetCurMoniker"),
		ops:   map[uint16]op{5: {req: persistMonikerLoad}}})
}

// wstrRefOrUnique reads a top-level [string] wchar_t* whose pointer kind
// the public sources do not give (the MSI and help-pane interfaces are
// known from C headers, not IDL): a [ref] one is the string alone, a
// [unique] one a referent ID first. A referent ID is never followed by an
// offset of 0 and a count no larger than itself that fits the stub, so the
// three first sizes tell them apart.
func wstrRefOrUnique(x *dc) string {
	r := x.r
	r.AlignP()
	n := r.PtrSize()
	off := r.Offset()
	stub := x.c.Request
	if off+3*n <= len(stub) {
		size := func(i int) uint64 {
			b := stub[off+i*n:]
			if x.c.BigEndian {
				if n == 8 {
					return binary.BigEndian.Uint64(b)
				}
				return uint64(binary.BigEndian.Uint32(b))
			}
			if n == 8 {
				return binary.LittleEndian.Uint64(b)
			}
			return uint64(binary.LittleEndian.Uint32(b))
		}
		mx, o, actual := size(0), size(1), size(2)
		if o == 0 && actual <= mx && mx > 0 && mx <= uint64(len(stub)-off)/2 {
			return r.WString()
		}
	}
	if r.Ptr() {
		return r.WString()
	}
	return ""
}

func msiPrepareDLL(x *dc) {
	action := wstrRefOrUnique(x)
	path := wstrRefOrUnique(x)
	entry := wstrRefOrUnique(x)
	x.add("action", action)
	x.add("dll", path)
	x.add("entry point", entry)
	x.d.Target = path
	x.d.Command = strings.TrimSpace(path + " " + entry)
}

// msiSQLDriver: SQLInstallDriverEx(cDrvLen, szDriver, szPathIn, ...)
// registers an ODBC driver DLL, which the server loads on SQLConfigDriver
// (the "odbc" variant of the technique).
func msiSQLDriver(x *dc) {
	x.r.U32() // cDrvLen
	driver := wstrRefOrUnique(x)
	path := wstrRefOrUnique(x)
	// The driver description is name\0key=value\0...\0: its name shows.
	x.add("driver", driver)
	x.add("path", path)
	x.d.Target = path
}

func msiAssemblyComponent(x *dc) {
	wstrRefOrUnique(x) // component GUID
	wstrRefOrUnique(x) // second GUID
	name := wstrRefOrUnique(x)
	x.add("assembly", name)
	x.d.Target = name
}

func msiAssemblyStream(x *dc) {
	file := wstrRefOrUnique(x)
	x.add("file", file)
	x.d.Target = file
}

// msiAssemblyBits: URTWriteAssemblyBits(const char* pv, ULONG cb, ...): the
// bytes of the file being written; only their size and start are shown.
func msiAssemblyBits(x *dc) {
	r := x.r
	n := r.Count(1)
	b := r.Bytes(n)
	if cb := r.U32(); r.Err() == nil && int(cb) != n {
		r.Failf("bytes %d, conformance %d", cb, n)
		return
	}
	x.add("bytes", fmt.Sprint(n))
	if len(b) >= 2 && b[0] == 'M' && b[1] == 'Z' {
		x.add("content", "PE image (MZ)")
	}
}

func msiLoadEmbeddedDLL(x *dc) {
	path := wstrRefOrUnique(x)
	x.add("dll", path)
	x.d.Target = path
	x.d.Command = path
}

func msiCallInitDLL(x *dc) {
	r := x.r
	n := r.U32()
	if r.Ptr() {
		c := r.Count(1)
		b := r.Bytes(c)
		if uint32(c) != n && r.Err() == nil {
			r.Failf("argument %d bytes, conformance %d", n, c)
			return
		}
		x.add("argument", printableBytes(b))
	}
}

// printableBytes renders bytes the caller passed as text when they are.
func printableBytes(b []byte) string {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\r' && c != '\n' && c != 0) || c >= 0x7f {
			return hexTrunc(b, 64)
		}
	}
	return strings.TrimRight(string(b), "\x00")
}

// msiCreateCAServer: CreateCustomActionServer(icacContext, dwProcessId,
// piRemoteAPI, pvEnvironment, cchEnvironment, dwPrivileges, ...): the
// context says which msiexec is started (32/64-bit, impersonated or
// elevated).
func msiCreateCAServer(x *dc) {
	ctx := x.r.Enum()
	pid := x.r.U32()
	if x.r.Err() != nil {
		return
	}
	x.add("context", enumName(ctx, map[uint32]string{0: "32-bit impersonated", 1: "64-bit impersonated",
		2: "32-bit elevated", 3: "64-bit elevated"}))
	x.add("client pid", fmt.Sprint(pid))
}

// msiCreateCAServerResp: the IMsiCustomAction's IPID is tied to the
// MsiServer class, so the upload and load calls that follow on it name
// the class even without their bind.
func msiCreateCAServerResp(x *dc) {
	r := x.r
	// cookie: [out, size_is(*cbCookie)] char*, then cbCookie, then the
	// interface pointer and the server's pid; the layout of the cookie is
	// not public, so the interface pointer is found by its signature.
	b := x.c.Response
	if i := indexOBJREF(b[r.Offset():]); i >= 0 {
		if o, ok := parseObjref(b[r.Offset()+i:]); ok && o.flags&1 != 0 {
			x.s.Shared.add(o.ipid, msiServerCLS, o.iid)
			x.add("object", fmt.Sprintf("%s IPID {%s}", ClassName(o.iid), UUIDString(o.ipid)))
		}
	}
}

// indexOBJREF finds the "MEOW" signature of an OBJREF in b.
func indexOBJREF(b []byte) int {
	for i := 0; i+4 <= len(b); i++ {
		if binary.LittleEndian.Uint32(b[i:]) == objrefSignature {
			return i
		}
	}
	return -1
}

// bdeProcessStart: BDEUIProcessStart(enumApp, enumProcStartMode,
// bstrStartParam), as BitlockMove declares it; the application numbers are
// not public beyond the tool's own (4), so they are shown as numbers.
func bdeProcessStart(x *dc) {
	r := x.r
	app := r.U32()
	mode := r.U32()
	param := bstr(r)
	if r.Err() != nil {
		return
	}
	x.add("application", fmt.Sprint(app))
	x.add("start mode", fmt.Sprint(mode))
	x.add("parameter", param)
	x.d.Command = param
}

func bdeContextTrigger(x *dc) {
	r := x.r
	api := r.U32()
	param := bstr(r)
	if r.Err() != nil {
		return
	}
	x.add("api", fmt.Sprint(api))
	x.add("parameter", param)
}

func hxURL(x *dc, field string) {
	u := wstrRefOrUnique(x)
	x.add(field, u)
	x.d.Target = u
	if x.op.technique != "" {
		x.d.Command = u
	}
}

// persistMonikerLoad: Load(fFullyAvailable, pimkName, pibc, grfMode). The
// moniker comes marshaled by value (OBJREF_CUSTOM of its class): a URL
// moniker's data holds its URL as UTF-16, which is what htafile (mshta)
// fetches and runs.
func persistMonikerLoad(x *dc) {
	r := x.r
	r.U32() // fFullyAvailable
	b := mInterfacePointer(r)
	o, ok := parseObjref(b)
	if !ok {
		return
	}
	if o.flags == 4 {
		x.add("moniker", guidLabel(o.clsid))
	}
	for _, s := range utf16Strings(o.data, 8) {
		if strings.Contains(s, ":") || strings.HasPrefix(s, `\\`) {
			x.add("url", s)
			x.d.Target = s
			x.d.Command = s
			cls, _ := x.s.Shared.class(x.c.Object)
			if lateralCLSIDs[cls] || cls == ([16]byte{}) {
				x.d.Technique, x.d.Phase = "T1021.003", PhaseExecution
			}
			if h := CoercedHost(s); h != "" && isUNC(s) {
				x.add("coerced to", h)
			}
			break
		}
	}
}

// utf16Strings returns the runs of at least min printable UTF-16LE
// characters in b, at even offsets.
func utf16Strings(b []byte, minLen int) []string {
	var out []string
	var cur []uint16
	flush := func() {
		if len(cur) >= minLen && len(out) < maxListed {
			out = append(out, ndr.DecodeUTF16(u16bytes(cur), false))
		}
		cur = cur[:0]
	}
	for i := 0; i+2 <= len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c >= 0x20 && c < 0xd800 {
			cur = append(cur, c)
			continue
		}
		flush()
	}
	flush()
	return out
}

func u16bytes(w []uint16) []byte {
	b := make([]byte, 0, 2*len(w))
	for _, c := range w {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

// dispCoercion marks an IDispatch call that hands a UNC path to a class
// RemoteMonologue abuses (or to one of its members, the class unknown):
// the server opens the path as its RunAs identity.
func (x *dc) dispCoercion(name string, args []*varValue) {
	cls, known := x.s.Shared.class(x.c.Object)
	if !(known && coerceCLSIDs[cls] != "") && !coerceMembers[strings.ToLower(name)] {
		return
	}
	for _, v := range args {
		if s, ok := v.stringValue(); ok && isUNC(s) {
			x.d.Technique, x.d.Phase = TechCoerce, PhaseCredAccess
			x.coerce("path", s)
			return
		}
	}
}
