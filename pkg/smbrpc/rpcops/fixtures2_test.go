package rpcops

import (
	"slices"
	"testing"
)

const domSID = "S-1-5-21-1004336348-1177238915-682003330"

// domainList writes a PLSAPR_REFERENCED_DOMAIN_LIST* with one domain.
func domainList(s *sb) {
	s.ptr().alignP().u32(1).ptr().u32(32) // Entries, Domains, MaxEntries
	s.size(1).ustrHdr("CORP").ptr()       // one LSAPR_TRUST_INFORMATION
	s.ustrBody("CORP").sid(domSID)
}

func TestLsaFixtures(t *testing.T) {
	runFixtures(t, []fixture{
		{name: "OpenPolicy2", iface: lsaUUID, opnum: 44,
			req: func(s *sb) {
				s.wstrp(`\\DC01`)
				s.alignP().u32(24).null().null().u32(0).null().ptr() // object attributes, QoS pointer
				s.u32(12).enum(2).u8(1).u8(0)                        // QoS referent
				s.u32(0x801)
			},
			resp: func(s *sb) { s.handle(h(1)).status(0) },
			want: want{op: "OpenPolicy2", target: `\\DC01`, fields: map[string]string{"access": "0x00000801"}}},
		{name: "LookupNames", iface: lsaUUID, opnum: 14,
			req: func(s *sb) {
				s.handle(h(1)).u32(1).size(1).ustrHdr("Administrator").ustrBody("Administrator")
				s.alignP().u32(0).null().enum(1).u32(0)
			},
			resp: func(s *sb) {
				domainList(s)
				s.alignP().u32(1).ptr().size(1).enum(1).u32(500).u32(0) // translated SIDs
				s.u32(1).status(0)
			},
			want: want{op: "LookupNames", target: "Administrator", technique: "T1087.002", phase: PhaseRecon,
				fields: map[string]string{"sid": "Administrator = " + domSID + "-500 (user)"}}},
		{name: "LookupSids2", iface: lsaUUID, opnum: 57,
			req: func(s *sb) {
				s.handle(h(1)).alignP().u32(1).ptr().size(1).ptr().sid(domSID + "-1104")
				s.alignP().u32(0).null().enum(1).u32(0).u32(0).u32(2)
			},
			resp: func(s *sb) {
				domainList(s)
				s.alignP().u32(1).ptr().size(1)
				s.alignP().enum(1).ustrHdr("pgustavo").u32(0).u32(0)
				s.ustrBody("pgustavo")
				s.u32(1).status(0)
			},
			want: want{op: "LookupSids2", target: domSID + "-1104", technique: "T1087.002", phase: PhaseRecon,
				fields: map[string]string{"name": domSID + `-1104 = CORP\pgustavo (user)`}}},
		{name: "LookupNames4 (no handle)", iface: lsaUUID, opnum: 77,
			req: func(s *sb) {
				s.u32(1).size(1).ustrHdr(`CORP\bob`).ustrBody(`CORP\bob`)
				s.alignP().u32(0).null().enum(1).u32(0).u32(0).u32(2)
			},
			resp: func(s *sb) {
				domainList(s)
				s.alignP().u32(1).ptr().size(1).alignP().enum(1).ptr().u32(0).u32(0).sid(domSID + "-1105")
				s.u32(1).status(0)
			},
			want: want{op: "LookupNames4", target: `CORP\bob`, technique: "T1087.002", phase: PhaseRecon,
				fields: map[string]string{"sid": `CORP\bob = ` + domSID + "-1105 (user)"}}},
		{name: "QueryInformationPolicy2 DNS domain", iface: lsaUUID, opnum: 46,
			req: func(s *sb) { s.handle(h(1)).enum(12) },
			resp: func(s *sb) {
				s.ptr().alignP().enum(12)
				s.ustrHdr("CORP").ustrHdr("corp.local").ustrHdr("corp.local").uuid("01020304-0506-0708-090a-0b0c0d0e0f10").ptr()
				s.ustrBody("CORP").ustrBody("corp.local").ustrBody("corp.local").sid(domSID)
				s.status(0)
			},
			want: want{op: "QueryInformationPolicy2", phase: PhaseRecon,
				fields: map[string]string{"class": "PolicyDnsDomainInformation", "domain": "CORP", "dns domain": "corp.local", "domain sid": domSID}}},
		{name: "EnumerateTrustedDomainsEx", iface: lsaUUID, opnum: 50,
			req: func(s *sb) { s.handle(h(1)).u32(0).u32(0xffff) },
			resp: func(s *sb) {
				s.u32(1).alignP().u32(1).ptr().size(1)
				s.ustrHdr("partner.local").ustrHdr("PARTNER").ptr().u32(3).u32(2).u32(8)
				s.ustrBody("partner.local").ustrBody("PARTNER").sid("S-1-5-21-1-2-3")
				s.status(0)
			},
			want: want{op: "EnumerateTrustedDomainsEx", technique: "T1482", phase: PhaseRecon,
				fields: map[string]string{"trusted domain": "partner.local (PARTNER) S-1-5-21-1-2-3 bidirectional"}}},
		{name: "RetrievePrivateData", iface: lsaUUID, opnum: 43,
			req: func(s *sb) { s.handle(h(1)).ustr("G$BCKUPKEY_PREFERRED").null() },
			resp: func(s *sb) {
				s.ptr().alignP().u32(16).u32(16).ptr().size(16).size(0).size(16).zeros(16).status(0)
			},
			want: want{op: "RetrievePrivateData", target: "G$BCKUPKEY_PREFERRED", technique: "T1555", phase: PhaseCredAccess,
				fields: map[string]string{"returned": "16 bytes (encrypted with the session key)"}}},
		{name: "AddAccountRights", iface: lsaUUID, opnum: 37,
			req: func(s *sb) {
				s.handle(h(1)).sid(domSID + "-1105")
				s.alignP().u32(1).ptr().size(1).ustrHdr("SeDebugPrivilege").ustrBody("SeDebugPrivilege")
			},
			want: want{op: "AddAccountRights", technique: "T1098", phase: PhasePersist,
				fields: map[string]string{"rights": "SeDebugPrivilege", "account": domSID + "-1105"}}},
		{name: "OpenSecret", iface: lsaUUID, opnum: 28,
			req:  func(s *sb) { s.handle(h(1)).ustr("$MACHINE.ACC").u32(2) },
			resp: func(s *sb) { s.handle(h(9)).status(0) },
			want: want{op: "OpenSecret", target: "$MACHINE.ACC", fields: map[string]string{"secret": "$MACHINE.ACC"}}},
	})
}

