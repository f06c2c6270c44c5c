package rpcops

import (
	"fmt"
	"strings"
)

// MS-TSTS, the terminal-services runtime interfaces that qwinsta, quser,
// query session /server, SessionGopher-style inventories and session
// hijacking tools call (layouts from the MS-TSTS IDL, checked against
// impacket's tsts.py):
//
//   - Who is logged on where (RpcGetEnumResult(Ex), RpcGetAllSessions,
//     RpcGetSessionIds, RpcGetUserName, RpcGetSessionInformation(Ex),
//     RpcWinStationEnumerate, RpcWinStationQueryInformation, RCMPublic's
//     client data): T1033 (System Owner/User Discovery), reconnaissance.
//   - Taking over another user's session: RpcConnect (TermSrvSession) and
//     RpcWinStationConnect (the legacy API, tscon's call) connect a
//     session to another one; RpcWinStationShadow, RCMPublic's RpcShadow
//     and SessEnvPublicRpc's RpcShadow2 watch or control it: T1563.002
//     (Remote Service Session Hijacking: RDP Hijacking), lateral movement.
//     The password RpcConnect may carry is never shown: only whether one
//     was given.
//   - Logoff, disconnect and reset of a session are named with the
//     session and no technique (administration as often as attack), as are
//     process listings (T1057, reconnaissance) and process termination.
//   - RpcWinStationShutdownSystem shuts the server down: T1529.
var (
	tsSessionUUID   = mustUUID("484809d6-4239-471b-b5bc-61df8c23ac48")
	tsEnumUUID      = mustUUID("88143fd0-c28d-4b2b-8fef-8d882f6a9390")
	tsRCMPublicUUID = mustUUID("bde95fdf-eee0-45de-9e12-e5a61cd0d4fe")
	tsSessEnvUUID   = mustUUID("1257b580-ce2f-4109-82d6-a9459d0bf6bc")
	tsLegacyUUID    = mustUUID("5ca4a760-ebb1-11cf-8611-00a0245420ed")
)

// Techniques of MS-TSTS calls.
const (
	TechUserDiscovery = "T1033"
	TechRDPHijack     = "T1563.002"
)

func init() { builders = append(builders, registerTSTS) }

