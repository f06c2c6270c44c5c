package rpcops

import "net/netip"

// Endpoint is one endpoint an endpoint-mapper (epmapper) ept_map or
// ept_lookup response announced: where a dynamic RPC server listens.
type Endpoint struct {
	Interface [16]byte   // interface UUID, wire form
	IfVersion uint16     // major version
	Protocol  string     // "ncacn_ip_tcp", "ncacn_np", "ncalrpc", "ncacn_http", "ncadg_ip_udp"
	Port      uint16     // TCP or UDP port (ncacn_ip_tcp, ncacn_http, ncadg_ip_udp)
	Pipe      string     // named pipe (ncacn_np), e.g. \PIPE\lsass; or the ncalrpc port name
	Host      netip.Addr // address floor (often 0.0.0.0); invalid when absent
}

// EndpointsFromMap returns the endpoints in an ept_map (opnum 3) response
// stub, so the pipeline can learn which dynamic TCP ports carry DCE/RPC.
func EndpointsFromMap(resp []byte, bigEndian bool) []Endpoint {
	return nil
}
