package rpcops

import (
	"fmt"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// drsuapi: Directory Replication Service (MS-DRSR), over ncacn_ip_tcp.
// DRSGetNCChanges asked by a machine that is not a domain controller is
// DCSync (T1003.006); DRSReplicaAdd/Del and DRSAddEntry of a server object
// are how DCShadow registers a rogue DC (T1207). Names are the spec's
// without the "IDL_" prefix.
var drsuapiUUID = mustUUID("e3514235-4b06-11d1-ab04-00c04fc2dcd2")

func init() { builders = append(builders, registerDrsuapi) }

func registerDrsuapi() {
	register(&iface{name: "drsuapi", uuid: drsuapiUUID,
		names: []string{"DRSBind", "DRSUnbind", "DRSReplicaSync", "DRSGetNCChanges", "DRSUpdateRefs",
			"DRSReplicaAdd", "DRSReplicaDel", "DRSReplicaModify", "DRSVerifyNames", "DRSGetMemberships",
			"DRSInterDomainMove", "DRSGetNT4ChangeLog", "DRSCrackNames", "DRSWriteSPN", "DRSRemoveDsServer",
			"DRSRemoveDsDomain", "DRSDomainControllerInfo", "DRSAddEntry", "DRSExecuteKCC", "DRSGetReplInfo",
			"DRSAddSidHistory", "DRSGetMemberships2", "DRSReplicaVerifyObjects", "DRSGetObjectExistence",
			"DRSQuerySitesByCost", "DRSInitDemotion", "DRSReplicaDemotion", "DRSFinishDemotion",
			"DRSAddCloneDC", "DRSWriteNgcKey", "DRSReadNgcKey"},
		ops: map[uint16]op{
			0:  {req: drsBind, resp: drsBindResp},
			1:  {handle: true, closes: true, noise: true},
			2:  {handle: true, req: drsReplicaSync, technique: "T1207", phase: PhaseEvasion},
			3:  {handle: true, req: drsGetNCChanges, resp: drsGetNCChangesResp, technique: "T1003.006", phase: PhaseCredAccess},
			4:  {handle: true, req: drsUpdateRefs, technique: "T1207", phase: PhaseEvasion},
			5:  {handle: true, req: drsReplicaAdd, technique: "T1207", phase: PhaseEvasion},
			6:  {handle: true, req: drsReplicaDel, technique: "T1207", phase: PhaseEvasion},
			7:  {handle: true, technique: "T1207", phase: PhaseEvasion},
			12: {handle: true, req: drsCrackNames, resp: drsCrackNamesResp, technique: "T1087.002", phase: PhaseRecon},
			13: {handle: true, technique: "T1098", phase: PhasePersist},
			16: {handle: true, req: drsDCInfo, technique: "T1018", phase: PhaseRecon},
			17: {handle: true, technique: "T1207", phase: PhaseEvasion},
			19: {handle: true, phase: PhaseRecon},
			20: {handle: true, technique: "T1134.005", phase: PhasePersist},
		}})
}

// dsName reads a DSNAME referent and renders its DN (or GUID / SID when the
// name is empty, as when DCSync names its target by GUID).
func dsName(r *ndr.Reader) string {
	n := r.Count(2)
	r.U32() // structLen
	sidLen := r.U32()
	guid := r.UUID()
	sid := r.Bytes(28)
	nameLen := r.U32()
	if int(nameLen)+1 != n && r.Err() == nil {
		r.Failf("DSNAME length %d, conformance %d", nameLen, n)
		return ""
	}
	name := r.UTF16(n)
	if r.Err() != nil {
		return ""
	}
	if name != "" {
		return name
	}
	if guid != ([16]byte{}) {
		return "<GUID=" + UUIDString(guid) + ">"
	}
	if sidLen > 0 && sidLen <= 28 {
		return "<SID=" + sidBytes(sid[:sidLen]) + ">"
	}
	return ""
}

// sidBytes renders a SID in its binary form (NT4SID).
func sidBytes(b []byte) string {
	if len(b) < 8 {
		return ""
	}
	r := ndr.NewReader(b, false)
	n := int(b[1])
	if 8+4*n > len(b) {
		return ""
	}
	return r.SIDBody(n)
}

func drsBindArgs(r *ndr.Reader) (client [16]byte) {
	if r.Ptr() {
		client = r.UUID()
	}
	if r.Ptr() { // DRS_EXTENSIONS: {cb; rgb[cb]}
		n := r.Count(1)
		r.U32()
		r.Skip(n)
	}
	return
}

func drsBind(x *dc) {
	c := drsBindArgs(x.r)
	x.add("client dsa", "{"+UUIDString(c)+"}")
}

func drsBindResp(x *dc) {
	r := x.r
	if r.Ptr() {
		n := r.Count(1)
		r.U32()
		r.Skip(n)
	}
	x.returns(readHandle(r), handleInfo{kind: "drs"})
}

var drsExtendedOps = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "none", 1: "FSMO_REQ_ROLE", 2: "FSMO_RID_ALLOC",
		3: "FSMO_RID_REQ_ROLE", 4: "FSMO_REQ_PDC", 5: "FSMO_ABANDON_ROLE", 6: "REPL_OBJ", 7: "REPL_SECRETS"}
}}

