package rpcops

import (
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"
)

// fixture is a hand-built call: the stubs are written for NDR and NDR64
// alike by the same function, so every case runs in both transfer syntaxes.
type fixture struct {
	name  string
	iface [16]byte
	opnum uint16
	req   func(s *sb)
	resp  func(s *sb)
	want  want
}

func (f fixture) call(ndr64 bool) Call {
	c := Call{Interface: f.iface, Opnum: f.opnum, NDR64: ndr64}
	if f.req != nil {
		s := newSB(ndr64)
		f.req(s)
		c.Request = s.bytes()
	}
	if f.resp != nil {
		s := newSB(ndr64)
		f.resp(s)
		c.Response = s.bytes()
	}
	return c
}

func runFixtures(t *testing.T, fs []fixture) {
	t.Helper()
	for _, f := range fs {
		for _, ndr64 := range []bool{false, true} {
			name := f.name
			if ndr64 {
				name += "/ndr64"
			}
			t.Run(name, func(t *testing.T) {
				d := Decode(f.call(ndr64))
				check(t, d, f.want)
			})
		}
	}
}

const smbexecPath = `%COMSPEC% /Q /c echo whoami ^> \\127.0.0.1\C$\__output 2^>^&1 > %TEMP%\execute.bat & %COMSPEC% /Q /c %TEMP%\execute.bat & del %TEMP%\execute.bat`

func TestSvcctlFixtures(t *testing.T) {
	create := func(start uint32, ansi bool) func(s *sb) {
		str, strp := (*sb).wstr, (*sb).wstrp
		if ansi {
			str, strp = (*sb).astr, func(s *sb, v string) *sb { return s.ptr().astr(v) }
		}
		return func(s *sb) {
			s.handle(h(1))
			str(s, "BTOBTO")
			strp(s, "BTOBTO")
			s.u32(0xf01ff).u32(0x10).u32(start).u32(0)
			str(s, smbexecPath)
			s.null().null().null().u32(0).null().null().u32(0)
		}
	}
	createResp := func(s *sb) { s.null().handle(h(2)).status(0) }
	runFixtures(t, []fixture{
		{name: "OpenSCManagerW", iface: svcctlUUID, opnum: 15,
			req:  func(s *sb) { s.wstrp(`\\DC01`).wstrp("ServicesActive").u32(0xf003f) },
			resp: func(s *sb) { s.handle(h(1)).status(0) },
			want: want{op: "OpenSCManagerW", target: `\\DC01`, fields: map[string]string{"database": "ServicesActive", "access": "0x000f003f"}}},
		{name: "CreateServiceW smbexec", iface: svcctlUUID, opnum: 12, req: create(3, false), resp: createResp,
			want: want{op: "CreateServiceW", target: "BTOBTO", command: smbexecPath, technique: "T1569.002", phase: PhaseExecution,
				fields: map[string]string{"smbexec command": "whoami", "start type": "DEMAND_START", "service type": "WIN32_OWN_PROCESS"}}},
		{name: "CreateServiceA autostart", iface: svcctlUUID, opnum: 24, req: create(2, true), resp: createResp,
			want: want{op: "CreateServiceA", target: "BTOBTO", technique: "T1543.003", phase: PhasePersist,
				fields: map[string]string{"start type": "AUTO_START", "technique also": "T1569.002 (service execution)"}}},
		{name: "CreateServiceWOW64W", iface: svcctlUUID, opnum: 45, req: create(3, false), resp: createResp,
			want: want{op: "CreateServiceWOW64W", target: "BTOBTO", technique: "T1569.002", phase: PhaseExecution}},
		{name: "StartServiceW args", iface: svcctlUUID, opnum: 19,
			req: func(s *sb) {
				s.handle(h(2)).u32(2).ptr() // argc, argv
				s.size(2).ptr().ptr()       // STRING_PTRSW array
				s.wstr("-k").wstr("netsvcs")
			},
			want: want{op: "StartServiceW", command: "-k netsvcs", technique: "T1569.002", phase: PhaseExecution,
				fields: map[string]string{"argc": "2", "argv[1]": "netsvcs"}}},
		{name: "ControlService stop", iface: svcctlUUID, opnum: 1,
			req:  func(s *sb) { s.handle(h(2)).u32(1) },
			want: want{op: "ControlService", technique: "T1489", fields: map[string]string{"control": "STOP"}}},
		{name: "ChangeServiceConfigW hijack", iface: svcctlUUID, opnum: 11,
			req: func(s *sb) {
				s.handle(h(2)).u32(0xffffffff).u32(0xffffffff).u32(0xffffffff).wstrp(`C:\Windows\Temp\x.exe`)
				s.null().null().null().u32(0).null().null().u32(0).null()
			},
			want: want{op: "ChangeServiceConfigW", command: `C:\Windows\Temp\x.exe`, technique: "T1569.002", phase: PhaseExecution}},
		{name: "ChangeServiceConfigW disable", iface: svcctlUUID, opnum: 11,
			req: func(s *sb) {
				s.handle(h(2)).u32(0xffffffff).u32(4).u32(0xffffffff).null()
				s.null().null().null().u32(0).null().null().u32(0).null()
			},
			want: want{op: "ChangeServiceConfigW", technique: "T1562.001", phase: PhaseEvasion, fields: map[string]string{"start type": "DISABLED"}}},
		{name: "ChangeServiceConfig2W failure command", iface: svcctlUUID, opnum: 37,
			req: func(s *sb) {
				s.handle(h(2)).alignP().u32(2).alignP().u32(2).ptr() // level, union discriminant, arm
				s.alignP().u32(86400).null().ptr().u32(0).null()     // SERVICE_FAILURE_ACTIONSW
				s.wstr(`cmd /c evil.exe`)
			},
			want: want{op: "ChangeServiceConfig2W", command: "cmd /c evil.exe", technique: "T1543.003", phase: PhasePersist,
				fields: map[string]string{"failure command": "cmd /c evil.exe"}}},
		{name: "QueryServiceConfigW", iface: svcctlUUID, opnum: 17,
			req: func(s *sb) { s.handle(h(2)).u32(8192) },
			resp: func(s *sb) {
				s.alignP().u32(0x10).u32(2).u32(1).ptr().null().u32(0).null().ptr().ptr()
				s.wstr(`C:\Windows\evil.exe`).wstr("LocalSystem").wstr("Evil")
				s.u32(0).status(0)
			},
			want: want{op: "QueryServiceConfigW", command: `C:\Windows\evil.exe`, technique: "T1007", phase: PhaseRecon,
				fields: map[string]string{"account": "LocalSystem", "display name": "Evil", "start type": "AUTO_START"}}},
		{name: "DeleteService", iface: svcctlUUID, opnum: 2, req: func(s *sb) { s.handle(h(2)) },
			want: want{op: "DeleteService"}},
		{name: "CloseServiceHandle", iface: svcctlUUID, opnum: 0, req: func(s *sb) { s.handle(h(2)) },
			resp: func(s *sb) { s.handle(Handle{}).status(0) }, want: want{op: "CloseServiceHandle", noise: true}},
		{name: "EnumServicesStatusExW", iface: svcctlUUID, opnum: 42, req: func(s *sb) { s.handle(h(1)).u32(0).u32(0x30).u32(3) },
			want: want{op: "EnumServicesStatusExW", technique: "T1007", phase: PhaseRecon, fields: map[string]string{"service state": "ALL"}}},
	})
}

