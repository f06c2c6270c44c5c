package rpcops

import (
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// samr: Security Account Manager Remote Protocol (MS-SAMR). Names are the
// spec's without the "Samr" prefix.
var samrUUID = mustUUID("12345778-1234-abcd-ef00-0123456789ac")

func init() { builders = append(builders, registerSamr) }

func registerSamr() {
	names := make([]string, 74)
	copy(names, []string{
		"Connect", "CloseHandle", "SetSecurityObject", "QuerySecurityObject", "",
		"LookupDomainInSamServer", "EnumerateDomainsInSamServer", "OpenDomain",
		"QueryInformationDomain", "SetInformationDomain", "CreateGroupInDomain",
		"EnumerateGroupsInDomain", "CreateUserInDomain", "EnumerateUsersInDomain",
		"CreateAliasInDomain", "EnumerateAliasesInDomain", "GetAliasMembership",
		"LookupNamesInDomain", "LookupIdsInDomain", "OpenGroup", "QueryInformationGroup",
		"SetInformationGroup", "AddMemberToGroup", "DeleteGroup", "RemoveMemberFromGroup",
		"GetMembersInGroup", "SetMemberAttributesOfGroup", "OpenAlias", "QueryInformationAlias",
		"SetInformationAlias", "DeleteAlias", "AddMemberToAlias", "RemoveMemberFromAlias",
		"GetMembersInAlias", "OpenUser", "DeleteUser", "QueryInformationUser",
		"SetInformationUser", "ChangePasswordUser", "GetGroupsForUser", "QueryDisplayInformation",
		"GetDisplayEnumerationIndex", "", "", "GetUserDomainPasswordInformation",
		"RemoveMemberFromForeignDomain", "QueryInformationDomain2", "QueryInformationUser2",
		"QueryDisplayInformation2", "GetDisplayEnumerationIndex2", "CreateUser2InDomain",
		"QueryDisplayInformation3", "AddMultipleMembersToAlias", "RemoveMultipleMembersFromAlias",
		"OemChangePasswordUser2", "UnicodeChangePasswordUser2", "GetDomainPasswordInformation",
		"Connect2", "SetInformationUser2", "", "", "Connect3", "Connect4", "", "Connect5",
		"RidToSid", "SetDSRMPassword", "ValidatePassword",
	})
	names[73] = "UnicodeChangePasswordUser4"

	const acct, grp = "T1087.002", "T1069.002"
	open := func(kind string) op {
		return op{handle: true, req: func(x *dc) { samrOpenByRID(x, kind) }, resp: samrOpenResp}
	}
	enum := func(tech string, kind string) op {
		return op{handle: true, req: samrEnumReq, resp: func(x *dc) { samrEnumResp(x, kind) }, technique: tech, phase: PhaseRecon}
	}
	create := func(kind string, typed bool) op {
		return op{handle: true, req: func(x *dc) { samrCreateReq(x, kind, typed) }, resp: func(x *dc) { samrCreateResp(x, kind, typed) },
			technique: "T1136", phase: PhasePersist}
	}
	setUser := op{handle: true, req: samrSetUser, technique: "T1098", phase: PhasePersist}
	queryUser := op{handle: true, req: samrQueryUserReq, technique: acct, phase: PhaseRecon}
	queryDomain := op{handle: true, req: samrQueryDomainReq, technique: "T1087.002", phase: PhaseRecon}
	display := op{handle: true, req: samrDisplayReq, technique: acct, phase: PhaseRecon}
	register(&iface{name: "samr", uuid: samrUUID, names: names, pipes: []string{"samr", "lsass", "lsarpc"},
		ops: map[uint16]op{
			0:  {req: samrConnect0, opens: "server"},
			1:  {handle: true, closes: true, noise: true},
			5:  {handle: true, req: samrLookupDomainReq, resp: samrLookupDomainResp, technique: "T1087.002", phase: PhaseRecon},
			6:  enum("T1087.002", "domain"),
			7:  {handle: true, req: samrOpenDomain, resp: samrOpenResp},
			8:  queryDomain,
			9:  {handle: true, req: samrQueryDomainReq},
			10: create("group", false),
			11: enum(grp, "group"),
			12: create("user", false),
			13: {handle: true, req: samrEnumUsersReq, resp: func(x *dc) { samrEnumResp(x, "user") }, technique: acct, phase: PhaseRecon},
			14: create("alias", false),
			15: enum("T1069", "alias"),
			16: {handle: true, req: samrSIDArray, technique: grp, phase: PhaseRecon},
			17: {handle: true, req: samrLookupNamesReq, resp: samrLookupNamesResp, technique: acct, phase: PhaseRecon},
			18: {handle: true, req: samrLookupIDsReq, resp: samrLookupIDsResp, technique: acct, phase: PhaseRecon},
			19: open("group"),
			20: {handle: true, req: samrQueryGroupReq, technique: grp, phase: PhaseRecon},
			22: {handle: true, req: samrAddRID, technique: "T1098", phase: PhasePersist},
			23: {handle: true, closes: true},
			24: {handle: true, req: samrAddRID},
			25: {handle: true, resp: samrGroupMembersResp, technique: grp, phase: PhaseRecon},
			27: open("alias"),
			30: {handle: true, closes: true},
			31: {handle: true, req: samrAddSID, technique: "T1098", phase: PhasePersist},
			32: {handle: true, req: samrAddSID},
			33: {handle: true, resp: samrAliasMembersResp, technique: "T1069", phase: PhaseRecon},
			34: open("user"),
			35: {handle: true, closes: true},
			36: queryUser,
			37: setUser,
			38: {handle: true, technique: "T1098", phase: PhasePersist},
			39: {handle: true, resp: samrGroupsForUserResp, technique: grp, phase: PhaseRecon},
			40: display,
			44: {handle: true, technique: "T1201", phase: PhaseRecon},
			46: queryDomain,
			47: queryUser,
			48: display,
			50: create("user", true),
			51: display,
			52: {handle: true, req: samrSIDArray, technique: "T1098", phase: PhasePersist},
			54: {req: samrOemChangePassword, technique: "T1098", phase: PhasePersist},
			55: {req: samrUnicodeChangePassword, technique: "T1098", phase: PhasePersist},
			56: {technique: "T1201", phase: PhaseRecon},
			57: {req: samrConnectN(false, false), opens: "server"},
			58: setUser,
			61: {req: samrConnectN(true, false), opens: "server"},
			62: {req: samrConnectN(true, false), opens: "server"},
			64: {req: samrConnectN(false, true), resp: samrConnect5Resp},
			66: {req: samrSetDSRM, technique: "T1098", phase: PhasePersist},
			73: {req: samrUnicodeChangePassword, technique: "T1098", phase: PhasePersist},
		}})
}

// wellKnownRID names the RIDs of built-in domain accounts and groups.
func wellKnownRID(rid uint32) string {
	return map[uint32]string{500: "Administrator", 501: "Guest", 502: "krbtgt", 512: "Domain Admins",
		513: "Domain Users", 514: "Domain Guests", 515: "Domain Computers", 516: "Domain Controllers",
		517: "Cert Publishers", 518: "Schema Admins", 519: "Enterprise Admins",
		520: "Group Policy Creator Owners", 521: "Read-only Domain Controllers", 525: "Protected Users",
		526: "Key Admins", 527: "Enterprise Key Admins", 544: "Administrators", 545: "Users",
		546: "Guests", 547: "Power Users", 548: "Account Operators", 549: "Server Operators",
		550: "Print Operators", 551: "Backup Operators", 552: "Replicator", 555: "Remote Desktop Users",
		562: "Distributed COM Users", 580: "Remote Management Users"}[rid]
}

// ridName names a RID of the domain a handle refers to, from the session's
// lookups or the well-known RIDs.
func (x *dc) ridName(rid uint32) string {
	if d := x.domSID(); d != "" {
		if n := x.s.lookup(fmt.Sprintf("rid:%s:%d", d, rid)); n != "" {
			return n
		}
	}
	return wellKnownRID(rid)
}

// domSID is the SID of the domain the call's handle belongs to.
func (x *dc) domSID() string {
	if !x.hOK {
		return ""
	}
	if x.hInfo.kind == "domain" {
		return x.hInfo.sid
	}
	return x.hInfo.domSID
}

// learnRID remembers a domain account's name by RID and by SID.
func (x *dc) learnRID(rid uint32, name string) {
	if d := x.domSID(); d != "" && name != "" {
		x.s.learn(fmt.Sprintf("rid:%s:%d", d, rid), name)
		x.s.learn(fmt.Sprintf("sid:%s-%d", d, rid), qualify(x.domainName(), name))
	}
}

// ridLabel renders "name (RID n)".
func (x *dc) ridLabel(rid uint32) string {
	if n := x.ridName(rid); n != "" {
		return fmt.Sprintf("%s (RID %d)", n, rid)
	}
	return fmt.Sprintf("RID %d", rid)
}

// domainName is the domain a handle belongs to, for qualifying accounts.
func (x *dc) domainName() string {
	if !x.hOK {
		return ""
	}
	if x.hInfo.kind == "domain" {
		return x.hInfo.name
	}
	return x.hInfo.domName
}

func qualify(dom, name string) string {
	if dom == "" || name == "" {
		return name
	}
	return dom + `\` + name
}

func samrConnect0(x *dc) {
	if x.r.Ptr() {
		x.r.U16()
	}
	x.add("access", hex32(x.r.U32()))
}

// samrConnectN decodes Connect2/3/4 (server name, [revision,] access) and
// Connect5's request.
func samrConnectN(revision, v5 bool) func(x *dc) {
	return func(x *dc) {
		if v5 {
			server, access := samrConnect5Args(x.r)
			x.add("server", server)
			x.add("access", hex32(access))
			x.d.Target = server
			return
		}
		server := wstrPtr(x.r)
		if revision {
			x.r.U32()
		}
		x.add("server", server)
		x.add("access", hex32(x.r.U32()))
		x.d.Target = server
	}
}

func samrConnect5Args(r *ndr.Reader) (server string, access uint32) {
	server = wstrPtr(r)
	access = r.U32()
	v := r.U32()
	if r.U32() != v && r.Err() == nil { // union discriminant
		r.Failf("revision info version mismatch")
	}
	r.U32()
	r.U32()
	return
}

func samrConnect5Resp(x *dc) {
	r := x.r
	r.U32()
	r.U32()
	r.U32()
	r.U32()
	x.returns(readHandle(r), handleInfo{kind: "server", name: x.d.Target})
}

func samrLookupDomainReq(x *dc) {
	name := ustr(x.r)
	x.reqName = name
	x.d.Target = name
	x.add("domain", name)
}

func samrLookupDomainResp(x *dc) {
	if x.r.Ptr() {
		var sid string
		x.r.Construct(func() { sid = x.r.SID() })
		x.add("domain sid", sid)
		x.s.learn("sid:"+sid, x.reqName)
	}
}

func samrOpenDomain(x *dc) {
	r := x.r
	access := r.U32()
	var sid string
	r.Construct(func() { sid = r.SID() })
	name := x.s.lookup("sid:" + sid)
	x.d.Target = name
	if name == "" {
		x.d.Target = sid
	}
	x.add("domain sid", x.sidName(sid))
	x.add("access", hex32(access))
	x.newInfo = handleInfo{kind: "domain", name: x.d.Target, sid: sid}
}

// samrOpenResp records the handle OpenDomain/OpenUser/OpenGroup/OpenAlias
// returned, with what the request decoder said it refers to.
func samrOpenResp(x *dc) {
	x.returns(readHandle(x.r), x.newInfo)
}

func samrOpenByRID(x *dc, kind string) {
	access := x.r.U32()
	rid := x.r.U32()
	name := qualify(x.domainName(), x.ridName(rid))
	if x.ridName(rid) == "" {
		name = qualify(x.domainName(), fmt.Sprintf("RID %d", rid))
	}
	x.d.Target = name
	x.add(kind, x.ridLabel(rid))
	x.add("access", hex32(access))
	sid := ""
	if d := x.domSID(); d != "" {
		sid = fmt.Sprintf("%s-%d", d, rid)
	}
	x.newInfo = handleInfo{kind: kind, name: name, sid: sid, domName: x.domainName(), domSID: x.domSID()}
}

func samrEnumReq(x *dc) {
	x.r.U32() // enumeration context
	x.r.U32() // preferred maximum length
}

var userAccountControl = []flagName{
	{0x1, "ACCOUNT_DISABLED"}, {0x2, "HOME_DIRECTORY_REQUIRED"}, {0x4, "PASSWORD_NOT_REQUIRED"},
	{0x8, "TEMP_DUPLICATE_ACCOUNT"}, {0x10, "NORMAL_ACCOUNT"}, {0x20, "MNS_LOGON_ACCOUNT"},
	{0x40, "INTERDOMAIN_TRUST_ACCOUNT"}, {0x80, "WORKSTATION_TRUST_ACCOUNT"}, {0x100, "SERVER_TRUST_ACCOUNT"},
	{0x200, "DONT_EXPIRE_PASSWORD"}, {0x400, "ACCOUNT_AUTO_LOCKED"}, {0x800, "ENCRYPTED_CLEAR_TEXT_PASSWORD_ALLOWED"},
	{0x1000, "SMARTCARD_REQUIRED"}, {0x2000, "TRUSTED_FOR_DELEGATION"}, {0x4000, "NOT_DELEGATED"},
	{0x8000, "USE_DES_KEY_ONLY"}, {0x10000, "DONT_REQUIRE_PREAUTH"}, {0x20000, "PASSWORD_EXPIRED"},
	{0x40000, "TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION"}, {0x80000, "NO_AUTH_DATA_REQUIRED"},
	{0x100000, "PARTIAL_SECRETS_ACCOUNT"}, {0x200000, "USE_AES_KEYS"},
}

func samrEnumUsersReq(x *dc) {
	x.r.U32()
	if uac := x.r.U32(); uac != 0 {
		x.add("account control filter", flagNames(uac, userAccountControl))
	}
	x.r.U32()
}

// samrEnumResp lists the names an Enumerate*InDomain or
// EnumerateDomainsInSamServer returned, learning RID -> name.
func samrEnumResp(x *dc, kind string) {
	r := x.r
	r.U32() // enumeration context
	type ent struct {
		rid  uint32
		name string
	}
	var ents []ent
	if r.Ptr() {
		r.Construct(func() {
			r.AlignP()
			r.U32()
			if r.Ptr() {
				r.Defer(func() {
					n := r.CountUpTo(8 + r.PtrSize())
					ents = make([]ent, n)
					for i := range ents {
						r.AlignP()
						ents[i].rid = r.U32()
						r.UnicodeString(&ents[i].name)
					}
				})
			}
		})
	}
	count := r.U32()
	if r.Err() == nil {
		x.add("count", fmt.Sprint(count))
	}
	for i, e := range ents {
		if kind != "domain" {
			x.learnRID(e.rid, e.name)
		}
		if i >= maxListed {
			continue
		}
		if kind == "domain" {
			x.add(kind, e.name)
		} else {
			x.add(kind, fmt.Sprintf("%s (RID %d)", e.name, e.rid))
		}
	}
	if len(ents) > maxListed {
		x.add("…", fmt.Sprintf("%d more", len(ents)-maxListed))
	}
}

func samrLookupNamesReq(x *dc) {
	r := x.r
	r.U32() // Count
	var names []string
	r.Construct(func() {
		max := r.MaxCount()
		n := r.VaryingUpTo(max, 4+r.PtrSize())
		names = make([]string, n)
		for i := range names {
			r.UnicodeString(&names[i])
		}
	})
	x.reqNames = names
	for i, n := range names {
		if i < maxListed {
			x.add("name", n)
		}
	}
	if len(names) == 1 {
		x.d.Target = qualify(x.domainName(), names[0])
	}
}

// ulongArray reads a SAMPR_ULONG_ARRAY.
func ulongArray(r *ndr.Reader) (v []uint32) {
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4)
				v = make([]uint32, n)
				for i := range v {
					v[i] = r.U32()
				}
			})
		}
	})
	return v
}

func samrLookupNamesResp(x *dc) {
	rids := ulongArray(x.r)
	uses := ulongArray(x.r)
	for i, rid := range rids {
		if i >= len(x.reqNames) {
			break
		}
		x.learnRID(rid, x.reqNames[i])
		use := ""
		if i < len(uses) {
			use = " " + enumName(uses[i], sidNameUse.get())
		}
		if i < maxListed {
			x.add("rid", fmt.Sprintf("%s = %d%s", x.reqNames[i], rid, use))
		}
	}
}

func samrLookupIDsReq(x *dc) {
	r := x.r
	r.U32()
	max := r.MaxCount()
	n := r.VaryingUpTo(max, 4)
	x.reqRIDs = make([]uint32, n)
	for i := range x.reqRIDs {
		x.reqRIDs[i] = r.U32()
		if i < maxListed {
			x.add("rid", fmt.Sprint(x.reqRIDs[i]))
		}
	}
}

func samrLookupIDsResp(x *dc) {
	r := x.r
	var names []string
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4 + r.PtrSize())
				names = make([]string, n)
				for i := range names {
					r.UnicodeString(&names[i])
				}
			})
		}
	})
	for i, name := range names {
		if i >= len(x.reqRIDs) {
			break
		}
		x.learnRID(x.reqRIDs[i], name)
		if i < maxListed {
			x.add("name", fmt.Sprintf("%d = %s", x.reqRIDs[i], name))
		}
	}
}

var groupInfoClasses = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "GroupGeneralInformation", 2: "GroupNameInformation",
		3: "GroupAttributeInformation", 4: "GroupAdminCommentInformation", 5: "GroupReplicationInformation"}
}}

func samrQueryGroupReq(x *dc) { x.add("class", enumName(x.r.Enum(), groupInfoClasses.get())) }

var domainInfoClasses = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "DomainPasswordInformation", 2: "DomainGeneralInformation",
		3: "DomainLogoffInformation", 4: "DomainOemInformation", 5: "DomainNameInformation",
		6: "DomainReplicationInformation", 7: "DomainServerRoleInformation", 8: "DomainModifiedInformation",
		9: "DomainStateInformation", 11: "DomainGeneralInformation2", 12: "DomainLockoutInformation",
		13: "DomainModifiedInformation2"}
}}

func samrQueryDomainReq(x *dc) {
	c := x.r.Enum()
	x.add("class", enumName(c, domainInfoClasses.get()))
	if c == 1 || c == 12 {
		// Password and lockout policy: what a password spray needs to know.
		x.d.Technique, x.d.Phase = "T1201", PhaseRecon
	}
}

var userInfoClasses = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "UserGeneralInformation", 2: "UserPreferencesInformation",
		3: "UserLogonInformation", 4: "UserLogonHoursInformation", 5: "UserAccountInformation",
		6: "UserNameInformation", 7: "UserAccountNameInformation", 8: "UserFullNameInformation",
		9: "UserPrimaryGroupInformation", 10: "UserHomeInformation", 11: "UserScriptInformation",
		12: "UserProfileInformation", 13: "UserAdminCommentInformation", 14: "UserWorkStationsInformation",
		16: "UserControlInformation", 17: "UserExpiresInformation", 18: "UserInternal1Information",
		20: "UserParametersInformation", 21: "UserAllInformation", 23: "UserInternal4Information",
		24: "UserInternal5Information", 25: "UserInternal4InformationNew", 26: "UserInternal5InformationNew",
		31: "UserInternal7Information", 32: "UserInternal8Information"}
}}

func samrQueryUserReq(x *dc) { x.add("class", enumName(x.r.Enum(), userInfoClasses.get())) }

// samrSetUser decodes SetInformationUser/2: which attribute is set, and for
// the classes that carry one, that a password or hash is being set.
func samrSetUser(x *dc) {
	r := x.r
	class := r.Enum()
	x.add("class", enumName(class, userInfoClasses.get()))
	disc := r.SwitchEnum()
	if disc != class && r.Err() == nil {
		r.Failf("user info union discriminant %d, class %d", disc, class)
		return
	}
	switch class {
	case 18:
		x.add("password", "NT/LM hash set directly (UserInternal1)")
	case 23, 24, 25, 26, 31, 32:
		x.add("password", "set (encrypted with the session key)")
	case 21:
		x.add("password", "maybe set (UserAllInformation; see WhichFields)")
	case 16:
		uac := r.U32()
		x.add("account control", flagNames(uac, userAccountControl))
	case 9:
		gid := r.U32()
		x.add("primary group", x.ridLabel(gid))
	case 7, 8, 11, 12, 13:
		var s string
		r.Construct(func() { r.UnicodeString(&s) })
		label := map[uint32]string{7: "account name", 8: "full name", 11: "logon script", 12: "profile path", 13: "comment"}[class]
		x.add(label, s)
		if class == 11 {
			x.d.Technique = "T1037.003" // network logon script
		}
	}
}

func samrCreateReq(x *dc, kind string, typed bool) {
	name := ustr(x.r)
	var typ uint32
	if typed {
		typ = x.r.U32()
	}
	access := x.r.U32()
	x.reqName = qualify(x.domainName(), name)
	x.d.Target = x.reqName
	x.add(kind, name)
	if typed {
		x.add("account type", flagNames(typ, userAccountControl))
		if typ&0x80 != 0 {
			x.add("meaning", "machine account (e.g. for resource-based constrained delegation)")
		}
	}
	x.add("access", hex32(access))
}

func samrCreateResp(x *dc, kind string, typed bool) {
	r := x.r
	h := readHandle(r)
	if typed {
		r.U32() // granted access
	}
	rid := r.U32()
	if r.Err() == nil {
		x.add("rid", fmt.Sprint(rid))
	}
	sid := ""
	if d := x.domSID(); d != "" {
		sid = fmt.Sprintf("%s-%d", d, rid)
		x.learnRID(rid, strings.TrimPrefix(x.reqName, x.domainName()+`\`))
	}
	x.returns(h, handleInfo{kind: kind, name: x.reqName, sid: sid, domName: x.domainName(), domSID: x.domSID()})
}

func samrAddRID(x *dc) {
	rid := x.r.U32()
	x.add("member", x.ridLabel(rid))
	if x.hOK {
		x.add("group", x.hInfo.name)
	}
}

func samrAddSID(x *dc) {
	var sid string
	x.r.Construct(func() { sid = x.r.SID() })
	x.add("member", x.sidName(sid))
	if x.hOK {
		x.add("alias", x.hInfo.name)
	}
}

func samrSIDArray(x *dc) {
	r := x.r
	var sids []string
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(r.PtrSize())
				sids = make([]string, n)
				for i := range sids {
					if r.Ptr() {
						r.Defer(func() { sids[i] = r.SID() })
					}
				}
			})
		}
	})
	for i, s := range sids {
		if i < maxListed {
			x.add("sid", x.sidName(s))
		}
	}
}

func samrGroupMembersResp(x *dc) {
	r := x.r
	var members []uint32
	if r.Ptr() {
		r.Construct(func() {
			r.AlignP()
			r.U32()
			if r.Ptr() {
				r.Defer(func() {
					n := r.CountUpTo(4)
					members = make([]uint32, n)
					for i := range members {
						members[i] = r.U32()
					}
				})
			}
			if r.Ptr() {
				r.Defer(func() { r.Skip(4 * r.CountUpTo(4)) })
			}
		})
	}
	x.add("count", fmt.Sprint(len(members)))
	for i, m := range members {
		if i < maxListed {
			x.add("member", x.ridLabel(m))
		}
	}
}

func samrAliasMembersResp(x *dc) {
	r := x.r
	var sids []string
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(r.PtrSize())
				sids = make([]string, n)
				for i := range sids {
					if r.Ptr() {
						r.Defer(func() { sids[i] = r.SID() })
					}
				}
			})
		}
	})
	x.add("count", fmt.Sprint(len(sids)))
	for i, s := range sids {
		if i < maxListed {
			x.add("member", x.sidName(s))
		}
	}
}

func samrGroupsForUserResp(x *dc) {
	r := x.r
	var rids []uint32
	if r.Ptr() {
		r.Construct(func() {
			r.AlignP()
			r.U32()
			if r.Ptr() {
				r.Defer(func() {
					n := r.CountUpTo(8)
					for i := 0; i < n; i++ {
						rids = append(rids, r.U32())
						r.U32()
					}
				})
			}
		})
	}
	for i, g := range rids {
		if i < maxListed {
			x.add("group", x.ridLabel(g))
		}
	}
}

var displayClasses = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "DomainDisplayUser", 2: "DomainDisplayMachine",
		3: "DomainDisplayGroup", 4: "DomainDisplayOemUser", 5: "DomainDisplayOemGroup"}
}}

func samrDisplayReq(x *dc) {
	c := x.r.Enum()
	x.add("class", enumName(c, displayClasses.get()))
	if c == 3 || c == 5 {
		x.d.Technique = "T1069.002"
	}
}

func samrUnicodeChangePassword(x *dc) {
	r := x.r
	server := ustrPtr(r)
	user := ustr(r)
	x.add("server", server)
	x.add("user", user)
	x.d.Target = user
}

func samrOemChangePassword(x *dc) {
	r := x.r
	var server, user string
	if r.Ptr() {
		r.Construct(func() { r.AnsiString(&server) })
	}
	r.Construct(func() { r.AnsiString(&user) })
	x.add("server", server)
	x.add("user", user)
	x.d.Target = user
}

// samrSetDSRM: setting the Directory Services Restore Mode password from a
// domain account's hash is a known domain-controller persistence.
func samrSetDSRM(x *dc) {
	r := x.r
	ustrPtr(r)
	rid := r.U32()
	x.add("user", x.ridLabel(rid))
	x.add("meaning", "DSRM administrator password set from an account's hash")
}