func registerTSTS() {
	recon := func(req func(x *dc)) op {
		return op{req: req, technique: TechUserDiscovery, phase: PhaseRecon}
	}
	sessionArg := func(x *dc) { x.session("session", x.r.U32()) }
	// Calls on a session handle: the handle says which session.
	onSession := op{handle: true}
	register(&iface{name: "TermSrvSession", uuid: tsSessionUUID, pipes: []string{"lsm_api_service"},
		names: []string{"RpcOpenSession", "RpcCloseSession", "RpcConnect", "RpcDisconnect", "RpcLogoff",
			"RpcGetUserName", "RpcGetTerminalName", "RpcGetState", "RpcIsSessionDesktopLocked",
			"RpcShowMessageBox", "RpcGetTimes", "RpcGetSessionCounters", "RpcGetSessionInformation",
			"RpcSwitchToServicesSession", "RpcRevertFromServicesSession", "RpcGetLoggedOnCount",
			"RpcGetSessionType", "RpcGetSessionInformationEx"},
		ops: map[uint16]op{
			0: {req: tsOpenSession, opens: "session", noise: true},
			1: {handle: true, closes: true, noise: true},
			2: {handle: true, req: tsConnect, technique: TechRDPHijack, phase: PhaseLateral},
			3: onSession,
			4: onSession,
			5: {handle: true, resp: tsUserNameResp, technique: TechUserDiscovery, phase: PhaseRecon},
			6: onSession, 7: onSession, 8: onSession, 9: onSession, 10: onSession, 11: onSession,
			12: {handle: true, technique: TechUserDiscovery, phase: PhaseRecon},
			17: recon(sessionArg),
		}})
	register(&iface{name: "TermSrvEnumeration", uuid: tsEnumUUID, pipes: []string{"lsm_api_service"},
		names: []string{"RpcOpenEnum", "RpcCloseEnum", "RpcFilterByState", "RpcFilterByCallersName",
			"RpcEnumAddFilter", "RpcGetEnumResult", "RpcFilterBySessionType", "",
			"RpcGetSessionIds", "RpcGetEnumResultEx", "RpcGetAllSessions", "RpcGetAllSessionsEx"},
		ops: map[uint16]op{
			0:  {opens: "session enumeration", noise: true},
			1:  {handle: true, closes: true, noise: true},
			5:  {handle: true, req: tsLevel, resp: tsEntries, technique: TechUserDiscovery, phase: PhaseRecon},
			8:  {resp: tsEntries, technique: TechUserDiscovery, phase: PhaseRecon},
			9:  {handle: true, req: tsLevel, resp: tsEntries, technique: TechUserDiscovery, phase: PhaseRecon},
			10: {req: tsLevel, resp: tsEntries, technique: TechUserDiscovery, phase: PhaseRecon},
			11: {req: tsLevel, technique: TechUserDiscovery, phase: PhaseRecon},
		}})
	register(&iface{name: "RCMPublic", uuid: tsRCMPublicUUID, pipes: []string{"termsrv_api_service"},
		names: []string{"RpcGetClientData", "RpcGetConfigData", "RpcGetProtocolStatus",
			"RpcGetLastInputTime", "RpcGetRemoteAddress", "RpcShadow", "RpcShadowTarget", "RpcShadowStop",
			"RpcGetAllListeners", "RpcGetSessionProtocolLastInputTime", "RpcGetUserCertificates",
			"RpcQuerySessionData"},
		ops: map[uint16]op{
			0: recon(sessionArg), 1: recon(sessionArg),
			2: {req: sessionArg}, 3: {req: sessionArg},
			4: recon(sessionArg),
			// RpcShadow (MS-TSTS 2008 revision): szTargetServerName,
			// TargetSessionId.
			5: {req: func(x *dc) {
				x.add("server", x.r.WString())
				x.session("session", x.r.U32())
			}, technique: TechRDPHijack, phase: PhaseLateral},
			7: {req: sessionArg},
		}})
	register(&iface{name: "SessEnvPublicRpc", uuid: tsSessEnvUUID, pipes: []string{"sessenvpublicrpc"},
		names: []string{"RpcShadow2"},
		ops: map[uint16]op{
			0: {req: tsShadow2, technique: TechRDPHijack, phase: PhaseLateral},
		}})
	legacyNames := make([]string, 76)
	for n, s := range map[int]string{0: "RpcWinStationOpenServer", 1: "RpcWinStationCloseServer",
		2: "RpcIcaServerPing", 3: "RpcWinStationEnumerate", 4: "RpcWinStationRename",
		5: "RpcWinStationQueryInformation", 6: "RpcWinStationSetInformation", 7: "RpcWinStationSendMessage",
		8: "RpcLogonIdFromWinStationName", 9: "RpcWinStationNameFromLogonId", 10: "RpcWinStationConnect",
		11: "RpcWinStationVirtualOpen", 12: "RpcWinStationBeepOpen", 13: "RpcWinStationDisconnect",
		14: "RpcWinStationReset", 15: "RpcWinStationShutdownSystem", 16: "RpcWinStationWaitSystemEvent",
		17: "RpcWinStationShadow", 18: "RpcWinStationShadowTargetSetup", 19: "RpcWinStationShadowTarget",
		26: "RpcWinStationSetPoolCount", 27: "RpcWinStationQueryUpdateRequired", 28: "RpcWinStationCallback",
		29: "RpcWinStationBreakPoint", 30: "RpcWinStationReadRegistry", 31: "RpcWinStationWaitForConnect",
		32: "RpcWinStationNotifyLogon", 33: "RpcWinStationNotifyLogoff", 34: "OldRpcWinStationEnumerateProcesses",
		35: "RpcWinStationAnnoyancePopup", 36: "RpcWinStationEnumerateProcesses", 37: "RpcWinStationTerminateProcess",
		42: "RpcWinStationNtsdDebug", 43: "RpcWinStationGetAllProcesses", 44: "RpcWinStationGetProcessSid",
		45: "RpcWinStationGetTermSrvCountersValue", 46: "RpcWinStationReInitializeSecurity",
		53: "RpcWinStationGetLanAdapterName", 55: "RpcWinStationQueryLogonCredentials",
		58: "RpcWinStationUpdateSettings", 59: "RpcWinStationShadowStop", 60: "RpcWinStationCloseServerEx",
		61: "RpcWinStationIsHelpAssistantSession", 62: "RpcWinStationGetMachinePolicy",
		65: "RpcWinStationCheckLoopBack", 66: "RpcConnectCallback", 70: "RpcWinStationGetAllProcesses_NT6",
		75: "RpcWinStationOpenSessionDirectory"} {
		legacyNames[n] = s
	}
	logonID := func(x *dc) { x.session("session", x.r.U32()) }
	procs := op{handle: true, technique: "T1057", phase: PhaseRecon}
	register(&iface{name: "winstation", uuid: tsLegacyUUID, pipes: []string{"ctx_winstation_api_service"},
		names: legacyNames,
		ops: map[uint16]op{
			0:  {opens: "winstation server", noise: true},
			1:  {handle: true, closes: true, noise: true},
			3:  {handle: true, technique: TechUserDiscovery, phase: PhaseRecon},
			5:  {handle: true, req: tsQueryInfo, technique: TechUserDiscovery, phase: PhaseRecon},
			7:  {handle: true, req: logonID},
			10: {handle: true, req: tsWinStationConnect, technique: TechRDPHijack, phase: PhaseLateral},
			13: {handle: true, req: logonID},
			14: {handle: true, req: logonID},
			15: {handle: true, req: tsShutdownSystem, technique: TechShutdown, phase: PhaseImpact},
			17: {handle: true, req: tsWinStationShadow, technique: TechRDPHijack, phase: PhaseLateral},
			34: procs, 36: procs, 43: procs, 70: procs,
			37: {handle: true, req: func(x *dc) {
				x.add("process id", fmt.Sprint(x.r.U32()))
				x.add("exit code", fmt.Sprint(x.r.U32()))
			}},
			59: {handle: true, req: logonID},
		}})
}

