package intel

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// Bounds on what one match keeps by name; counts stay exact.
const (
	maxPeers  = 16
	maxValues = 8
)

// Match is one indicator that fired: the inside hosts whose traffic
// matched it, when, how much.
type Match struct {
	Indicator   *Indicator
	Severity    hunt.Severity
	Hosts       []HostMatch // most connections first
	First, Last time.Time
	Connections int
	Bytes       uint64   // IP bytes both ways
	Values      []string // what matched: addresses, networks, names
	Via         []string // where: dst, src, dns-answer, dns, sni, http, url, port
}

// HostMatch is one inside host's traffic matching an indicator.
type HostMatch struct {
	Host        netip.Addr
	First, Last time.Time
	Connections int
	Bytes       uint64
	Values      []string
	Via         []string
	Peers       []Peer // the other ends, most connections first (at most maxPeers)
}

// Peer is one other end of an inside host's matching traffic.
type Peer struct {
	Addr        netip.Addr
	Port        uint16
	Proto       uint8
	Connections int
	First, Last time.Time
	// Named says the indicator names this address (it matched, or the
	// flow to it matched by name): a destination to block. A resolver
	// asked for a matched name is a peer but not named.
	Named bool
}

// Collector runs the matcher over flow records and gathers the matches.
type Collector struct {
	m       *Matcher
	hosts   map[hostKey]*HostMatch
	perRec  []int32
	Records int
	// Invalid counts flow records an indicator matched outside its
	// validity (before valid_from or from valid_until on): not matches of
	// that indicator, but worth telling.
	Invalid int
}

type hostKey struct {
	ind  int32
	host netip.Addr
}

// NewCollector starts gathering matches of m.
func NewCollector(m *Matcher) *Collector {
	return &Collector{m: m, hosts: map[hostKey]*HostMatch{}}
}

// Add matches one flow record (its fields are read, not kept).
func (c *Collector) Add(r *flow.Record) {
	c.Records++
	c.perRec = c.perRec[:0]
	invalid := false
	c.m.Match(r, "", func(h Hit) { c.hit(r, h) }, func(int32) { invalid = true })
	if invalid {
		c.Invalid++
	}
}

func (c *Collector) hit(r *flow.Record, h Hit) {
	// One record counts once per indicator, however many of its
	// alternatives hold.
	first := !slices.Contains(c.perRec, h.Ind)
	if first {
		c.perRec = append(c.perRec, h.Ind)
	}
	k := hostKey{h.Ind, h.Inside}
	hm := c.hosts[k]
	if hm == nil {
		hm = &HostMatch{Host: h.Inside, First: r.First, Last: r.Last}
		c.hosts[k] = hm
	}
	if first {
		hm.Connections++
		hm.Bytes += r.OrigBytes + r.RespBytes
		if r.First.Before(hm.First) {
			hm.First = r.First
		}
		if r.Last.After(hm.Last) {
			hm.Last = r.Last
		}
	}
	if len(hm.Values) < maxValues {
		hm.Values = addStr(hm.Values, h.Value)
	}
	hm.Via = addStr(hm.Via, h.Via)
	// The flow's other end (a resolver or a proxy is a peer, not named);
	// the address the indicator names when that is not the other end (a
	// DNS answer, a proxy's destination); for a DNS question its answers,
	// the addresses of the matched name.
	other := r.Resp.Unmap()
	if other == h.Inside {
		other = r.Orig.Unmap()
	}
	if first {
		hm.peer(other, r.RespPort, r.Proto, r, h.Remote == other && h.Remote.IsValid())
		if dnsFlow(r) && h.Via == "dns" {
			for _, a := range r.Answers {
				hm.peer(a.Unmap(), 0, 0, r, true)
			}
		}
	}
	if h.Remote.IsValid() && h.Remote != other {
		hm.peer(h.Remote, 0, 0, r, true)
	}
}

func (hm *HostMatch) peer(a netip.Addr, port uint16, proto uint8, r *flow.Record, named bool) {
	if !a.IsValid() {
		return
	}
	for i := range hm.Peers {
		p := &hm.Peers[i]
		if p.Addr == a && p.Port == port && p.Proto == proto {
			p.Connections++
			p.Named = p.Named || named
			if r.First.Before(p.First) {
				p.First = r.First
			}
			if r.Last.After(p.Last) {
				p.Last = r.Last
			}
			return
		}
	}
	if len(hm.Peers) < maxPeers {
		hm.Peers = append(hm.Peers, Peer{Addr: a, Port: port, Proto: proto, Connections: 1, First: r.First, Last: r.Last, Named: named})
	}
}

func addStr(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Matches returns one Match per indicator that fired, most severe first,
// then most hosts, then earliest.
func (c *Collector) Matches() []Match {
	byInd := map[int32]*Match{}
	for k, hm := range c.hosts {
		m := byInd[k.ind]
		if m == nil {
			ind := c.m.inds[k.ind]
			m = &Match{Indicator: ind, Severity: ind.Severity(), First: hm.First, Last: hm.Last}
			byInd[k.ind] = m
		}
		slices.SortFunc(hm.Peers, func(a, b Peer) int {
			return cmp.Or(cmp.Compare(b.Connections, a.Connections), a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
		})
		m.Hosts = append(m.Hosts, *hm)
		m.Connections += hm.Connections
		m.Bytes += hm.Bytes
		if hm.First.Before(m.First) {
			m.First = hm.First
		}
		if hm.Last.After(m.Last) {
			m.Last = hm.Last
		}
	}
	out := make([]Match, 0, len(byInd))
	for _, m := range byInd {
		slices.SortFunc(m.Hosts, func(a, b HostMatch) int {
			return cmp.Or(cmp.Compare(b.Connections, a.Connections), a.Host.Compare(b.Host))
		})
		for _, h := range m.Hosts {
			for _, v := range h.Values {
				if len(m.Values) < maxValues {
					m.Values = addStr(m.Values, v)
				}
			}
			for _, v := range h.Via {
				m.Via = addStr(m.Via, v)
			}
		}
		slices.Sort(m.Via)
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Match) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(len(b.Hosts), len(a.Hosts)),
			a.First.Compare(b.First), cmp.Compare(a.Indicator.Ref(), b.Indicator.Ref()))
	})
	return out
}
