package rpcops

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
	"unicode/utf16"
)

// MS-FASP, the Firewall and Advanced Security Protocol (RemoteFW, TCP
// through the endpoint mapper): what netsh advfirewall and the NetSecurity
// PowerShell module do to another host. Intrusion tools use it to open a
// port for their next step or turn the firewall off (T1562.004); the rule
// and profile calls are decoded, the IPsec ones named. Opnum names are the
// specification's (3.1.4), without the RRPC_FW prefix.
var faspUUID = mustUUID("6b5bdd1e-528c-422c-af8c-a4079be4fe48")

// TechFirewall is Impair Defenses: Disable or Modify System Firewall.
const TechFirewall = "T1562.004"

func init() { builders = append(builders, registerFasp) }

func registerFasp() {
	names := []string{"OpenPolicyStore", "ClosePolicyStore", "RestoreDefaults", "GetGlobalConfig", "SetGlobalConfig",
		"AddFirewallRule", "SetFirewallRule", "DeleteFirewallRule", "DeleteAllFirewallRules", "EnumFirewallRules",
		"GetConfig", "SetConfig", "AddConnectionSecurityRule", "SetConnectionSecurityRule",
		"DeleteConnectionSecurityRule", "DeleteAllConnectionSecurityRules", "EnumConnectionSecurityRules",
		"AddAuthenticationSet", "SetAuthenticationSet", "DeleteAuthenticationSet", "DeleteAllAuthenticationSets",
		"EnumAuthenticationSets", "AddCryptoSet", "SetCryptoSet", "DeleteCryptoSet", "DeleteAllCryptoSets",
		"EnumCryptoSets", "EnumPhase1SAs", "EnumPhase2SAs", "DeletePhase1SAs", "DeletePhase2SAs", "EnumProducts",
		"AddMainModeRule", "SetMainModeRule", "DeleteMainModeRule", "DeleteAllMainModeRules", "EnumMainModeRules",
		"QueryFirewallRules", "QueryConnectionSecurityRules2_10", "QueryMainModeRules", "QueryAuthenticationSets",
		"QueryCryptoSets", "EnumNetworks", "EnumAdapters", "GetGlobalConfig2_10", "GetConfig2_10",
		"AddFirewallRule2_10", "SetFirewallRule2_10", "EnumFirewallRules2_10", "AddConnectionSecurityRule2_10",
		"SetConnectionSecurityRule2_10", "EnumConnectionSecurityRules2_10", "AddAuthenticationSet2_10",
		"SetAuthenticationSet2_10", "EnumAuthenticationSets2_10", "AddCryptoSet2_10", "SetCryptoSet2_10",
		"EnumCryptoSets2_10", "AddConnectionSecurityRule2_20", "SetConnectionSecurityRule2_20",
		"EnumConnectionSecurityRules2_20", "QueryConnectionSecurityRules2_20", "AddAuthenticationSet2_20",
		"SetAuthenticationSet2_20", "EnumAuthenticationSets2_20", "QueryAuthenticationSets2_20",
		"AddFirewallRule2_20", "SetFirewallRule2_20", "EnumFirewallRules2_20", "QueryFirewallRules2_20",
		"AddFirewallRule2_24", "SetFirewallRule2_24", "EnumFirewallRules2_24", "QueryFirewallRules2_24",
		"AddFirewallRule2_25", "SetFirewallRule2_25", "EnumFirewallRules2_25", "QueryFirewallRules2_25",
		"AddFirewallRule2_26", "SetFirewallRule2_26", "EnumFirewallRules2_26", "QueryFirewallRules2_26",
		"AddFirewallRule2_27", "SetFirewallRule2_27", "EnumFirewallRules2_27", "QueryFirewallRules2_27",
		"AddFirewallRule2_31", "SetFirewallRule2_31", "EnumFirewallRules2_31", "QueryFirewallRules2_31",
		"AddFirewallRule2_33", "SetFirewallRule2_33", "EnumFirewallRules2_33", "QueryFirewallRules2_33"}
	evade := func(f func(x *dc)) op {
		return op{req: f, handle: true, technique: TechFirewall, phase: PhaseEvasion}
	}
	ops := map[uint16]op{
		0:  {req: faspOpenStore, opens: "fwstore"},
		1:  {handle: true, closes: true, noise: true},
		2:  {req: func(x *dc) {}, technique: TechFirewall, phase: PhaseEvasion},
		3:  {req: faspGlobalConfig},
		4:  {req: faspGlobalConfig, technique: TechFirewall, phase: PhaseEvasion},
		7:  evade(faspDeleteRule),
		8:  evade(func(x *dc) {}),
		10: {req: faspGetConfig, handle: true},
		11: evade(faspSetConfig),
	}
	for i, n := range names {
		switch {
		case strings.HasPrefix(n, "AddFirewallRule"), strings.HasPrefix(n, "SetFirewallRule"):
			ops[uint16(i)] = evade(faspRule)
		case strings.HasPrefix(n, "EnumFirewallRules"), strings.HasPrefix(n, "QueryFirewallRules"):
			ops[uint16(i)] = op{handle: true, technique: "T1518.001", phase: PhaseRecon}
		}
	}
	register(&iface{name: "RemoteFW", uuid: faspUUID, names: names, ops: ops})
}

