package rpcops

import (
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// lsarpc: Local Security Authority (MS-LSAD policy and MS-LSAT lookups).
// Names are the spec's without the "Lsar" prefix.
var lsaUUID = mustUUID("12345778-1234-abcd-ef00-0123456789ab")

func init() { builders = append(builders, registerLsa) }

func registerLsa() {
	names := make([]string, 134)
	copy(names, []string{
		"Close", "Delete", "EnumeratePrivileges", "QuerySecurityObject", "SetSecurityObject",
		"ChangePassword", "OpenPolicy", "QueryInformationPolicy", "SetInformationPolicy",
		"ClearAuditLog", "CreateAccount", "EnumerateAccounts", "CreateTrustedDomain",
		"EnumerateTrustedDomains", "LookupNames", "LookupSids", "CreateSecret", "OpenAccount",
		"EnumeratePrivilegesAccount", "AddPrivilegesToAccount", "RemovePrivilegesFromAccount",
		"GetQuotasForAccount", "SetQuotasForAccount", "GetSystemAccessAccount",
		"SetSystemAccessAccount", "OpenTrustedDomain", "QueryInfoTrustedDomain",
		"SetInformationTrustedDomain", "OpenSecret", "SetSecret", "QuerySecret",
		"LookupPrivilegeValue", "LookupPrivilegeName", "LookupPrivilegeDisplayName",
		"DeleteObject", "EnumerateAccountsWithUserRight", "EnumerateAccountRights",
		"AddAccountRights", "RemoveAccountRights", "QueryTrustedDomainInfo",
		"SetTrustedDomainInfo", "DeleteTrustedDomain", "StorePrivateData", "RetrievePrivateData",
		"OpenPolicy2", "GetUserName", "QueryInformationPolicy2", "SetInformationPolicy2",
		"QueryTrustedDomainInfoByName", "SetTrustedDomainInfoByName", "EnumerateTrustedDomainsEx",
		"CreateTrustedDomainEx", "CloseTrustedDomainEx", "QueryDomainInformationPolicy",
		"SetDomainInformationPolicy", "OpenTrustedDomainByName", "", "LookupSids2", "LookupNames2",
		"CreateTrustedDomainEx2", "CredrWrite", "CredrRead", "CredrEnumerate",
		"CredrWriteDomainCredentials", "CredrReadDomainCredentials", "CredrDelete",
		"CredrGetTargetInfo", "CredrProfileLoaded", "LookupNames3", "CredrGetSessionTypes",
		"RegisterAuditEvent", "GenAuditEvent", "UnregisterAuditEvent",
		"QueryForestTrustInformation", "SetForestTrustInformation", "CredrRename", "LookupSids3",
		"LookupNames4", "OpenPolicySce", "AdtRegisterSecurityEventSource",
		"AdtUnregisterSecurityEventSource", "AdtReportSecurityEvent",
	})
	names[129] = "CreateTrustedDomainEx3"
	names[130] = "OpenPolicy3"
	names[132] = "QueryForestTrustInformation2"
	names[133] = "SetForestTrustInformation2"

	lookupSids := func(level int, handle bool) op {
		return op{handle: handle, req: lsaLookupSidsReq, resp: func(x *dc) { lsaLookupSidsResp(x, level) },
			technique: "T1087.002", phase: PhaseRecon}
	}
	lookupNames := func(level int, handle bool) op {
		return op{handle: handle, req: lsaLookupNamesReq, resp: func(x *dc) { lsaLookupNamesResp(x, level) },
			technique: "T1087.002", phase: PhaseRecon}
	}
	register(&iface{name: "lsarpc", uuid: lsaUUID, names: names, pipes: []string{"lsarpc", "lsass", "protected_storage"},
		ops: map[uint16]op{
			0:  {handle: true, closes: true, noise: true},
			6:  {req: lsaOpenPolicy, opens: "policy"},
			7:  {handle: true, req: lsaQueryInfoReq, resp: lsaQueryInfoResp, phase: PhaseRecon},
			11: {handle: true, technique: "T1069", phase: PhaseRecon},
			13: {handle: true, resp: lsaEnumTrustsResp, technique: "T1482", phase: PhaseRecon},
			14: lookupNames(1, true),
			15: lookupSids(1, true),
			16: {handle: true, req: lsaSecretName, opens: "secret", resp: lsaOpenSecretResp},
			28: {handle: true, req: lsaSecretName, opens: "secret", resp: lsaOpenSecretResp},
			30: {handle: true, req: lsaQuerySecret, technique: "T1003.004", phase: PhaseCredAccess},
			35: {handle: true, req: lsaUserRight, technique: "T1069", phase: PhaseRecon},
			36: {handle: true, req: lsaAccountSID, resp: lsaRightsResp, phase: PhaseRecon},
			37: {handle: true, req: lsaAddRights, technique: "T1098", phase: PhasePersist},
			38: {handle: true, req: lsaAddRights},
			42: {handle: true, req: lsaStorePrivateData, technique: "T1003.004", phase: PhaseCredAccess},
			43: {handle: true, req: lsaRetrievePrivateDataReq, resp: lsaRetrievePrivateDataResp,
				technique: "T1003.004", phase: PhaseCredAccess},
			44:  {req: lsaOpenPolicy2, opens: "policy"},
			45:  {req: lsaGetUserNameReq, resp: lsaGetUserNameResp, technique: "T1033", phase: PhaseRecon},
			46:  {handle: true, req: lsaQueryInfoReq, resp: lsaQueryInfoResp, phase: PhaseRecon},
			48:  {handle: true, req: lsaTrustName, technique: "T1482", phase: PhaseRecon},
			50:  {handle: true, resp: lsaEnumTrustsExResp, technique: "T1482", phase: PhaseRecon},
			55:  {handle: true, req: lsaTrustName, technique: "T1482", phase: PhaseRecon},
			57:  lookupSids(2, true),
			58:  lookupNames(2, true),
			68:  lookupNames(3, true),
			73:  {handle: true, req: lsaTrustName, technique: "T1482", phase: PhaseRecon},
			76:  lookupSids(3, false),
			77:  lookupNames(3, false),
			130: {req: lsaOpenPolicy2, opens: "policy"},
		}})
}

// objectAttributes skips an LSAPR_OBJECT_ATTRIBUTES passed by reference.
func objectAttributes(r *ndr.Reader) {
	r.Construct(func() {
		r.AlignP()
		r.U32()      // Length
		if r.Ptr() { // RootDirectory: a single byte
			r.Defer(func() { r.U8() })
		}
		if r.Ptr() {
			r.Defer(func() {
				var s string
				r.UnicodeString(&s)
			})
		}
		r.U32()      // Attributes
		if r.Ptr() { // SecurityDescriptor: {Length; [size_is(Length)] byte*}
			r.Defer(func() {
				r.AlignP()
				r.U32()
				if r.Ptr() {
					r.Defer(func() { r.Skip(r.Count(1)) })
				}
			})
		}
		if r.Ptr() { // SECURITY_QUALITY_OF_SERVICE
			r.Defer(func() {
				r.U32()
				r.Enum()
				r.U8()
				r.U8()
			})
		}
	})
}

func lsaOpenPolicy(x *dc) {
	r := x.r
	if r.Ptr() {
		r.U16()
	}
	objectAttributes(r)
	x.add("access", hex32(r.U32()))
}

func lsaOpenPolicy2Args(r *ndr.Reader) (system string, access uint32) {
	system = wstrPtr(r)
	objectAttributes(r)
	access = r.U32()
	return
}

func lsaOpenPolicy2(x *dc) {
	system, access := lsaOpenPolicy2Args(x.r)
	x.add("system", system)
	x.add("access", hex32(access))
	x.d.Target = system
}

var policyClasses = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "PolicyAuditLogInformation", 2: "PolicyAuditEventsInformation",
		3: "PolicyPrimaryDomainInformation", 4: "PolicyPdAccountInformation", 5: "PolicyAccountDomainInformation",
		6: "PolicyLsaServerRoleInformation", 7: "PolicyReplicaSourceInformation", 8: "PolicyInformationNotUsedOnWire",
		9: "PolicyModificationInformation", 10: "PolicyAuditFullSetInformation", 11: "PolicyAuditFullQueryInformation",
		12: "PolicyDnsDomainInformation", 13: "PolicyDnsDomainInformationInt", 14: "PolicyLocalAccountDomainInformation",
		15: "PolicyMachineAccountInformation"}
}}

