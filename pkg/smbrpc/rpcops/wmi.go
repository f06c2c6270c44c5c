package rpcops

import (
	"fmt"
	"strings"
)

// WMI over DCOM (MS-WMI). Most WMI traffic is sealed (packet privacy):
// then only the operation is known, which OpName still names.
var (
	wbemLevel1LoginUUID = mustUUID("f309ad18-d86a-11d0-a075-00c04fb68820")
	wbemServicesUUID    = mustUUID("9556dc99-828c-11cf-a37e-00aa003240c7")
	wbemClassObjectCLS  = mustUUID("4590f812-1d3a-11d0-891f-00aa004b2e24")
)

func init() { builders = append(builders, registerWmi) }

func registerWmi() {
	register(&iface{name: "IWbemLevel1Login", uuid: wbemLevel1LoginUUID, orpc: true,
		names: dcomNames("EstablishPosition", "RequestChallenge", "WBEMLogin", "NTLMLogin"),
		ops: map[uint16]op{
			3: {noise: true},
			6: {req: wmiNTLMLogin, resp: wmiNTLMLoginResp, technique: "T1047", phase: PhaseLateral},
		}})
	const t = "T1047"
	path := func(phase string) op { return op{req: wmiPathArg, technique: t, phase: phase} }
	query := func(notify bool) op {
		return op{req: func(x *dc) { wmiQuery(x, notify) }, technique: t, phase: PhaseRecon}
	}
	put := op{req: wmiPutInstance, technique: t, phase: PhaseExecution}
	exec := op{req: wmiExecMethod, technique: t, phase: PhaseExecution}
	register(&iface{name: "IWbemServices", uuid: wbemServicesUUID, orpc: true,
		names: dcomNames("OpenNamespace", "CancelAsyncCall", "QueryObjectSink", "GetObject", "GetObjectAsync",
			"PutClass", "PutClassAsync", "DeleteClass", "DeleteClassAsync", "CreateClassEnum",
			"CreateClassEnumAsync", "PutInstance", "PutInstanceAsync", "DeleteInstance", "DeleteInstanceAsync",
			"CreateInstanceEnum", "CreateInstanceEnumAsync", "ExecQuery", "ExecQueryAsync",
			"ExecNotificationQuery", "ExecNotificationQueryAsync", "ExecMethod", "ExecMethodAsync"),
		ops: map[uint16]op{
			3:  {req: wmiPathArg, technique: t},
			4:  {noise: true},
			5:  {noise: true},
			6:  path(PhaseRecon),
			7:  path(PhaseRecon),
			8:  {req: wmiPutClass, technique: t, phase: PhasePersist},
			9:  {req: wmiPutClass, technique: t, phase: PhasePersist},
			10: path(""),
			11: path(""),
			12: path(PhaseRecon),
			13: path(PhaseRecon),
			14: put,
			15: put,
			16: path(""),
			17: path(""),
			18: path(PhaseRecon),
			19: path(PhaseRecon),
			20: query(false),
			21: query(false),
			22: query(true),
			23: query(true),
			24: exec,
			25: exec,
		}})
	dn := func(names ...string) []string { return dcomNames(names...) }
	for _, w := range []struct {
		uuid, name string
		names      []string
	}{
		{"027947e1-d731-11ce-a357-000000000001", "IEnumWbemClassObject", dn("Reset", "Next", "NextAsync", "Clone", "Skip")},
		{"44aca675-e8fc-11d0-a07c-00c04fb68820", "IWbemCallResult", dn("GetResultObject", "GetResultString", "GetResultServices", "GetCallStatus")},
		{"9f6c78ef-fce5-42fa-abea-3e7df91921dc", "IWbemLoginClientID", dn("SetClientInfo")},
		{"d4781cd6-e5d3-44df-ad94-930efe48a887", "IWbemLoginHelper", dn("SetEvent")},
		{"1c1c45ee-4395-11d2-b60b-00104b703efd", "IWbemFetchSmartEnum", dn("GetSmartEnum")},
		{"423ec01e-2e35-11d2-b604-00104b703efd", "IWbemWCOSmartEnum", dn("Next")},
		{"7c857801-7381-11cf-884d-00aa004b2e24", "IWbemObjectSink", dn("Indicate", "SetStatus")},
		{"2c9273e0-1dc3-11d3-b364-00105a1f8177", "IWbemRefreshingServices", dn("AddObjectToRefresher",
			"AddObjectToRefresherByTemplate", "AddEnumToRefresher", "RemoveObjectFromRefresher",
			"GetRemoteRefresher", "ReconnectRemoteRefresher")},
		{"f1e9c5b2-f59b-11d2-b362-00105a1f8177", "IWbemRemoteRefresher", dn("RemoteRefresh", "StopRefreshing", "")},
		{"b7b31df9-d515-11d3-a11c-00105a1f8177", "IWbemShutdown", dn("Shutdown")},
		{"c49e32c7-bc8b-11d2-85d4-00105a1f8304", "IWbemBackupRestore", dn("Backup", "Restore")},
		{"a359dec5-e813-4834-8a2a-ba7f1d777d76", "IWbemBackupRestoreEx", dn("Backup", "Restore", "Pause", "Resume")},
	} {
		ops := map[uint16]op{}
		for i := range w.names {
			if i >= 3 {
				ops[uint16(i)] = op{noise: true}
			}
		}
		register(&iface{name: w.name, uuid: mustUUID(w.uuid), orpc: true, names: w.names, ops: ops})
	}
}

