package rpcops

import (
	"fmt"
	"math"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// IDispatch (MS-OAUT): how DCOM lateral movement through MMC20.Application,
// ShellWindows, ShellBrowserWindow or Excel runs its command. The method
// names come from GetIDsOfNames (remembered per object in the Session) or,
// for members scripting hosts call by DISPID, from a small table.
var dispatchUUID = mustUUID("00020400-0000-0000-c000-000000000046")

func init() { builders = append(builders, registerIdispatch) }

func registerIdispatch() {
	register(&iface{name: "IDispatch", uuid: dispatchUUID, orpc: true,
		names: dcomNames("GetTypeInfoCount", "GetTypeInfo", "GetIDsOfNames", "Invoke"),
		ops: map[uint16]op{
			3: {noise: true, probe: func(r *ndr.Reader) {}},
			4: {noise: true, probe: func(r *ndr.Reader) { r.U32(); r.U32() }, resp: dcomReturnedObject},
			5: {req: dispGetIDsOfNames, resp: dispGetIDsOfNamesResp},
			6: {req: dispInvoke, resp: dispInvokeResp},
		}})
}

// execMethods are automation members that run a command or load code.
var execMethods = lazyTable[string, bool]{build: func() map[string]bool {
	return map[string]bool{
		"executeshellcommand": true, // MMC20.Application Document.ActiveView
		"shellexecute":        true, // Shell.Application via ShellWindows / ShellBrowserWindow
		"registerxll":         true, // Excel.Application
		"ddeinitiate":         true, // Excel.Application
		"executeexcel4macro":  true,
		"run":                 true, // WScript.Shell, Excel macros
		"exec":                true,
		"createobject":        true,
		"navigate":            true,
		"navigate2":           true,
		"executeline":         true, // Visio Document.ExecuteLine (CheeseDCOM VisioExecLine)
		"addcode":             true, // ScriptControl.AddCode (CheeseDCOM OutlookScriptEx)
		"executestatement":    true, // ScriptControl
		// Excel.Application.ActivateMicrosoftApp starts an Office program
		// found through the search path, a planted one (SpecterOps' "Abuse
		// the Power of DCOM Excel Application").
		"activatemicrosoftapp": true,
	}
}}

// wellKnownDispIDs names members that clients invoke by their fixed DISPID
// without GetIDsOfNames (PowerShell and VBScript read the type library),
// per class when it is known ("" for any class).
var wellKnownDispIDs = lazyTable[string, map[int32]string]{build: func() map[string]map[int32]string {
	return map[string]map[int32]string{
		"": {
			0xcb:       "Document",     // IWebBrowser2 (ShellWindows item, ShellBrowserWindow)
			0x60020000: "Application",  // IShellFolderViewDual
			0x60030001: "ShellExecute", // IShellDispatch2
		},
		"MMC20.Application": {
			4:    "Document",            // Application.Document
			6:    "ActiveView",          // Document.ActiveView
			0x36: "ExecuteShellCommand", // View.ExecuteShellCommand(Command, Directory, Parameters, WindowState)
		},
	}
}}

func dispNames(r *ndr.Reader) (names []string) {
	r.UUID() // riid (IID_NULL)
	r.Construct(func() {
		n := r.CountUpTo(r.PtrSize())
		names = make([]string, n)
		for i := 0; i < n; i++ {
			if r.Ptr() {
				r.Defer(func() { names[i] = r.WString() })
			}
		}
	})
	if uint32(len(names)) != r.U32() && r.Err() == nil {
		r.Failf("names count differs from the array")
	}
	r.U32() // lcid
	return names
}

func dispGetIDsOfNames(x *dc) {
	names := dispNames(x.r)
	x.reqNames = names
	for _, n := range names {
		x.add("name", n)
	}
	if len(names) > 0 {
		x.d.Operation += " " + names[0]
		x.classifyMember(names[0])
	}
}

func dispGetIDsOfNamesResp(x *dc) {
	r := x.r
	n := r.CountUpTo(4)
	for i := 0; i < n; i++ {
		id := int32(r.U32())
		if r.Err() != nil || i >= len(x.reqNames) {
			break
		}
		x.s.learn(dispKey(x.c.Object, id), x.reqNames[i])
		x.add("dispid", fmt.Sprintf("%s = 0x%x", x.reqNames[i], uint32(id)))
	}
}

func dispKey(obj [16]byte, id int32) string {
	return fmt.Sprintf("disp:%x:%d", obj, id)
}

// classifyMember sets the technique of a call on an automation member.
func (x *dc) classifyMember(name string) {
	if execMethods.get()[strings.ToLower(name)] {
		x.d.Technique, x.d.Phase = "T1021.003", PhaseExecution
	}
}

type invokeArgs struct {
	dispid int32
	flags  uint32
	args   []*varValue // in call order (DISPPARAMS holds them last first)
	named  []int32
}

func dispInvokeArgs(r *ndr.Reader) (a invokeArgs) {
	a.dispid = int32(r.U32())
	r.UUID() // riid
	r.U32()  // lcid
	a.flags = r.U32()
	var rev []*varValue
	var cArgs uint32
	r.Construct(func() { // DISPPARAMS
		r.AlignP()
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(r.PtrSize())
				rev = make([]*varValue, n)
				for i := 0; i < n; i++ {
					if r.Ptr() {
						r.Defer(func() { rev[i] = variant(r, 0) })
					}
				}
			})
		}
		if r.Ptr() {
			r.Defer(func() {
				n := r.CountUpTo(4)
				for i := 0; i < n; i++ {
					a.named = append(a.named, int32(r.U32()))
				}
			})
		}
		cArgs = r.U32()
		r.U32() // cNamedArgs
	})
	if int(cArgs) != len(rev) && r.Err() == nil {
		r.Failf("DISPPARAMS cArgs %d, array %d", cArgs, len(rev))
	}
	r.U32()                // cVarRef
	r.Skip(4 * r.Count(4)) // rgVarRefIdx
	r.Construct(func() {   // rgVarRef
		n := r.CountUpTo(r.PtrSize())
		for i := 0; i < n; i++ {
			if r.Ptr() {
				r.Defer(func() { variant(r, 0) })
			}
		}
	})
	for i := len(rev) - 1; i >= 0; i-- {
		a.args = append(a.args, rev[i])
	}
	return a
}

