package rpcops

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// winreg: Windows Remote Registry Protocol (MS-RRP). Names are the spec's
// without the "BaseReg" prefix.
var winregUUID = mustUUID("338cd001-2244-31f1-aaaa-900038001003")

func init() { builders = append(builders, registerWinreg) }

func registerWinreg() {
	root := func(name string) op {
		return op{req: regOpenRoot, opens: "key", resp: func(x *dc) {
			x.returns(readHandle(x.r), handleInfo{kind: "key", name: name})
		}}
	}
	query := op{handle: true, technique: "T1012", phase: PhaseRecon}
	modify := func(req func(*dc)) op {
		return op{handle: true, req: req, technique: "T1112", phase: PhaseEvasion}
	}
	register(&iface{name: "winreg", uuid: winregUUID, pipes: []string{"winreg"},
		names: []string{"OpenClassesRoot", "OpenCurrentUser", "OpenLocalMachine", "OpenPerformanceData",
			"OpenUsers", "CloseKey", "CreateKey", "DeleteKey", "DeleteValue", "EnumKey", "EnumValue",
			"FlushKey", "GetKeySecurity", "LoadKey", "NotifyChangeKeyValue", "OpenKey", "QueryInfoKey",
			"QueryValue", "ReplaceKey", "RestoreKey", "SaveKey", "SetKeySecurity", "SetValue", "UnLoadKey",
			"InitiateSystemShutdown", "AbortSystemShutdown", "GetVersion", "OpenCurrentConfig", "",
			"QueryMultipleValues", "InitiateSystemShutdownEx", "SaveKeyEx", "OpenPerformanceText",
			"OpenPerformanceNlsText", "QueryMultipleValues2", "DeleteKeyEx"},
		ops: map[uint16]op{
			0:  root("HKCR"),
			1:  root("HKCU"),
			2:  root("HKLM"),
			3:  root("HKPD"),
			4:  root("HKU"),
			5:  {handle: true, closes: true, noise: true},
			6:  {handle: true, req: regCreateKey, resp: regCreateKeyResp, technique: "T1112", phase: PhaseEvasion},
			7:  modify(regSubKeyArg),
			8:  modify(regValueArg),
			9:  {handle: true, req: regEnumReq, resp: regEnumKeyResp, technique: "T1012", phase: PhaseRecon},
			10: {handle: true, req: regEnumReq, resp: regEnumValueResp, technique: "T1012", phase: PhaseRecon},
			11: {handle: true, noise: true},
			12: query,
			13: modify(regLoadKey),
			15: {handle: true, req: regOpenKey, resp: regOpenKeyResp, technique: "T1012", phase: PhaseRecon},
			16: query,
			17: {handle: true, req: regValueArg, resp: regQueryValueResp, technique: "T1012", phase: PhaseRecon},
			18: modify(regReplaceKey),
			19: modify(regFileArg),
			20: {handle: true, req: regSaveKey},
			21: modify(nil),
			22: {handle: true, req: regSetValue, technique: "T1112", phase: PhaseEvasion},
			23: modify(regSubKeyArg),
			24: {req: regShutdown, technique: TechShutdown, phase: PhaseImpact},
			26: {handle: true, noise: true},
			27: root("HKCC"),
			30: {req: regShutdown, technique: TechShutdown, phase: PhaseImpact},
			31: {handle: true, req: regSaveKey},
			32: root("HKPT"),
			33: root("HKPN"),
			35: modify(regSubKeyArg),
		}})
}

// ustr reads a top-level RRP_UNICODE_STRING passed by reference.
func ustr(r *ndr.Reader) (s string) {
	r.Construct(func() { r.UnicodeString(&s) })
	return s
}

// ustrPtr reads a top-level [unique] pointer to an RRP_UNICODE_STRING.
func ustrPtr(r *ndr.Reader) (s string) {
	if r.Ptr() {
		s = ustr(r)
	}
	return s
}

func regOpenRootArgs(r *ndr.Reader) (server string, access uint32) {
	if r.Ptr() { // PREGISTRY_SERVER_NAME: one WCHAR, not a string
		if c := r.U16(); c != 0 {
			server = string(rune(c))
		}
	}
	access = r.U32()
	return
}

func regOpenRoot(x *dc) {
	_, access := regOpenRootArgs(x.r)
	x.add("access", hex32(access))
}

