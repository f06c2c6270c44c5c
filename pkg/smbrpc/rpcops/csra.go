package rpcops

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// MS-CSRA, the Certificate Services Remote Administration Protocol
// (ICertAdminD, ICertAdminD2 on the CertSrv Admin class, DCOM): how AD CS
// is abused once an account holds ManageCA or ManageCertificates (ESC7,
// Certipy's `ca` command): granting itself officer or manager rights
// (SetCASecurity, SetOfficerRights), enabling a template
// (SetCAProperty CR_PROP_TEMPLATES), setting a pending request's
// attributes (a SAN) and issuing it (ResubmitRequest), changing the
// policy module's EditFlags (EDITF_ATTRIBUTESUBJECTALTNAME2: ESC6) or
// DisableExtensionList (ESC16) with SetConfigEntry. All T1649. Layouts
// from MS-CSRA 3.1.4 as Certipy's ca.py sends them.
var (
	certAdminUUID  = mustUUID("d99e6e71-fc88-11d0-b498-00a0c90312f3")
	certAdmin2UUID = mustUUID("7fe0d935-dda6-443f-85d0-1cfb58fe41dd")
)

func init() { builders = append(builders, registerCsra) }

func registerCsra() {
	clsidNames[mustUUID("d99e6e73-fc88-11d0-b498-00a0c90312f3")] = "CertSrv Admin (CCertAdminD)"
	admin := []string{"SetExtension", "SetAttributes", "ResubmitRequest", "DenyRequest", "IsValidCertificate",
		"PublishCRL", "GetCRL", "RevokeCertificate", "EnumViewColumn", "GetViewDefaultColumnSet",
		"EnumAttributesOrExtensions", "OpenView", "EnumView", "CloseView", "ServerControl", "Ping",
		"GetServerState", "BackupPrepare", "BackupEnd", "BackupGetAttachmentInformation", "BackupGetBackupLogs",
		"BackupOpenFile", "BackupReadFile", "BackupCloseFile", "BackupTruncateLogs", "ImportCertificate",
		"BackupGetDynamicFiles", "RestoreGetDatabaseLocations"}
	admin2 := append(append([]string(nil), admin...), "PublishCRLs", "GetCAProperty", "SetCAProperty",
		"GetCAPropertyInfo", "EnumViewColumnTable", "GetCASecurity", "SetCASecurity", "Ping2", "GetArchivedKey",
		"GetAuditFilter", "SetAuditFilter", "GetOfficerRights", "SetOfficerRights", "GetConfigEntry",
		"SetConfigEntry", "ImportKey", "GetMyRoles", "DeleteRow")
	abuse := func(f func(x *dc)) op { return op{req: f, technique: TechCert, phase: PhaseCredAccess} }
	recon := func(f func(x *dc)) op { return op{req: f, technique: TechCert, phase: PhaseRecon} }
	ops := func(two bool) map[uint16]op {
		m := map[uint16]op{
			3:  abuse(csraSetExtension),
			4:  abuse(csraSetAttributes),
			5:  {req: csraRequestID, resp: csraDisposition, technique: TechCert, phase: PhaseCredAccess},
			6:  {req: csraRequestID},
			10: {req: csraRevoke},
			14: recon(func(x *dc) { csraAuthority(x) }),
			18: {noise: true},
			28: abuse(csraImportCertificate),
		}
		if two {
			m[32] = recon(csraProperty)
			m[33] = abuse(csraProperty)
			m[36] = recon(func(x *dc) { csraAuthority(x) })
			m[37] = abuse(func(x *dc) { csraSecurity(x, false) })
			m[38] = op{noise: true}
			m[39] = op{req: csraRequestID, technique: "T1552.004", phase: PhaseCredAccess}
			m[42] = recon(func(x *dc) { csraAuthority(x) })
			m[43] = abuse(func(x *dc) { csraSecurity(x, true) })
			m[44] = recon(csraConfigEntry)
			m[45] = abuse(csraConfigEntry)
			m[47] = recon(func(x *dc) { csraAuthority(x) })
		}
		return m
	}
	register(&iface{name: "ICertAdminD", uuid: certAdminUUID, orpc: true, names: dcomNames(admin...), ops: ops(false)})
	register(&iface{name: "ICertAdminD2", uuid: certAdmin2UUID, orpc: true, names: dcomNames(admin2...), ops: ops(true)})
}

