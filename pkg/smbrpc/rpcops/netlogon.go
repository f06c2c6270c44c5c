package rpcops

import (
	"fmt"
)

// netlogon: Netlogon Remote Protocol (MS-NRPC). Besides names, the secure
// channel setup is decoded for the Zerologon (CVE-2020-1472) pattern: a
// client challenge and credential of zeros, then NetrServerPasswordSet2
// setting an empty machine password.
var netlogonUUID = mustUUID("12345678-1234-abcd-ef00-01234567cffb")

func init() { builders = append(builders, registerNetlogon) }

func registerNetlogon() {
	names := make([]string, 60)
	copy(names, []string{
		"NetrLogonUasLogon", "NetrLogonUasLogoff", "NetrLogonSamLogon", "NetrLogonSamLogoff",
		"NetrServerReqChallenge", "NetrServerAuthenticate", "NetrServerPasswordSet", "NetrDatabaseDeltas",
		"NetrDatabaseSync", "NetrAccountDeltas", "NetrAccountSync", "NetrGetDCName", "NetrLogonControl",
		"NetrGetAnyDCName", "NetrLogonControl2", "NetrServerAuthenticate2", "NetrDatabaseSync2",
		"NetrDatabaseRedo", "NetrLogonControl2Ex", "NetrEnumerateTrustedDomains", "DsrGetDcName",
		"NetrLogonGetCapabilities", "NetrLogonSetServiceBits", "NetrLogonGetTrustRid",
		"NetrLogonComputeServerDigest", "NetrLogonComputeClientDigest", "NetrServerAuthenticate3",
		"DsrGetDcNameEx", "DsrGetSiteName", "NetrLogonGetDomainInfo", "NetrServerPasswordSet2",
		"NetrServerPasswordGet", "NetrLogonSendToSam", "DsrAddressToSiteNamesW", "DsrGetDcNameEx2",
		"NetrLogonGetTimeServiceParentDomain", "NetrEnumerateTrustedDomainsEx", "DsrAddressToSiteNamesExW",
		"DsrGetDcSiteCoverageW", "NetrLogonSamLogonEx", "DsrEnumerateDomainTrusts",
		"DsrDeregisterDnsHostRecords", "NetrServerTrustPasswordsGet", "DsrGetForestTrustInformation",
		"NetrGetForestTrustInformation", "NetrLogonSamLogonWithFlags", "NetrServerGetTrustInfo", "",
		"DsrUpdateReadOnlyServerDnsRecords", "NetrChainSetClientAttributes",
	})
	names[59] = "NetrServerAuthenticateKerberos"
	auth := func(v int) op {
		return op{req: func(x *dc) { nlAuthenticate(x, v) }, resp: func(x *dc) { nlAuthenticateResp(x, v) }}
	}
	logon := func(kind int) op {
		return op{req: func(x *dc) { nlSamLogon(x, kind) }}
	}
	register(&iface{name: "netlogon", uuid: netlogonUUID, names: names, pipes: []string{"netlogon"},
		ops: map[uint16]op{
			2:  logon(2),
			4:  {req: nlReqChallenge},
			5:  auth(1),
			6:  {req: nlPasswordSet, technique: "T1098", phase: PhasePersist},
			15: auth(2),
			19: {technique: "T1482", phase: PhaseRecon},
			26: auth(3),
			30: {req: nlPasswordSet2, technique: "T1098", phase: PhasePersist},
			31: {technique: "T1003", phase: PhaseCredAccess},
			36: {technique: "T1482", phase: PhaseRecon},
			39: logon(39),
			40: {technique: "T1482", phase: PhaseRecon},
			42: {technique: "T1003", phase: PhaseCredAccess},
			45: logon(45),
			46: {technique: "T1003", phase: PhaseCredAccess},
		}})
}

var secureChannelTypes = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "Null", 1: "MsvAp", 2: "Workstation", 3: "TrustedDnsDomain",
		4: "TrustedDomain", 5: "UasServer", 6: "Server (domain controller)", 7: "CdcServer (read-only DC)"}
}}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

