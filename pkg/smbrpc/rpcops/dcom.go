package rpcops

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// DCOM (MS-DCOM): activation through the SCM on port 135, IRemUnknown
// reference counting, OXID resolution, and the small interfaces scripting
// clients probe. Lateral movement over DCOM (T1021.003) shows here as an
// activation of an abusable class followed by IDispatch calls on the
// returned object; WMI (T1047) as an activation of WbemLevel1Login.
var (
	sysActivatorUUID = mustUUID("000001a0-0000-0000-c000-000000000046")
	iActivationUUID  = mustUUID("4d9f4ab8-7d1c-11cf-861e-0020af6e7c57")
	remUnknownUUID   = mustUUID("00000131-0000-0000-c000-000000000046")
	remUnknown2UUID  = mustUUID("00000143-0000-0000-c000-000000000046")
	oxidResolverUUID = mustUUID("99fcfec4-5260-101b-bbcb-00aa0021347a")
)

func init() { builders = append(builders, registerDcom) }

func registerDcom() {
	activation := func(create bool) op {
		return op{req: func(x *dc) { dcomActivationReq(x, create) }, resp: dcomActivationResp}
	}
	register(&iface{name: "ISystemActivator", uuid: sysActivatorUUID, orpc: true,
		names: dcomNames("RemoteGetClassObject", "RemoteCreateInstance"),
		ops:   map[uint16]op{3: activation(false), 4: activation(true)}})
	register(&iface{name: "IActivation", uuid: iActivationUUID, orpc: true,
		names: []string{"RemoteActivation"},
		ops:   map[uint16]op{0: {req: dcomRemoteActivation, resp: dcomRemoteActivationResp}}})
	remQI := op{req: dcomRemQueryInterface, resp: dcomRemQueryInterfaceResp, noise: true}
	remRelease := op{req: dcomRemRelease, noise: true}
	register(&iface{name: "IRemUnknown", uuid: remUnknownUUID, orpc: true,
		names: dcomNames("RemQueryInterface", "RemAddRef", "RemRelease"),
		ops:   map[uint16]op{3: remQI, 4: remRelease, 5: remRelease}})
	register(&iface{name: "IRemUnknown2", uuid: remUnknown2UUID, orpc: true,
		names: dcomNames("RemQueryInterface", "RemAddRef", "RemRelease", "RemQueryInterface2"),
		ops:   map[uint16]op{3: remQI, 4: remRelease, 5: remRelease, 6: {noise: true}}})
	register(&iface{name: "IOXIDResolver", uuid: oxidResolverUUID,
		names: []string{"ResolveOxid", "SimplePing", "ComplexPing", "ServerAlive", "ResolveOxid2", "ServerAlive2"},
		ops: map[uint16]op{0: {noise: true}, 1: {noise: true}, 2: {noise: true}, 3: {noise: true},
			4: {noise: true, resp: dcomResolveOxid2Resp}, 5: {noise: true, resp: dcomServerAlive2Resp}}})
	noise := func(n int) map[uint16]op {
		m := map[uint16]op{}
		for i := 3; i < 3+n; i++ {
			m[uint16(i)] = op{noise: true}
		}
		return m
	}
	register(&iface{name: "IClassFactory", uuid: mustUUID("00000001-0000-0000-c000-000000000046"), orpc: true,
		names: dcomNames("CreateInstance", "LockServer"),
		ops:   map[uint16]op{3: {req: dcomCreateInstance, resp: dcomReturnedObject, noise: true}, 4: {noise: true}}})
	// The type information calls return interface pointers to objects that
	// live in the server: they keep the class of the object they came
	// from, so a trapped object (ForsHops' walk from WaaSRemediation's
	// IDispatch to ITypeInfo::CreateInstance) is still named.
	typeInfo := noise(19)
	typeInfo[14] = op{noise: true, resp: dcomReturnedObject}                                // GetRefTypeInfo
	typeInfo[16] = op{req: typeInfoCreateInstance, resp: dcomReturnedObject}                // CreateInstance
	typeInfo[18] = op{noise: true, resp: dcomReturnedObject, probe: func(r *ndr.Reader) {}} // GetContainingTypeLib
	register(&iface{name: "ITypeInfo", uuid: mustUUID("00020401-0000-0000-c000-000000000046"), orpc: true,
		names: dcomNames("GetTypeAttr", "GetTypeComp", "GetFuncDesc", "GetVarDesc", "GetNames",
			"GetRefTypeOfImplType", "GetImplTypeFlags", "LocalGetIDsOfNames", "LocalInvoke",
			"GetDocumentation", "GetDllEntry", "GetRefTypeInfo", "LocalAddressOfMember", "CreateInstance",
			"GetMops", "GetContainingTypeLib", "LocalReleaseTypeAttr", "LocalReleaseFuncDesc",
			"LocalReleaseVarDesc"), ops: typeInfo})
	typeLib := noise(10)
	typeLib[4] = op{noise: true, resp: dcomReturnedObject} // GetTypeInfo
	typeLib[6] = op{noise: true, resp: dcomReturnedObject} // GetTypeInfoOfGuid
	register(&iface{name: "ITypeLib", uuid: mustUUID("00020402-0000-0000-c000-000000000046"), orpc: true,
		names: dcomNames("GetTypeInfoCount", "GetTypeInfo", "GetTypeInfoType", "GetTypeInfoOfGuid",
			"GetLibAttr", "GetTypeComp", "GetDocumentation", "IsName", "FindName", "ReleaseTLibAttr"),
		ops: typeLib})
	register(&iface{name: "IProvideClassInfo", uuid: mustUUID("b196b283-bab4-101a-b69c-00aa00341d07"), orpc: true,
		names: dcomNames("GetClassInfo"), ops: noise(1)})
}