var faspStores = map[uint32]string{1: "GP_RSOP", 2: "LOCAL", 5: "DYNAMIC", 6: "GPO", 7: "DEFAULTS"}

var faspProfiles = []flagName{{1, "DOMAIN"}, {2, "PRIVATE"}, {4, "PUBLIC"}}

func faspProfile(p uint32) string {
	switch p {
	case 0x7fffffff:
		return "ALL"
	case 0x80000000:
		return "CURRENT"
	}
	return flagNames(p, faspProfiles)
}

// faspOpenStore: OpenPolicyStore(BinaryVersion, StoreType, AccessRight,
// dwFlags); the store names the handle it returns.
func faspOpenStore(x *dc) {
	r := x.r
	ver := r.U16()
	store := r.Enum()
	access := r.Enum()
	if r.Err() != nil {
		return
	}
	x.d.Target = enumName(store, faspStores) + " store"
	x.add("binary version", fmt.Sprintf("0x%04x", ver))
	x.add("access", enumName(access, map[uint32]string{1: "READ", 2: "READ_WRITE"}))
}

var faspGlobalConfigs = map[uint32]string{1: "POLICY_VERSION_SUPPORTED", 2: "CURRENT_PROFILE",
	3: "DISABLE_STATEFUL_FTP", 4: "DISABLE_STATEFUL_PPTP", 5: "SA_IDLE_TIME", 6: "PRESHARED_KEY_ENCODING",
	7: "IPSEC_EXEMPT", 8: "CRL_CHECK", 9: "IPSEC_THROUGH_NAT", 10: "POLICY_VERSION", 11: "BINARY_VERSION_SUPPORTED",
	12: "IPSEC_TUNNEL_REMOTE_MACHINE_AUTHORIZATION_LIST", 13: "IPSEC_TUNNEL_REMOTE_USER_AUTHORIZATION_LIST",
	14: "OPPORTUNISTICALLY_MATCH_AUTH_SET_PER_KM", 15: "IPSEC_TRANSPORT_REMOTE_MACHINE_AUTHORIZATION_LIST",
	16: "IPSEC_TRANSPORT_REMOTE_USER_AUTHORIZATION_LIST", 17: "ENABLE_PACKET_QUEUE"}

// faspGlobalConfig: Get/SetGlobalConfig(BinaryVersion, StoreType,
// configID, lpBuffer, dwBufSize): the value set is a DWORD for most
// options.
func faspGlobalConfig(x *dc) {
	r := x.r
	r.U16() // BinaryVersion
	store := r.Enum()
	id := r.Enum()
	if r.Err() != nil {
		return
	}
	x.d.Target = enumName(id, faspGlobalConfigs)
	x.add("store", enumName(store, faspStores))
	if x.c.Opnum != 4 || !r.Ptr() {
		return
	}
	n := r.Count(1)
	b := r.Bytes(n)
	if len(b) == 4 && r.Err() == nil {
		x.add("value", fmt.Sprint(binary.LittleEndian.Uint32(b)))
	}
}

