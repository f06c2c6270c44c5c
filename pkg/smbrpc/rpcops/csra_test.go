package rpcops

import (
	"testing"
	"unicode/utf16"
)

// MS-CSRA calls as Certipy's ca.py builds them with impacket (ORPCTHIS,
// then the structure members in order; a CERTTRANSBLOB is cb and a
// unique byte pointer), for its ESC7 steps.

// certTransBlob writes a CERTTRANSBLOB with its bytes.
func (s *sb) certTransBlob(b []byte) *sb {
	s.alignP().u32(uint32(len(b))).ptr()
	return s.size(len(b)).raw(b)
}

func utf16Bytes(v string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(v)) {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

func csraFixtures() []fixture {
	const ca = "CORP-DC01-CA"
	abuse := func(op, target string, fields map[string]string) want {
		return want{op: op, target: target, technique: TechCert, phase: PhaseCredAccess, fields: fields}
	}
	// Certipy's enable: its template and OID prepended to the list read.
	templates := utf16Bytes("ESC4Template\n1.3.6.1.4.1.311.21.8.1.2\nUser\n1.3.6.1.4.1.311.21.8.1.1")
	return []fixture{
		// certipy ca -issue-request 42: ResubmitRequest(CA, 42, NULL).
		{name: "ResubmitRequest", iface: certAdminUUID, opnum: 5,
			req:  func(s *sb) { s.orpcThis().wstrp(ca).u32(42).null() },
			resp: func(s *sb) { s.orpcThat().u32(3).status(0) },
			want: abuse("ResubmitRequest", ca+": request 42", map[string]string{"request id": "42", "disposition": "issued"})},
		{name: "SetAttributes SAN", iface: certAdminUUID, opnum: 4,
			req: func(s *sb) { s.orpcThis().wstrp(ca).u32(42).wstrp("SAN:upn=administrator@corp.local") },
			want: want{op: "SetAttributes", target: ca + ": request 42", command: "SAN upn:administrator@corp.local",
				technique: TechCert, phase: PhaseCredAccess, fields: map[string]string{"SAN": "upn:administrator@corp.local"}}},
		// certipy ca -enable-template: SetCAProperty(CA, CR_PROP_TEMPLATES, 0, PROPTYPE_STRING, list).
		{name: "SetCAProperty templates", iface: certAdmin2UUID, opnum: 33,
			req:  func(s *sb) { s.orpcThis().wstrp(ca).u32(29).u32(0).u32(4).certTransBlob(templates) },
			want: abuse("SetCAProperty", ca, map[string]string{"property": "CR_PROP_TEMPLATES", "templates": "ESC4Template, User"})},
		// certipy ca -add-officer: SetCASecurity(CA, descriptor granting the account).
		{name: "SetCASecurity officer", iface: certAdmin2UUID, opnum: 37,
			req: func(s *sb) {
				s.orpcThis().wstrp(ca).certTransBlob(selfRelativeSD(binSID(5, 21, 1, 2, 3, 1105)))
			},
			want: abuse("SetCASecurity", ca, map[string]string{"grants": "S-1-5-21-1-2-3-1105: ManageCA|ManageCertificates"})},
		{name: "SetOfficerRights", iface: certAdmin2UUID, opnum: 43,
			req: func(s *sb) {
				s.orpcThis().wstrp(ca).u32(1).certTransBlob(selfRelativeSD(binSID(5, 11)))
			},
			want: abuse("SetOfficerRights", ca, map[string]string{"officer restrictions": "enabled"})},
		// ESC6: EditFlags with EDITF_ATTRIBUTESUBJECTALTNAME2 (VT_I4).
		{name: "SetConfigEntry EditFlags", iface: certAdmin2UUID, opnum: 45,
			req: func(s *sb) {
				s.orpcThis().wstrp(ca).wstrp(`PolicyModules\CertificateAuthority_MicrosoftDefault.Policy`).wstr("EditFlags").ptr()
				s.align(8).u32(5).u32(0).u16(3).u16(0).u16(0).u16(0).u32(3).u32(0x0015014e)
			},
			want: abuse("SetConfigEntry", ca+`: PolicyModules\CertificateAuthority_MicrosoftDefault.Policy\EditFlags`,
				map[string]string{"value": "I4 1376590", "esc6": "EDITF_ATTRIBUTESUBJECTALTNAME2 set: requests may name any SAN"})},
		// Certipy's get_config_csra.
		{name: "GetConfigEntry", iface: certAdmin2UUID, opnum: 44,
			req: func(s *sb) {
				s.orpcThis().wstrp(ca).wstrp("").wstr("InterfaceFlags")
			},
			want: want{op: "GetConfigEntry", target: ca + ": InterfaceFlags", technique: TechCert, phase: PhaseRecon}},
		{name: "GetCASecurity", iface: certAdmin2UUID, opnum: 36,
			req:  func(s *sb) { s.orpcThis().wstrp(ca) },
			want: want{op: "GetCASecurity", target: ca, technique: TechCert, phase: PhaseRecon}},
		{name: "GetArchivedKey", iface: certAdmin2UUID, opnum: 39,
			req:  func(s *sb) { s.orpcThis().wstrp(ca).u32(7) },
			want: want{op: "GetArchivedKey", target: ca + ": request 7", technique: "T1552.004", phase: PhaseCredAccess}},
		{name: "DenyRequest", iface: certAdminUUID, opnum: 6,
			req:  func(s *sb) { s.orpcThis().wstrp(ca).u32(42) },
			want: want{op: "DenyRequest", target: ca + ": request 42"}},
	}
}

func TestCsraFixtures(t *testing.T) { runNDRFixtures(t, csraFixtures()) }