// TestSvcctlSession follows PsExec's calls on one connection: the handles
// name the service in the calls that only carry a handle.
func TestSvcctlSession(t *testing.T) {
	var s Session
	f := fixture{iface: svcctlUUID}
	steps := []struct {
		opnum      uint16
		req, resp  func(*sb)
		wantTarget string
	}{
		{15, func(s *sb) { s.wstrp(`\\WS06`).null().u32(0xf003f) }, func(s *sb) { s.handle(h(1)).status(0) }, `\\WS06`},
		{12, func(s *sb) {
			s.handle(h(1)).wstr("PSEXESVC").wstrp("PSEXESVC").u32(0xf01ff).u32(0x10).u32(3).u32(0)
			s.wstr(`%SystemRoot%\PSEXESVC.exe`).null().null().null().u32(0).null().null().u32(0)
		}, func(s *sb) { s.null().handle(h(2)).status(0) }, "PSEXESVC"},
		{19, func(s *sb) { s.handle(h(2)).u32(0).null() }, func(s *sb) { s.status(0) }, "PSEXESVC"},
		{2, func(s *sb) { s.handle(h(2)) }, func(s *sb) { s.status(0) }, "PSEXESVC"},
		{0, func(s *sb) { s.handle(h(2)) }, func(s *sb) { s.handle(Handle{}).status(0) }, "PSEXESVC"},
		{19, func(s *sb) { s.handle(h(2)).u32(0).null() }, nil, ""}, // closed: forgotten
		{0, func(s *sb) { s.handle(h(1)) }, func(s *sb) { s.handle(Handle{}).status(0) }, `\\WS06`},
	}
	for i, st := range steps {
		f.opnum, f.req, f.resp = st.opnum, st.req, st.resp
		d := s.Decode(f.call(false))
		if d.Target != st.wantTarget {
			t.Errorf("step %d %s: target %q, want %q", i, d.Operation, d.Target, st.wantTarget)
		}
	}
}