func TestSamrSession(t *testing.T) {
	for _, ndr64 := range []bool{false, true} {
		var s Session
		do := func(opnum uint16, req, resp func(*sb)) Decoded {
			return s.Decode(fixture{iface: samrUUID, opnum: opnum, req: req, resp: resp}.call(ndr64))
		}
		d := do(64, func(s *sb) { s.wstrp(`\\DC01`).u32(0x30).u32(1).u32(1).u32(3).u32(0) },
			func(s *sb) { s.u32(1).u32(1).u32(3).u32(0).handle(h(1)).status(0) })
		check(t, d, want{op: "Connect5", target: `\\DC01`})
		d = do(5, func(s *sb) { s.handle(h(1)).ustr("CORP") }, func(s *sb) { s.ptr().sid(domSID).status(0) })
		check(t, d, want{op: "LookupDomainInSamServer", target: "CORP", technique: "T1087.002", phase: PhaseRecon,
			fields: map[string]string{"domain sid": domSID}})
		d = do(7, func(s *sb) { s.handle(h(1)).u32(0x200).sid(domSID) }, func(s *sb) { s.handle(h(2)).status(0) })
		check(t, d, want{op: "OpenDomain", target: "CORP"})
		d = do(17, func(s *sb) {
			s.handle(h(2)).u32(1).size(1000).size(0).size(1).ustrHdr("helpdesk").ustrBody("helpdesk")
		}, func(s *sb) {
			s.alignP().u32(1).ptr().size(1).u32(1107)
			s.alignP().u32(1).ptr().size(1).u32(1)
			s.status(0)
		})
		check(t, d, want{op: "LookupNamesInDomain", target: `CORP\helpdesk`, technique: "T1087.002", phase: PhaseRecon,
			fields: map[string]string{"rid": "helpdesk = 1107 user"}})
		d = do(19, func(s *sb) { s.handle(h(2)).u32(0x1f).u32(512) }, func(s *sb) { s.handle(h(3)).status(0) })
		check(t, d, want{op: "OpenGroup", target: `CORP\Domain Admins`})
		d = do(22, func(s *sb) { s.handle(h(3)).u32(1107).u32(7) }, func(s *sb) { s.status(0) })
		check(t, d, want{op: "AddMemberToGroup", target: `CORP\Domain Admins`, technique: "T1098", phase: PhasePersist,
			fields: map[string]string{"member": "helpdesk (RID 1107)"}})
		d = do(25, func(s *sb) { s.handle(h(3)) }, func(s *sb) {
			s.ptr().alignP().u32(2).ptr().ptr().size(2).u32(500).u32(1107).size(2).u32(7).u32(7).status(0)
		})
		check(t, d, want{op: "GetMembersInGroup", target: `CORP\Domain Admins`, technique: "T1069.002", phase: PhaseRecon,
			fields: map[string]string{"count": "2", "member": "helpdesk (RID 1107)"}})
		d = do(50, func(s *sb) { s.handle(h(2)).ustr("EVIL$").u32(0x80).u32(0xf07ff) },
			func(s *sb) { s.handle(h(4)).u32(0xf07ff).u32(1200).status(0) })
		check(t, d, want{op: "CreateUser2InDomain", target: `CORP\EVIL$`, technique: "T1136", phase: PhasePersist,
			fields: map[string]string{"rid": "1200", "account type": "WORKSTATION_TRUST_ACCOUNT"}})
		d = do(58, func(s *sb) { s.handle(h(4)).enum(24).alignP().enum(24).zeros(516).u8(0) }, func(s *sb) { s.status(0) })
		check(t, d, want{op: "SetInformationUser2", target: `CORP\EVIL$`, technique: "T1098", phase: PhasePersist,
			fields: map[string]string{"password": "set (encrypted with the session key)", "class": "UserInternal5Information"}})
		d = do(37, func(s *sb) { s.handle(h(4)).enum(16).alignP().enum(16).u32(0x10210) }, func(s *sb) { s.status(0) })
		check(t, d, want{op: "SetInformationUser", technique: "T1098", phase: PhasePersist,
			fields: map[string]string{"account control": "NORMAL_ACCOUNT|DONT_EXPIRE_PASSWORD|DONT_REQUIRE_PREAUTH"}})
		d = do(13, func(s *sb) { s.handle(h(2)).u32(0).u32(0x10).u32(0xffff) }, func(s *sb) {
			s.u32(0).ptr().alignP().u32(2).ptr().size(2)
			s.alignP().u32(500).ustrHdr("Administrator").alignP().u32(1200).ustrHdr("EVIL$")
			s.ustrBody("Administrator").ustrBody("EVIL$").u32(2).status(0)
		})
		check(t, d, want{op: "EnumerateUsersInDomain", target: "CORP", technique: "T1087.002", phase: PhaseRecon,
			fields: map[string]string{"count": "2", "user": "EVIL$ (RID 1200)", "account control filter": "NORMAL_ACCOUNT"}})
		d = do(27, func(s *sb) { s.handle(h(2)).u32(0xf001f).u32(544) }, func(s *sb) { s.handle(h(5)).status(0) })
		check(t, d, want{op: "OpenAlias", target: `CORP\Administrators`, fields: map[string]string{"alias": "Administrators (RID 544)"}})
		d = do(31, func(s *sb) { s.handle(h(5)).sid(domSID + "-1200") }, func(s *sb) { s.status(0) })
		check(t, d, want{op: "AddMemberToAlias", target: `CORP\Administrators`, technique: "T1098", phase: PhasePersist,
			fields: map[string]string{"member": `CORP\EVIL$ (` + domSID + "-1200)"}})
		d = do(8, func(s *sb) { s.handle(h(2)).enum(1) }, nil)
		check(t, d, want{op: "QueryInformationDomain", target: "CORP", technique: "T1201", phase: PhaseRecon})
		d = do(1, func(s *sb) { s.handle(h(2)) }, func(s *sb) { s.handle(Handle{}).status(0) })
		check(t, d, want{op: "CloseHandle", target: "CORP", noise: true})
	}
}