func lsaQueryInfoReq(x *dc) {
	x.reqLevel = x.r.Enum()
	x.add("class", enumName(x.reqLevel, policyClasses.get()))
}

// lsaQueryInfoResp decodes the domain name and SID answers (the classes
// tools ask for to learn the domain SID).
func lsaQueryInfoResp(x *dc) {
	r := x.r
	if !r.Ptr() {
		return
	}
	var name, dns, forest, sid string
	r.Construct(func() {
		level := r.SwitchEnum()
		if level != x.reqLevel {
			r.Failf("policy information class %d, asked %d", level, x.reqLevel)
			return
		}
		switch level {
		case 3, 5: // {RPC_UNICODE_STRING Name; PRPC_SID Sid}
			r.UnicodeString(&name)
			if r.Ptr() {
				r.Defer(func() { sid = r.SID() })
			}
		case 12, 13: // {Name, DnsDomainName, DnsForestName, GUID, Sid}
			r.UnicodeString(&name)
			r.UnicodeString(&dns)
			r.UnicodeString(&forest)
			r.UUID()
			if r.Ptr() {
				r.Defer(func() { sid = r.SID() })
			}
		}
	})
	x.add("domain", name)
	x.add("dns domain", dns)
	x.add("dns forest", forest)
	x.add("domain sid", sid)
	if sid != "" && name != "" {
		x.s.learn("sid:"+sid, name)
	}
}

