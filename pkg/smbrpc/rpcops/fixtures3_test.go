package rpcops

import (
	"encoding/binary"
	"testing"
)

// wmioInstance encodes a CIM instance (MS-WMIO EncodingUnit) of a class
// with string properties, each set in the instance, for hand-built WMI
// fixtures.
func wmioInstance(class string, props [][2]string) []byte {
	le := binary.LittleEndian
	enc := func(s string) []byte { return append(append([]byte{0}, s...), 0) }
	// Class heap: class name, then per property its name and PropertyInfo.
	var heap []byte
	heap = append(heap, enc(class)...)
	type ref struct{ name, info uint32 }
	var refs []ref
	for i, p := range props {
		nref := uint32(len(heap))
		heap = append(heap, enc(p[0])...)
		iref := uint32(len(heap))
		heap = le.AppendUint32(heap, cimString)
		heap = le.AppendUint16(heap, uint16(i))   // declaration order
		heap = le.AppendUint32(heap, uint32(4*i)) // value table offset
		heap = le.AppendUint32(heap, 0)           // class of origin
		heap = le.AppendUint32(heap, 4)           // empty qualifier set
		refs = append(refs, ref{nref, iref})
	}
	nd := (len(props)-1)/4 + 1
	ndvt := len(props)*4 + nd
	var cp []byte
	cp = append(cp, make([]byte, 13)...) // ClassHeader, filled below
	cp = le.AppendUint32(cp, 4)          // DerivationList: empty
	cp = le.AppendUint32(cp, 4)          // ClassQualifierSet: empty
	cp = le.AppendUint32(cp, uint32(len(props)))
	for _, r := range refs {
		cp = le.AppendUint32(cp, r.name)
		cp = le.AppendUint32(cp, r.info)
	}
	classND := make([]byte, nd)
	for i := range props {
		classND[i/4] |= 1 << (2 * (i % 4)) // null in the class
	}
	cp = append(cp, classND...)
	for range props {
		cp = le.AppendUint32(cp, 0xffffffff)
	}
	cp = le.AppendUint32(cp, uint32(len(heap))|0x80000000)
	cp = append(cp, heap...)
	le.PutUint32(cp[0:], uint32(len(cp)))
	le.PutUint32(cp[5:], 0) // class name at heap offset 0
	le.PutUint32(cp[9:], uint32(ndvt))
	// Instance part.
	var iheap []byte
	iheap = append(iheap, enc(class)...)
	var vals []uint32
	for _, p := range props {
		vals = append(vals, uint32(len(iheap)))
		iheap = append(iheap, enc(p[1])...)
	}
	var ip []byte
	ip = append(ip, make([]byte, 4)...) // EncodingLength
	ip = append(ip, 0)                  // InstanceFlags
	ip = le.AppendUint32(ip, 0)         // InstanceClassName
	ip = append(ip, make([]byte, nd)...)
	for _, v := range vals {
		ip = le.AppendUint32(ip, v)
	}
	ip = le.AppendUint32(ip, 4) // InstanceQualifierSet: empty
	ip = append(ip, 1)          // InstancePropQualifierSet flag: none
	ip = le.AppendUint32(ip, uint32(len(iheap))|0x80000000)
	ip = append(ip, iheap...)
	le.PutUint32(ip, uint32(len(ip)))
	block := append([]byte{0x02}, cp...) // ObjectFlags: instance
	block = append(block, ip...)
	var eu []byte
	eu = le.AppendUint32(eu, wmioSignature)
	eu = le.AppendUint32(eu, uint32(len(block)))
	return append(eu, block...)
}