func TestSrvsvcWkssvcFixtures(t *testing.T) {
	share := func(s *sb, name, remark string, typ uint32) { s.alignP().ptr().u32(typ).ptr() }
	runFixtures(t, []fixture{
		{name: "NetrShareEnum level 1", iface: srvsvcUUID, opnum: 15,
			req: func(s *sb) {
				s.wstrp(`\\FS01`).alignP().u32(1).alignP().u32(1).ptr().alignP().u32(0).null().u32(0xffffffff).ptr().u32(0)
			},
			resp: func(s *sb) {
				s.alignP().u32(1).alignP().u32(1).ptr().alignP().u32(2).ptr().size(2)
				share(s, "ADMIN$", "Remote Admin", 0x80000000)
				share(s, "Finance", "", 0)
				s.wstr("ADMIN$").wstr("Remote Admin").wstr("Finance").wstr("")
				s.u32(2).ptr().u32(0).status(0)
			},
			want: want{op: "NetrShareEnum", target: `\\FS01`, technique: "T1135", phase: PhaseRecon,
				fields: map[string]string{"count": "2", "share": "ADMIN$ (disk, special, Remote Admin)"}}},
		{name: "NetrShareAdd", iface: srvsvcUUID, opnum: 14,
			req: func(s *sb) {
				s.wstrp(`\\FS01`).u32(2).alignP().u32(2).ptr()
				s.alignP().ptr().u32(0).ptr().u32(0).u32(0xffffffff).u32(0).ptr().null()
				s.wstr("loot$").wstr("").wstr(`C:\loot`)
				s.null()
			},
			want: want{op: "NetrShareAdd", target: "loot$", technique: "T1074.002", phase: PhaseCollection,
				fields: map[string]string{"path": `C:\loot`}}},
		{name: "NetrSessionEnum level 10", iface: srvsvcUUID, opnum: 12,
			req: func(s *sb) {
				s.wstrp(`\\DC01`).null().null().alignP().u32(10).alignP().u32(10).ptr().alignP().u32(0).null().u32(0xffffffff).ptr().u32(0)
			},
			resp: func(s *sb) {
				s.alignP().u32(10).alignP().u32(10).ptr().alignP().u32(1).ptr().size(1)
				s.alignP().ptr().ptr().u32(5).u32(0)
				s.wstr(`\\10.0.0.5`).wstr("alice")
				s.u32(1).ptr().u32(0).status(0)
			},
			want: want{op: "NetrSessionEnum", target: `\\DC01`, technique: "T1049", phase: PhaseRecon,
				fields: map[string]string{"session": `alice from \\10.0.0.5`}}},
		{name: "NetrShareDel", iface: srvsvcUUID, opnum: 18,
			req:  func(s *sb) { s.wstrp(`\\FS01`).wstr("loot$").u32(0) },
			want: want{op: "NetrShareDel", target: "loot$", technique: "T1070.005", phase: PhaseEvasion}},
		{name: "NetrWkstaUserEnum level 1", iface: wkssvcUUID, opnum: 2,
			req: func(s *sb) {
				s.wstrp(`\\WS06`).alignP().u32(1).alignP().u32(1).ptr().alignP().u32(0).null().u32(0xffffffff).null()
			},
			resp: func(s *sb) {
				s.alignP().u32(1).alignP().u32(1).ptr().alignP().u32(1).ptr().size(1)
				s.alignP().ptr().ptr().ptr().ptr()
				s.wstr("bob").wstr("CORP").wstr("").wstr("DC01")
				s.u32(1).null().status(0)
			},
			want: want{op: "NetrWkstaUserEnum", target: `\\WS06`, technique: "T1033", phase: PhaseRecon,
				fields: map[string]string{"user": `CORP\bob (logon server DC01)`}}},
	})
}