type ncChanges struct {
	version        uint32
	destDSA        [16]byte
	nc             string
	flags, extOp   uint32
	maxObjs        uint32
	partialAttrSet bool
}

// drsGetNCChangesArgs reads the versions of DRS_MSG_GETCHGREQ that carry a
// destination DSA and naming context (5, 7, 8, 10, 11).
func drsGetNCChangesArgs(r *ndr.Reader) (a ncChanges) {
	a.version = r.U32()
	if r.Switch() != a.version && r.Err() == nil {
		r.Failf("request version differs from its discriminant")
		return
	}
	switch a.version {
	case 5, 7, 8, 10, 11:
	default:
		r.Failf("DRS_MSG_GETCHGREQ version %d not decoded", a.version)
		return
	}
	r.Construct(func() {
		r.Align(8) // the request holds USNs
		a.destDSA = r.UUID()
		r.UUID() // invocation id of the source
		if r.RefPtr() {
			r.Defer(func() { a.nc = dsName(r) })
		}
		r.U64() // usnvecFrom
		r.U64()
		r.U64()
		if r.Ptr() { // up-to-dateness vector
			r.Defer(func() {
				n := r.Count(24)
				r.U32() // version
				r.U32()
				r.U32() // cNumCursors
				r.U32()
				for i := 0; i < n; i++ {
					r.UUID()
					r.U64()
				}
			})
		}
		a.flags = r.U32()
		a.maxObjs = r.U32()
		r.U32() // cMaxBytes
		a.extOp = r.U32()
		r.U64() // liFsmoInfo
		if a.version >= 7 && a.version != 5 {
			for i := 0; i < 2; i++ { // pPartialAttrSet, pPartialAttrSetEx
				if r.Ptr() {
					a.partialAttrSet = true
					r.Defer(func() {
						n := r.Count(4)
						r.U32()
						r.U32()
						r.U32()
						r.Skip(4 * n)
					})
				}
			}
			r.U32() // PrefixTableDest.PrefixCount
			if r.Ptr() {
				r.Defer(func() {
					n := r.Count(8 + r.PtrSize())
					for i := 0; i < n; i++ {
						r.U32()
						r.U32()
						if r.Ptr() {
							r.Defer(func() { r.Skip(r.Count(1)) })
						}
					}
				})
			}
			if a.version >= 10 {
				r.U32() // ulMoreFlags
			}
		}
	})
	return a
}

var drsReplFlags = []flagName{{0x10, "WRIT_REP"}, {0x20, "INIT_SYNC"}, {0x40, "PER_SYNC"},
	{0x8000, "GET_ANC"}, {0x100000, "GET_ALL_GROUP_MEMBERSHIP"}, {0x10000, "SPECIAL_SECRET_PROCESSING"},
	{0x80000, "NEVER_SYNCED"}, {0x400000, "SELECT_SECRETS"}}

