package hunt

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// lowCut is the score from which a finding is evidence of its own (low):
// below it (info) every host has some, and adding it up would rank busy
// hosts above quiet ones.
const lowCut = 0.2

// population is every inside host that originates traffic hunt models: a
// connection or flow of its own (a channel's, a DNS query's, an echo
// request's, however few), including DNS and ICMP handed over apart from
// the records. Sorted by address.
func (m *Model) population() []*host {
	out := make([]*host, 0, len(m.hosts))
	for _, h := range m.hosts {
		out = append(out, h)
	}
	apart := map[netip.Addr]*host{}
	add := func(a netip.Addr, first, last int64, flows int) {
		if m.hosts[a] != nil {
			return
		}
		h := apart[a]
		if h == nil {
			h = &host{addr: a, first: first, last: last}
			apart[a] = h
			out = append(out, h)
		}
		h.first, h.last = min(h.first, first), max(h.last, last)
		h.conns += flows
	}
	for k, d := range m.dns {
		add(k.src, d.first, d.last, d.flows)
	}
	for k, p := range m.icmp {
		add(k.src, p.first, p.last, p.flows)
	}
	slices.SortFunc(out, func(a, b *host) int { return a.addr.Compare(b.addr) })
	return out
}

// c2Kinds are the kinds of command-and-control evidence a host's finding
// combines: channels (beacons, certificates, inbound polling), DNS and
// ICMP.
var c2Kinds = [...]Kind{KindChannel, KindDNS, KindICMP}

// hostC2 is one inside host's command-and-control evidence: the strongest
// finding of each kind, how many of each kind reach low, and whether any
// of them rests on a schedule.
type hostC2 struct {
	best   [len(c2Kinds)]*scored
	low    [len(c2Kinds)]int
	beacon bool
}

// orAdd adds independent evidence x to c (noisy-OR), leaving c exactly as
// it was when x is 0.
func orAdd(c, x float64) float64 {
	if x <= 0 {
		return c
	}
	return c + (1-c)*x
}

// stronger orders findings by score, then by the evidence under a cap.
func stronger(a, b *scored) int {
	return cmp.Or(cmp.Compare(b.f.Score, a.f.Score), cmp.Compare(b.strength, a.strength))
}

// kindOrder puts hosts before other findings of the same score.
func kindOrder(k Kind) int {
	if k == KindHost {
		return 0
	}
	return 1
}