// csraAuthority reads the [string, unique] pwszAuthority every method
// starts with: the CA's name.
func csraAuthority(x *dc) string {
	ca := wstrPtr(x.r)
	x.add("ca", ca)
	x.d.Target = ca
	return ca
}

// csraRequestID: ResubmitRequest, DenyRequest, GetArchivedKey
// (pwszAuthority, dwRequestId, ...).
func csraRequestID(x *dc) {
	ca := csraAuthority(x)
	id := x.r.U32()
	if x.r.Err() != nil {
		return
	}
	x.add("request id", fmt.Sprint(id))
	x.d.Target = fmt.Sprintf("%s: request %d", ca, id)
}

// csraDisposition: ResubmitRequest's [out] pdwDisposition (3: issued).
func csraDisposition(x *dc) {
	if d := x.r.U32(); x.r.Err() == nil {
		x.add("disposition", enumName(d, certDispositions.get()))
	}
}

// csraSetAttributes: SetAttributes(pwszAuthority, dwRequestId,
// pwszAttributes): name:value lines added to a pending request, a SAN
// among them being the ESC7 path to a certificate for another account.
func csraSetAttributes(x *dc) {
	csraRequestID(x)
	attrs := wstrPtr(x.r)
	a := parseCertAttrs(attrs)
	x.add("attributes", attrs)
	for _, s := range a.sans {
		x.add("SAN", s)
	}
	if len(a.sans) > 0 {
		x.d.Command = "SAN " + strings.Join(a.sans, " ")
	}
}

// csraSetExtension: SetExtension(pwszAuthority, dwRequestId,
// pwszExtensionName, dwType, dwFlags, pctbValue).
func csraSetExtension(x *dc) {
	csraRequestID(x)
	x.add("extension", wstrPtr(x.r))
	x.r.U32() // dwType
	x.r.U32() // dwFlags
	var b []byte
	certBlob(x.r, &b)
	if len(b) > 0 {
		x.add("value", hexTrunc(b, 64))
	}
}

func csraRevoke(x *dc) {
	csraAuthority(x)
	serial := wstrPtr(x.r)
	reason := x.r.U32()
	if x.r.Err() != nil {
		return
	}
	x.add("serial", serial)
	x.add("reason", enumName(reason, map[uint32]string{0: "unspecified", 1: "key compromise", 2: "CA compromise",
		3: "affiliation changed", 4: "superseded", 5: "cessation of operation", 6: "certificate hold", 0xffffffff: "unrevoke"}))
}

func csraImportCertificate(x *dc) {
	csraAuthority(x)
	var b []byte
	certBlob(x.r, &b)
	x.add("certificate", fmt.Sprintf("%d bytes", len(b)))
}

// csraProperty: Get/SetCAProperty(pwszAuthority, PropId, PropIndex,
// PropType[, pctbPropertyValue]). CR_PROP_TEMPLATES (29) is the CA's list
// of enabled templates, name and OID by line: setting it enables one.
func csraProperty(x *dc) {
	csraAuthority(x)
	r := x.r
	id, idx, typ := r.U32(), r.U32(), r.U32()
	if r.Err() != nil {
		return
	}
	x.add("property", enumName(id, map[uint32]string{6: "CR_PROP_CASIGCERT", 15: "CR_PROP_CAXCHGCERT",
		29: "CR_PROP_TEMPLATES", 38: "CR_PROP_CERTAIAURLS"}))
	if idx != 0 {
		x.add("index", fmt.Sprint(idx))
	}
	if x.c.Opnum != 33 {
		return
	}
	var b []byte
	certBlob(r, &b)
	if typ != 4 { // PROPTYPE_STRING
		x.add("value", fmt.Sprintf("%d bytes", len(b)))
		return
	}
	v := utf16Text(b)
	if id != 29 {
		x.add("value", v)
		return
	}
	// name\noid\nname\noid...: the names.
	lines := strings.Split(v, "\n")
	var names []string
	for i := 0; i < len(lines); i += 2 {
		if n := strings.TrimSpace(lines[i]); n != "" && len(names) < maxListed {
			names = append(names, n)
		}
	}
	x.add("templates", strings.Join(names, ", "))
}