func drsGetNCChanges(x *dc) {
	a := drsGetNCChangesArgs(x.r)
	x.add("version", fmt.Sprint(a.version))
	x.add("naming context", a.nc)
	x.add("destination dsa", "{"+UUIDString(a.destDSA)+"}")
	x.add("extended op", enumName(a.extOp, drsExtendedOps.get()))
	x.add("flags", flagNames(a.flags, drsReplFlags))
	if a.partialAttrSet {
		x.add("attributes", "partial attribute set (secrets asked for by attribute)")
	}
	x.d.Target = a.nc
	if a.extOp == 6 {
		x.add("meaning", "single object replication (DCSync of one account)")
	}
}

func drsGetNCChangesResp(x *dc) {
	r := x.r
	v := r.U32()
	if r.Switch() != v && r.Err() == nil {
		return
	}
	if v != 1 && v != 6 && v != 7 && v != 9 {
		return
	}
	var objs, ext, bytes, drsErr uint32
	var more bool
	r.Construct(func() {
		r.Align(8)
		r.UUID()
		r.UUID()
		if r.Ptr() {
			r.Defer(func() { dsName(r) })
		}
		for i := 0; i < 6; i++ { // usnvecFrom, usnvecTo
			r.U64()
		}
		if r.Ptr() { // up-to-dateness vector: not needed
			r.Defer(func() {})
		}
		r.U32() // prefix table count
		if r.Ptr() {
			r.Defer(func() {})
		}
		ext = r.U32()
		objs = r.U32()
		// The rest of the structure comes before any referent (pNC is
		// read after it): cNumBytes, pObjects, fMoreData, and for V6/V9
		// the value counts, rgValues and dwDRSError (MS-DRSR 4.1.10.2.11).
		bytes = r.U32()
		if r.Ptr() {
			r.Defer(func() {})
		}
		more = r.U32() != 0
		if v == 6 || v == 9 {
			r.U32() // cNumNcSizeObjects
			r.U32() // cNumNcSizeValues
			r.U32() // cNumValues
			if r.Ptr() {
				r.Defer(func() {})
			}
			drsErr = r.U32()
		}
	})
	if objs != 0 || ext != 0 {
		x.add("objects", fmt.Sprint(objs))
		x.add("object bytes", fmt.Sprint(bytes))
		if more {
			x.add("more data", "yes")
		}
		if ext != 0 {
			x.add("extended result", fmt.Sprint(ext))
		}
	}
	if drsErr != 0 {
		x.add("DRS error", fmt.Sprintf("0x%08x", drsErr))
	}
}

// drsMessage reads the version and discriminant that begin every
// versioned DRS request.
func drsMessage(r *ndr.Reader) uint32 {
	v := r.U32()
	if r.Switch() != v && r.Err() == nil {
		r.Failf("message version differs from its discriminant")
	}
	return v
}

func drsReplicaSync(x *dc) {
	if drsMessage(x.r) != 1 {
		return
	}
	var nc, src string
	r := x.r
	r.Construct(func() {
		r.AlignP()
		if r.RefPtr() {
			r.Defer(func() { nc = dsName(r) })
		}
		r.UUID()
		if r.Ptr() {
			r.Defer(func() { src = r.AString() })
		}
		r.U32()
	})
	x.add("naming context", nc)
	x.add("source dsa", src)
	x.d.Target = nc
}

func drsUpdateRefs(x *dc) {
	if drsMessage(x.r) != 1 {
		return
	}
	var nc, dest string
	r := x.r
	r.Construct(func() {
		r.AlignP()
		if r.RefPtr() {
			r.Defer(func() { nc = dsName(r) })
		}
		if r.RefPtr() {
			r.Defer(func() { dest = r.AString() })
		}
		r.UUID()
		r.U32()
	})
	x.add("naming context", nc)
	x.add("destination dsa", dest)
	x.d.Target = nc
}

