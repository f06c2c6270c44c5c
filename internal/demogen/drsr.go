package demogen

import (
	"encoding/binary"
	"net/netip"
)

// The endpoint mapper (C706 appendix O) on TCP 135, and the Directory
// Replication Service (MS-DRSR 4.1) on the port it hands out: the calls
// of a DCSync.

var (
	ifEPM     = rpcIface{"epmapper", mustGUID("e1af8308-5d1f-11c9-91a4-08002b14a0fa"), 3, 0}
	ifDrsuapi = rpcIface{"drsuapi", mustGUID("e3514235-4b06-11d1-ab04-00c04fc2dcd2"), 4, 0}
	// NTDSAPI_CLIENT_GUID, the client DSA every DRSBind from a tool names.
	ntdsapiClient = mustGUID("e24d201a-4fd6-11d1-a3da-0000f875ae0d")
)

const (
	opEptMap           = 3
	opDRSBind          = 0
	opDRSUnbind        = 1
	opDRSGetNCChanges  = 3
	drsInitSync        = 0x00000020
	drsWritRep         = 0x00000010
	exopReplObj        = 6
	exopErrSuccess     = 1
	drsExtGetNCChanges = 0x04408000 // base, GETCHGREQ_V8, GETCHGREPLY_V6 and friends
)

// tcpTower is a protocol tower (C706 appendix L) for ncacn_ip_tcp: the
// interface, NDR, connection-oriented RPC, TCP port, IP address.
func tcpTower(ifc rpcIface, port uint16, addr netip.Addr) []byte {
	floor := func(b, lhs, rhs []byte) []byte {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(lhs)))
		b = append(b, lhs...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(rhs)))
		return append(b, rhs...)
	}
	b := binary.LittleEndian.AppendUint16(nil, 5)
	lhs := append([]byte{0x0d}, ifc.uuid[:]...)
	b = floor(b, binary.LittleEndian.AppendUint16(lhs, ifc.major), binary.LittleEndian.AppendUint16(nil, ifc.minor))
	b = floor(b, binary.LittleEndian.AppendUint16(append([]byte{0x0d}, syntaxNDR[:]...), 2), []byte{0, 0})
	b = floor(b, []byte{0x0b}, []byte{0, 0})
	b = floor(b, []byte{0x07}, binary.BigEndian.AppendUint16(nil, port))
	a := addr.As4()
	return floor(b, []byte{0x09}, a[:])
}

// tower writes a twr_t: conformance, length, octets.
func (w *ndrWriter) tower(t []byte) {
	w.u32(uint32(len(t)))
	w.u32(uint32(len(t)))
	w.raw(t)
}

// ept_map (opnum 3): where does ifc listen over TCP on this host?
func epmMap(ifc rpcIface, port uint16, server netip.Addr) (req, resp []byte) {
	var w ndrWriter
	if w.ptr(true) { // object: nil UUID
		w.uuid(guid{})
	}
	if w.ptr(true) {
		w.tower(tcpTower(ifc, 0, netip.IPv4Unspecified()))
	}
	w.handle(ctxHandle{})
	w.u32(4) // max towers
	v := ndrWriter{refID: replyRefs}
	v.handle(ctxHandle{})
	v.u32(1) // num towers
	v.construct(func() {
		v.u32(4) // max
		v.u32(0) // offset
		v.u32(1) // actual
		if v.ptr(true) {
			v.deferRef(func() { v.tower(tcpTower(ifc, port, server)) })
		}
	})
	v.u32(0)
	return w.b, v.b
}

// drsExtensions is a DRS_EXTENSIONS_INT of 48 bytes (MS-DRSR 5.39).
func (w *ndrWriter) drsExtensions(flags uint32, site guid, r *rng) {
	const cb = 48
	w.u32(cb) // conformance
	w.u32(cb)
	b := binary.LittleEndian.AppendUint32(nil, flags)
	b = append(b, site[:]...)
	b = binary.LittleEndian.AppendUint32(b, r.u32()&0xffff) // pid
	b = binary.LittleEndian.AppendUint32(b, 0)              // repl epoch
	b = binary.LittleEndian.AppendUint32(b, 0)              // flags ext
	b = append(b, make([]byte, 16)...)                      // config object GUID
	w.raw(b)
}

// IDL_DRSBind (opnum 0).
func drsBind(site guid, h ctxHandle, r *rng) (req, resp []byte) {
	var w ndrWriter
	if w.ptr(true) {
		w.uuid(ntdsapiClient)
	}
	if w.ptr(true) {
		w.drsExtensions(drsExtGetNCChanges, guid{}, r)
	}
	v := ndrWriter{refID: replyRefs}
	if v.ptr(true) {
		v.drsExtensions(drsExtGetNCChanges|0x20000000, site, r)
	}
	v.handle(h)
	v.u32(0)
	return w.b, v.b
}

// dsName writes a DSNAME with its conformance (MS-DRSR 5.50).
func (w *ndrWriter) dsName(dn string, g guid, sid []byte) {
	u := utf16le(dn)
	n := len(u) / 2
	w.u32(uint32(n + 1)) // conformance
	w.u32(uint32(56 + 2*(n+1)))
	w.u32(uint32(len(sid)))
	w.uuid(g)
	var s [28]byte
	copy(s[:], sid)
	w.raw(s[:])
	w.u32(uint32(n))
	w.raw(u)
	w.raw([]byte{0, 0})
}