// Well-known classes: those abused for lateral movement, WMI, and the
// activation property classes.
var clsidNames = map[[16]byte]string{}

// lateralCLSIDs are classes whose methods run commands or load code when
// activated remotely (T1021.003).
var lateralCLSIDs = map[[16]byte]bool{}

func init() { builders = append(builders, registerDcom2) }

func registerDcom2() {
	for s, n := range map[string]string{
		"49b2791a-b1ae-4c90-9b8e-e860ba07f889": "MMC20.Application",
		"d99e6e74-fc88-11d0-b498-00a0c90312f3": "CertSrv Request (CCertRequestD)",
		"9ba05972-f6a8-11cf-a442-00a0c90a8f39": "ShellWindows",
		"c08afd90-f2a1-11d1-8455-00a0c91f3880": "ShellBrowserWindow",
		"00024500-0000-0000-c000-000000000046": "Excel.Application",
		"0006f03a-0000-0000-c000-000000000046": "Outlook.Application",
		"000209ff-0000-0000-c000-000000000046": "Word.Application",
		"91493441-5a91-11cf-8700-00aa0060263b": "PowerPoint.Application",
		"0002df01-0000-0000-c000-000000000046": "InternetExplorer.Application",
		"72c24dd5-d70a-438b-8a42-98424b88afb8": "WScript.Shell",
		"13709620-c279-11ce-a49e-444553540000": "Shell.Application",
		"f5078f35-c551-11d3-89b9-0000f81fe221": "Msxml2.XMLHTTP",
		"0f87369f-a4e5-4cfc-bd3e-73e6154572dd": "Schedule.Service",
		"4991d34b-80a1-4291-83b6-3328366b9097": "BackgroundCopyManager",
		"e0ef3f2f-5a2f-4c27-9d09-1f4eb7d6e5c0": "Visio.InvisibleApp",
		"8bc3f05e-d86b-11d0-a075-00c04fb68820": "WbemLevel1Login",
		"4590f811-1d3a-11d0-891f-00aa004b2e24": "WbemLocator",
		"4590f812-1d3a-11d0-891f-00aa004b2e24": "WbemClassObject",
		"c49e32c6-bc8b-11d2-85d4-00105a1f8304": "WbemBackupRestore",
		"00000338-0000-0000-c000-000000000046": "ActivationPropertiesIn",
		"00000339-0000-0000-c000-000000000046": "ActivationPropertiesOut",
	} {
		clsidNames[mustUUID(s)] = n
	}
	for _, s := range []string{"49b2791a-b1ae-4c90-9b8e-e860ba07f889", "9ba05972-f6a8-11cf-a442-00a0c90a8f39",
		"c08afd90-f2a1-11d1-8455-00a0c91f3880", "00024500-0000-0000-c000-000000000046",
		"0006f03a-0000-0000-c000-000000000046", "000209ff-0000-0000-c000-000000000046",
		"91493441-5a91-11cf-8700-00aa0060263b", "0002df01-0000-0000-c000-000000000046",
		"72c24dd5-d70a-438b-8a42-98424b88afb8", "13709620-c279-11ce-a49e-444553540000",
		"e0ef3f2f-5a2f-4c27-9d09-1f4eb7d6e5c0"} {
		lateralCLSIDs[mustUUID(s)] = true
	}
}

