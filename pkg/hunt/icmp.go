package hunt

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// ICMP as a channel (docs/hunt.md, ICMP): an echo request is answered by
// a reply that mirrors it, so ping, monitoring and path-MTU probes send
// fixed sizes and get the same bytes back, however long they run and
// however regular their schedule. A tunnel (ptunnel, icmptx, hans) or an
// icmpsh-style implant carries data in both directions: its replies are
// not the echo of its requests. So ICMP is judged per (inside host,
// outside address) on the bytes an echo does not explain, on how sizes
// vary from exchange to exchange, on the schedule of the requests (which
// alone proves nothing: monitors keep schedules), and on how many inside
// hosts ping the same address (fleet monitoring).

// KindICMP is a finding about an inside host's ICMP echo traffic to one
// outside address: Src is the host, Dst the address.
const KindICMP Kind = "icmp"

// ICMP bounds: check-in times kept per (host, address), exchanges whose
// sizes are kept, pairs kept in all.
const (
	maxICMPTimes = 2048
	maxICMPSizes = 256
	maxICMPPairs = 1 << 18
)

// ICMP evidence shapes (docs/hunt.md explains each):
const (
	// The share of the bytes an echo would not explain, from icmpShareNone
	// (sizes that differ a little: requests of mixed sizes, some lost) to
	// icmpShareFull.
	icmpShareNone = 0.1
	icmpShareFull = 0.4
	// Payload: bytes no echo explains, from icmpPayloadNone (a few
	// differing replies) to icmpPayloadNone·2^4 (4 KiB: a few commands
	// and their output).
	icmpPayloadNone = 256.0
	// Tunnel volume: from icmpTunnelNone to icmpTunnelNone·4 (16 to 64
	// KiB: a file, a session).
	icmpTunnelNone = 16 << 10
	// icmpSingleCap: with no population to judge by (w < 1), ICMP findings
	// stay medium at most unless the data in the echo says it.
	icmpSingleCap = 0.59
)

// icmpKey is an inside host and an outside address it sent echo requests to.
type icmpKey struct {
	src, dst netip.Addr
}

// icmpPair is one inside host's echo traffic to one outside address.
type icmpPair struct {
	key         icmpKey
	proto       uint8
	flows       int
	reqs, reps  uint64 // echo requests and replies (packets each way)
	reqData     uint64 // payload bytes each way (ICMP header and data)
	repData     uint64
	unechoed    float64 // bytes the echo of the requests does not explain
	extra       uint64  // replies beyond one a request
	times       []int64 // check-ins: flow starts and bursts, the first maxICMPTimes
	sizes       [][2]float64
	first, last int64
}

// ICMPEvidence is what one inside host's echo traffic to one outside
// address showed.
type ICMPEvidence struct {
	Flows     int
	Requests  uint64
	Replies   uint64
	ReqBytes  uint64
	RepBytes  uint64
	Unechoed  uint64  // bytes of the replies (or requests) no echo explains
	Share     float64 // Unechoed against the larger of the replies' bytes and their echo's
	Extra     uint64  // replies beyond one a request
	SizeVary  float64 // how much exchanges' mean sizes vary (0-1; -1 with fewer than 4 exchanges)
	Hosts     int     // inside hosts that ping the address
	Payload   float64 // evidence of data in the replies 0-1
	Tunnel    float64 // evidence of a tunnel's volume 0-1
	Schedule  float64 // beacon evidence of the check-ins 0-1
	PeriodSec float64
}

// echoRequest reports whether r is an exchange of ICMP echo requests
// opened by Orig (its first packet, or the request its first reply
// answered): flow records keep the type in OrigPort (Zeek's convention).
func echoRequest(r *flow.Record) bool {
	return r.Proto == 1 && r.OrigPort == 8 || r.Proto == 58 && r.OrigPort == 128
}

// TakeICMPApart says ICMP flow records come through AddICMPRecord, apart
// from the records Add takes: for a source that hands records over with
// only the fields channels need (the flow database's pairs carry no ICMP
// type). Call it before the first Add.
func (m *Model) TakeICMPApart() { m.icmpApart = true }

