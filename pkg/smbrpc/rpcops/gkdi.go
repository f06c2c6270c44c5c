package rpcops

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// MS-GKDI, the Group Key Distribution Service of domain controllers
// (ISDKey, TCP after an endpoint-mapper lookup). Its one method, GetKey,
// returns key material derived from a KDS root key for a security
// descriptor: with it the caller decrypts DPAPI-NG blobs protected "for"
// that descriptor, which is how Windows LAPS encrypted passwords and other
// DPAPI-NG protected secrets stored in AD are read, and the same root-key
// family the golden gMSA attack abuses. Technique T1555 (Credentials from
// Password Stores), credential access: the call fetches the key that
// opens stored credentials. It is also what a legitimate LAPS or DPAPI-NG
// client sends, so the account and the descriptor's principals matter:
// the fields name both. The key material returned is never shown.
var gkdiUUID = mustUUID("b9785960-524f-11df-8b6d-83dcded72085")

// TechGroupKey is Credentials from Password Stores.
const TechGroupKey = "T1555"

func init() { builders = append(builders, registerGKDI) }

func registerGKDI() {
	register(&iface{name: "ISDKey", uuid: gkdiUUID, names: []string{"GetKey"},
		ops: map[uint16]op{
			0: {req: gkdiGetKey, resp: gkdiGetKeyResp, technique: TechGroupKey, phase: PhaseCredAccess},
		}})
}

// gkdiGetKey reads GetKey (MS-GKDI 3.1.4.1): cbTargetSD, pbTargetSD (a
// [ref, size_is] byte array: conformance then bytes), pRootKeyID (unique
// GUID), L0KeyID, L1KeyID, L2KeyID (LONG; -1 asks for the current key).
func gkdiGetKey(x *dc) {
	r := x.r
	r.U32()
	sd := r.Bytes(r.Count(1))
	var root [16]byte
	hasRoot := r.Ptr()
	if hasRoot {
		r.Align(4)
		root = r.UUID()
	}
	l0, l1, l2 := int32(r.U32()), int32(r.U32()), int32(r.U32())
	if r.Err() != nil {
		return
	}
	if hasRoot {
		x.add("root key", UUIDString(root))
	} else {
		x.add("root key", "(current)")
	}
	x.add("L0/L1/L2", fmt.Sprintf("%d/%d/%d", l0, l1, l2))
	owner, principals := sdPrincipals(sd)
	x.add("descriptor owner", owner)
	x.add("descriptor grants", strings.Join(principals, ", "))
	x.d.Target = strings.Join(principals, ", ")
}

// gkdiGetKeyResp reads pcbOut and ppbOut (a unique pointer to a
// conformant byte array) and from the Group Key Envelope in it (MS-GKDI
// 2.2.4) the indexes, root key, domain and forest: never the keys.
func gkdiGetKeyResp(x *dc) {
	r := x.r
	r.U32()
	if !r.Ptr() {
		return
	}
	b := r.Bytes(r.Count(1))
	if r.Err() != nil || len(b) < 80 {
		return
	}
	le := binary.LittleEndian
	x.add("returned", fmt.Sprintf("group key envelope, L%d/%d/%d, root key %s", int32(le.Uint32(b[12:])),
		int32(le.Uint32(b[16:])), int32(le.Uint32(b[20:])), UUIDString([16]byte(b[24:40]))))
	// Lengths of KdfAlgo, KdfPara, SecAlgo, SecPara, PrivKey, PubKey,
	// L1Key, L2Key, Domain, Forest; the variable fields follow in the order
	// KdfAlgo, KdfPara, SecAlgo, SecPara, Domain, Forest, L1Key, L2Key.
	var l [10]int
	for i := range l {
		l[i] = int(le.Uint32(b[40+4*i:]))
	}
	off := 80
	for _, n := range l[:4] {
		if n < 0 || n > len(b)-off {
			return
		}
		off += n
	}
	for i, name := range []string{"domain", "forest"} {
		n := l[8+i]
		if n < 0 || n > len(b)-off {
			return
		}
		x.add(name, utf16z(b[off:off+n]))
		off += n
	}
}

// utf16z decodes little-endian UTF-16 up to its NUL.
func utf16z(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// sdPrincipals reads a self-relative security descriptor (MS-DTYP
// 2.4.6): its owner and the SIDs its DACL's ACEs grant to. Bounded by the
// descriptor's bytes; a damaged one gives what was read.
func sdPrincipals(sd []byte) (owner string, sids []string) {
	if len(sd) < 20 || sd[0] != 1 {
		return "", nil
	}
	le := binary.LittleEndian
	sidAt := func(off uint32) string {
		if off == 0 || int64(off)+8 > int64(len(sd)) {
			return ""
		}
		return sidBytes(sd[off:])
	}
	owner = sidAt(le.Uint32(sd[4:]))
	dacl := le.Uint32(sd[16:])
	if le.Uint16(sd[2:])&0x4 == 0 || dacl == 0 || int64(dacl)+8 > int64(len(sd)) {
		return owner, nil
	}
	acl := sd[dacl:]
	size := min(int(le.Uint16(acl[2:])), len(acl))
	count := int(le.Uint16(acl[4:]))
	off := 8
	for i := 0; i < count && off+8 <= size && len(sids) < 16; i++ {
		typ, aceSize := acl[off], int(le.Uint16(acl[off+2:]))
		if aceSize < 8 || off+aceSize > size {
			break
		}
		// ACCESS_ALLOWED_ACE (0) and ACCESS_DENIED_ACE (1): header, mask,
		// SID.
		if typ <= 1 {
			if s := sidBytes(acl[off+8 : off+aceSize]); s != "" {
				if typ == 1 {
					s = "deny " + s
				}
				if n := wellKnownSID(s); n != "" {
					s += " (" + n + ")"
				}
				sids = append(sids, s)
			}
		}
		off += aceSize
	}
	return owner, sids
}