// hostFindings makes a finding for every host of the population, and for
// every other inside host with command-and-control evidence of low or
// above (a host polled from outside, or one whose DNS or ICMP came apart
// from its records), from the findings so far.
//
// Its command-and-control evidence is its strongest finding of each kind:
// several channels (or domains, or addresses) of one kind are most often
// one piece of software, so they count once. Kinds are independent
// mechanisms, combined noisy-OR as lateral and scan evidence are: the
// strongest in full, each other kind from low up (below it every host has
// some) and weighted by the population weight w (with a handful of hosts
// each kind is held at medium because nothing can tell fleet software from
// an implant; two such kinds are no surer). Then
// `1 − (1 − C2)(1 − 0.9 L)(1 − 0.8 S)` with lateral L and scan S evidence.
func (m *Model) hostFindings(out []scored, active []*host, hs map[netip.Addr]*hostEv, w float64, allowed func(netip.Addr, string) bool) []scored {
	c2 := map[netip.Addr]*hostC2{}
	for i := range out {
		s := &out[i]
		f := &s.f
		if f.Kind == KindHost || f.Lateral || f.Score <= 0 {
			continue // an admin peer is a detail of its host's lateral evidence
		}
		k := slices.Index(c2Kinds[:], f.Kind)
		if k < 0 {
			continue
		}
		e := c2[f.Inside()]
		if e == nil {
			e = &hostC2{}
			c2[f.Inside()] = e
		}
		if b := e.best[k]; b == nil || stronger(s, b) < 0 {
			e.best[k] = s
		}
		if f.Score >= lowCut {
			e.low[k]++
			e.beacon = e.beacon || f.Beacon
		}
	}
	// The kinds of a host's evidence, the strongest first.
	ranked := func(e *hostC2) []int {
		var ks []int
		for k, b := range e.best {
			if b != nil {
				ks = append(ks, k)
			}
		}
		slices.SortStableFunc(ks, func(a, b int) int { return stronger(e.best[a], e.best[b]) })
		return ks
	}

	hostList := slices.Clone(active)
	inPop := make(map[netip.Addr]bool, len(active))
	for _, h := range active {
		inPop[h.addr] = true
	}
	for a, e := range c2 {
		// A host with evidence of low or above is a host to look at,
		// however little else it does: polled from outside, or in a
		// capture of its tunnel alone.
		ks := ranked(e)
		if lead := e.best[ks[0]]; !inPop[a] && lead.f.Score >= lowCut {
			h := m.hosts[a]
			if h == nil {
				h = &host{addr: a, first: lead.f.FirstSeen.UnixNano(), last: lead.f.LastSeen.UnixNano()}
			}
			hostList = append(hostList, h)
		}
	}
	slices.SortFunc(hostList, func(a, b *host) int { return a.addr.Compare(b.addr) })

	var hosts []scored
	for _, h := range hostList {
		if allowed(h.addr, "") {
			continue
		}
		he := hs[h.addr]
		if he == nil {
			he = &hostEv{}
		}
		f := Finding{Kind: KindHost, Src: h.addr, Connections: h.conns,
			FirstSeen: time.Unix(0, h.first).UTC(), LastSeen: time.Unix(0, h.last).UTC(), Hosts: len(active),
			Fanout: len(h.internal), AdminPeers: he.adminPeers, Lateral: he.lateral >= 0.3, Scan: he.scan >= 0.3}
		var score, strength float64
		var whys []why
		if e := c2[h.addr]; e != nil {
			for i, k := range ranked(e) {
				b := e.best[k]
				if i > 0 && b.f.Score < lowCut {
					continue
				}
				x, y := b.f.Score, b.strength
				if i > 0 {
					// Another kind corroborates only as far as the
					// population can tell fleet software from an
					// implant: with a handful of hosts every kind is
					// held at medium for want of it.
					x, y = w*x, w*y
				}
				score, strength = orAdd(score, x), orAdd(strength, y)
				if b.f.Score < lowCut {
					continue
				}
				if i == 0 {
					f.C2Kind = b.f.Kind
					f.BeaconDst, f.BeaconDstName = b.f.Dst, b.f.DstName
					if b.f.Kind == KindChannel && b.f.Direction == Inbound {
						f.BeaconDst, f.BeaconDstName = b.f.Src, ""
						f.Connections = max(f.Connections, b.f.Connections)
					}
				}
				whys = append(whys, why{b.f.Score, c2Reason(&b.f, e.low[k])})
				f.Attack = append(f.Attack, b.f.Attack...)
			}
			f.Beacon = e.beacon
		}
		score = orAdd(orAdd(score, 0.9*he.lateral), 0.8*he.scan)
		strength = orAdd(orAdd(strength, 0.9*he.lateral), 0.8*he.scan)
		f.Score, f.Severity = score, SeverityOf(score)
		if he.adminPeers > 0 {
			r := fmt.Sprintf("reached %d internal peers on admin ports %s (population median %.0f, robust z %.1f)",
				he.adminPeers, portList(he.ports), he.adminMedian, he.adminZ)
			if he.newAdmin > 0 {
				r += fmt.Sprintf(", %d of them new", he.newAdmin)
			}
			whys = append(whys, why{0.9 * he.lateral, r})
			if he.lateral >= 0.3 {
				f.Attack = append(f.Attack, lateralAttack(he.ports)...)
			}
		}
		if he.scanPeers > 0 {
			whys = append(whys, why{0.8 * he.scan, fmt.Sprintf("failed connections to %d destinations on port %d, %.0f%% of those tried (robust z %.1f)",
				he.scanPeers, he.scanPort, 100*he.scanShare, he.scanZ)})
			if he.scan >= 0.3 {
				f.Attack = append(f.Attack, "T1046")
			}
		}
		f.Reasons = append(f.Reasons, strongestFirst(whys)...)
		f.Reasons = append(f.Reasons, fmt.Sprintf("%d internal peers, %d destinations in all", len(h.internal), len(h.dsts)+len(h.proxied)))
		f.Attack = dedupe(f.Attack)
		hosts = append(hosts, scored{f: f, strength: strength})
	}
	return hosts
}

// c2Reason says what one finding of a host's command-and-control evidence
// was, with its score; low counts the findings of its kind from low up.
func c2Reason(b *Finding, low int) string {
	more := ""
	if low > 1 {
		more = fmt.Sprintf("; %d more at low or above", low-1)
	}
	first := ""
	if len(b.Reasons) > 0 {
		first = b.Reasons[0]
	}
	switch b.Kind {
	case KindDNS:
		return fmt.Sprintf("talks through DNS under %s, asking %s: %s (DNS score %.2f%s)", b.DstName, b.Dst, first, b.Score, more)
	case KindICMP:
		return fmt.Sprintf("exchanges ICMP echo with %s: %s (ICMP score %.2f%s)", nameAddr(b.Dst, b.DstName), first, b.Score, more)
	}
	peer, peerName := b.Dst, b.DstName
	verb := "beacons to"
	if b.Direction == Inbound {
		peer, peerName, verb = b.Src, "", "is polled from outside by"
	} else if !b.Beacon {
		verb = "reaches"
	}
	via := ""
	if b.Via.IsValid() {
		via = " via proxy " + b.Via.String()
	}
	if b.Beacon {
		return fmt.Sprintf("%s %s:%d%s every %s (channel score %.2f%s)", verb, nameAddr(peer, peerName), b.DstPort, via, FormatPeriod(b.PeriodSec), b.Score, more)
	}
	return fmt.Sprintf("%s %s:%d%s: %s (channel score %.2f%s)", verb, nameAddr(peer, peerName), b.DstPort, via, first, b.Score, more)
}

// nameAddr names a peer "name (address)", by its address alone when no
// name is known, or by its name alone when no address is.
func nameAddr(a netip.Addr, name string) string {
	switch {
	case !a.IsValid():
		return name
	case name != "":
		return name + " (" + a.String() + ")"
	}
	return a.String()
}