// objrefCustom wraps data in an OBJREF_CUSTOM of class clsid.
func objrefCustom(iid, clsid [16]byte, data []byte) []byte {
	le := binary.LittleEndian
	var b []byte
	b = le.AppendUint32(b, objrefSignature)
	b = le.AppendUint32(b, 4)
	b = append(b, iid[:]...)
	b = append(b, clsid[:]...)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// mip writes a top-level [unique] MInterfacePointer*.
func (s *sb) mip(objref []byte) *sb {
	return s.ptr().size(len(objref)).u32(uint32(len(objref))).raw(objref)
}

func TestWMIFixtures(t *testing.T) {
	iidClassObject := mustUUID("dc12a681-737f-11cf-884d-00aa004b2e24")
	inParams := objrefCustom(iidClassObject, wbemClassObjectCLS, wmioInstance("__PARAMETERS",
		[][2]string{{"CommandLine", `cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__1 2>&1`}, {"CurrentDirectory", `C:\`}}))
	filter := objrefCustom(iidClassObject, wbemClassObjectCLS, wmioInstance("__EventFilter",
		[][2]string{{"Name", "Updater"}, {"Query", "SELECT * FROM __InstanceModificationEvent WITHIN 60"}, {"QueryLanguage", "WQL"}}))
	consumer := objrefCustom(iidClassObject, wbemClassObjectCLS, wmioInstance("ActiveScriptEventConsumer",
		[][2]string{{"Name", "Updater"}, {"ScriptingEngine", "VBScript"}, {"ScriptText", `CreateObject("WScript.Shell").Run "calc"`}}))
	runFixtures(t, []fixture{
		{name: "ExecQuery", iface: wbemServicesUUID, opnum: 20,
			req:  func(s *sb) { s.orpcThis().bstr("WQL").bstr("SELECT * FROM AntiVirusProduct").u32(0x30).null() },
			want: want{op: "ExecQuery", target: "SELECT * FROM AntiVirusProduct", technique: "T1047", phase: PhaseRecon}},
		{name: "ExecMethod Win32_Process.Create", iface: wbemServicesUUID, opnum: 24,
			req: func(s *sb) {
				s.orpcThis().bstr("Win32_Process").bstr("Create").u32(0).null().mip(inParams).null().null()
			},
			want: want{op: "ExecMethod", target: "Win32_Process.Create", technique: "T1047", phase: PhaseExecution,
				command: `cmd.exe /Q /c whoami 1> \\127.0.0.1\ADMIN$\__1 2>&1`,
				fields:  map[string]string{"class": "__PARAMETERS", "CurrentDirectory": `C:\`}}},
		{name: "PutInstance __EventFilter", iface: wbemServicesUUID, opnum: 14,
			req: func(s *sb) { s.orpcThis().mip(filter).u32(0).null().null() },
			want: want{op: "PutInstance", target: `__EventFilter "Updater"`, technique: "T1546.003", phase: PhasePersist,
				fields: map[string]string{"Query": "SELECT * FROM __InstanceModificationEvent WITHIN 60"}}},
		{name: "PutInstance ActiveScriptEventConsumer", iface: wbemServicesUUID, opnum: 14,
			req: func(s *sb) { s.orpcThis().mip(consumer).u32(0).null().null() },
			want: want{op: "PutInstance", target: `ActiveScriptEventConsumer "Updater"`, technique: "T1546.003", phase: PhasePersist,
				command: `CreateObject("WScript.Shell").Run "calc"`}},
		{name: "NTLMLogin", iface: wbemLevel1LoginUUID, opnum: 6,
			req:  func(s *sb) { s.orpcThis().wstrp(`//./root/cimv2`).null().u32(0).null() },
			want: want{op: "NTLMLogin", target: `//./root/cimv2`, technique: "T1047", phase: PhaseLateral}},
	})
}

func TestWMIOBroken(t *testing.T) {
	// A damaged object falls back to its printable strings.
	good := wmioInstance("__PARAMETERS", [][2]string{{"CommandLine", "notepad.exe"}})
	o, err := parseWMIObject(good)
	if err != nil || o.prop("CommandLine") != "notepad.exe" || o.class != "__PARAMETERS" {
		t.Fatalf("good object: %+v %v", o, err)
	}
	for cut := 0; cut < len(good); cut++ {
		parseWMIObject(good[:cut]) // must not panic
	}
	bad := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(bad[9:], 0xfffffff0) // ClassPart length
	if _, err := parseWMIObject(bad); err == nil {
		t.Fatal("damaged class part accepted")
	}
	found := false
	for _, s := range wmiStrings(bad) {
		found = found || s == "notepad.exe"
	}
	if !found {
		t.Fatalf("fallback strings %q", wmiStrings(bad))
	}
}

func TestIDispatchSession(t *testing.T) {
	obj := mustUUID("0000c00b-19e0-1884-6555-3ca62fdb2bba")
	var s Session
	c := fixture{iface: dispatchUUID, opnum: 5,
		req: func(s *sb) {
			s.orpcThis().uuid("00000000-0000-0000-0000-000000000000").size(1).ptr().wstr("ExecuteShellCommand").u32(1).u32(0x409)
		},
		resp: func(s *sb) { s.orpcThat().size(1).u32(0x36).status(0) }}.call(false)
	c.Object = obj
	d := s.Decode(c)
	check(t, d, want{op: "GetIDsOfNames ExecuteShellCommand", technique: "T1021.003", phase: PhaseExecution,
		fields: map[string]string{"dispid": "ExecuteShellCommand = 0x36"}})
	variantBSTR := func(s *sb, v string) {
		s.align(8).u32(6).u32(0).u16(8).u16(0).u16(0).u16(0).u32(8).ptr()
		s.size(len(v)).u32(uint32(2 * len(v))).u32(uint32(len(v)))
		for _, r := range v {
			s.u16(uint16(r))
		}
	}
	c = fixture{iface: dispatchUUID, opnum: 6, req: func(s *sb) {
		s.orpcThis().u32(0x36).uuid("00000000-0000-0000-0000-000000000000").u32(0).u32(1)
		s.alignP().ptr().null().u32(4).u32(0) // DISPPARAMS: rgvarg, no named args
		s.size(4).ptr().ptr().ptr().ptr()     // four VARIANT pointers, last argument first
		variantBSTR(s, "7")
		variantBSTR(s, "/c calc.exe")
		variantBSTR(s, `C:\Windows`)
		variantBSTR(s, "cmd.exe")
		s.u32(0).size(0).size(0)
	}}.call(false)
	c.Object = obj
	d = s.Decode(c)
	check(t, d, want{op: "Invoke ExecuteShellCommand", command: "cmd.exe /c calc.exe", technique: "T1021.003", phase: PhaseExecution,
		fields: map[string]string{"arg[0]": `BSTR "cmd.exe"`, "arg[1]": `BSTR "C:\\Windows"`, "member": "ExecuteShellCommand (DISPID 0x36)"}})
}

func TestGuessInterface(t *testing.T) {
	stub := func(ndr64 bool, f func(*sb)) []byte { s := newSB(ndr64); f(s); return s.bytes() }
	openSCM := func(s *sb) { s.wstrp(`\\DC01`).wstrp("ServicesActive").u32(0xf003f) }
	lsaRetrieve := func(s *sb) { s.handle(h(1)).ustr("G$BCKUPKEY_P").null() }
	cases := []struct {
		name      string
		pipe      string
		opnum     uint16
		stub      []byte
		want      [16]byte
		wantNDR64 bool
		ok        bool
	}{
		{"pipe svcctl", `\PIPE\svcctl`, 15, nil, svcctlUUID, false, true},
		{"pipe name only", "samr", 64, nil, samrUUID, false, true},
		{"pipe lsarpc", "lsarpc", 44, nil, lsaUUID, false, true},
		{"pipe shared atsvc: ITaskSchedulerService", "atsvc", 7, stub(false, func(s *sb) { s.wstr(`\`).u32(0).u32(0).u32(10) }), tschUUID, false, true},
		{"pipe shared atsvc: ATSvc", "atsvc", 1, stub(false, func(s *sb) { s.wstrp(`\\WS06`).u32(1).u32(1) }), atsvcUUID, false, true},
		{"unknown pipe", "InitShutdown", 0, nil, [16]byte{}, false, false},
		{"tcp OpenSCManagerW", "", 15, stub(false, openSCM), svcctlUUID, false, true},
		{"tcp RetrievePrivateData ndr64", "", 43, stub(true, lsaRetrieve), lsaUUID, true, true},
		{"tcp RetrievePrivateData", "", 43, stub(false, lsaRetrieve), lsaUUID, false, true},
		{"tcp garbage", "", 3, []byte{1, 2, 3, 4, 5, 6, 7}, [16]byte{}, false, false},
		{"tcp empty", "", 0, nil, [16]byte{}, false, false},
		{"tcp IDispatch Invoke", "", 6, stub(false, func(s *sb) {
			s.orpcThis().u32(4).uuid("00000000-0000-0000-0000-000000000000").u32(0).u32(3)
			s.alignP().null().null().u32(0).u32(0).u32(0).size(0).size(0)
		}), dispatchUUID, false, true},
		{"tcp IRemUnknown2 RemQueryInterface", "", 3, stub(false, func(s *sb) {
			s.orpcThis().uuid("0000a008-0554-1c54-4964-a091e3765a52").u32(5).u16(1)
			s.size(1).uuid("00020400-0000-0000-c000-000000000046")
		}), remUnknown2UUID, false, true},
		// No argument after the ORPCTHIS: IDispatch::GetTypeInfoCount and
		// IProvideClassInfo::GetClassInfo look the same.
		{"tcp DCOM call without arguments", "", 3, stub(false, func(s *sb) { s.orpcThis() }), [16]byte{}, false, false},
		// IDispatch::GetTypeInfo(0, lcid 0) reads as RemAddRef of nothing.
		{"tcp DCOM call fitting two interfaces", "", 4, stub(false, func(s *sb) { s.orpcThis().u32(0).u32(0) }), [16]byte{}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, n64, ok := GuessCall(c.pipe, c.opnum, c.stub)
			if ok != c.ok || u != c.want || n64 != c.wantNDR64 {
				t.Fatalf("GuessCall = %s ndr64=%v ok=%v, want %s %v %v", InterfaceName(u), n64, ok, InterfaceName(c.want), c.wantNDR64, c.ok)
			}
			if u2, ok2 := GuessInterface(c.pipe, c.opnum, c.stub); u2 != u || ok2 != ok {
				t.Fatal("GuessInterface disagrees with GuessCall")
			}
		})
	}
}

func TestNames(t *testing.T) {
	cases := []struct {
		uuid  [16]byte
		opnum uint16
		iface string
		op    string
	}{
		{svcctlUUID, 12, "svcctl", "CreateServiceW"},
		{svcctlUUID, 64, "svcctl", "OpenSCManager2"},
		{svcctlUUID, 61, "svcctl", "opnum 61"},
		{lsaUUID, 43, "lsarpc", "RetrievePrivateData"},
		{lsaUUID, 77, "lsarpc", "LookupNames4"},
		{samrUUID, 58, "samr", "SetInformationUser2"},
		{winregUUID, 20, "winreg", "SaveKey"},
		{drsuapiUUID, 3, "drsuapi", "DRSGetNCChanges"},
		{netlogonUUID, 45, "netlogon", "NetrLogonSamLogonWithFlags"},
		{eventlogUUID, 0, "eventlog", "ClearEventLogW"},
		{wbemServicesUUID, 24, "IWbemServices", "ExecMethod"},
		{dispatchUUID, 6, "IDispatch", "Invoke"},
		{tschUUID, 1, "ITaskSchedulerService", "SchRpcRegisterTask"},
		{atsvcUUID, 0, "atsvc", "NetrJobAdd"},
		{epmUUID, 3, "epmapper", "ept_map"},
		{srvsvcUUID, 15, "srvsvc", "NetrShareEnum"},
		{wkssvcUUID, 2, "wkssvc", "NetrWkstaUserEnum"},
		{sysActivatorUUID, 4, "ISystemActivator", "RemoteCreateInstance"},
		{[16]byte{1}, 7, "", "opnum 7"},
	}
	for _, c := range cases {
		if n := InterfaceName(c.uuid); n != c.iface {
			t.Errorf("InterfaceName(%s) = %q, want %q", UUIDString(c.uuid), n, c.iface)
		}
		if n := OpName(c.uuid, c.opnum); n != c.op {
			t.Errorf("OpName(%s, %d) = %q, want %q", c.iface, c.opnum, n, c.op)
		}
	}
	// Sealed calls: names, no arguments, and the operation's technique.
	d := Decode(Call{Interface: wbemServicesUUID, Opnum: 24})
	check(t, d, want{iface: "IWbemServices", op: "ExecMethod", technique: "T1047", phase: PhaseExecution})
	if u, ok := InterfaceUUID("DRSUAPI"); !ok || u != drsuapiUUID {
		t.Fatal("InterfaceUUID")
	}
}

func TestUUIDRoundTrip(t *testing.T) {
	for _, s := range []string{"367abb81-9844-35f1-ad32-98f038001003", "e1af8308-5d1f-11c9-91a4-08002b14a0fa"} {
		u, err := ParseUUID("{" + s + "}")
		if err != nil || UUIDString(u) != s {
			t.Fatalf("%s -> %x -> %s (%v)", s, u, UUIDString(u), err)
		}
	}
	// The wire form of svcctl as it appears in a bind PDU.
	if u := mustUUID("367abb81-9844-35f1-ad32-98f038001003"); u[0] != 0x81 || u[3] != 0x36 || u[4] != 0x44 {
		t.Fatalf("wire form % x", u)
	}
	for _, bad := range []string{"", "367abb81-9844-35f1-ad32-98f03800100", "367abb81x9844-35f1-ad32-98f038001003", "zzzzzzzz-9844-35f1-ad32-98f038001003"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) accepted", bad)
		}
	}
}