var invokeFlags = []flagName{{1, "METHOD"}, {2, "PROPERTYGET"}, {4, "PROPERTYPUT"}, {8, "PROPERTYPUTREF"}}

func dispInvoke(x *dc) {
	a := dispInvokeArgs(x.r)
	name := x.s.lookup(dispKey(x.c.Object, a.dispid))
	how := ""
	if name == "" {
		cls, _ := x.s.Shared.class(x.c.Object)
		if n, ok := wellKnownDispIDs.get()[ClassName(cls)][a.dispid]; ok && ClassName(cls) != "" {
			name, how = n, " (by DISPID)"
		} else if n, ok := wellKnownDispIDs.get()[""][a.dispid]; ok {
			name, how = n, " (by DISPID)"
		}
	}
	member := fmt.Sprintf("DISPID 0x%x", uint32(a.dispid))
	if name != "" {
		member = fmt.Sprintf("%s (DISPID 0x%x)%s", name, uint32(a.dispid), how)
		x.d.Operation += " " + name
	}
	x.add("member", member)
	x.add("flags", flagNames(a.flags, invokeFlags))
	for i, v := range a.args {
		x.add(fmt.Sprintf("arg[%d]", i), v.String())
	}
	x.dispCoercion(name, a.args)
	if name == "" || x.d.Technique == TechCoerce {
		return
	}
	x.classifyMember(name)
	if x.d.Technique == "" {
		return
	}
	// The command: strings of the call, in order, without the empty and
	// numeric ones (directories and window states stay as fields).
	var parts []string
	switch strings.ToLower(name) {
	case "executeshellcommand": // (Command, Directory, Parameters, WindowState)
		parts = pick(a.args, 0, 2)
	case "shellexecute": // (File, vArgs, vDir, vOperation, vShow)
		parts = pick(a.args, 0, 1)
	default:
		for _, v := range a.args {
			if s, ok := v.stringValue(); ok && s != "" {
				parts = append(parts, s)
			}
		}
	}
	x.d.Command = strings.TrimSpace(strings.Join(parts, " "))
}