// drsAttr is an attribute of a replicated object: its ATTRTYP and one
// value.
type drsAttr struct {
	typ uint32
	val []byte
}

// Attributes secretsdump asks for (MS-ADA1/3 attribute IDs with the
// default prefix table).
const (
	attSAMAccountName = 0x000900dd
	attObjectSid      = 0x00090092
	attUnicodePwd     = 0x0009005a
	attNtPwdHistory   = 0x0009005e
	attSupplemental   = 0x0009007d
)

// IDL_DRSGetNCChanges (opnum 3) asking for one object's secrets
// (EXOP_REPL_OBJ, V8 request), answered with that object (V6 reply).
func drsGetNCChanges(h ctxHandle, dc guid, dcInvocation guid, object string, objGUID guid, objSID []byte, attrs []drsAttr, usn uint64) (req, resp []byte) {
	var w ndrWriter
	w.handle(h)
	w.u32(8)             // dwInVersion
	w.u32(8)             // union discriminant
	w.construct(func() { // DRS_MSG_GETCHGREQ_V8
		w.align(8)
		w.uuid(dc)
		w.uuid(dcInvocation)
		if w.ptr(true) { // pNC: embedded [ref]
			w.deferRef(func() { w.dsName(object, guid{}, nil) })
		}
		w.u64(0) // usnvecFrom
		w.u64(0)
		w.u64(0)
		w.ptr(false) // pUpToDateVecDest
		w.u32(drsInitSync | drsWritRep)
		w.u32(1) // cMaxObjects
		w.u32(0) // cMaxBytes
		w.u32(exopReplObj)
		w.u64(0)         // liFsmoInfo
		if w.ptr(true) { // pPartialAttrSet: PARTIAL_ATTR_VECTOR_V1_EXT
			w.deferRef(func() {
				w.u32(uint32(len(attrs)))
				w.u32(1) // dwVersion
				w.u32(0)
				w.u32(uint32(len(attrs)))
				for _, a := range attrs {
					w.u32(a.typ)
				}
			})
		}
		w.ptr(false) // pPartialAttrSetEx
		w.u32(0)     // PrefixTableDest.PrefixCount
		w.ptr(false)
	})

	v := ndrWriter{refID: replyRefs}
	v.u32(6)             // pdwOutVersion
	v.u32(6)             // union discriminant
	v.construct(func() { // DRS_MSG_GETCHGREPLY_V6
		v.align(8)
		v.uuid(dc)
		v.uuid(dcInvocation)
		if v.ptr(true) {
			v.deferRef(func() { v.dsName(object, objGUID, objSID) })
		}
		v.u64(usn) // usnvecFrom
		v.u64(0)
		v.u64(usn)
		v.u64(usn) // usnvecTo
		v.u64(0)
		v.u64(usn)
		v.ptr(false) // pUpToDateVecSrc
		v.u32(0)     // PrefixTableSrc.PrefixCount
		v.ptr(false)
		v.u32(exopErrSuccess)
		v.u32(1) // cNumObjects
		size := 0
		for _, a := range attrs {
			size += len(a.val)
		}
		v.u32(uint32(size)) // cNumBytes
		if v.ptr(true) {
			v.deferRef(func() { v.replEntInf(object, objGUID, objSID, attrs) })
		}
		v.u32(0)     // fMoreData
		v.u32(0)     // cNumNcSizeObjects
		v.u32(0)     // cNumNcSizeValues
		v.u32(0)     // cNumValues
		v.ptr(false) // rgValues
		v.u32(0)     // dwDRSError
	})
	v.u32(0)
	return w.b, v.b
}

// replEntInf writes a REPLENTINFLIST of one object (MS-DRSR 5.166).
func (w *ndrWriter) replEntInf(dn string, g guid, sid []byte, attrs []drsAttr) {
	w.ptr(false) // pNextEntInf
	if w.ptr(true) {
		w.deferRef(func() { w.dsName(dn, g, sid) })
	}
	w.u32(0) // ulFlags
	w.u32(uint32(len(attrs)))
	if w.ptr(true) {
		w.deferRef(func() { // ATTR[attrCount]
			w.u32(uint32(len(attrs)))
			for _, a := range attrs {
				w.u32(a.typ)
				w.u32(1) // valCount
				if w.ptr(true) {
					w.deferRef(func() { // ATTRVAL[1]
						w.u32(1)
						w.u32(uint32(len(a.val)))
						if w.ptr(true) {
							w.deferRef(func() {
								w.u32(uint32(len(a.val)))
								w.raw(a.val)
							})
						}
					})
				}
			}
		})
	}
	w.u32(0)     // fIsNCPrefix
	w.ptr(false) // pParentGuid
	w.ptr(false) // pMetaDataExt
}

// IDL_DRSUnbind (opnum 1).
func drsUnbind(h ctxHandle) (req, resp []byte) {
	var w ndrWriter
	w.handle(h)
	v := ndrWriter{refID: replyRefs}
	v.handle(ctxHandle{})
	v.u32(0)
	return w.b, v.b
}
