package demogen

import (
	"html"
	"time"
)

// Task Scheduler Service Remoting Protocol (MS-TSCH 3.2.5.4): the
// ITaskSchedulerService calls an atexec-like tool makes over \pipe\atsvc.

var ifTaskScheduler = rpcIface{"ITaskSchedulerService", mustGUID("86d35949-83c9-4044-b424-db363231fd0c"), 1, 0}

// ITaskSchedulerService opnums.
const (
	opSchRpcRegisterTask = 1
	opSchRpcRun          = 12
	opSchRpcDelete       = 13
)

const (
	taskCreate    = 0x2
	logonNone     = 0 // TASK_LOGON_NONE: the principal in the XML decides
	schRunAsSelf  = 0
	hresultOK     = 0
	taskXMLHeader = `<?xml version="1.0" encoding="UTF-16"?>` + "\r\n"
)

// taskXML is a one-shot task (a TimeTrigger in the past, started at once
// with SchRpcRun) that runs command with arguments as SYSTEM, hidden.
func taskXML(command, args string, registered time.Time) string {
	start := registered.Add(-36 * time.Hour).UTC().Format("2006-01-02T15:04:05")
	return taskXMLHeader +
		`<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">` + "\r\n" +
		"  <Triggers>\r\n" +
		"    <TimeTrigger>\r\n" +
		"      <StartBoundary>" + start + "</StartBoundary>\r\n" +
		"      <Enabled>true</Enabled>\r\n" +
		"    </TimeTrigger>\r\n" +
		"  </Triggers>\r\n" +
		"  <Principals>\r\n" +
		`    <Principal id="LocalSystem">` + "\r\n" +
		"      <UserId>S-1-5-18</UserId>\r\n" +
		"      <RunLevel>HighestAvailable</RunLevel>\r\n" +
		"    </Principal>\r\n" +
		"  </Principals>\r\n" +
		"  <Settings>\r\n" +
		"    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\r\n" +
		"    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\r\n" +
		"    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\r\n" +
		"    <AllowHardTerminate>true</AllowHardTerminate>\r\n" +
		"    <Enabled>true</Enabled>\r\n" +
		"    <Hidden>true</Hidden>\r\n" +
		"    <ExecutionTimeLimit>P3D</ExecutionTimeLimit>\r\n" +
		"    <Priority>7</Priority>\r\n" +
		"  </Settings>\r\n" +
		`  <Actions Context="LocalSystem">` + "\r\n" +
		"    <Exec>\r\n" +
		"      <Command>" + html.EscapeString(command) + "</Command>\r\n" +
		"      <Arguments>" + html.EscapeString(args) + "</Arguments>\r\n" +
		"    </Exec>\r\n" +
		"  </Actions>\r\n" +
		"</Task>\r\n"
}

// SchRpcRegisterTask (opnum 1).
func tschRegisterTask(path, xml string) (req, resp []byte) {
	var w ndrWriter
	w.wstringPtr(path)
	w.wstring(xml)
	w.u32(taskCreate)
	w.ptr(false) // sddl
	w.u32(logonNone)
	w.u32(0)     // cCreds
	w.ptr(false) // pCreds
	v := ndrWriter{refID: replyRefs}
	v.wstringPtr(path) // pActualPath
	v.ptr(false)       // pErrorInfo
	v.u32(hresultOK)
	return w.b, v.b
}

// SchRpcRun (opnum 12) with no arguments; the response carries the GUID
// of the running instance.
func tschRun(path string, instance guid) (req, resp []byte) {
	var w ndrWriter
	w.wstring(path)
	w.u32(0)     // cArgs
	w.ptr(false) // pArgs
	w.u32(schRunAsSelf)
	w.u32(0)     // sessionId
	w.ptr(false) // user
	v := ndrWriter{refID: replyRefs}
	v.uuid(instance)
	v.u32(hresultOK)
	return w.b, v.b
}

// SchRpcDelete (opnum 13).
func tschDelete(path string) (req, resp []byte) {
	var w ndrWriter
	w.wstring(path)
	w.u32(0)
	v := ndrWriter{refID: replyRefs}
	v.u32(hresultOK)
	return w.b, v.b
}
