package rpcops

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// Task Scheduler Service Remoting Protocol (MS-TSCH): ITaskSchedulerService
// (what schtasks /s and impacket atexec use), the legacy ATSvc (at.exe),
// and SASec.
var (
	tschUUID  = mustUUID("86d35949-83c9-4044-b424-db363231fd0c")
	atsvcUUID = mustUUID("1ff70682-0a51-30e8-076d-740be8cee98b")
	sasecUUID = mustUUID("378e52b0-c0a9-11cf-822d-00aa0051e40f")
)

func init() { builders = append(builders, registerTsch) }

func registerTsch() {
	const st = "T1053.005"
	path := func(phase string) op {
		return op{req: tschPathArg, technique: st, phase: phase}
	}
	register(&iface{name: "ITaskSchedulerService", uuid: tschUUID, pipes: []string{"atsvc"},
		names: []string{"SchRpcHighestVersion", "SchRpcRegisterTask", "SchRpcRetrieveTask",
			"SchRpcCreateFolder", "SchRpcSetSecurity", "SchRpcGetSecurity", "SchRpcEnumFolders",
			"SchRpcEnumTasks", "SchRpcEnumInstances", "SchRpcGetInstanceInfo", "SchRpcStopInstance",
			"SchRpcStop", "SchRpcRun", "SchRpcDelete", "SchRpcRename", "SchRpcScheduledRuntimes",
			"SchRpcGetLastRunInfo", "SchRpcGetTaskInfo", "SchRpcGetNumberOfMissedRuns", "SchRpcEnableTask"},
		ops: map[uint16]op{
			0:  {noise: true},
			1:  {req: tschRegisterTask, resp: tschRegisterResp, technique: st, phase: PhaseExecution},
			2:  {req: tschRetrieveReq, resp: tschRetrieveResp, technique: st, phase: PhaseRecon},
			3:  {req: tschPathSDDLFlags(true), technique: st},
			4:  {req: tschPathSDDLFlags(false), technique: st, phase: PhaseEvasion},
			5:  {req: tschPathFlags, technique: st, phase: PhaseRecon},
			6:  {req: tschEnumReq, resp: tschEnumResp, technique: st, phase: PhaseRecon},
			7:  {req: tschEnumReq, resp: tschEnumResp, technique: st, phase: PhaseRecon},
			8:  {req: tschUniquePathFlags, technique: st, phase: PhaseRecon},
			11: {req: tschUniquePathFlags, technique: st},
			12: {req: tschRun, technique: st, phase: PhaseExecution},
			13: {req: tschPathFlags, technique: st},
			14: {req: tschRename, technique: st},
			16: path(PhaseRecon),
			17: {req: tschPathFlags, technique: st, phase: PhaseRecon},
			19: {req: tschEnable, technique: st},
		}})
	register(&iface{name: "atsvc", uuid: atsvcUUID, pipes: []string{"atsvc"},
		names: []string{"NetrJobAdd", "NetrJobDel", "NetrJobEnum", "NetrJobGetInfo"},
		ops: map[uint16]op{
			0: {req: atJobAdd, resp: atJobAddResp, technique: st, phase: PhaseExecution},
			1: {req: atJobDel, technique: st},
			2: {req: srvServerArg, technique: st, phase: PhaseRecon},
			3: {req: atJobGetInfo, technique: st, phase: PhaseRecon},
		}})
	register(&iface{name: "sasec", uuid: sasecUUID, pipes: []string{"atsvc"},
		names: []string{"SASetAccountInformation", "SASetNSAccountInformation",
			"SAGetNSAccountInformation", "SAGetAccountInformation"}})
}

func tschPathArg(x *dc) {
	p := x.r.WString()
	x.d.Target = p
	x.add("path", p)
}

func tschPathFlags(x *dc) {
	tschPathArg(x)
	x.r.U32()
}

