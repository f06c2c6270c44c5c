package jsonl

import (
	"math"

	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// Finding is one ranked hunt result (hunt.Finding): a channel (source to
// destination) or a host. Written by hunt and by report.
type Finding struct {
	Type        string   `json:"type"`
	ID          string   `json:"id"`   // "F1", in rank order of the findings written
	Kind        string   `json:"kind"` // "channel", "host", "dns" or "icmp"
	Src         string   `json:"src"`
	Dst         string   `json:"dst,omitempty"`       // channel
	DstName     string   `json:"dst_name,omitempty"`  // channel, when a name was seen
	DPort       *uint16  `json:"dport,omitempty"`     // channel
	Proto       string   `json:"proto,omitempty"`     // channel
	Direction   string   `json:"direction,omitempty"` // channel: outbound, inbound (src is the outside address) or internal
	Via         string   `json:"via,omitempty"`       // channel through a forward proxy: the proxy
	Score       float64  `json:"score"`
	Severity    string   `json:"severity"`
	PeriodS     *float64 `json:"period_s,omitempty"`   // channel with a period
	Jitter      *float64 `json:"jitter,omitempty"`     // channel with a period
	Regularity  *float64 `json:"regularity,omitempty"` // channel with a period
	Connections int      `json:"connections"`
	FirstSeen   string   `json:"first_seen"`
	LastSeen    string   `json:"last_seen"`
	Popularity  *int     `json:"popularity,omitempty"` // channel
	Hosts       int      `json:"hosts"`
	Fanout      int      `json:"fanout"`
	AdminPeers  *int     `json:"admin_peers,omitempty"`  // host
	C2Kind      string   `json:"c2_kind,omitempty"`      // host: the kind of finding its C2 evidence leads with
	C2Peer      string   `json:"c2_peer,omitempty"`      // host: that finding's outside peer (destination, address pinged, or the poller)
	C2PeerName  string   `json:"c2_peer_name,omitempty"` // host: the peer's name (a DNS finding's registered domain)
	Beacon      bool     `json:"beacon"`
	Lateral     bool     `json:"lateral"`
	Scan        bool     `json:"scan"`
	Reasons     []string `json:"reasons"`
	Attack      []string `json:"attack"`
	Action      string   `json:"action"`                // the most urgent recommended action
	Asset       string   `json:"asset,omitempty"`       // the inside host's name in the inventory
	Criticality string   `json:"criticality,omitempty"` // the inside host's criticality in the inventory
	DNS         *DNS     `json:"dns,omitempty"`         // dns: what the queries under dst_name showed
	ICMP        *ICMP    `json:"icmp,omitempty"`        // icmp: what the echo traffic to dst showed
}

// ICMP is what an inside host's echo traffic to one outside address
// showed (hunt.ICMPEvidence).
type ICMP struct {
	Flows    int      `json:"flows"`
	Requests uint64   `json:"requests"`
	Replies  uint64   `json:"replies"`
	ReqBytes uint64   `json:"request_bytes"`
	RepBytes uint64   `json:"reply_bytes"`
	Unechoed uint64   `json:"unechoed_bytes"`
	Share    float64  `json:"unechoed_share"`
	Extra    uint64   `json:"extra_replies"`
	SizeVary *float64 `json:"size_vary,omitempty"` // with 4 or more exchanges
	Payload  float64  `json:"payload"`
	Tunnel   float64  `json:"tunnel"`
	Schedule float64  `json:"schedule"`
}

// DNS is what an inside host's queries under one registered domain showed
// (hunt.DNSEvidence).
type DNS struct {
	Queries    int      `json:"queries"`
	Names      int      `json:"names"`
	SubLen     float64  `json:"subdomain_len"`
	Entropy    float64  `json:"entropy"`
	BigQueries uint64   `json:"largest_flow_queries"`
	BigBytes   uint64   `json:"largest_flow_bytes"`
	OrigBytes  uint64   `json:"orig_bytes"`
	RespBytes  uint64   `json:"resp_bytes"`
	DataQTypes *float64 `json:"data_qtypes,omitempty"` // share of TXT, NULL, CNAME, MX, KEY queries, when query types are known
	Labels     float64  `json:"labels"`
	Volume     float64  `json:"volume"`
	Schedule   float64  `json:"schedule"`
}

// NewFinding makes the record of f, numbered id. Asset and Criticality
// are the caller's, from its inventory.
func NewFinding(id string, f *hunt.Finding) Finding {
	j := Finding{Type: TypeFinding, ID: id, Kind: string(f.Kind), Src: Addr(f.Src), Score: round(f.Score, 4), Severity: f.Severity.String(),
		Connections: f.Connections, FirstSeen: Time(f.FirstSeen), LastSeen: Time(f.LastSeen), Hosts: f.Hosts, Fanout: f.Fanout,
		Beacon: f.Beacon, Lateral: f.Lateral, Scan: f.Scan, Reasons: Strings(f.Reasons), Attack: Strings(f.Attack), Action: f.Action}
	if f.Kind == hunt.KindChannel {
		port, pop := f.DstPort, f.Popularity
		j.Dst, j.DstName, j.DPort, j.Proto, j.Popularity = Addr(f.Dst), f.DstName, &port, hunt.ProtoName(f.Proto), &pop
		j.Direction, j.Via = f.Direction.String(), Addr(f.Via)
		if f.PeriodSec > 0 {
			p, jit, reg := round(f.PeriodSec, 3), round(f.Jitter, 3), round(f.Regularity, 3)
			j.PeriodS, j.Jitter, j.Regularity = &p, &jit, &reg
		}
	} else if f.Kind == hunt.KindDNS {
		// dst is the server asked, dst_name the registered domain.
		port, pop := f.DstPort, f.Popularity
		j.Dst, j.DstName, j.DPort, j.Proto, j.Popularity = Addr(f.Dst), f.DstName, &port, hunt.ProtoName(f.Proto), &pop
		if f.Beacon && f.PeriodSec > 0 {
			p := round(f.PeriodSec, 3)
			j.PeriodS = &p
		}
		if e := f.DNS; e != nil {
			j.DNS = &DNS{Queries: e.Queries, Names: e.Names, SubLen: round(e.SubLen, 1), Entropy: round(e.Entropy, 3),
				BigQueries: e.BigQueries, BigBytes: e.BigBytes, OrigBytes: e.OrigData, RespBytes: e.RespData,
				Labels: round(e.Labels, 3), Volume: round(e.Volume, 3), Schedule: round(e.Schedule, 3)}
			if e.DataQTypes >= 0 {
				q := round(e.DataQTypes, 3)
				j.DNS.DataQTypes = &q
			}
		}
	} else if f.Kind == hunt.KindICMP {
		// dst is the outside address pinged; no port.
		pop := f.Popularity
		j.Dst, j.DstName, j.Proto, j.Popularity, j.Direction = Addr(f.Dst), f.DstName, hunt.ProtoName(f.Proto), &pop, f.Direction.String()
		if f.Beacon && f.PeriodSec > 0 {
			p := round(f.PeriodSec, 3)
			j.PeriodS = &p
		}
		if e := f.ICMP; e != nil {
			j.ICMP = &ICMP{Flows: e.Flows, Requests: e.Requests, Replies: e.Replies, ReqBytes: e.ReqBytes, RepBytes: e.RepBytes,
				Unechoed: e.Unechoed, Share: round(e.Share, 3), Extra: e.Extra,
				Payload: round(e.Payload, 3), Tunnel: round(e.Tunnel, 3), Schedule: round(e.Schedule, 3)}
			if e.SizeVary >= 0 {
				v := round(e.SizeVary, 3)
				j.ICMP.SizeVary = &v
			}
		}
	} else {
		ap := f.AdminPeers
		j.AdminPeers = &ap
		if f.C2Kind != "" {
			j.C2Kind, j.C2Peer, j.C2PeerName = string(f.C2Kind), Addr(f.BeaconDst), f.BeaconDstName
			if f.C2Kind == hunt.KindDNS {
				// A DNS finding's address is the resolver asked, not the
				// controller: the domain is the peer.
				j.C2Peer = ""
			}
		}
	}
	return j
}

// round keeps digits decimals: scores and periods to the precision that
// means something, so outputs diff cleanly.
func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