// caRights names the CA access rights (MS-CSRA 3.1.1.7).
var caRights = []flagName{{1, "ManageCA"}, {2, "ManageCertificates"}, {4, "Auditor"}, {8, "Operator"},
	{0x100, "Read"}, {0x200, "Enroll"}}

// csraSecurity: SetCASecurity(pwszAuthority, pctbSD) and
// SetOfficerRights(pwszAuthority, fEnable, pctbSD): the principals the
// new descriptor grants, with their rights.
func csraSecurity(x *dc, officer bool) {
	csraAuthority(x)
	if officer {
		if en := x.r.U32(); x.r.Err() == nil {
			x.add("officer restrictions", map[bool]string{true: "enabled", false: "disabled"}[en != 0])
		}
	}
	var sd []byte
	certBlob(x.r, &sd)
	for _, a := range sdACEs(sd) {
		x.add("grants", a)
	}
}

// sdACEs lists a self-relative descriptor's allow and deny ACEs as
// "SID (name): rights", bounded by its bytes.
func sdACEs(sd []byte) []string {
	if len(sd) < 20 || sd[0] != 1 {
		return nil
	}
	le := binary.LittleEndian
	dacl := le.Uint32(sd[16:])
	if le.Uint16(sd[2:])&0x4 == 0 || dacl == 0 || int64(dacl)+8 > int64(len(sd)) {
		return nil
	}
	acl := sd[dacl:]
	size := min(int(le.Uint16(acl[2:])), len(acl))
	count := int(le.Uint16(acl[4:]))
	var out []string
	for i, off := 0, 8; i < count && off+8 <= size && len(out) < maxListed; i++ {
		typ, aceSize := acl[off], int(le.Uint16(acl[off+2:]))
		if aceSize < 8 || off+aceSize > size {
			break
		}
		if typ <= 1 {
			if s := sidBytes(acl[off+8 : off+aceSize]); s != "" {
				if n := wellKnownSID(s); n != "" {
					s += " (" + n + ")"
				}
				rights := flagNames(le.Uint32(acl[off+4:]), caRights)
				if typ == 1 {
					rights = "deny " + rights
				}
				out = append(out, s+": "+rights)
			}
		}
		off += aceSize
	}
	return out
}

// editfSAN2 is EDITF_ATTRIBUTESUBJECTALTNAME2: the CA honours a SAN in
// the request's attributes (ESC6).
const editfSAN2 = 0x00040000

// csraConfigEntry: Get/SetConfigEntry(pwszAuthority, pwszNodePath,
// pwszEntry, pVariant): a value of the CA's configuration (the registry
// under CertSvc\Configuration\<CA>).
func csraConfigEntry(x *dc) {
	ca := csraAuthority(x)
	r := x.r
	node := wstrPtr(r)
	entry := r.WString()
	if r.Err() != nil {
		return
	}
	path := entry
	if node != "" {
		path = node + `\` + entry
	}
	x.d.Target = ca + `: ` + path
	x.add("entry", path)
	if x.c.Opnum != 45 || !r.Ptr() {
		return
	}
	var v *varValue
	r.Construct(func() { v = variant(r, 0) })
	if v == nil || r.Err() != nil {
		return
	}
	x.add("value", v.String())
	// Integer variants render in decimal (variantValue).
	if n, err := strconv.ParseInt(v.text, 10, 64); err == nil && strings.EqualFold(entry, "EditFlags") &&
		uint32(n)&editfSAN2 != 0 {
		x.add("esc6", "EDITF_ATTRIBUTESUBJECTALTNAME2 set: requests may name any SAN")
	}
}
