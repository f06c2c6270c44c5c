package rpcops

import (
	"fmt"
	"strings"
)

// The management interface every DCE/RPC server answers on each of its
// endpoints (MS-RPCE 2.2.1.3, the DCE 1.1 "mgmt" IDL). rpcmap-style tools
// bind it on an endpoint and call rpc_mgmt_inq_if_ids to list the
// interfaces served there: T1046 (Network Service Discovery),
// reconnaissance, as is asking the server's principal name. The listening
// probe and statistics are named only (clients' own liveness checks), and
// stop_server_listening, which Windows refuses remotely, too.
var mgmtUUID = mustUUID("afa8bd80-7d8a-11c9-bef4-08002b102989")

func init() { builders = append(builders, registerMgmt) }

func registerMgmt() {
	register(&iface{name: "mgmt", uuid: mgmtUUID,
		names: []string{"rpc_mgmt_inq_if_ids", "rpc_mgmt_inq_stats", "rpc_mgmt_is_server_listening",
			"rpc_mgmt_stop_server_listening", "rpc_mgmt_inq_princ_name"},
		ops: map[uint16]op{
			0: {resp: mgmtIfIDsResp, technique: "T1046", phase: PhaseRecon},
			4: {req: mgmtPrincReq, resp: mgmtPrincResp, technique: "T1046", phase: PhaseRecon},
		}})
}

// maxIfIDs bounds the interfaces listed (an endpoint serves tens).
const maxIfIDs = 64

// mgmtIfIDsResp reads rpc_if_id_vector_p_t: a unique pointer to
// {count, [size_is(count)] rpc_if_id_t *if_id[]} (a conformant structure:
// the size first), then each interface's UUID and major and minor version.
func mgmtIfIDsResp(x *dc) {
	r := x.r
	if !r.Ptr() {
		return
	}
	var names []string
	total := 0
	r.Construct(func() {
		n := r.Count(r.PtrSize())
		total = int(r.U32())
		for i := 0; i < n && r.Err() == nil; i++ {
			if r.Ptr() && i < maxIfIDs {
				r.Defer(func() {
					u := r.UUID()
					maj, mnr := r.U16(), r.U16()
					if r.Err() == nil {
						names = append(names, fmt.Sprintf("%s v%d.%d", ifaceLabel(u), maj, mnr))
					}
				})
			}
		}
	})
	if len(names) == 0 && r.Err() != nil {
		return
	}
	x.add("interfaces", fmt.Sprint(total))
	x.add("served", strings.Join(names, ", "))
}

// ifaceLabel names an interface by rpcops's table, the well-known table,
// or its UUID.
func ifaceLabel(u [16]byte) string {
	if n := InterfaceName(u); n != "" {
		return n
	}
	if n := WellKnownName(u); n != "" {
		return n
	}
	return UUIDString(u)
}

// mgmtPrincReq reads authn_proto and princ_name_size.
func mgmtPrincReq(x *dc) {
	p := x.r.U32()
	x.add("authentication", enumName(p, map[uint32]string{9: "negotiate", 10: "NTLM", 14: "schannel", 16: "Kerberos", 68: "netlogon"}))
}

// mgmtPrincResp reads princ_name, a conformant varying 8-bit string.
func mgmtPrincResp(x *dc) {
	n := strings.TrimRight(x.r.AString(), "\x00")
	x.add("principal", n)
	if n != "" {
		x.d.Target = n
	}
}