var faspProfileConfigs = map[uint32]string{1: "ENABLE_FW", 2: "DISABLE_STEALTH_MODE", 3: "SHIELDED",
	4: "DISABLE_UNICAST_RESPONSES_TO_MULTICAST_BROADCAST", 5: "LOG_DROPPED_PACKETS", 6: "LOG_SUCCESS_CONNECTIONS",
	7: "LOG_IGNORED_RULES", 8: "LOG_MAX_FILE_SIZE", 9: "LOG_FILE_PATH", 10: "DISABLE_INBOUND_NOTIFICATIONS",
	11: "AUTH_APPS_ALLOW_USER_PREF_MERGE", 12: "GLOBAL_PORTS_ALLOW_USER_PREF_MERGE", 13: "ALLOW_LOCAL_POLICY_MERGE",
	14: "ALLOW_LOCAL_IPSEC_POLICY_MERGE", 15: "DISABLED_INTERFACES", 16: "DEFAULT_OUTBOUND_ACTION",
	17: "DEFAULT_INBOUND_ACTION", 18: "DISABLE_STEALTH_MODE_IPSEC_SECURED_PACKET_EXEMPTION"}

var faspActions = map[uint32]string{1: "ALLOW_BYPASS", 2: "BLOCK", 3: "ALLOW"}

// faspGetConfig: GetConfig(hPolicyStore, configID, Profile, ...).
func faspGetConfig(x *dc) {
	r := x.r
	id := r.Enum()
	profile := r.U32() // [v1_enum]
	if r.Err() != nil {
		return
	}
	x.d.Target = enumName(id, faspProfileConfigs)
	x.add("profile", faspProfile(profile))
}

// faspSetConfig: SetConfig(hPolicyStore, configID, Profile, pConfig,
// dwBufSize); pConfig is a union on configID: a DWORD pointer for the
// switches, a string for the log path, interface LUIDs for
// DISABLED_INTERFACES (not decoded).
func faspSetConfig(x *dc) {
	r := x.r
	id := r.Enum()
	profile := r.U32() // [v1_enum]
	if r.Err() != nil {
		return
	}
	name := enumName(id, faspProfileConfigs)
	x.d.Target = name
	x.add("profile", faspProfile(profile))
	if disc := r.SwitchEnum(); disc != id && r.Err() == nil {
		r.Failf("config union arm %d, config %d", disc, id)
		return
	}
	switch id {
	case 9:
		r.AlignP()
		if r.Ptr() {
			x.add("value", r.WString())
		}
	case 15:
	default:
		r.AlignP()
		if !r.Ptr() {
			return
		}
		v := r.U32()
		if r.Err() != nil {
			return
		}
		switch {
		case id == 1 && v == 0:
			x.add("value", "0 (firewall disabled)")
		case id == 16 || id == 17:
			x.add("value", enumName(v, faspActions))
		default:
			x.add("value", fmt.Sprint(v))
		}
	}
}

// faspDeleteRule: DeleteFirewallRule(hPolicyStore, [string, ref] wszRuleID).
func faspDeleteRule(x *dc) {
	id := x.r.WString()
	x.d.Target = id
	x.add("rule id", id)
}

