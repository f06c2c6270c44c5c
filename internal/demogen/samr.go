package demogen

// Security Account Manager Remote Protocol (MS-SAMR 3.1.5): the calls of
// `net user /domain` and `net group "Domain Admins" /domain` over
// \pipe\samr.

var ifSamr = rpcIface{"samr", mustGUID("12345778-1234-abcd-ef00-0123456789ac"), 1, 0}

// samr opnums.
const (
	opSamrCloseHandle          = 1
	opSamrLookupDomain         = 5
	opSamrOpenDomain           = 7
	opSamrEnumerateUsers       = 13
	opSamrLookupNamesInDomain  = 17
	opSamrLookupIdsInDomain    = 18
	opSamrOpenGroup            = 19
	opSamrGetMembersInGroup    = 25
	opSamrConnect5             = 64
	samrMaxAllowed             = 0x02000000
	samrDomainLookupAndEnum    = 0x00000305
	samrGroupListMembers       = 0x00000010
	userNormalAccount          = 0x00000010
	sidTypeUser                = 1
	sidTypeGroup               = 2
	groupAttrsMandatoryEnabled = 0x00000007
)

// SamrConnect5 (opnum 64) with revision information V1.
func samrConnect5(server string, h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.wstringPtr(server)
	w.u32(samrMaxAllowed)
	w.u32(1) // InVersion
	w.u32(1) // union discriminant
	w.u32(3) // Revision
	w.u32(0) // SupportedFeatures
	v := ndrWriter{refID: replyRefs}
	v.u32(1) // OutVersion
	v.u32(1)
	v.u32(3)
	v.u32(0)
	v.handle(h)
	v.u32(0)
	return w.b, v.b
}

// SamrLookupDomainInSamServer (opnum 5).
func samrLookupDomain(server ctxHandle, name, sid string) (req, resp []byte) {
	var w ndrWriter
	w.handle(server)
	w.construct(func() { w.unicodeString(name) })
	v := ndrWriter{refID: replyRefs}
	if v.ptr(true) {
		v.sid(sid)
	}
	v.u32(0)
	return w.b, v.b
}

// SamrOpenDomain (opnum 7).
func samrOpenDomain(server ctxHandle, sid string, h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(server)
	w.u32(samrDomainLookupAndEnum)
	w.sid(sid)
	v := ndrWriter{refID: replyRefs}
	v.handle(h)
	v.u32(0)
	return w.b, v.b
}

type ridName struct {
	rid  uint32
	name string
}

// SamrEnumerateUsersInDomain (opnum 13): every normal account in one
// reply.
func samrEnumerateUsers(domain ctxHandle, users []ridName) (req, resp []byte) {
	var w ndrWriter
	w.handle(domain)
	w.u32(0) // EnumerationContext
	w.u32(userNormalAccount)
	w.u32(0xffff) // PreferedMaximumLength
	v := ndrWriter{refID: replyRefs}
	v.u32(0)
	if v.ptr(true) {
		v.construct(func() { // SAMPR_ENUMERATION_BUFFER
			v.u32(uint32(len(users)))
			if v.ptr(true) {
				v.deferRef(func() {
					v.u32(uint32(len(users)))
					for _, u := range users {
						v.u32(u.rid)
						v.unicodeString(u.name)
					}
				})
			}
		})
	}
	v.u32(uint32(len(users))) // CountReturned
	v.u32(0)
	return w.b, v.b
}

// ulongArray writes a SAMPR_ULONG_ARRAY.
func (w *ndrWriter) ulongArray(vs []uint32) {
	w.construct(func() {
		w.u32(uint32(len(vs)))
		if w.ptr(true) {
			w.deferRef(func() {
				w.u32(uint32(len(vs)))
				for _, x := range vs {
					w.u32(x)
				}
			})
		}
	})
}

// SamrLookupNamesInDomain (opnum 17).
func samrLookupNames(domain ctxHandle, names []string, rids, uses []uint32) (req, resp []byte) {
	var w ndrWriter
	w.handle(domain)
	w.u32(uint32(len(names)))
	w.construct(func() { // [size_is(1000), length_is(Count)]
		w.u32(1000)
		w.u32(0)
		w.u32(uint32(len(names)))
		for _, n := range names {
			w.unicodeString(n)
		}
	})
	v := ndrWriter{refID: replyRefs}
	v.ulongArray(rids)
	v.ulongArray(uses)
	v.u32(0)
	return w.b, v.b
}

// SamrLookupIdsInDomain (opnum 18).
func samrLookupIds(domain ctxHandle, users []ridName) (req, resp []byte) {
	var w ndrWriter
	w.handle(domain)
	w.u32(uint32(len(users)))
	w.u32(1000)
	w.u32(0)
	w.u32(uint32(len(users)))
	for _, u := range users {
		w.u32(u.rid)
	}
	v := ndrWriter{refID: replyRefs}
	v.construct(func() { // SAMPR_RETURNED_USTRING_ARRAY
		v.u32(uint32(len(users)))
		if v.ptr(true) {
			v.deferRef(func() {
				v.u32(uint32(len(users)))
				for _, u := range users {
					v.unicodeString(u.name)
				}
			})
		}
	})
	uses := make([]uint32, len(users))
	for i := range uses {
		uses[i] = sidTypeUser
	}
	v.ulongArray(uses)
	v.u32(0)
	return w.b, v.b
}

// SamrOpenGroup (opnum 19).
func samrOpenGroup(domain ctxHandle, rid uint32, h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(domain)
	w.u32(samrGroupListMembers)
	w.u32(rid)
	v := ndrWriter{refID: replyRefs}
	v.handle(h)
	v.u32(0)
	return w.b, v.b
}

// SamrGetMembersInGroup (opnum 25).
func samrGetMembers(group ctxHandle, rids []uint32) (req, resp []byte) {
	var w ndrWriter
	w.handle(group)
	v := ndrWriter{refID: replyRefs}
	if v.ptr(true) {
		v.construct(func() { // SAMPR_GET_MEMBERS_BUFFER
			v.u32(uint32(len(rids)))
			if v.ptr(true) {
				v.deferRef(func() {
					v.u32(uint32(len(rids)))
					for _, r := range rids {
						v.u32(r)
					}
				})
			}
			if v.ptr(true) {
				v.deferRef(func() {
					v.u32(uint32(len(rids)))
					for range rids {
						v.u32(groupAttrsMandatoryEnabled)
					}
				})
			}
		})
	}
	v.u32(0)
	return w.b, v.b
}

// SamrCloseHandle (opnum 1).
func samrClose(h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(h)
	v := ndrWriter{refID: replyRefs}
	v.handle(ctxHandle{})
	v.u32(0)
	return w.b, v.b
}