// regJoin builds a key path from the handle's path and a subkey.
func (x *dc) regJoin(sub string) string {
	base := "?"
	if x.hOK && x.hInfo.name != "" {
		base = x.hInfo.name
	}
	if sub == "" {
		return base
	}
	return base + `\` + strings.TrimLeft(sub, `\`)
}

func regOpenKey(x *dc) {
	sub := ustr(x.r)
	x.r.U32() // options
	access := x.r.U32()
	x.reqName = x.regJoin(sub)
	x.d.Target = x.reqName
	x.add("key", x.reqName)
	x.add("access", hex32(access))
	regClassify(x, x.reqName, false)
}

func regOpenKeyResp(x *dc) {
	x.returns(readHandle(x.r), handleInfo{kind: "key", name: x.reqName})
}

func regCreateKey(x *dc) {
	r := x.r
	sub := ustr(r)
	class := ustr(r)
	opts := r.U32()
	access := r.U32()
	x.reqName = x.regJoin(sub)
	x.d.Target = x.reqName
	x.add("key", x.reqName)
	x.add("class", class)
	if opts&1 != 0 {
		x.add("options", "VOLATILE")
	}
	x.add("access", hex32(access))
	regClassify(x, x.reqName, true)
}

func regCreateKeyResp(x *dc) {
	h := readHandle(x.r)
	if x.r.Ptr() {
		switch x.r.U32() {
		case 1:
			x.add("disposition", "created new key")
		case 2:
			x.add("disposition", "opened existing key")
		}
	}
	x.returns(h, handleInfo{kind: "key", name: x.reqName})
}

func regSubKeyArg(x *dc) {
	sub := ustr(x.r)
	p := x.regJoin(sub)
	x.d.Target = p
	x.add("key", p)
	regClassify(x, p, true)
}

func regValueArg(x *dc) {
	v := ustr(x.r)
	p := x.regJoin(v)
	x.d.Target = p
	x.add("value", valueName(v))
	if x.d.Technique == "T1112" {
		regClassify(x, p, true)
	}
}

func valueName(v string) string {
	if v == "" {
		return "(default)"
	}
	return v
}

func regEnumReq(x *dc) {
	x.add("index", fmt.Sprint(x.r.U32()))
}

func regEnumKeyResp(x *dc) {
	name := ustr(x.r)
	x.add("subkey", name)
}

func regEnumValueResp(x *dc) {
	r := x.r
	name := ustr(r)
	x.add("value", valueName(name))
	var typ uint32
	if r.Ptr() {
		typ = r.U32()
	}
	var data []byte
	if r.Ptr() {
		max := r.MaxCount()
		n := r.Varying(max, 1)
		data = r.Bytes(n)
	}
	if r.Err() == nil {
		x.add("type", regTypeName(typ))
		x.add("data", regData(typ, data, r.BigEndian()))
	}
}

func regQueryValueResp(x *dc) {
	r := x.r
	var typ uint32
	if r.Ptr() {
		typ = r.U32()
	}
	var data []byte
	hasData := false
	if r.Ptr() {
		max := r.MaxCount()
		n := r.Varying(max, 1)
		data = r.Bytes(n)
		hasData = true
	}
	if r.Err() == nil && hasData {
		x.add("type", regTypeName(typ))
		x.add("data", regData(typ, data, r.BigEndian()))
	}
}

func regSetValue(x *dc) {
	r := x.r
	v := ustr(r)
	typ := r.U32()
	n := r.Count(1)
	data := r.Bytes(n)
	r.U32() // cbData
	p := x.regJoin(v)
	x.d.Target = p
	x.add("value", valueName(v))
	x.add("type", regTypeName(typ))
	x.add("data", regData(typ, data, r.BigEndian()))
	if typ == 1 || typ == 2 {
		x.d.Command = regString(data)
	}
	regClassify(x, p, true)
}

func regFileArg(x *dc) {
	f := ustr(x.r)
	x.add("file", f)
	x.d.Target = x.regJoin("")
}

func regLoadKey(x *dc) {
	sub := ustr(x.r)
	f := ustr(x.r)
	x.d.Target = x.regJoin(sub)
	x.add("key", x.d.Target)
	x.add("file", f)
}

func regReplaceKey(x *dc) {
	sub := ustr(x.r)
	newFile := ustr(x.r)
	oldFile := ustr(x.r)
	x.d.Target = x.regJoin(sub)
	x.add("key", x.d.Target)
	x.add("new file", newFile)
	x.add("old file", oldFile)
}

// regSaveKey: saving SAM, SYSTEM or SECURITY to a file is how secretsdump
// and reg.exe save dump local credentials remotely (T1003.002).
func regSaveKey(x *dc) {
	f := ustr(x.r)
	p := x.regJoin("")
	x.d.Target = p
	x.add("key", p)
	x.add("file", f)
	u := strings.ToUpper(p)
	switch {
	case strings.HasSuffix(u, `HKLM\SAM`), strings.HasSuffix(u, `HKLM\SYSTEM`):
		x.d.Technique, x.d.Phase = "T1003.002", PhaseCredAccess
	case strings.HasSuffix(u, `HKLM\SECURITY`):
		// SECURITY holds the LSA secrets and cached domain logons.
		x.d.Technique, x.d.Phase = "T1003.004", PhaseCredAccess
	default:
		x.d.Technique, x.d.Phase = "T1005", PhaseCollection
	}
}

func regShutdown(x *dc) {
	r := x.r
	if r.Ptr() {
		r.U16()
	}
	msg := ustrPtr(r)
	timeout := r.U32()
	force := r.U8()
	reboot := r.U8()
	x.add("message", msg)
	x.add("timeout", fmt.Sprintf("%ds", timeout))
	x.add("force apps closed", fmt.Sprint(force != 0))
	x.add("reboot", fmt.Sprint(reboot != 0))
}

// regClassify refines the technique of a registry operation from the key
// it touches: autostart locations are persistence, not mere modification.
func regClassify(x *dc, path string, write bool) {
	u := strings.ToUpper(path)
	switch {
	case !write:
		return
	case strings.Contains(u, `\CURRENTVERSION\RUN`) || strings.Contains(u, `\POLICIES\EXPLORER\RUN`):
		x.d.Technique, x.d.Phase = "T1547.001", PhasePersist
	case strings.Contains(u, `\WINLOGON`) && (strings.HasSuffix(u, `\USERINIT`) || strings.HasSuffix(u, `\SHELL`)):
		x.d.Technique, x.d.Phase = "T1547.004", PhasePersist
	case strings.Contains(u, `\IMAGE FILE EXECUTION OPTIONS\`):
		x.d.Technique, x.d.Phase = "T1546.012", PhasePersist
	case strings.Contains(u, `\CONTROL\LSA`) && (strings.Contains(u, `SECURITY PACKAGES`) || strings.Contains(u, `NOTIFICATION PACKAGES`) || strings.Contains(u, `AUTHENTICATION PACKAGES`)):
		x.d.Technique, x.d.Phase = "T1547.005", PhasePersist
	case strings.Contains(u, `\SERVICES\`) && (strings.HasSuffix(u, `\IMAGEPATH`) || strings.HasSuffix(u, `\SERVICEDLL`)):
		x.d.Technique, x.d.Phase = "T1543.003", PhasePersist
	case strings.HasSuffix(u, `\WDIGEST\USELOGONCREDENTIAL`):
		// Turning WDigest back on keeps cleartext passwords in LSASS.
		x.d.Technique, x.d.Phase = "T1112", PhaseCredAccess
	case strings.Contains(u, `\WINDOWS DEFENDER`) || strings.HasSuffix(u, `\ENABLELUA`) || strings.HasSuffix(u, `\LOCALACCOUNTTOKENFILTERPOLICY`):
		x.d.Technique, x.d.Phase = "T1562.001", PhaseEvasion
	}
}

var regTypes = lazyTable[uint32, string]{build: func() map[uint32]string {
	return map[uint32]string{0: "REG_NONE", 1: "REG_SZ", 2: "REG_EXPAND_SZ", 3: "REG_BINARY",
		4: "REG_DWORD", 5: "REG_DWORD_BIG_ENDIAN", 6: "REG_LINK", 7: "REG_MULTI_SZ",
		8: "REG_RESOURCE_LIST", 9: "REG_FULL_RESOURCE_DESCRIPTOR", 10: "REG_RESOURCE_REQUIREMENTS_LIST", 11: "REG_QWORD"}
}}

func regTypeName(t uint32) string { return enumName(t, regTypes.get()) }

// regData renders registry data by type: strings as text, numbers in
// decimal and hex, anything else as (truncated) hex.
func regData(typ uint32, b []byte, big bool) string {
	switch typ {
	case 1, 2, 6:
		return truncate(regString(b), 1024)
	case 7:
		var parts []string
		for _, p := range strings.Split(ndr.DecodeUTF16Multi(b), "\x00") {
			if p != "" {
				parts = append(parts, p)
			}
		}
		return truncate(strings.Join(parts, "; "), 1024)
	case 4, 5:
		if len(b) == 4 {
			v := binary.LittleEndian.Uint32(b)
			if typ == 5 {
				v = binary.BigEndian.Uint32(b)
			}
			return fmt.Sprintf("%d (0x%x)", v, v)
		}
	case 11:
		if len(b) == 8 {
			v := binary.LittleEndian.Uint64(b)
			return fmt.Sprintf("%d (0x%x)", v, v)
		}
	}
	return hexTrunc(b, 64)
}

// regString decodes REG_SZ data (UTF-16LE whatever the stub's byte order:
// registry data is opaque bytes to NDR).
func regString(b []byte) string { return ndr.DecodeUTF16(b, false) }