// faspRule decodes an FW_RULE, whose members every version (2_0 to 2_33)
// begins with: pNext, wSchemaVersion, the rule id, name and description
// pointers, profiles, direction, protocol, the protocol union (local and
// remote ports for TCP and UDP), the local and remote addresses and
// interfaces, the application and service pointers, the action and flags.
// The strings and port ranges are deferred, in member order: the id, the
// name and description when present, the port ranges, the address and
// interface arrays (no strings), then the application and service. The
// strings are found by their conformant varying shape and the port ranges
// read right after the head's strings.
func faspRule(x *dc) {
	r := x.r
	r.AlignP()
	next := r.Ptr()
	schema := r.U16()
	hasID, hasName, hasDesc := r.Ptr(), r.Ptr(), r.Ptr()
	profiles := r.U32()
	dir := r.Enum()
	proto := r.U16()
	r.AlignP() // the protocol union: a WORD discriminant, then its arm
	if disc := r.U16(); disc != proto && r.Err() == nil {
		r.Failf("protocol union arm %d, protocol %d", disc, proto)
		return
	}
	var ports [2]faspList
	var icmp faspList
	r.AlignP()
	switch proto {
	case 6, 17:
		for i := range ports {
			r.AlignP()
			r.U16() // wPortKeywords
			r.AlignP()
			ports[i].n = r.U32()
			ports[i].has = r.Ptr()
		}
	case 1, 58: // FW_ICMP_TYPE_CODE_LIST
		r.AlignP()
		icmp.n = uint32(r.U16())
		icmp.has = r.Ptr()
	}
	var addrs [2]faspAddrs
	for i := range addrs { // LocalAddresses, RemoteAddresses
		r.AlignP()
		addrs[i].v4kw = r.U32()
		addrs[i].v6kw = r.U32()
		for j := range addrs[i].lists { // v4 subnets and ranges, v6 subnets and ranges
			r.AlignP()
			addrs[i].lists[j].n = r.U32()
			addrs[i].lists[j].has = r.Ptr()
		}
	}
	r.AlignP() // LocalInterfaceIds
	r.U32()
	r.Ptr()
	r.U32() // dwLocalInterfaceTypes
	hasApp, hasSvc := r.Ptr(), r.Ptr()
	action := r.Enum()
	if r.Err() != nil {
		return
	}
	x.add("schema version", fmt.Sprintf("0x%04x", schema))
	x.add("action", enumName(action, faspActions))
	x.add("direction", enumName(dir, map[uint32]string{1: "IN", 2: "OUT"}))
	x.add("protocol", enumName(uint32(proto), map[uint32]string{1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 256: "ANY"}))
	x.add("profiles", faspProfile(profiles))
	skew := r.Offset()
	strs := ndrWStrings(x.c.Request[skew:], r.NDR64(), r.BigEndian(), skew%r.PtrSize())
	if next || !hasID || len(strs) == 0 {
		// Several rules, or no id: list the strings found.
		for _, s := range strs {
			x.add("string", s.text)
		}
		return
	}
	x.d.Target = strs[0].text
	x.add("rule id", strs[0].text)
	head := strs[0]
	strs = strs[1:]
	take := func(has bool, name string) string {
		if !has || len(strs) == 0 {
			return ""
		}
		s := strs[0]
		strs = strs[1:]
		x.add(name, s.text)
		return s.text
	}
	if hasName && len(strs) > 0 {
		head = strs[0]
		take(true, "name")
	}
	if hasDesc && len(strs) > 0 {
		head = strs[0]
		take(true, "description")
	}
	// The port ranges follow the head's strings.
	at := skew + head.end
	for i, name := range []string{"local ports", "remote ports"} {
		if ports[i].has && ports[i].n > 0 {
			var list string
			list, at = faspPortRanges(x, at, ports[i].n)
			x.add(name, list)
		}
	}
	if icmp.has && icmp.n > 0 {
		// FW_ICMP_TYPE_CODE {BYTE bType; WORD wCode}: 4 bytes each.
		var list string
		list, at = faspICMP(x, at, icmp.n)
		x.add("icmp types", list)
	}
	// Then the addresses (local, remote), after the ports.
	for i, name := range []string{"local addresses", "remote addresses"} {
		var list []string
		list, at = faspAddresses(x, at, addrs[i])
		if len(list) > 0 {
			x.add(name, strings.Join(list, ", "))
		}
	}
	if app := take(hasApp, "application"); app != "" {
		x.d.Command = app
	}
	take(hasSvc, "service")
}

// faspPortRanges reads a deferred FW_PORT_RANGE array at off of the
// request (conformance, then WORD begin and end each) and returns it as
// "80, 1000-2000" with the offset after it.
func faspPortRanges(x *dc, off int, n uint32) (string, int) {
	r := newReader(x.c, x.c.Request)
	r.Skip(off)
	c := r.Count(4)
	if uint32(c) != n {
		return "", off
	}
	var parts []string
	for i := 0; i < c; i++ {
		b, e := r.U16(), r.U16()
		if r.Err() != nil {
			return strings.Join(parts, ", "), off
		}
		if i < maxListed {
			if b == e {
				parts = append(parts, fmt.Sprint(b))
			} else {
				parts = append(parts, fmt.Sprintf("%d-%d", b, e))
			}
		}
	}
	return strings.Join(parts, ", "), r.Offset()
}

// faspICMP reads a deferred FW_ICMP_TYPE_CODE array: type, and code
// (0x100 for any).
func faspICMP(x *dc, off int, n uint32) (string, int) {
	r := newReader(x.c, x.c.Request)
	r.Skip(off)
	c := r.Count(4)
	if uint32(c) != n {
		return "", off
	}
	var parts []string
	for i := 0; i < c; i++ {
		r.Align(2)
		typ := r.U8()
		code := r.U16()
		if r.Err() != nil {
			return strings.Join(parts, ", "), off
		}
		if i < maxListed {
			if code == 0x100 {
				parts = append(parts, fmt.Sprintf("%d", typ))
			} else {
				parts = append(parts, fmt.Sprintf("%d:%d", typ, code))
			}
		}
	}
	return strings.Join(parts, ", "), r.Offset()
}

