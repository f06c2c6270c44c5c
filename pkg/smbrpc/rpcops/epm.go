package rpcops

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ndr"
)

// epmapper: the DCE endpoint mapper (C706 appendix O, MS-RPCE 2.2.1.2),
// on TCP port 135 and the \pipe\epmapper pipe.
var epmUUID = mustUUID("e1af8308-5d1f-11c9-91a4-08002b14a0fa")

func init() { builders = append(builders, registerEpm) }

func registerEpm() {
	register(&iface{name: "epmapper", uuid: epmUUID, pipes: []string{"epmapper"},
		names: []string{"ept_insert", "ept_delete", "ept_lookup", "ept_map",
			"ept_lookup_handle_free", "ept_inq_object", "ept_mgmt_delete"},
		ops: map[uint16]op{
			2: {req: epmLookupReq, resp: epmLookupResp, technique: "T1046", phase: PhaseRecon},
			3: {req: epmMapReq, resp: epmMapResp, noise: true},
			4: {noise: true},
		}})
}

// Endpoint is one endpoint an endpoint-mapper (epmapper) ept_map or
// ept_lookup response announced: where a dynamic RPC server listens.
type Endpoint struct {
	Interface  [16]byte   // interface UUID, wire form
	IfVersion  uint16     // major version
	Protocol   string     // "ncacn_ip_tcp", "ncacn_np", "ncalrpc", "ncacn_http", "ncadg_ip_udp"
	Port       uint16     // TCP or UDP port (ncacn_ip_tcp, ncacn_http, ncadg_ip_udp)
	Pipe       string     // named pipe (ncacn_np), e.g. \PIPE\lsass; or the ncalrpc port name
	Host       netip.Addr // address floor (often 0.0.0.0); invalid when absent
	Annotation string     // ept_lookup annotation, e.g. "Impl friendly name"
}

// String renders an endpoint as a string binding, e.g.
// ncacn_ip_tcp:172.18.39.6[49671].
func (e Endpoint) String() string {
	host := ""
	if e.Host.IsValid() {
		host = e.Host.String()
	}
	switch {
	case e.Port != 0:
		return fmt.Sprintf("%s:%s[%d]", e.Protocol, host, e.Port)
	case e.Pipe != "":
		return fmt.Sprintf("%s:%s[%s]", e.Protocol, host, e.Pipe)
	}
	return e.Protocol + ":" + host
}

// EndpointsFromMap returns the endpoints in an ept_map (opnum 3) response
// stub, so the pipeline can learn which dynamic TCP ports carry DCE/RPC
// (and which interface answers there). Windows clients usually talk NDR64
// to the endpoint mapper; both transfer syntaxes are tried (use
// EndpointsFromCall when the bind_ack was seen).
func EndpointsFromMap(resp []byte, bigEndian bool) []Endpoint {
	for _, n64 := range []bool{false, true} {
		r := ndr.NewReader(resp, bigEndian)
		r.SetNDR64(n64)
		eps := epmMapTowers(r)
		r.U32() // status
		if r.Err() == nil && r.Remaining() == 0 {
			return eps
		}
	}
	return nil
}

// EndpointsFromCall returns the endpoints of an ept_map (opnum 3) or
// ept_lookup (opnum 2) call's response in the call's transfer syntax; nil
// for any other call.
func EndpointsFromCall(c Call) []Endpoint {
	if c.Interface != epmUUID || len(c.Response) == 0 {
		return nil
	}
	r := newReader(c, c.Response)
	var eps []Endpoint
	switch c.Opnum {
	case 2:
		_, ents := epmLookupEntries(r)
		for _, e := range ents {
			if ep, ok := parseTower(e.tower); ok {
				ep.Annotation = e.annot
				eps = append(eps, ep)
			}
		}
	case 3:
		eps = epmMapTowers(r)
	}
	if r.Err() != nil {
		return nil
	}
	return eps
}

func epmMapArgs(r *ndr.Reader) (obj [16]byte, tower []byte) {
	if r.Ptr() {
		obj = r.UUID()
	}
	if r.Ptr() {
		tower = epmTower(r)
	}
	readHandle(r)
	r.U32() // max towers
	return
}

// epmTower reads a twr_t referent: a conformant structure whose
// conformance precedes its length.
func epmTower(r *ndr.Reader) []byte {
	n := r.Count(1)
	l := r.U32()
	if int(l) != n && r.Err() == nil {
		r.Failf("tower length %d, conformance %d", l, n)
		return nil
	}
	return r.Bytes(n)
}

func epmMapReq(x *dc) {
	_, tower := epmMapArgs(x.r)
	e, ok := parseTower(tower)
	if !ok {
		return
	}
	name := InterfaceName(e.Interface)
	if name == "" {
		name = UUIDString(e.Interface)
	}
	x.d.Target = name
	x.add("interface", fmt.Sprintf("%s v%d", name, e.IfVersion))
	x.add("protocol", e.Protocol)
}

func epmMapTowers(r *ndr.Reader) []Endpoint {
	readHandle(r)
	r.U32() // num towers
	var towers [][]byte
	r.Construct(func() {
		max := r.MaxCount()
		n := r.Varying(max, r.PtrSize())
		for i := 0; i < n; i++ {
			if r.Ptr() {
				r.Defer(func() { towers = append(towers, epmTower(r)) })
			}
		}
	})
	var out []Endpoint
	for _, t := range towers {
		if e, ok := parseTower(t); ok {
			out = append(out, e)
		}
	}
	return out
}