// pick returns the non-empty string arguments at the given positions.
func pick(args []*varValue, idx ...int) []string {
	var out []string
	for _, i := range idx {
		if i < len(args) {
			if s, ok := args[i].stringValue(); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

var vtNames = lazyTable[uint16, string]{build: func() map[uint16]string {
	return map[uint16]string{0: "EMPTY", 1: "NULL", 2: "I2", 3: "I4", 4: "R4", 5: "R8", 6: "CY", 7: "DATE",
		8: "BSTR", 9: "DISPATCH", 10: "ERROR", 11: "BOOL", 12: "VARIANT", 13: "UNKNOWN", 14: "DECIMAL",
		16: "I1", 17: "UI1", 18: "UI2", 19: "UI4", 20: "I8", 21: "UI8", 22: "INT", 23: "UINT"}
}}

// maxVariantDepth bounds VT_VARIANT|VT_BYREF chains.
const maxVariantDepth = 4

// varValue is a decoded VARIANT, completed when its deferred referents
// (BSTR text, by-reference values) have been read.
type varValue struct {
	typ    string
	text   string
	str    bool
	inner  *varValue
	objref []byte // VT_DISPATCH / VT_UNKNOWN
}

func (v *varValue) String() string {
	switch {
	case v == nil:
		return ""
	case v.inner != nil:
		return v.typ + " " + v.inner.String()
	case v.str:
		return v.typ + " " + fmt.Sprintf("%q", v.text)
	case v.text != "":
		return v.typ + " " + v.text
	}
	return v.typ
}

// stringValue returns the text of a string variant (by reference too).
func (v *varValue) stringValue() (string, bool) {
	for v != nil && v.inner != nil {
		v = v.inner
	}
	if v == nil || !v.str {
		return "", false
	}
	return v.text, true
}

// variant reads a _wireVARIANT (MS-OAUT 2.2.29.2) at the current position
// (it is the referent of a wireVARIANT pointer); its own referents are
// deferred.
func variant(r *ndr.Reader, depth int) *varValue {
	v := &varValue{}
	r.Align(8)
	r.U32() // clSize
	r.U32() // rpcReserved
	vt := r.U16()
	r.U16()
	r.U16()
	r.U16()
	if disc := r.U32(); disc != uint32(vt) && r.Err() == nil {
		r.Failf("variant discriminant %d, vt %d", disc, vt)
		return v
	}
	if r.Err() != nil {
		return v
	}
	base := vt &^ 0x4000
	v.typ = vtNames.get()[base&0x0fff]
	if v.typ == "" {
		v.typ = fmt.Sprintf("vt 0x%x", vt)
	}
	switch {
	case vt&0x2000 != 0:
		v.typ = "ARRAY of " + v.typ
		r.Failf("SAFEARRAY variants not decoded")
	case vt&0x4000 != 0:
		v.typ = "BYREF " + v.typ
		if !r.Ptr() {
			v.text = "null"
			return v
		}
		if depth >= maxVariantDepth {
			r.Failf("variant nesting too deep")
			return v
		}
		r.Defer(func() {
			if base == 12 {
				v.inner = variant(r, depth+1)
				return
			}
			v.inner = &varValue{}
			variantValue(r, base, v.inner)
		})
	default:
		variantValue(r, vt, v)
	}
	return v
}

// variantValue reads the value of a variant of type vt into v.
func variantValue(r *ndr.Reader, vt uint16, v *varValue) {
	switch vt {
	case 0, 1:
	case 2:
		v.text = fmt.Sprint(int16(r.U16()))
	case 11:
		v.text = fmt.Sprint(r.U16() != 0)
	case 18:
		v.text = fmt.Sprint(r.U16())
	case 16:
		v.text = fmt.Sprint(int8(r.U8()))
	case 17:
		v.text = fmt.Sprint(r.U8())
	case 3, 10, 22:
		v.text = fmt.Sprint(int32(r.U32()))
	case 19, 23:
		v.text = fmt.Sprint(r.U32())
	case 4:
		v.text = fmt.Sprint(math.Float32frombits(r.U32()))
	case 5, 7:
		v.text = fmt.Sprint(math.Float64frombits(r.U64()))
	case 6, 20:
		v.text = fmt.Sprint(int64(r.U64()))
	case 21:
		v.text = fmt.Sprint(r.U64())
	case 8:
		v.str = true
		if r.Ptr() {
			r.Defer(func() { v.text = flaggedWordBlob(r) })
		}
	case 9, 13:
		if r.Ptr() {
			v.text = "(interface pointer)"
			r.Defer(func() { v.objref = mInterfacePointerBody(r) })
		} else {
			v.text = "null"
		}
	case 14:
		r.Align(8)
		r.Skip(16)
	default:
		r.Failf("variant type 0x%x not decoded", vt)
	}
}

// flaggedWordBlob reads the FLAGGED_WORD_BLOB a BSTR points to: a
// conformant structure {fFlags; clSize; WCHAR asData[clSize]}.
func flaggedWordBlob(r *ndr.Reader) string {
	n := r.Count(0)
	r.U32() // fFlags
	cl := r.U32()
	if int(cl) > n && r.Err() == nil {
		r.Failf("BSTR length %d exceeds conformance %d", cl, n)
		return ""
	}
	b := r.Bytes(2 * n)
	if int(cl) < n {
		b = b[:2*cl]
	}
	return ndr.DecodeUTF16(b, r.BigEndian())
}

// bstr reads a top-level BSTR parameter (a unique pointer to a
// FLAGGED_WORD_BLOB).
func bstr(r *ndr.Reader) string {
	if !r.Ptr() {
		return ""
	}
	return flaggedWordBlob(r)
}

// dispInvokeResp shows the value a property get or method returned; an
// object returned (Document, ActiveView, Application...) inherits the class
// of the object it came from, so calls on it are named.
func dispInvokeResp(x *dc) {
	r := x.r
	var v *varValue
	if r.Ptr() {
		r.Construct(func() { v = variant(r, 0) })
	}
	if v == nil || r.Err() != nil {
		return
	}
	x.add("result", v.String())
	for v.inner != nil {
		v = v.inner
	}
	if o, ok := parseObjref(v.objref); ok && o.flags&1 != 0 {
		cls, _ := x.s.Shared.class(x.c.Object)
		x.s.Shared.add(o.ipid, cls, o.iid)
	}
}