// AddICMPRecord accounts an ICMP flow record as Add would when ICMP is
// not taken apart (other records are ignored).
func (m *Model) AddICMPRecord(r *flow.Record) {
	if !r.Orig.IsValid() || !r.Resp.IsValid() {
		return
	}
	m.addICMP(r, r.Orig.Unmap(), r.Resp.Unmap())
}

// addICMP accounts one echo exchange of an inside host to an outside
// address; errors, inbound pings and inside destinations are no
// candidates.
func (m *Model) addICMP(r *flow.Record, src, dst netip.Addr) {
	if !echoRequest(r) || !m.Internal(src) || m.Internal(dst) || !dst.IsGlobalUnicast() {
		return
	}
	if m.icmp == nil {
		m.icmp = map[icmpKey]*icmpPair{}
	}
	k := icmpKey{src, dst}
	p := m.icmp[k]
	ts := r.First.UnixNano()
	if p == nil {
		if len(m.icmp) >= maxICMPPairs {
			return
		}
		p = &icmpPair{key: k, proto: r.Proto, first: ts, last: ts}
		m.icmp[k] = p
	}
	p.flows++
	p.first, p.last = min(p.first, ts), max(p.last, ts, r.Last.UnixNano())
	p.reqs += r.OrigPkts
	p.reps += r.RespPkts
	p.reqData += r.OrigData
	p.repData += r.RespData
	if r.OrigPkts > 0 {
		// An echo gives back each request's bytes: replies whose bytes
		// differ from as many requests' (of the flow's mean size) carry
		// something else. A constant per packet (whether a source counts
		// the 8-byte ICMP header) cancels out.
		echo := float64(r.RespPkts) * float64(r.OrigData) / float64(r.OrigPkts)
		p.unechoed += math.Abs(float64(r.RespData) - echo)
		if r.RespPkts > r.OrigPkts {
			p.extra += r.RespPkts - r.OrigPkts
		}
		if r.RespPkts > 0 && len(p.sizes) < maxICMPSizes {
			p.sizes = append(p.sizes, [2]float64{float64(r.OrigData) / float64(r.OrigPkts), float64(r.RespData) / float64(r.RespPkts)})
		}
	}
	if len(p.times) < maxICMPTimes {
		p.times = append(p.times, ts)
	}
	r.Bursts.Runs(func(ms []uint32) {
		for _, off := range ms {
			t := ts + int64(off)*1e6
			// The flow's first burst is its start.
			if t > ts && len(p.times) < maxICMPTimes {
				p.times = append(p.times, t)
			}
		}
	})
}

