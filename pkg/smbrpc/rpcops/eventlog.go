package rpcops

import (
	"fmt"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// eventlog: EventLog Remoting Protocol (MS-EVEN, \pipe\eventlog) and its
// successor MS-EVEN6 (ncacn_ip_tcp). Clearing a log remotely is indicator
// removal (T1070.001); opening a "backup log" on a UNC path is
// authentication coercion (T1187, coerce.go). MS-EVEN operations are named as Samba and
// Wireshark name them (the spec's Elfr* names are cryptic).
var (
	eventlogUUID = mustUUID("82273fdc-e32a-18c3-3f78-827929dc23ea")
	even6UUID    = mustUUID("f6beaff7-1e19-4fbb-9f8f-b89e2018337c")
)

func init() { builders = append(builders, registerEventlog) }

func registerEventlog() {
	open := func(ansi, backup bool) op {
		return op{req: func(x *dc) { evtOpen(x, ansi, backup) }, opens: "eventlog", resp: evtOpenResp}
	}
	clearLog := func(ansi bool) op {
		return op{handle: true, req: func(x *dc) { evtClear(x, ansi) }, technique: "T1070.001", phase: PhaseEvasion}
	}
	register(&iface{name: "eventlog", uuid: eventlogUUID, pipes: []string{"eventlog"},
		names: []string{"ClearEventLogW", "BackupEventLogW", "CloseEventLog", "DeregisterEventSource",
			"GetNumRecords", "GetOldestRecord", "ChangeNotify", "OpenEventLogW", "RegisterEventSourceW",
			"OpenBackupEventLogW", "ReadEventLogW", "ReportEventW", "ClearEventLogA", "BackupEventLogA",
			"OpenEventLogA", "RegisterEventSourceA", "OpenBackupEventLogA", "ReadEventLogA", "ReportEventA",
			"RegisterClusterSvc", "DeregisterClusterSvc", "WriteClusterEvents", "GetLogInformation",
			"FlushEventLog", "ReportEventAndSourceW", "ReportEventExW", "ReportEventExA"},
		ops: map[uint16]op{
			0:  clearLog(false),
			1:  {handle: true, req: func(x *dc) { evtBackup(x, false) }, technique: "T1005", phase: PhaseCollection},
			2:  {handle: true, closes: true, noise: true},
			3:  {handle: true, closes: true, noise: true},
			4:  {handle: true, noise: true},
			5:  {handle: true, noise: true},
			7:  open(false, false),
			8:  open(false, false),
			9:  open(false, true),
			10: {handle: true, req: evtRead, technique: "T1654", phase: PhaseRecon},
			11: {handle: true, technique: "T1070", phase: PhaseEvasion},
			12: clearLog(true),
			13: {handle: true, req: func(x *dc) { evtBackup(x, true) }, technique: "T1005", phase: PhaseCollection},
			14: open(true, false),
			15: open(true, false),
			16: open(true, true),
			17: {handle: true, req: evtRead, technique: "T1654", phase: PhaseRecon},
			18: {handle: true, technique: "T1070", phase: PhaseEvasion},
		}})
	register(&iface{name: "even6", uuid: even6UUID,
		names: []string{"EvtRpcRegisterRemoteSubscription", "EvtRpcRemoteSubscriptionNextAsync",
			"EvtRpcRemoteSubscriptionNext", "EvtRpcRemoteSubscriptionWaitAsync",
			"EvtRpcRegisterControllableOperation", "EvtRpcRegisterLogQuery", "EvtRpcClearLog", "EvtRpcExportLog",
			"EvtRpcLocalizeExportLog", "EvtRpcMessageRender", "EvtRpcMessageRenderDefault", "EvtRpcQueryNext",
			"EvtRpcQuerySeek", "EvtRpcClose", "EvtRpcCancel", "EvtRpcAssertConfig", "EvtRpcRetractConfig",
			"EvtRpcOpenLogHandle", "EvtRpcGetLogFileInfo", "EvtRpcGetChannelList", "EvtRpcGetChannelConfig",
			"EvtRpcPutChannelConfig", "EvtRpcGetPublisherList", "EvtRpcGetPublisherListForChannel",
			"EvtRpcGetPublisherMetadata", "EvtRpcGetPublisherResourceMetadata", "EvtRpcGetEventMetadataEnum",
			"EvtRpcGetNextEventMetadata", "EvtRpcGetClassicLogDisplayName"},
		ops: map[uint16]op{
			0:  {req: even6Subscribe, technique: "T1654", phase: PhaseRecon},
			5:  {req: even6Query, technique: "T1654", phase: PhaseRecon},
			6:  {handle: true, req: even6Clear, technique: "T1070.001", phase: PhaseEvasion},
			7:  {handle: true, req: even6Export, technique: "T1654", phase: PhaseCollection},
			13: {handle: true, closes: true, noise: true},
			15: {req: even6PathFlags, technique: "T1562.002", phase: PhaseEvasion},
			16: {req: even6PathFlags, technique: "T1562.002", phase: PhaseEvasion},
			17: {req: even6PathFlags, technique: "T1654", phase: PhaseRecon},
			19: {req: even6Flags, technique: "T1654", phase: PhaseRecon},
			20: {req: even6PathFlags, technique: "T1654", phase: PhaseRecon},
			21: {handle: true, req: even6ChannelArg, technique: "T1562.002", phase: PhaseEvasion},
		}})
}

func evtOpenArgs(r *ndr.Reader, ansi, backup bool) (module string) {
	if r.Ptr() { // EVENTLOG_HANDLE: one character, not a string
		if ansi {
			r.U8()
		} else {
			r.U16()
		}
	}
	var reg string
	r.Construct(func() {
		if ansi {
			r.AnsiString(&module)
		} else {
			r.UnicodeString(&module)
		}
	})
	if !backup {
		r.Construct(func() {
			if ansi {
				r.AnsiString(&reg)
			} else {
				r.UnicodeString(&reg)
			}
		})
	}
	r.U32() // major
	r.U32() // minor
	return module
}

func evtOpen(x *dc, ansi, backup bool) {
	m := evtOpenArgs(x.r, ansi, backup)
	switch {
	case backup && CoercedHost(m) != "":
		// OpenBackupEventLog on a remote file ("CheeseOunce"): the event
		// log service opens it over SMB (or WebDAV) as the machine
		// account, authenticating to the host the caller named.
		x.d.Technique, x.d.Phase = TechCoerce, PhaseCredAccess
		x.coerce("backup file", m)
	case backup:
		x.add("backup file", m)
	default:
		x.add("log", m)
	}
	x.d.Target = m
	x.reqName = m
}

func evtOpenResp(x *dc) {
	x.returns(readHandle(x.r), handleInfo{kind: "eventlog", name: x.reqName})
}

func evtFileArg(r *ndr.Reader, ansi bool) (s string) {
	r.Construct(func() {
		if ansi {
			r.AnsiString(&s)
		} else {
			r.UnicodeString(&s)
		}
	})
	return s
}

func evtClear(x *dc, ansi bool) {
	if x.hOK {
		x.add("log", x.hInfo.name)
	}
	if x.r.Ptr() {
		x.add("backup file", evtFileArg(x.r, ansi))
	}
}

func evtBackup(x *dc, ansi bool) {
	if x.hOK {
		x.add("log", x.hInfo.name)
	}
	x.add("backup file", evtFileArg(x.r, ansi))
}

func evtRead(x *dc) {
	flags := x.r.U32()
	x.add("flags", flagNames(flags, []flagName{{1, "SEQUENTIAL_READ"}, {2, "SEEK_READ"}, {4, "FORWARDS_READ"}, {8, "BACKWARDS_READ"}}))
	x.add("offset", fmt.Sprint(x.r.U32()))
}

func even6Clear(x *dc) {
	ch := x.r.WString()
	backup := wstrPtr(x.r)
	x.r.U32() // flags
	x.d.Target = ch
	x.add("channel", ch)
	x.add("backup file", backup)
}

func even6Export(x *dc) {
	ch := wstrPtr(x.r)
	q := x.r.WString()
	f := x.r.WString()
	x.r.U32() // flags
	x.d.Target = ch
	x.add("channel", ch)
	x.add("query", truncate(q, 1024))
	x.add("file", f)
}

func even6Query(x *dc) {
	p := wstrPtr(x.r)
	q := x.r.WString()
	x.d.Target = p
	x.add("path", p)
	x.add("query", truncate(q, 1024))
}

func even6ChannelArg(x *dc) {
	ch := x.r.WString()
	x.d.Target = ch
	x.add("channel", ch)
}

// even6Subscribe: EvtRpcRegisterRemoteSubscription(channel (unique), query,
// bookmark (unique), flags): events pulled from the host as they come.
func even6Subscribe(x *dc) {
	ch := wstrPtr(x.r)
	q := x.r.WString()
	wstrPtr(x.r) // bookmark XML
	x.add("channel", ch)
	x.add("query", truncate(q, 1024))
	x.add("flags", hex32(x.r.U32()))
	x.d.Target = ch
}

// even6PathFlags: a channel or publisher path and flags (EvtRpcOpenLogHandle,
// EvtRpcGetChannelConfig, EvtRpcAssertConfig, EvtRpcRetractConfig).
func even6PathFlags(x *dc) {
	p := x.r.WString()
	x.add("path", p)
	x.add("flags", hex32(x.r.U32()))
	x.d.Target = p
}

func even6Flags(x *dc) { x.add("flags", hex32(x.r.U32())) }