func TestEventlogNetlogonFixtures(t *testing.T) {
	zero8 := make([]byte, 8)
	runFixtures(t, []fixture{
		{name: "ClearEventLogW with backup", iface: eventlogUUID, opnum: 0,
			req:  func(s *sb) { s.handle(h(1)).ptr().ustr(`C:\Windows\Temp\sec.evtx`) },
			want: want{op: "ClearEventLogW", technique: "T1070.001", phase: PhaseEvasion, fields: map[string]string{"backup file": `C:\Windows\Temp\sec.evtx`}}},
		{name: "EvtRpcClearLog", iface: even6UUID, opnum: 6,
			req:  func(s *sb) { s.handle(h(1)).wstr("Security").null().u32(0) },
			want: want{op: "EvtRpcClearLog", target: "Security", technique: "T1070.001", phase: PhaseEvasion}},
		{name: "NetrServerReqChallenge zerologon", iface: netlogonUUID, opnum: 4,
			req: func(s *sb) { s.wstrp(`\\DC01`).wstr("DC01").raw(zero8) },
			want: want{op: "NetrServerReqChallenge", target: "DC01", technique: "T1210", phase: PhaseCredAccess,
				fields: map[string]string{"zerologon": "client challenge is all zeros (CVE-2020-1472 pattern)"}}},
		{name: "NetrServerReqChallenge normal", iface: netlogonUUID, opnum: 4,
			req:  func(s *sb) { s.wstrp(`\\DC01`).wstr("WS06").raw([]byte{1, 2, 3, 4, 5, 6, 7, 8}) },
			want: want{op: "NetrServerReqChallenge", target: "WS06"}},
		{name: "NetrServerAuthenticate3 zerologon", iface: netlogonUUID, opnum: 26,
			req:  func(s *sb) { s.wstrp(`\\DC01`).wstr("DC01$").enum(6).wstr("DC01").raw(zero8).u32(0x212fffff) },
			resp: func(s *sb) { s.raw(zero8).u32(0x212fffff).u32(1000).status(0xc0000022) },
			want: want{op: "NetrServerAuthenticate3", target: "DC01$", technique: "T1210", phase: PhaseCredAccess,
				fields: map[string]string{"channel": "Server (domain controller)", "flags": "0x212fffff"}}},
		{name: "NetrServerPasswordSet2 empty", iface: netlogonUUID, opnum: 30,
			req: func(s *sb) {
				s.wstrp(`\\DC01`).wstr("DC01$").enum(6).wstr("DC01").raw(zero8).u32(0).zeros(516)
			},
			want: want{op: "NetrServerPasswordSet2", target: "DC01$", technique: "T1210", phase: PhaseCredAccess}},
		{name: "NetrLogonSamLogonWithFlags network", iface: netlogonUUID, opnum: 45,
			req: func(s *sb) {
				s.wstrp(`\\DC01`).wstrp("WS06").ptr().raw(zero8).u32(0).ptr().raw(zero8).u32(0)
				s.enum(2).alignP().enum(2).ptr()
				s.ustrHdr("CORP").u32(0).u32(0).u32(0).ustrHdr("bob").ustrHdr("WS06")
				s.ustrBody("CORP").ustrBody("bob").ustrBody("WS06")
			},
			want: want{op: "NetrLogonSamLogonWithFlags", target: `CORP\bob`,
				fields: map[string]string{"logon level": "Network", "workstation": "WS06"}}},
	})
}

