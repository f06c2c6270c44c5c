// Package flow turns packets into flow records (one per TCP connection or UDP
// exchange, as Zeek's conn.log and Arkime's sessions do) and defines the
// record that the store keeps beside its packets and that hunt and report
// read instead of re-decoding packets.
package flow

import (
	"net/netip"
	"time"
)

// NameSource says where a flow's Name came from.
type NameSource uint8

// Name sources, most trustworthy last: a TLS SNI or HTTP Host names the
// service the client asked for; a DNS answer only names an address.
const (
	NameNone NameSource = iota
	NameDNS             // DNS query name (for DNS flows) or a prior answer for the responder address
	NameHTTP            // HTTP Host header
	NameSNI             // TLS ClientHello server_name
)

func (s NameSource) String() string {
	switch s {
	case NameDNS:
		return "dns"
	case NameHTTP:
		return "http"
	case NameSNI:
		return "sni"
	}
	return ""
}

// Record is one flow. Orig is the side that opened it (the SYN sender for
// TCP, the first sender otherwise); Resp the other.
type Record struct {
	First, Last time.Time
	Proto       uint8 // IP protocol number
	Orig, Resp  netip.Addr
	OrigPort    uint16
	RespPort    uint16
	VLAN        uint16 // outermost tag, 0 when untagged

	OrigPkts, RespPkts   uint64
	OrigBytes, RespBytes uint64 // IP bytes each way, as the IP headers claim (Zeek's *_ip_bytes)
	OrigData, RespData   uint64 // transport payload bytes each way (Zeek's orig_bytes/resp_bytes)
	OrigFlags, RespFlags uint8  // union of TCP flags each side sent

	Name       string     // service name the flow was for, when visible
	NameSource NameSource // where Name came from
	// Answers holds the addresses a DNS response in this flow gave for Name,
	// so readers can map addresses to names without the packets.
	Answers []netip.Addr
	// Partial is set when the record was cut by a shard boundary or a
	// timeout rather than closed by the protocol.
	Partial bool

	// Bursts is when payload started again after an idle gap inside the
	// flow: the check-ins of an implant that keeps one connection open
	// (docs/format/flows.md, version 2).
	Bursts Bursts
	// HTTPTarget is the first HTTP/1 request's target as an absolute URI
	// (origin-form targets get "http://" and the Host header in front), or
	// a CONNECT's host:port; at most MaxTarget bytes.
	HTTPTarget string
	// ProxyDest is the destination asked of a forward proxy ("host:port",
	// from a CONNECT or an absolute-URI request): Resp is then the proxy.
	ProxyDest string
	// TLS is what the server's certificate said when the handshake was in
	// clear, and whether the ClientHello named a server (version 3).
	TLS TLSCert
}

// Burst series bounds (docs/format/flows.md).
const (
	// BurstIdle is the silence, both ways, after which new payload starts
	// a burst: longer than a server takes to answer, shorter than a
	// check-in period.
	BurstIdle = 2 * time.Second
	// MaxBursts bounds the burst starts kept per record: the first
	// MaxBursts/2 and the last MaxBursts/2 once there are more.
	MaxBursts = 64
	// MaxTarget bounds HTTPTarget.
	MaxTarget = 512
	// maxProxyDest bounds ProxyDest.
	maxProxyDest = 255
)

// Bursts is a flow's burst series in a bounded form.
type Bursts struct {
	// At holds burst starts in milliseconds after the record's First,
	// ascending: every burst while N <= MaxBursts, else the first Head
	// and the last len(At)-Head.
	At []uint32
	// N counts every burst of the flow, the first exchange included.
	N uint32
	// Head is how many of At are the flow's first bursts; Head == len(At)
	// when none was dropped.
	Head uint8
}

// Runs calls yield with each run of consecutive burst starts (one run, or
// two when bursts in the middle were dropped), as offsets from First. The
// slices belong to b.
func (b *Bursts) Runs(yield func(ms []uint32)) {
	if len(b.At) == 0 {
		return
	}
	if int(b.Head) >= len(b.At) || b.Head == 0 {
		yield(b.At)
		return
	}
	yield(b.At[:b.Head])
	yield(b.At[b.Head:])
}

// Duration is Last-First.
func (r *Record) Duration() time.Duration { return r.Last.Sub(r.First) }

// State summarises the TCP handshake in Zeek's conn_state vocabulary (the
// subset nwhealth can tell apart from flag unions): S0 no reply, REJ
// rejected, SF normal close, S1 established and not closed, RSTO/RSTR reset
// by originator/responder, OTH anything else. Non-TCP flows give "" .
func (r *Record) State() string {
	if r.Proto != 6 {
		return ""
	}
	const syn, fin, rst, ack = 0x02, 0x01, 0x04, 0x10
	o, s := r.OrigFlags, r.RespFlags
	switch {
	case o&syn != 0 && r.RespPkts == 0:
		return "S0"
	case o&syn != 0 && s&rst != 0 && s&ack != 0 && s&syn == 0:
		return "REJ"
	case o&syn != 0 && s&syn != 0 && o&rst != 0:
		return "RSTO"
	case o&syn != 0 && s&syn != 0 && s&rst != 0:
		return "RSTR"
	case o&syn != 0 && s&syn != 0 && o&fin != 0 && s&fin != 0:
		return "SF"
	case o&syn != 0 && s&syn != 0:
		return "S1"
	}
	return "OTH"
}
