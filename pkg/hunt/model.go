// Package hunt ranks the channels and hosts of a network by how far they
// stand from the rest of its traffic: periodic check-ins to destinations
// that few other hosts use, and internal fan-out to administrative ports.
//
// The model takes flow records (from packets, a store or Zeek conn.log),
// keeps a compact event list per channel and relationship counts per
// destination, IP, name and network, and scores at the end (see
// docs/hunt.md for every feature and how a score is made).
package hunt

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// Config says what is inside and what not to report.
type Config struct {
	// Internal names the inside networks (default: RFC 1918 and ULA).
	Internal []netip.Prefix
	// Allowed reports destinations (address or name) and hosts that are
	// known good: they still count in the population, but yield no finding.
	Allowed func(a netip.Addr, name string) bool
}

// DefaultInternal are the RFC 1918 and ULA ranges.
var DefaultInternal = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// Per-channel storage is bounded: the first maxRuns*runLen events are kept
// as they come; after that, each further run of runLen consecutive events
// replaces a stored run with the reservoir probability, so a channel holds
// a uniform sample of runs. Periodicity is measured on intervals inside
// runs, which stay true however long the channel (keeping every k-th event
// instead would turn a random series into a regular-looking one). Memory
// thus grows with channels, at most 32 KiB each, not with connections.
const (
	runLen  = 64
	maxRuns = 32
)

type chanKey struct {
	src, dst netip.Addr
	port     uint16
	proto    uint8
}

type event struct {
	t            int64 // unix nanoseconds
	obytes, resp uint32
}

type channel struct {
	key         chanKey
	events      []event // up to maxRuns*runLen; run i is events[i*runLen:(i+1)*runLen] once sampling
	cur         []event // the run being filled once events is full
	runsSeen    int     // complete runs offered to the reservoir (0 while every event is kept)
	conns       int
	failed      int // connection attempts without an answer or refused
	first, last int64
	hours       uint32 // hour-of-day (UTC) bitmap of check-ins
	name        string
	nameSrc     flow.NameSource
	rnd         uint64 // reservoir sampling state, seeded from the key (seed)
}

// sampled reports whether the channel holds a sample rather than every event.
func (c *channel) sampled() bool { return c.runsSeen > 0 }

type peer struct {
	first int64
	ports uint16 // admin-port bit set (adminPorts index)
	conns int
}

type host struct {
	addr        netip.Addr
	first, last int64
	conns       int
	dsts        map[netip.Addr]int32 // destination -> last hour (unix hours) it was reached
	// hourDsts counts, per hour of day (UTC), the destinations reached in
	// each clock hour: a person's day shows as many destinations by day and
	// few at night, a server's as a flat profile.
	hourDsts   [24]uint32
	internal   map[netip.Addr]*peer
	failedDsts map[uint32]int   // port -> distinct failed destinations (scan evidence)
	portDsts   map[uint32]int   // port -> distinct destinations
	seen       map[failKey]bool // (destination, port) -> failed at least once
}

type failKey struct {
	dst  netip.Addr
	port uint16
}

// adminPorts are remote-administration services used for lateral movement.
var adminPorts = [...]uint16{135, 139, 445, 3389, 5985, 5986, 22}

func adminIndex(p uint16) int {
	for i, a := range adminPorts {
		if a == p {
			return i
		}
	}
	return -1
}

// Model accumulates flow records. It is not safe for concurrent use.
type Model struct {
	cfg      Config
	channels map[chanKey]*channel
	hosts    map[netip.Addr]*host
	// dnsNames maps an address to the names DNS answers gave for it.
	dnsNames    map[netip.Addr]string
	first, last int64
	records     int
}

// New returns an empty model.
func New(cfg Config) *Model {
	if len(cfg.Internal) == 0 {
		cfg.Internal = DefaultInternal
	}
	return &Model{cfg: cfg, channels: map[chanKey]*channel{}, hosts: map[netip.Addr]*host{}, dnsNames: map[netip.Addr]string{}}
}

