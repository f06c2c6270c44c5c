package rpcops

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// MS-DNSP, the DNS server management interface (DnsServer, TCP after an
// endpoint-mapper lookup, or \pipe\DNSSERVER). Three uses matter to a
// responder:
//
//   - R_DnssrvOperation(2) "ServerLevelPluginDll" with a DLL path: a member
//     of DnsAdmins makes the DNS service, usually on a domain controller,
//     load that DLL as SYSTEM when it next starts. ATT&CK has no technique
//     of its own for it; it modifies a Windows service's configuration so
//     that the service runs the adversary's code, which is T1543.003
//     (Create or Modify System Process: Windows Service), and the DLL runs
//     on the DNS server: phase execution. A UNC path names the host the DLL
//     is loaded from.
//   - R_DnssrvUpdateRecord(2) adding a record: ADIDNS poisoning (any
//     authenticated user may add records to an AD-integrated zone by
//     default; a wildcard or WPAD record redirects names to the attacker,
//     who then captures or relays the authentication that follows):
//     T1557 (Adversary-in-the-Middle), phase credential-access. A removal
//     alone is named without a technique (cleanup or administration).
//   - Queries and enumerations (R_DnssrvQuery(2), R_DnssrvEnumRecords(2),
//     R_DnssrvComplexOperation(2)): context; zone and record enumeration is
//     reconnaissance (T1018, Remote System Discovery, as adidnsdump's
//     purpose is), server settings queries are named only.
var dnsServerUUID = mustUUID("50abc2a4-574d-40b3-9d66-ee4fd5fba076")

// TechADIDNS is Adversary-in-the-Middle (ADIDNS record poisoning).
const TechADIDNS = "T1557"

func init() { builders = append(builders, registerDNSP) }

func registerDNSP() {
	register(&iface{name: "DnsServer", uuid: dnsServerUUID, pipes: []string{"dnsserver"},
		names: []string{"R_DnssrvOperation", "R_DnssrvQuery", "R_DnssrvComplexOperation",
			"R_DnssrvEnumRecords", "R_DnssrvUpdateRecord", "R_DnssrvOperation2", "R_DnssrvQuery2",
			"R_DnssrvComplexOperation2", "R_DnssrvEnumRecords2", "R_DnssrvUpdateRecord2",
			"R_DnssrvUpdateRecord3", "R_DnssrvEnumRecords3", "R_DnssrvOperation3", "R_DnssrvQuery3",
			"R_DnssrvComplexOperation3", "R_DnssrvOperation4", "R_DnssrvQuery4", "R_DnssrvUpdateRecord4",
			"R_DnssrvEnumRecords4"},
		ops: map[uint16]op{
			0: {req: func(x *dc) { dnsOperation(x, false) }},
			1: {req: func(x *dc) { dnsQuery(x, false) }, resp: dnsQueryResp},
			2: {req: func(x *dc) { dnsComplex(x, false) }},
			3: {req: func(x *dc) { dnsEnumRecords(x, false) }, resp: dnsEnumResp},
			4: {req: func(x *dc) { dnsUpdateRecord(x, false) }},
			5: {req: func(x *dc) { dnsOperation(x, true) }},
			6: {req: func(x *dc) { dnsQuery(x, true) }, resp: dnsQueryResp},
			7: {req: func(x *dc) { dnsComplex(x, true) }},
			8: {req: func(x *dc) { dnsEnumRecords(x, true) }, resp: dnsEnumResp},
			9: {req: func(x *dc) { dnsUpdateRecord(x, true) }},
		}})
}

// dnsHeader reads what every R_Dnssrv* call starts with: for the "2"
// versions dwClientVersion and dwSettingFlags, then pwszServerName
// (unique wide string) and pszZone (unique 8-bit string).
func dnsHeader(x *dc, v2 bool) (zone string) {
	r := x.r
	if v2 {
		r.U32() // dwClientVersion
		r.U32() // dwSettingFlags
	}
	x.add("server", wstrPtr(r))
	if r.Ptr() {
		zone = r.AString()
	}
	x.add("zone", zone)
	return zone
}

func astrPtr(r *ndr.Reader) (s string) {
	if r.Ptr() {
		s = r.AString()
	}
	return s
}

// DNSSRV_TYPEID values (MS-DNSP 2.2.1.1.1) whose data is decoded.
const (
	dnsTypeNull         = 0
	dnsTypeDword        = 1
	dnsTypeLPSTR        = 2
	dnsTypeLPWSTR       = 3
	dnsTypeNameAndParam = 15
)

