package rpcops

import "fmt"

// MS-PLA, Performance Logs and Alerts (DCOM, dual interfaces: IDispatch's
// four methods, then the properties and methods in MS-PLA's order, the
// vtable slot being the opnum). Abused for NTLM coercion: a
// DataCollectorSet's IDataManager::Extract opens the cabinet file it is
// given, so a UNC path makes the service authenticate to that host with
// the machine account (a public impacket PoC: get_DataManager opnum
// 57, Extract opnum 31), and RemoteMonologue reaches the same Extract
// through ServerDataCollectorSet's IDispatch.
var (
	plaDataCollectorSetUUID = mustUUID("03837520-098b-11d8-9414-505054503030")
	plaDataManagerUUID      = mustUUID("03837541-098b-11d8-9414-505054503030")
)

func init() { builders = append(builders, registerPla) }

func registerPla() {
	clsidNames[mustUUID("03837521-098b-11d8-9414-505054503030")] = "DataCollectorSet (MS-PLA)"
	coerceCLSIDs[mustUUID("03837521-098b-11d8-9414-505054503030")] = "IDataManager::Extract of a UNC cabinet: the machine account authenticates (T1187)"
	disp := []string{"GetTypeInfoCount", "GetTypeInfo", "GetIDsOfNames", "Invoke"}
	set := append(append([]string(nil), disp...), "get_DataCollectors", "get_Duration", "put_Duration",
		"get_Description", "put_Description", "get_DescriptionUnresolved", "get_DisplayName", "put_DisplayName",
		"get_DisplayNameUnresolved", "get_Keywords", "put_Keywords", "get_LatestOutputLocation",
		"put_LatestOutputLocation", "get_Name", "get_OutputLocation", "get_RootPath", "put_RootPath", "get_Segment",
		"put_Segment", "get_SegmentMaxDuration", "put_SegmentMaxDuration", "get_SegmentMaxSize", "put_SegmentMaxSize",
		"get_SerialNumber", "put_SerialNumber", "get_Server", "get_Status", "get_Subdirectory", "put_Subdirectory",
		"get_SubdirectoryFormat", "put_SubdirectoryFormat", "get_SubdirectoryFormatPattern",
		"put_SubdirectoryFormatPattern", "get_Task", "put_Task", "get_TaskRunAsSelf", "put_TaskRunAsSelf",
		"get_TaskArguments", "put_TaskArguments", "get_TaskUserTextArguments", "put_TaskUserTextArguments",
		"get_Schedules", "get_SchedulesEnabled", "put_SchedulesEnabled", "get_UserAccount", "get_Xml",
		"get_Security", "put_Security", "get_StopOnCompletion", "put_StopOnCompletion", "get_DataManager",
		"SetCredentials", "Query", "Commit", "Delete", "Start", "Stop", "SetXml", "SetValue", "GetValue")
	bstrField := func(name string) op {
		return op{req: func(x *dc) { x.add(name, bstr(x.r)) }}
	}
	register(&iface{name: "IDataCollectorSet", uuid: plaDataCollectorSetUUID, orpc: true, names: dcomNames(set...),
		ops: map[uint16]op{
			5:  {req: dispGetIDsOfNames, resp: dispGetIDsOfNamesResp},
			6:  {req: dispInvoke, resp: dispInvokeResp},
			19: bstrField("output location"),
			23: bstrField("root path"),
			41: bstrField("task"), // a Task Scheduler task run when the set stops
			45: bstrField("task arguments"),
			57: {resp: dcomReturnedObject},
			58: {req: plaSetCredentials},
			59: {req: plaNameServer},
			60: {req: plaNameServer},
			64: {req: plaSetXML},
		}})
	mgr := append(append([]string(nil), disp...), "get_Enabled", "put_Enabled", "get_CheckBeforeRunning",
		"put_CheckBeforeRunning", "get_MinFreeDisk", "put_MinFreeDisk", "get_MaxSize", "put_MaxSize",
		"get_MaxFolderCount", "put_MaxFolderCount", "get_ResourcePolicy", "put_ResourcePolicy", "get_FolderActions",
		"get_ReportSchema", "put_ReportSchema", "get_ReportFileName", "put_ReportFileName", "get_RuleTargetFileName",
		"put_RuleTargetFileName", "get_EventsFileName", "put_EventsFileName", "get_Rules", "put_Rules", "Run", "Extract")
	register(&iface{name: "IDataManager", uuid: plaDataManagerUUID, orpc: true, names: dcomNames(mgr...),
		ops: map[uint16]op{
			5:  {req: dispGetIDsOfNames, resp: dispGetIDsOfNamesResp},
			6:  {req: dispInvoke, resp: dispInvokeResp},
			31: {req: plaExtract},
		}})
}

// plaExtract: Extract(CabFilename, DestinationPath): the service reads the
// cabinet; one on another host is coercion.
func plaExtract(x *dc) {
	cab := bstr(x.r)
	dest := bstr(x.r)
	if x.r.Err() != nil {
		return
	}
	x.add("destination", dest)
	if isUNC(cab) && CoercedHost(cab) != "" {
		x.d.Technique, x.d.Phase = TechCoerce, PhaseCredAccess
		x.coerce("cabinet", cab)
		return
	}
	x.add("cabinet", cab)
	x.d.Target = cab
}

// plaSetCredentials: SetCredentials(user, password): the account the set
// runs as; the password is never shown.
func plaSetCredentials(x *dc) {
	user := bstr(x.r)
	pw := bstr(x.r)
	if x.r.Err() != nil {
		return
	}
	x.add("user", user)
	x.add("password", map[bool]string{true: "set", false: "empty"}[pw != ""])
	x.d.Target = user
}

// plaNameServer: Query(name, server) and Commit(name, server, mode, ...).
func plaNameServer(x *dc) {
	name := bstr(x.r)
	server := bstr(x.r)
	if x.r.Err() != nil {
		return
	}
	x.d.Target = name
	x.add("name", name)
	x.add("server", server)
	if x.c.Opnum == 60 {
		if mode := x.r.U32(); x.r.Err() == nil {
			x.add("mode", flagNames(mode, []flagName{{1, "CreateNew"}, {2, "Modify"}, {0x10, "UpdateRunningInstance"},
				{0x20, "FlushTrace"}, {0x1000, "ValidateOnly"}}))
		}
	}
}

func plaSetXML(x *dc) {
	xml := bstr(x.r)
	x.add("xml", truncate(xml, 512))
	if n := len(xml); n > 512 {
		x.add("xml bytes", fmt.Sprint(n))
	}
}
