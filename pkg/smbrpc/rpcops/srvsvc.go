package rpcops

import (
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// srvsvc: Server Service Remote Protocol (MS-SRVS); wkssvc: Workstation
// Service Remote Protocol (MS-WKST). Names are the spec's.
var (
	srvsvcUUID = mustUUID("4b324fc8-1670-01d3-1278-5a47bf6ee188")
	wkssvcUUID = mustUUID("6bffd098-a112-3610-9833-46c3f87e345a")
)

func init() { builders = append(builders, registerSrvsvc) }

func registerSrvsvc() {
	shareEnum := op{req: srvShareEnumReq, resp: srvShareEnumResp, technique: "T1135", phase: PhaseRecon}
	register(&iface{name: "srvsvc", uuid: srvsvcUUID, pipes: []string{"srvsvc"},
		names: []string{"NetrCharDevEnum", "NetrCharDevGetInfo", "NetrCharDevControl", "NetrCharDevQEnum",
			"NetrCharDevQGetInfo", "NetrCharDevQSetInfo", "NetrCharDevQPurge", "NetrCharDevQPurgeSelf",
			"NetrConnectionEnum", "NetrFileEnum", "NetrFileGetInfo", "NetrFileClose", "NetrSessionEnum",
			"NetrSessionDel", "NetrShareAdd", "NetrShareEnum", "NetrShareGetInfo", "NetrShareSetInfo",
			"NetrShareDel", "NetrShareDelSticky", "NetrShareCheck", "NetrServerGetInfo", "NetrServerSetInfo",
			"NetrServerDiskEnum", "NetrServerStatisticsGet", "NetrServerTransportAdd", "NetrServerTransportEnum",
			"NetrServerTransportDel", "NetrRemoteTOD", "", "NetprPathType", "NetprPathCanonicalize",
			"NetprPathCompare", "NetprNameValidate", "NetprNameCanonicalize", "NetprNameCompare",
			"NetrShareEnumSticky", "NetrShareDelStart", "NetrShareDelCommit", "NetrpGetFileSecurity",
			"NetrpSetFileSecurity", "NetrServerTransportAddEx", "", "NetrDfsGetVersion",
			"NetrDfsCreateLocalPartition", "NetrDfsDeleteLocalPartition", "NetrDfsSetLocalVolumeState", "",
			"NetrDfsCreateExitPoint", "NetrDfsDeleteExitPoint", "NetrDfsModifyPrefix", "NetrDfsFixLocalVolume",
			"NetrDfsManagerReportSiteInfo", "NetrServerTransportDelEx", "NetrServerAliasAdd",
			"NetrServerAliasEnum", "NetrServerAliasDel", "NetrShareDelEx"},
		ops: map[uint16]op{
			8:  {req: srvConnectionEnumReq, technique: "T1049", phase: PhaseRecon},
			9:  {req: srvServerArg, technique: "T1083", phase: PhaseRecon},
			12: {req: srvSessionEnumReq, resp: srvSessionEnumResp, technique: "T1049", phase: PhaseRecon},
			13: {req: srvSessionDel},
			14: {req: srvShareAdd, technique: "T1074.002", phase: PhaseCollection},
			15: shareEnum,
			16: {req: srvShareGetInfoReq, resp: srvShareGetInfoResp, technique: "T1135", phase: PhaseRecon},
			17: {req: srvShareGetInfoReq},
			18: {req: srvShareDel, technique: "T1070.005", phase: PhaseEvasion},
			19: {req: srvShareDel, technique: "T1070.005", phase: PhaseEvasion},
			21: {req: srvServerGetInfoReq, resp: srvServerGetInfoResp, technique: "T1082", phase: PhaseRecon},
			23: {req: srvServerArg, technique: "T1082", phase: PhaseRecon},
			26: {req: srvServerArg, technique: "T1016", phase: PhaseRecon},
			28: {req: srvServerArg, technique: "T1124", phase: PhaseRecon},
			36: shareEnum,
			57: {req: srvShareDel, technique: "T1070.005", phase: PhaseEvasion},
		}})
	register(&iface{name: "wkssvc", uuid: wkssvcUUID, pipes: []string{"wkssvc", "browser"},
		names: []string{"NetrWkstaGetInfo", "NetrWkstaSetInfo", "NetrWkstaUserEnum", "NetrWkstaUserGetInfo",
			"NetrWkstaUserSetInfo", "NetrWkstaTransportEnum", "NetrWkstaTransportAdd", "NetrWkstaTransportDel",
			"NetrUseAdd", "NetrUseGetInfo", "NetrUseDel", "NetrUseEnum", "NetrMessageBufferSend",
			"NetrWorkstationStatisticsGet", "NetrLogonDomainNameAdd", "NetrLogonDomainNameDel",
			"NetrJoinDomain", "NetrUnjoinDomain", "NetrRenameMachineInDomain", "NetrValidateName",
			"NetrGetJoinInformation", "NetrGetJoinableOUs", "NetrJoinDomain2", "NetrUnjoinDomain2",
			"NetrRenameMachineInDomain2", "NetrValidateName2", "NetrGetJoinableOUs2",
			"NetrAddAlternateComputerName", "NetrRemoveAlternateComputerName", "NetrSetPrimaryComputerName",
			"NetrEnumerateComputerNames"},
		ops: map[uint16]op{
			0:  {req: wksGetInfoReq, resp: wksGetInfoResp, technique: "T1082", phase: PhaseRecon},
			2:  {req: wksUserEnumReq, resp: wksUserEnumResp, technique: "T1033", phase: PhaseRecon},
			5:  {req: srvServerArg, technique: "T1016", phase: PhaseRecon},
			11: {req: srvServerArg, technique: "T1049", phase: PhaseRecon},
			20: {req: srvServerArg, technique: "T1082", phase: PhaseRecon},
		}})
}

var shareTypes = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "disk", 1: "printer", 2: "device", 3: "IPC"}
}}