// dnsUnion reads a DNSSRV_RPC_UNION (its discriminant, then the arm) and
// renders the arms that carry a value: a DWORD, a string, a
// DNS_RPC_NAME_AND_PARAM. Other arms (zone creation, server info...) are
// named by type only: their layouts differ per type and a responder needs
// the operation name more than their contents.
func dnsUnion(r *ndr.Reader) (typ uint32, val string) {
	typ = r.Switch()
	switch typ {
	case dnsTypeDword:
		v := r.U32()
		return typ, fmt.Sprintf("%d (0x%x)", v, v)
	case dnsTypeLPSTR:
		return typ, astrPtr(r)
	case dnsTypeLPWSTR:
		return typ, wstrPtr(r)
	case dnsTypeNameAndParam:
		if !r.Ptr() {
			return typ, ""
		}
		r.AlignP()
		param := r.U32()
		name := astrPtr(r)
		return typ, fmt.Sprintf("%s = %d", name, param)
	}
	return typ, ""
}

func dnsTypeIDName(t uint32) string {
	names := []string{"NULL", "DWORD", "LPSTR", "LPWSTR", "IPARRAY", "BUFFER", "SERVER_INFO_W2K",
		"STATS", "FORWARDERS_W2K", "ZONE_W2K", "ZONE_INFO_W2K", "ZONE_SECONDARIES_W2K",
		"ZONE_DATABASE_W2K", "ZONE_TYPE_RESET_W2K", "ZONE_CREATE_W2K", "NAME_AND_PARAM",
		"ZONE_LIST_W2K", "ZONE_RENAME", "ZONE_EXPORT", "SERVER_INFO_DOTNET", "FORWARDERS_DOTNET",
		"ZONE", "ZONE_INFO_DOTNET", "ZONE_SECONDARIES_DOTNET", "ZONE_DATABASE",
		"ZONE_TYPE_RESET_DOTNET", "ZONE_CREATE_DOTNET", "ZONE_LIST", "DP_ENUM", "DP_INFO",
		"DP_LIST", "ENLIST_DP", "ZONE_CHANGE_DP", "ENUM_ZONES_FILTER", "ADDRARRAY",
		"SERVER_INFO", "ZONE_INFO", "FORWARDERS", "ZONE_SECONDARIES", "ZONE_TYPE_RESET",
		"ZONE_CREATE", "IP_VALIDATE", "AUTOCONFIGURE", "UTF8_STRING_LIST", "UNICODE_STRING_LIST"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprint(t)
}

// dnsOperation reads R_DnssrvOperation(2): header, dwContext,
// pszOperation, dwTypeId, pData.
func dnsOperation(x *dc, v2 bool) {
	r := x.r
	zone := dnsHeader(x, v2)
	r.U32() // dwContext
	opName := astrPtr(r)
	r.U32() // dwTypeId: the union repeats it as its discriminant
	typ, val := dnsUnion(r)
	if r.Err() != nil && opName == "" {
		return
	}
	dnsOpFields(x, zone, opName, typ, val)
	if strings.EqualFold(opName, "ServerLevelPluginDll") {
		if val == "" {
			x.add("dll", "(cleared)")
			return
		}
		// DnsAdmins to SYSTEM on the DNS server (see the package comment
		// above): T1543.003.
		x.d.Command = val
		x.d.Technique, x.d.Phase = "T1543.003", PhaseExecution
		x.add("dll", val)
		if isUNC(val) {
			x.add("loaded from", CoercedHost(val))
		}
	}
}

// dnsOpFields records what R_DnssrvOperation and ComplexOperation carry:
// the operation, its typed value, and the zone it applies to.
func dnsOpFields(x *dc, zone, opName string, typ uint32, val string) {
	x.add("operation", opName)
	x.add("type", dnsTypeIDName(typ))
	x.add("value", val)
	x.d.Target = dnsTarget(zone, opName)
}

// dnsTarget names what a call acts on: the zone, when one is given, then
// the operation or setting.
func dnsTarget(zone, name string) string {
	if zone == "" {
		return name
	}
	return zone + ": " + name
}

// dnsQuery reads R_DnssrvQuery(2): header, pszOperation (a setting name).
func dnsQuery(x *dc, v2 bool) {
	zone := dnsHeader(x, v2)
	q := astrPtr(x.r)
	x.add("query", q)
	x.d.Target = dnsTarget(zone, q)
}

// dnsQueryResp reads pdwTypeId and the union it selects.
func dnsQueryResp(x *dc) {
	x.r.U32()
	typ, val := dnsUnion(x.r)
	x.add("answer type", dnsTypeIDName(typ))
	x.add("answer", val)
}

// dnsComplex reads R_DnssrvComplexOperation(2): header, pszOperation,
// dwTypeIn, pDataIn. EnumZones and EnumDirectoryPartitions list what the
// server holds: reconnaissance (T1018).
func dnsComplex(x *dc, v2 bool) {
	r := x.r
	zone := dnsHeader(x, v2)
	opName := astrPtr(r)
	r.U32()
	typ, val := dnsUnion(r)
	dnsOpFields(x, zone, opName, typ, val)
	if strings.HasPrefix(strings.ToLower(opName), "enumzones") {
		x.d.Technique, x.d.Phase = "T1018", PhaseRecon
	}
}

// dnsEnumRecords reads R_DnssrvEnumRecords(2): header, pszNodeName,
// pszStartChild, wRecordType, fSelectFlag, pszFilterStart, pszFilterStop.
// Listing a zone's records maps the network (adidnsdump): T1018.
func dnsEnumRecords(x *dc, v2 bool) {
	r := x.r
	zone := dnsHeader(x, v2)
	node := astrPtr(r)
	child := astrPtr(r)
	typ := r.U16()
	sel := r.U32()
	if r.Err() != nil {
		return
	}
	x.add("node", node)
	x.add("start child", child)
	x.add("record type", fmt.Sprintf("%s (%d)", dnsRecordType(typ), typ))
	x.add("select flags", hex32(sel))
	x.d.Target = strings.TrimPrefix(node+"."+zone, ".")
	x.d.Technique, x.d.Phase = "T1018", PhaseRecon
}

// dnsEnumResp reads pdwBufferLength: how much record data came back.
func dnsEnumResp(x *dc) {
	if n := x.r.U32(); x.r.Err() == nil && x.d.Status == 0 {
		x.add("returned", fmt.Sprintf("%d bytes of records", n))
	}
}

// dnsUpdateRecord reads R_DnssrvUpdateRecord(2): header, pszNodeName (a
// [string] reference), pAddRecord and pDeleteRecord (unique
// DNS_RPC_RECORD each).
func dnsUpdateRecord(x *dc, v2 bool) {
	r := x.r
	zone := dnsHeader(x, v2)
	node := r.AString()
	x.add("node", node)
	x.d.Target = node
	if zone != "" && node != "@" && !strings.HasSuffix(strings.ToLower(node), "."+strings.ToLower(zone)) && !strings.EqualFold(node, zone) {
		x.d.Target = node + "." + zone
	}
	var added bool
	if r.Ptr() {
		added = true
		t, data := dnsRecord(r)
		x.add("add", t)
		x.add("add data", data)
		x.d.Command = strings.TrimSpace(t + " " + data)
	}
	if r.Ptr() {
		t, data := dnsRecord(r)
		x.add("delete", t)
		x.add("delete data", data)
	}
	if added {
		x.d.Technique, x.d.Phase = TechADIDNS, PhaseCredAccess
	}
}

// dnsRecord reads a DNS_RPC_RECORD (MS-DNSP 2.2.2.2.5): a conformant
// structure, so its Buffer's size comes first, then wDataLength, wType,
// dwFlags, dwSerial, dwTtlSeconds, dwTimeStamp, dwReserved and the data.
func dnsRecord(r *ndr.Reader) (typ, data string) {
	r.Construct(func() {
		n := r.Count(1)
		r.U16() // wDataLength, the same as n
		t := r.U16()
		r.U32()
		r.U32()
		ttl := r.U32()
		r.U32()
		r.U32()
		b := r.Bytes(n)
		if r.Err() != nil {
			return
		}
		typ = dnsRecordType(t)
		data = dnsRecordData(t, b)
		if ttl != 0 {
			data = strings.TrimSpace(data + fmt.Sprintf(" (ttl %ds)", ttl))
		}
	})
	return typ, data
}

// dnsRecordType names the common DNS record types.
func dnsRecordType(t uint16) string {
	n := map[uint16]string{1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
		28: "AAAA", 33: "SRV", 39: "DNAME", 255: "ALL"}[t]
	if n == "" {
		return fmt.Sprintf("TYPE%d", t)
	}
	return n
}

// dnsRecordData renders the data of the record types an attacker adds:
// addresses, and the names of NS, CNAME, PTR, DNAME and SRV (a
// DNS_RPC_NAME: a length byte, then that many bytes). Others are hex.
func dnsRecordData(t uint16, b []byte) string {
	switch t {
	case 1:
		if a, ok := netip.AddrFromSlice(b); ok && len(b) == 4 {
			return a.String()
		}
	case 28:
		if a, ok := netip.AddrFromSlice(b); ok && len(b) == 16 {
			return a.String()
		}
	case 2, 5, 12, 39:
		if s, ok := dnsRPCName(b); ok {
			return s
		}
	case 33: // wPriority, wWeight, wPort (network order), then the target
		if len(b) > 6 {
			if s, ok := dnsRPCName(b[6:]); ok {
				return fmt.Sprintf("%s port %d", s, int(b[4])<<8|int(b[5]))
			}
		}
	}
	return hexTrunc(b, 64)
}

func dnsRPCName(b []byte) (string, bool) {
	if len(b) == 0 || int(b[0]) > len(b)-1 {
		return "", false
	}
	return strings.TrimRight(string(b[1:1+int(b[0])]), "\x00"), true
}