// zerologon marks a call carrying the all-zero credentials of the
// Zerologon exploit.
func (x *dc) zerologon(what string) {
	x.add("zerologon", what+" is all zeros (CVE-2020-1472 pattern)")
	x.d.Technique, x.d.Phase = "T1210", PhaseCredAccess
}

func nlReqChallenge(x *dc) {
	server := wstrPtr(x.r)
	computer := x.r.WString()
	ch := x.r.Bytes(8)
	x.add("server", server)
	x.add("computer", computer)
	x.d.Target = computer
	if isZero(ch) {
		x.zerologon("client challenge")
	}
}

func nlAuthenticate(x *dc, v int) {
	r := x.r
	server := wstrPtr(r)
	account := r.WString()
	sct := r.Enum()
	computer := r.WString()
	cred := r.Bytes(8)
	x.add("server", server)
	x.add("account", account)
	x.add("channel", enumName(sct, secureChannelTypes.get()))
	x.add("computer", computer)
	x.d.Target = account
	if v >= 2 {
		x.add("flags", hex32(r.U32()))
	}
	if isZero(cred) {
		x.zerologon("client credential")
	}
}

func nlAuthenticateResp(x *dc, v int) {
	r := x.r
	r.Bytes(8)
	if v >= 2 {
		r.U32()
	}
	if v == 3 {
		if rid := r.U32(); r.Err() == nil {
			x.add("account rid", fmt.Sprint(rid))
		}
	}
}

func nlChannelArgs(x *dc) {
	r := x.r
	server := wstrPtr(r)
	account := r.WString()
	sct := r.Enum()
	computer := r.WString()
	r.Bytes(8) // authenticator credential
	r.U32()    // timestamp
	x.add("server", server)
	x.add("account", account)
	x.add("channel", enumName(sct, secureChannelTypes.get()))
	x.add("computer", computer)
	x.d.Target = account
}

func nlPasswordSet(x *dc) {
	nlChannelArgs(x)
	x.r.Bytes(16)
}

func nlPasswordSet2(x *dc) {
	nlChannelArgs(x)
	pw := x.r.Bytes(516)
	if isZero(pw) {
		x.zerologon("new machine password")
	}
}

var logonLevels = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{1: "Interactive", 2: "Network", 3: "Service", 4: "Generic",
		5: "InteractiveTransitive", 6: "NetworkTransitive", 7: "ServiceTransitive", 8: "TicketLogon"}
}}

// nlSamLogon decodes the logon identity of a pass-through logon
// (NetrLogonSamLogon, ...Ex, ...WithFlags): which account logged on from
// which workstation through this server. Usually sealed (schannel).
func nlSamLogon(x *dc, opnum int) {
	r := x.r
	server := wstrPtr(r)
	computer := wstrPtr(r)
	if opnum != 39 {
		if r.Ptr() { // Authenticator
			r.Bytes(8)
			r.U32()
		}
		if r.Ptr() { // ReturnAuthenticator
			r.Bytes(8)
			r.U32()
		}
	}
	level := r.Enum()
	x.add("server", server)
	x.add("computer", computer)
	x.add("logon level", enumName(level, logonLevels.get()))
	if r.SwitchEnum() != level && r.Err() == nil {
		r.Failf("logon information discriminant differs from level %d", level)
		return
	}
	if !r.Ptr() {
		return
	}
	var dom, user, ws, pkg string
	r.Construct(func() {
		r.UnicodeString(&dom)
		r.U32() // ParameterControl
		r.U32() // Reserved
		r.U32()
		r.UnicodeString(&user)
		r.UnicodeString(&ws)
		if level == 4 {
			r.UnicodeString(&pkg)
		}
	})
	if user != "" {
		x.add("user", qualify(dom, user))
		x.d.Target = qualify(dom, user)
	}
	x.add("workstation", ws)
	x.add("package", pkg)
}
