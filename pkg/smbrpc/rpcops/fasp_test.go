package rpcops

import "testing"

// MS-FASP requests built from the specification's IDL (section 6), member
// by member in the order go-msrpc's generated marshalling writes them,
// in NDR and NDR64.

// fwRule210 writes an FW_RULE2_10 (MS-FASP 2.2.37) allowing TCP to local
// port 4444 for an application.
func fwRule210(s *sb, id, name, app string) {
	fwRule(s, fwRuleSpec{proto: 6, id: id, name: name, app: app, local: [][2]uint16{{4444, 4444}}, action: 3})
}

type fwRuleSpec struct {
	proto                   uint16
	id, name, desc, app, sv string
	local, remote           [][2]uint16
	action                  uint32
	// remoteV4 are IPv4 subnets (address, mask), remoteV6 an IPv6
	// subnet; remoteKeywords FW_ADDRESS_KEYWORD bits.
	remoteV4       [][2]uint32
	remoteV6       []byte
	remoteKeywords uint32
}

// fwRule writes an FW_RULE2_10: the head, the protocol union, the
// address, interface and platform lists (empty), then the deferred
// strings and port arrays in member order.
func fwRule(s *sb, r fwRuleSpec) {
	strp := func(v string) {
		if v == "" {
			s.null()
		} else {
			s.ptr()
		}
	}
	s.alignP()
	s.null()      // pNext
	s.u16(0x020a) // wSchemaVersion
	s.ptr()       // wszRuleId
	strp(r.name)
	strp(r.desc)
	s.u32(0x7fffffff) // dwProfiles
	s.enum(1)         // Direction IN
	s.u16(r.proto)    // wIpProtocol
	// IpProtocolData, switch_is(wIpProtocol).
	s.alignP().u16(r.proto).alignP()
	if r.proto == 1 { // V4TypeCodeList: echo request, any code
		s.alignP().u16(1).ptr()
	}
	if r.proto == 6 || r.proto == 17 {
		for _, p := range [][][2]uint16{r.local, r.remote} { // LocalPorts, RemotePorts
			s.alignP().u16(0).alignP().u32(uint32(len(p)))
			if len(p) > 0 {
				s.ptr()
			} else {
				s.null()
			}
		}
	}
	s.alignP().u32(0).u32(0) // LocalAddresses: none
	for j := 0; j < 4; j++ {
		s.alignP().u32(0).null()
	}
	s.alignP().u32(r.remoteKeywords).u32(0) // RemoteAddresses
	counts := []int{len(r.remoteV4), 0, 0, 0}
	if r.remoteV6 != nil {
		counts[2] = 1
	}
	for _, n := range counts {
		s.alignP().u32(uint32(n))
		if n > 0 {
			s.ptr()
		} else {
			s.null()
		}
	}
	s.alignP().u32(0).null() // LocalInterfaceIds
	s.u32(0)                 // dwLocalInterfaceTypes
	strp(r.app)
	strp(r.sv)
	s.enum(r.action).u16(1)  // Action, wFlags ACTIVE
	s.null().null().null()   // authorization lists, embedded context
	s.alignP().u32(0).null() // PlatformValidityList
	s.u32(0).enum(0)         // Status, Origin
	s.null().u32(0).null()   // wszGPOName, MetaDataReserved, pMetaData
	// Deferred, in member order.
	s.wstr(r.id)
	for _, v := range []string{r.name, r.desc} {
		if v != "" {
			s.wstr(v)
		}
	}
	for _, p := range [][][2]uint16{r.local, r.remote} {
		if len(p) > 0 {
			s.size(len(p))
			for _, rg := range p {
				s.u16(rg[0]).u16(rg[1])
			}
		}
	}
	if r.proto == 1 {
		s.size(1).u8(8).u16(0x100)
	}
	if len(r.remoteV4) > 0 { // FW_IPV4_SUBNET array
		s.size(len(r.remoteV4))
		for _, a := range r.remoteV4 {
			s.u32(a[0]).u32(a[1])
		}
	}
	if r.remoteV6 != nil { // FW_IPV6_SUBNET array
		s.size(1).raw(r.remoteV6).u32(64)
	}
	for _, v := range []string{r.app, r.sv} {
		if v != "" {
			s.wstr(v)
		}
	}
}