// dsname writes a DSNAME referent.
func dsname(s *sb, dn string) {
	n := len([]rune(dn))
	s.size(n + 1).u32(uint32(58 + 2*n)).u32(0).uuid("00000000-0000-0000-0000-000000000000").zeros(28).u32(uint32(n))
	for _, c := range dn {
		s.u16(uint16(c))
	}
	s.u16(0)
}

func TestDrsuapiFixtures(t *testing.T) {
	runFixtures(t, []fixture{
		{name: "DRSGetNCChanges v8 DCSync", iface: drsuapiUUID, opnum: 3,
			req: func(s *sb) {
				s.handle(h(1)).u32(8).alignP().u32(8)
				s.align(8).uuid("e24d201a-4fd6-11d1-a3da-0000f875ae0d").uuid("00000000-0000-0000-0000-000000000000").ptr()
				s.u64(0).u64(0).u64(0).null().u32(0x10).u32(1).u32(0x100000).u32(6).u64(0)
				s.null().null().u32(0).null().u32(0) // partial attribute sets, prefix table, more flags (v10 only)
				s.b = s.b[:len(s.b)-4]               // v8 has no ulMoreFlags
				dsname(s, "CN=krbtgt,CN=Users,DC=corp,DC=local")
			},
			resp: func(s *sb) { s.status(0) },
			want: want{op: "DRSGetNCChanges", target: "CN=krbtgt,CN=Users,DC=corp,DC=local", technique: "T1003.006", phase: PhaseCredAccess,
				fields: map[string]string{"extended op": "REPL_OBJ", "destination dsa": "{e24d201a-4fd6-11d1-a3da-0000f875ae0d}",
					"meaning": "single object replication (DCSync of one account)"}}},
		{name: "DRSReplicaAdd v1 DCShadow", iface: drsuapiUUID, opnum: 5,
			req: func(s *sb) {
				s.handle(h(1)).u32(1).alignP().u32(1).alignP().ptr().ptr().zeros(84).u32(0x11)
				dsname(s, "CN=Configuration,DC=corp,DC=local")
				s.astr("rogue.corp.local")
			},
			want: want{op: "DRSReplicaAdd", target: "rogue.corp.local", technique: "T1207", phase: PhaseEvasion,
				fields: map[string]string{"naming context": "CN=Configuration,DC=corp,DC=local"}}},
		{name: "DRSCrackNames", iface: drsuapiUUID, opnum: 12,
			req: func(s *sb) {
				s.handle(h(1)).u32(1).alignP().u32(1)
				s.alignP().u32(0).u32(0).u32(0).u32(2).u32(1).u32(1).ptr()
				s.size(1).ptr().wstr(`CORP\krbtgt`)
			},
			resp: func(s *sb) {
				s.u32(1).alignP().u32(1).ptr().alignP().u32(1).ptr().size(1).alignP().u32(0).ptr().ptr()
				s.wstr("corp.local").wstr("CN=krbtgt,CN=Users,DC=corp,DC=local").status(0)
			},
			want: want{op: "DRSCrackNames", target: `CORP\krbtgt`, technique: "T1087.002", phase: PhaseRecon,
				fields: map[string]string{"result": `CORP\krbtgt = CN=krbtgt,CN=Users,DC=corp,DC=local`, "format offered": "NT4_ACCOUNT"}}},
		{name: "DRSBind", iface: drsuapiUUID, opnum: 0,
			req:  func(s *sb) { s.ptr().uuid("e24d201a-4fd6-11d1-a3da-0000f875ae0d").ptr().size(4).u32(4).u32(0x7fffff) },
			resp: func(s *sb) { s.ptr().size(4).u32(4).u32(0x7fffff).handle(h(1)).status(0) },
			want: want{op: "DRSBind", fields: map[string]string{"client dsa": "{e24d201a-4fd6-11d1-a3da-0000f875ae0d}"}}},
	})
}

