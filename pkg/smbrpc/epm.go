package smbrpc

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// EPMEntry is one endpoint an endpoint-mapper reply hands out: which
// interface listens on which TCP port (and address, when given).
type EPMEntry struct {
	Interface UUID
	Port      uint16
	Addr      netip.Addr
}

// towerStart is a protocol tower's floor count (little-endian 5 floors is
// the ncacn_ip_tcp tower) followed by floor 1's LHS: 19 bytes, protocol
// 0x0d (UUID).
var towerStart = []byte{0x05, 0x00, 0x13, 0x00, 0x0d}

// EPMTowers finds ncacn_ip_tcp towers in an ept_map or ept_lookup response
// stub. Towers are octet strings inside NDR structures whose framing varies
// by call; scanning for the fixed tower layout (C706 appendix L) finds them
// in both without decoding the NDR around them. Replay itself reads the
// answers with rpcops (EndpointsFromCall), which knows their NDR; this
// scanner stays for tools and tests that check a stub on its own.
func EPMTowers(stub []byte) []EPMEntry {
	var out []EPMEntry
	b := stub
	for len(out) < 512 {
		i := bytes.Index(b, towerStart)
		if i < 0 {
			return out
		}
		b = b[i+2:]
		if e, ok := tower(b); ok {
			out = append(out, e)
		}
	}
	return out
}

// tower reads five floors starting at floor 1's LHS length.
func tower(b []byte) (EPMEntry, bool) {
	var e EPMEntry
	r := rd{b: b}
	var proto [5]byte
	for f := 0; f < 5; f++ {
		ll := int(r.u16())
		lhs := r.bytes(ll)
		rl := int(r.u16())
		rhs := r.bytes(rl)
		if r.err != nil || len(lhs) == 0 {
			return e, false
		}
		proto[f] = lhs[0]
		switch {
		case f == 0 && lhs[0] == 0x0d && len(lhs) >= 17:
			copy(e.Interface[:], lhs[1:17])
		case lhs[0] == 0x07 && len(rhs) == 2:
			e.Port = binary.BigEndian.Uint16(rhs)
		case lhs[0] == 0x09 && len(rhs) == 4:
			e.Addr = netip.AddrFrom4([4]byte(rhs))
		}
	}
	return e, proto[0] == 0x0d && proto[2] == 0x0b && proto[3] == 0x07 && e.Port != 0
}