func shareType(t uint32) string {
	s := enumName(t&0x0fffffff, shareTypes.get())
	if t&0x80000000 != 0 {
		s += ", special"
	}
	if t&0x40000000 != 0 {
		s += ", temporary"
	}
	return s
}

// srvServerArg reads the leading [string, unique] server name every
// srvsvc/wkssvc call carries.
func srvServerArg(x *dc) {
	s := wstrPtr(x.r)
	x.add("server", s)
	x.d.Target = s
}

func srvShareEnumArgs(r *ndr.Reader) (server string, level uint32) {
	server = wstrPtr(r)
	r.AlignP()
	level = r.U32()
	if r.Switch() != level && r.Err() == nil {
		r.Failf("share enum discriminant differs from level %d", level)
	}
	return
}

func srvShareEnumReq(x *dc) {
	server, level := srvShareEnumArgs(x.r)
	x.add("server", server)
	x.add("level", fmt.Sprint(level))
	x.d.Target = server
}

type shareInfo struct {
	name, remark, path string
	typ                uint32
}

// shareInfoFields reads the scalars of a SHARE_INFO_<level> and defers its
// strings.
func shareInfoFields(r *ndr.Reader, level uint32, s *shareInfo) {
	str := func(dst *string) {
		if r.Ptr() {
			r.Defer(func() { *dst = r.WString() })
		}
	}
	r.AlignP()
	str(&s.name)
	if level == 0 {
		return
	}
	s.typ = r.U32()
	str(&s.remark)
	switch level {
	case 2, 502:
		r.U32() // permissions
		r.U32() // max uses
		r.U32() // current uses
		str(&s.path)
		var pw string
		str(&pw)
		if level == 502 {
			r.U32() // reserved
			if r.Ptr() {
				r.Defer(func() { r.Skip(r.Count(1)) })
			}
		}
	case 501:
		r.U32() // flags
	}
}

func (s shareInfo) String() string {
	v := s.name
	if s.path != "" {
		v += " " + s.path
	}
	var extra []string
	if s.typ != 0 || s.remark != "" {
		extra = append(extra, shareType(s.typ))
	}
	if s.remark != "" {
		extra = append(extra, s.remark)
	}
	if len(extra) > 0 {
		v += " (" + strings.Join(extra, ", ") + ")"
	}
	return v
}