// scoreICMP scores every (inside host, outside address) of echo traffic.
func (m *Model) scoreICMP(w float64, H int, allowed func(netip.Addr, string) bool) []scored {
	if len(m.icmp) == 0 {
		return nil
	}
	// Group behaviour: inside hosts that ping each address.
	pop := map[netip.Addr]int{}
	for k := range m.icmp {
		pop[k.dst]++
	}
	scaleN := math.Max(2, popScale*float64(H))
	keys := make([]icmpKey, 0, len(m.icmp))
	for k := range m.icmp {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b icmpKey) int { return cmp.Or(a.src.Compare(b.src), a.dst.Compare(b.dst)) })
	var out []scored
	for _, k := range keys {
		p := m.icmp[k]
		if allowed(k.src, "") || allowed(k.dst, m.dnsNames[k.dst]) {
			continue
		}
		ev := m.icmpEvidence(p)
		ev.Hosts = pop[k.dst]
		vary := math.Max(ev.SizeVary, 0)
		// A schedule alone is a monitor's as much as an implant's: it
		// counts in full only with data in the echo. Data in the echo is
		// what no ping does, schedule or not (a poller inside one
		// conn.log row shows none).
		e := 1 - (1-0.9*ev.Payload*(0.7+0.3*ev.Schedule))*(1-0.9*ev.Tunnel)*(1-0.25*ev.Schedule)*(1-0.3*vary*ev.Payload)
		if e < 0.05 {
			continue
		}
		// Kilobytes that no echo explains are their own evidence, as an
		// odd port is a channel's: popularity still discounts them.
		own := 0.0
		if ev.Tunnel >= 0.5 || ev.Payload >= 0.5 {
			own = math.Max(ev.Tunnel, ev.Payload)
		}
		score, strength := covertScore(e, ev.Hosts, scaleN, w, own, icmpSingleCap)
		f := Finding{Kind: KindICMP, Src: k.src, Dst: k.dst, DstName: m.dnsNames[k.dst], Proto: p.proto,
			Score: score, Severity: SeverityOf(score), PeriodSec: ev.PeriodSec, Connections: p.flows,
			FirstSeen: unixUTC(p.first), LastSeen: unixUTC(p.last), Popularity: ev.Hosts, Hosts: H,
			Direction: Outbound, Own: w < 1, ICMP: &ev, Beacon: ev.Schedule >= 0.5 && ev.Payload >= 0.3}
		var whys []why
		if ev.Tunnel > 0 || ev.Payload > 0 {
			s := fmt.Sprintf("replies are no echo of the requests: %d requests carried %s, %d replies %s; %s (%.0f%%) no echo explains",
				ev.Requests, fmtBytes(float64(ev.ReqBytes)), ev.Replies, fmtBytes(float64(ev.RepBytes)), fmtBytes(float64(ev.Unechoed)), 100*ev.Share)
			if ev.Extra > 0 {
				s += fmt.Sprintf(", %d replies beyond one a request", ev.Extra)
			}
			if ev.Tunnel >= 0.5 {
				s = "tunnel volume: " + s
			}
			whys = append(whys, why{math.Max(ev.Tunnel, ev.Payload), s})
		}
		if ev.Schedule > 0 {
			whys = append(whys, why{0.5 * ev.Schedule, fmt.Sprintf("echo requests on a schedule: every %s", FormatPeriod(ev.PeriodSec))})
		}
		if vary > 0.3 && ev.Payload > 0 {
			whys = append(whys, why{0.3 * vary, fmt.Sprintf("sizes vary from exchange to exchange (%.2f)", vary)})
		}
		closeCovert(&f, whys, fmt.Sprintf("%d of %d inside hosts ping %s", ev.Hosts, H, k.dst), "fleet monitoring", w, "T1095", ev.Tunnel >= 0.5)
		out = append(out, scored{f: f, strength: strength})
	}
	return out
}

// icmpEvidence measures one (host, address).
func (m *Model) icmpEvidence(p *icmpPair) ICMPEvidence {
	ev := ICMPEvidence{Flows: p.flows, Requests: p.reqs, Replies: p.reps, ReqBytes: p.reqData, RepBytes: p.repData,
		Unechoed: uint64(p.unechoed), Extra: p.extra, SizeVary: -1}
	// The share against the larger of what came back and what an echo
	// would have brought back: an upload in the requests whose replies
	// are small is as far from an echo as a download in the replies.
	echo := 0.0
	if p.reqs > 0 {
		echo = float64(p.reps) * float64(p.reqData) / float64(p.reqs)
	}
	if d := math.Max(float64(p.repData), echo); d > 0 {
		ev.Share = math.Min(1, p.unechoed/d)
	}
	share := clamp01((ev.Share - icmpShareNone) / (icmpShareFull - icmpShareNone))
	ev.Payload = share * clamp01(math.Log2(math.Max(p.unechoed/icmpPayloadNone, 1))/4)
	ev.Tunnel = share * clamp01(math.Log2(math.Max(p.unechoed/icmpTunnelNone, 1))/2)

	// Exchanges of different sizes (a ping repeats its size): the robust
	// spread of the exchanges' mean sizes each way, the larger of the two.
	if len(p.sizes) >= 4 {
		req, rep := make([]float64, len(p.sizes)), make([]float64, len(p.sizes))
		for i, s := range p.sizes {
			req[i], rep[i] = s[0], s[1]
		}
		ev.SizeVary = clamp01(math.Max(robustCV(req), robustCV(rep)) / 0.5)
	}

	ev.Schedule, ev.PeriodSec = m.covertSchedule(p.times)
	return ev
}

// robustCV is the median absolute deviation over the median (scaled to
// a normal's standard deviation): how much values vary, outliers aside.
func robustCV(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	med := s[len(s)/2]
	if med <= 0 {
		return 0
	}
	for i := range s {
		s[i] = math.Abs(s[i] - med)
	}
	slices.Sort(s)
	return 1.4826 * s[len(s)/2] / med
}