func drsReplicaAdd(x *dc) {
	v := drsMessage(x.r)
	var nc, src, srcDN, transport string
	r := x.r
	r.Construct(func() {
		r.AlignP()
		switch v {
		case 1:
			if r.RefPtr() {
				r.Defer(func() { nc = dsName(r) })
			}
			if r.RefPtr() {
				r.Defer(func() { src = r.AString() })
			}
		case 2:
			if r.RefPtr() {
				r.Defer(func() { nc = dsName(r) })
			}
			if r.Ptr() {
				r.Defer(func() { srcDN = dsName(r) })
			}
			if r.Ptr() {
				r.Defer(func() { transport = dsName(r) })
			}
			if r.RefPtr() {
				r.Defer(func() { src = r.AString() })
			}
		default:
			r.Failf("DRS_MSG_REPADD version %d not decoded", v)
			return
		}
		r.Skip(84) // REPLTIMES
		r.U32()    // options
	})
	x.add("naming context", nc)
	x.add("source dsa address", src)
	x.add("source dsa", srcDN)
	x.add("transport", transport)
	x.d.Target = src
}

func drsReplicaDel(x *dc) {
	if drsMessage(x.r) != 1 {
		return
	}
	var nc, src string
	r := x.r
	r.Construct(func() {
		r.AlignP()
		if r.RefPtr() {
			r.Defer(func() { nc = dsName(r) })
		}
		if r.Ptr() {
			r.Defer(func() { src = r.AString() })
		}
		r.U32()
	})
	x.add("naming context", nc)
	x.add("source dsa address", src)
	x.d.Target = src
}

var dsNameFormats = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "UNKNOWN", 1: "FQDN_1779", 2: "NT4_ACCOUNT", 3: "DISPLAY",
		6: "UNIQUE_ID", 7: "CANONICAL", 8: "USER_PRINCIPAL", 9: "CANONICAL_EX", 10: "SERVICE_PRINCIPAL",
		11: "SID_OR_SID_HISTORY", 12: "DNS_DOMAIN"}
}}

func drsCrackNames(x *dc) {
	if drsMessage(x.r) != 1 {
		return
	}
	r := x.r
	var offered, desired uint32
	var names []string
	r.Construct(func() {
		r.AlignP()
		r.U32() // code page
		r.U32() // locale
		r.U32() // flags
		offered = r.U32()
		desired = r.U32()
		r.U32() // cNames
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(r.PtrSize())
				names = make([]string, n)
				for i := range names {
					if r.Ptr() {
						r.Defer(func() { names[i] = r.WString() })
					}
				}
			})
		}
	})
	x.add("format offered", enumName(offered, dsNameFormats.get()))
	x.add("format desired", enumName(desired, dsNameFormats.get()))
	x.reqNames = names
	for i, n := range names {
		if i < maxListed {
			x.add("name", n)
		}
	}
	if len(names) == 1 {
		x.d.Target = names[0]
	}
}

func drsCrackNamesResp(x *dc) {
	r := x.r
	if r.U32() != 1 || r.Switch() != 1 {
		return
	}
	if !r.Ptr() {
		return
	}
	type item struct {
		status    uint32
		dom, name string
	}
	var items []*item
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4 + 2*r.PtrSize())
				for i := 0; i < n; i++ {
					it := &item{}
					items = append(items, it)
					r.AlignP()
					it.status = r.U32()
					if r.Ptr() {
						r.Defer(func() { it.dom = r.WString() })
					}
					if r.Ptr() {
						r.Defer(func() { it.name = r.WString() })
					}
				}
			})
		}
	})
	for i, it := range items {
		if i >= maxListed {
			break
		}
		in := ""
		if i < len(x.reqNames) {
			in = x.reqNames[i] + " = "
		}
		if it.status != 0 {
			x.add("result", fmt.Sprintf("%snot resolved (status %d)", in, it.status))
			continue
		}
		x.add("result", in+it.name)
	}
}

func drsDCInfo(x *dc) {
	if drsMessage(x.r) != 1 {
		return
	}
	r := x.r
	var dom string
	var level uint32
	r.Construct(func() {
		r.AlignP()
		if r.Ptr() {
			r.Defer(func() { dom = r.WString() })
		}
		level = r.U32()
	})
	x.add("domain", dom)
	x.add("info level", fmt.Sprint(level))
	x.d.Target = dom
}