func faspFixtures() []fixture {
	evade := func(op, target string, fields map[string]string) want {
		return want{op: op, target: target, technique: TechFirewall, phase: PhaseEvasion, fields: fields}
	}
	return []fixture{
		{name: "OpenPolicyStore", iface: faspUUID, opnum: 0,
			req:  func(s *sb) { s.u16(0x020a).enum(2).enum(2).u32(0) },
			resp: func(s *sb) { s.handle(h(7)).status(0) },
			want: want{op: "OpenPolicyStore", target: "LOCAL store", fields: map[string]string{"access": "READ_WRITE", "binary version": "0x020a"}}},
		// netsh advfirewall set allprofiles state off.
		{name: "SetConfig firewall off", iface: faspUUID, opnum: 11,
			req: func(s *sb) {
				s.handle(h(7)).enum(1).u32(0x7fffffff)
				s.alignP().enum(1).alignP().ptr().u32(0) // union arm: DWORD* 0
				s.u32(4)
			},
			want: evade("SetConfig", "ENABLE_FW", map[string]string{"profile": "ALL", "value": "0 (firewall disabled)"})},
		{name: "SetConfig default inbound allow", iface: faspUUID, opnum: 11,
			req: func(s *sb) {
				s.handle(h(7)).enum(17).u32(4)
				s.alignP().enum(17).alignP().ptr().u32(3)
				s.u32(4)
			},
			want: evade("SetConfig", "DEFAULT_INBOUND_ACTION", map[string]string{"profile": "PUBLIC", "value": "ALLOW"})},
		{name: "SetConfig log path", iface: faspUUID, opnum: 11,
			req: func(s *sb) {
				s.handle(h(7)).enum(9).u32(1)
				s.alignP().enum(9).alignP().wstrp(`C:\Windows\Temp\fw.log`)
				s.u32(46)
			},
			want: evade("SetConfig", "LOG_FILE_PATH", map[string]string{"profile": "DOMAIN", "value": `C:\Windows\Temp\fw.log`})},
		{name: "GetConfig", iface: faspUUID, opnum: 10,
			req:  func(s *sb) { s.handle(h(7)).enum(1).u32(2) },
			want: want{op: "GetConfig", target: "ENABLE_FW", fields: map[string]string{"profile": "PRIVATE"}}},
		{name: "SetGlobalConfig", iface: faspUUID, opnum: 4,
			req: func(s *sb) {
				s.u16(0x020a).enum(2).enum(3).ptr().size(4).raw([]byte{1, 0, 0, 0}).u32(4)
			},
			want: evade("SetGlobalConfig", "DISABLE_STATEFUL_FTP", map[string]string{"store": "LOCAL", "value": "1"})},
		{name: "DeleteFirewallRule", iface: faspUUID, opnum: 7,
			req:  func(s *sb) { s.handle(h(7)).wstr("{5A1B2C3D-0000-0000-0000-000000000001}") },
			want: evade("DeleteFirewallRule", "{5A1B2C3D-0000-0000-0000-000000000001}", nil)},
		{name: "DeleteAllFirewallRules", iface: faspUUID, opnum: 8,
			req:  func(s *sb) { s.handle(h(7)) },
			want: evade("DeleteAllFirewallRules", "", nil)},
		{name: "RestoreDefaults", iface: faspUUID, opnum: 2,
			want: evade("RestoreDefaults", "", nil)},
		{name: "AddFirewallRule2_10", iface: faspUUID, opnum: 46,
			req: func(s *sb) {
				s.handle(h(7))
				fwRule210(s, "{0001}", "Updater", `C:\Users\Public\svc.exe`)
			},
			want: want{op: "AddFirewallRule2_10", target: "{0001}", command: `C:\Users\Public\svc.exe`, technique: TechFirewall, phase: PhaseEvasion,
				fields: map[string]string{"rule id": "{0001}", "name": "Updater", "application": `C:\Users\Public\svc.exe`,
					"direction": "IN", "protocol": "TCP", "profiles": "ALL", "action": "ALLOW", "local ports": "4444"}}},
		{name: "SetFirewallRule2_10 UDP with description and service", iface: faspUUID, opnum: 47,
			req: func(s *sb) {
				s.handle(h(7))
				fwRule(s, fwRuleSpec{proto: 17, id: "{0002}", name: "DNS", desc: `allows C:\dns`, app: `%SystemRoot%\system32\svchost.exe`,
					sv: "dnscache", local: [][2]uint16{{53, 53}, {5353, 5355}}, remote: [][2]uint16{{1024, 65535}}, action: 2,
					remoteV4: [][2]uint32{{0x0a000042, 0xffffffff}, {0xc0a80100, 0xffffff00}},
					remoteV6: []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, remoteKeywords: 1})
			},
			want: want{op: "SetFirewallRule2_10", target: "{0002}", command: `%SystemRoot%\system32\svchost.exe`, technique: TechFirewall, phase: PhaseEvasion,
				fields: map[string]string{"description": `allows C:\dns`, "service": "dnscache", "action": "BLOCK", "protocol": "UDP",
					"local ports": "53, 5353-5355", "remote ports": "1024-65535",
					"remote addresses": "LocalSubnet, 10.0.0.66/32, 192.168.1.0/24, fd00::/64"}}},
		{name: "AddFirewallRule2_10 ICMP from one host", iface: faspUUID, opnum: 46,
			req: func(s *sb) {
				s.handle(h(7))
				fwRule(s, fwRuleSpec{proto: 1, id: "{0003}", name: "ping", action: 3, remoteV4: [][2]uint32{{0x0a000042, 0xffffffff}}})
			},
			want: want{op: "AddFirewallRule2_10", target: "{0003}", technique: TechFirewall, phase: PhaseEvasion,
				fields: map[string]string{"protocol": "ICMP", "icmp types": "8", "remote addresses": "10.0.0.66/32", "name": "ping"}}},
		{name: "EnumFirewallRules2_10", iface: faspUUID, opnum: 48,
			req:  func(s *sb) { s.handle(h(7)).u32(0).u32(0x7fffffff).u16(0) },
			want: want{op: "EnumFirewallRules2_10", technique: "T1518.001", phase: PhaseRecon}},
	}
}

func TestFaspFixtures(t *testing.T) { runFixtures(t, faspFixtures()) }

// TestFaspSession: the store a handle was opened on names the calls on it.
func TestFaspSession(t *testing.T) {
	var s Session
	fs := faspFixtures()
	s.Decode(fs[0].call(false))
	d := s.Decode(fixture{iface: faspUUID, opnum: 8, req: func(s *sb) { s.handle(h(7)) }}.call(false))
	check(t, d, want{op: "DeleteAllFirewallRules", target: "LOCAL store", technique: TechFirewall, phase: PhaseEvasion})
}