// tschPathSDDLFlags decodes SchRpcCreateFolder (path, [unique] sddl,
// flags) and SchRpcSetSecurity (path, sddl, flags).
func tschPathSDDLFlags(unique bool) func(x *dc) {
	return func(x *dc) {
		tschPathArg(x)
		var sddl string
		if unique {
			sddl = wstrPtr(x.r)
		} else {
			sddl = x.r.WString()
		}
		x.add("sddl", sddl)
		x.r.U32()
	}
}

func tschRetrieveReq(x *dc) {
	tschPathArg(x)
	x.r.WString() // languages
	x.r.U32()     // number of languages
}

func tschUniquePathFlags(x *dc) {
	p := wstrPtr(x.r)
	x.d.Target = p
	x.add("path", p)
	x.r.U32()
}

type tschRegister struct {
	path, xml, sddl string
	flags, logon    uint32
	users           []string
}

func tschRegisterArgs(r *ndr.Reader) (a tschRegister) {
	a.path = wstrPtr(r)
	a.xml = r.WString()
	a.flags = r.U32()
	a.sddl = wstrPtr(r)
	a.logon = r.U32()
	r.U32() // cCreds
	if r.Ptr() {
		r.Construct(func() {
			n := r.CountUpTo(2*r.PtrSize() + 4)
			for i := 0; i < n; i++ {
				r.AlignP()
				if r.Ptr() {
					r.Defer(func() { a.users = append(a.users, r.WString()) })
				}
				if r.Ptr() {
					r.Defer(func() { r.WString() }) // the password: never shown
				}
				r.U32()
			}
		})
	}
	return a
}

var taskLogonTypes = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "NONE", 1: "PASSWORD", 2: "S4U", 3: "INTERACTIVE_TOKEN",
		4: "GROUP", 5: "SERVICE_ACCOUNT", 6: "INTERACTIVE_TOKEN_OR_PASSWORD"}
}}

var taskCreateFlags = []flagName{{0x1, "VALIDATE_ONLY"}, {0x2, "CREATE"}, {0x4, "UPDATE"},
	{0x8, "DISABLE"}, {0x10, "DONT_ADD_PRINCIPAL_ACE"}, {0x20, "IGNORE_REGISTRATION_TRIGGERS"}}

func tschRegisterTask(x *dc) {
	a := tschRegisterArgs(x.r)
	x.d.Target = a.path
	x.add("path", a.path)
	x.add("flags", flagNames(a.flags, taskCreateFlags))
	x.add("logon type", enumName(a.logon, taskLogonTypes.get()))
	x.add("sddl", a.sddl)
	for _, u := range a.users {
		x.add("credential user", u)
	}
	if a.xml == "" {
		return
	}
	t, err := parseTaskXML(a.xml)
	if err != nil {
		x.add("task xml", truncate(a.xml, 2048))
		x.add("decode error", "task xml: "+err.Error())
		return
	}
	t.fields(x)
	if t.persistent() {
		x.d.Phase = PhasePersist
	}
}

func tschRegisterResp(x *dc) {
	if x.r.Ptr() {
		p := x.r.WString()
		if p != x.d.Target {
			x.add("actual path", p)
		}
	}
}

func tschRetrieveResp(x *dc) {
	if !x.r.Ptr() {
		return
	}
	s := x.r.WString()
	if t, err := parseTaskXML(s); err == nil {
		t.fields(x)
	}
}

func tschEnumReq(x *dc) {
	p := x.r.WString()
	x.d.Target = p
	x.add("path", p)
	x.r.U32() // flags
	x.r.U32() // start index
	x.r.U32() // count requested
}