// faspList is an embedded list's count and whether its array follows.
type faspList struct {
	n   uint32
	has bool
}

// faspAddrs is an FW_ADDRESSES: keywords, then IPv4 subnets and ranges,
// IPv6 subnets and ranges.
type faspAddrs struct {
	v4kw, v6kw uint32
	lists      [4]faspList
}

var faspAddrKeywords = []flagName{{1, "LocalSubnet"}, {2, "DNS"}, {4, "DHCP"}, {8, "WINS"}, {0x10, "DefaultGateway"},
	{0x20, "Intranet"}, {0x40, "Internet"}, {0x80, "PlayToRenderers"}, {0x100, "RemoteIntranet"},
	{0x200, "CaptivePortal"}, {0x400, "InternalLocalAddresses"}}

// faspAddresses reads an FW_ADDRESSES' deferred arrays at off of the
// request (MS-FASP 2.2.6 to 2.2.10): IPv4 subnets (address and mask, as
// numbers whose high byte is the first octet), IPv4 ranges, IPv6 subnets
// (address, prefix length), IPv6 ranges; and names its keywords.
func faspAddresses(x *dc, off int, a faspAddrs) ([]string, int) {
	var out []string
	if a.v4kw|a.v6kw != 0 {
		out = append(out, flagNames(a.v4kw|a.v6kw, faspAddrKeywords))
	}
	r := newReader(x.c, x.c.Request)
	r.Skip(off)
	v4 := func(v uint32) string { return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff) }
	v6 := func(b []byte) string {
		if ip, ok := netip.AddrFromSlice(b); ok {
			return ip.String()
		}
		return ""
	}
	for j, l := range a.lists {
		if !l.has || l.n == 0 {
			continue
		}
		elem := []int{8, 8, 20, 32}[j]
		c := r.Count(elem)
		if uint32(c) != l.n || r.Err() != nil {
			return out, off
		}
		for k := 0; k < c; k++ {
			var s string
			switch j {
			case 0: // FW_IPV4_SUBNET
				addr, mask := r.U32(), r.U32()
				s = fmt.Sprintf("%s/%d", v4(addr), bits.LeadingZeros32(^mask))
			case 1: // FW_IPV4_ADDRESS_RANGE
				b, e := r.U32(), r.U32()
				s = v4(b) + "-" + v4(e)
			case 2: // FW_IPV6_SUBNET
				ip := v6(r.Bytes(16))
				s = fmt.Sprintf("%s/%d", ip, r.U32())
			case 3: // FW_IPV6_ADDRESS_RANGE
				s = v6(r.Bytes(16)) + "-" + v6(r.Bytes(16))
			}
			if r.Err() != nil {
				return out, off
			}
			if len(out) < maxListed {
				out = append(out, s)
			}
		}
	}
	return out, r.Offset()
}

// ndrStr is a string ndrWStrings found and where it ends in its buffer.
type ndrStr struct {
	text string
	end  int
}

// ndrWStrings finds the conformant varying UTF-16 strings (max count,
// offset 0, actual count no larger, then NUL-terminated printable text) in
// b, at positions aligned as NDR aligns them; skew is b's offset modulo
// the alignment within its stub. Nothing is allocated from a count the
// bytes do not hold.
func ndrWStrings(b []byte, ndr64, big bool, skew int) []ndrStr {
	n := 4
	if ndr64 {
		n = 8
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if big {
		order = binary.BigEndian
	}
	size := func(i int) uint64 {
		if n == 8 {
			return order.Uint64(b[i:])
		}
		return uint64(order.Uint32(b[i:]))
	}
	var out []ndrStr
	i := (n - skew%n) % n
	for i+3*n <= len(b) && len(out) < maxListed {
		mx, off, actual := size(i), size(i+n), size(i+2*n)
		start := i + 3*n
		if off != 0 || actual == 0 || actual > mx || actual > uint64(len(b)-start)/2 {
			i += n
			continue
		}
		u := make([]uint16, actual)
		ok := true
		for k := range u {
			u[k] = order.Uint16(b[start+2*k:])
			if k < len(u)-1 && u[k] < 0x20 {
				ok = false
				break
			}
		}
		if !ok || u[len(u)-1] != 0 {
			i += n
			continue
		}
		i = start + 2*int(actual)
		out = append(out, ndrStr{string(utf16.Decode(u[:len(u)-1])), i})
		i += (n - (i+skew)%n) % n
	}
	return out
}
