package demogen

// Server Service Remote Protocol (MS-SRVS 3.1.4.8): NetrShareEnum, what
// `net view \\host /all` and share scanners call over \pipe\srvsvc.

var ifSrvsvc = rpcIface{"srvsvc", mustGUID("4b324fc8-1670-01d3-1278-5a47bf6ee188"), 3, 0}

const opNetrShareEnum = 15

// Share types (MS-SRVS 2.2.2.4).
const (
	stypeDisktree = 0x00000000
	stypeIPC      = 0x00000003
	stypeSpecial  = 0x80000000
)

type share struct {
	name, remark string
	typ          uint32
}

// srvShareEnum is NetrShareEnum at level 1 for server (as "\\name").
func srvShareEnum(server string, shares []share) (req, resp []byte) {
	var w ndrWriter
	w.wstringPtr(server)
	w.construct(func() { // SHARE_ENUM_STRUCT
		w.u32(1) // level
		w.u32(1) // union discriminant
		if w.ptr(true) {
			w.deferRef(func() { // SHARE_INFO_1_CONTAINER, empty on the way in
				w.u32(0)
				w.ptr(false)
			})
		}
	})
	w.u32(0xffffffff) // PreferedMaximumLength
	if w.ptr(true) {  // ResumeHandle
		w.u32(0)
	}

	v := ndrWriter{refID: replyRefs}
	v.construct(func() {
		v.u32(1)
		v.u32(1)
		if v.ptr(true) {
			v.deferRef(func() {
				v.u32(uint32(len(shares)))
				if v.ptr(true) {
					v.deferRef(func() {
						v.u32(uint32(len(shares))) // conformance
						for _, s := range shares {
							if v.ptr(true) {
								v.deferRef(func() { v.wstring(s.name) })
							}
							v.u32(s.typ)
							if v.ptr(true) {
								v.deferRef(func() { v.wstring(s.remark) })
							}
						}
					})
				}
			})
		}
	})
	v.u32(uint32(len(shares))) // TotalEntries
	if v.ptr(true) {
		v.u32(0)
	}
	v.u32(0)
	return w.b, v.b
}