func tschEnumResp(x *dc) {
	r := x.r
	r.U32() // start index
	n := r.U32()
	if !r.Ptr() {
		return
	}
	var names []string
	r.Construct(func() {
		c := r.CountUpTo(r.PtrSize())
		if uint32(c) > n {
			c = int(n)
		}
		for i := 0; i < c; i++ {
			if r.Ptr() {
				r.Defer(func() { names = append(names, r.WString()) })
			}
		}
	})
	x.add("count", fmt.Sprint(n))
	for i, s := range names {
		if i < maxListed {
			x.add("name", s)
		}
	}
}

func tschRun(x *dc) {
	r := x.r
	p := r.WString()
	x.d.Target = p
	x.add("path", p)
	r.U32() // cArgs
	var args []string
	if r.Ptr() {
		r.Construct(func() {
			n := r.CountUpTo(r.PtrSize())
			for i := 0; i < n; i++ {
				if r.Ptr() {
					r.Defer(func() { args = append(args, r.WString()) })
				}
			}
		})
	}
	flags := r.U32()
	session := r.U32()
	user := wstrPtr(r)
	for i, a := range args {
		x.add(fmt.Sprintf("arg[%d]", i), a)
	}
	if flags != 0 {
		x.add("flags", flagNames(flags, []flagName{{0x1, "AS_SELF"}, {0x2, "IGNORE_CONSTRAINTS"},
			{0x4, "USE_SESSION_ID"}, {0x8, "USER_SID"}}))
	}
	if flags&0x4 != 0 {
		x.add("session", fmt.Sprint(session))
	}
	x.add("user", user)
}

func tschRename(x *dc) {
	p := x.r.WString()
	n := x.r.WString()
	x.d.Target = p
	x.add("path", p)
	x.add("new name", n)
}

func tschEnable(x *dc) {
	p := x.r.WString()
	x.d.Target = p
	x.add("path", p)
	x.add("enabled", fmt.Sprint(x.r.U32() != 0))
}

// task is the part of a Task Scheduler 2.0 XML definition a responder
// needs: what runs, as whom, and when.
type task struct {
	Author      string `xml:"RegistrationInfo>Author"`
	Description string `xml:"RegistrationInfo>Description"`
	URI         string `xml:"RegistrationInfo>URI"`
	Triggers    struct {
		Any []struct {
			XMLName       xml.Name
			StartBoundary string `xml:"StartBoundary"`
			UserID        string `xml:"UserId"`
			Interval      string `xml:"Repetition>Interval"`
			Subscription  string `xml:"Subscription"`
		} `xml:",any"`
	} `xml:"Triggers"`
	Principals []struct {
		UserID    string `xml:"UserId"`
		GroupID   string `xml:"GroupId"`
		LogonType string `xml:"LogonType"`
		RunLevel  string `xml:"RunLevel"`
	} `xml:"Principals>Principal"`
	Hidden  string `xml:"Settings>Hidden"`
	Actions struct {
		Exec []struct {
			Command   string `xml:"Command"`
			Arguments string `xml:"Arguments"`
			WorkDir   string `xml:"WorkingDirectory"`
		} `xml:"Exec"`
		ComHandler []struct {
			ClassID string `xml:"ClassId"`
			Data    string `xml:"Data"`
		} `xml:"ComHandler"`
	} `xml:"Actions"`
}

// maxTaskXML bounds the XML parsed (a real definition is a few KB).
const maxTaskXML = 256 << 10