// session adds a session id field; -1 (0xffffffff) is "the caller's
// session", 65536 the console in the legacy API.
func (x *dc) session(name string, id uint32) {
	if x.r.Err() != nil {
		return
	}
	v := fmt.Sprint(id)
	if id == 0xffffffff {
		v = "current (-1)"
	}
	x.add(name, v)
	if x.d.Target == "" {
		x.d.Target = "session " + v
	}
}

// tsOpenSession reads RpcOpenSession's SessionId: the handle it returns
// is named for the session.
func tsOpenSession(x *dc) {
	x.session("session", x.r.U32())
}

// tsConnect reads RpcConnect: TargetSessionId and szPassword. The
// session whose handle the call acts on is connected to the target: the
// target's user's desktop is taken over.
func tsConnect(x *dc) {
	r := x.r
	target := r.U32()
	pw := r.WString()
	if r.Err() != nil {
		return
	}
	x.session("onto session", target)
	x.add("password given", fmt.Sprint(pw != ""))
}

// tsUserNameResp reads RpcGetUserName's pszUserName and pszDomain.
func tsUserNameResp(x *dc) {
	user, dom := wstrPtr(x.r), wstrPtr(x.r)
	if x.r.Err() != nil || user == "" {
		return
	}
	if dom != "" {
		user = dom + `\` + user
	}
	x.add("user", user)
}

func tsLevel(x *dc) { x.add("level", fmt.Sprint(x.r.U32())) }

// tsEntries reads the session count the enumeration calls return last,
// just before their return value (pEntries, pcSessionIds, pcEntries).
func tsEntries(x *dc) {
	b := x.c.Response
	if len(b) < 8 || x.d.Status != 0 {
		return
	}
	n := newReader(x.c, b[len(b)-8:]).U32()
	x.add("sessions", fmt.Sprint(n))
}

// tsShadow2 reads RpcShadow2: TargetSessionId, eRequestControl,
// eRequestPermission, cchInvitation.
func tsShadow2(x *dc) {
	r := x.r
	id := r.U32()
	ctl := r.Enum()
	perm := r.Enum()
	if r.Err() != nil {
		return
	}
	x.session("session", id)
	x.add("control", enumName(ctl, map[uint32]string{0: "view", 1: "take control"}))
	x.add("permission", enumName(perm, map[uint32]string{0: "silent (user not asked)", 1: "user asked"}))
}

// tsQueryInfo reads RpcWinStationQueryInformation: LogonId and the
// information class (WINSTATIONINFOCLASS).
func tsQueryInfo(x *dc) {
	r := x.r
	id := r.U32()
	class := r.U32()
	if r.Err() != nil {
		return
	}
	x.session("session", id)
	x.add("class", enumName(class, map[uint32]string{0: "WinStationCreateData", 1: "WinStationConfiguration",
		2: "WinStationPdParams", 3: "WinStationWd", 4: "WinStationPd", 5: "WinStationPrinter",
		6: "WinStationClient", 7: "WinStationModules", 8: "WinStationInformation",
		14: "WinStationUserToken", 24: "WinStationLoadBalanceSessionTarget", 27: "WinStationRemoteAddress"}))
}

// tsWinStationConnect reads RpcWinStationConnect: ClientLogonId,
// ConnectLogonId (the session taken) and TargetLogonId (where it is
// connected to), then the password (never shown).
func tsWinStationConnect(x *dc) {
	r := x.r
	r.U32() // ClientLogonId
	connect := r.U32()
	target := r.U32()
	// pPassword is a top-level [size_is] pointer, so [ref]: no referent
	// id, its conformance then the characters.
	pw := strings.Trim(r.UTF16(r.Count(2)), "\x00") != ""
	r.U32() // PasswordSize
	if r.Err() != nil {
		return
	}
	x.session("session", connect)
	x.session("onto session", target)
	x.add("password given", fmt.Sprint(pw))
}

// tsShutdownSystem reads RpcWinStationShutdownSystem: ClientLogonId and
// ShutdownFlags (WSD_*).
func tsShutdownSystem(x *dc) {
	r := x.r
	r.U32()
	flags := r.U32()
	if r.Err() != nil {
		return
	}
	x.add("flags", flagNames(flags, []flagName{{0x1, "LOGOFF"}, {0x2, "SHUTDOWN"}, {0x4, "REBOOT"}, {0x8, "POWEROFF"}, {0x10, "FASTREBOOT"}}))
	x.d.Target = "shutdown"
	if flags&0x14 != 0 {
		x.d.Target = "reboot"
	}
}

// tsWinStationShadow reads RpcWinStationShadow: LogonId (the shadowing
// session), pTargetServerName (a unique counted WCHAR array), NameSize,
// TargetLogonId (the session watched).
func tsWinStationShadow(x *dc) {
	r := x.r
	r.U32()
	var server string
	if r.Ptr() {
		server = r.UTF16(r.Count(2))
	}
	r.U32() // NameSize
	target := r.U32()
	if r.Err() != nil {
		return
	}
	x.add("server", server)
	x.session("session", target)
}