func epmMapResp(x *dc) {
	for _, e := range epmMapTowers(x.r) {
		x.add("endpoint", e.String())
	}
}

func epmLookupArgs(r *ndr.Reader) (inquiry uint32, ifid [16]byte, hasIf bool) {
	inquiry = r.U32()
	if r.Ptr() {
		r.UUID()
	}
	if r.Ptr() {
		ifid = r.UUID()
		r.U16()
		r.U16()
		hasIf = true
	}
	r.U32() // vers_option
	readHandle(r)
	r.U32() // max_ents
	return
}

func epmLookupReq(x *dc) {
	inq, ifid, hasIf := epmLookupArgs(x.r)
	x.add("inquiry", enumName(inq, map[uint32]string{0: "all elements", 1: "interface", 2: "object", 3: "interface and object"}))
	if hasIf && inq != 0 {
		name := InterfaceName(ifid)
		if name == "" {
			name = UUIDString(ifid)
		}
		x.add("interface", name)
	}
}

type lookupEntry struct {
	tower []byte
	annot string
}

// epmLookupEntries reads an ept_lookup response up to its entries.
func epmLookupEntries(r *ndr.Reader) (num uint32, ents []*lookupEntry) {
	readHandle(r)
	num = r.U32()
	r.Construct(func() {
		max := r.MaxCount()
		n := r.VaryingUpTo(max, 28)
		for i := 0; i < n; i++ {
			e := &lookupEntry{}
			ents = append(ents, e)
			r.AlignP()
			r.UUID()
			if r.Ptr() {
				r.Defer(func() { e.tower = epmTower(r) })
			}
			m := r.Varying(64, 1)
			e.annot = r.Chars(m)
		}
	})
	return num, ents
}

// epmLookupResp lists the endpoints an ept_lookup returned (rpcdump's
// enumeration), at most maxListed of them.
func epmLookupResp(x *dc) {
	num, ents := epmLookupEntries(x.r)
	x.add("entries", fmt.Sprint(num))
	listed := 0
	for _, e := range ents {
		ep, ok := parseTower(e.tower)
		if !ok {
			continue
		}
		if listed == maxListed {
			x.add("…", "more endpoints not listed")
			break
		}
		listed++
		name := InterfaceName(ep.Interface)
		if name == "" {
			name = UUIDString(ep.Interface)
		}
		v := name + " " + ep.String()
		if e.annot != "" {
			v += " (" + e.annot + ")"
		}
		x.add("endpoint", v)
	}
}

// maxListed bounds repeated fields (endpoints, names, shares...) per call.
const maxListed = 50

// parseTower decodes a protocol tower (C706 appendix L): floors of
// little-endian length-prefixed left and right hand sides.
func parseTower(t []byte) (e Endpoint, ok bool) {
	if len(t) < 2 {
		return e, false
	}
	floors := int(binary.LittleEndian.Uint16(t))
	t = t[2:]
	var proto, transport byte
	for i := 0; i < floors; i++ {
		if len(t) < 2 {
			return e, false
		}
		ll := int(binary.LittleEndian.Uint16(t))
		if len(t) < 2+ll+2 || ll < 1 {
			return e, false
		}
		lhs := t[2 : 2+ll]
		rl := int(binary.LittleEndian.Uint16(t[2+ll:]))
		if len(t) < 4+ll+rl {
			return e, false
		}
		rhs := t[4+ll : 4+ll+rl]
		t = t[4+ll+rl:]
		switch {
		case i == 0 && lhs[0] == 0x0d && len(lhs) >= 19:
			copy(e.Interface[:], lhs[1:17])
			e.IfVersion = binary.LittleEndian.Uint16(lhs[17:])
		case i == 1: // transfer syntax
		case i == 2:
			proto = lhs[0]
		case lhs[0] == 0x07 || lhs[0] == 0x08 || lhs[0] == 0x1f:
			transport = lhs[0]
			if len(rhs) >= 2 {
				e.Port = binary.BigEndian.Uint16(rhs)
			}
		case lhs[0] == 0x09:
			if len(rhs) >= 4 {
				e.Host = netip.AddrFrom4([4]byte(rhs[:4]))
			}
		case lhs[0] == 0x0f || lhs[0] == 0x10:
			transport = lhs[0]
			e.Pipe = towerString(rhs)
		case lhs[0] == 0x11:
			if i == 3 {
				transport = lhs[0]
				e.Pipe = towerString(rhs)
			} else if e.Annotation == "" {
				e.Annotation = towerString(rhs) // NetBIOS host name
			}
		}
	}
	e.Protocol = towerProtocol(proto, transport)
	return e, true
}

func towerString(b []byte) string {
	return strings.TrimRight(ndr.Latin1(b), "\x00")
}

func towerProtocol(proto, transport byte) string {
	switch {
	case proto == 0x0b && transport == 0x07:
		return "ncacn_ip_tcp"
	case proto == 0x0b && transport == 0x0f:
		return "ncacn_np"
	case proto == 0x0b && transport == 0x1f:
		return "ncacn_http"
	case proto == 0x0b && transport == 0x11:
		return "ncacn_nb_nb"
	case proto == 0x0a && transport == 0x08:
		return "ncadg_ip_udp"
	case proto == 0x0c:
		return "ncalrpc"
	}
	return fmt.Sprintf("protocol 0x%02x/0x%02x", proto, transport)
}