func TestEndpointsFromMap(t *testing.T) {
	tower := func(port uint16) []byte {
		b := []byte{5, 0}            // floors
		b = append(b, 0x13, 0, 0x0d) // floor 1: interface
		u := svcctlUUID
		b = append(b, u[:]...)
		b = append(b, 2, 0, 2, 0, 0, 0) // version 2.0
		b = append(b, 0x13, 0, 0x0d)    // floor 2: NDR
		n := mustUUID("8a885d04-1ceb-11c9-9fe8-08002b104860")
		b = append(b, n[:]...)
		b = append(b, 2, 0, 2, 0, 0, 0)
		b = append(b, 1, 0, 0x0b, 2, 0, 0, 0) // floor 3: RPC connection-oriented
		b = append(b, 1, 0, 0x07, 2, 0, byte(port>>8), byte(port))
		b = append(b, 1, 0, 0x09, 4, 0, 172, 18, 39, 6)
		return b
	}
	for _, ndr64 := range []bool{false, true} {
		s := newSB(ndr64)
		tw := tower(49671)
		s.handle(Handle{}).u32(1)
		s.size(4).size(0).size(1).ptr()
		s.size(len(tw)).u32(uint32(len(tw))).raw(tw)
		s.status(0)
		c := Call{Interface: epmUUID, Opnum: 3, Response: s.bytes(), NDR64: ndr64}
		for _, eps := range [][]Endpoint{EndpointsFromMap(s.bytes(), false), EndpointsFromCall(c)} {
			if len(eps) != 1 || eps[0].Port != 49671 || eps[0].Protocol != "ncacn_ip_tcp" ||
				eps[0].Interface != svcctlUUID || eps[0].Host.String() != "172.18.39.6" ||
				eps[0].String() != "ncacn_ip_tcp:172.18.39.6[49671]" {
				t.Fatalf("ndr64=%v: endpoints %+v", ndr64, eps)
			}
		}
		d := Decode(c)
		check(t, d, want{op: "ept_map", noise: true, fields: map[string]string{"endpoint": "ncacn_ip_tcp:172.18.39.6[49671]"}})
	}
}

// TestEndpointsFromRealMaps reads the ept_map answers of the capture
// fixtures, NDR64 ones included, without being told the syntax.
func TestEndpointsFromRealMaps(t *testing.T) {
	sc := loadStubs(t, "testdata/stubs/covenant_sharpsc_create_dcerpc_smb_svcctl_2020-08-06022635.jsonl")[0]
	c, _ := sc.call(t, NewShared())
	if !c.NDR64 {
		t.Fatal("fixture expected to be NDR64")
	}
	eps := EndpointsFromMap(c.Response, false)
	if len(eps) != 1 || eps[0].String() != "ncacn_ip_tcp:172.18.39.6[50115]" || InterfaceName(eps[0].Interface) != "svcctl" {
		t.Fatalf("endpoints %+v", eps)
	}
}