// Internal reports whether a is inside.
func (m *Model) Internal(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range m.cfg.Internal {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Records returns how many records were added.
func (m *Model) Records() int { return m.records }

// AddAnswer says that DNS answered a for name, as the latest record whose
// answers held a did: for a source that hands over records grouped by
// address pair rather than in time order (the flow database), so the
// last answer wins as it does record by record.
func (m *Model) AddAnswer(a netip.Addr, name string) {
	if len(m.dnsNames) < 1<<20 {
		m.dnsNames[a.Unmap()] = name
	}
}

// AddAll adds every record a sequence yields: the seam for any source of
// flow records (a store query, a file of records).
func (m *Model) AddAll(seq func(yield func(*flow.Record) bool)) {
	seq(func(r *flow.Record) bool {
		m.Add(r)
		return true
	})
}

// Add accounts one flow record. The model keeps nothing that points into r.
func (m *Model) Add(r *flow.Record) {
	if !r.Orig.IsValid() || !r.Resp.IsValid() {
		return
	}
	m.records++
	ts := r.First.UnixNano()
	if m.first == 0 || ts < m.first {
		m.first = ts
	}
	if end := r.Last.UnixNano(); end > m.last {
		m.last = end
	}
	src, dst := r.Orig.Unmap(), r.Resp.Unmap()
	if len(r.Answers) > 0 && r.Name != "" {
		for _, a := range r.Answers {
			if len(m.dnsNames) < 1<<20 {
				m.dnsNames[a.Unmap()] = r.Name
			}
		}
	}
	if !m.Internal(src) || !dst.IsGlobalUnicast() && !dst.IsPrivate() && !dst.IsLinkLocalUnicast() {
		return // inbound traffic, or multicast/broadcast: no channel of an inside host
	}
	if dst.Is4() && dst.As4()[3] == 255 {
		return // most likely a subnet broadcast
	}
	h := m.hosts[src]
	if h == nil {
		h = &host{addr: src, first: ts, dsts: map[netip.Addr]int32{}, internal: map[netip.Addr]*peer{},
			failedDsts: map[uint32]int{}, portDsts: map[uint32]int{}, seen: map[failKey]bool{}}
		m.hosts[src] = h
	}
	h.conns++
	h.first = min(h.first, ts)
	h.last = max(h.last, ts)
	hr := int32(ts / int64(time.Hour))
	if last, ok := h.dsts[dst]; !ok || last != hr {
		h.hourDsts[hourOfDay(ts)]++
		h.dsts[dst] = hr
	}
	failed := r.Proto == 6 && (r.RespPkts == 0 || r.State() == "REJ" || r.State() == "S0") ||
		r.Proto == 17 && r.RespPkts == 0 && r.OrigPkts > 0
	if m.Internal(dst) {
		p := h.internal[dst]
		if p == nil {
			p = &peer{first: ts}
			h.internal[dst] = p
		}
		p.first = min(p.first, ts)
		p.conns++
		if i := adminIndex(r.RespPort); i >= 0 && r.Proto == 6 {
			p.ports |= 1 << i
		}
	}
	if fk := (failKey{dst, r.RespPort}); len(h.seen) < 1<<18 {
		wasFailed, ok := h.seen[fk]
		if !ok {
			h.portDsts[uint32(r.RespPort)]++
		}
		if failed && !wasFailed {
			h.seen[fk] = true
			h.failedDsts[uint32(r.RespPort)]++
		} else if !ok {
			h.seen[fk] = false
		}
	}

	k := chanKey{src, dst, r.RespPort, r.Proto}
	if r.Proto == 1 || r.Proto == 58 {
		k.port = 0
	}
	c := m.channels[k]
	if c == nil {
		c = &channel{key: k, first: ts, rnd: seed(k)}
		m.channels[k] = c
	}
	c.conns++
	if failed {
		c.failed++
	}
	c.first = min(c.first, ts)
	c.last = max(c.last, ts)
	if r.Name != "" && r.NameSource >= c.nameSrc && r.Resp == dst {
		c.name, c.nameSrc = r.Name, r.NameSource
	}
	c.hours |= 1 << hourOfDay(ts)
	e := event{t: ts, obytes: clamp32(r.OrigData), resp: clamp32(r.RespData)}
	if len(c.events) < maxRuns*runLen {
		c.events = append(c.events, e)
		return
	}
	if c.cur == nil {
		c.cur = make([]event, 0, runLen)
		c.runsSeen = maxRuns
	}
	c.cur = append(c.cur, e)
	if len(c.cur) == runLen {
		c.runsSeen++
		if j := c.rand(c.runsSeen); j < maxRuns {
			copy(c.events[j*runLen:], c.cur)
		}
		c.cur = c.cur[:0]
	}
}

// seed starts a channel's sampling state from its key, so the runs a
// long channel keeps depend on its own check-ins only, not on how other
// channels' records interleave with them: a store, a capture and the flow
// database (which hands records over channel by channel) keep the same.
func seed(k chanKey) uint64 {
	h := fnv.New64a()
	a, b := k.src.As16(), k.dst.As16()
	h.Write(a[:])
	h.Write(b[:])
	h.Write([]byte{byte(k.port >> 8), byte(k.port), k.proto})
	return h.Sum64()
}

// rand returns a pseudo-random integer in [0, n) (splitmix64).
func (c *channel) rand(n int) int {
	c.rnd += 0x9e3779b97f4a7c15
	z := c.rnd
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(n))
}

// hourOfDay is the UTC hour of a unix-nanosecond time.
func hourOfDay(ts int64) int {
	h := (ts / int64(time.Hour)) % 24
	if h < 0 {
		h += 24
	}
	return int(h)
}

func clamp32(v uint64) uint32 {
	if v > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(v)
}

// span returns the data's time span.
func (m *Model) span() time.Duration { return time.Duration(m.last - m.first) }

// Contact is one internal host's traffic to a destination.
type Contact struct {
	Src         netip.Addr
	Port        uint16
	Proto       uint8
	Connections int
	First, Last time.Time
}

// Contacts lists the inside hosts that reached dst, on every port, whether
// or not their channel scored: the report names every host talking to a
// controller, also one that checked in only once. Ordered by source, port.
func (m *Model) Contacts(dst netip.Addr) []Contact {
	dst = dst.Unmap()
	var out []Contact
	for k, c := range m.channels {
		if k.dst != dst {
			continue
		}
		out = append(out, Contact{Src: k.src, Port: k.port, Proto: k.proto, Connections: c.conns,
			First: time.Unix(0, c.first).UTC(), Last: time.Unix(0, c.last).UTC()})
	}
	slices.SortFunc(out, func(a, b Contact) int {
		return cmp.Or(a.Src.Compare(b.Src), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return out
}