// lsaDomainList reads a PLSAPR_REFERENCED_DOMAIN_LIST* out parameter.
func lsaDomainList(r *ndr.Reader) (names, sids []string) {
	if !r.Ptr() {
		return
	}
	r.Construct(func() {
		r.AlignP()
		r.U32() // Entries
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4 + 2*r.PtrSize())
				names, sids = make([]string, n), make([]string, n)
				for i := 0; i < n; i++ {
					r.UnicodeString(&names[i])
					if r.Ptr() {
						r.Defer(func() { sids[i] = r.SID() })
					}
				}
			})
		}
		r.U32() // MaxEntries
	})
	return
}

var sidNameUse = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "user", 2: "group", 3: "domain", 4: "alias", 5: "well-known group",
		6: "deleted account", 7: "invalid", 8: "unknown", 9: "computer", 10: "label", 11: "logon session"}
}}

func lsaLookupSidsReq(x *dc) {
	r := x.r
	var sids []string
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(r.PtrSize())
				sids = make([]string, n)
				for i := 0; i < n; i++ {
					if r.Ptr() {
						r.Defer(func() { sids[i] = r.SID() })
					}
				}
			})
		}
	})
	lsaLookupTail(x, 12)
	x.requested("sid", "SIDs", sids)
}

// lsaLookupSidsResp: level 1 LSAPR_TRANSLATED_NAME, 2 and 3 the _EX form
// with Flags.
func lsaLookupSidsResp(x *dc, level int) {
	r := x.r
	doms, _ := lsaDomainList(r)
	type tn struct {
		use  uint32
		name string
		dom  int32
	}
	var out []tn
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(12)
				out = make([]tn, n)
				for i := 0; i < n; i++ {
					r.AlignP() // the element holds a pointer
					out[i].use = r.Enum()
					r.UnicodeString(&out[i].name)
					out[i].dom = int32(r.U32())
					if level >= 2 {
						r.U32() // Flags
					}
				}
			})
		}
	})
	for i, t := range out {
		if i == maxListed {
			break
		}
		full := t.name
		if t.dom >= 0 && int(t.dom) < len(doms) && doms[t.dom] != "" && t.use != 3 {
			full = doms[t.dom] + `\` + t.name
		}
		if i < len(x.reqNames) {
			x.s.learn("sid:"+x.reqNames[i], full)
			full = x.reqNames[i] + " = " + full
		}
		x.add("name", fmt.Sprintf("%s (%s)", full, enumName(t.use, sidNameUse.get())))
	}
}

// lsaNames reads Count then a conformant array of RPC_UNICODE_STRING.
func lsaNames(r *ndr.Reader) []string {
	r.U32() // Count
	var names []string
	r.Construct(func() {
		n := r.CountUpTo(4 + r.PtrSize())
		names = make([]string, n)
		for i := 0; i < n; i++ {
			r.UnicodeString(&names[i])
		}
	})
	return names
}

// lsaLookupTail reads what follows the names or SIDs of a lookup request:
// the (empty) translated array, the lookup level, the mapped count, and
// from the second versions on the lookup options and client revision.
func lsaLookupTail(x *dc, elem int) {
	r := x.r
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() { r.Skip(elem * r.CountUpTo(elem)) })
		}
	})
	r.Enum() // LookupLevel
	r.U32()  // MappedCount
	switch x.c.Opnum {
	case 57, 58, 68, 76, 77:
		r.U32() // LookupOptions
		r.U32() // ClientRevision
	}
}

func lsaLookupNamesReq(x *dc) {
	names := lsaNames(x.r)
	lsaLookupTail(x, 16)
	x.requested("name", "names", names)
}

// requested lists what a lookup asks for (a bounded number of fields, the
// target when there is one) and keeps it to label the reply's answers.
func (x *dc) requested(field, plural string, items []string) {
	x.reqNames = items
	for i, it := range items {
		if i == maxListed {
			x.add("…", fmt.Sprintf("%d more %s", len(items)-i, plural))
			break
		}
		x.add(field, it)
	}
	if len(items) == 1 {
		x.d.Target = items[0]
	}
}

// lsaLookupNamesResp: level 1 LSA_TRANSLATED_SID (RID), 2 _EX (RID,
// flags), 3 _EX2 (full SID).
func lsaLookupNamesResp(x *dc, level int) {
	r := x.r
	_, dsids := lsaDomainList(r)
	type ts struct {
		use uint32
		rid uint32
		sid string
		dom int32
	}
	var out []ts
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(12)
				out = make([]ts, n)
				for i := 0; i < n; i++ {
					t := &out[i]
					if level == 3 {
						r.AlignP()
					}
					t.use = r.Enum()
					if level == 3 {
						if r.Ptr() {
							r.Defer(func() { t.sid = r.SID() })
						}
					} else {
						t.rid = r.U32()
					}
					t.dom = int32(r.U32())
					if level >= 2 {
						r.U32()
					}
				}
			})
		}
	})
	for i, t := range out {
		if i == maxListed {
			break
		}
		sid := t.sid
		if sid == "" && t.dom >= 0 && int(t.dom) < len(dsids) && dsids[t.dom] != "" && t.use != 3 && t.use != 8 {
			sid = fmt.Sprintf("%s-%d", dsids[t.dom], t.rid)
		}
		if sid == "" {
			continue
		}
		v := sid
		if i < len(x.reqNames) {
			x.s.learn("sid:"+sid, x.reqNames[i])
			v = x.reqNames[i] + " = " + sid
		}
		x.add("sid", fmt.Sprintf("%s (%s)", v, enumName(t.use, sidNameUse.get())))
	}
}

func lsaEnumTrustsResp(x *dc) {
	r := x.r
	r.U32() // enumeration context
	var names, sids []string
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4 + 2*r.PtrSize())
				names, sids = make([]string, n), make([]string, n)
				for i := 0; i < n; i++ {
					r.UnicodeString(&names[i])
					if r.Ptr() {
						r.Defer(func() { sids[i] = r.SID() })
					}
				}
			})
		}
	})
	for i := range names {
		if i < maxListed {
			x.add("trusted domain", strings.TrimSpace(names[i]+" "+sids[i]))
		}
	}
}

var trustDirections = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "disabled", 1: "inbound", 2: "outbound", 3: "bidirectional"}
}}

func lsaEnumTrustsExResp(x *dc) {
	r := x.r
	r.U32()
	type trust struct {
		name, flat, sid string
		dir             uint32
	}
	var ts []*trust
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(28)
				for i := 0; i < n; i++ {
					t := &trust{}
					ts = append(ts, t)
					r.UnicodeString(&t.name)
					r.UnicodeString(&t.flat)
					if r.Ptr() {
						r.Defer(func() { t.sid = r.SID() })
					}
					t.dir = r.U32()
					r.U32() // type
					r.U32() // attributes
				}
			})
		}
	})
	for i, t := range ts {
		if i == maxListed {
			break
		}
		x.add("trusted domain", fmt.Sprintf("%s (%s) %s %s", t.name, t.flat, t.sid, enumName(t.dir, trustDirections.get())))
	}
}

func lsaSecretName(x *dc) {
	name := ustr(x.r)
	x.reqName = name
	x.d.Target = name
	x.add("secret", name)
	x.add("access", hex32(x.r.U32()))
}

func lsaOpenSecretResp(x *dc) {
	x.returns(readHandle(x.r), handleInfo{kind: "secret", name: x.reqName})
}

func lsaQuerySecret(x *dc) {
	if x.hOK {
		x.add("secret", x.hInfo.name)
	}
}

func lsaRetrievePrivateDataReq(x *dc) {
	name := ustr(x.r)
	if x.r.Ptr() { // [in, out] EncryptedData, null on the way in
		lsaCipherValue(x.r)
	}
	x.d.Target = name
	x.add("key", name)
	lsaClassifySecret(x, name)
}

// lsaClassifySecret: G$BCKUPKEY_* are the domain DPAPI backup keys
// (mimikatz lsadump::backupkeys), which decrypt every user's DPAPI blobs.
func lsaClassifySecret(x *dc, name string) {
	if strings.HasPrefix(strings.ToUpper(name), "G$BCKUPKEY") {
		x.d.Technique = "T1555"
		x.add("meaning", "DPAPI domain backup key")
	}
}

// lsaCipherValue reads an LSAPR_CR_CIPHER_VALUE and returns its length.
func lsaCipherValue(r *ndr.Reader) (n uint32) {
	r.Construct(func() {
		r.AlignP()
		n = r.U32()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				max := r.MaxCount()
				r.Skip(r.Varying(max, 1))
			})
		}
	})
	return n
}

func lsaRetrievePrivateDataResp(x *dc) {
	r := x.r
	if !r.Ptr() {
		return
	}
	n := lsaCipherValue(r)
	if r.Err() == nil {
		x.add("returned", fmt.Sprintf("%d bytes (encrypted with the session key)", n))
	}
}

func lsaStorePrivateData(x *dc) {
	name := ustr(x.r)
	x.d.Target = name
	x.add("key", name)
}

func lsaUserRight(x *dc) {
	if x.r.Ptr() {
		right := ustr(x.r)
		x.add("right", right)
		x.d.Target = right
	}
}

func lsaAccountSID(x *dc) {
	var sid string
	x.r.Construct(func() { sid = x.r.SID() })
	x.reqName = sid
	x.d.Target = x.sidName(sid)
	x.add("account", x.d.Target)
}

func lsaRightsResp(x *dc) {
	r := x.r
	var rights []string
	r.Construct(func() {
		r.AlignP()
		r.U32()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4 + r.PtrSize())
				rights = make([]string, n)
				for i := range rights {
					r.UnicodeString(&rights[i])
				}
			})
		}
	})
	x.add("rights", strings.Join(rights, ", "))
}

func lsaAddRights(x *dc) {
	lsaAccountSID(x)
	r := x.r
	if x.c.Opnum == 38 {
		r.U8() // AllRights
	}
	lsaRightsResp(x)
}

func lsaTrustName(x *dc) {
	name := ustr(x.r)
	x.d.Target = name
	x.add("trusted domain", name)
}

func lsaGetUserNameReq(x *dc) {
	r := x.r
	s := wstrPtr(r)
	x.add("system", s)
	if r.Ptr() { // [in, out] PRPC_UNICODE_STRING* UserName
		ustr(r)
	}
	if r.Ptr() { // [in, out, unique] PRPC_UNICODE_STRING* DomainName
		if r.Ptr() {
			ustr(r)
		}
	}
}

func lsaGetUserNameResp(x *dc) {
	r := x.r
	var user, dom string
	if r.Ptr() {
		user = ustr(r)
	}
	if r.Ptr() {
		if r.Ptr() {
			dom = ustr(r)
		}
	}
	if dom != "" {
		user = dom + `\` + user
	}
	x.add("user", user)
}

// sidName renders a SID with the name the session learnt for it.
func (x *dc) sidName(sid string) string {
	if n := x.s.lookup("sid:" + sid); n != "" {
		return n + " (" + sid + ")"
	}
	if n := wellKnownSID(sid); n != "" {
		return n + " (" + sid + ")"
	}
	return sid
}

// wellKnownSID names the built-in SIDs and domain RIDs responders care about.
func wellKnownSID(sid string) string {
	switch sid {
	case "S-1-1-0":
		return "Everyone"
	case "S-1-5-18":
		return "SYSTEM"
	case "S-1-5-32-544":
		return `BUILTIN\Administrators`
	case "S-1-5-32-545":
		return `BUILTIN\Users`
	case "S-1-5-32-551":
		return `BUILTIN\Backup Operators`
	case "S-1-5-32-555":
		return `BUILTIN\Remote Desktop Users`
	case "S-1-5-32-580":
		return `BUILTIN\Remote Management Users`
	}
	if i := strings.LastIndexByte(sid, '-'); i > 0 && strings.HasPrefix(sid, "S-1-5-21-") {
		var rid uint32
		if _, err := fmt.Sscan(sid[i+1:], &rid); err == nil {
			return wellKnownRID(rid)
		}
	}
	return ""
}