func parseTaskXML(s string) (*task, error) {
	if len(s) > maxTaskXML {
		s = s[:maxTaskXML]
	}
	d := xml.NewDecoder(strings.NewReader(s))
	// The text was UTF-16 on the wire and is UTF-8 now, whatever the
	// declaration says.
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil }
	var t task
	if err := d.Decode(&t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (t *task) fields(x *dc) {
	var cmds []string
	for _, e := range t.Actions.Exec {
		c := strings.TrimSpace(e.Command + " " + e.Arguments)
		cmds = append(cmds, c)
		x.add("exec", c)
		x.add("working directory", e.WorkDir)
	}
	for _, c := range t.Actions.ComHandler {
		v := c.ClassID
		if n := clsidName(c.ClassID); n != "" {
			v += " (" + n + ")"
		}
		x.add("com handler", v)
	}
	if len(cmds) > 0 {
		x.d.Command = strings.Join(cmds, " & ")
	}
	for _, p := range t.Principals {
		who := p.UserID
		if who == "" {
			who = p.GroupID
		}
		v := who
		if p.RunLevel != "" || p.LogonType != "" {
			v += " (" + strings.Trim(strings.Join([]string{p.LogonType, p.RunLevel}, ", "), ", ") + ")"
		}
		x.add("principal", v)
	}
	for _, tr := range t.Triggers.Any {
		v := tr.XMLName.Local
		if tr.StartBoundary != "" {
			v += " from " + tr.StartBoundary
		}
		if tr.Interval != "" {
			v += " every " + tr.Interval
		}
		if tr.UserID != "" {
			v += " for " + tr.UserID
		}
		if tr.Subscription != "" {
			v += " on " + truncate(tr.Subscription, 256)
		}
		x.add("trigger", v)
	}
	if strings.EqualFold(t.Hidden, "true") {
		x.add("hidden", "true")
	}
	x.add("author", t.Author)
	x.add("description", t.Description)
}

// persistent: triggers that fire again by themselves make the task a
// foothold rather than a one-off execution (atexec's TimeTrigger in the
// past, run at once with SchRpcRun, is execution).
func (t *task) persistent() bool {
	for _, tr := range t.Triggers.Any {
		switch tr.XMLName.Local {
		case "LogonTrigger", "BootTrigger", "CalendarTrigger", "IdleTrigger", "EventTrigger",
			"SessionStateChangeTrigger", "RegistrationTrigger":
			return true
		case "TimeTrigger":
			if tr.Interval != "" {
				return true
			}
		}
	}
	return false
}

// atInfo reads an AT_INFO referent.
func atInfo(r *ndr.Reader) (jobTime uint64, dom uint32, dow, flags uint8, cmd string) {
	r.Construct(func() {
		r.AlignP()
		jobTime = r.U3264()
		dom = r.U32()
		dow = r.U8()
		flags = r.U8()
		if r.Ptr() {
			r.Defer(func() { cmd = r.WString() })
		}
	})
	return
}

var atFlags = []flagName{{0x1, "RUN_PERIODICALLY"}, {0x2, "EXEC_ERROR"}, {0x4, "RUNS_TODAY"},
	{0x8, "ADD_CURRENT_DATE"}, {0x10, "NONINTERACTIVE"}}

func atJobAdd(x *dc) {
	server := wstrPtr(x.r)
	jt, dom, dow, flags, cmd := atInfo(x.r)
	x.add("server", server)
	x.add("command", cmd)
	ms := jt % (24 * 3600 * 1000)
	x.add("time", fmt.Sprintf("%02d:%02d:%02d", ms/3600000, ms/60000%60, ms/1000%60))
	if dom != 0 {
		x.add("days of month", fmt.Sprintf("0x%08x", dom))
	}
	if dow != 0 {
		x.add("days of week", fmt.Sprintf("0x%02x", dow))
	}
	x.add("flags", flagNames(uint32(flags), atFlags))
	x.d.Command = cmd
	x.d.Target = server
	if flags&1 != 0 {
		x.d.Phase = PhasePersist
	}
}

func atJobAddResp(x *dc) { x.add("job id", fmt.Sprint(x.r.U32())) }

func atJobDel(x *dc) {
	server := wstrPtr(x.r)
	lo, hi := x.r.U32(), x.r.U32()
	x.add("server", server)
	x.add("jobs", fmt.Sprintf("%d-%d", lo, hi))
}

func atJobGetInfo(x *dc) {
	server := wstrPtr(x.r)
	x.add("server", server)
	x.add("job id", fmt.Sprint(x.r.U32()))
}