func TestHandlesHelpers(t *testing.T) {
	c := fixture{iface: svcctlUUID, opnum: 16,
		req:  func(s *sb) { s.handle(h(1)).wstr("PSEXESVC").u32(0xf01ff) },
		resp: func(s *sb) { s.handle(h(2)).status(0) }}.call(false)
	if got, ok := UsedHandle(c); !ok || got != h(1) {
		t.Fatalf("UsedHandle = %x %v", got, ok)
	}
	if got, ok := ReturnedHandle(c); !ok || got != h(2) {
		t.Fatalf("ReturnedHandle = %x %v", got, ok)
	}
	c.Response = []byte{0x24, 4, 0, 0} // a fault status instead of a stub
	if _, ok := ReturnedHandle(c); ok {
		t.Fatal("handle returned by a failed call")
	}
	if d := Decode(c); d.Status != 0x424 {
		t.Fatalf("status %x", d.Status)
	}
	if _, ok := UsedHandle(Call{Interface: svcctlUUID, Opnum: 15, Request: c.Request}); ok {
		t.Fatal("OpenSCManagerW takes no handle")
	}
}

// TestSrvsvcSharePaths: the shares a NetrShareEnum or NetrShareGetInfo
// response names at a level with paths (SHARE_INFO_2 and _502, MS-SRVS
// 2.2.4.24 and 2.2.4.26) are handed on with their local paths, so replay
// can place a file of a share on its host's disk; a level without paths
// (1) hands on nothing.
func TestSrvsvcSharePaths(t *testing.T) {
	info2 := func(s *sb, typ uint32) {
		s.alignP().ptr().u32(typ).ptr().u32(0).u32(0xffffffff).u32(1).ptr().null()
	}
	for _, f := range []struct {
		fixture
		paths []SharePath
	}{
		{fixture{name: "NetrShareEnum level 2", iface: srvsvcUUID, opnum: 15,
			req: func(s *sb) {
				s.wstrp(`\\FS01`).alignP().u32(2).alignP().u32(2).ptr().alignP().u32(0).null().u32(0xffffffff).ptr().u32(0)
			},
			resp: func(s *sb) {
				s.alignP().u32(2).alignP().u32(2).ptr().alignP().u32(2).ptr().size(2)
				info2(s, 0x80000000)
				info2(s, 0)
				s.wstr("ADMIN$").wstr("Remote Admin").wstr(`C:\WINNT`)
				s.wstr("data").wstr("").wstr(`D:\Shares\data`)
				s.u32(2).ptr().u32(0).status(0)
			}}, []SharePath{{"ADMIN$", `C:\WINNT`}, {"data", `D:\Shares\data`}}},
		{fixture{name: "NetrShareGetInfo level 502", iface: srvsvcUUID, opnum: 16,
			req: func(s *sb) { s.wstrp(`\\FS01`).wstr("D$").u32(502) },
			resp: func(s *sb) {
				s.u32(502).ptr()
				info2(s, 0x80000000)
				s.u32(0).null()
				s.wstr("D$").wstr("Default share").wstr(`D:\`)
				s.status(0)
			}}, []SharePath{{"D$", `D:\`}}},
		{fixture{name: "NetrShareEnum level 1", iface: srvsvcUUID, opnum: 15,
			req: func(s *sb) {
				s.wstrp(`\\FS01`).alignP().u32(1).alignP().u32(1).ptr().alignP().u32(0).null().u32(0xffffffff).ptr().u32(0)
			},
			resp: func(s *sb) {
				s.alignP().u32(1).alignP().u32(1).ptr().alignP().u32(1).ptr().size(1)
				s.alignP().ptr().u32(0).ptr()
				s.wstr("data").wstr("")
				s.u32(1).ptr().u32(0).status(0)
			}}, nil},
	} {
		for _, ndr64 := range []bool{false, true} {
			d := Decode(f.call(ndr64))
			if !slices.Equal(d.SharePaths, f.paths) {
				t.Errorf("%s (ndr64 %v): share paths %q, want %q (%+v)", f.name, ndr64, d.SharePaths, f.paths, d.Fields)
			}
		}
	}
}