// clsidName names a class given as text ("{...}" allowed), "" if unknown.
func clsidName(s string) string {
	u, err := ParseUUID(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return clsidNames[u]
}

// ClassName names a DCOM class or interface UUID (wire form): well-known
// classes, then the interfaces rpcops knows; "" when unknown.
func ClassName(u [16]byte) string {
	if n := clsidNames[u]; n != "" {
		return n
	}
	if n := iidNames[u]; n != "" {
		return n
	}
	return InterfaceName(u)
}

// iidLabel renders an interface id with its name, preferring interface
// names (IMsiServer's IID is also its class's CLSID).
func iidLabel(u [16]byte) string {
	n := iidNames[u]
	if n == "" {
		n = InterfaceName(u)
	}
	if n == "" {
		return guidLabel(u)
	}
	return n + " {" + UUIDString(u) + "}"
}

// guidLabel renders a class or interface id with its name.
func guidLabel(u [16]byte) string {
	if n := ClassName(u); n != "" {
		return n + " {" + UUIDString(u) + "}"
	}
	return "{" + UUIDString(u) + "}"
}

var iidNames = map[[16]byte]string{}

func init() { builders = append(builders, registerDcom3) }

func registerDcom3() {
	for s, n := range map[string]string{
		"00000000-0000-0000-c000-000000000046": "IUnknown",
		"00000003-0000-0000-c000-000000000046": "IMarshal",
		"0000000c-0000-0000-c000-000000000046": "IStream",
		"00020400-0000-0000-c000-000000000046": "IDispatch",
		"000001a2-0000-0000-c000-000000000046": "IActivationPropertiesIn",
		"000001a3-0000-0000-c000-000000000046": "IActivationPropertiesOut",
		"dc12a681-737f-11cf-884d-00aa004b2e24": "IWbemClassObject",
		"44aca674-e8fc-11d0-a07c-00c04fb68820": "IWbemContext",
		"541679ab-2e5f-11d3-b34e-00104bcc4b4a": "IWbemLoginHelper",
		"b196b28f-bab4-101a-b69c-00aa00341d07": "IProvideClassInfo2",
		"c3fcc19e-a970-11d2-8b5a-00a0c9b7c9c4": "IManagedObject",
		"00000019-0000-0000-c000-000000000046": "IExternalConnection",
		"0000001b-0000-0000-c000-000000000046": "IStdMarshalInfo",
	} {
		iidNames[mustUUID(s)] = n
	}
}

// objref is what an OBJREF (MS-DCOM 2.2.18) says: the interface, the
// object's identifiers, and for custom marshaling the class and its data.
type objref struct {
	flags    uint32
	iid      [16]byte
	oxid     uint64
	oid      uint64
	ipid     [16]byte
	bindings []string
	clsid    [16]byte // OBJREF_CUSTOM / OBJREF_HANDLER
	data     []byte   // OBJREF_CUSTOM pObjectData
}

const objrefSignature = 0x574f454d // "MEOW"

// parseObjref decodes an OBJREF; its fields are little-endian whatever the
// stub's byte order.
func parseObjref(b []byte) (o objref, ok bool) {
	le := binary.LittleEndian
	if len(b) < 24 || le.Uint32(b) != objrefSignature {
		return o, false
	}
	o.flags = le.Uint32(b[4:])
	copy(o.iid[:], b[8:24])
	b = b[24:]
	std := func() bool {
		if len(b) < 40 {
			return false
		}
		o.oxid = le.Uint64(b[8:])
		o.oid = le.Uint64(b[16:])
		copy(o.ipid[:], b[24:40])
		b = b[40:]
		return true
	}
	switch o.flags {
	case 1: // OBJREF_STANDARD
		if !std() {
			return o, false
		}
		o.bindings = dualStringArray(b)
	case 2: // OBJREF_HANDLER
		if !std() || len(b) < 16 {
			return o, false
		}
		copy(o.clsid[:], b[:16])
		o.bindings = dualStringArray(b[16:])
	case 4: // OBJREF_CUSTOM
		if len(b) < 24 {
			return o, false
		}
		copy(o.clsid[:], b[:16])
		n := int(le.Uint32(b[20:]))
		b = b[24:]
		if n > len(b) || n == 0 {
			n = len(b)
		}
		o.data = b[:n]
	case 8: // OBJREF_EXTENDED
		if !std() {
			return o, false
		}
	default:
		return o, false
	}
	return o, true
}

// dualStringArray decodes the string bindings of a DUALSTRINGARRAY held as
// bytes (wNumEntries, wSecurityOffset, then UTF-16 entries), rendering them
// as protocol:address.
func dualStringArray(b []byte) []string {
	le := binary.LittleEndian
	if len(b) < 4 {
		return nil
	}
	n := int(le.Uint16(b))
	sec := int(le.Uint16(b[2:]))
	b = b[4:]
	if n*2 > len(b) {
		n = len(b) / 2
	}
	words := make([]uint16, n)
	for i := range words {
		words[i] = le.Uint16(b[2*i:])
	}
	return stringBindings(words, sec)
}

// stringBindings renders the STRINGBINDINGs before the security offset.
func stringBindings(words []uint16, sec int) []string {
	var out []string
	if sec > len(words) {
		sec = len(words)
	}
	for i := 0; i < sec && len(out) < maxListed; {
		tower := words[i]
		if tower == 0 {
			break
		}
		i++
		j := i
		for j < sec && words[j] != 0 {
			j++
		}
		rs := make([]rune, 0, j-i)
		for _, w := range words[i:j] {
			rs = append(rs, rune(w))
		}
		out = append(out, towerIDName(tower)+":"+string(rs))
		i = j + 1
	}
	return out
}

func towerIDName(t uint16) string {
	switch t {
	case 0x07:
		return "ncacn_ip_tcp"
	case 0x08:
		return "ncadg_ip_udp"
	case 0x0f:
		return "ncacn_np"
	case 0x10:
		return "ncalrpc"
	case 0x1f:
		return "ncacn_http"
	}
	return fmt.Sprintf("tower 0x%02x", t)
}

// mInterfacePointer reads a top-level [unique] MInterfacePointer*: a
// conformant structure {ulCntData; byte abData[ulCntData]} holding an
// OBJREF.
func mInterfacePointer(r *ndr.Reader) []byte {
	if !r.Ptr() {
		return nil
	}
	return mInterfacePointerBody(r)
}

func mInterfacePointerBody(r *ndr.Reader) []byte {
	n := r.Count(1)
	if l := r.U32(); int(l) != n && r.Err() == nil {
		r.Failf("interface pointer length %d, conformance %d", l, n)
		return nil
	}
	return r.Bytes(n)
}

// Activation property classes (MS-DCOM 2.2.22.2).
var (
	propInstantiationInfo = mustUUID("000001ab-0000-0000-c000-000000000046")
	propSecurityInfo      = mustUUID("000001a6-0000-0000-c000-000000000046")
	propScmReplyInfo      = mustUUID("000001b6-0000-0000-c000-000000000046")
	propPropsOutInfo      = mustUUID("00000339-0000-0000-c000-000000000046")
	propInstanceInfo      = mustUUID("000001ad-0000-0000-c000-000000000046")
	propSpecialSystem     = mustUUID("000001b9-0000-0000-c000-000000000046")
)

// activation is what an activation properties blob says.
type activation struct {
	clsid    [16]byte
	hasClass bool
	iids     [][16]byte
	server   string
	file     string
	// SpecialPropertiesData: the session the object is to run in, when
	// the client asked for one (a session moniker,
	// ISpecialSystemProperties::SetSessionId): cross-session activation.
	session    uint32
	hasSession bool
	// response side
	oxid     uint64
	bindings []string
	remUnk   [16]byte
	objects  []activatedIface
}

type activatedIface struct {
	iid    [16]byte
	hr     uint32
	ipid   [16]byte
	oxid   uint64
	hasRef bool
}

// typeSerialized returns a Reader over the NDR data of a type-serialized
// (version 1) structure: common header, private header, then the data.
func typeSerialized(b []byte) *ndr.Reader {
	if len(b) < 16 || b[0] != 1 {
		return nil
	}
	big := b[1]&0x10 == 0
	n := int(binary.LittleEndian.Uint32(b[8:]))
	if big {
		n = int(binary.BigEndian.Uint32(b[8:]))
	}
	if n > len(b)-16 {
		n = len(b) - 16
	}
	return ndr.NewReader(b[16:16+n], big)
}

// parseActivationBlob decodes an ActivationPropertiesBlob (the custom
// marshaled data of an ActivationPropertiesIn/Out OBJREF).
func parseActivationBlob(b []byte) (a activation, err error) {
	le := binary.LittleEndian
	if len(b) < 8 {
		return a, fmt.Errorf("activation blob too short")
	}
	// dwSize counts the bytes after dwReserved (MS-DCOM 2.2.22.1; a
	// Windows client's blob is dwSize + 8 bytes long).
	size := int(le.Uint32(b))
	b = b[8:]
	if size > 0 && size < len(b) {
		b = b[:size]
	}
	hr := typeSerialized(b)
	if hr == nil {
		return a, fmt.Errorf("activation custom header not type-serialized")
	}
	// CustomHeader
	var clsids [][16]byte
	var sizes []uint32
	var headerSize uint32
	hr.Construct(func() {
		hr.U32() // totalSize
		headerSize = hr.U32()
		hr.U32() // reserved
		hr.U32() // destCtx
		cifs := hr.U32()
		hr.UUID() // classInfoClsid
		if hr.Ptr() {
			hr.Defer(func() {
				n := hr.Count(16)
				if uint32(n) != cifs {
					hr.Failf("property count %d, conformance %d", cifs, n)
					return
				}
				for i := 0; i < n; i++ {
					clsids = append(clsids, hr.UUID())
				}
			})
		}
		if hr.Ptr() {
			hr.Defer(func() {
				n := hr.Count(4)
				for i := 0; i < n; i++ {
					sizes = append(sizes, hr.U32())
				}
			})
		}
		if hr.Ptr() {
			hr.Defer(func() { hr.U32() })
		}
	})
	if err := hr.Err(); err != nil {
		return a, fmt.Errorf("activation custom header: %w", err)
	}
	off := int(headerSize)
	for i, c := range clsids {
		if i >= len(sizes) || off > len(b) {
			break
		}
		end := off + int(sizes[i])
		if end > len(b) || end < off {
			end = len(b)
		}
		a.property(c, b[off:end])
		off = end
	}
	return a, nil
}

// property decodes the activation properties responders care about.
func (a *activation) property(c [16]byte, b []byte) {
	r := typeSerialized(b)
	if r == nil {
		return
	}
	switch c {
	case propInstantiationInfo:
		r.Construct(func() {
			a.clsid = r.UUID()
			a.hasClass = r.Err() == nil
			r.U32() // classCtx
			r.U32() // actvflags
			r.U32() // fIsSurrogate
			r.U32() // cIID
			r.U32() // instFlag
			if r.Ptr() {
				r.Defer(func() {
					n := r.Count(16)
					for i := 0; i < n; i++ {
						a.iids = append(a.iids, r.UUID())
					}
				})
			}
			// The interface array follows the whole structure: thisSize
			// and clientCOMVersion come first (MS-DCOM 2.2.22.2.1).
			r.U32() // thisSize
			r.U16() // clientCOMVersion
			r.U16()
		})
	case propSecurityInfo:
		r.Construct(func() {
			r.U32()      // dwAuthnFlags
			if r.Ptr() { // COSERVERINFO
				r.Defer(func() {
					r.U32()
					if r.Ptr() {
						r.Defer(func() { a.server = r.WString() })
					}
					if r.Ptr() {
						r.Defer(func() {}) // COAUTHINFO: not needed
					}
					r.U32()
				})
			}
			if r.Ptr() { // pdwReserved (MS-DCOM 2.2.22.2.7), after the server info
				r.Defer(func() { r.U32() })
			}
		})
	case propSpecialSystem:
		r.Construct(func() {
			id := r.U32()     // dwSessionId
			remote := r.U32() // fRemoteThisSessionId
			if r.Err() == nil && remote != 0 {
				a.session, a.hasSession = id, true
			}
		})
	case propInstanceInfo:
		r.Construct(func() {
			if r.Ptr() {
				r.Defer(func() { a.file = r.WString() })
			}
		})
	case propScmReplyInfo:
		r.Construct(func() {
			if r.Ptr() { // pdwReserved
				r.Defer(func() { r.U32() })
			}
			if r.Ptr() { // REMOTE_REPLY_SCM_INFO
				r.Defer(func() {
					a.oxid = r.U64()
					if r.Ptr() {
						r.Defer(func() {
							n := r.Count(2)
							num := r.U16()
							sec := r.U16()
							if int(num) != n {
								r.Failf("dual string array: %d entries, conformance %d", num, n)
								return
							}
							words := make([]uint16, n)
							for i := range words {
								words[i] = r.U16()
							}
							if r.Err() == nil {
								a.bindings = stringBindings(words, int(sec))
							}
						})
					}
					a.remUnk = r.UUID()
					r.U32() // authnHint
					r.U16()
					r.U16()
				})
			}
		})
	case propPropsOutInfo:
		var iids [][16]byte
		var hrs []uint32
		var ptrs [][]byte
		r.Construct(func() {
			cifs := r.U32()
			if r.Ptr() {
				r.Defer(func() {
					n := r.Count(16)
					for i := 0; i < n; i++ {
						iids = append(iids, r.UUID())
					}
				})
			}
			if r.Ptr() {
				r.Defer(func() {
					n := r.Count(4)
					for i := 0; i < n; i++ {
						hrs = append(hrs, r.U32())
					}
				})
			}
			if r.Ptr() {
				r.Defer(func() {
					n := r.Count(4)
					if uint32(n) != cifs {
						r.Failf("interface pointer count %d, conformance %d", cifs, n)
						return
					}
					ptrs = make([][]byte, n)
					for i := 0; i < n; i++ {
						if r.Ptr() {
							r.Defer(func() { ptrs[i] = mInterfacePointerBody(r) })
						}
					}
				})
			}
		})
		for i, iid := range iids {
			ai := activatedIface{iid: iid}
			if i < len(hrs) {
				ai.hr = hrs[i]
			}
			if i < len(ptrs) {
				if o, ok := parseObjref(ptrs[i]); ok {
					ai.ipid, ai.oxid, ai.hasRef = o.ipid, o.oxid, true
				}
			}
			a.objects = append(a.objects, ai)
		}
	}
}

// activationTechnique classifies an activation by its class.
func activationTechnique(x *dc, clsid [16]byte) {
	switch {
	case clsid == mustUUID("8bc3f05e-d86b-11d0-a075-00c04fb68820"):
		x.d.Technique, x.d.Phase = "T1047", PhaseLateral
	case lateralCLSIDs[clsid]:
		x.d.Technique, x.d.Phase = "T1021.003", PhaseLateral
	case coerceCLSIDs[clsid] != "":
		// Activated by admin tools too: the coercion is the UNC path a
		// later call hands the object (dispCoercion, plaExtract).
		x.add("known abuse", coerceCLSIDs[clsid])
	}
}

func dcomActivationReq(x *dc, create bool) {
	r := x.r
	if create {
		mInterfacePointer(r) // pUnkOuter
	}
	b := mInterfacePointer(r)
	o, ok := parseObjref(b)
	if !ok {
		return
	}
	a, err := parseActivationBlob(o.data)
	if err != nil {
		x.add("decode error", err.Error())
	}
	if a.hasClass {
		x.reqClass, x.reqHasClass = a.clsid, true
		x.add("class", guidLabel(a.clsid))
		x.d.Target = ClassName(a.clsid)
		if x.d.Target == "" {
			x.d.Target = "{" + UUIDString(a.clsid) + "}"
		}
		activationTechnique(x, a.clsid)
	}
	for i, iid := range a.iids {
		if i < maxListed {
			x.add("interface", iidLabel(iid))
		}
	}
	x.add("server", a.server)
	x.add("file", a.file)
	if a.hasSession {
		// The object is to run in another user's logon session: what
		// BitlockMove, DCOMRunAs and the RemotePotato family ask for.
		x.add("session", fmt.Sprintf("%d (cross-session activation)", a.session))
	}
}

func dcomActivationResp(x *dc) {
	b := mInterfacePointer(x.r) // [out] MInterfacePointer**: one unique pointer on the wire
	o, ok := parseObjref(b)
	if !ok {
		return
	}
	a, err := parseActivationBlob(o.data)
	if err != nil {
		x.add("decode error", err.Error())
	}
	for _, ob := range a.objects {
		if !ob.hasRef {
			continue
		}
		x.add("object", fmt.Sprintf("%s IPID {%s}", ClassName(ob.iid), UUIDString(ob.ipid)))
		x.s.Shared.add(ob.ipid, x.reqClass, ob.iid)
	}
	if a.oxid != 0 {
		x.add("oxid", fmt.Sprintf("0x%016x", a.oxid))
		x.s.Shared.add(a.remUnk, x.reqClass, remUnknown2UUID)
	}
	for _, bnd := range a.bindings {
		x.add("binding", bnd)
	}
}

// dcomRemoteActivation decodes IActivation::RemoteActivation, the older
// activation call that names its class directly.
func dcomRemoteActivation(x *dc) {
	r := x.r
	clsid := r.UUID()
	name := wstrPtr(r)
	mInterfacePointer(r) // object storage
	r.U32()              // impersonation level
	r.U32()              // mode
	n := r.U32()
	var iids [][16]byte
	if r.Ptr() {
		c := r.Count(16)
		if uint32(c) != n {
			r.Failf("interfaces %d, conformance %d", n, c)
		}
		for i := 0; i < c; i++ {
			iids = append(iids, r.UUID())
		}
	}
	x.reqClass, x.reqHasClass = clsid, true
	x.add("class", guidLabel(clsid))
	x.d.Target = ClassName(clsid)
	if x.d.Target == "" {
		x.d.Target = "{" + UUIDString(clsid) + "}"
	}
	x.add("file", name)
	for i, iid := range iids {
		if i < maxListed {
			x.add("interface", iidLabel(iid))
		}
	}
	activationTechnique(x, clsid)
}

func dcomRemoteActivationResp(x *dc) {
	r := x.r
	oxid := r.U64()
	var bindings []string
	if r.Ptr() {
		n := r.Count(2)
		num := r.U16()
		sec := r.U16()
		if int(num) == n {
			words := make([]uint16, n)
			for i := range words {
				words[i] = r.U16()
			}
			bindings = stringBindings(words, int(sec))
		}
	}
	remUnk := r.UUID()
	if r.Err() != nil {
		return
	}
	x.add("oxid", fmt.Sprintf("0x%016x", oxid))
	for _, b := range bindings {
		x.add("binding", b)
	}
	x.s.Shared.add(remUnk, x.reqClass, remUnknown2UUID)
}

// dcomRemQueryInterface decodes the IIDs asked of an object; the response
// returns an IPID for each, which the Shared table ties to the object's
// class.
func dcomRemQueryInterface(x *dc) {
	r := x.r
	ipid := r.UUID()
	r.U32() // cRefs
	n := int(r.U16())
	c := r.Count(16)
	if c != n && r.Err() == nil {
		r.Failf("interfaces %d, conformance %d", n, c)
		return
	}
	x.reqObject = ipid
	if cls, ok := x.s.Shared.class(ipid); ok {
		x.d.Target = ClassName(cls)
	} else if cls, ok := x.s.Shared.class(x.c.Object); ok {
		// The object itself is unknown (made by a class factory, returned
		// by a method): the IRemUnknown of its apartment names the class.
		x.s.Shared.add(ipid, cls, [16]byte{})
	}
	for i := 0; i < c; i++ {
		iid := r.UUID()
		x.reqIIDs = append(x.reqIIDs, iid)
		if i < maxListed {
			x.add("interface", iidLabel(iid))
		}
	}
}

func dcomRemQueryInterfaceResp(x *dc) {
	r := x.r
	if !r.Ptr() {
		return
	}
	n := r.Count(48)
	for i := 0; i < n; i++ {
		hr := r.U32()
		r.U32() // STDOBJREF flags
		r.U32() // cPublicRefs
		r.U64() // OXID
		r.U64() // OID
		ipid := r.UUID()
		if r.Err() != nil || hr != 0 || i >= len(x.reqIIDs) {
			continue
		}
		if cls, ok := x.s.Shared.class(x.reqObject); ok {
			x.s.Shared.add(ipid, cls, x.reqIIDs[i])
		} else {
			x.s.Shared.add(ipid, [16]byte{}, x.reqIIDs[i])
		}
	}
}

func dcomRemRelease(x *dc) {
	r := x.r
	n := int(r.U16())
	c := r.Count(24)
	if c != n && r.Err() == nil {
		r.Failf("references %d, conformance %d", n, c)
		return
	}
	for i := 0; i < c; i++ {
		ipid := r.UUID()
		r.U32()
		r.U32()
		if cls, ok := x.s.Shared.class(ipid); ok && x.d.Target == "" {
			x.d.Target = ClassName(cls)
		}
	}
}

func dcomResolveOxid2Resp(x *dc) {
	r := x.r
	if r.Ptr() {
		n := r.Count(2)
		num := r.U16()
		sec := r.U16()
		if int(num) == n {
			words := make([]uint16, n)
			for i := range words {
				words[i] = r.U16()
			}
			for _, b := range stringBindings(words, int(sec)) {
				x.add("binding", b)
			}
		}
	}
}

// dcomServerAlive2Resp lists the addresses a DCOM server announces (its
// host names and IPs: useful when the capture only shows one of them).
func dcomServerAlive2Resp(x *dc) {
	r := x.r
	r.U16() // COMVERSION
	r.U16()
	dcomResolveOxid2Resp(x)
}

// dcomReturnedObject ties the interface pointer a call returns first
// (after ORPCTHAT) to the class of the object called: a class factory's
// new object, a type's instance, a type library's type info.
func dcomReturnedObject(x *dc) {
	o, ok := parseObjref(mInterfacePointer(x.r))
	if !ok || o.flags&1 == 0 {
		return
	}
	cls, _ := x.s.Shared.class(x.c.Object)
	x.s.Shared.add(o.ipid, cls, o.iid)
	x.add("object", fmt.Sprintf("%s IPID {%s}", ClassName(o.iid), UUIDString(o.ipid)))
}

// typeInfoCreateInstance: ITypeInfo::RemoteCreateInstance([in] REFIID
// riid, [out] IUnknown**) (MS-OAUT 3.7.4.10) makes an object of the
// described class inside the server. Asked of a type that a remotely
// activated class's IDispatch led to, it is the trapped-object technique
// (ForsHops: WaaSRemediation, StdFont treated as System.Object, then
// Assembly.Load in the service).
func typeInfoCreateInstance(x *dc) {
	iid := x.r.UUID()
	x.reqIIDs = [][16]byte{iid}
	x.add("interface", iidLabel(iid))
	if cls, ok := x.s.Shared.class(x.c.Object); ok && trappedCLSIDs[cls] {
		x.d.Technique, x.d.Phase = "T1021.003", PhaseExecution
	}
}

// dcomCreateInstance: IClassFactory opnum 3 on the wire is
// RemoteCreateInstance([in] REFIID riid, [out] IUnknown **ppvObject), the
// [call_as] form of CreateInstance in unknwn.idl: pUnkOuter is local-only
// (aggregation cannot cross machines), so the ORPCTHIS is followed by the
// IID alone.
func dcomCreateInstance(x *dc) {
	iid := x.r.UUID()
	x.reqIIDs = [][16]byte{iid}
	x.add("interface", iidLabel(iid))
}