func wmiNTLMLogin(x *dc) {
	r := x.r
	ns := wstrPtr(r)
	locale := wstrPtr(r)
	r.U32() // lFlags
	x.add("namespace", ns)
	x.add("locale", locale)
	x.d.Target = ns
}

// wmiNTLMLoginResp ties the IWbemServices pointer returned to WMI, so the
// calls on it are recognised on their own connection.
func wmiNTLMLoginResp(x *dc) {
	if o, ok := parseObjref(mInterfacePointer(x.r)); ok {
		x.add("object", fmt.Sprintf("IWbemServices IPID {%s}", UUIDString(o.ipid)))
		x.s.Shared.add(o.ipid, mustUUID("8bc3f05e-d86b-11d0-a075-00c04fb68820"), wbemServicesUUID)
		x.s.learn(fmt.Sprintf("ns:%x", o.ipid), x.d.Target)
	}
}

// wmiNamespace names the namespace of the IWbemServices object a call is
// made on (learnt from NTLMLogin), which is all a sealed call shows: a
// PutInstance into root\subscription is event subscription persistence.
func wmiNamespace(x *dc) {
	ns := x.s.lookup(fmt.Sprintf("ns:%x", x.c.Object))
	if ns == "" {
		return
	}
	if x.d.Target == "" {
		x.d.Target = ns
	}
	if x.c.Opnum == 14 || x.c.Opnum == 15 {
		if strings.HasSuffix(strings.ToLower(ns), `\subscription`) {
			x.d.Technique, x.d.Phase = "T1546.003", PhasePersist
		}
	}
}

func wmiPathArg(x *dc) {
	p := bstr(x.r)
	x.add("path", p)
	x.d.Target = p
}

// wmiQuery decodes ExecQuery and ExecNotificationQuery (WQL).
func wmiQuery(x *dc, notify bool) {
	lang := bstr(x.r)
	q := bstr(x.r)
	x.add("language", lang)
	x.add("query", q)
	x.d.Target = truncate(q, 256)
	if notify {
		x.d.Phase = PhasePersist
	}
}

// wmiObjectArg reads an [in] IWbemClassObject* and decodes the object.
func wmiObjectArg(x *dc) *wmiObject {
	b := mInterfacePointer(x.r)
	o, ok := parseObjref(b)
	if !ok || o.flags != 4 {
		return nil
	}
	obj, err := parseWMIObject(o.data)
	if err != nil {
		x.add("decode error", "wmi object: "+err.Error())
		for _, s := range wmiStrings(o.data) {
			x.add("object string", truncate(s, 512))
		}
		return nil
	}
	return obj
}

// wmiObjectFields adds a decoded object's class and set values.
func wmiObjectFields(x *dc, o *wmiObject) {
	x.add("class", o.class)
	for _, p := range o.props {
		if p.set && p.value != "" && !strings.HasPrefix(p.name, "__") {
			x.add(p.name, truncate(p.value, 2048))
		}
	}
}

func wmiExecMethod(x *dc) {
	r := x.r
	path := bstr(r)
	method := bstr(r)
	r.U32()              // lFlags
	mInterfacePointer(r) // context
	x.d.Target = path + "." + method
	x.add("object", path)
	x.add("method", method)
	if o := wmiObjectArg(x); o != nil {
		wmiObjectFields(x, o)
		if cmd := o.prop("CommandLine"); cmd != "" {
			x.d.Command = cmd
		}
	}
	if strings.EqualFold(method, "Create") && strings.Contains(strings.ToLower(path), "win32_process") {
		x.d.Phase = PhaseExecution
	}
}

// wmiPutInstance: creating __EventFilter, an event consumer and the
// __FilterToConsumerBinding that joins them is WMI event subscription
// persistence (T1546.003).
func wmiPutInstance(x *dc) {
	o := wmiObjectArg(x)
	if o == nil {
		return
	}
	wmiObjectFields(x, o)
	x.d.Target = o.class
	if n := o.prop("Name"); n != "" {
		x.d.Target += ` "` + n + `"`
	}
	switch strings.ToLower(o.class) {
	case "__eventfilter", "__filtertoconsumerbinding", "commandlineeventconsumer",
		"activescripteventconsumer", "logfileeventconsumer", "ntlogeventconsumer", "smtpeventconsumer":
		x.d.Technique, x.d.Phase = "T1546.003", PhasePersist
	}
	for _, k := range []string{"CommandLineTemplate", "ExecutablePath", "ScriptText", "ScriptFileName"} {
		if v := o.prop(k); v != "" && x.d.Command == "" {
			x.d.Command = truncate(v, 4096)
		}
	}
}

func wmiPutClass(x *dc) {
	if o := wmiObjectArg(x); o != nil {
		x.add("class", o.class)
		x.add("superclass", o.super)
		x.d.Target = o.class
	}
}