const taskXML = `<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <Triggers>%s</Triggers>
  <Principals><Principal id="LocalSystem"><UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel></Principal></Principals>
  <Settings><Hidden>true</Hidden></Settings>
  <Actions Context="LocalSystem"><Exec><Command>cmd.exe</Command><Arguments>/C whoami &gt; %windir%\Temp\x.tmp 2&gt;&amp;1</Arguments></Exec></Actions>
</Task>`

func TestTaskSchedulerFixtures(t *testing.T) {
	register := func(trigger string) func(s *sb) {
		return func(s *sb) {
			s.wstrp(`\Evil`).wstr(strings.ReplaceAll(taskXML, "%s", trigger)).u32(6).null().u32(3).u32(0).null()
		}
	}
	runFixtures(t, []fixture{
		{name: "SchRpcRegisterTask atexec", iface: tschUUID, opnum: 1,
			req:  register(`<TimeTrigger><StartBoundary>2015-07-15T20:35:13</StartBoundary></TimeTrigger>`),
			resp: func(s *sb) { s.ptr().wstr(`\Evil`).null().status(0) },
			want: want{op: "SchRpcRegisterTask", target: `\Evil`, command: `cmd.exe /C whoami > %windir%\Temp\x.tmp 2>&1`,
				technique: "T1053.005", phase: PhaseExecution,
				fields: map[string]string{"principal": "S-1-5-18 (HighestAvailable)", "hidden": "true",
					"trigger": "TimeTrigger from 2015-07-15T20:35:13", "logon type": "INTERACTIVE_TOKEN", "flags": "CREATE|UPDATE"}}},
		{name: "SchRpcRegisterTask logon trigger", iface: tschUUID, opnum: 1,
			req: register(`<LogonTrigger><UserId>CORP\bob</UserId></LogonTrigger>`),
			want: want{op: "SchRpcRegisterTask", technique: "T1053.005", phase: PhasePersist,
				fields: map[string]string{"trigger": `LogonTrigger for CORP\bob`}}},
		{name: "SchRpcRun", iface: tschUUID, opnum: 12,
			req:  func(s *sb) { s.wstr(`\Evil`).u32(1).ptr().size(1).ptr().wstr("arg").u32(0).u32(0).null() },
			want: want{op: "SchRpcRun", target: `\Evil`, technique: "T1053.005", phase: PhaseExecution, fields: map[string]string{"arg[0]": "arg"}}},
		{name: "SchRpcDelete", iface: tschUUID, opnum: 13, req: func(s *sb) { s.wstr(`\Evil`).u32(0) },
			want: want{op: "SchRpcDelete", target: `\Evil`, technique: "T1053.005"}},
		{name: "SchRpcEnumTasks", iface: tschUUID, opnum: 7,
			req:  func(s *sb) { s.wstr(`\`).u32(0).u32(0).u32(100) },
			resp: func(s *sb) { s.u32(2).u32(2).ptr().size(2).ptr().ptr().wstr("A").wstr("B").status(0) },
			want: want{op: "SchRpcEnumTasks", target: `\`, technique: "T1053.005", phase: PhaseRecon, fields: map[string]string{"count": "2", "name": "B"}}},
		{name: "NetrJobAdd", iface: atsvcUUID, opnum: 0,
			req: func(s *sb) {
				s.wstrp(`\\WS06`)
				s.alignP()
				if s.ndr64 {
					s.u64(49020000)
				} else {
					s.u32(49020000)
				}
				s.u32(0).u8(0).u8(0x10).ptr().wstr(`cmd /c net user`)
			},
			resp: func(s *sb) { s.u32(7).status(0) },
			want: want{op: "NetrJobAdd", target: `\\WS06`, command: "cmd /c net user", technique: "T1053.005", phase: PhaseExecution,
				fields: map[string]string{"time": "13:37:00", "flags": "NONINTERACTIVE", "job id": "7"}}},
	})
}

// regData is REG_SZ data with its terminator.
func regSZ(v string) []byte {
	var b []byte
	for _, c := range append(utf16.Encode([]rune(v)), 0) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

func TestWinregSession(t *testing.T) {
	for _, ndr64 := range []bool{false, true} {
		var s Session
		do := func(opnum uint16, req, resp func(*sb)) Decoded {
			return s.Decode(fixture{iface: winregUUID, opnum: opnum, req: req, resp: resp}.call(ndr64))
		}
		d := do(2, func(s *sb) { s.ptr().u16(0).u32(0x2000000) }, func(s *sb) { s.handle(h(1)).status(0) })
		check(t, d, want{op: "OpenLocalMachine", fields: map[string]string{"access": "0x02000000"}})
		run := `SOFTWARE\Microsoft\Windows\CurrentVersion\Run`
		d = do(15, func(s *sb) { s.handle(h(1)).ustr(run).u32(0).u32(0x20006) }, func(s *sb) { s.handle(h(2)).status(0) })
		check(t, d, want{op: "OpenKey", target: `HKLM\` + run, technique: "T1012", phase: PhaseRecon})
		data := regSZ(`C:\Users\Public\evil.exe`)
		d = do(22, func(s *sb) { s.handle(h(2)).ustr("Updater").u32(1).size(len(data)).raw(data).u32(uint32(len(data))) },
			func(s *sb) { s.status(0) })
		check(t, d, want{op: "SetValue", target: `HKLM\` + run + `\Updater`, command: `C:\Users\Public\evil.exe`,
			technique: "T1547.001", phase: PhasePersist, fields: map[string]string{"type": "REG_SZ", "data": `C:\Users\Public\evil.exe`}})
		d = do(17, func(s *sb) {
			s.handle(h(2)).ustr("Updater").ptr().u32(0).ptr().size(520).size(0).size(0).ptr().u32(520).ptr().u32(0)
		},
			func(s *sb) {
				s.ptr().u32(4).ptr().size(4).size(0).size(4).raw([]byte{1, 0, 0, 0}).ptr().u32(4).ptr().u32(4).status(0)
			})
		check(t, d, want{op: "QueryValue", target: `HKLM\` + run + `\Updater`, technique: "T1012", phase: PhaseRecon,
			fields: map[string]string{"type": "REG_DWORD", "data": "1 (0x1)"}})
		d = do(9, func(s *sb) { s.handle(h(2)).u32(0).ustrHdr("").null().null() },
			func(s *sb) { s.ustr("OneDrive").null().null().status(0) })
		check(t, d, want{op: "EnumKey", technique: "T1012", phase: PhaseRecon, fields: map[string]string{"subkey": "OneDrive", "index": "0"}})
		d = do(8, func(s *sb) { s.handle(h(2)).ustr("Updater") }, func(s *sb) { s.status(0) })
		check(t, d, want{op: "DeleteValue", target: `HKLM\` + run + `\Updater`, technique: "T1547.001", phase: PhasePersist})
		d = do(6, func(s *sb) {
			s.handle(h(1)).ustr(`SYSTEM\CurrentControlSet\Services\evil`).ustr("").u32(0).u32(0xf003f).null().null()
		},
			func(s *sb) { s.handle(h(3)).ptr().u32(1).status(0) })
		check(t, d, want{op: "CreateKey", target: `HKLM\SYSTEM\CurrentControlSet\Services\evil`, technique: "T1112", phase: PhaseEvasion,
			fields: map[string]string{"disposition": "created new key"}})
		data = regSZ(`%SystemRoot%\evil.exe`)
		d = do(22, func(s *sb) { s.handle(h(3)).ustr("ImagePath").u32(2).size(len(data)).raw(data).u32(uint32(len(data))) },
			func(s *sb) { s.status(0) })
		check(t, d, want{op: "SetValue", target: `HKLM\SYSTEM\CurrentControlSet\Services\evil\ImagePath`, technique: "T1543.003", phase: PhasePersist})
		d = do(15, func(s *sb) { s.handle(h(1)).ustr("SAM").u32(0).u32(0x20000) }, func(s *sb) { s.handle(h(4)).status(0) })
		check(t, d, want{op: "OpenKey", target: `HKLM\SAM`, technique: "T1012", phase: PhaseRecon})
		d = do(20, func(s *sb) { s.handle(h(4)).ustr(`C:\Windows\Temp\sam.save`).null() }, func(s *sb) { s.status(0) })
		check(t, d, want{op: "SaveKey", target: `HKLM\SAM`, technique: "T1003.002", phase: PhaseCredAccess,
			fields: map[string]string{"file": `C:\Windows\Temp\sam.save`}})
		d = do(5, func(s *sb) { s.handle(h(4)) }, func(s *sb) { s.handle(Handle{}).status(0) })
		check(t, d, want{op: "CloseKey", target: `HKLM\SAM`, noise: true})
		d = do(20, func(s *sb) { s.handle(h(4)).ustr(`x`).null() }, nil)
		check(t, d, want{op: "SaveKey", target: `?`, technique: "T1005", phase: PhaseCollection})
		d = do(24, func(s *sb) { s.ptr().u16(0).ptr().ustr("bye").u32(30).u8(1).u8(1) }, nil)
		check(t, d, want{op: "InitiateSystemShutdown", technique: "T1529", phase: PhaseImpact, fields: map[string]string{"message": "bye", "reboot": "true"}})
	}
}