func srvShareEnumResp(x *dc) {
	r := x.r
	r.AlignP()
	level := r.U32()
	r.Switch()
	var shares []*shareInfo
	if r.Ptr() {
		r.Construct(func() {
			r.AlignP()
			r.U32() // EntriesRead
			if r.Ptr() {
				r.Defer(func() {
					n := r.CountUpTo(r.PtrSize())
					for i := 0; i < n; i++ {
						s := &shareInfo{}
						shares = append(shares, s)
						shareInfoFields(r, level, s)
					}
				})
			}
		})
	}
	x.add("count", fmt.Sprint(len(shares)))
	for i, s := range shares {
		if i < maxListed {
			x.add("share", s.String())
		}
		x.sharePath(*s)
	}
}

// maxSharePaths bounds the share paths one response hands on (a file
// server may list thousands of shares; the administrative ones come
// first in Windows' enumeration).
const maxSharePaths = 256

func (x *dc) sharePath(s shareInfo) {
	if s.name != "" && s.path != "" && len(x.d.SharePaths) < maxSharePaths {
		x.d.SharePaths = append(x.d.SharePaths, SharePath{s.name, s.path})
	}
}

func srvShareGetInfoReq(x *dc) {
	server := wstrPtr(x.r)
	name := x.r.WString()
	level := x.r.U32()
	x.reqLevel = level
	x.add("server", server)
	x.add("share", name)
	x.add("level", fmt.Sprint(level))
	x.d.Target = name
	if server != "" {
		x.d.Target = strings.TrimRight(server, `\`) + `\` + name
	}
}

func srvShareGetInfoResp(x *dc) {
	r := x.r
	level := r.U32()
	var s shareInfo
	if r.Ptr() {
		r.Construct(func() { shareInfoFields(r, level, &s) })
	}
	if r.Err() == nil && s.name != "" {
		x.add("info", s.String())
		x.sharePath(s)
	}
}

func srvShareAdd(x *dc) {
	r := x.r
	server := wstrPtr(r)
	level := r.U32()
	r.Switch()
	var s shareInfo
	if r.Ptr() {
		r.Construct(func() { shareInfoFields(r, level, &s) })
	}
	x.add("server", server)
	x.add("share", s.name)
	x.add("path", s.path)
	x.add("remark", s.remark)
	x.d.Target = s.name
}

func srvShareDel(x *dc) {
	server := wstrPtr(x.r)
	name := x.r.WString()
	x.add("server", server)
	x.add("share", name)
	x.d.Target = name
}

func srvSessionDel(x *dc) {
	server := wstrPtr(x.r)
	client := wstrPtr(x.r)
	user := wstrPtr(x.r)
	x.add("server", server)
	x.add("client", client)
	x.add("user", user)
}

func srvConnectionEnumReq(x *dc) {
	server := wstrPtr(x.r)
	qual := wstrPtr(x.r)
	x.add("server", server)
	x.add("qualifier", qual)
	x.d.Target = server
}

func srvSessionEnumReq(x *dc) {
	r := x.r
	server := wstrPtr(r)
	client := wstrPtr(r)
	user := wstrPtr(r)
	r.AlignP()
	level := r.U32()
	x.add("server", server)
	x.add("client", client)
	x.add("user", user)
	x.add("level", fmt.Sprint(level))
	x.d.Target = server
}

// srvSessionEnumResp lists who is connected from where: what BloodHound
// and PowerView's Get-NetSession collect to find where admins are logged on.
func srvSessionEnumResp(x *dc) {
	r := x.r
	r.AlignP()
	level := r.U32()
	r.Switch()
	type sess struct{ client, user string }
	var ss []*sess
	if r.Ptr() {
		r.Construct(func() {
			r.AlignP()
			r.U32()
			if r.Ptr() {
				r.Defer(func() {
					n := r.CountUpTo(r.PtrSize())
					for i := 0; i < n; i++ {
						s := &sess{}
						ss = append(ss, s)
						r.AlignP()
						if r.Ptr() {
							r.Defer(func() { s.client = r.WString() })
						}
						switch level {
						case 0:
						case 10:
							if r.Ptr() {
								r.Defer(func() { s.user = r.WString() })
							}
							r.U32()
							r.U32()
						case 1, 2, 502:
							if r.Ptr() {
								r.Defer(func() { s.user = r.WString() })
							}
							r.U32() // num opens
							r.U32() // time
							r.U32() // idle
							r.U32() // user flags
							if level != 1 {
								if r.Ptr() {
									r.Defer(func() { r.WString() })
								}
							}
							if level == 502 {
								if r.Ptr() {
									r.Defer(func() { r.WString() })
								}
							}
						default:
							r.Failf("session info level %d", level)
						}
					}
				})
			}
		})
	}
	x.add("count", fmt.Sprint(len(ss)))
	for i, s := range ss {
		if i < maxListed {
			v := s.client
			if s.user != "" {
				v = s.user + " from " + s.client
			}
			x.add("session", v)
		}
	}
}

var platformIDs = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{300: "DOS", 400: "OS/2", 500: "NT", 600: "OSF", 700: "VMS"}
}}

func srvServerGetInfoReq(x *dc) {
	server := wstrPtr(x.r)
	x.reqLevel = x.r.U32()
	x.add("server", server)
	x.add("level", fmt.Sprint(x.reqLevel))
	x.d.Target = server
}

func srvServerGetInfoResp(x *dc) {
	r := x.r
	level := r.U32()
	if !r.Ptr() {
		return
	}
	var name, comment string
	var platform, major, minor, typ uint32
	r.Construct(func() {
		r.AlignP()
		platform = r.U32()
		if r.Ptr() {
			r.Defer(func() { name = r.WString() })
		}
		if level == 100 {
			return
		}
		major, minor, typ = r.U32(), r.U32(), r.U32()
		if r.Ptr() {
			r.Defer(func() { comment = r.WString() })
		}
		if level == 102 {
			for i := 0; i < 6; i++ {
				r.U32() // users, disc, hidden, announce, anndelta, licenses
			}
			if r.Ptr() {
				r.Defer(func() { r.WString() })
			}
		}
	})
	if r.Err() != nil && name == "" {
		return
	}
	x.add("name", name)
	x.add("platform", enumName(platform, platformIDs.get()))
	if level != 100 {
		x.add("version", fmt.Sprintf("%d.%d", major, minor))
		x.add("type", hex32(typ))
		x.add("comment", comment)
	}
}

func wksGetInfoReq(x *dc) {
	server := wstrPtr(x.r)
	x.reqLevel = x.r.U32()
	x.add("server", server)
	x.add("level", fmt.Sprint(x.reqLevel))
	x.d.Target = server
}

func wksGetInfoResp(x *dc) {
	r := x.r
	level := r.U32()
	if !r.Ptr() || (level != 100 && level != 101 && level != 102) {
		return
	}
	var name, domain string
	var platform, major, minor uint32
	r.Construct(func() {
		r.AlignP()
		platform = r.U32()
		if r.Ptr() {
			r.Defer(func() { name = r.WString() })
		}
		if r.Ptr() {
			r.Defer(func() { domain = r.WString() })
		}
		major, minor = r.U32(), r.U32()
	})
	if r.Err() != nil && name == "" {
		return
	}
	x.add("computer", name)
	x.add("domain", domain)
	x.add("platform", enumName(platform, platformIDs.get()))
	x.add("version", fmt.Sprintf("%d.%d", major, minor))
}

func wksUserEnumReq(x *dc) {
	server := wstrPtr(x.r)
	x.r.AlignP()
	level := x.r.U32()
	x.add("server", server)
	x.add("level", fmt.Sprint(level))
	x.d.Target = server
}

// wksUserEnumResp lists the users logged on to a workstation (level 1 with
// their logon domain and server).
func wksUserEnumResp(x *dc) {
	r := x.r
	r.AlignP()
	level := r.U32()
	r.Switch()
	type user struct{ name, domain, server string }
	var us []*user
	if r.Ptr() {
		r.Construct(func() {
			r.AlignP()
			r.U32()
			if r.Ptr() {
				r.Defer(func() {
					n := r.CountUpTo(r.PtrSize())
					for i := 0; i < n; i++ {
						u := &user{}
						us = append(us, u)
						r.AlignP()
						if r.Ptr() {
							r.Defer(func() { u.name = r.WString() })
						}
						if level == 1 {
							if r.Ptr() {
								r.Defer(func() { u.domain = r.WString() })
							}
							if r.Ptr() {
								r.Defer(func() { r.WString() })
							}
							if r.Ptr() {
								r.Defer(func() { u.server = r.WString() })
							}
						}
					}
				})
			}
		})
	}
	for i, u := range us {
		if i < maxListed {
			v := qualify(u.domain, u.name)
			if u.server != "" {
				v += " (logon server " + u.server + ")"
			}
			x.add("user", v)
		}
	}
}
